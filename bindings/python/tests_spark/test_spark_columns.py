"""Column jobs on PySpark (envelope_sdk.spark): one client per Python worker, batch calls,
header-only rewrap across partitions, census, and the runnable job's summary."""

import pytest
from pyspark.sql import functions as F

import envelope_sdk
from envelope_sdk import spark as ev

PARTITIONS = 8
N = 4000


@pytest.fixture
def column_key(tmp_path):
    path = tmp_path / "column.json"
    envelope_sdk.create_local_keyring(str(path), "ssn")
    return path, f"local://{path}#ssn"


def people(spark):
    rows = [(i, f"{i:03d}-45-{i % 10000:04d}" if i % 97 else None) for i in range(N)]
    return spark.createDataFrame(rows, "id long, ssn string").repartition(PARTITIONS)


def kms_calls(df):
    return df.agg(F.sum(ev.KMS_CALLS)).first()[0]


def outcomes(df):
    return {r[ev.OUTCOME]: r["count"] for r in df.groupBy(ev.OUTCOME).count().collect()}


def body(ct: str) -> bytes:
    raw = envelope_sdk.from_text(ct)
    return raw[envelope_sdk.Client.inspect(raw).header_len:]


def test_encrypt_decrypt_rewrap_and_census_across_partitions(spark, column_key, tmp_path):
    path, uri = column_key
    plain = people(spark)
    encrypted = ev.encrypt(plain, "ssn", uri, aad="people.ssn", with_outcome=True).cache()
    assert encrypted.rdd.getNumPartitions() == PARTITIONS
    done = outcomes(encrypted)
    assert done == {"encrypted": N - len(range(0, N, 97)), None: len(range(0, N, 97))}
    # One data key per Python worker (local[2]: at most two): the KMS is not called per row or batch.
    assert 1 <= kms_calls(encrypted) <= 2
    stored = encrypted.drop(ev.OUTCOME, ev.KMS_CALLS)
    stored.write.parquet(str(tmp_path / "v1"))
    stored = spark.read.parquet(str(tmp_path / "v1"))
    assert all(v.startswith("ev1:") for (v,) in stored.where("ssn is not null").select("ssn").collect())

    counted = {(r["key_id"], r["key_version"], r["problem"]): r["values"] for r in ev.census(stored, "ssn").collect()}
    assert counted == {("ssn", "1", None): N - len(range(0, N, 97))}

    back = ev.decrypt(stored, "ssn", uri, aad="people.ssn", as_string=True)
    assert sorted((r["id"], r["ssn"]) for r in back.collect()) == sorted((r["id"], r["ssn"]) for r in plain.collect())
    wrong = ev.decrypt(stored, "ssn", uri, aad="other", with_outcome=True)
    assert outcomes(wrong).get("failed:DecryptionFailed") == N - len(range(0, N, 97))

    # Rotation: every value header-only rewrapped (bodies identical), a few KMS calls.
    assert envelope_sdk.rotate_local_key(str(path), "ssn") == 2
    before = {r["id"]: r["ssn"] for r in stored.collect()}
    moved = ev.rewrap(stored, "ssn", uri, with_outcome=True).cache()
    assert outcomes(moved) == {"rewrapped": N - len(range(0, N, 97)), None: len(range(0, N, 97))}
    assert 1 <= kms_calls(moved) <= 4, "at most one rewrap per data key (two) and worker (two)"
    for r in moved.collect():
        if r["ssn"] is None:
            assert before[r["id"]] is None
            continue
        assert envelope_sdk.Client.inspect(r["ssn"]).key_version == "2"
        assert body(r["ssn"]) == body(before[r["id"]])
    again = ev.rewrap(moved.drop(ev.OUTCOME, ev.KMS_CALLS), "ssn", uri, with_outcome=True)
    assert outcomes(again) == {"current": N - len(range(0, N, 97)), None: len(range(0, N, 97))}


def test_the_runnable_job_rewraps_counts_and_names_failures(spark, column_key, tmp_path, capsys):
    path, uri = column_key
    encrypted = ev.encrypt(people(spark), "ssn", uri)
    # One value that is not a ciphertext: kept as it was, counted as failed.
    broken = encrypted.withColumn("ssn", F.when(F.col("id") == 5, F.lit("not a ciphertext")).otherwise(F.col("ssn")))
    broken.write.parquet(str(tmp_path / "in"))
    envelope_sdk.rotate_local_key(str(path), "ssn")
    code = ev.main(["rewrap", "--input", str(tmp_path / "in"), "--column", "ssn", "--key", uri,
                    "--output", str(tmp_path / "out")])
    summary = capsys.readouterr().out
    assert code == 3, summary
    assert f"{N - len(range(0, N, 97)) - 1} rewrapped" in summary, summary
    assert "1 failed" in summary and "failed (MalformedCiphertext): 1" in summary, summary
    out = spark.read.parquet(str(tmp_path / "out"))
    assert out.count() == N
    assert out.where("id = 5").first()["ssn"] == "not a ciphertext"
    assert (tmp_path / "out" / "_SUCCESS").exists()

    assert ev.main(["census", "--input", str(tmp_path / "out"), "--column", "ssn"]) == 0
    table = capsys.readouterr().out
    assert "MalformedCiphertext" in table and " 2 " in table, table


KILL_ONCE = '''
import os, signal
marker = os.environ.get("ENVELOPE_TEST_KILL_MARKER")
if marker:
    import envelope_sdk.parquet as parquet
    real_client_for = parquet.client_for

    def client_for(uri):
        # The first task to open a client kills its own Python worker, once.
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_client_for(uri)

    parquet.client_for = client_for
'''


def test_a_killed_worker_fails_the_job_cleanly_and_a_rerun_completes(spark, column_key, tmp_path):
    import os
    import subprocess
    import sys

    path, uri = column_key
    ev.encrypt(people(spark), "ssn", uri).write.parquet(str(tmp_path / "in"))
    envelope_sdk.rotate_local_key(str(path), "ssn")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_ONCE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
               PYSPARK_PYTHON=sys.executable, ENVELOPE_TEST_KILL_MARKER=str(tmp_path / "killed"))
    job = [sys.executable, "-m", "envelope_sdk.spark", "rewrap", "--input", str(tmp_path / "in"),
           "--column", "ssn", "--key", uri, "--output", str(tmp_path / "out"), "--master", "local[2]"]

    first = subprocess.run(job, env=env, capture_output=True, text=True)
    assert (tmp_path / "killed").exists(), first.stderr[-2000:]
    assert first.returncode != 0, first.stdout
    assert "rewrapped" not in first.stdout
    assert not list((tmp_path / "out").glob("part-*")) and not (tmp_path / "out" / "_SUCCESS").exists()

    second = subprocess.run(job, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"{N - len(range(0, N, 97))} rewrapped" in second.stdout, second.stdout
    out = spark.read.parquet(str(tmp_path / "out"))
    assert out.count() == N
    versions = {envelope_sdk.Client.inspect(v).key_version for (v,) in out.where("ssn is not null").select("ssn").collect()}
    assert versions == {"2"}
