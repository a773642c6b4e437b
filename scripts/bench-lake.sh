#!/usr/bin/env bash
# Data-lake benchmarks (issue #26), each part in RUNS separate process runs (default 3),
# printed as medians with min-max:
# - Spark local[2]: envelope_sdk.spark encrypt/decrypt of ROWS 64-byte values (default
#   2,000,000) against Spark's aes_encrypt/aes_decrypt (GCM) of the same column in the same
#   session, and the KMS calls envelope made;
# - Parquet modular encryption of a PME_ROWS-row file (default 200,000) with two encrypted
#   columns: envelope_sdk.parquet against pyarrow's PME with an in-process KMS stand-in;
# - `envelope rewrap --parquet` over FILES files (default 1,000) with external key material:
#   seconds, KMS calls, data files changed.
#
#   scripts/bench-lake.sh                       # RUNS=3 ROWS=2000000 PME_ROWS=200000 FILES=1000
#   RUNS=1 ROWS=200000 FILES=100 scripts/bench-lake.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

RUNS=${RUNS:-3}
ROWS=${ROWS:-2000000}
PME_ROWS=${PME_ROWS:-200000}
FILES=${FILES:-1000}
PARTS=${PARTS:-spark,pme,rewrap}

ensure_java
cargo build --release --locked -p envelope-ffi -p envelope-cli --bin envelope
ensure_venv
"$ENVELOPE_VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./bindings/python
"$ENVELOPE_VENV/bin/pip" install --quiet --disable-pip-version-check "./bindings/python[test,spark]" "pyspark==$PYSPARK_VERSION" "pandas>=2.2,<3"

results=$(mktemp)
for run in $(seq "$RUNS"); do
    echo "run $run of $RUNS" >&2
    ENVELOPE_CLI=$PWD/target/release/envelope "$ENVELOPE_VENV/bin/python" scripts/bench-lake.py \
        --rows "$ROWS" --pme-rows "$PME_ROWS" --files "$FILES" --parts "$PARTS" 2>/dev/null >>"$results"
done
"$ENVELOPE_VENV/bin/python" - "$results" <<'PY'
import json, statistics, sys

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
def show(part, key, fmt="{:,.0f}"):
    xs = [r[part][key] for r in runs if part in r]
    if xs:
        print(f"  {key}: {fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})")
print(f"{len(runs)} runs; medians (min-max)")
if any("spark" in r for r in runs):
    print(f"spark local[2], {runs[0]['spark']['rows']:,} rows of 64 bytes:")
    for k in ("aes_encrypt_rows_per_s", "envelope_encrypt_rows_per_s", "aes_decrypt_rows_per_s", "envelope_decrypt_rows_per_s"):
        show("spark", k)
    show("spark", "encrypt_ratio", "{:.2f}x")
    show("spark", "decrypt_ratio", "{:.2f}x")
    show("spark", "envelope_encrypt_kms_calls", "{:.0f}")
if any("pme" in r for r in runs):
    print(f"pme, {runs[0]['pme']['rows']:,} rows, 2 encrypted columns:")
    for k in ("envelope_write_s", "stand_in_write_s", "envelope_cold_read_s", "stand_in_cold_read_s",
              "envelope_warm_read_s", "stand_in_warm_read_s"):
        show("pme", k, "{:.3f} s")
    for k in ("write_ratio", "cold_read_ratio", "warm_read_ratio"):
        show("pme", k, "{:.2f}x")
    show("pme", "kms_calls_per_file_written", "{:.1f}")
    show("pme", "kms_calls_per_file_read_cold", "{:.0f}")
if any("rewrap" in r for r in runs):
    print(f"rewrap --parquet, {runs[0]['rewrap']['files']:,} files ({runs[0]['rewrap']['keys']:,} wrapped keys):")
    show("rewrap", "seconds", "{:.2f} s")
    show("rewrap", "kms_calls", "{:.0f}")
    show("rewrap", "data_files_changed", "{:.0f}")
PY
rm -f "$results"
