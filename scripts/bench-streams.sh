#!/usr/bin/env bash
# Benchmarks of the streaming form (BENCHMARKS.md, "Large files and S3"). Each figure is
# the median of RUNS process runs (interleaved, min-max in brackets), ratios against the
# fastest raw AEAD measured in the same run. Not part of the test command: it takes about
# ten minutes, needs 12 GiB of free space in /dev/shm and /var/tmp, and should not share the
# machine with a compile.
#
#   scripts/bench-streams.sh              # RUNS=5, a 1 GiB file, a 4 GiB file, 1000 S3 objects
#   RUNS=3 MIB=256 BIG_MIB=1024 OBJECTS=100 scripts/bench-streams.sh   # quicker
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/tools.sh
source scripts/lib/tools.sh

RUNS=${RUNS:-5}
MIB=${MIB:-1024}
BIG_MIB=${BIG_MIB:-4096}
OBJECTS=${OBJECTS:-1000}

ensure_apt_package age /usr/bin/age
ensure_apt_package strace /usr/bin/strace
ensure_apt_package time /usr/bin/time
cargo build --release --locked -p envelope-cli -p envelope-core --example stream_bench >/dev/null
BIN=$PWD/target/release/envelope
BENCH=$PWD/target/release/examples/stream_bench

TMPFS=/dev/shm/envelope-bench
DISK=/var/tmp/envelope-bench
rm -rf "$TMPFS" "$DISK"
mkdir -p "$TMPFS" "$DISK"
trap 'rm -rf "$TMPFS" "$DISK"' EXIT
export ENVELOPE_KEY="local://$TMPFS/keyring.json#bench"
"$BIN" keys create "$ENVELOPE_KEY" >/dev/null
age-keygen -o "$TMPFS/age.key" 2>/dev/null
AGE_RECIPIENT=$(age-keygen -y "$TMPFS/age.key")

RESULTS=$TMPFS/results.txt
: >"$RESULTS"
record() { echo "$*" >>"$RESULTS"; }

# Seconds taken by a command (its output discarded).
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}

echo "== 1. library, in memory ($MIB MiB, 64 KiB segments; $RUNS runs)"
for _ in $(seq "$RUNS"); do
    for mode in floor-aws-lc-gcm floor-rustcrypto-gcm floor-xchacha; do
        record "mem $("$BENCH" "$mode" 1 "$MIB")"
    done
    for threads in 1 2; do
        record "mem $("$BENCH" writer "$threads" "$MIB")"
        record "mem $("$BENCH" reader "$threads" "$MIB")"
    done
done

echo "== 2. files: encrypt and decrypt $MIB MiB (tmpfs and disk), envelope and age"
head -c $((MIB << 20)) /dev/urandom >"$TMPFS/plain"
cp "$TMPFS/plain" "$DISK/plain"
for _ in $(seq "$RUNS"); do
    for place in "$TMPFS" "$DISK"; do
        where=$([ "$place" = "$TMPFS" ] && echo tmpfs || echo disk)
        for threads in 1 2; do
            sync
            record "file $where encrypt-t$threads $(seconds "$BIN" encrypt -i "$place/plain" -o "$place/c.ev" --threads "$threads")"
            record "file $where decrypt-t$threads $(seconds "$BIN" decrypt -i "$place/c.ev" -o "$place/p.out" --threads "$threads")"
        done
        cmp "$place/plain" "$place/p.out"
        record "file $where age-encrypt $(seconds age -r "$AGE_RECIPIENT" -o "$place/c.age" "$place/plain")"
        record "file $where age-decrypt $(seconds age -d -i "$TMPFS/age.key" -o "$place/p.age" "$place/c.age")"
        rm -f "$place/p.out" "$place/p.age"
    done
done

