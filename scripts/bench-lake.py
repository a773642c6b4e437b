"""One run of the data-lake benchmarks (scripts/bench-lake.sh runs several and takes medians).

Prints one JSON object:
- spark: rows/s of Spark's built-in aes_encrypt/aes_decrypt (GCM, 256-bit key) and of
  envelope_sdk.spark.encrypt/decrypt on the same column in the same session, and the KMS
  calls envelope made;
- pme: seconds to write and read a Parquet file with two encrypted columns, through
  envelope_sdk.parquet and through pyarrow's PME with an in-process KMS stand-in (the
  same settings), and KMS calls per file;
- rewrap: `envelope rewrap --parquet` over files with external key material: seconds, KMS
  calls, and data-file bytes changed.

    python scripts/bench-lake.py --rows 2000000 --pme-rows 200000 --files 1000
"""

import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe

import envelope_sdk
from envelope_sdk import parquet as pme
from envelope_sdk import spark as ev


def timed(action):
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bench_spark(work: Path, rows: int) -> dict:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (SparkSession.builder.master("local[2]").appName("envelope-bench")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "4g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    keyring = work / "spark-keyring.json"
    envelope_sdk.create_local_keyring(str(keyring), "col")
    uri = f"local://{keyring}#col"
    # 64-byte values, binary, cached in memory so that every timing reads the same input.
    base = (spark.range(rows, numPartitions=8)
            .select(F.unhex(F.sha2(F.col("id").cast("string"), 512)).alias("v")).cache())
    base.count()
    key = F.unhex(F.lit("00" * 32))

    def noop(df):
        df.write.format("noop").mode("overwrite").save()

    aes = base.select(F.aes_encrypt("v", key, F.lit("GCM")).alias("v")).cache()
    aes_enc = timed(lambda: aes.count())
    aes_dec = timed(lambda: noop(aes.select(F.aes_decrypt("v", key, F.lit("GCM")).alias("v"))))
    # Warm the Python workers (their start is not the column job's cost).
    noop(ev.encrypt(base.limit(1000), "v", uri, text=False))
    enc = ev.encrypt(base, "v", uri, text=False, with_outcome=True).cache()
    env_enc = timed(lambda: enc.count())
    enc_calls = enc.agg(F.sum(ev.KMS_CALLS)).first()[0]
    stored = enc.drop(ev.OUTCOME, ev.KMS_CALLS).cache()
    stored.count()
    env_dec = timed(lambda: noop(ev.decrypt(stored, "v", uri)))
    spark.stop()
    return {
        "rows": rows,
        "aes_encrypt_rows_per_s": rows / aes_enc,
        "aes_decrypt_rows_per_s": rows / aes_dec,
        "envelope_encrypt_rows_per_s": rows / env_enc,
        "envelope_decrypt_rows_per_s": rows / env_dec,
        "encrypt_ratio": aes_enc / env_enc,
        "decrypt_ratio": aes_dec / env_dec,
        "envelope_encrypt_kms_calls": enc_calls,
    }


class StandInKms(pe.KmsClient):
    """pyarrow's PME with master keys held in process (AES-GCM from the cryptography
    package): the floor a real KMS client cannot beat."""

    def __init__(self, keys):
        super().__init__()
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.keys = {k: AESGCM(v) for k, v in keys.items()}

    def wrap_key(self, key_bytes, master_key_identifier):
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self.keys[master_key_identifier].encrypt(nonce, key_bytes, None)).decode()

    def unwrap_key(self, wrapped_key, master_key_identifier):
        raw = base64.b64decode(wrapped_key)
        return self.keys[master_key_identifier].decrypt(raw[:12], raw[12:], None)


