#!/usr/bin/env python3
"""Cooperative rewrap throughput: one job over N rows of a 64-byte bytea column on the local
keyring, shared by 1, 2 and 4 `envelope rewrap --join` processes against one PostgreSQL.

    scripts/bench-cooperative.py [--rows 1000000] [--runs 3] [--processes 1,2,4]

Starts its own throwaway PostgreSQL (scripts/lib/postgres.sh: fsync and synchronous_commit
off, as in the tests), builds the release binary, and per run and process count: fills a
fresh table under key version 1 (100 DEKs per million rows), rotates, starts the processes
together on one job (16 ranges, batch 1,000), and times the wall clock until the last one
exits. Checks that every summary's total is the whole table. Prints rows/s medians with
min-max over the runs, and the speed-up over one process in the same run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, cwd=ROOT, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--processes", default="1,2,4")
    ap.add_argument("--batch-size", type=int, default=1000)
    args = ap.parse_args()
    counts = [int(n) for n in args.processes.split(",")]

    sh(["cargo", "build", "--release", "--locked", "-p", "envelope-cli",
        "--bin", "envelope", "--example", "job_bench"])
    envelope_bin = os.path.join(ROOT, "target/release/envelope")
    bench_bin = os.path.join(ROOT, "target/release/examples/job_bench")

    start = subprocess.run(
        ["bash", "-c", "source scripts/lib/postgres.sh && start_postgres >&2 && "
         "echo $ENVELOPE_TEST_PG_URL && echo $POSTGRES_DIR && echo $POSTGRES_BIN"],
        check=True, text=True, capture_output=True, cwd=ROOT)
    url, pg_dir, pg_bin = start.stdout.split()
    seconds = {n: [] for n in counts}
    try:
        for run in range(args.runs):
            for n in counts:
                with tempfile.TemporaryDirectory() as tmp:
                    key = f"local://{tmp}/keyring.json"
                    sh([envelope_bin, "keys", "create", key])
                    sh([bench_bin, "fill", url, "bench", str(args.rows), key])
                    sh([envelope_bin, "keys", "rotate", key])
                    job = f"bench-{run}-{n}"
                    cmd = [envelope_bin, "rewrap", "--key", key, "--db", url, "--table", "bench",
                           "--column", "v", "--join", job, "--parts", "16",
                           "--batch-size", str(args.batch_size), "--json"]
                    t = time.perf_counter()
                    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True, cwd=ROOT) for _ in range(n)]
                    outs = [p.communicate() for p in procs]
                    secs = time.perf_counter() - t
                    for p, (out, err) in zip(procs, outs):
                        assert p.returncode == 0, err
                        total = json.loads(out)[0]["total"]
                        assert total["changed"] == args.rows, total
                    seconds[n].append(secs)
                    print(f"run {run + 1}: {n} process(es): {args.rows / secs:,.0f} rows/s "
                          f"({secs:.1f} s)", flush=True)
    finally:
        subprocess.run(["bash", "-c", f"source scripts/lib/postgres.sh && POSTGRES_DIR={pg_dir} "
                        f"POSTGRES_BIN={pg_bin} stop_postgres"], cwd=ROOT)

    print(f"\n{args.rows:,} rows, batch {args.batch_size}, 16 ranges, {args.runs} runs "
          f"(medians, min-max), {os.cpu_count()} CPUs:")
    for n in counts:
        rates = [args.rows / s for s in seconds[n]]
        line = (f"{n} process(es): {statistics.median(rates):>10,.0f} rows/s "
                f"(min {min(rates):,.0f}, max {max(rates):,.0f})")
        if n != counts[0]:
            ups = [b / s for b, s in zip(seconds[counts[0]], seconds[n])]
            line += (f"; {statistics.median(ups):.2f}x {counts[0]} process(es) "
                     f"(min {min(ups):.2f}x, max {max(ups):.2f}x)")
        print(line)


if __name__ == "__main__":
    sys.exit(main())
