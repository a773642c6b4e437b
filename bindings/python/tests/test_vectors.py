"""Every vector of testvectors/v1.json, through the Python package."""

import base64
import json
import os

import pytest

import envelope_sdk
from envelope_sdk import Client, EnvelopeError
from envelope_sdk import errors as E

from conftest import REPO

VECTORS = json.loads((REPO / "testvectors" / "v1.json").read_text())

KINDS = {
    "decryption_failed": E.DecryptionFailed,
    "malformed": E.MalformedCiphertext,
    "unsupported_format_version": E.UnsupportedFormatVersion,
    "unsupported_suite": E.UnsupportedSuite,
    "unsupported_provider": E.UnsupportedProvider,
    "key_not_owned": E.KeyNotOwned,
    "key_not_found": E.KeyNotFound,
    "key_version_not_found": E.KeyVersionNotFound,
    "key_version_destroyed": E.KeyVersionDestroyed,
}


def vectors_uri_for(doc, tmp_path_factory):
    """A keyring file (the documented format) holding a vectors file's KEKs; its key URI."""
    ring = doc["keyring"]
    versions = []
    for version, entry in ring["versions"].items():
        v = {"version": int(version), "state": entry["state"], "created_at": 0}
        if "kek" in entry:
            v["material"] = base64.b64encode(bytes.fromhex(entry["kek"])).decode()
        versions.append(v)
    doc = {
        "envelope_keyring": 1,
        "keys": {ring["key_id"]: {"primary_version": ring["primary_version"], "versions": versions}},
    }
    path = tmp_path_factory.mktemp("vectors") / "keyring.json"
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)
    return f"local://{path}#{ring['key_id']}"


@pytest.fixture(scope="module")
def vectors_uri(tmp_path_factory):
    return vectors_uri_for(VECTORS, tmp_path_factory)


def plaintext_of(v):
    if "plaintext" in v:
        return bytes.fromhex(v["plaintext"])
    pattern = bytes.fromhex(v["plaintext_repeat"]["hex"])
    n = v["plaintext_repeat"]["len"]
    return (pattern * (n // len(pattern) + 1))[:n]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vector(vector, vectors_uri):
    # Fresh: no DEK carried between vectors.
    with Client(vectors_uri, encryption_context=vector.get("encryption_context")) as client:
        ct = bytes.fromhex(vector["ciphertext"])
        aad = bytes.fromhex(vector["aad"])
        if vector["expected"] == "ok":
            assert client.decrypt(ct, aad) == plaintext_of(vector)
            info = Client.inspect(ct)
            assert info.suite == vector["suite"] and info.key_version == vector["key_version"]
            if "ciphertext_text" in vector:
                assert client.decrypt_text(vector["ciphertext_text"], aad) == plaintext_of(vector)
        else:
            with pytest.raises(EnvelopeError) as err:
                client.decrypt(ct, aad)
            assert type(err.value) is KINDS[vector["expected"]], str(err.value)


def test_every_text_rule_has_a_vector():
    assert len(VECTORS["text_vectors"]) >= 10


@pytest.mark.parametrize("vector", VECTORS["text_vectors"], ids=lambda v: v["name"])
def test_text_vector(vector, vectors_uri):
    with Client(vectors_uri) as client:
        with pytest.raises(EnvelopeError) as err:
            client.decrypt_text(vector["text"], b"")
        assert type(err.value) is KINDS[vector["expected"]]
