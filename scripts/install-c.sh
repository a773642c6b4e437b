#!/usr/bin/env bash
# Installs the envelope C library: header, shared and static libraries, and pkg-config files.
#
#   scripts/install-c.sh PREFIX        # e.g. /usr/local, or $HOME/.local
#
# Installs PREFIX/include/envelope.h, PREFIX/lib/libenvelope_ffi.{so,a} and
#   PREFIX/lib/pkgconfig/envelope.pc          (links the shared library)
#   PREFIX/lib/pkgconfig/envelope-static.pc   (links the static library: no runtime .so)
# then a C program builds with `cc prog.c $(pkg-config --cflags --libs envelope)`, with
# PKG_CONFIG_PATH=PREFIX/lib/pkgconfig when PREFIX is not a system prefix. Idempotent.
# Cargo features of envelope-ffi can be passed in ENVELOPE_FFI_FEATURES (for example
# "--no-default-features --features fips,aws,vault").
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:?usage: scripts/install-c.sh PREFIX}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)

# shellcheck disable=SC2086
cargo build --release --locked -p envelope-ffi ${ENVELOPE_FFI_FEATURES:-}
version=$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "envelope-ffi"))')

install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 0644 envelope-ffi/include/envelope.h "$prefix/include/envelope.h"
install -m 0755 target/release/libenvelope_ffi.so "$prefix/lib/libenvelope_ffi.so"
install -m 0644 target/release/libenvelope_ffi.a "$prefix/lib/libenvelope_ffi.a"

common="prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include
"
cat >"$prefix/lib/pkgconfig/envelope.pc" <<PC
${common}
Name: envelope
Description: Envelope encryption SDK (AES-256-GCM data keys wrapped by a KMS), C ABI
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lenvelope_ffi
Libs.private: -lsqlite3 -lpthread -ldl -lm
PC
cat >"$prefix/lib/pkgconfig/envelope-static.pc" <<PC
${common}
Name: envelope-static
Description: Envelope encryption SDK, C ABI, linked statically
Version: $version
Cflags: -I\${includedir}
Libs: \${libdir}/libenvelope_ffi.a -lsqlite3 -lpthread -ldl -lm
PC
echo "envelope $version installed into $prefix (pkg-config: envelope, envelope-static)"
