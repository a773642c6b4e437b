"""Python encrypt/decrypt of 64-byte fields: envelope_sdk against `cryptography`'s AESGCM
(random 96-bit nonce from os.urandom, the floor a Python user already has), in the same run.

    python bindings/python/bench/bench_encrypt.py [--json]

Prints the median time per field of each case over several repetitions and the ratio of
each envelope figure to the floor. Batches are timed with one AAD per row and with one
column-level AAD shared by the batch (what the SQLAlchemy type uses).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import timeit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import envelope_sdk

FIELD = b"\x5a" * 64
AAD = b"table=patients;column=ssn;row=4242"
BATCH = 1000
REPEAT = 7


def per_field(stmt, number: int, fields_per_call: int = 1) -> float:
    runs = timeit.repeat(stmt, number=number, repeat=REPEAT)
    return statistics.median(runs) / (number * fields_per_call)


def main() -> None:
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "keyring.json")
    envelope_sdk.create_local_keyring(path)
    client = envelope_sdk.Client("local://" + path)
    aesgcm = AESGCM(AESGCM.generate_key(bit_length=256))
    urandom = os.urandom

    def floor_encrypt():
        nonce = urandom(12)
        return nonce + aesgcm.encrypt(nonce, FIELD, AAD)

    sealed = floor_encrypt()

    def floor_decrypt():
        return aesgcm.decrypt(sealed[:12], sealed[12:], AAD)

    ct = client.encrypt(FIELD, AAD)
    fields = [FIELD] * BATCH
    aads = [AAD] * BATCH
    cts = client.encrypt_batch(fields, aads)

    results = {
        "floor_encrypt": per_field(floor_encrypt, 20000),
        "floor_decrypt": per_field(floor_decrypt, 20000),
        "encrypt": per_field(lambda: client.encrypt(FIELD, AAD), 20000),
        "decrypt": per_field(lambda: client.decrypt(ct, AAD), 20000),
        "encrypt_batch_1000": per_field(lambda: client.encrypt_batch(fields, aads), 20, BATCH),
        "decrypt_batch_1000": per_field(lambda: client.decrypt_batch(cts, aads), 20, BATCH),
        "encrypt_batch_1000_column_aad": per_field(lambda: client.encrypt_batch(fields, AAD), 20, BATCH),
        "decrypt_batch_1000_column_aad": per_field(lambda: client.decrypt_batch(cts, AAD), 20, BATCH),
    }
    if "--json" in sys.argv:
        print(json.dumps(results))
        return
    print(f"{'case':<32} {'ns/field':>10} {'ratio to floor':>15}")
    for name, seconds in results.items():
        floor = results["floor_decrypt" if "decrypt" in name else "floor_encrypt"]
        print(f"{name:<32} {seconds * 1e9:>10.0f} {seconds / floor:>14.2f}x")


if __name__ == "__main__":
    main()
