"""Spark (parquet-java, dev.envelope.parquet.EnvelopeKmsClient) and pyarrow
(envelope_sdk.parquet) read each other's encrypted Parquet files; the CLI rotates what Spark
wrote without touching a data file."""

import hashlib
import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import envelope_sdk
from envelope_sdk import parquet as pme

from conftest import required_env

ROWS = [(i, f"{i:03d}-45-{i:04d}", f"user{i}@example.com", ["NL", "DE"][i % 2]) for i in range(200)]
COLUMNS = ["id", "ssn", "email", "country"]


def write_with_spark(spark, path):
    df = spark.createDataFrame(ROWS, COLUMNS).repartition(2)
    (df.write.mode("overwrite")
     .option("parquet.encryption.footer.key", "footer")
     .option("parquet.encryption.column.keys", "pii:ssn,email")
     .parquet(str(path)))


def data_files(path):
    return sorted(Path(path).glob("part-*.parquet"))


def forget_keys(spark):
    """Every cached key of both sides, as a new process would start."""
    jvm = spark.sparkContext._jvm
    jvm.org.apache.parquet.crypto.keytools.KeyToolkit.removeCacheEntriesForAllTokens()
    jvm.dev.envelope.parquet.EnvelopeKmsClient.closeClients()
    pme.close_clients()


def cli(*args, code=0):
    out = subprocess.run([required_env("ENVELOPE_CLI"), *args], capture_output=True, text=True)
    assert out.returncode == code, out
    return out


def test_spark_writes_and_pyarrow_reads(spark, keys, tmp_path):
    out = tmp_path / "spark"
    write_with_spark(spark, out)
    files = data_files(out)
    assert len(files) == 2
    rows = []
    for f in files:
        assert (f.parent / f"_KEY_MATERIAL_FOR_{f.name}.json").exists()
        assert f.read_bytes()[-4:] == b"PARE" and b"example.com" not in f.read_bytes()
        material = dict(pme.key_material(f))
        assert {m["masterKeyID"] for m in material.values()} == {"footer", "pii"}
        assert all(m["wrappedDEK"].startswith("ev1:") and not m["doubleWrapping"] for m in material.values())
        rows += pme.read_table(f, key_uris=keys).to_pylist()
    assert sorted((r["id"], r["ssn"], r["email"], r["country"]) for r in rows) == ROWS
    assert sorted(tuple(r) for r in spark.read.parquet(str(out)).collect()) == ROWS


def test_pyarrow_writes_and_spark_reads(spark, keys, tmp_path):
    out = tmp_path / "pyarrow"
    table = pa.table({c: [r[i] for r in ROWS] for i, c in enumerate(COLUMNS)})
    pme.write_table(table, out / "part-00000.parquet", footer_key="footer",
                    column_keys={"pii": ["ssn", "email"]}, key_uris=keys)
    assert sorted(tuple(r) for r in spark.read.parquet(str(out)).collect()) == ROWS


def test_a_reader_without_the_key_gets_a_clear_error(spark, tmp_path):
    out = tmp_path / "spark"
    write_with_spark(spark, out)
    f = data_files(out)[0]
    with pytest.raises(OSError, match="encrypted"):
        pq.read_table(f)
    forget_keys(spark)
    other = tmp_path / "other.json"
    envelope_sdk.create_local_keyring(str(other), "pii")
    wrong = {"footer": f"local://{other}#pii", "pii": f"local://{other}#pii"}
    with pytest.raises(Exception, match="not own key|decryption failed|not found"):
        pme.read_table(f, key_uris=wrong)


# Last in the file: it rotates the session's keys and destroys their version 1.
def test_the_cli_rotates_what_spark_wrote_and_spark_still_reads_it(spark, keys, tmp_path):
    out = tmp_path / "spark"
    write_with_spark(spark, out)
    files = data_files(out)
    before = {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    census = json.loads(cli("census", "--parquet", str(out), "--json").stdout)
    assert sorted((g["key_id"], g["key_version"], g["count"]) for g in census["groups"]) == [
        ("footer", "1", 2), ("pii", "1", 4)]
    assert not census["unreadable"], census["unreadable"]
    crcs = sorted(out.glob("._KEY_MATERIAL_FOR_*.crc"))
    assert len(crcs) == 2, "Hadoop's checksums of the sidecars"

    for name in ("footer", "pii"):
        path, key_id = keys[name].removeprefix("local://").split("#")
        envelope_sdk.rotate_local_key(path, key_id)
        cli("rewrap", "--key", keys[name], "--parquet", str(out))
    census = json.loads(cli("census", "--parquet", str(out), "--json").stdout)
    assert sorted((g["key_id"], g["key_version"], g["count"]) for g in census["groups"]) == [
        ("footer", "2", 2), ("pii", "2", 4)]
    assert {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in files} == before
    assert not list(out.glob("._KEY_MATERIAL_FOR_*.crc")), "stale checksums removed"

    for name in ("footer", "pii"):
        path, key_id = keys[name].removeprefix("local://").split("#")
        envelope_sdk.destroy_local_key_version(path, key_id, 1)
        cli("retire", "--key", keys[name], "--version", "1", "--action", "check", "--parquet", str(out))
    forget_keys(spark)
    assert sorted(tuple(r) for r in spark.read.parquet(str(out)).collect()) == ROWS
    for f in files:
        assert pme.read_table(f, key_uris=keys).num_rows > 0