echo "== 3. peak RSS for a $BIG_MIB MiB file (encrypt and decrypt, 2 threads)"
head -c $((BIG_MIB << 20)) /dev/zero >"$DISK/big"
for step in encrypt decrypt; do
    if [ "$step" = encrypt ]; then io=(-i "$DISK/big" -o "$DISK/big.ev"); else io=(-i "$DISK/big.ev" -o "$DISK/big.out"); fi
    rss=$(/usr/bin/time -v "$BIN" "$step" "${io[@]}" --threads 2 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/{print $2}')
    record "rss $step $rss"
done
cmp -n 1048576 "$DISK/big" "$DISK/big.out"
rm -f "$DISK/big" "$DISK/big.out"

echo "== 4. 4 KiB at random offsets of the $BIG_MIB MiB stream: bytes read, latency"
for i in $(seq 20); do
    offset=$(python3 -c "import random; print(random.randrange(0, ($BIG_MIB << 20) - 4096))")
    trace=$TMPFS/range.trace
    start=$(date +%s.%N)
    strace -f -qq -e trace=openat,close,read,pread64 -o "$trace" "$BIN" decrypt -i "$DISK/big.ev" --range "$offset:$((offset + 4096))" >/dev/null
    end=$(date +%s.%N)
    bytes=$(python3 - "$trace" "$DISK/big.ev" <<'EOF'
import re, sys
open_fds, total = {}, 0
for line in open(sys.argv[1]):
    m = re.search(r'openat\(AT_FDCWD, "([^"]+)".*\) = (\d+)', line)
    if m:
        open_fds[m.group(2)] = m.group(1)
    m = re.search(r'close\((\d+)\)', line)
    if m:
        open_fds.pop(m.group(1), None)
    m = re.search(r'(?:read|pread64)\((\d+),.*\) = (\d+)', line)
    if m and open_fds.get(m.group(1)) == sys.argv[2]:
        total += int(m.group(2))
print(total)
EOF
)
    record "range $bytes $(python3 -c "print($end - $start)")"
done

echo "== 5. rewrap of the $BIG_MIB MiB stream: bytes written"
"$BIN" keys rotate "$ENVELOPE_KEY" >/dev/null
mkdir -p "$DISK/rewrap" && mv "$DISK/big.ev" "$DISK/rewrap/"
trace=$TMPFS/rewrap.trace
strace -f -qq -e trace=write,pwrite64,pwritev,writev -o "$trace" "$BIN" rewrap --key "$ENVELOPE_KEY" --dir "$DISK/rewrap" >/dev/null
written=$(python3 - "$trace" <<'EOF'
import re, sys
total = 0
for line in open(sys.argv[1]):
    m = re.search(r'^\d+\s+p?write(?:64|v)?\((\d+),.*\) = (\d+)', line)
    if m and int(m.group(1)) > 2:   # not stdout/stderr
        total += int(m.group(2))
print(total)
EOF
)
record "rewrap-file $written"

if [ "$OBJECTS" -gt 0 ]; then
    echo "== 6. rewrap of $OBJECTS S3 objects on moto: bytes transferred"
    # shellcheck source=lib/moto.sh
    source scripts/lib/moto.sh
    start_moto >/dev/null
    trap 'stop_moto; rm -rf "$TMPFS" "$DISK"' EXIT
    export ENVELOPE_S3_ENDPOINT=$ENVELOPE_TEST_AWS_ENDPOINT AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
    "$ENVELOPE_VENV/bin/python" - <<EOF
import urllib.request
urllib.request.urlopen(urllib.request.Request("$ENVELOPE_S3_ENDPOINT/bench", method="PUT"))
EOF
    head -c 200000 /dev/urandom >"$TMPFS/object"
    for i in $(seq -w 1 "$OBJECTS"); do
        "$BIN" encrypt --form stream -i "$TMPFS/object" -o "s3://bench/objects/$i.ev"
    done
    "$BIN" keys rotate "$ENVELOPE_KEY" >/dev/null
    start=$(date +%s.%N)
    line=$("$BIN" rewrap --key "$ENVELOPE_KEY" --s3 s3://bench/objects/ | grep '^s3 traffic')
    end=$(date +%s.%N)
    record "rewrap-s3 $OBJECTS $(python3 -c "print($end - $start)") $line"
    stop_moto
fi

python3 - "$RESULTS" "$MIB" "$BIG_MIB" <<'EOF'
import statistics, sys
from collections import defaultdict
lines = [l.split() for l in open(sys.argv[1])]
mib, big = int(sys.argv[2]), int(sys.argv[3])
mem = defaultdict(list)
files = defaultdict(list)
for l in lines:
    if l[0] == "mem":
        mem[(l[1], l[2])].append(float(l[3]))
    elif l[0] == "file":
        files[(l[1], l[2])].append((mib << 20) / float(l[3]) / 1e6)
def fmt(xs):
    return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"
floors = {k[0]: statistics.median(v) for k, v in mem.items() if k[0].startswith("floor")}
fastest = max(floors, key=floors.get)
print(f"\n### Library, in memory ({mib} MiB, 64 KiB segments), MB/s; floor: {fastest} {floors[fastest]:,.0f}")
print("| what | threads | MB/s median (min-max) | vs fastest floor |")
print("|---|---|---|---|")
for (mode, threads), xs in sorted(mem.items()):
    print(f"| {mode} | {threads} | {fmt(xs)} | {statistics.median(xs) / floors[fastest]:.2f}x |")
one = {m: statistics.median(mem[(m, '1')]) for m in ("writer", "reader")}
two = {m: statistics.median(mem[(m, '2')]) for m in ("writer", "reader")}
print(f"\n2 threads vs 1: writer {two['writer'] / one['writer']:.2f}x, reader {two['reader'] / one['reader']:.2f}x")
print(f"\n### Files ({mib} MiB), MB/s median (min-max)")
print("| where | what | MB/s | vs fastest floor |")
print("|---|---|---|---|")
for (where, what), xs in sorted(files.items()):
    print(f"| {where} | {what} | {fmt(xs)} | {statistics.median(xs) / floors[fastest]:.2f}x |")
for l in lines:
    if l[0] == "rss":
        print(f"\npeak RSS, {l[1]} of {big} MiB: {int(l[2]) / 1024:.1f} MiB")
ranges = [(int(l[1]), float(l[2])) for l in lines if l[0] == "range"]
if ranges:
    print(f"\n4 KiB at random offsets of {big} MiB ({len(ranges)} reads): bytes read from the file max {max(b for b, _ in ranges):,} "
          f"(median {statistics.median(b for b, _ in ranges):,.0f}); process latency median {statistics.median(t for _, t in ranges) * 1000:.1f} ms "
          f"({min(t for _, t in ranges) * 1000:.1f}-{max(t for _, t in ranges) * 1000:.1f})")
for l in lines:
    if l[0] == "rewrap-file":
        print(f"\nrewrap of the {big} MiB stream: {int(l[1]):,} bytes written")
    if l[0] == "rewrap-s3":
        print(f"\nrewrap of {l[1]} S3 objects on moto: {float(l[2]):.1f} s; {' '.join(l[3:])}")
EOF
