#!/usr/bin/env bash
# Installs the project as a user would, outside this repository, and checks that it works:
#
# 1. C: scripts/install-c.sh into a temporary prefix; a C program in a temporary directory
#    builds with `pkg-config --cflags --libs envelope` (shared) and `envelope-static`, and
#    runs a round trip.
# 2. Go: a Go program in a temporary directory whose go.mod requires the module (replaced by
#    the local path; no network: GOPROXY=off, GOFLAGS=-mod=mod) builds with -race against
#    that prefix through pkg-config, and runs a round trip.
# 3. Python: builds the wheel (scripts/build-wheel.sh), installs it into a fresh virtualenv,
#    and runs the pytest suite against that install with a PATH holding no cargo, rustc or
#    C compiler.
#
#   scripts/test-packaging.sh      (scripts/test.sh runs it; the test servers' variables
#                                   are passed through to pytest when set)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version=$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "envelope"))')

echo "==> C: install into a prefix, build a program outside the repository with pkg-config"
ensure_build_deps
prefix=$work/prefix
scripts/install-c.sh "$prefix"
# PKG_CONFIG_PATH only inside the C and Go subshells: aws-lc-sys's build script reruns when
# it changes, so the wheel's cargo build below must not see it.
mkdir "$work/c"
cp examples/out-of-tree/roundtrip.c "$work/c/"
(
    cd "$work/c"
    export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Werror roundtrip.c $(pkg-config --cflags --libs envelope) -o roundtrip-shared
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Werror roundtrip.c $(pkg-config --cflags --libs envelope-static) -o roundtrip-static
    LD_LIBRARY_PATH=$prefix/lib ./roundtrip-shared "$work/c/k1.json" "$version"
    # ldd's output is read whole first: `ldd | grep -q` under pipefail can lose to SIGPIPE.
    linked=$(ldd ./roundtrip-static)
    if grep -q libenvelope_ffi <<<"$linked"; then
        echo "the static build links the shared library" >&2
        exit 1
    fi
    ./roundtrip-static "$work/c/k2.json" "$version"
)

echo "==> Go: a module outside the repository, cgo through pkg-config, -race"
mkdir "$work/go"
cp examples/out-of-tree/main.go "$work/go/"
cat >"$work/go/go.mod" <<MOD
module example.com/outside

go 1.22

require github.com/envelope-sdk/envelope/bindings/go v$version

replace github.com/envelope-sdk/envelope/bindings/go => $root/bindings/go
MOD
cp bindings/go/go.sum "$work/go/go.sum"
(
    cd "$work/go"
    export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
    # A build cache of its own: Go caches a cgo package with the linker flags pkg-config gave
    # when it was built, not with the library's content, so a shared cache would link against
    # an earlier (possibly deleted) prefix and test nothing about this install.
    GOCACHE=$work/gocache GOFLAGS=-mod=mod GOPROXY=off go build -race -o outside .
    ./outside
)

echo "==> Python: the wheel in a fresh virtualenv, with no Rust toolchain or compiler on PATH"
wheel=$(scripts/build-wheel.sh "$work/wheels" | tail -1)
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel" "pytest>=7" "cryptography>=41" "SQLAlchemy>=2.0" "pyarrow>=15"
mkdir "$work/bin"
for tool in python3; do ln -s "$(command -v "$tool")" "$work/bin/$tool"; done
clean_path=$work/venv/bin:$work/bin
for tool in cargo rustc cc gcc; do
    if PATH=$clean_path command -v "$tool" >/dev/null; then
        echo "$tool is on the clean PATH" >&2
        exit 1
    fi
done
# The cross-language test's programs (scripts/test-bindings.sh builds them).
export ENVELOPE_INTEROP_RUST=${ENVELOPE_INTEROP_RUST:-$root/target/release/examples/interop}
export ENVELOPE_INTEROP_GO=${ENVELOPE_INTEROP_GO:-$ENVELOPE_TOOLS/bin/envelope-interop}
# The CLI that verifies the key-use logs of the audit tests.
export ENVELOPE_CLI=${ENVELOPE_CLI:-$root/target/debug/envelope}
passthrough=()
for name in $(env | grep -oE '^ENVELOPE_(TEST_[A-Z_]+|INTEROP_[A-Z_]+|CLI)' || true); do
    passthrough+=("$name=${!name}")
done
(
    cd bindings/python
    env -i HOME="$HOME" PATH="$clean_path" CI="${CI:-}" "${passthrough[@]}" \
        "$work/venv/bin/python" -c "import envelope_sdk, sys; p = envelope_sdk.__file__; print('envelope_sdk', envelope_sdk.__version__, 'from', p); sys.exit(0 if p.startswith('$work/venv/') else 'not the installed wheel')"
    env -i HOME="$HOME" PATH="$clean_path" CI="${CI:-}" "${passthrough[@]}" \
        "$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests
)
