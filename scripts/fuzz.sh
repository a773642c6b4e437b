#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer + AddressSanitizer) on the fixed Rust 1.95 toolchain.
#
#   scripts/fuzz.sh list                  # the targets
#   scripts/fuzz.sh run TARGET [SECONDS]  # one target (default 600 s), corpus kept in fuzz/corpus/
#   scripts/fuzz.sh all [SECONDS]         # every target in turn (default 600 s each)
#   scripts/fuzz.sh smoke [SECONDS]       # every target briefly (default 30 s): what CI runs
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, -Cllvm-args for coverage) to
# rustc; RUSTC_BOOTSTRAP=1 lets the stable 1.95 compiler accept them, for this build only.
# cargo-fuzz itself is installed into .tools/cargo on first use. Seeds come from
# testvectors/v1.json and compact.json; a crash leaves its input in fuzz/artifacts/TARGET/ and fails the run.
# Each run ends with a line `TARGET: N executions in S s, ...` taken from libFuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/tools.sh

TARGETS=(parse text decrypt rewrap keyring ffi compact)
CARGO_FUZZ_VERSION=0.13.2

ensure_cargo_fuzz() {
    local bin=$ENVELOPE_TOOLS/cargo/bin/cargo-fuzz
    if [ ! -x "$bin" ] || ! "$bin" --version | grep -q "$CARGO_FUZZ_VERSION"; then
        echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $ENVELOPE_TOOLS/cargo" >&2
        cargo install --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$ENVELOPE_TOOLS/cargo"
    fi
    export PATH=$ENVELOPE_TOOLS/cargo/bin:$PATH
}

seed() {
    python3 - <<'PY'
import base64, json, pathlib
root = pathlib.Path("fuzz")
doc = json.loads(pathlib.Path("testvectors/v1.json").read_text())
def put(target, name, data):
    d = root / "seeds" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)
for i, v in enumerate(doc["vectors"]):
    ct, aad = bytes.fromhex(v["ciphertext"]), bytes.fromhex(v["aad"])
    if len(ct) > 4096:
        continue  # the 100 KiB vectors only slow the fuzzer down
    put("parse", f"v{i}", ct)
    put("decrypt", f"v{i}", bytes([len(aad)]) + aad + ct)
    put("rewrap", f"v{i}", bytes([len(aad)]) + aad + ct)
    put("ffi", f"d{i}", bytes([0, 64, len(aad)]) + aad + ct)
    put("ffi", f"i{i}", bytes([2, 0, 0]) + ct)
    put("text", f"v{i}", ("ev1:" + base64.urlsafe_b64encode(ct).decode().rstrip("=")).encode())
for i, t in enumerate(doc["text_vectors"]):
    put("text", f"t{i}", t["text"].encode())
put("ffi", "encrypt", bytes([1, 64, 3]) + b"aadhello")
put("ffi", "batch", bytes([3, 0, 0, 2, 0, 5, 9]) + b"junkjunk")
put("ffi", "error", bytes([5, 8, 0]))
ring = doc["keyring"]
versions = []
for version, entry in ring["versions"].items():
    e = {"version": int(version), "state": entry["state"], "created_at": 0}
    if "kek" in entry:
        e["material"] = base64.b64encode(bytes.fromhex(entry["kek"])).decode()
    versions.append(e)
keyring = {"envelope_keyring": 1, "keys": {"default": {"primary_version": ring["primary_version"], "versions": versions}}}
put("keyring", "valid", json.dumps(keyring).encode())
compact = json.loads(pathlib.Path("testvectors/compact.json").read_text())
for i, v in enumerate(compact["vectors"]):
    ct, aad = bytes.fromhex(v["ciphertext"]), bytes.fromhex(v["aad"])
    put("compact", f"b{i}", bytes([0]) + ct)
    put("compact", f"d{i}", bytes([1, len(aad)]) + aad + ct)
    if "ciphertext_text" in v:
        put("text", f"c{i}", v["ciphertext_text"].encode())
for i, t in enumerate(compact["text_vectors"]):
    put("text", f"ct{i}", t["text"].encode())
put("compact", "rows", bytes([2]) + json.dumps(compact["dek_store"]).encode())
# The streaming form's vectors share the v1 keyring: valid streams for parse and decrypt.
streams = json.loads(pathlib.Path("testvectors/stream.json").read_text())
for i, v in enumerate(streams["vectors"]):
    s, aad = bytes.fromhex(v["stream"]), bytes.fromhex(v["aad"])
    if len(s) > 20000:
        continue
    put("parse", f"s{i}", s)
    put("decrypt", f"s{i}", bytes([len(aad)]) + aad + s)
put("keyring", "empty", b'{"envelope_keyring": 1, "keys": {}}')
PY
}

# run TARGET SECONDS: fuzzes one target, prints its summary line, fails on a finding.
run() {
    local target=$1 seconds=$2 log
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log=$(mktemp)
    local status=0
    RUSTC_BOOTSTRAP=1 cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" \
        "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1 || status=$?
    local runs
    runs=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
    local cov
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 || true)
    if [ "$status" -ne 0 ]; then
        tail -60 "$log" >&2
        echo "$target: FAILED (exit $status); input saved in fuzz/artifacts/$target/" >&2
        rm -f "$log"
        return "$status"
    fi
    echo "$target: ${runs:-no summary} ($cov), no finding"
    rm -f "$log"
}

# Optimized, with debug assertions (the core's debug_assert! checks run), under ASan.
FUZZ_FLAGS=(--release --debug-assertions --sanitizer address)

build() {
    RUSTC_BOOTSTRAP=1 cargo fuzz build "${FUZZ_FLAGS[@]}"
}

case "${1:-}" in
list)
    printf '%s\n' "${TARGETS[@]}"
    ;;
run)
    ensure_cargo_fuzz
    seed
    build
    run "${2:?target}" "${3:-600}"
    ;;
all | smoke)
    ensure_cargo_fuzz
    seed
    build
    default=600
    [ "$1" = smoke ] && default=30
    for t in "${TARGETS[@]}"; do
        run "$t" "${2:-$default}"
    done
    ;;
*)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac
