#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (the backend tests against real
# servers this script installs and starts), warning-free docs, and the check that
# envelope-core pulls in no cloud SDK. Exits non-zero on the first failure.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Real servers for the backend tests, stopped whatever happens.
source scripts/lib/openbao.sh
source scripts/lib/moto.sh
trap 'stop_openbao; stop_moto' EXIT
step "start OpenBao (Vault Transit)"
start_openbao
step "start moto (AWS KMS)"
start_moto

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo test"
cargo test --workspace --all-features --locked

step "C ABI: header drift (in cargo test), C program under valgrind"
scripts/test-ffi.sh

step "Python and Go packages: pytest, go test -race, cross-language test"
scripts/test-bindings.sh

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --locked

step "envelope-core depends on no cloud SDK"
scripts/check-core-deps.sh

printf '\nAll checks passed.\n'
