#!/usr/bin/env bash
# The key-use log's throughput and `envelope evidence` at size (BENCHMARKS.md, "Key-use
# log"), in release, each figure the median of RUNS process runs with min-max:
#   - writing: events/s the background writer sustains (1,000,000 events, a signed
#     checkpoint every 1,000 lines);
#   - verifying: events/s `verify_dir` checks (every line, chain, root and signature);
#   - evidence: seconds for `envelope evidence` over a 1,000,000-row PostgreSQL column and a
#     1,000,000-event log (its own PostgreSQL, started and stopped here).
#
#   scripts/bench-audit.sh [RUNS] [EVENTS] [ROWS]     (defaults 3, 1000000, 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3} events=${2:-1000000} rows=${3:-1000000}
source scripts/lib/tools.sh
ensure_build_deps
cargo build -q --release --locked -p envelope-audit --example audit_bench
cargo build -q --release --locked -p envelope-cli --bin envelope --example job_bench
work=$(mktemp -d)
source scripts/lib/postgres.sh
trap 'stop_postgres; rm -rf "$work"' EXIT

summary() { # NAME FIELD FILE
    python3 - "$@" <<'PY'
import json, statistics, sys
name, field, path = sys.argv[1:]
values = [json.loads(l)[field] for l in open(path) if l.strip()]
fmt = (lambda v: f"{v:,.0f}") if field == "events_per_second" else (lambda v: f"{v:.1f}")
print(f"| {name} | {fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))}) | {len(values)} runs |")
PY
}

for i in $(seq 1 "$runs"); do
    mkdir -p "$work/w$i"
    target/release/examples/audit_bench write "$work/w$i" "$events" >> "$work/write.jsonl"
    target/release/examples/audit_bench verify "$work/w$i" >> "$work/verify.jsonl"
done

start_postgres
key=local://$work/keyring.json
target/release/envelope keys create "$key" > /dev/null
target/release/examples/job_bench fill "$ENVELOPE_TEST_PG_URL" bench_evidence "$rows" "$key" > /dev/null
target/release/envelope audit public-key --signer "$work/w1/key" > "$work/w1/key.pub"
for i in $(seq 1 "$runs"); do
    started=$(date +%s.%N)
    status=0
    target/release/envelope evidence --out "$work/pack$i" --key "$key" \
        --db "$ENVELOPE_TEST_PG_URL" --column bench_evidence.v --log "$work/w1/log" \
        --public-key "$work/w1/key.pub" --sign-with "$work/w1/key" --from 2000-01-01 > "$work/evidence$i.out" || status=$?
    [[ $status == 0 || $status == 7 ]] || { cat "$work/evidence$i.out"; exit 1; }
    python3 -c "import json,sys; print(json.dumps({'seconds': $(date +%s.%N) - $started}))" >> "$work/evidence.jsonl"
done
grep -E "data-readable|key-use-log" "$work/evidence1.out"

echo "| measurement ($events events, $rows rows) | median (min–max) | |"
echo "|---|---|---|"
summary "log writing, events/s" events_per_second "$work/write.jsonl"
summary "log verification, events/s" events_per_second "$work/verify.jsonl"
summary "envelope evidence, seconds" seconds "$work/evidence.jsonl"
