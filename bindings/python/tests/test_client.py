import json
import os
import stat
import threading

import pytest

import envelope_sdk
from envelope_sdk import (
    BatchError,
    Client,
    DecryptionFailed,
    EnvelopeError,
    InvalidConfig,
    InvalidKeyUri,
    KeyVersionDestroyed,
    MalformedCiphertext,
    UnsupportedFormatVersion,
)

AAD = b"patients.ssn#42"


def test_round_trip_binary_and_text(client):
    ct = client.encrypt(b"123-45-6789", AAD)
    assert ct[:3] == b"EV\x01"
    assert len(ct) == 11 + 138
    assert client.decrypt(ct, AAD) == b"123-45-6789"
    text = client.encrypt_text("héllo wörld", AAD)
    assert text.startswith("ev1:")
    assert client.decrypt_text(text, AAD).decode() == "héllo wörld"
    assert envelope_sdk.to_text(ct).startswith("ev1:")
    assert envelope_sdk.from_text(envelope_sdk.to_text(ct)) == ct
    # bytearray and memoryview are accepted; empty values work
    assert client.decrypt(bytearray(ct), memoryview(AAD)) == b"123-45-6789"
    assert client.decrypt(client.encrypt(b""), b"") == b""


def test_caller_buffers(client):
    out = bytearray(512)
    n = client.encrypt_into(b"123-45-6789", out, AAD)
    assert n == 11 + 138 and out[:3] == b"EV\x01"
    ct = bytes(out[:n])
    plain = bytearray(64)
    m = client.decrypt_into(ct, memoryview(plain), AAD)
    assert bytes(plain[:m]) == b"123-45-6789"
    # Too small: the length needed, nothing written.
    small = bytearray(b"\xaa" * 10)
    with pytest.raises(envelope_sdk.BufferTooSmall) as info:
        client.decrypt_into(ct, small, AAD)
    assert info.value.needed == 11 and small == bytearray(b"\xaa" * 10)
    with pytest.raises(envelope_sdk.BufferTooSmall) as info:
        client.encrypt_into(b"123-45-6789", bytearray(20), AAD)
    assert info.value.needed == 11 + 138
    # A failed authentication leaves no plaintext in the buffer.
    plain = bytearray(64)
    with pytest.raises(DecryptionFailed):
        client.decrypt_into(ct, plain, b"another row")
    assert plain == bytearray(64)
    # Read-only buffers are refused.
    with pytest.raises(TypeError):
        client.decrypt_into(ct, b"\x00" * 64, AAD)


def test_large_values_take_the_allocating_path(client):
    big = os.urandom(200_000)
    ct = client.encrypt(big, AAD)
    assert client.decrypt(ct, AAD) == big


def test_wrong_aad_and_tampering_are_authentication_failures(client):
    ct = client.encrypt(b"secret", AAD)
    with pytest.raises(DecryptionFailed):
        client.decrypt(ct, b"patients.ssn#43")
    for i in (len(ct) - 1, 20, 5):
        tampered = bytearray(ct)
        tampered[i] ^= 1
        with pytest.raises(EnvelopeError) as err:
            client.decrypt(bytes(tampered), AAD)
        assert not err.value.retryable
    with pytest.raises(MalformedCiphertext) as err:
        client.decrypt(ct[:30], AAD)
    assert "truncated" in str(err.value)
    with pytest.raises(UnsupportedFormatVersion):
        client.decrypt(b"EV\x09" + ct[3:], AAD)
    with pytest.raises(UnsupportedFormatVersion):
        client.decrypt_text("ev4:AAAA", AAD)
    with pytest.raises(TypeError):
        client.encrypt("not bytes", AAD)  # type: ignore[arg-type]


def test_inspect_without_key(client):
    ct = client.encrypt(b"x" * 10, AAD)
    info = Client.inspect(ct)
    assert (info.suite, info.provider, info.key_id, info.key_version) == ("AES-256-GCM", "local", "default", "1")
    assert info.plaintext_len == 10 and info.overhead == 138
    assert Client.inspect(envelope_sdk.to_text(ct)) == info
    with pytest.raises(MalformedCiphertext):
        Client.inspect(b"nope")


