"""A Spark session in local mode with envelope as Parquet's KMS (scripts/test-spark.sh)."""

import os
import sys

import pytest

import envelope_sdk
from envelope_sdk import parquet as pme


def required_env(name: str) -> str:
    """An environment variable the test command sets; a clear failure (never a skip) without it."""
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run scripts/test-spark.sh, which builds and exports it")
    return value


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """Master key id → key URI: the footer's and the PII columns' keys, each its own keyring."""
    root = tmp_path_factory.mktemp("keys")
    uris = {}
    for name in ("footer", "pii"):
        path = root / f"{name}.json"
        envelope_sdk.create_local_keyring(str(path), name)
        uris[name] = f"local://{path}#{name}"
    return uris


@pytest.fixture(scope="session")
def spark(keys):
    from pyspark.sql import SparkSession

    # Python workers run this interpreter (its envelope_sdk and pyarrow), not whatever
    # python3 is first on PATH.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    jars = required_env("ENVELOPE_JAVA_CLASSPATH").replace(":", ",")
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("envelope-pme-test")
        .config("spark.jars", jars)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.hadoop.parquet.crypto.factory.class",
                "org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory")
        .config("spark.hadoop.parquet.encryption.kms.client.class", "dev.envelope.parquet.EnvelopeKmsClient")
        .config("spark.hadoop.parquet.encryption.double.wrapping", "false")
        .config("spark.hadoop.parquet.encryption.key.material.store.internally", "false")
        .config("spark.hadoop.parquet.encryption.data.key.length.bits", "256")
    )
    for name, uri in keys.items():
        builder = builder.config(f"spark.hadoop.envelope.parquet.key.{name}", uri)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    pme.close_clients()
