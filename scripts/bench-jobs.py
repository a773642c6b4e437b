#!/usr/bin/env python3
"""Rotation-job throughput: rewrap and re-encrypt of N rows of a 64-byte bytea column on
the local keyring, batch size 1,000, next to PostgreSQL's own cost (the same reads and
conditional UPDATEs with unchanged values, same batching) measured in the same run; and the
same rows in the compact form, whose rotation (`rewrap --dek-store`) rewraps the DEK store
and writes no row.

    scripts/bench-jobs.py [--rows 1000000] [--runs 3]

Starts its own throwaway PostgreSQL (scripts/lib/postgres.sh, the same settings as the
tests: fsync and synchronous_commit off), builds the release binary, and per run: fills a
fresh table under key version 1 (and a compact twin with a PostgreSQL DEK store, 100 DEKs
per million rows in both), rotates, then times (1) the floor, (2) `envelope rewrap`,
(3) `envelope reencrypt --all`, (4) `envelope rewrap --dek-store` of the twin (checked to
leave every row's contents and row version unchanged). Prints medians with min-max over the
runs, the ratios of each run's job to the floor of the same run, and both tables' sizes.
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


def timed(cmd):
    t = time.perf_counter()
    out = sh(cmd)
    return time.perf_counter() - t, out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1000)
    args = ap.parse_args()

    sh(["cargo", "build", "--release", "--locked", "-p", "envelope-cli",
        "--bin", "envelope", "--example", "job_bench"])
    envelope_bin = os.path.join(ROOT, "target/release/envelope")
    bench_bin = os.path.join(ROOT, "target/release/examples/job_bench")

    start = subprocess.run(
        ["bash", "-c", "source scripts/lib/postgres.sh && start_postgres >&2 && "
         "echo $ENVELOPE_TEST_PG_URL && echo $POSTGRES_DIR && echo $POSTGRES_BIN"],
        check=True, text=True, capture_output=True, cwd=ROOT)
    url, pg_dir, pg_bin = start.stdout.split()
    results = {"floor": [], "rewrap": [], "reencrypt": [], "compact": []}
    sizes = {}
    kms_calls = {}

    def psql(sql):
        return sh([os.path.join(pg_bin, "psql"), url, "-Atqc", sql]).stdout.strip()

    def twin_state():
        return psql("SELECT md5(string_agg(id || ':' || encode(v, 'hex') || ':' || xmin::text, ',' "
                    "ORDER BY id)) FROM bench_compact")
    try:
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                key = f"local://{tmp}/keyring.json"
                sh([envelope_bin, "keys", "create", key])
                sh([bench_bin, "fill", url, "bench", str(args.rows), key])
                dek_store = f"{url}?table=bench_deks_{run}"
                sh([bench_bin, "fill", url, "bench_compact", str(args.rows), key, dek_store])
                sizes["v1"] = int(psql("SELECT pg_total_relation_size('bench')"))
                sizes["compact"] = int(psql("SELECT pg_total_relation_size('bench_compact')"))
                sh([envelope_bin, "keys", "rotate", key])
                _, floor_out = timed([bench_bin, "floor", url, "bench", str(args.batch_size)])
                floor = json.loads(floor_out)["seconds"]
                store = ["--db", url, "--table", "bench", "--column", "v",
                         "--batch-size", str(args.batch_size), "--json"]
                rewrap_s, rewrap_out = timed([envelope_bin, "rewrap", "--key", key] + store)
                summary = json.loads(rewrap_out)[0]
                assert summary["total"]["changed"] == args.rows, summary
                reenc_s, reenc_out = timed([envelope_bin, "reencrypt", "--key", key, "--all",
                                            "--aad", "envelope:{table}.{column}"] + store)
                assert json.loads(reenc_out)[0]["total"]["changed"] == args.rows
                before = twin_state()
                compact_s, compact_out = timed([envelope_bin, "rewrap", "--key", key,
                                                "--dek-store", dek_store, "--json"])
                compact = json.loads(compact_out)[0]
                assert compact["total"]["changed"] == compact["total"]["scanned"] > 0, compact
                assert twin_state() == before, "the compact rotation wrote a data row"
                kms_calls["rewrap"], kms_calls["compact"] = summary["kms_calls"], compact["kms_calls"]
                for name, secs in (("floor", floor), ("rewrap", rewrap_s), ("reencrypt", reenc_s),
                                   ("compact", compact_s)):
                    results[name].append(secs)
                print(f"run {run + 1}: floor {args.rows / floor:,.0f} rows/s, "
                      f"rewrap {args.rows / rewrap_s:,.0f} rows/s ({rewrap_s / floor:.2f}x the floor, "
                      f"{summary['kms_calls']} KMS calls), "
                      f"reencrypt {args.rows / reenc_s:,.0f} rows/s ({reenc_s / floor:.2f}x), "
                      f"compact rotation {compact_s:.3f} s ({compact['kms_calls']} KMS calls, "
                      f"{compact['total']['changed']} DEK rows, 0 data rows)",
                      flush=True)
    finally:
        subprocess.run(["bash", "-c", f"source scripts/lib/postgres.sh && POSTGRES_DIR={pg_dir} "
                        f"POSTGRES_BIN={pg_bin} stop_postgres"], cwd=ROOT)

    def line(name):
        rates = [args.rows / s for s in results[name]]
        return (f"{name:<10} {statistics.median(rates):>10,.0f} rows/s "
                f"(min {min(rates):,.0f}, max {max(rates):,.0f})")

    print(f"\n{args.rows:,} rows, batch {args.batch_size}, {args.runs} runs (medians, min-max):")
    for name in ("floor", "rewrap", "reencrypt"):
        print(line(name))
    for name in ("rewrap", "reencrypt"):
        ratios = [j / f for j, f in zip(results[name], results["floor"])]
        print(f"{name} / floor (same run): median {statistics.median(ratios):.2f}x "
              f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)")
    c = results["compact"]
    print(f"compact rotation (rewrap --dek-store): median {statistics.median(c):.3f} s "
          f"(min {min(c):.3f}, max {max(c):.3f}), {kms_calls['compact']} KMS calls, 0 rows written; "
          f"v1 rewrap of the same rows: median {statistics.median(results['rewrap']):.1f} s, "
          f"{kms_calls['rewrap']} KMS calls, {args.rows:,} rows written")
    print(f"table size (pg_total_relation_size): v1 {sizes['v1'] / 2**20:.1f} MiB, "
          f"compact {sizes['compact'] / 2**20:.1f} MiB")


if __name__ == "__main__":
    sys.exit(main())
