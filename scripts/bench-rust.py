#!/usr/bin/env python3
"""Runs the criterion benchmark `benches/envelope.rs` in several separate processes and prints
a Markdown table: per figure the median over runs (with min-max), and per envelope figure its
ratio to the FASTEST floor of the same operation and size measured in the same run (the
ratio's median over runs, with min-max).

    scripts/bench-rust.py [--runs 3] [--measurement-time 3] [--filter REGEX]

Each run takes about 3 minutes on 2 cores; the build takes longer the first time.
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"
SIZES = ("64", "1024", "1048576")
FLOORS = ("floor-aws-lc", "floor-aws-lc-into", "floor-rustcrypto")
ENVELOPE = ("envelope", "envelope-into", "blocking-into", "compact-into", "log-off", "log-on")
# Groups measured beside the plain encrypt/decrypt ones: the key-use log off and on.
PREFIXES = ("", "audit-")


def read_run() -> dict:
    """{(group, bench): median ns} from the last criterion run."""
    out = {}
    for est in CRITERION.glob("*/*/new/estimates.json"):
        bench, group = est.parent.parent.name, est.parent.parent.parent.name
        out[(group, bench)] = json.loads(est.read_text())["median"]["point_estimate"]
    return out


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def spread(values, fmt) -> str:
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--measurement-time", type=float, default=3.0)
    ap.add_argument("--filter", default="")
    args = ap.parse_args()

    runs = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs} …", file=sys.stderr, flush=True)
        cmd = ["cargo", "bench", "--locked", "--bench", "envelope", "--",
               "--warm-up-time", "1", "--measurement-time", str(args.measurement_time),
               "--noplot"]
        if args.filter:
            cmd.append(args.filter)
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        runs.append(read_run())

    print(f"{args.runs} process runs; each cell: median over runs (min–max).\n")
    print("| operation | fastest floor (which) | envelope form | envelope | ratio to fastest floor |")
    print("|---|---|---|---|---|")
    for prefix in PREFIXES:
        for op in ("encrypt", "decrypt"):
            for size in SIZES:
                group = f"{prefix}{op}_{size}"
                floors_per_run = [{f: r[(group, f)] for f in FLOORS if (group, f) in r} for r in runs]
                if not all(floors_per_run):
                    continue
                fastest = [min(fl.values()) for fl in floors_per_run]
                which = statistics.mode(min(fl, key=fl.get) for fl in floors_per_run)
                for form in ENVELOPE:
                    if not all((group, form) in r for r in runs):
                        continue
                    env = [r[(group, form)] for r in runs]
                    ratios = [e / f for e, f in zip(env, fastest)]
                    extra = ""
                    if size == "1048576":
                        through = [f / e * 100 for e, f in zip(env, fastest)]
                        extra = f"; throughput {spread(through, lambda v: f'{v:.0f}%')}"
                    print(f"| {prefix}{op} {size} B | {spread(fastest, fmt_ns)} ({which}) | {form} | "
                          f"{spread(env, fmt_ns)} | **{spread(ratios, lambda v: f'{v:.2f}x')}**{extra} |")
                if all((group, "log-on") in r and (group, "log-off") in r for r in runs):
                    cost = [r[(group, "log-on")] / r[(group, "log-off")] for r in runs]
                    print(f"| {prefix}{op} {size} B | | log-on / log-off | | "
                          f"**{spread(cost, lambda v: f'{v:.3f}x')}** |")
    print("\nAll floors (median over runs):\n")
    print("| operation | " + " | ".join(FLOORS) + " |")
    print("|---|" + "---|" * len(FLOORS))
    for op in ("encrypt", "decrypt"):
        for size in SIZES:
            group = f"{op}_{size}"
            cells = []
            for f in FLOORS:
                vals = [r[(group, f)] for r in runs if (group, f) in r]
                cells.append(spread(vals, fmt_ns) if vals else "")
            print(f"| {op} {size} B | " + " | ".join(cells) + " |")
    print("\nOther figures (median over runs):\n")
    print("| figure | time |")
    print("|---|---|")
    for group, bench in sorted({k for r in runs for k in r}):
        if group.startswith(("blocking_", "kms_")):
            vals = [r[(group, bench)] for r in runs if (group, bench) in r]
            print(f"| {group}/{bench} | {spread(vals, fmt_ns)} |")


if __name__ == "__main__":
    main()
