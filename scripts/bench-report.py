#!/usr/bin/env python3
"""Prints the medians of the last `cargo bench --bench envelope` run and each figure's ratio
to the raw AES-256-GCM floor measured in the same run (reads target/criterion)."""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
if not root.is_dir():
    sys.exit("no criterion results: run `cargo bench --bench envelope` first")


def median_ns(group: str, bench: str):
    f = root / group / bench / "new" / "estimates.json"
    if not f.exists():
        return None
    return json.loads(f.read_text())["median"]["point_estimate"]


def fmt(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3f} µs"
    return f"{ns:.1f} ns"


rows = []
for size in ("64", "1024", "1048576"):
    for op in ("encrypt", "decrypt"):
        group = f"{op}_{size}"
        floor, env = median_ns(group, "floor"), median_ns(group, "envelope")
        if floor is None or env is None:
            continue
        extra = ""
        if size == "1048576":
            extra = f"  ({floor / env * 100:.0f}% of the floor's throughput)"
        rows.append((f"{op} {size} B", fmt(floor), fmt(env), f"{env / floor:.2f}x{extra}"))
floor = median_ns("blocking_64", "floor-encrypt")
for bench, label in (("encrypt", "blocking encrypt 64 B"), ("decrypt", "blocking decrypt 64 B"),
                     ("decrypt-1000-deks", "blocking decrypt 64 B, 1,000 DEKs round-robin")):
    v = median_ns("blocking_64", bench)
    if floor and v:
        rows.append((label, fmt(floor), fmt(v), f"{v / floor:.2f}x"))
for bench, label in (("encrypt-cold", "cold encrypt 64 B (cache disabled, local KMS)"),
                     ("rewrap-kms-call", "rewrap 64 B with a KMS call (local KMS)"),
                     ("rewrap-memoized", "rewrap 64 B, DEK already rewrapped")):
    v = median_ns("kms_64", bench)
    if v:
        rows.append((label, "", fmt(v), ""))

widths = [max(len(r[i]) for r in rows + [("operation", "floor", "envelope", "ratio")]) for i in range(4)]
print("| operation | raw AES-256-GCM floor | envelope | ratio to floor |")
print("|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |")
