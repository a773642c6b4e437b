#!/usr/bin/env python3
"""Runs the Go module's benchmarks (bindings/go/bench_test.go) in several separate processes
and prints a Markdown table: per case the median ns/op over runs (min-max) and its ratio to
Go's own crypto/aes GCM floor of the same size in the same run (median, min-max).

    scripts/bench-go.py [--runs 5] [--benchtime 1s]

Needs the static library (`cargo build --release -p envelope-ffi`; scripts/test-bindings.sh
builds it).
"""
import argparse
import pathlib
import re
import statistics
import subprocess
import sys

GO = pathlib.Path(__file__).resolve().parent.parent / "bindings" / "go"
LINE = re.compile(r"^Benchmark(\w+)/size=(\d+)/([\w-]+)-\d+\s+\d+\s+([\d.]+) ns/op")


def spread(values, fmt) -> str:
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--benchtime", default="1s")
    args = ap.parse_args()
    runs = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs} …", file=sys.stderr, flush=True)
        out = subprocess.run(
            ["go", "test", "-run", "^$", "-bench", "^Benchmark(Encrypt|Decrypt)$", "-benchtime", args.benchtime,
             "-count", "1", "."],
            cwd=GO, check=True, capture_output=True, text=True).stdout
        figures = {}
        for line in out.splitlines():
            m = LINE.match(line)
            if m:
                op, size, case, ns = m.groups()
                figures[(op, int(size), case)] = float(ns)
        runs.append(figures)
    print(f"{args.runs} process runs (`go test -bench`, -benchtime {args.benchtime}); median (min–max)\n")
    print("| case | ns/op | ratio to Go's crypto/aes GCM |")
    print("|---|---|---|")
    for key in sorted(runs[0], key=lambda k: (k[0] != "Encrypt", k[1], k[2] != "floor", k[2])):
        op, size, case = key
        times = [r[key] for r in runs]
        ratio = ""
        if case != "floor":
            ratios = [r[key] / r[(op, size, "floor")] for r in runs]
            ratio = spread(ratios, lambda v: f"{v:.2f}x")
            if size >= 1 << 20:
                ratio += f"; throughput {spread([100 / x for x in ratios], lambda v: f'{v:.0f}%')} of the floor's"
        print(f"| {op.lower()} {size} B {case} | {spread(times, lambda v: f'{v:,.1f}')} | {ratio} |")


if __name__ == "__main__":
    main()
