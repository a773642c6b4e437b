#!/usr/bin/env bash
# The evidence pack as a person and a GRC tool see it: a seeded scenario (a local keyring,
# files and, when scripts/test.sh started it, a PostgreSQL column; the key-use log on;
# a rotation and a partial rewrap), then
#   - index.html rendered in headless Chromium (Debian's, installed when missing): it shows
#     the failing finding in red, requests nothing but its own file, logs no console error;
#     a full-page screenshot is saved;
#   - assessment-results.json validated by compliance-trestle's OSCAL models (PyPI);
#   - the signed manifest verified, and a changed file caught.
#
#   scripts/test-evidence.sh [--screenshot PATH]   (default target/evidence/index.png)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

screenshot=target/evidence/index.png
if [[ ${1:-} == --screenshot ]]; then
    screenshot=$2
fi
ensure_chromium
ensure_playwright
ensure_venv_tool "compliance-trestle==5.2.0" trestle

# scripts/test.sh's test build of the CLI, or built here when run alone.
if [[ -z ${ENVELOPE_CLI:-} ]]; then
    cargo build -q -p envelope-cli --locked
fi
bin=${ENVELOPE_CLI:-$PWD/target/debug/envelope}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export ENVELOPE_AUDIT_LOG=$work/log ENVELOPE_AUDIT_SIGNER=$work/audit.key ENVELOPE_AUDIT_ACTOR=billing-api
"$bin" audit keygen --name acme-audit --out audit.key > audit.pub.txt 2>/dev/null
key=local://$work/keyring.json
"$bin" keys create "$key" > /dev/null
mkdir -p invoices receipts
for i in $(seq 1 12); do
    printf 'invoice %s' "$i" | "$bin" encrypt --key "$key" --aad "invoices/$i" > "invoices/$i.ev"
done
for i in $(seq 1 5); do
    printf 'receipt %s' "$i" | "$bin" encrypt --key "$key" --aad "receipts/$i" > "receipts/$i.ev"
done
pg_args=()
if [[ -n ${ENVELOPE_TEST_PG_URL:-} ]]; then
    table=evidence_page_$$
    psql=${ENVELOPE_TEST_PG_BINDIR:+$ENVELOPE_TEST_PG_BINDIR/}psql
    "$psql" -q "$ENVELOPE_TEST_PG_URL" -c "CREATE TABLE $table (id bigint PRIMARY KEY, ssn text)"
    for i in $(seq 1 20); do
        ct=$(printf '%09d-ssn' "$i" | "$bin" encrypt --key "$key" --aad "envelope:$table.ssn" --text)
        "$psql" -q "$ENVELOPE_TEST_PG_URL" -c "INSERT INTO $table VALUES ($i, '$ct')"
    done
    pg_args=(--db "$ENVELOPE_TEST_PG_URL" --column "$table.ssn")
fi
"$bin" keys rotate "$key" > /dev/null
"$bin" rewrap --key "$key" --dir invoices > /dev/null
if [[ -n ${ENVELOPE_TEST_PG_URL:-} ]]; then
    "$bin" rewrap --key "$key" --db "$ENVELOPE_TEST_PG_URL" --table "$table" --column ssn > /dev/null
fi
unset ENVELOPE_AUDIT_LOG
# The window begins with the log (a log cannot cover time before it existed).
from=$(head -n 1 "$(ls log/audit-*.jsonl | head -n 1)" | python3 -c 'import json,sys; print(json.load(sys.stdin)["time"])')
status=0
"$bin" evidence --out pack --key "$key" --dir invoices --dir receipts "${pg_args[@]}" \
    --log log --public-key audit.pub --from "$from" > evidence.out || status=$?
cat evidence.out
[[ $status == 7 ]] || { echo "evidence exited $status, expected 7 (a failing finding)" >&2; exit 1; }
grep -q '^FAIL  data-follows-rotation' evidence.out

cd - > /dev/null
mkdir -p "$(dirname "$screenshot")"
PLAYWRIGHT_DIR=$ENVELOPE_TOOLS/browser node scripts/check-page.mjs "$work/pack/index.html" \
    --screenshot "$screenshot" --expect-fail data-follows-rotation \
    --expect "Key inventory" --expect "Census of every store" --expect "Key use per day"
echo "screenshot: $screenshot"

"$ENVELOPE_VENV/bin/python" - "$work/pack/assessment-results.json" <<'PY'
import json, sys
from trestle.oscal.assessment_results import AssessmentResults
doc = json.load(open(sys.argv[1]))
model = AssessmentResults.model_validate(doc["assessment-results"])
states = [f.target.status.state.value for f in model.results[0].findings]
assert "not-satisfied" in states and "satisfied" in states, states
print(f"OSCAL assessment-results valid (compliance-trestle): {len(states)} findings, "
      f"{states.count('not-satisfied')} not satisfied")
PY

"$bin" audit verify-pack "$work/pack" --public-key "$work/audit.pub"
sed -i 's/FAIL/PASS/' "$work/pack/index.html"
if "$bin" audit verify-pack "$work/pack" --public-key "$work/audit.pub"; then
    echo "a changed index.html was not caught" >&2
    exit 1
fi
echo "evidence page, OSCAL document and manifest: all checks passed"
