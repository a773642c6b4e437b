//! Stable status codes: explicit values, never reused, one message each.

use envelope::{Error, ErrorKind};

/// The result of every fallible function. Values are stable across releases and never
/// reused; new codes may be added.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum envelope_status {
    /// Success.
    ENVELOPE_OK = 0,
    /// A required pointer argument was NULL.
    ENVELOPE_NULL_ARGUMENT = 1,
    /// An argument was invalid (not UTF-8, inconsistent lengths or offsets, unknown suite).
    ENVELOPE_INVALID_ARGUMENT = 2,
    /// The library panicked; the call had no effect on the client's state.
    ENVELOPE_PANIC = 3,
    /// The caller's output buffer is too small; the required length was written.
    ENVELOPE_BUFFER_TOO_SMALL = 4,
    /// Authentication failed: tampered data, wrong AAD or a foreign wrapped data key.
    ENVELOPE_DECRYPTION_FAILED = 100,
    /// The input is not a well-formed envelope ciphertext.
    ENVELOPE_MALFORMED = 101,
    /// The ciphertext's format version is not supported.
    ENVELOPE_UNSUPPORTED_FORMAT_VERSION = 102,
    /// The ciphertext's algorithm suite is not supported.
    ENVELOPE_UNSUPPORTED_SUITE = 103,
    /// The ciphertext's KMS provider is not supported.
    ENVELOPE_UNSUPPORTED_PROVIDER = 104,
    /// The ciphertext's data key belongs to another KMS.
    ENVELOPE_KEY_NOT_OWNED = 105,
    /// A stream ends before its final segment (it was cut at a segment boundary): what
    /// came before is authentic, the rest is missing.
    ENVELOPE_TRUNCATED = 106,
    /// The KEK does not exist.
    ENVELOPE_KEY_NOT_FOUND = 200,
    /// The KEK version does not exist.
    ENVELOPE_KEY_VERSION_NOT_FOUND = 201,
    /// The KEK version was destroyed: the data is unrecoverable.
    ENVELOPE_KEY_VERSION_DESTROYED = 202,
    /// The KEK (version) is disabled.
    ENVELOPE_KEY_VERSION_DISABLED = 203,
    /// The KEK version is too old for the key's policy.
    ENVELOPE_KEY_VERSION_TOO_OLD = 204,
    /// The KMS denied the operation.
    ENVELOPE_PERMISSION_DENIED = 205,
    /// A compact ciphertext's DEK is not in the DEK store (deleted, another store) or is
    /// retired.
    ENVELOPE_DEK_NOT_FOUND = 206,
    /// The KMS is unreachable or failing transiently. Retryable.
    ENVELOPE_UNAVAILABLE = 300,
    /// The KMS throttled the request. Retryable.
    ENVELOPE_THROTTLED = 301,
    /// Another KMS failure.
    ENVELOPE_KMS_ERROR = 302,
    /// The DEK store failed (a missing privilege, a corrupt row); an unreachable store is
    /// `ENVELOPE_UNAVAILABLE`.
    ENVELOPE_DEK_STORE_ERROR = 303,
    /// The key URI is invalid.
    ENVELOPE_INVALID_KEY_URI = 400,
    /// The key URI needs a backend this library was built without.
    ENVELOPE_FEATURE_NOT_ENABLED = 401,
    /// A configuration value is invalid.
    ENVELOPE_INVALID_CONFIG = 402,
    /// The local keyring file cannot be used.
    ENVELOPE_KEYRING_ERROR = 403,
    /// The plaintext is too large for one message.
    ENVELOPE_MESSAGE_TOO_LARGE = 404,
    /// The blind index (or the version asked for) is not in the index key store.
    ENVELOPE_INDEX_NOT_FOUND = 207,
    /// The blind index version is retired (or the index has no active version).
    ENVELOPE_INDEX_RETIRED = 208,
    /// The blind index does not match: another normalizer or bit length than the stored
    /// index's, or an index key whose commitment does not match its row.
    ENVELOPE_INDEX_MISMATCH = 209,
    /// The key-use log cannot record and fails closed: the operation was refused so that no
    /// key use goes unlogged (its policy is `block`).
    ENVELOPE_AUDIT_LOG_UNAVAILABLE = 405,
    /// An error this version of the C ABI does not name yet.
    ENVELOPE_UNKNOWN_ERROR = 999,
}

