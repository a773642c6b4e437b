"""Python encrypt/decrypt through envelope_sdk against `cryptography`'s AESGCM (OpenSSL, a
random 96-bit nonce from os.urandom: the floor a Python user already has), in the same run.

    python bindings/python/bench/bench_encrypt.py [--runs 5] [--json]

Runs the measurement in `--runs` separate processes and prints, per case, the median time
per field over the runs with min-max, and its ratio to the floor of the same run (median
with min-max). Sizes: 64-byte fields (single calls, the caller-buffer `_into` calls, and
batches of 1,000 with one AAD per row or one column-level AAD, what the SQLAlchemy type
uses) and 1 MiB values. With the key-use log on (a client built with ``audit=``; the
signing key is made by the ``envelope`` CLI: ENVELOPE_CLI, else target/release/envelope or
target/debug/envelope), the 64-byte ``_into`` calls again, and their ratio to the same calls
with the log off in the same run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import timeit

AAD = b"table=patients;column=ssn;row=4242"
BATCH = 1000
REPEAT = 7
MIB = 1 << 20


def per_field(stmt, number: int, fields_per_call: int = 1) -> float:
    runs = timeit.repeat(stmt, number=number, repeat=REPEAT)
    return statistics.median(runs) / (number * fields_per_call)


def measure() -> dict:
    """One process's figures, in seconds per field, and the floor each is compared with."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    import envelope_sdk

    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "keyring.json")
    envelope_sdk.create_local_keyring(path)
    client = envelope_sdk.Client("local://" + path)
    aesgcm = AESGCM(AESGCM.generate_key(bit_length=256))
    urandom = os.urandom
    results = {}

    for size, number in ((64, 20000), (MIB, 200)):
        field = b"\x5a" * size

        def floor_encrypt(field=field):
            nonce = urandom(12)
            return nonce + aesgcm.encrypt(nonce, field, AAD)

        sealed = floor_encrypt()

        def floor_decrypt(sealed=sealed):
            return aesgcm.decrypt(sealed[:12], sealed[12:], AAD)

        ct = client.encrypt(field, AAD)
        out = bytearray(len(ct) + 4096)
        results[f"floor_encrypt_{size}"] = (per_field(floor_encrypt, number), None)
        results[f"floor_decrypt_{size}"] = (per_field(floor_decrypt, number), None)
        fe, fd = f"floor_encrypt_{size}", f"floor_decrypt_{size}"
        results[f"encrypt_{size}"] = (per_field(lambda: client.encrypt(field, AAD), number), fe)
        results[f"encrypt_into_{size}"] = (per_field(lambda: client.encrypt_into(field, out, AAD), number), fe)
        results[f"decrypt_{size}"] = (per_field(lambda: client.decrypt(ct, AAD), number), fd)
        results[f"decrypt_into_{size}"] = (per_field(lambda: client.decrypt_into(ct, out, AAD), number), fd)

    field = b"\x5a" * 64
    fields = [field] * BATCH
    aads = [AAD] * BATCH
    cts = client.encrypt_batch(fields, aads)
    fe, fd = "floor_encrypt_64", "floor_decrypt_64"
    results["encrypt_batch_1000x64"] = (per_field(lambda: client.encrypt_batch(fields, aads), 20, BATCH), fe)
    results["decrypt_batch_1000x64"] = (per_field(lambda: client.decrypt_batch(cts, aads), 20, BATCH), fd)
    results["encrypt_batch_1000x64_column_aad"] = (per_field(lambda: client.encrypt_batch(fields, AAD), 20, BATCH), fe)
    results["decrypt_batch_1000x64_column_aad"] = (per_field(lambda: client.decrypt_batch(cts, AAD), 20, BATCH), fd)

    # The key-use log on: the same 64-byte caller-buffer calls.
    key = os.path.join(tmp, "audit.key")
    subprocess.run([envelope_cli(), "audit", "keygen", "--name", "bench", "--out", key],
                   check=True, capture_output=True)
    logged = envelope_sdk.Client("local://" + path, audit={"dir": os.path.join(tmp, "log"), "signer": key})
    out = bytearray(64 + 4096)
    # Off and on measured in alternation, three times each, so that neither gains from
    # where in the process it runs.
    samples = {name: [] for name in ("encrypt_into_64_log_off", "encrypt_into_64_log_on",
                                     "decrypt_into_64_log_off", "decrypt_into_64_log_on")}
    for _ in range(3):
        for suffix, c in (("off", client), ("on", logged)):
            ct = c.encrypt(field, AAD)
            samples[f"encrypt_into_64_log_{suffix}"].append(per_field(lambda: c.encrypt_into(field, out, AAD), 20000))
            samples[f"decrypt_into_64_log_{suffix}"].append(per_field(lambda: c.decrypt_into(ct, out, AAD), 20000))
    for name, values in samples.items():
        results[name] = (statistics.median(values), fe if name.startswith("encrypt") else fd)
    logged.close()
    return results


def envelope_cli() -> str:
    """The `envelope` binary that makes the log's signing key."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    for candidate in (os.environ.get("ENVELOPE_CLI"),
                      os.path.join(root, "target", "release", "envelope"),
                      os.path.join(root, "target", "debug", "envelope")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("no envelope CLI: build it (cargo build --release -p envelope-cli) or set ENVELOPE_CLI")


def spread(values, fmt) -> str:
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def main() -> None:
    if "--json" in sys.argv:
        print(json.dumps(measure()))
        return
    runs = 5
    if "--runs" in sys.argv:
        runs = int(sys.argv[sys.argv.index("--runs") + 1])
    per_run = []
    for i in range(runs):
        print(f"run {i + 1}/{runs} …", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, __file__, "--json"], check=True, capture_output=True, text=True)
        per_run.append(json.loads(done.stdout))
    import envelope_sdk

    print(f"envelope_sdk {envelope_sdk.native_version()} on {envelope_sdk.crypto_provider()}; "
          f"{runs} process runs; median (min–max)\n")
    print("| case | ns per field | ratio to floor |")
    print("|---|---|---|")
    for name, (_, floor) in per_run[0].items():
        times = [r[name][0] * 1e9 for r in per_run]
        ratio = ""
        if floor:
            ratios = [r[name][0] / r[floor][0] for r in per_run]
            ratio = spread(ratios, lambda v: f"{v:.2f}x")
            if "1048576" in name:
                through = [100 / x for x in ratios]
                ratio += f"; throughput {spread(through, lambda v: f'{v:.0f}%')} of the floor's"
        print(f"| {name} | {spread(times, lambda v: f'{v:,.0f}')} | {ratio} |")
    print("\n| key-use log | log on / log off (same run) |")
    print("|---|---|")
    for op in ("encrypt_into_64", "decrypt_into_64"):
        on, off = f"{op}_log_on", f"{op}_log_off"
        if on in per_run[0]:
            ratios = [r[on][0] / r[off][0] for r in per_run]
            print(f"| {op} | {spread(ratios, lambda v: f'{v:.3f}x')} |")


if __name__ == "__main__":
    main()
