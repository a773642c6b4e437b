#!/usr/bin/env bash
# Builds and tests envelope with one crypto provider alone (see envelope_core::crypto):
#
#   scripts/test-providers.sh rustcrypto   # pure Rust: clippy, every envelope-core and facade
#                                          # test, and no aws-lc / C crypto in the library's tree
#   scripts/test-providers.sh fips         # the AWS-LC FIPS 140-3 module (needs cmake, Go, Perl):
#                                          # clippy, every envelope-core test (vectors included),
#                                          # and fips_mode() reporting the module active
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
rustcrypto)
    args=(-p envelope-core -p envelope --no-default-features --features rustcrypto --locked)
    cargo clippy "${args[@]}" --lib --tests --examples -- -D warnings
    cargo test "${args[@]}"
    tree=$(cargo tree "${args[@]}" --edges normal,build --prefix none)
    if printf '%s\n' "$tree" | grep -E '^(aws-lc|ring|openssl)' ; then
        echo "a rustcrypto build must hold no C crypto library (above)" >&2
        exit 1
    fi
    echo "rustcrypto: $(printf '%s\n' "$tree" | sort -u | wc -l) crates, no aws-lc, ring or openssl"
    ;;
fips)
    # bindgen (which builds aws-lc-fips-sys) accepts any syn >= 2 but only compiles with
    # syn 2 (and prettyplease 0.2): a lockfile update that lets syn 3 in breaks this build.
    if ! awk '/^name = "bindgen"/{b=1} b&&/^\[\[package\]\]/{exit} b' Cargo.lock | grep -q '"syn 2\.'; then
        echo "Cargo.lock: bindgen must resolve to syn 2 (edit its dependency back to \"syn 2.x\")" >&2
        exit 1
    fi
    args=(-p envelope-core --no-default-features --features fips --locked)
    cargo clippy "${args[@]}" --lib --tests -- -D warnings
    # The crypto tests assert fips_mode() == cfg!(feature = "fips").
    cargo test "${args[@]}"
    ;;
*)
    echo "usage: $0 rustcrypto|fips" >&2
    exit 2
    ;;
esac