impl envelope_status {
    /// The status for an SDK error.
    pub(crate) fn of(error: &Error) -> Self {
        use envelope_status::*;
        match error.kind() {
            ErrorKind::DecryptionFailed => ENVELOPE_DECRYPTION_FAILED,
            ErrorKind::Malformed => ENVELOPE_MALFORMED,
            ErrorKind::UnsupportedFormatVersion => ENVELOPE_UNSUPPORTED_FORMAT_VERSION,
            ErrorKind::UnsupportedSuite => ENVELOPE_UNSUPPORTED_SUITE,
            ErrorKind::UnsupportedProvider => ENVELOPE_UNSUPPORTED_PROVIDER,
            ErrorKind::KeyNotOwned => ENVELOPE_KEY_NOT_OWNED,
            ErrorKind::KeyNotFound => ENVELOPE_KEY_NOT_FOUND,
            ErrorKind::KeyVersionNotFound => ENVELOPE_KEY_VERSION_NOT_FOUND,
            ErrorKind::KeyVersionDestroyed => ENVELOPE_KEY_VERSION_DESTROYED,
            ErrorKind::KeyVersionDisabled => ENVELOPE_KEY_VERSION_DISABLED,
            ErrorKind::KeyVersionTooOld => ENVELOPE_KEY_VERSION_TOO_OLD,
            ErrorKind::PermissionDenied => ENVELOPE_PERMISSION_DENIED,
            ErrorKind::Unavailable => ENVELOPE_UNAVAILABLE,
            ErrorKind::Throttled => ENVELOPE_THROTTLED,
            ErrorKind::Kms => ENVELOPE_KMS_ERROR,
            ErrorKind::InvalidKeyUri => ENVELOPE_INVALID_KEY_URI,
            ErrorKind::FeatureNotEnabled => ENVELOPE_FEATURE_NOT_ENABLED,
            ErrorKind::InvalidConfig => ENVELOPE_INVALID_CONFIG,
            ErrorKind::Keyring => ENVELOPE_KEYRING_ERROR,
            ErrorKind::MessageTooLarge => ENVELOPE_MESSAGE_TOO_LARGE,
            ErrorKind::BufferTooSmall => ENVELOPE_BUFFER_TOO_SMALL,
            ErrorKind::DekNotFound => ENVELOPE_DEK_NOT_FOUND,
            ErrorKind::DekStore => ENVELOPE_DEK_STORE_ERROR,
            ErrorKind::IndexNotFound => ENVELOPE_INDEX_NOT_FOUND,
            ErrorKind::IndexRetired => ENVELOPE_INDEX_RETIRED,
            ErrorKind::IndexMismatch => ENVELOPE_INDEX_MISMATCH,
            ErrorKind::AuditLog => ENVELOPE_AUDIT_LOG_UNAVAILABLE,
            ErrorKind::Truncated => ENVELOPE_TRUNCATED,
            _ => ENVELOPE_UNKNOWN_ERROR,
        }
    }

