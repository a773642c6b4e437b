#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (the backend tests and the CLI's
# rotation jobs against real servers this script installs and starts: OpenBao, moto,
# MiniStack, drongo, PostgreSQL) on each crypto provider, the C ABI under valgrind
# and ASan/UBSan, a short pass of every fuzz target, the Python, Go and Java packages, Spark
# and pyarrow with envelope as Parquet's KMS, the evidence pack in headless Chromium,
# warning-free docs, and the check that envelope-core pulls in no cloud SDK. Exits non-zero
# on the first failure.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Every step's wall time, printed as a table when the run ends (passed or failed).
STEP_NAMES=()
STEP_SECONDS=()
STEP_FREE=()
CURRENT_STEP=""
STEP_STARTED=$SECONDS
RUN_STARTED=$SECONDS
# Free space on the build's file system after each step, in GiB: a CI machine's disk is
# not ours to size, and a full one fails a build in whatever step it fills up in.
free_disk() {
    df -Pk . 2>/dev/null | awk 'NR == 2 { printf "%.1f", $4 / 1048576 }'
}
end_step() {
    if [[ -n $CURRENT_STEP ]]; then
        STEP_NAMES+=("$CURRENT_STEP")
        STEP_SECONDS+=($((SECONDS - STEP_STARTED)))
        STEP_FREE+=("$(free_disk)")
    fi
    CURRENT_STEP=""
}
step() {
    end_step
    CURRENT_STEP="$*"
    STEP_STARTED=$SECONDS
    printf '\n==> %s\n' "$*"
}
print_timings() {
    local status=$1 failed=$CURRENT_STEP i
    end_step
    printf '\n%-6s %5s %8s  %s\n' "time" "s" "free GiB" "step"
    for i in "${!STEP_NAMES[@]}"; do
        printf '%3d:%02d %5d %8s  %s%s\n' $((STEP_SECONDS[i] / 60)) $((STEP_SECONDS[i] % 60)) \
            "${STEP_SECONDS[i]}" "${STEP_FREE[i]}" "${STEP_NAMES[i]}" \
            "$([[ $status != 0 && ${STEP_NAMES[i]} == "$failed" ]] && echo '   <- FAILED')"
    done
    local total=$((SECONDS - RUN_STARTED))
    printf '%3d:%02d %5d %8s  total\n' $((total / 60)) $((total % 60)) "$total" "$(free_disk)"
    printf 'build directories: %s\n' "$(du -sh target fuzz/target 2>/dev/null | awk '{ printf "%s %s  ", $2, $1 }')"
}
trap 'print_timings $?' EXIT
source scripts/lib/tools.sh
# A CI run builds once from nothing: incremental compilation would only add gigabytes of
# session caches to the target directory.
if [[ ${CI:-} == true ]]; then
    export CARGO_INCREMENTAL=0
fi

step "build dependencies (libsqlite3-dev, pkg-config)"
ensure_build_deps

# Real servers for the backend tests, stopped whatever happens.
source scripts/lib/openbao.sh
source scripts/lib/moto.sh
source scripts/lib/ministack.sh
source scripts/lib/drongo.sh
source scripts/lib/postgres.sh
trap 'status=$?; stop_openbao; stop_moto; stop_ministack; stop_drongo; stop_postgres; print_timings "$status"' EXIT
step "start OpenBao (Vault Transit)"
start_openbao
step "start moto (AWS KMS)"
start_moto
step "start MiniStack (AWS KMS with key material ids and key states)"
start_ministack
step "start drongo (Google Cloud KMS)"
start_drongo
step "start PostgreSQL (the rotation jobs' database)"
start_postgres

step "cargo fmt --check"
cargo fmt --all --check

# The default crypto provider (aws-lc-rs) with the pure-Rust one compiled in beside it, so
# that every test vector runs on both in one pass; every backend.
FEATURES=envelope/aws,envelope/gcp,envelope/vault,envelope-core/rustcrypto

step "cargo clippy (all targets, default provider + rustcrypto + every backend, -D warnings)"
cargo clippy --workspace --all-targets --features "$FEATURES" --locked -- -D warnings

step "cargo test (aws-lc-rs and RustCrypto providers, every backend)"
cargo test --workspace --features "$FEATURES" --locked
# The CLI binary that build made: the later steps verify key-use logs and make evidence
# packs with it (built alone, with other features, it would compile the workspace again).
export ENVELOPE_CLI=$PWD/target/debug/envelope

step "RustCrypto-only build: no aws-lc in the library, every core and facade test"
scripts/test-providers.sh rustcrypto

step "FIPS build: the AWS-LC FIPS 140-3 module, every core test and vector"
scripts/test-providers.sh fips

step "C ABI: header drift (in cargo test), C program under valgrind and under ASan + UBSan"
scripts/test-ffi.sh

step "Python and Go packages: pytest, go test -race, cross-language test"
scripts/test-bindings.sh

step "Java package: JUnit over the C ABI and the Parquet KMS client (Maven Surefire)"
scripts/test-java.sh

step "Spark local mode: Spark and pyarrow with envelope as Parquet's KMS, the CLI rotating Spark's files, PySpark column jobs"
scripts/test-spark.sh

step "evidence pack: the page in headless Chromium, OSCAL validated by compliance-trestle, the signed manifest"
scripts/test-evidence.sh

step "install like a user: C with pkg-config, Go from outside the repository, the Python wheel without Rust"
scripts/test-packaging.sh

step "fuzz smoke: every fuzz target for 30 s under AddressSanitizer"
scripts/fuzz.sh smoke 30

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --features "$FEATURES" --no-deps --locked

step "envelope-core depends on no cloud SDK"
scripts/check-core-deps.sh

end_step
printf '\nAll checks passed.\n'
