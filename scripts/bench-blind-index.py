#!/usr/bin/env python3
"""Blind-index benchmarks (BENCHMARKS.md, "Blind indexes"), each figure the median over
several process runs with its min-max, every ratio taken within one run:

1. index value of an 11-byte and a 64-byte input (Rust, criterion `blind_index/*`) against
   HMAC-SHA256 of the same input under a prepared key, the fastest of aws-lc-rs and
   RustCrypto `hmac`; and per value in a Python batch (`Client.blind_index_batch` of 10,000
   values) against the same floor;
2. on a real PostgreSQL with N rows (default 1,000,000; `envelope-cli/examples/
   blind_index_bench.rs`): lookup latency by the unique and by the private index (about 10
   rows per bucket), false positives removed, against a plaintext equality lookup on a
   twin table (median of the lookups); false positives per lookup against the theory; and
   `envelope reindex` of every row against the PostgreSQL UPDATE floor.

    scripts/bench-blind-index.py [--rows 1000000] [--lookups 1000] [--runs 3]

Starts its own throwaway PostgreSQL (scripts/lib/postgres.sh) and builds in release. A run
with a million rows takes about 4 minutes on 2 cores.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"
FLOORS = ("floor-aws-lc-hmac", "floor-rustcrypto-hmac")


def sh(cmd, **kw):
    done = subprocess.run(cmd, text=True, capture_output=True, cwd=ROOT, **kw)
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done


def spread(values, fmt):
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def ns(v):
    return f"{v:.0f} ns" if v < 1e4 else f"{v / 1e3:.1f} µs"


def ms(v):
    return f"{v * 1e3:.3f} ms"


def criterion_run():
    sh(["cargo", "bench", "--locked", "--bench", "envelope", "--", "blind_index",
        "--warm-up-time", "1", "--measurement-time", "3", "--noplot"])
    out = {}
    for size in ("11", "64"):
        for est in (CRITERION / f"blind_index_{size}").glob("*/new/estimates.json"):
            out[(size, est.parent.parent.name)] = json.loads(est.read_text())["median"]["point_estimate"]
    return out


PY_BATCH = r"""
import json, sys, tempfile, time
from envelope_sdk import Client, create_local_keyring
d = tempfile.mkdtemp()
create_local_keyring(d + "/k.json")
c = Client("local://" + d + "/k.json", index_store="sqlite://" + d + "/i.sqlite")
c.create_blind_index("bench.exact")
out = {}
for size, value in (("11", b"a@b.example"), ("64", b"x" * 64)):
    values = [value] * 10_000
    c.blind_index_batch("bench.exact", values)
    best = min((lambda t: (c.blind_index_batch("bench.exact", values), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(20))
    out[size] = best / len(values) * 1e9
print(json.dumps(out))
"""


def python_run(python):
    env = dict(os.environ, ENVELOPE_FFI_LIB=str(ROOT / "target/release/libenvelope_ffi.so"),
               PYTHONPATH=str(ROOT / "bindings/python/src"))
    return json.loads(sh([python, "-c", PY_BATCH], env=env).stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--python", default=str(ROOT / ".tools/venv/bin/python"))
    args = ap.parse_args()

    if subprocess.run([args.python, "-c", "import cffi"], capture_output=True).returncode != 0:
        sh(["bash", "-c", "source scripts/lib/tools.sh && ensure_venv && "
            "\"$ENVELOPE_VENV/bin/pip\" install --quiet cffi"])
    print("building (release) …", file=sys.stderr, flush=True)
    sh(["cargo", "build", "--release", "--locked", "-p", "envelope-cli", "--bin", "envelope",
        "--example", "blind_index_bench", "-p", "envelope-ffi"])
    start = sh(["bash", "-c", "source scripts/lib/postgres.sh && start_postgres >&2 && "
                "echo $ENVELOPE_TEST_PG_URL && echo $POSTGRES_DIR && echo $POSTGRES_BIN"])
    url, pg_dir, pg_bin = start.stdout.split()
    crit, py, db = [], [], []
    try:
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs} …", file=sys.stderr, flush=True)
            crit.append(criterion_run())
            py.append(python_run(args.python))
            out = sh([str(ROOT / "target/release/examples/blind_index_bench"), url, str(args.rows),
                      str(args.lookups), str(ROOT / "target/release/envelope")])
            db.append(json.loads(out.stdout))
    finally:
        subprocess.run([os.path.join(pg_bin, "pg_ctl"), "-D", os.path.join(pg_dir, "data"),
                        "stop", "-m", "immediate"], capture_output=True)

    print(f"{args.runs} process runs; each cell: median over runs (min–max).\n")
    print("| input | fastest HMAC-SHA256 floor (which) | blind index (Rust) | ratio | "
          "nfkc_casefold+trim_collapse | Python batch, per value | ratio |")
    print("|---|---|---|---|---|---|---|")
    lc_rows = []
    for size in ("11", "64"):
        fastest = [min(r[(size, f)] for f in FLOORS) for r in crit]
        which = statistics.mode(min(FLOORS, key=lambda f: r[(size, f)]) for r in crit)
        bi = [r[(size, "blind-index")] for r in crit]
        folded = [r[(size, "blind-index-nfkc-casefold")] for r in crit]
        pyv = [p[size] for p in py]
        print(f"| {size} B | {spread(fastest, ns)} ({which}) | {spread(bi, ns)} | "
              f"**{spread([b / f for b, f in zip(bi, fastest)], lambda v: f'{v:.2f}x')}** | "
              f"{spread(folded, ns)} | {spread(pyv, ns)} | "
              f"**{spread([p / f for p, f in zip(pyv, fastest)], lambda v: f'{v:.2f}x')}** |")
        lc = [r[(size, "floor-aws-lc-hmac")] for r in crit]
        lc_rows.append(f"| {size} B | {spread(lc, ns)} | "
                       f"**{spread([b / f for b, f in zip(bi, lc)], lambda v: f'{v:.2f}x')}** | "
                       f"**{spread([p / f for p, f in zip(pyv, lc)], lambda v: f'{v:.2f}x')}** |")
    print("\nAgainst aws-lc-rs HMAC-SHA256 with a prepared key (the issue's floor):\n")
    print("| input | aws-lc-rs HMAC | blind index (Rust) / it | Python batch per value / it |")
    print("|---|---|---|---|")
    print("\n".join(lc_rows))
    rows = db[0]["rows"]
    print(f"\nPostgreSQL, {rows:,} rows, {db[0]['lookups']} lookups per run, private mode with "
          f"{db[0]['private_bits']} bits:\n")
    print("| lookup | median latency | ratio to plaintext | p90 |")
    print("|---|---|---|---|")
    for kind in ("plaintext", "unique", "private"):
        med = [d["lookup_median_seconds"][kind] for d in db]
        ratio = [d["lookup_median_seconds"][kind] / d["lookup_median_seconds"]["plaintext"] for d in db]
        p90 = [d["lookup_p90_seconds"][kind] for d in db]
        print(f"| {kind} | {spread(med, ms)} | **{spread(ratio, lambda v: f'{v:.2f}x')}** | {spread(p90, ms)} |")
    print("\n| false positives per lookup | measured | theory (X − 1) / 2^N | measured / theory |")
    print("|---|---|---|---|")
    for kind in ("unique", "private"):
        fp = [d["false_positives_per_lookup"][kind] for d in db]
        th = db[0]["false_positives_per_lookup"][f"{kind}_theory"]
        ratio = [f / th for f in fp] if th > 1e-9 else None
        print(f"| {kind} | {spread(fp, lambda v: f'{v:.3f}')} | {th:.3g} | "
              f"{spread(ratio, lambda v: f'{v:.3f}') if ratio else 'n/a'} |")
    print("\n| job | time | rows/s | ratio to the UPDATE floor |")
    print("|---|---|---|---|")
    re = [d["reindex_seconds"] for d in db]
    fl = [d["update_floor_seconds"] for d in db]
    print(f"| UPDATE floor | {spread(fl, lambda v: f'{v:.1f} s')} | "
          f"{spread([rows / f for f in fl], lambda v: f'{v:,.0f}')} | 1 |")
    print(f"| envelope reindex | {spread(re, lambda v: f'{v:.1f} s')} | "
          f"{spread([d['reindex_rows_per_second'] for d in db], lambda v: f'{v:,.0f}')} | "
          f"**{spread([d['reindex_over_floor'] for d in db], lambda v: f'{v:.2f}x')}** |")


if __name__ == "__main__":
    main()
