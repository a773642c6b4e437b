"""Exceptions mirroring the C ABI's status codes."""

from __future__ import annotations

from typing import Dict, Optional, Type


class EnvelopeError(Exception):
    """Base class of every error raised by envelope_sdk.

    ``status`` is the C ABI's status code; ``retryable`` tells whether the same call may
    succeed later (unreachable or throttling KMS).
    """

    status: int = 999
    retryable: bool = False

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class InvalidArgument(EnvelopeError, ValueError):
    """An argument was invalid or missing (status 1, 2)."""

    status = 2


class InternalError(EnvelopeError):
    """The native library panicked (status 3). Please report it."""

    status = 3


class BufferTooSmall(EnvelopeError, ValueError):
    """The caller's output buffer is too small (status 4); ``needed`` is the length the
    result needs. Nothing was written to the buffer."""

    status = 4
    needed: int = 0


class DecryptionFailed(EnvelopeError):
    """Authentication failed: tampered data, wrong AAD or a foreign data key (100)."""

    status = 100


class MalformedCiphertext(EnvelopeError, ValueError):
    """Not a well-formed envelope ciphertext (101)."""

    status = 101


class UnsupportedFormatVersion(EnvelopeError):
    """The ciphertext's format version is not supported (102)."""

    status = 102


class UnsupportedSuite(EnvelopeError):
    """The ciphertext's algorithm suite is not supported (103)."""

    status = 103


class UnsupportedProvider(EnvelopeError):
    """The ciphertext's KMS provider is not supported (104)."""

    status = 104


class KeyNotOwned(EnvelopeError):
    """The ciphertext's data key belongs to another KMS (105)."""

    status = 105


class TruncatedStream(EnvelopeError):
    """A stream ends before its final segment: it was cut at a segment boundary. What was
    read before is authentic; the rest is missing (106)."""

    status = 106


class KeyNotFound(EnvelopeError):
    """The KEK does not exist (200)."""

    status = 200


class KeyVersionNotFound(EnvelopeError):
    """The KEK version does not exist (201)."""

    status = 201


class KeyVersionDestroyed(EnvelopeError):
    """The KEK version was destroyed: the data cannot be recovered (202)."""

    status = 202


class KeyVersionDisabled(EnvelopeError):
    """The KEK (version) is disabled (203)."""

    status = 203


class KeyVersionTooOld(EnvelopeError):
    """The KEK version is below the key's minimum decryption version (204)."""

    status = 204


class PermissionDenied(EnvelopeError):
    """The KMS denied the operation (205)."""

    status = 205


class DekNotFound(EnvelopeError):
    """A compact ciphertext's data key is not in the DEK store (deleted: unrecoverable; or
    another store), or is retired (206)."""

    status = 206


class IndexNotFound(EnvelopeError, LookupError):
    """The blind index (or the version asked for) is not in the index key store (207)."""

    status = 207


class IndexRetired(EnvelopeError):
    """The blind index version is retired, or the index has no active version (208)."""

    status = 208


class IndexMismatch(EnvelopeError):
    """The blind index is not what the caller declared: another normalizer or bit length,
    a custom normalizer not applied, or an index key whose commitment does not match its
    row (209)."""

    status = 209


class Unavailable(EnvelopeError):
    """The KMS is unreachable or failing transiently; retry later (300)."""

    status = 300
    retryable = True


class Throttled(EnvelopeError):
    """The KMS throttled the request; retry after a back-off (301)."""

    status = 301
    retryable = True


class KmsError(EnvelopeError):
    """Another KMS failure (302)."""

    status = 302


class DekStoreError(EnvelopeError):
    """The DEK store failed: a missing privilege, a corrupt row (303). An unreachable store
    is :class:`Unavailable`."""

    status = 303


class InvalidKeyUri(EnvelopeError, ValueError):
    """The key URI is invalid (400)."""

    status = 400


class FeatureNotEnabled(EnvelopeError):
    """The key URI needs a backend the native library was built without (401)."""

    status = 401


class InvalidConfig(EnvelopeError, ValueError):
    """A configuration value is invalid (402)."""

    status = 402


class KeyringError(EnvelopeError):
    """The local keyring file cannot be used (403)."""

    status = 403


class MessageTooLarge(EnvelopeError, ValueError):
    """The plaintext is too large for one message (404)."""

    status = 404


class AuditLogUnavailable(EnvelopeError):
    """The key-use log cannot record and its policy is to fail closed (``block``): the
    operation was refused so that no key use goes unlogged (405)."""

    status = 405


class BatchError(EnvelopeError):
    """Some items of a batch failed. ``results[i]`` is item i's bytes or its exception."""

    def __init__(self, message: str, results: list) -> None:
        super().__init__(message, status=next(r.status for r in results if isinstance(r, EnvelopeError)))
        self.results = results

    @property
    def failures(self) -> Dict[int, EnvelopeError]:
        """The failed items by index."""
        return {i: r for i, r in enumerate(self.results) if isinstance(r, EnvelopeError)}


_BY_STATUS: Dict[int, Type[EnvelopeError]] = {
    cls.status: cls
    for cls in (
        InternalError,
        BufferTooSmall,
        DecryptionFailed,
        MalformedCiphertext,
        UnsupportedFormatVersion,
        UnsupportedSuite,
        UnsupportedProvider,
        KeyNotOwned,
        TruncatedStream,
        KeyNotFound,
        KeyVersionNotFound,
        KeyVersionDestroyed,
        KeyVersionDisabled,
        KeyVersionTooOld,
        PermissionDenied,
        DekNotFound,
        IndexNotFound,
        IndexRetired,
        IndexMismatch,
        Unavailable,
        Throttled,
        KmsError,
        DekStoreError,
        InvalidKeyUri,
        FeatureNotEnabled,
        InvalidConfig,
        KeyringError,
        MessageTooLarge,
        AuditLogUnavailable,
    )
}
_BY_STATUS[1] = InvalidArgument
_BY_STATUS[2] = InvalidArgument


def error_for(status: int, message: str) -> EnvelopeError:
    """The exception for a status code (EnvelopeError for codes this version does not know)."""
    cls = _BY_STATUS.get(status, EnvelopeError)
    return cls(message, status=status)
