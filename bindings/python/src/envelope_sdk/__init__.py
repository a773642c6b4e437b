"""envelope_sdk: envelope encryption for Python over the envelope C ABI.

AES-256-GCM data keys, wrapped by a KMS (local keyring, AWS KMS, Google Cloud KMS,
Vault/OpenBao Transit), cached so that millions of fields cost a handful of KMS calls;
header-only rewrap after a key rotation; with a DEK store, the compact form (40 bytes of
overhead per field) whose rotation rewraps the store and no row. See :class:`Client`.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from .client import (
    Client,
    HeaderInfo,
    create_local_keyring,
    crypto_provider,
    destroy_local_key_version,
    fips_mode,
    from_text,
    import_dek_store_rows,
    native_version,
    normalize,
    rotate_local_key,
    to_text,
)
from .errors import (
    BatchError,
    BufferTooSmall,
    DecryptionFailed,
    DekNotFound,
    DekStoreError,
    EnvelopeError,
    FeatureNotEnabled,
    IndexMismatch,
    IndexNotFound,
    IndexRetired,
    InternalError,
    InvalidArgument,
    InvalidConfig,
    InvalidKeyUri,
    KeyNotFound,
    KeyNotOwned,
    KeyringError,
    KeyVersionDestroyed,
    KeyVersionDisabled,
    KeyVersionNotFound,
    KeyVersionTooOld,
    KmsError,
    MalformedCiphertext,
    MessageTooLarge,
    AuditLogUnavailable,
    TruncatedStream,
    PermissionDenied,
    Throttled,
    Unavailable,
    UnsupportedFormatVersion,
    UnsupportedProvider,
    UnsupportedSuite,
)

from .stream import StreamReader, StreamWriter

try:
    __version__ = _version("envelope-sdk")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = native_version()

__all__ = [
    "BatchError", "BufferTooSmall", "Client", "DecryptionFailed", "DekNotFound", "DekStoreError",
    "EnvelopeError", "FeatureNotEnabled",
    "HeaderInfo", "IndexMismatch", "IndexNotFound", "IndexRetired", "InternalError", "InvalidArgument", "InvalidConfig", "InvalidKeyUri",
    "KeyNotFound", "KeyNotOwned", "KeyringError", "KeyVersionDestroyed", "KeyVersionDisabled",
    "KeyVersionNotFound", "KeyVersionTooOld", "KmsError", "MalformedCiphertext",
    "MessageTooLarge", "AuditLogUnavailable", "TruncatedStream", "PermissionDenied", "Throttled", "Unavailable",
    "UnsupportedFormatVersion", "UnsupportedProvider", "UnsupportedSuite",
    "create_local_keyring", "crypto_provider", "destroy_local_key_version", "fips_mode",
    "from_text", "import_dek_store_rows", "native_version", "normalize",
    "rotate_local_key", "to_text", "StreamReader", "StreamWriter",
]
