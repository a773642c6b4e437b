"""The envelope client: encrypt, decrypt, rewrap, re-encrypt and inspect, over the C ABI."""

from __future__ import annotations

import base64
import json
import os
import threading
from array import array
from dataclasses import dataclass
from itertools import accumulate, islice
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ._native import ffi, lib
from .errors import BatchError, BufferTooSmall, EnvelopeError, InvalidArgument, error_for

TEXT_PREFIX = "ev1:"
COMPACT_TEXT_PREFIX = "ev3:"
COMPACT_V2_TEXT_PREFIX = "ev2:"
SUITES = {"AES-256-GCM": 1, "XChaCha20-Poly1305": 2}
_OK = 0
_BUFFER_TOO_SMALL = 4
_NULL_ARGUMENT = 1
# Per-thread scratch for single-value results: values that fit are returned with one native
# call and one copy; larger ones take the allocating path.
_SCRATCH = 64 * 1024
# Room left for the header when choosing the scratch path for an encryption.
_HEADER_ROOM = 4096
_encrypt_into = lib.envelope_encrypt_into
_decrypt_into = lib.envelope_decrypt_into
_unpack = ffi.unpack
_memmove = ffi.memmove
_ZEROS = bytes(_SCRATCH)

BytesLike = Union[bytes, bytearray, memoryview]


# An array typecode as wide as size_t, for zero-copy offset arrays.
_SIZE_T = next(code for code in ("Q", "L", "I") if array(code).itemsize == ffi.sizeof("size_t"))
_SIZE_T_BYTES = ffi.sizeof("size_t")


def _join(values: Sequence[BytesLike], name: str) -> bytes:
    try:
        return b"".join(values)
    except TypeError:
        bad = next(type(v).__name__ for v in values if not isinstance(v, (bytes, bytearray, memoryview)))
        raise TypeError(f"every element of {name} must be bytes, not {bad}") from None


def _last_error() -> str:
    buf = ffi.new("char[1024]")
    lib.envelope_last_error_message(buf, 1024, ffi.NULL)
    return ffi.string(buf).decode("utf-8", "replace")


def _check(status: int) -> None:
    if status != _OK:
        detail = _last_error() or ffi.string(lib.envelope_status_message(status)).decode()
        raise error_for(status, detail)


