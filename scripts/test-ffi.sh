#!/usr/bin/env bash
# The C ABI checks: the committed header matches the source (cargo test does that too), and
# a C program exercising every function, including error paths, runs twice: under valgrind
# (no memory error, no definite leak), and built with gcc's AddressSanitizer and
# UndefinedBehaviorSanitizer (any report fails the run, leaks included).
#
#   scripts/test-ffi.sh            (builds the release library first)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

ensure_build_deps
cargo build --release --locked -p envelope-ffi
mkdir -p "$ENVELOPE_TOOLS"
bin=$ENVELOPE_TOOLS/ffi_test
cc -std=c11 -Wall -Wextra -Werror -g -O1 -D_DEFAULT_SOURCE \
    -I envelope-ffi/include envelope-ffi/tests/c/ffi_test.c \
    target/release/libenvelope_ffi.a -lsqlite3 -lpthread -ldl -lm -o "$bin"

if ! command -v valgrind >/dev/null; then
    echo "valgrind is required for the C ABI test" >&2
    exit 1
fi
# Definite leaks and memory errors fail; blocks still reachable from the runtime's
# thread-locals at exit are not leaks.
valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --track-origins=yes "$bin"

# The same program under ASan + UBSan (gcc's runtimes: libasan, libubsan).
asan_bin=$ENVELOPE_TOOLS/ffi_test_asan
cc -std=c11 -Wall -Wextra -Werror -g -O1 -D_DEFAULT_SOURCE \
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
    -I envelope-ffi/include envelope-ffi/tests/c/ffi_test.c \
    target/release/libenvelope_ffi.a -lsqlite3 -lpthread -ldl -lm -o "$asan_bin"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$asan_bin"