    /// A NUL-terminated, static description.
    pub(crate) fn message(self) -> &'static [u8] {
        use envelope_status::*;
        match self {
            ENVELOPE_OK => b"ok\0",
            ENVELOPE_NULL_ARGUMENT => b"a required pointer argument was NULL\0",
            ENVELOPE_INVALID_ARGUMENT => b"invalid argument\0",
            ENVELOPE_PANIC => b"internal error (panic) in the envelope library\0",
            ENVELOPE_BUFFER_TOO_SMALL => b"output buffer too small\0",
            ENVELOPE_DECRYPTION_FAILED => {
                b"decryption failed: the ciphertext, its AAD or its wrapped data key is not authentic\0"
            }
            ENVELOPE_MALFORMED => b"malformed ciphertext\0",
            ENVELOPE_UNSUPPORTED_FORMAT_VERSION => b"unsupported ciphertext format version\0",
            ENVELOPE_UNSUPPORTED_SUITE => b"unsupported algorithm suite\0",
            ENVELOPE_UNSUPPORTED_PROVIDER => b"unsupported KMS provider\0",
            ENVELOPE_KEY_NOT_OWNED => b"the data key belongs to another KMS or key\0",
            ENVELOPE_TRUNCATED => b"truncated stream: it ends before its final segment\0",
            ENVELOPE_KEY_NOT_FOUND => b"key not found\0",
            ENVELOPE_KEY_VERSION_NOT_FOUND => b"key version not found\0",
            ENVELOPE_KEY_VERSION_DESTROYED => {
                b"key version destroyed: the data cannot be recovered\0"
            }
            ENVELOPE_KEY_VERSION_DISABLED => b"key version disabled\0",
            ENVELOPE_KEY_VERSION_TOO_OLD => b"key version too old for the key's policy\0",
            ENVELOPE_PERMISSION_DENIED => b"permission denied by the KMS\0",
            ENVELOPE_UNAVAILABLE => b"KMS unavailable (retryable)\0",
            ENVELOPE_THROTTLED => b"KMS throttled the request (retryable)\0",
            ENVELOPE_KMS_ERROR => b"KMS error\0",
            ENVELOPE_DEK_NOT_FOUND => b"the data key is not in the DEK store (or is retired)\0",
            ENVELOPE_DEK_STORE_ERROR => b"DEK store error\0",
            ENVELOPE_INVALID_KEY_URI => b"invalid key URI\0",
            ENVELOPE_FEATURE_NOT_ENABLED => b"the key URI needs a backend this library lacks\0",
            ENVELOPE_INVALID_CONFIG => b"invalid configuration\0",
            ENVELOPE_KEYRING_ERROR => b"local keyring error\0",
            ENVELOPE_MESSAGE_TOO_LARGE => b"plaintext too large for one message\0",
            ENVELOPE_INDEX_NOT_FOUND => b"blind index (version) not in the index key store\0",
            ENVELOPE_INDEX_RETIRED => b"blind index version retired\0",
            ENVELOPE_INDEX_MISMATCH => {
                b"blind index mismatch: normalizer, bits or key commitment differ from the stored index\0"
            }
            ENVELOPE_AUDIT_LOG_UNAVAILABLE => {
                b"key-use log unavailable: failing closed, the operation was refused\0"
            }
            ENVELOPE_UNKNOWN_ERROR => b"unknown error\0",
        }
    }

    /// The status with this value, if it is one.
    pub(crate) fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| *s as u32 == value)
    }

    /// Every status.
    pub(crate) const ALL: [envelope_status; 33] = {
        use envelope_status::*;
        [
            ENVELOPE_OK,
            ENVELOPE_NULL_ARGUMENT,
            ENVELOPE_INVALID_ARGUMENT,
            ENVELOPE_PANIC,
            ENVELOPE_BUFFER_TOO_SMALL,
            ENVELOPE_DECRYPTION_FAILED,
            ENVELOPE_MALFORMED,
            ENVELOPE_UNSUPPORTED_FORMAT_VERSION,
            ENVELOPE_UNSUPPORTED_SUITE,
            ENVELOPE_UNSUPPORTED_PROVIDER,
            ENVELOPE_KEY_NOT_OWNED,
            ENVELOPE_TRUNCATED,
            ENVELOPE_KEY_NOT_FOUND,
            ENVELOPE_KEY_VERSION_NOT_FOUND,
            ENVELOPE_KEY_VERSION_DESTROYED,
            ENVELOPE_KEY_VERSION_DISABLED,
            ENVELOPE_KEY_VERSION_TOO_OLD,
            ENVELOPE_PERMISSION_DENIED,
            ENVELOPE_DEK_NOT_FOUND,
            ENVELOPE_UNAVAILABLE,
            ENVELOPE_THROTTLED,
            ENVELOPE_KMS_ERROR,
            ENVELOPE_DEK_STORE_ERROR,
            ENVELOPE_INVALID_KEY_URI,
            ENVELOPE_FEATURE_NOT_ENABLED,
            ENVELOPE_INVALID_CONFIG,
            ENVELOPE_KEYRING_ERROR,
            ENVELOPE_MESSAGE_TOO_LARGE,
            ENVELOPE_INDEX_NOT_FOUND,
            ENVELOPE_INDEX_RETIRED,
            ENVELOPE_INDEX_MISMATCH,
            ENVELOPE_AUDIT_LOG_UNAVAILABLE,
            ENVELOPE_UNKNOWN_ERROR,
        ]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_nul_terminated_and_values_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for s in envelope_status::ALL {
            let m = s.message();
            assert_eq!(m.last(), Some(&0));
            assert!(!m[..m.len() - 1].contains(&0));
            seen.insert(s as u32);
        }
        assert_eq!(seen.len(), envelope_status::ALL.len());
    }
}
