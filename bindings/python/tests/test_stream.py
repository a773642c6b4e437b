"""Streams (format version 4) through Client.open: round trips through files and pipes,
seeking, the bytes the CLI writes, truncation and tampering refused before any bytes of
the bad segment, and a stream the Go package wrote (test_cross_language covers the
other direction)."""

import io
import os
import subprocess

import pytest

from envelope_sdk import DecryptionFailed, MalformedCiphertext, TruncatedStream

from conftest import required_env

AAD = b"backup=nightly"


def data(n: int, seed: int = 1) -> bytes:
    return bytes((i * 31 + i // 4096 + seed) & 0xFF for i in range(n))


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 100, 200_000])
def test_round_trip_through_a_file_and_a_pipe(client, tmp_path, size):
    plain = data(size)
    path = tmp_path / "s.ev"
    with client.open(path, "wb", aad=AAD, segment_size=4096, threads=2) as out:
        for at in range(0, size, 3001):
            out.write(plain[at : at + 3001])
    with client.open(path, "rb", aad=AAD) as f:
        assert f.read() == plain
    # A pipe: no seeking, read in order.
    with client.open(io.BufferedReader(NoSeek(path.read_bytes())), "rb", aad=AAD) as f:
        assert not f.seekable()
        assert f.read() == plain


class NoSeek(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), len(self._data) - self._at, 7000)
        b[:n] = self._data[self._at : self._at + n]
        self._at += n
        return n


def test_seek_reads_only_the_segments_it_needs(client, tmp_path):
    plain = data(50 * 4096 + 7)
    path = tmp_path / "s.ev"
    with client.open(path, "wb", aad=AAD, segment_size=4096) as out:
        out.write(plain)
    with client.open(path, "rb", aad=AAD) as f:
        assert len(f) == len(plain)
        for offset in (0, 4090, 77 * 1000, len(plain) - 3):
            f.seek(offset)
            assert f.read(20) == plain[offset : offset + 20]
            assert f.tell() == offset + len(plain[offset : offset + 20])
        f.seek(-5, io.SEEK_END)
        assert f.read() == plain[-5:]


def test_the_cli_reads_what_python_writes_and_the_other_way(client, tmp_path, uri):
    cli, keyring_uri = required_env("ENVELOPE_CLI"), uri
    plain = data(300_000, 3)
    py_stream = tmp_path / "py.ev"
    with client.open(py_stream, "wb", aad=AAD) as out:
        out.write(plain)
    got = subprocess.run([cli, "decrypt", "--key", keyring_uri, "-i", str(py_stream), "--aad", AAD.decode()],
                         check=True, capture_output=True).stdout
    assert got == plain
    src = tmp_path / "p"
    src.write_bytes(plain)
    cli_stream = tmp_path / "cli.ev"
    subprocess.run([cli, "encrypt", "--key", keyring_uri, "-i", str(src), "-o", str(cli_stream),
                    "--form", "stream", "--aad", AAD.decode()], check=True)
    with client.open(cli_stream, "rb", aad=AAD) as f:
        assert f.read() == plain


def test_cuts_and_flips_are_refused_before_their_bytes(client, tmp_path):
    plain = data(5 * 4096)
    path = tmp_path / "s.ev"
    with client.open(path, "wb", aad=AAD, segment_size=4096) as out:
        out.write(plain)
    stream = path.read_bytes()
    header = len(stream) - 5 * (4096 + 16)
    cut = tmp_path / "cut.ev"
    cut.write_bytes(stream[: header + 3 * (4096 + 16)])
    with client.open(cut, "rb", aad=AAD) as f, pytest.raises(TruncatedStream):
        f.read()
    with client.open(io.BufferedReader(NoSeek(cut.read_bytes())), "rb", aad=AAD) as f:
        got = b""
        with pytest.raises(TruncatedStream):
            while True:
                chunk = f.read(4096)
                if not chunk:
                    break
                got += chunk
        assert plain.startswith(got)
    flipped = bytearray(stream)
    flipped[header + 2 * (4096 + 16) + 9] ^= 1
    bad = tmp_path / "bad.ev"
    bad.write_bytes(bytes(flipped))
    with client.open(bad, "rb", aad=AAD) as f:
        assert f.read(2 * 4096) == plain[: 2 * 4096]
        with pytest.raises(DecryptionFailed):
            f.read(1)
    with client.open(path, "rb", aad=b"other") as f, pytest.raises(DecryptionFailed):
        f.read(1)
    with pytest.raises(MalformedCiphertext):
        client.open(io.BytesIO(b"EV\x04"), "rb")


def test_a_writer_left_in_an_exception_leaves_a_truncated_stream(client, tmp_path):
    path = tmp_path / "s.ev"
    with pytest.raises(RuntimeError):
        with client.open(path, "wb", segment_size=4096) as out:
            out.write(data(100_000))
            raise RuntimeError("the producer failed")
    with pytest.raises(TruncatedStream):
        with client.open(path, "rb") as f:
            f.read()


def test_modes_are_checked(client, tmp_path):
    with pytest.raises(ValueError):
        client.open(tmp_path / "x", "ab")
    assert not os.path.exists(tmp_path / "x")