def test_rotate_rewrap_destroy(keyring, uri):
    with Client(uri) as writer:
        a = writer.encrypt(b"alpha", b"a")
        b = writer.encrypt_text("bravo", b"b")
        same, changed = writer.rewrap(a)
        assert not changed and same == a
    assert envelope_sdk.rotate_local_key(str(keyring)) == 2
    with Client(uri) as c:
        new_a, changed = c.rewrap(a)
        assert changed
        assert Client.inspect(new_a).key_version == "2"
        assert new_a[-21:] == a[-21:], "body bytes unchanged"
        new_b, changed = c.rewrap(b)
        assert changed and isinstance(new_b, str)
        assert c.stats()["kms_rewrap_calls"] == 1, "one KMS call for one DEK"
    envelope_sdk.destroy_local_key_version(str(keyring), "default", 1)
    with Client(uri) as reader:
        with pytest.raises(KeyVersionDestroyed):
            reader.decrypt(a, b"a")
        assert reader.decrypt(new_a, b"a") == b"alpha"
        assert reader.decrypt_text(new_b, b"b") == b"bravo"


def test_reencrypt_changes_the_data_key(client):
    ct = client.encrypt(b"v", AAD)
    again = client.reencrypt(ct, AAD)
    assert client.decrypt(again, AAD) == b"v"
    assert again[16:48] != ct[16:48], "a new key commitment: a new DEK"


def test_batches_with_per_item_errors(client):
    values = [f"value {i}".encode() for i in range(100)]
    aads = [f"row={i}".encode() for i in range(100)]
    cts = client.encrypt_batch(values, aads)
    assert client.decrypt_batch(cts, aads) == values
    assert client.decrypt_batch(client.encrypt_batch(values, AAD), AAD) == values
    assert client.decrypt_batch(client.encrypt_batch(values), None) == values
    texts = client.encrypt_text_batch(["a", "b"], [b"1", b"2"])
    assert client.decrypt_text_batch(texts, [b"1", b"2"]) == [b"a", b"b"]
    assert client.encrypt_batch([]) == []
    bad = list(cts[:3])
    bad[1] = bad[1][:-1] + bytes([bad[1][-1] ^ 1])
    with pytest.raises(BatchError) as err:
        client.decrypt_batch(bad, aads[:3])
    results = err.value.results
    assert results[0] == values[0] and results[2] == values[2]
    assert isinstance(results[1], DecryptionFailed)
    assert list(err.value.failures) == [1]
    assert "item 1" in str(err.value)
    with pytest.raises(envelope_sdk.InvalidArgument):
        client.encrypt_batch([b"a"], [b"1", b"2"])
    with pytest.raises(TypeError):
        client.encrypt_batch([b"a", "b"])  # type: ignore[list-item]


def test_cache_counts_and_disabled_cache(uri):
    with Client(uri) as c:
        for i in range(1000):
            c.encrypt(b"x", b"")
        stats = c.stats()
        assert stats["kms_generate_calls"] == 1
        assert stats["active_dek"]["messages"] == 1000
    with Client(uri, cache=False) as c:
        for _ in range(5):
            c.encrypt(b"x", b"")
        assert c.stats()["kms_generate_calls"] == 5
    with Client(uri, max_messages=10) as c:
        for _ in range(25):
            c.encrypt(b"x", b"")
        assert c.stats()["deks_created"] == 3


