#!/usr/bin/env bash
# The long end-to-end rotation tests at full size, in release (the test command runs them
# smaller): a million compact rows rotate with one KMS call per DEK and no data row written
# (envelope-cli/tests/compact.rs), and three `--join` processes share a rewrap job, one
# SIGKILLed mid-range (envelope-cli/tests/cooperative.rs, 300,000 rows). Starts its own
# PostgreSQL.
#
#   scripts/test-million.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh
ensure_build_deps
source scripts/lib/postgres.sh
trap stop_postgres EXIT
start_postgres
ENVELOPE_TEST_BIG_ROWS=1000000 cargo test --release --locked -p envelope-cli \
    --test compact many_compact_rows -- --nocapture
cargo test --release --locked -p envelope-cli --test cooperative -- --nocapture
