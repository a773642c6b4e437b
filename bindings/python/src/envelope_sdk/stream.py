"""Streams (format version 4) as file objects: :meth:`envelope_sdk.Client.open`.

A stream is a large file or object encrypted in fixed-size segments under one KMS-wrapped
data key (``docs/FORMAT.md``, "Streaming form"). Writing encrypts in constant memory;
reading releases only authenticated segments and, over a seekable file, reads only the
segments a read covers (``seek`` then ``read``). The bytes are the same as the Rust SDK's,
the CLI's and the Go package's.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Optional, Union

from ._native import ffi, lib
from .errors import EnvelopeError, error_for

BytesLike = Union[bytes, bytearray, memoryview]
PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]

_TAG = 16


def _last_error() -> str:
    buf = ffi.new("char[]", 512)
    n = ffi.new("size_t *")
    lib.envelope_last_error_message(buf, 512, n)
    return ffi.unpack(buf, min(n[0], 511)).decode("utf-8", "replace")


def _check(status: int) -> None:
    if status != 0:
        raise error_for(status, _last_error())


def _take(ptr, n) -> bytes:
    try:
        return ffi.unpack(ptr, n) if n else b""
    finally:
        lib.envelope_bytes_free(ptr, n)


def _open_file(file: PathOrFile, mode: str):
    if isinstance(file, (str, bytes, os.PathLike)):
        return open(file, mode), True
    return file, False


class StreamWriter(io.RawIOBase):
    """Encrypts everything written into ``file`` as one stream; ``close`` (or leaving the
    ``with`` block) seals the final segment. A writer that is not closed leaves a stream
    every reader refuses as truncated. Not seekable."""

    def __init__(self, client, file: PathOrFile, aad: bytes, segment_size: int, threads: int) -> None:
        super().__init__()
        self._file, self._owned = _open_file(file, "wb")
        out = ffi.new("envelope_stream_encryptor **")
        try:
            _check(lib.envelope_stream_encryptor_new(client._client(), aad, len(aad), segment_size, threads, out))
        except BaseException:
            if self._owned:
                self._file.close()
            raise
        self._enc = out[0]
        self._ptr = ffi.new("char **")
        self._len = ffi.new("size_t *")

    def writable(self) -> bool:
        return True

    def write(self, data: BytesLike) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed stream")
        view = bytes(data)
        _check(lib.envelope_stream_encrypt_update(self._enc, view, len(view), self._ptr, self._len))
        self._file.write(_take(self._ptr[0], self._len[0]))
        return len(view)

    def close(self) -> None:
        if self.closed:
            return
        try:
            _check(lib.envelope_stream_encrypt_finish(self._enc, self._ptr, self._len))
            self._file.write(_take(self._ptr[0], self._len[0]))
            self._file.flush()
        finally:
            lib.envelope_stream_encryptor_free(self._enc)
            self._enc = ffi.NULL
            if self._owned:
                self._file.close()
            super().close()

    def abandon(self) -> None:
        """Stops without sealing the final segment: what was written is a truncated stream
        that no reader accepts."""
        if not self.closed:
            lib.envelope_stream_encryptor_free(self._enc)
            self._enc = ffi.NULL
            if self._owned:
                self._file.close()
            super().close()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abandon()
        else:
            self.close()


class StreamReader(io.RawIOBase):
    """Decrypts a stream read from ``file``. Over a seekable file: ``seek``/``tell`` on the
    plaintext, and each ``read`` opens only the segments it covers. Over a pipe: read in
    order. A segment that does not authenticate raises (``DecryptionFailed``,
    ``TruncatedStream``, ``MalformedCiphertext``) before any of its bytes are returned."""

    def __init__(self, client, file: PathOrFile, aad: bytes, threads: int) -> None:
        super().__init__()
        self._file, self._owned = _open_file(file, "rb")
        try:
            self._open(client, aad, threads)
        except BaseException:
            if self._owned:
                self._file.close()
            raise

    def _open(self, client, aad: bytes, threads: int) -> None:
        self._seekable = False
        try:
            self._seekable = self._file.seekable()
        except (AttributeError, OSError):
            pass
        if self._seekable:
            self._base = self._file.tell()
        prefix = self._read_exactly(10)
        n = ffi.new("size_t *")
        _check(lib.envelope_stream_header_len(prefix, len(prefix), n))
        header = prefix + self._read_exactly(n[0] - len(prefix))
        out = ffi.new("envelope_stream_decryptor **")
        _check(lib.envelope_stream_decryptor_new(client._client(), header, len(header), aad, len(aad), threads, out))
        self._dec = out[0]
        size, hlen = ffi.new("uint32_t *"), ffi.new("size_t *")
        _check(lib.envelope_stream_decryptor_layout(self._dec, size, hlen))
        self._size, self._header_len = size[0], hlen[0]
        self._pos = 0
        self._buf = b""  # the plaintext of the segment(s) opened last
        self._buf_start = 0
        self._ptr, self._len = ffi.new("char **"), ffi.new("size_t *")
        self._done = False
        if self._seekable:
            end = self._file.seek(0, io.SEEK_END)
            self._total = end - self._base
            count = ffi.new("uint64_t *")
            _check(lib.envelope_stream_segment_count(self._dec, self._total, count))
            self._count = count[0]
            last_len = self._total - self._header_len - (self._count - 1) * (self._size + _TAG)
            self._plaintext_len = (self._count - 1) * self._size + last_len - _TAG

    def _read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._file.read(n - len(data))
            if not chunk:
                raise error_for(101, f"the stream ends inside its header ({len(data)} of {n} bytes)")
            data += chunk
        return data

    @property
    def segment_size(self) -> int:
        """Plaintext bytes per segment."""
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("this stream is read in order (its file is not seekable)")
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self._plaintext_len + offset
        else:
            raise ValueError(f"whence {whence}")
        if target < 0:
            raise ValueError("negative seek position")
        self._pos = target
        return target

    def __len__(self) -> int:
        if not self._seekable:
            raise TypeError("the length of a stream read in order is not known")
        return self._plaintext_len

    def _segment(self, index: int) -> bytes:
        """Opens segment ``index`` of a seekable stream."""
        last = index == self._count - 1
        offset = self._base + self._header_len + index * (self._size + _TAG)
        length = (self._total - self._header_len - index * (self._size + _TAG)) if last else self._size + _TAG
        self._file.seek(offset)
        sealed = self._read_exactly(length)
        out = ffi.new("char[]", max(length - _TAG, 1))
        _check(lib.envelope_stream_decrypt_segment(self._dec, index, last, sealed, len(sealed), out, length - _TAG, self._len))
        return ffi.unpack(out, self._len[0])

    def _fill_sequential(self) -> bool:
        """Feeds the next chunk of a pipe; False at the end."""
        if self._done:
            return False
        chunk = self._file.read(1 << 20)
        if chunk:
            _check(lib.envelope_stream_decrypt_update(self._dec, chunk, len(chunk), self._ptr, self._len))
        else:
            self._done = True
            _check(lib.envelope_stream_decrypt_finish(self._dec, self._ptr, self._len))
        self._buf_start += len(self._buf)
        self._buf = _take(self._ptr[0], self._len[0])
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        if self.closed:
            raise ValueError("read from a closed stream")
        if size is None or size < 0:
            return self.readall()
        out = bytearray()
        while len(out) < size:
            at = self._pos - self._buf_start
            if 0 <= at < len(self._buf):
                piece = self._buf[at : at + size - len(out)]
                out += piece
                self._pos += len(piece)
                continue
            if self._seekable:
                if self._pos >= self._plaintext_len:
                    break
                index = self._pos // self._size
                self._buf, self._buf_start = self._segment(index), index * self._size
            elif not self._fill_sequential():
                break
        return bytes(out)

    def readall(self) -> bytes:
        chunks = []
        while True:
            chunk = self.read(1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            if getattr(self, "_dec", ffi.NULL) != ffi.NULL:
                lib.envelope_stream_decryptor_free(self._dec)
                self._dec = ffi.NULL
        finally:
            self._buf = b""
            if self._owned:
                self._file.close()
            super().close()


def open_stream(client, file: PathOrFile, mode: str, aad: BytesLike, segment_size: Optional[int], threads: Optional[int]):
    """See :meth:`envelope_sdk.Client.open`."""
    aad = bytes(aad)
    threads = threads if threads is not None else min(os.cpu_count() or 1, 4)
    if mode in ("wb", "w"):
        return StreamWriter(client, file, aad, segment_size or 0, threads)
    if mode in ("rb", "r"):
        return StreamReader(client, file, aad, threads)
    raise ValueError(f"mode {mode!r}: a stream is opened 'rb' or 'wb'")


__all__ = ["StreamReader", "StreamWriter", "EnvelopeError"]
