#!/usr/bin/env bash
# Benchmarks of the streaming form (BENCHMARKS.md, "Large files and S3"). Each figure is
# the median of RUNS process runs (interleaved, min-max in brackets), ratios against the
# fastest raw AEAD measured in the same run. Not part of the test command: it takes about
# ten minutes, needs 12 GiB of free space in /dev/shm and /var/tmp, and should not share the
# machine with a compile.
#
#   scripts/bench-streams.sh              # RUNS=5, a 1 GiB file, a 4 GiB file, 1000 S3 objects
#   RUNS=3 MIB=256 BIG_MIB=1024 OBJECTS=100 scripts/bench-streams.sh   # quicker
#   PARTS="memory s3" scripts/bench-streams.sh                         # some parts only
#
# Parts: memory (the library vs the AEAD floors), files (the CLI vs age), rss, range,
# rewrap (file), s3. Every ratio is taken within one run: a value over the fastest of the
# three floors measured in that same run (iteration), then the median and min-max of those
# ratios over the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/tools.sh
source scripts/lib/tools.sh

RUNS=${RUNS:-5}
MIB=${MIB:-1024}
BIG_MIB=${BIG_MIB:-4096}
OBJECTS=${OBJECTS:-1000}
PARTS=${PARTS:-memory files rss range rewrap s3}
part() { [[ " $PARTS " == *" $1 "* ]]; }

ensure_apt_package age /usr/bin/age
ensure_apt_package strace /usr/bin/strace
ensure_apt_package time /usr/bin/time
# Both targets by name: `--example` alone would build the example and leave a stale CLI.
cargo build --release --locked -p envelope-cli --bin envelope >/dev/null
cargo build --release --locked -p envelope-core --example stream_bench >/dev/null
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

floors() {
    for mode in floor-aws-lc-gcm floor-rustcrypto-gcm floor-xchacha; do
        record "$1 $2 $("$BENCH" "$mode" 1 "$MIB")"
    done
}

if part memory; then
echo "== 1. library, in memory ($MIB MiB, 64 KiB segments; $RUNS runs)"
for run in $(seq "$RUNS"); do
    floors mem "$run"
    # The fastest AEAD split over two threads: what this machine's two cores give the
    # cipher alone, the ceiling of the readers' and writers' two-thread speed-up.
    record "mem2 $run $("$BENCH" floor-aws-lc-gcm 2 "$MIB")"
    # Not a floor: the same cipher sealing out of place, as the writer must (the caller's
    # data is read-only), to show what that alone costs.
    record "oop $run $("$BENCH" floor-aws-lc-gcm-out-of-place 1 "$MIB")"
    for threads in 1 2; do
        record "mem $run $("$BENCH" writer "$threads" "$MIB")"
        record "mem $run $("$BENCH" reader "$threads" "$MIB")"
        # The form without an adapter: a buffer laid out as on the wire, sealed in place.
        record "mem $run $("$BENCH" seal-run "$threads" "$MIB")"
    done
done
fi

if part files; then
echo "== 2. files: encrypt and decrypt $MIB MiB (tmpfs and disk), envelope and age"
head -c $((MIB << 20)) /dev/urandom >"$TMPFS/plain"
cp "$TMPFS/plain" "$DISK/plain"
for run in $(seq "$RUNS"); do
    floors floor "$run"
    for place in "$TMPFS" "$DISK"; do
        where=$([ "$place" = "$TMPFS" ] && echo tmpfs || echo disk)
        for threads in 1 2; do
            sync
            record "file $run $where encrypt-t$threads $(seconds "$BIN" encrypt -i "$place/plain" -o "$place/c.ev" --threads "$threads")"
            record "file $run $where decrypt-t$threads $(seconds "$BIN" decrypt -i "$place/c.ev" -o "$place/p.out" --threads "$threads")"
        done
        cmp "$place/plain" "$place/p.out"
        record "file $run $where age-encrypt $(seconds age -r "$AGE_RECIPIENT" -o "$place/c.age" "$place/plain")"
        record "file $run $where age-decrypt $(seconds age -d -i "$TMPFS/age.key" -o "$place/p.age" "$place/c.age")"
        rm -f "$place/p.out" "$place/p.age"
    done
done
fi

if part rss || part range || part rewrap; then
    head -c $((BIG_MIB << 20)) /dev/zero >"$DISK/big"
    "$BIN" encrypt -i "$DISK/big" -o "$DISK/big.ev" --threads 2