def test_configuration_errors(uri, tmp_path):
    with pytest.raises(InvalidKeyUri):
        Client("s3://bucket/key")
    with pytest.raises(InvalidKeyUri, match="cryptoKeys/K"):  # the GCP backend's own check
        Client("gcp-kms://projects/p/locations/l/keyRings/r")
    with pytest.raises(InvalidConfig):
        Client(uri, max_messages=2**32 + 1)
    with pytest.raises(envelope_sdk.InvalidArgument):
        Client(uri, suite="DES")
    ring = tmp_path / "open.json"
    envelope_sdk.create_local_keyring(str(ring))
    os.chmod(ring, 0o644)
    with pytest.raises(envelope_sdk.KeyringError) as err:
        Client(f"local://{ring}").encrypt(b"x")
    assert "chmod 600" in str(err.value)
    assert stat.S_IMODE(os.stat(tmp_path / "open.json").st_mode) == 0o644


def test_xchacha_and_encryption_context(uri):
    with Client(uri, suite="XChaCha20-Poly1305", encryption_context={"app": "billing"}) as c:
        ct = c.encrypt(b"x", AAD)
        assert Client.inspect(ct).suite == "XChaCha20-Poly1305"
    with Client(uri, encryption_context={"app": "other"}) as other:
        with pytest.raises(DecryptionFailed):
            other.decrypt(ct, AAD)
    with Client(uri, encryption_context={"app": "billing"}) as same:
        assert same.decrypt(ct, AAD) == b"x"


def test_closed_client(uri):
    c = Client(uri)
    c.close()
    c.close()
    with pytest.raises(EnvelopeError, match="closed"):
        c.encrypt(b"x")
    with pytest.raises(EnvelopeError, match="closed"):
        c.decrypt(b"x")


def test_threads_share_one_client(client):
    errors = []

    def work(n):
        try:
            for i in range(300):
                aad = f"{n}:{i}".encode()
                assert client.decrypt(client.encrypt(aad, aad), aad) == aad
            cts = client.encrypt_batch([b"v"] * 50, b"col")
            assert client.decrypt_batch(cts, b"col") == [b"v"] * 50
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert client.stats()["kms_generate_calls"] == 1


def test_errors_carry_no_key_material(keyring, client):
    material = json.loads(keyring.read_text())["keys"]["default"]["versions"][0]["material"]
    ct = client.encrypt(b"s", AAD)
    messages = []
    for bad in (ct[:-1], ct[:40], b"EV\x01\x09" + ct[4:]):
        try:
            client.decrypt(bad, AAD)
        except EnvelopeError as e:
            messages.append(str(e) + repr(e))
    assert messages and not any(material in m for m in messages)
    assert "material" not in repr(client)


def _junk(ct: bytes, i: int) -> bytes:
    """``ct`` with its 60-byte local wrapped DEK replaced by junk: a distinct KEK reference."""
    info = Client.inspect(ct)
    end = info.header_len
    return ct[: end - 60] + bytes((i * 7 + j) % 256 for j in range(60)) + ct[end:]


def test_junk_headers_cost_bounded_kms_calls(keyring, uri):
    with Client(uri) as writer:
        ct = writer.encrypt(b"123-45-6789", AAD)
    with Client(uri, max_unwraps_per_second=5) as reader:
        throttled = 0
        for i in range(200):
            try:
                reader.decrypt(_junk(ct, i), AAD)
            except envelope_sdk.Throttled as e:
                assert e.retryable
                throttled += 1
            except DecryptionFailed:
                pass
        stats = reader.stats()
        assert stats["kms_unwrap_calls"] <= 5 + 5 * 2, stats  # a burst, then 5/s (the loop takes well under 2 s)
        assert stats["unwraps_refused_rate_limited"] == throttled >= 150
    with Client(uri) as reader:  # the default negative cache: one call per distinct junk header
        for _ in range(20):
            for i in range(3):
                with pytest.raises(DecryptionFailed):
                    reader.decrypt(_junk(ct, i), AAD)
        stats = reader.stats()
        assert stats["kms_unwrap_calls"] == 3 and stats["unwraps_refused_remembered"] == 57, stats
    with pytest.raises(envelope_sdk.InvalidArgument):
        Client(uri, max_unwraps_per_second=0)


def test_crypto_provider_is_reported():
    assert envelope_sdk.crypto_provider() == "aws-lc-rs"  # the package builds the default provider
    assert envelope_sdk.fips_mode() is False


