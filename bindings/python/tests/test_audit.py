"""The key-use log from Python: a client's KMS calls and per-minute cache use land in a
hash-chained, signed log that `envelope audit verify` accepts, with no secret in it; a bad
option is refused with a clear error."""

import json
import subprocess

import pytest

import envelope_sdk
from conftest import required_env


def envelope_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([required_env("ENVELOPE_CLI"), *args], capture_output=True, text=True)


@pytest.fixture
def signing_key(tmp_path):
    key = tmp_path / "audit.key"
    out = envelope_cli("audit", "keygen", "--name", "py-audit", "--out", str(key))
    assert out.returncode == 0, out.stderr
    return key


def lines(log_dir):
    out = []
    for segment in sorted(log_dir.glob("audit-*.jsonl")):
        out.extend(json.loads(line) for line in segment.read_text().splitlines())
    return out


def test_client_key_use_is_logged_and_verifies(uri, tmp_path, signing_key):
    log_dir = tmp_path / "log"
    secret = b"PLAINTEXT-CANARY-4111"
    aad = b"AAD-CANARY-users.card#7"
    audit = {"dir": log_dir, "signer": signing_key, "actor": "py-billing", "label": "users.card"}
    with envelope_sdk.Client(uri, audit=audit) as writer, envelope_sdk.Client(uri, audit=audit) as reader:
        cts = [writer.encrypt(secret, aad) for _ in range(50)]
        for ct in cts:
            assert reader.decrypt(ct, aad) == secret
    verified = envelope_cli("audit", "verify", str(log_dir), "--public-key", str(signing_key.with_suffix(".pub")), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["status"] == "verified", report
    events = lines(log_dir)
    generate = [e for e in events if e["type"] == "kms" and e["op"] == "generate"]
    assert len(generate) == 1 and generate[0]["label"] == "users.card" and generate[0]["actor"] == "py-billing"
    cached = {op: sum(e["count"] for e in events if e["type"] == "cache" and e["op"] == op) for op in ("encrypt", "decrypt")}
    assert cached == {"encrypt": 50, "decrypt": 50}, cached
    text = "".join(p.read_text() for p in log_dir.glob("audit-*.jsonl"))
    assert "CANARY" not in text


def test_bad_audit_options_are_refused(uri, tmp_path, signing_key):
    with pytest.raises(envelope_sdk.InvalidArgument, match="dir and signer"):
        envelope_sdk.Client(uri, audit={"dir": str(tmp_path / "log")})
    with pytest.raises(envelope_sdk.InvalidArgument, match="block, block:SECONDS or count"):
        envelope_sdk.Client(uri, audit={"dir": str(tmp_path / "log"), "signer": str(signing_key), "policy": "drop"})
    loose = tmp_path / "loose.key"
    loose.write_text(signing_key.read_text())
    loose.chmod(0o644)
    with pytest.raises(envelope_sdk.InvalidArgument, match="chmod 600"):
        envelope_sdk.Client(uri, audit={"dir": str(tmp_path / "log2"), "signer": str(loose)})
