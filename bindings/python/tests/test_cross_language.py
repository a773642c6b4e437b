"""Each of Rust, Python and Go encrypts; the other two decrypt. The three programs share one
keyring file; a fresh process per call means no cache hides a format disagreement."""

import subprocess
import sys
from pathlib import Path

import pytest

import envelope_sdk

from conftest import required_env

PY = [sys.executable, str(Path(__file__).with_name("interop_cli.py"))]


def programs():
    return {
        "rust": [required_env("ENVELOPE_INTEROP_RUST")],
        "python": PY,
        "go": [required_env("ENVELOPE_INTEROP_GO")],
    }


def run(program, *args):
    result = subprocess.run([*program, *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"{program[0]} {args[0]} failed: {result.stderr.strip()}")
    return result.stdout.strip()


@pytest.mark.parametrize("writer", ["rust", "python", "go"])
def test_each_language_decrypts_the_others_compact_form(writer, uri, tmp_path):
    """The compact form through one shared SQLite DEK store: each writer adds its DEK row."""
    progs = programs()
    store = f"sqlite://{tmp_path / 'deks.sqlite'}"
    aad = f"interop.{writer}#2".encode().hex()
    plaintext = b"123-45-6789".hex()
    ciphertext = run(progs[writer], "encrypt", uri, aad, plaintext, store)
    assert len(bytes.fromhex(ciphertext)) == 11 + 72
    info = envelope_sdk.Client.inspect(bytes.fromhex(ciphertext))
    assert (info.format_version, info.committing, info.dek_id, info.provider) == (3, True, 1, None)
    for reader, program in progs.items():
        if reader == writer:
            continue
        assert run(program, "decrypt", uri, aad, ciphertext, store) == plaintext, f"{reader} reading {writer}"
        with pytest.raises(AssertionError, match="decryption failed"):
            run(program, "decrypt", uri, "00", ciphertext, store)
        # Without the store, a clear refusal rather than a wrong answer.
        with pytest.raises(AssertionError, match="DEK store"):
            run(program, "decrypt", uri, aad, ciphertext)


@pytest.mark.parametrize("writer", ["rust", "python", "go"])
def test_each_language_decrypts_the_others(writer, uri, keyring):
    progs = programs()
    aad = f"interop.{writer}#1".encode().hex()
    plaintext = f"written by {writer}: 123-45-6789 ✓".encode().hex()
    ciphertext = run(progs[writer], "encrypt", uri, aad, plaintext)
    info = envelope_sdk.Client.inspect(bytes.fromhex(ciphertext))
    assert (info.provider, info.key_id, info.key_version) == ("local", "default", "1")
    for reader, program in progs.items():
        if reader == writer:
            continue
        assert run(program, "decrypt", uri, aad, ciphertext) == plaintext, f"{reader} reading {writer}"
        # and each reader enforces the AAD
        with pytest.raises(AssertionError, match="decryption failed"):
            run(program, "decrypt", uri, "00", ciphertext)


@pytest.mark.parametrize("writer", ["rust", "python", "go"])
def test_each_language_decrypts_the_others_streams(writer, uri, tmp_path):
    """A 1 MB stream file written by one language (64 KiB segments, 2 threads in Rust),
    read back by the other two (Go with io.ReaderAt, Python through its file object)."""
    progs = programs()
    plain = bytes((i * 13 + i // 65536) & 0xFF for i in range(1_000_003))
    src = tmp_path / "plain"
    src.write_bytes(plain)
    stream = tmp_path / f"{writer}.ev"
    aad = f"stream.{writer}".encode().hex()
    run(progs[writer], "stream-encrypt", uri, aad, str(src), str(stream))
    assert envelope_sdk.Client.inspect(stream.read_bytes()).format_version == 4
    for reader, program in progs.items():
        if reader == writer:
            continue
        out = tmp_path / f"{writer}-by-{reader}"
        run(program, "stream-decrypt", uri, aad, str(stream), str(out))
        assert out.read_bytes() == plain, f"{reader} reading {writer}'s stream"
        with pytest.raises(AssertionError, match="decryption failed"):
            run(program, "stream-decrypt", uri, "00", str(stream), str(tmp_path / "wrong"))