def _bytes(value: BytesLike, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be bytes, not {type(value).__name__}")


class _Out(threading.local):
    """Per-thread out-pointers, reused across calls (allocating them costs more than AES)."""

    def __init__(self) -> None:
        self.ptr = ffi.new("char **")
        self.len = ffi.new("size_t *")
        self.changed = ffi.new("bool *")
        self.buf = ffi.new("char[]", _SCRATCH)


def _take(out: _Out) -> bytes:
    ptr, n = out.ptr[0], out.len[0]
    try:
        return ffi.unpack(ptr, n)
    finally:
        lib.envelope_bytes_free(ptr, n)


@dataclass(frozen=True)
class HeaderInfo:
    """Header facts of a ciphertext, read without any key or store.

    Format version 1 names its KEK (``provider``, ``key_id``, ``key_version``,
    ``wrapped_dek_len``; ``dek_id`` is None). The compact form (format version 3, or the
    non-committing version 2) names its DEK store row instead (``dek_id``; the KEK fields are
    None: they live in the row); ``committing`` says whether it carries its key commitment.
    A stream (format version 4) has the KEK fields and ``segment_size``.
    """

    format_version: int
    suite: str
    header_len: int
    plaintext_len: int
    overhead: int
    provider: Optional[str] = None
    key_id: Optional[str] = None
    key_version: Optional[str] = None
    wrapped_dek_len: Optional[int] = None
    dek_id: Optional[int] = None
    committing: Optional[bool] = None
    segment_size: Optional[int] = None


class Client:
    """Envelope encryption under one KEK, named by a key URI.

    ``local:///path/keyring.json[#KEY]``, ``aws-kms://arn:aws:kms:…``,
    ``vault://HOST:PORT/MOUNT/keys/NAME``. The client caches data keys (see the cache
    arguments), is safe to share between threads, and releases the GIL during every native
    call. Close it (or use it as a context manager) to zeroize its cached keys at once.

    With ``dek_store`` (``sqlite:///path/deks.sqlite`` or
    ``postgres://user@host:port/db?table=NAME``) the client writes the compact form
    (version 3): 72 bytes of overhead for AES-256-GCM (an 11-byte value takes 83 bytes, 115
    characters of text), key-committing, the wrapped data key kept once in the store; a key
    rotation then rewraps the store's rows (``envelope rewrap --dek-store URI``) and no value
    changes. Either way the client decrypts both forms (compact values need the store).
    ``compact_version=2`` writes the 40-byte version 2 instead, which is NOT key-committing
    (someone who knows two data keys and can write the store can make one value decrypt to
    two plaintexts): only for readers that cannot read version 3 yet.
    ``refuse_compact_v2=True`` refuses version 2 values when decrypting
    (:class:`UnsupportedFormatVersion`), once none are left.

    Where ciphertexts come from writers you do not trust, ``max_unwraps_per_second`` caps
    the KMS calls junk headers can cause (calls past it raise :class:`Throttled` at once),
    and ``negative_ttl`` (seconds, default 60; 0 turns it off) is how long a header whose
    unwrap failed is answered without a new KMS call.

    ``audit`` turns the key-use log on: a mapping with ``dir`` (the log directory) and
    ``signer`` (an Ed25519 key file from ``envelope audit keygen``, or
    ``vault://HOST:PORT/transit/keys/NAME``), and optionally ``actor`` (the service name),
    ``label`` (carried by this client's events), ``policy`` (``"block"``, the default,
    fails operations closed with :class:`AuditLogUnavailable` when the log cannot write;
    ``"count"`` never blocks and logs how many events were lost) and ``checkpoint_every``.
    Every KMS call is logged, and once a minute how many encryptions and decryptions each
    cached data key served; never a key, a plaintext or an AAD. Clients naming one ``dir``
    share one writer; verify the log with ``envelope audit verify DIR --public-key …``.
    """

    def __init__(
        self,
        key_uri: str,
        *,
        suite: str = "AES-256-GCM",
        cache: bool = True,
        max_age: Optional[float] = None,
        max_messages: Optional[int] = None,
        max_bytes: Optional[int] = None,
        decrypt_ttl: Optional[float] = None,
        decrypt_capacity: Optional[int] = None,
        encryption_context: Optional[Mapping[str, str]] = None,
        negative_ttl: Optional[float] = None,
        max_unwraps_per_second: Optional[int] = None,
        dek_store: Optional[str] = None,
        compact_version: Optional[int] = None,
        refuse_compact_v2: bool = False,
        index_store: Optional[str] = None,
        audit: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if suite not in SUITES:
            raise InvalidArgument(f"unknown suite {suite!r}: expected one of {sorted(SUITES)}")
        options = ffi.new("envelope_client_options *")
        _check(lib.envelope_client_options_default(options))
        options.suite = SUITES[suite]
        options.cache_enabled = cache
        if max_age is not None:
            options.max_age_ms = int(max_age * 1000)
        if max_messages is not None:
            options.max_messages = max_messages
        if negative_ttl is not None:
            options.negative_ttl_ms = int(negative_ttl * 1000)
        if max_unwraps_per_second is not None:
            if max_unwraps_per_second <= 0:
                raise InvalidArgument("max_unwraps_per_second must be positive (None sets no limit)")
            options.max_unwraps_per_second = max_unwraps_per_second
        if max_bytes is not None:
            options.max_bytes = max_bytes
        if decrypt_ttl is not None:
            options.decrypt_ttl_ms = int(decrypt_ttl * 1000)
        if decrypt_capacity is not None:
            options.decrypt_capacity = decrypt_capacity
        context = ffi.NULL
        if encryption_context:
            encoded = json.dumps(dict(encryption_context)).encode()
            context = ffi.new("char[]", encoded)  # kept alive until envelope_client_new returns
            options.encryption_context_json = context
            options.encryption_context_json_len = len(encoded)
        store = ffi.NULL
        if dek_store:
            store_bytes = dek_store.encode()
            store = ffi.new("char[]", store_bytes)  # kept alive until envelope_client_new returns
            options.dek_store_uri = store
            options.dek_store_uri_len = len(store_bytes)
        if compact_version is not None:
            if compact_version not in (2, 3):
                raise InvalidArgument(f"compact_version {compact_version!r}: expected 2 or 3")
            options.compact_version = compact_version
        options.refuse_compact_v2 = refuse_compact_v2
        index_uri = ffi.NULL
        if index_store:
            index_bytes = index_store.encode()
            index_uri = ffi.new("char[]", index_bytes)  # kept alive until envelope_client_new returns
            options.index_store_uri = index_uri
            options.index_store_uri_len = len(index_bytes)
        audit_json = ffi.NULL
        if audit:
            audit_bytes = json.dumps({k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in audit.items()}).encode()
            audit_json = ffi.new("char[]", audit_bytes)  # kept alive until envelope_client_new returns
            options.audit_json = audit_json
            options.audit_json_len = len(audit_bytes)
        uri = key_uri.encode()
        out = ffi.new("envelope_client **")
        _check(lib.envelope_client_new(uri, len(uri), options, out))
        self._ptr = out[0]
        self._out = _Out()
        self.key_uri = key_uri
        self.dek_store = dek_store
        self.index_store = index_store or dek_store
        self._normalizers: Dict[str, Tuple[str, Callable[[bytes], bytes]]] = {}

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Releases the native client and zeroizes its cached keys. Idempotent."""
        ptr, self._ptr = getattr(self, "_ptr", ffi.NULL), ffi.NULL
        if ptr != ffi.NULL:
            lib.envelope_client_free(ptr)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def _raise(self, status: int) -> None:
        if status == _NULL_ARGUMENT and self._ptr == ffi.NULL:
            raise EnvelopeError("the client is closed")
        _check(status)

    def _client(self):
        if self._ptr == ffi.NULL:
            raise EnvelopeError("the client is closed")
        return self._ptr

    def __repr__(self) -> str:
        return f"Client({self.key_uri!r})"

    # -- streams ---------------------------------------------------------------------

    def open(self, file, mode: str = "rb", *, aad: BytesLike = b"", segment_size: Optional[int] = None, threads: Optional[int] = None):
        """Opens a stream (format version 4: large files and objects, in constant memory)
        as a file object: ``"wb"`` encrypts what is written (``close`` seals the final
        segment), ``"rb"`` decrypts (``seek``/``tell`` over a seekable file, each read
        opening only the segments it covers). ``file`` is a path or a binary file object.
        ``segment_size``: plaintext bytes per segment (default 65536); ``threads``: threads
        sealing or opening segments (default: the CPUs, at most 4). Use it as a context
        manager::

            with client.open("dump.ev", "wb", aad=b"nightly") as out:
                shutil.copyfileobj(source, out)
        """
        from .stream import open_stream

        return open_stream(self, file, mode, aad, segment_size, threads)

    # -- single values ---------------------------------------------------------------

    def encrypt(self, plaintext: BytesLike, aad: BytesLike = b"") -> bytes:
        """Encrypts into the binary form (for bytes / BLOB / bytea columns)."""
        if type(plaintext) is not bytes:
            plaintext = _bytes(plaintext, "plaintext")
        if type(aad) is not bytes:
            aad = _bytes(aad, "aad")
        out = self._out
        n = len(plaintext)
        if n + _HEADER_ROOM <= _SCRATCH:
            status = _encrypt_into(self._ptr, plaintext, n, aad, len(aad), out.buf, _SCRATCH, out.len)
            if status == _OK:
                return _unpack(out.buf, out.len[0])
            if status != _BUFFER_TOO_SMALL:
                self._raise(status)
        _check(lib.envelope_encrypt(self._client(), plaintext, n, aad, len(aad), out.ptr, out.len))
        return _take(out)

    def encrypt_into(self, plaintext: BytesLike, out: Union[bytearray, memoryview], aad: BytesLike = b"") -> int:
        """Encrypts into the start of the writable buffer ``out`` (a ``bytearray`` or a
        writable ``memoryview``) and returns the ciphertext's length: no allocation, the
        native library writes the ciphertext in place. Raises :class:`BufferTooSmall` (with
        ``needed``) when ``out`` is too short; nothing is written then."""
        if type(plaintext) is not bytes:
            plaintext = _bytes(plaintext, "plaintext")
        if type(aad) is not bytes:
            aad = _bytes(aad, "aad")
        return self._into(_encrypt_into, plaintext, aad, out)

    def decrypt_into(self, ciphertext: BytesLike, out: Union[bytearray, memoryview], aad: BytesLike = b"") -> int:
        """Decrypts into the start of the writable buffer ``out`` and returns the plaintext's
        length: the native library writes the plaintext straight from the ciphertext, with
        no intermediate copy. A buffer as long as the ciphertext always suffices; a shorter
        one may raise :class:`BufferTooSmall`. On any error no plaintext is left in ``out``."""
        if type(ciphertext) is not bytes:
            ciphertext = _bytes(ciphertext, "ciphertext")
        if type(aad) is not bytes:
            aad = _bytes(aad, "aad")
        return self._into(_decrypt_into, ciphertext, aad, out)

    def _into(self, fn, data: bytes, aad: bytes, out: Union[bytearray, memoryview]) -> int:
        try:
            target = ffi.from_buffer("char[]", out, require_writable=True)
        except (TypeError, BufferError) as e:
            raise TypeError(f"out must be a writable buffer (bytearray, memoryview), not {type(out).__name__}") from e
        n = self._out.len
        status = fn(self._ptr, data, len(data), aad, len(aad), target, len(target), n)
        if status == _BUFFER_TOO_SMALL:
            err = BufferTooSmall(f"the output needs {n[0]} bytes, the buffer holds {len(target)}")
            err.needed = n[0]
            raise err
        if status != _OK:
            self._raise(status)
        return n[0]

    def encrypt_text(self, plaintext: Union[str, BytesLike], aad: BytesLike = b"") -> str:
        """Encrypts into the text form (for text columns): ``ev1:…``, or ``ev3:…`` with a DEK
        store. ``str`` is UTF-8 encoded."""
        if isinstance(plaintext, str):
            plaintext = plaintext.encode()
        plaintext, aad = _bytes(plaintext, "plaintext"), _bytes(aad, "aad")
        out = self._out
        _check(lib.envelope_encrypt_text(self._client(), plaintext, len(plaintext), aad, len(aad), out.ptr, out.len))
        return _take(out).decode("ascii")

    def decrypt(self, ciphertext: BytesLike, aad: BytesLike = b"") -> bytes:
        """Decrypts the binary form; ``aad`` must equal the encryption's."""
        if type(ciphertext) is not bytes:
            ciphertext = _bytes(ciphertext, "ciphertext")
        if type(aad) is not bytes:
            aad = _bytes(aad, "aad")
        out = self._out
        n = len(ciphertext)
        if n <= _SCRATCH:
            status = _decrypt_into(self._ptr, ciphertext, n, aad, len(aad), out.buf, _SCRATCH, out.len)
            if status != _OK:
                self._raise(status)
            size = out.len[0]
            plaintext = _unpack(out.buf, size)
            _memmove(out.buf, _ZEROS, size)  # no plaintext left behind in the scratch buffer
            return plaintext
        _check(lib.envelope_decrypt(self._client(), ciphertext, n, aad, len(aad), out.ptr, out.len))
        return _take(out)

    def decrypt_text(self, ciphertext: str, aad: BytesLike = b"") -> bytes:
        """Decrypts the text form."""
        text, aad = ciphertext.encode("ascii", "strict"), _bytes(aad, "aad")
        out = self._out
        _check(lib.envelope_decrypt_text(self._client(), text, len(text), aad, len(aad), out.ptr, out.len))
        return _take(out)

    def reencrypt(self, ciphertext: BytesLike, aad: BytesLike = b"") -> bytes:
        """Decrypts and encrypts again under a new data key (after a suspected exposure)."""
        ciphertext, aad = _bytes(ciphertext, "ciphertext"), _bytes(aad, "aad")
        out = self._out
        _check(lib.envelope_reencrypt(self._client(), ciphertext, len(ciphertext), aad, len(aad), out.ptr, out.len))
        return _take(out)

    def rewrap(self, ciphertext: Union[str, BytesLike]) -> Tuple[Union[str, bytes], bool]:
        """Moves a ciphertext to the KEK's current version, header only.

        Returns the ciphertext in the form it was given (text or binary) and whether the
        header changed (``False``: already current, the input comes back).
        """
        is_text = isinstance(ciphertext, str)
        data = ciphertext.encode("ascii") if is_text else _bytes(ciphertext, "ciphertext")
        out = self._out
        _check(lib.envelope_rewrap(self._client(), data, len(data), out.ptr, out.len, out.changed))
        changed = bool(out.changed[0])
        result = _take(out)
        return (result.decode("ascii") if is_text else result), changed

    # -- batches ---------------------------------------------------------------------

    def _batch(self, fn, items: Sequence[BytesLike], aads: "Optional[Union[BytesLike, Sequence[BytesLike]]]") -> List[bytes]:
        # One buffer plus offsets in, one buffer plus offsets out: per-item work stays in C
        # (join, accumulate, array) instead of per-item cffi conversions.
        count = len(items)
        if count == 0:
            return []
        data = _join(items, "items")
        data_offsets = array(_SIZE_T, [0])
        data_offsets.extend(accumulate(map(len, items)))
        if aads is None:
            aad, aad_len, aad_offsets = ffi.NULL, 0, ffi.NULL
        elif isinstance(aads, (bytes, bytearray, memoryview)):
            aad = bytes(aads)  # one AAD shared by every item (a column-level AAD)
            aad_len, aad_offsets = len(aad), ffi.NULL
        else:
            if len(aads) != count:
                raise InvalidArgument(f"{count} items but {len(aads)} AADs")
            aad = _join(aads, "aads")
            aad_len = len(aad)
            offsets = array(_SIZE_T, [0])
            offsets.extend(accumulate(map(len, aads)))
            aad_offsets = ffi.from_buffer("size_t[]", offsets)
        statuses = array("I", bytes(4 * count))
        out_offsets = array(_SIZE_T, bytes(_SIZE_T_BYTES * (count + 1)))
        out = self._out
        _check(
            fn(self._client(), count, data, len(data), ffi.from_buffer("size_t[]", data_offsets),
               aad, aad_len, aad_offsets, ffi.from_buffer("uint32_t[]", statuses),
               out.ptr, out.len, ffi.from_buffer("size_t[]", out_offsets))
        )
        failure_detail = _last_error() if any(statuses) else ""
        blob = _take(out)
        results: list = [blob[a:b] for a, b in zip(out_offsets, islice(out_offsets, 1, None))]
        if failure_detail:
            failed = 0
            for i, status in enumerate(statuses):
                if status != _OK:
                    failed += 1
                    message = ffi.string(lib.envelope_status_message(status)).decode()
                    results[i] = error_for(status, message)
            raise BatchError(f"{failed} of {count} items failed; {failure_detail}", results)
        return results

    def encrypt_batch(self, plaintexts: Sequence[BytesLike], aads: "Optional[Union[BytesLike, Sequence[BytesLike]]]" = None) -> List[bytes]:
        """Encrypts many values in one native call (binary form).

        ``aads`` is one AAD per value, or a single ``bytes`` shared by all of them (a
        column-level AAD), or ``None``. Raises :class:`BatchError` (with every item's
        result) if any item fails.
        """
        return self._batch(lib.envelope_encrypt_batch, plaintexts, aads)

    def decrypt_batch(self, ciphertexts: Sequence[BytesLike], aads: "Optional[Union[BytesLike, Sequence[BytesLike]]]" = None) -> List[bytes]:
        """Decrypts many binary-form values in one native call (``aads`` as for
        :meth:`encrypt_batch`)."""
        return self._batch(lib.envelope_decrypt_batch, ciphertexts, aads)

    def encrypt_text_batch(self, plaintexts: Sequence[Union[str, BytesLike]], aads: "Optional[Union[BytesLike, Sequence[BytesLike]]]" = None) -> List[str]:
        """Encrypts many values into the text form in one native call."""
        items = [p.encode() if isinstance(p, str) else p for p in plaintexts]
        return [to_text(c) for c in self.encrypt_batch(items, aads)]

    def decrypt_text_batch(self, ciphertexts: Sequence[str], aads: "Optional[Union[BytesLike, Sequence[BytesLike]]]" = None) -> List[bytes]:
        """Decrypts many text-form values in one native call."""
        return self.decrypt_batch([from_text(c) for c in ciphertexts], aads)

    # -- blind indexes ---------------------------------------------------------------

    def register_normalizer(self, index: str, name: str, function: Callable[[bytes], bytes]) -> None:
        """Runs ``function`` on every value of ``index`` before its built-in normalizer
        steps: the index's ``custom:NAME`` step (the name is checked against the index key
        store's, so a different function cannot be used by mistake under another name)."""
        self._normalizers[index] = (name, function)

    def _custom(self, index: str, value: BytesLike) -> Tuple[bytes, bytes]:
        value = value.encode() if isinstance(value, str) else _bytes(value, "value")
        custom = self._normalizers.get(index)
        if custom is None:
            return value, b""
        name, function = custom
        return _bytes(function(value), "normalized value"), name.encode()

    def blind_index(self, index: str, value: Union[str, BytesLike], *, text: bool = False) -> Union[bytes, str]:
        """The index value of ``value`` under the index's active version: what a writer
        stores in the index column (``bytes`` for a bytea column, ``str`` with ``text=True``)."""
        data, custom = self._custom(index, value)
        name = index.encode()
        out = self._out
        _check(lib.envelope_blind_index(self._client(), name, len(name), data, len(data), custom, len(custom), int(text), out.ptr, out.len))
        result = _take(out)
        return result.decode("ascii") if text else result

    def blind_index_batch(self, index: str, values: Sequence[Union[str, BytesLike]], *, text: bool = False) -> List[Union[bytes, str]]:
        """Index values of many values in one native call. Raises :class:`BatchError`
        when some values fail (a text normalizer given bytes that are not UTF-8)."""
        items, custom, data = values, b"", None
        if index not in self._normalizers:
            try:
                data = b"".join(values)  # bytes-like values: no per-value Python work
            except TypeError:
                pass
        if data is None:
            pairs = [self._custom(index, v) for v in values]
            items = [p[0] for p in pairs]
            custom = pairs[0][1] if pairs else b""
            data = b"".join(items)
        count = len(items)
        lengths = array(_SIZE_T, [0])
        lengths.extend(accumulate(map(len, items)))
        offsets = ffi.from_buffer("size_t[]", lengths)
        statuses = ffi.new("uint32_t[]", max(count, 1))
        out_offsets = ffi.new("size_t[]", count + 1)
        out = self._out
        name = index.encode()
        _check(lib.envelope_blind_index_batch(self._client(), name, len(name), count, data, len(data), offsets, custom, len(custom), int(text), statuses, out.ptr, out.len, out_offsets))
        if count and not text and not any(ffi.unpack(statuses, count)):
            # Every binary index value has the same width: slice at a fixed step.
            joined = _take(out)
            width = len(joined) // count
            return [joined[i:i + width] for i in range(0, len(joined), width)]
        detail = _last_error()
        joined = _take(out)
        results: list = []
        failed = False
        for i in range(count):
            if statuses[i] != _OK:
                failed = True
                results.append(error_for(statuses[i], detail or f"item {i} failed"))
                continue
            item = joined[out_offsets[i]:out_offsets[i + 1]]
            results.append(item.decode("ascii") if text else item)
        if failed:
            raise BatchError("some values have no index value", results)
        return results

    def query_values(self, index: str, value: Union[str, BytesLike], *, text: bool = False) -> List[Union[bytes, str]]:
        """The index values a lookup of ``value`` must match: one per version not retired,
        the active one first (two during a rotation window). Query
        ``WHERE idx = ANY(...)``, decrypt the candidates and drop those whose normalized
        plaintext differs (:func:`normalize`): false positives are expected in private mode."""
        data, custom = self._custom(index, value)
        name = index.encode()
        out = self._out
        count = ffi.new("size_t *")
        _check(lib.envelope_blind_index_query_values(self._client(), name, len(name), data, len(data), custom, len(custom), int(text), out.ptr, out.len, count))
        packed = _take(out)
        values: List[Union[bytes, str]] = []
        at = 0
        for _ in range(count[0]):
            n = int.from_bytes(packed[at:at + 2], "big")
            item = packed[at + 2:at + 2 + n]
            values.append(item.decode("ascii") if text else item)
            at += 2 + n
        return values

    def check_blind_index(self, index: str, normalizer: str, bits: Optional[int] = None) -> None:
        """Raises :class:`IndexMismatch` unless the index's active version uses
        ``normalizer`` (and ``bits``, when given), :class:`IndexNotFound` when there is no
        such index."""
        name, spec = index.encode(), normalizer.encode()
        _check(lib.envelope_blind_index_check(self._client(), name, len(name), spec, len(spec), bits or 0))

    def create_blind_index(self, index: str, *, normalizer: str = "exact", mode: str = "unique", bits: int = 0) -> int:
        """Creates an index (version 1, active; ``unique`` mode keeps 64 bits unless
        ``bits`` says otherwise, ``private`` mode needs ``bits``). Returns the version."""
        return self._define(index, normalizer, mode, bits, False)

    def rotate_blind_index(self, index: str, *, normalizer: Optional[str] = None, mode: Optional[str] = None, bits: int = 0) -> int:
        """Adds a version and makes it active; the previous one answers queries until it is
        retired (run ``envelope reindex``, then ``envelope retire --index``). Returns the
        new version."""
        return self._define(index, normalizer, mode, bits, True)

    def _define(self, index: str, normalizer: Optional[str], mode: Optional[str], bits: int, rotate: bool) -> int:
        name = index.encode()
        spec = (normalizer or "").encode()
        m = (mode or "").encode()
        version = ffi.new("uint32_t *")
        _check(lib.envelope_blind_index_define(self._client(), name, len(name), spec, len(spec), m, len(m), bits, rotate, version))
        return int(version[0])

    def set_blind_index_state(self, index: str, version: int, state: str) -> None:
        """Sets a version's state: ``"active"``, ``"query"`` or ``"retired"`` (retire only
        versions no row carries: ``envelope retire --index`` checks)."""
        states = {"active": 1, "query": 2, "retired": 3}
        if state not in states:
            raise InvalidArgument(f"state {state!r}: expected one of {sorted(states)}")
        name = index.encode()
        _check(lib.envelope_blind_index_set_state(self._client(), name, len(name), version, states[state]))

    # -- facts -----------------------------------------------------------------------

    @staticmethod
    def inspect(ciphertext: Union[str, BytesLike]) -> HeaderInfo:
        """Header facts (suite, KMS, key id and version, sizes) without any key."""
        data = ciphertext.encode("ascii") if isinstance(ciphertext, str) else _bytes(ciphertext, "ciphertext")
        out = _Out()
        _check(lib.envelope_inspect_json(data, len(data), out.ptr, out.len))
        return HeaderInfo(**json.loads(_take(out)))

    def stats(self) -> Dict[str, object]:
        """Counters: KMS calls by operation, cache hits and misses, DEKs created, active DEK."""
        out = self._out
        _check(lib.envelope_client_stats_json(self._client(), out.ptr, out.len))
        return json.loads(_take(out))


def to_text(ciphertext: BytesLike) -> str:
    """The text form of a binary ciphertext: ``ev1:`` (``ev3:`` or ``ev2:`` for the compact
    form, by its format version byte) + base64url without padding."""
    data = bytes(ciphertext)
    prefix = {b"EV\x03": COMPACT_TEXT_PREFIX, b"EV\x02": COMPACT_V2_TEXT_PREFIX}.get(
        data[:3], TEXT_PREFIX
    )
    return prefix + base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_text(text: str) -> bytes:
    """The binary form of a text ciphertext (the library validates it when used)."""
    prefixes = (TEXT_PREFIX, COMPACT_TEXT_PREFIX, COMPACT_V2_TEXT_PREFIX)
    prefix = next((p for p in prefixes if text.startswith(p)), None)
    if prefix is None:
        # Let the native parser produce the precise error (version or malformed).
        return text.encode("ascii", "replace")
    body = text[len(prefix):]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError) as e:
        raise error_for(101, f"malformed ciphertext: text form: invalid base64url: {e}") from None


def import_dek_store_rows(store_uri: str, rows: Union[str, Sequence[Mapping[str, object]]]) -> int:
    """Copies DEK store rows, ids kept, into the store ``store_uri`` names (created if
    missing): a JSON array or a list of dicts in the documented row form (docs/FORMAT.md,
    "DEK store"). Raises :class:`DekStoreError` on an id the store already has. Returns the
    number of rows imported."""
    uri = store_uri.encode()
    data = (rows if isinstance(rows, str) else json.dumps(list(rows))).encode()
    count = ffi.new("size_t *")
    _check(lib.envelope_dek_store_import_json(uri, len(uri), data, len(data), count))
    return int(count[0])


def create_local_keyring(path: str, key_id: str = "default") -> None:
    """Creates a local keyring file (mode 0600) with ``key_id`` at version 1 (development KMS)."""
    p, k = str(path).encode(), key_id.encode()
    _check(lib.envelope_local_keyring_create(p, len(p), k, len(k)))


def rotate_local_key(path: str, key_id: str = "default") -> int:
    """Rotates a local keyring key; returns the new primary version."""
    p, k = str(path).encode(), key_id.encode()
    version = ffi.new("uint32_t *")
    _check(lib.envelope_local_keyring_rotate(p, len(p), k, len(k), version))
    return int(version[0])


def destroy_local_key_version(path: str, key_id: str, version: int) -> None:
    """Destroys a non-primary version of a local key (crypto-shredding)."""
    p, k = str(path).encode(), key_id.encode()
    _check(lib.envelope_local_keyring_destroy_version(p, len(p), k, len(k), version))


def normalize(normalizer: str, value: Union[str, BytesLike]) -> bytes:
    """Runs the built-in steps of a normalizer spec (``nfkc_casefold+trim_collapse``; a
    leading ``custom:NAME`` step is skipped) on ``value``: exactly what the index hashes,
    for comparing decrypted candidates with the value looked up."""
    data = value.encode() if isinstance(value, str) else _bytes(value, "value")
    spec = normalizer.encode()
    out = _Out()
    _check(lib.envelope_normalize(spec, len(spec), data, len(data), out.ptr, out.len))
    return _take(out)


def native_version() -> str:
    """The version of the bundled native library."""
    return ffi.string(lib.envelope_version()).decode()


def crypto_provider() -> str:
    """The crypto provider running AES-256-GCM in the bundled native library:
    ``"aws-lc-rs"`` (the default build) or ``"rustcrypto"``."""
    return ffi.string(lib.envelope_crypto_provider()).decode()


def fips_mode() -> bool:
    """Whether the bundled native library runs on the AWS-LC FIPS 140-3 module (a build
    with the ``fips`` feature, with the module reporting FIPS mode active)."""
    return bool(lib.envelope_fips_mode())