def bench_pme(work: Path, rows: int, repeats: int = 15) -> dict:
    """Writes with a warm KMS client (a writer of many files: envelope's data key cached),
    reads cold (every cache emptied first: a new reader, one KMS unwrap per file) and warm,
    each interleaved with the same operation of pyarrow's PME with the in-process stand-in
    (so that both sides see the same machine at the same moment). Medians of `repeats`."""
    keyring = work / "pme-keyring.json"
    envelope_sdk.create_local_keyring(str(keyring), "pii")
    keys = {"pii": f"local://{keyring}#pii", "footer": f"local://{keyring}#pii"}
    table = pa.table({
        "id": pa.array(range(rows), pa.int64()),
        "ssn": [f"{i:03d}-45-{i % 10000:04d}" for i in range(rows)],
        "email": [f"user{i}@example.com" for i in range(rows)],
        "country": ["NL", "DE", "FR", "US"] * (rows // 4) + ["NL"] * (rows % 4),
    })
    columns = {"pii": ["ssn", "email"]}
    fs = pafs.LocalFileSystem()
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731

    def kms_calls():
        stats = pme.client_for(keys["pii"]).stats()
        return stats["kms_generate_calls"] + stats["kms_unwrap_calls"]

    def env_write(i):
        pme.write_table(table, work / f"env-{i}.parquet", footer_key="footer", column_keys=columns, key_uris=keys)

    def env_read(i):
        pme.read_table(work / f"env-{i}.parquet", key_uris=keys)

    # pyarrow's PME with the in-process stand-in, the same settings (256-bit, single wrapping, sidecar)
    stand_in = StandInKms({"pii": os.urandom(32), "footer": os.urandom(32)})
    factory = pe.CryptoFactory(lambda config: stand_in)
    config = pe.EncryptionConfiguration(footer_key="footer", column_keys=columns, double_wrapping=False,
                                        internal_key_material=False, data_key_length_bits=256)
    kc = pe.KmsConnectionConfig()

    def ref_write(i):
        path = str(work / f"ref-{i}.parquet")
        props = factory.file_encryption_properties(kc, config, path, fs)
        pq.write_table(table, path, encryption_properties=props)

    def ref_read(i):
        path = str(work / f"ref-{i}.parquet")
        props = factory.file_decryption_properties(kc, pe.DecryptionConfiguration(), path, fs)
        pq.read_table(path, decryption_properties=props)

    pme.close_clients()
    env_write("warmup")
    ref_write("warmup")
    before = kms_calls()
    writes = {"env": [], "ref": []}
    for i in range(repeats):
        writes["env"].append(timed(lambda: env_write(i)))
        writes["ref"].append(timed(lambda: ref_write(i)))
    write_calls = (kms_calls() - before) / repeats
    cold = {"env": [], "ref": []}
    cold_calls = []
    for i in range(repeats):
        pme.close_clients()
        cold["env"].append(timed(lambda: env_read(i)))
        cold_calls.append(kms_calls())
        factory.remove_cache_entries_for_all_tokens()
        cold["ref"].append(timed(lambda: ref_read(i)))
    warm = {"env": [], "ref": []}
    for i in range(repeats):
        warm["env"].append(timed(lambda: env_read(i)))
        warm["ref"].append(timed(lambda: ref_read(i)))
    return {
        "rows": rows,
        "envelope_write_s": med(writes["env"]), "stand_in_write_s": med(writes["ref"]),
        "envelope_cold_read_s": med(cold["env"]), "stand_in_cold_read_s": med(cold["ref"]),
        "envelope_warm_read_s": med(warm["env"]), "stand_in_warm_read_s": med(warm["ref"]),
        "write_ratio": med(writes["env"]) / med(writes["ref"]),
        "cold_read_ratio": med(cold["env"]) / med(cold["ref"]),
        "warm_read_ratio": med(warm["env"]) / med(warm["ref"]),
        "kms_calls_per_file_written": write_calls,
        "kms_calls_per_file_read_cold": med(cold_calls),
    }


def bench_rewrap(work: Path, files: int, cli: str) -> dict:
    keyring = work / "lake-keyring.json"
    envelope_sdk.create_local_keyring(str(keyring), "pii")
    keys = {"pii": f"local://{keyring}#pii"}
    lake = work / "lake"
    table = pa.table({"id": list(range(100)), "ssn": [f"{i:03d}-45-6789" for i in range(100)]})
    pme.close_clients()
    for i in range(files):
        pme.write_table(table, lake / f"day={i // 100}" / f"part-{i}.parquet", footer_key="pii",
                        column_keys={"pii": ["ssn"]}, key_uris=keys)
    data = sorted(lake.glob("*/part-*.parquet"))
    before = {p: hashlib.sha256(p.read_bytes()).digest() for p in data}
    envelope_sdk.rotate_local_key(str(keyring), "pii")
    start = time.perf_counter()
    out = subprocess.run([cli, "rewrap", "--key", keys["pii"], "--parquet", str(lake)],
                         capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - start
    changed = sum(hashlib.sha256(p.read_bytes()).digest() != before[p] for p in data)
    calls = int(re.search(r"(\d+) KMS calls", out).group(1))
    return {"files": files, "keys": 2 * files, "seconds": seconds, "kms_calls": calls,
            "data_files_changed": changed, "summary": out.splitlines()[0]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--pme-rows", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--parts", default="spark,pme,rewrap")
    parser.add_argument("--cli", default=os.environ.get("ENVELOPE_CLI", "target/release/envelope"))
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "pme" in parts:
            result["pme"] = bench_pme(work, args.pme_rows)
        if "rewrap" in parts:
            result["rewrap"] = bench_rewrap(work, args.files, args.cli)
        if "spark" in parts:
            result["spark"] = bench_spark(work, args.rows)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
