#!/usr/bin/env bash
# The Python and Go packages over the C ABI: installs the Python package (which builds and
# bundles the native library) with its test dependencies into the project's virtualenv and
# runs pytest (vectors, SQLAlchemy on SQLite, threads, the cross-language test); runs
# `go test -race` for the Go module. The cross-language test uses the Rust and Go interop
# programs built here.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

ensure_build_deps
cargo build --release --locked -p envelope-ffi --example interop -p envelope
# The Go module finds the C library through pkg-config: install it into a project prefix.
scripts/install-c.sh "$ENVELOPE_TOOLS/prefix" >/dev/null
# Only the Go commands see PKG_CONFIG_PATH: aws-lc-sys's build script reruns when it changes,
# so exporting it to cargo would rebuild the whole AWS-LC stack in every later build.
go_pkg_config=$ENVELOPE_TOOLS/prefix/lib/pkgconfig
ensure_venv
"$ENVELOPE_VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./bindings/python
"$ENVELOPE_VENV/bin/pip" install --quiet --disable-pip-version-check "./bindings/python[test]"

mkdir -p "$ENVELOPE_TOOLS/bin"
(cd bindings/go && PKG_CONFIG_PATH=$go_pkg_config go build -o "$ENVELOPE_TOOLS/bin/envelope-interop" ./cmd/envelope-interop)
export ENVELOPE_INTEROP_RUST=$PWD/target/release/examples/interop
# The CLI verifies the key-use logs the bindings write (audit tests): scripts/test.sh's
# test build, or built here when run alone.
if [[ -z ${ENVELOPE_CLI:-} ]]; then
    cargo build -q -p envelope-cli --locked
    export ENVELOPE_CLI=$PWD/target/debug/envelope
fi
export ENVELOPE_INTEROP_GO=$ENVELOPE_TOOLS/bin/envelope-interop

echo "==> pytest (bindings/python)"
(cd bindings/python && "$ENVELOPE_VENV/bin/python" -m pytest -q -p no:cacheprovider)

echo "==> go vet, go test -race (bindings/go)"
(cd bindings/go && test -z "$(gofmt -l .)" || { gofmt -l . >&2; echo "gofmt: files above need formatting" >&2; exit 1; })
(cd bindings/go && export PKG_CONFIG_PATH=$go_pkg_config && go vet ./... && go test -race -count=1 ./...)

# The cross-language test again with the Rust side on the pure-Rust provider: RustCrypto
# ciphertexts must decrypt in Python and Go (aws-lc-rs) and theirs in RustCrypto.
echo "==> cross-language test, Rust on the RustCrypto provider"
# A debug build: it reuses the debug artifacts the test steps before it built (a release
# build of this second feature set compiled ~90 crates again, AWS-LC included).
cargo build --locked -p envelope --no-default-features --features rustcrypto,dekstore --example interop
cp target/debug/examples/interop "$ENVELOPE_TOOLS/bin/envelope-interop-rustcrypto"
ENVELOPE_INTEROP_RUST=$ENVELOPE_TOOLS/bin/envelope-interop-rustcrypto \
    bash -c 'cd bindings/python && "$0" -m pytest -q -p no:cacheprovider tests/test_cross_language.py' \
    "$ENVELOPE_VENV/bin/python"