fi
if part rss; then
echo "== 3. peak RSS for a $BIG_MIB MiB file (encrypt and decrypt, 2 threads)"
for step in encrypt decrypt; do
    if [ "$step" = encrypt ]; then io=(-i "$DISK/big" -o "$DISK/big.ev"); else io=(-i "$DISK/big.ev" -o "$DISK/big.out"); fi
    rss=$(/usr/bin/time -v "$BIN" "$step" "${io[@]}" --threads 2 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/{print $2}')
    record "rss $step $rss"
done
cmp -n 1048576 "$DISK/big" "$DISK/big.out"
rm -f "$DISK/big.out"
fi
rm -f "$DISK/big"

if part range; then
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

fi

if part rewrap; then
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
fi

if part s3 && [ "$OBJECTS" -gt 0 ]; then
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
# Each run's fastest raw AEAD is that run's denominator.
floor = defaultdict(dict)      # (section, run) -> {mode: MB/s}
values = defaultdict(list)     # (section, what, threads or where) -> [(run, MB/s)]
for l in lines:
    if l[0] in ("mem", "floor") and l[2].startswith("floor"):
        floor[("mem" if l[0] == "mem" else "file", l[1])][l[2]] = float(l[4])
    elif l[0] == "mem":
        values[("mem", l[2], l[3])].append((l[1], float(l[4])))
    elif l[0] == "file":
        values[("file", l[3], l[2])].append((l[1], (mib << 20) / float(l[4]) / 1e6))
def fmt(xs, digits=0):
    return f"{statistics.median(xs):,.{digits}f} ({min(xs):,.{digits}f}-{max(xs):,.{digits}f})"
def ratios(section, runs):
    return [v / max(floor[(section, run)].values()) for run, v in runs if (section, run) in floor]
for section, title in (("mem", f"Library, in memory ({mib} MiB, 64 KiB segments)"), ("file", f"Files through the CLI ({mib} MiB)")):
    rows = sorted(k for k in values if k[0] == section)
    if not rows:
        continue
    fl = [f for (s, _), f in floor.items() if s == section]
    fastest = defaultdict(int)
    for f in fl:
        fastest[max(f, key=f.get)] += 1
    print(f"\n### {title}: MB/s and the ratio to the fastest floor of the same run")
    print("fastest floor per run: " + ", ".join(f"{m} in {n} of {len(fl)} runs" for m, n in fastest.items()))
    for mode in ("floor-aws-lc-gcm", "floor-rustcrypto-gcm", "floor-xchacha"):
        xs = [f[mode] for f in fl if mode in f]
        if xs:
            print(f"  {mode}: {fmt(xs)} MB/s")
    print("| what | threads / where | MB/s median (min-max) | / fastest floor of the run, median (min-max) |")
    print("|---|---|---|---|")
    for key in rows:
        runs = values[key]
        print(f"| {key[1]} | {key[2]} | {fmt([v for _, v in runs])} | {fmt(ratios(section, runs), 2)}x |")
    if section == "mem":
        per_run = defaultdict(dict)
        for (s, what, threads), runs in values.items():
            if s == "mem":
                for run, v in runs:
                    per_run[(what, run)][threads] = v
        oop = [float(l[4]) / max(floor[("mem", l[1])].values()) for l in lines if l[0] == "oop" and ("mem", l[1]) in floor]
        if oop:
            print(f"floor-aws-lc-gcm-out-of-place (not a floor: the writer's primitive) / the fastest floor of the run: {fmt(oop, 2)}x")
        two = {l[1]: float(l[4]) for l in lines if l[0] == "mem2"}
        one = {run: f["floor-aws-lc-gcm"] for (s, run), f in floor.items() if s == "mem" and "floor-aws-lc-gcm" in f}
        xs = [two[r] / one[r] for r in two if r in one]
        if xs:
            print(f"floor-aws-lc-gcm on 2 threads: {fmt(list(two.values()))} MB/s; 2 threads / 1 thread, per run: {fmt(xs, 2)}x (the machine's ceiling)")
        for what in ("writer", "reader", "seal-run"):
            xs = [d["2"] / d["1"] for (w, _), d in per_run.items() if w == what and "1" in d and "2" in d]
            if xs:
                print(f"2 threads / 1 thread, {what}, per run: {fmt(xs, 2)}x")
            xs = [d["2"] / two[run] for (w, run), d in per_run.items() if w == what and "2" in d and run in two]
            if xs:
                print(f"  {what} on 2 threads / the 2-thread floor of the run: {fmt(xs, 2)}x")
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