def test_native_version():
    assert envelope_sdk.native_version() == "0.1.0"
    # One version for the project: the package's metadata is the native library's.
    assert envelope_sdk.__version__ == envelope_sdk.native_version()


def _vault_uri() -> str:
    """A fresh Transit key on the OpenBao server scripts/test.sh started; its URI."""
    import urllib.request
    import uuid

    from conftest import required_env

    addr = required_env("ENVELOPE_TEST_VAULT_ADDR")
    token = required_env("ENVELOPE_TEST_VAULT_TOKEN")
    name = f"py-fork-{uuid.uuid4().hex[:8]}"
    request = urllib.request.Request(
        f"{addr}/v1/transit/keys/{name}", data=b"{}", method="POST", headers={"X-Vault-Token": token}
    )
    urllib.request.urlopen(request, timeout=10).close()
    os.environ["VAULT_TOKEN"] = token  # read by the native client's VaultBuilder::from_env
    return f"vault://{addr.removeprefix('http://')}/transit/keys/{name}?http=loopback"


def _gcp_uri() -> str:
    """A fresh key ring and key on the drongo (Cloud KMS) server scripts/test.sh started."""
    import json
    import urllib.request
    import uuid

    from conftest import required_env

    endpoint = required_env("ENVELOPE_TEST_GCP_ENDPOINT")
    ring = f"projects/py/locations/global/keyRings/py-{uuid.uuid4().hex[:8]}"
    for url, body in [
        (f"{endpoint}/v1/projects/py/locations/global/keyRings?keyRingId={ring.rsplit('/', 1)[1]}", {}),
        (f"{endpoint}/v1/{ring}/cryptoKeys?cryptoKeyId=k", {"purpose": "ENCRYPT_DECRYPT"}),
    ]:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(request, timeout=10).close()
    os.environ["ENVELOPE_GCP_KMS_ENDPOINT"] = endpoint  # read by GcpKmsBuilder::from_env
    return f"gcp-kms://{ring}/cryptoKeys/k?http=loopback&credentials=anonymous"


def test_gcp_key_uri():
    """The package reaches Google Cloud KMS through the key URI like any other backend: the
    header names the CryptoKey and its version, a cold client decrypts, and a wrong context
    (Cloud KMS's additional authenticated data) is refused by the server."""
    uri = _gcp_uri()
    with Client(uri) as c:
        ct = c.encrypt(b"123-45-6789", b"users.ssn#1")
        info = Client.inspect(ct)
        assert info.provider == "gcp-kms"
        assert info.key_id == uri.removeprefix("gcp-kms://").split("?")[0]
        assert info.key_version == "1"
    with Client(uri, cache=False) as cold:
        assert cold.decrypt(ct, b"users.ssn#1") == b"123-45-6789"
    with Client(uri, cache=False, encryption_context={"tenant": "other"}) as other:
        with pytest.raises(envelope_sdk.DecryptionFailed):
            other.decrypt(ct, b"users.ssn#1")


@pytest.mark.parametrize("make_uri", [_vault_uri, _gcp_uri], ids=["vault", "gcp"])
def test_client_works_in_a_forked_child(make_uri):
    """A worker forked after the client was made (gunicorn --preload, multiprocessing)
    gets a working client: the parent's KMS runtime thread does not exist in the child, so
    its first KMS call starts a runtime of its own. Network KMSs are used because they need
    the runtime's I/O driver and pooled connections (a local keyring would not notice)."""
    import signal

    with Client(make_uri(), cache=False) as c:  # every call is a KMS call
        parent_ct = c.encrypt(b"parent", b"a")
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            signal.alarm(5)  # a hang, or a wait on a pooled connection of the parent, fails
            try:
                ct = c.encrypt(b"child", b"a")
                ok = c.decrypt(ct, b"a") == b"child" and c.decrypt(parent_ct, b"a") == b"parent"
                os._exit(0 if ok else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert c.decrypt(parent_ct, b"a") == b"parent"
