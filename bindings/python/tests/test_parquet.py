"""Parquet modular encryption with envelope as the KMS (pyarrow), and its rotation by the CLI."""

import base64
import hashlib
import json
import os
import subprocess

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
import pytest

import envelope_sdk
from envelope_sdk import parquet as pme

from conftest import required_env


@pytest.fixture
def keys(tmp_path):
    """Two local keyrings: the footer's master key and the PII columns' master key."""
    uris = {}
    for name in ("footer", "pii"):
        path = tmp_path / f"{name}.json"
        envelope_sdk.create_local_keyring(str(path), name)
        uris[name] = f"local://{path}#{name}"
    yield uris
    pme.close_clients()


def table(n=100, seed=0):
    return pa.table(
        {
            "id": list(range(seed, seed + n)),
            "ssn": [f"{i:03d}-{i % 89:02d}-{i % 9973:04d}" for i in range(seed, seed + n)],
            "email": [f"user{i}@example.com" for i in range(seed, seed + n)],
            "country": ["NL", "DE", "FR", "US"] * (n // 4) + ["NL"] * (n % 4),
        }
    )


COLUMN_KEYS = {"pii": ["ssn", "email"]}


def keyring_of(keys, name):
    return keys[name].removeprefix("local://").split("#")[0]


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("external", [True, False])
def test_pyarrow_writes_and_reads_through_envelope(tmp_path, keys, external):
    path = tmp_path / "users.parquet"
    t = table()
    pme.write_table(t, path, footer_key="footer", column_keys=COLUMN_KEYS, key_uris=keys,
                    external_key_material=external)
    sidecar = tmp_path / "_KEY_MATERIAL_FOR_users.parquet.json"
    assert sidecar.exists() == external
    assert pme.read_table(path, key_uris=keys) == t
    # Without keys, pyarrow cannot even read the footer.
    with pytest.raises(OSError, match="encrypted"):
        pq.read_table(path)
    raw = path.read_bytes()
    assert raw[-4:] == b"PARE" and b"example.com" not in raw


def test_key_material_is_envelope_ciphertexts_under_aes256_single_wrapping(tmp_path, keys):
    path = tmp_path / "users.parquet"
    pme.write_table(table(), path, footer_key="footer", column_keys=COLUMN_KEYS, key_uris=keys)
    material = dict(pme.key_material(path))
    assert sorted(material) == ["columnKey0", "columnKey1", "footerKey"]
    for ref, m in material.items():
        assert m["keyMaterialType"] == "PKMT1"
        assert m["doubleWrapping"] is False
        assert m["masterKeyID"] == ("footer" if ref == "footerKey" else "pii")
        info = envelope_sdk.Client.inspect(m["wrappedDEK"])
        assert info.suite == "AES-256-GCM"
        assert info.key_version == "1"
        # 32-byte data keys: AES-256 pages; bound to the master key id.
        client = pme.client_for(keys[m["masterKeyID"]])
        assert len(client.decrypt_text(m["wrappedDEK"], pme.AAD_PREFIX + m["masterKeyID"].encode())) == 32
        with pytest.raises(envelope_sdk.DecryptionFailed):
            client.decrypt_text(m["wrappedDEK"], pme.AAD_PREFIX + b"other")


def test_pme_settings_that_weaken_keys_are_refused(tmp_path, keys):
    # 128-bit data keys (pyarrow's default), or double wrapping even over 256-bit data keys
    # (its KEK, the only key the KMS client sees, is AES-128): refused.
    for options in ({"data_key_length_bits": 128, "double_wrapping": False},
                    {"data_key_length_bits": 256, "double_wrapping": True}):
        config = pe.EncryptionConfiguration(footer_key="footer", column_keys=COLUMN_KEYS, **options)
        with pytest.raises(Exception, match="256-bit data keys only"):
            props = pme.crypto_factory().file_encryption_properties(pme.connection_config(keys), config)
            pq.write_table(table(), tmp_path / "weak.parquet", encryption_properties=props)


def test_one_generate_call_for_many_files(tmp_path, keys):
    pme.close_clients()
    for i in range(20):
        pme.write_table(table(20, i * 20), tmp_path / f"part-{i}.parquet", footer_key="footer",
                        column_keys=COLUMN_KEYS, key_uris=keys)
    for name in ("footer", "pii"):
        stats = pme.client_for(keys[name]).stats()
        assert stats["kms_generate_calls"] == 1, stats
    pme.close_clients()
    for i in range(20):
        assert pme.read_table(tmp_path / f"part-{i}.parquet", key_uris=keys).num_rows == 20
    for name in ("footer", "pii"):
        stats = pme.client_for(keys[name]).stats()
        assert stats["kms_unwrap_calls"] == 1, stats


def test_a_reader_without_the_key_gets_a_clear_error(tmp_path, keys):
    path = tmp_path / "users.parquet"
    pme.write_table(table(), path, footer_key="footer", column_keys=COLUMN_KEYS, key_uris=keys)
    other = tmp_path / "other.json"
    envelope_sdk.create_local_keyring(str(other))
    wrong = dict(keys, footer=f"local://{other}")
    with pytest.raises(Exception, match="not own key|decryption failed|not found"):
        pme.read_table(path, key_uris=wrong)
    with pytest.raises(Exception, match="not an envelope key URI"):
        pme.read_table(path, key_uris={})


def test_key_material_of_another_kms_client_is_named(tmp_path, keys):
    class Base64Kms(pe.KmsClient):
        def wrap_key(self, key_bytes, master_key_identifier):
            return base64.b64encode(key_bytes).decode()

        def unwrap_key(self, wrapped_key, master_key_identifier):
            return base64.b64decode(wrapped_key)

    path = tmp_path / "foreign.parquet"
    factory = pe.CryptoFactory(lambda config: Base64Kms())
    config = pe.EncryptionConfiguration(footer_key="footer", column_keys=COLUMN_KEYS, double_wrapping=False,
                                        internal_key_material=False, data_key_length_bits=256)
    props = factory.file_encryption_properties(pe.KmsConnectionConfig(), config, str(path), pafs.LocalFileSystem())
    pq.write_table(table(), path, encryption_properties=props)
    with pytest.raises(Exception, match="another KMS client wrote this file"):
        pme.read_table(path, key_uris=keys)


def cli(*args, code=0):
    out = subprocess.run([required_env("ENVELOPE_CLI"), *args], capture_output=True, text=True)
    assert out.returncode == code, out
    return out


def census(tree):
    return json.loads(cli("census", "--parquet", str(tree), "--json").stdout)


def test_rotation_rewrites_sidecars_only_and_retire_follows(tmp_path, keys):
    lake = tmp_path / "lake"
    files = []
    for i in range(4):
        path = lake / f"day={i}" / "part-0.parquet"
        path.parent.mkdir(parents=True)
        pme.write_table(table(50, i * 50), path, footer_key="footer", column_keys=COLUMN_KEYS, key_uris=keys)
        files.append(path)
    # A file nobody encrypted: counted as unreadable, never written.
    pq.write_table(table(5), lake / "plain.parquet")
    data_before = {p: sha256(p) for p in files + [lake / "plain.parquet"]}
    sidecars_before = {p: (p.parent / f"_KEY_MATERIAL_FOR_{p.name}.json").read_bytes() for p in files}

    before = census(lake)
    assert before["scanned"] == 4 * 3 + 1
    assert sorted((g["key_id"], g["key_version"], g["count"]) for g in before["groups"]) == [
        ("footer", "1", 4), ("pii", "1", 8)]
    assert before["unreadable"]["malformed"]["count"] == 1

    for name in ("footer", "pii"):
        assert envelope_sdk.rotate_local_key(keyring_of(keys, name), name) == 2
    # Version 1 still holds keys: retire is refused, naming a file.
    refused = cli("retire", "--key", keys["pii"], "--version", "1", "--action", "check",
                  "--parquet", str(lake), code=4)
    assert "part-0.parquet#columnKey" in refused.stderr

    # Each master key's job moves its own keys and skips the other's.
    for name, own, other in (("footer", 4, 8), ("pii", 8, 4)):
        out = cli("rewrap", "--key", keys[name], "--parquet", str(lake), code=3)
        assert f"{own} rewrapped" in out.stdout and f"{other} skipped" in out.stdout, out.stdout
        assert "1 failed" in out.stdout and "not encrypted" in out.stdout, out.stdout
    after = census(lake)
    assert sorted((g["key_id"], g["key_version"], g["count"]) for g in after["groups"]) == [
        ("footer", "2", 4), ("pii", "2", 8)]
    # Data files byte-identical; every sidecar rewritten.
    assert {p: sha256(p) for p in data_before} == data_before
    for p, sidecar in sidecars_before.items():
        assert (p.parent / f"_KEY_MATERIAL_FOR_{p.name}.json").read_bytes() != sidecar

    # Version 1 destroyed: every file still reads (through new clients, no cached key).
    for name in ("footer", "pii"):
        envelope_sdk.destroy_local_key_version(keyring_of(keys, name), name, 1)
    pme.close_clients()
    for i, path in enumerate(files):
        assert pme.read_table(path, key_uris=keys) == table(50, i * 50)
    cli("retire", "--key", keys["pii"], "--version", "1", "--action", "check", "--parquet", str(lake))


def test_a_corrupted_sidecar_is_one_clear_line_and_nothing_is_written(tmp_path, keys):
    lake = tmp_path / "lake"
    lake.mkdir()
    path = lake / "part-0.parquet"
    pme.write_table(table(), path, footer_key="footer", column_keys=COLUMN_KEYS, key_uris=keys)
    sidecar = lake / "_KEY_MATERIAL_FOR_part-0.parquet.json"
    sidecar.write_bytes(sidecar.read_bytes()[:-20])
    broken = sidecar.read_bytes()
    result = census(lake)
    assert result["unreadable"]["malformed"]["count"] == 1 and not result["groups"]
    envelope_sdk.rotate_local_key(keyring_of(keys, "pii"), "pii")
    out = cli("rewrap", "--key", keys["pii"], "--parquet", str(lake), code=3)
    assert "not a key material sidecar" in out.stdout, out.stdout
    assert sidecar.read_bytes() == broken
    with pytest.raises(Exception):
        pme.read_table(path, key_uris=keys)


def test_a_tree_on_s3_rotates_by_sidecar(tmp_path, keys):
    endpoint = required_env("ENVELOPE_TEST_AWS_ENDPOINT")
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    s3 = pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                           endpoint_override=endpoint, allow_bucket_creation=True)
    bucket = f"pme-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    s3.create_dir(bucket)
    paths = [f"{bucket}/lake/day={i}/part-0.parquet" for i in range(3)]
    for i, path in enumerate(paths):
        pme.write_table(table(20, i * 20), path, footer_key="footer", column_keys=COLUMN_KEYS,
                        key_uris=keys, filesystem=s3)
    # Beside the tree, under a longer prefix: not part of it.
    pme.write_table(table(5), f"{bucket}/lake2/part-0.parquet", footer_key="footer",
                    column_keys=COLUMN_KEYS, key_uris=keys, filesystem=s3)

    def read(path):
        with s3.open_input_file(path) as f:
            return f.read()

    data_before = {p: hashlib.sha256(read(p)).hexdigest() for p in paths}
    url = f"s3://{bucket}/lake"

    def run(*args, code=0):
        out = subprocess.run([required_env("ENVELOPE_CLI"), *args, "--s3-endpoint", endpoint],
                             capture_output=True, text=True, env={**os.environ, **creds})
        assert out.returncode == code, out
        return out

    census = json.loads(run("census", "--parquet", url, "--json").stdout)
    assert sorted((g["key_id"], g["key_version"], g["count"]) for g in census["groups"]) == [
        ("footer", "1", 3), ("pii", "1", 6)]
    for name in ("footer", "pii"):
        envelope_sdk.rotate_local_key(keyring_of(keys, name), name)
        out = run("rewrap", "--key", keys[name], "--parquet", url)
        assert f"{3 if name == 'footer' else 6} rewrapped" in out.stdout, out.stdout
    census = json.loads(run("census", "--parquet", url, "--json").stdout)
    assert sorted((g["key_id"], g["key_version"], g["count"]) for g in census["groups"]) == [
        ("footer", "2", 3), ("pii", "2", 6)]
    assert {p: hashlib.sha256(read(p)).hexdigest() for p in paths} == data_before
    for name in ("footer", "pii"):
        envelope_sdk.destroy_local_key_version(keyring_of(keys, name), name, 1)
    run("retire", "--key", keys["pii"], "--version", "1", "--action", "check", "--parquet", url)
    pme.close_clients()
    for i, path in enumerate(paths):
        assert pme.read_table(path, key_uris=keys, filesystem=s3) == table(20, i * 20)
