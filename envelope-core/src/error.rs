//! The one public error type of the SDK.

use std::fmt;

/// Boxed source error attached to backend failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, as variants a caller can act on.
///
/// Messages never contain key material, DEKs or plaintext. Authentication failures are
/// deliberately opaque: a bad tag, the wrong AAD and a failed key commitment all produce
/// [`Error::DecryptionFailed`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ciphertext did not authenticate: tampered body or tag, wrong AAD, a wrapped DEK
    /// that does not match the key commitment, or a wrapped DEK the KMS could not authenticate.
    #[error("decryption failed: the ciphertext, its AAD or its wrapped data key is not authentic")]
    DecryptionFailed,

    /// The input is not a well-formed envelope ciphertext.
    #[error("malformed ciphertext: {field}: {reason}")]
    Malformed {
        /// The header field (or `body`, `text form`) that was wrong.
        field: &'static str,
        /// What was wrong with it.
        reason: String,
    },

    /// The ciphertext uses a format version this build does not know, or version 2 (the
    /// non-committing compact form) at an envelope built to refuse it
    /// ([`crate::EnvelopeBuilder::accept_compact_v2`]).
    #[error(
        "unsupported ciphertext format version {0} (this build reads versions 1, 3, 2 and the streaming form 4; an envelope can refuse the non-committing version 2)"
    )]
    UnsupportedFormatVersion(u8),

    /// The ciphertext names an algorithm suite this build does not know.
    #[error("unsupported algorithm suite id {0:#04x}")]
    UnsupportedSuite(u8),

    /// The ciphertext names a KMS provider id this build does not know.
    #[error("unsupported KMS provider id {0:#04x}")]
    UnsupportedProvider(u8),

    /// The ciphertext's data key is wrapped by a provider or key this KMS does not own.
    #[error("this KMS ({kms}) does not own key {key_id:?} of provider {provider}")]
    KeyNotOwned {
        /// The KMS that was asked.
        kms: String,
        /// The provider named by the ciphertext.
        provider: String,
        /// The key id named by the ciphertext.
        key_id: String,
    },

    /// The key does not exist in the KMS.
    #[error("key {key_id:?} not found")]
    KeyNotFound {
        /// The key id that was looked up.
        key_id: String,
    },

    /// The key exists but the named version does not.
    #[error("version {version:?} of key {key_id:?} not found")]
    KeyVersionNotFound {
        /// The key id.
        key_id: String,
        /// The missing version.
        version: String,
    },

    /// The key version was destroyed: data under it is unrecoverable (crypto-shredding).
    #[error(
        "version {version:?} of key {key_id:?} was destroyed: data whose key was wrapped by it cannot be recovered"
    )]
    KeyVersionDestroyed {
        /// The key id.
        key_id: String,
        /// The destroyed version.
        version: String,
    },

    /// The key (or this version of it) is disabled; re-enabling it restores access.
    #[error("version {version:?} of key {key_id:?} is disabled")]
    KeyVersionDisabled {
        /// The key id.
        key_id: String,
        /// The disabled version (empty when the whole key is disabled).
        version: String,
    },

    /// The KMS refuses to decrypt with a version this old (e.g. below Vault's
    /// `min_decryption_version`); rewrap the data to a newer version.
    #[error("version {version:?} of key {key_id:?} is too old to decrypt under the key's policy")]
    KeyVersionTooOld {
        /// The key id.
        key_id: String,
        /// The refused version.
        version: String,
    },

    /// The caller's credentials do not allow the operation.
    #[error("permission denied by the KMS for {operation} on key {key_id:?}")]
    PermissionDenied {
        /// The KMS operation.
        operation: &'static str,
        /// The key id.
        key_id: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// The KMS could not be reached or answered with a transient failure. Retryable.
    #[error("KMS unavailable during {operation}")]
    Unavailable {
        /// The KMS operation.
        operation: &'static str,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// The KMS throttled the request. Retryable after a back-off.
    #[error("KMS throttled {operation}")]
    Throttled {
        /// The KMS operation.
        operation: &'static str,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// Any other KMS failure.
    #[error("KMS {operation} failed: {message}")]
    Kms {
        /// The KMS operation.
        operation: &'static str,
        /// What the backend reported (never secret material).
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// A key URI could not be understood.
    #[error("invalid key URI {uri:?}: {reason}")]
    InvalidKeyUri {
        /// The URI as given.
        uri: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The key URI names a backend this build was compiled without.
    #[error("key URI scheme {scheme}:// needs the `{feature}` feature of the envelope crate")]
    FeatureNotEnabled {
        /// The URI scheme.
        scheme: String,
        /// The cargo feature that enables it.
        feature: &'static str,
    },

    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The local keyring file could not be used.
    #[error("keyring {path}: {reason}")]
    Keyring {
        /// The keyring path.
        path: String,
        /// What was wrong.
        reason: String,
        /// The underlying I/O or parse error.
        #[source]
        source: Option<BoxError>,
    },

    /// The caller's output buffer is too short for the result; nothing was written to it.
    #[error("output buffer of {capacity} bytes is too small: {needed} bytes needed")]
    BufferTooSmall {
        /// The bytes the result needs.
        needed: usize,
        /// The bytes the buffer has.
        capacity: usize,
    },

    /// A compact ciphertext names a DEK its DEK store does not have (the row was deleted,
    /// or this is another store), or has retired. A deleted DEK is unrecoverable.
    #[error("{}", dek_not_found_message(*id, *retired))]
    DekNotFound {
        /// The DEK id the ciphertext names.
        id: u64,
        /// Whether the row exists but is retired (re-activating it restores access).
        retired: bool,
    },

    /// The DEK store failed for a reason other than being unreachable (which is
    /// [`Error::Unavailable`]): a missing table, a denied statement, a corrupt row.
    #[error("DEK store {operation} failed: {message}")]
    DekStore {
        /// The store operation.
        operation: &'static str,
        /// What went wrong (never key material).
        message: String,
        /// The driver's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// A blind index (or one version of it) is not in the index key store.
    #[error("{}", index_not_found_message(index, *version))]
    IndexNotFound {
        /// The index name.
        index: String,
        /// The version asked for, when one was.
        version: Option<u16>,
    },

    /// A blind index version is retired: it neither writes nor answers queries.
    #[error(
        "version {version} of blind index {index:?} is retired: it neither writes nor answers queries"
    )]
    IndexRetired {
        /// The index name.
        index: String,
        /// The retired version.
        version: u16,
    },

    /// A blind index does not match what the caller or the store says it is: another
    /// normalizer than the stored index's, an index key whose commitment does not match
    /// its row, an index value of another index or of a malformed encoding.
    #[error("blind index {index:?}: {reason}")]
    IndexMismatch {
        /// The index name.
        index: String,
        /// What does not match (never key material).
        reason: String,
    },

    /// The key-use log cannot record, and its policy is to fail closed
    /// (`envelope_audit::FailurePolicy::Block`): the operation was refused so that no key use
    /// goes unlogged.
    #[error("key-use log unavailable: {reason}")]
    AuditLog {
        /// Why (the sink's error or how long the queue has been full).
        reason: String,
    },

    /// A stream (format version 4) ends before its final segment: it was cut at a segment
    /// boundary (its last segment present authenticates as a non-final one), or holds no
    /// segment at all. Everything before the cut is authentic; the rest is missing.
    #[error(
        "truncated stream: it ends after {segments} segment(s) of {segment_size} bytes without its final segment"
    )]
    Truncated {
        /// How many segments are present (the last of them is not marked final).
        segments: u64,
        /// The stream's segment size.
        segment_size: u32,
    },

    /// The plaintext is larger than one message may be.
    #[error("plaintext of {len} bytes exceeds the per-message limit of {max} bytes")]
    MessageTooLarge {
        /// The plaintext length.
        len: u64,
        /// The limit.
        max: u64,
    },
}

fn index_not_found_message(index: &str, version: Option<u16>) -> String {
    match version {
        Some(v) => format!("blind index {index:?} has no version {v} in the index key store"),
        None => format!(
            "blind index {index:?} is not in the index key store (create it with `envelope index create`)"
        ),
    }
}

fn dek_not_found_message(id: u64, retired: bool) -> String {
    if retired {
        format!("DEK {id} is retired in the DEK store: values under it no longer decrypt")
    } else {
        format!(
            "DEK {id} is not in the DEK store (deleted, or the ciphertext belongs to another store): values under it cannot be decrypted"
        )
    }
}

impl Error {
    /// A stable, machine-readable name for the kind of error (used by test vectors and the
    /// C ABI).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::DecryptionFailed => ErrorKind::DecryptionFailed,
            Error::Malformed { .. } => ErrorKind::Malformed,
            Error::UnsupportedFormatVersion(_) => ErrorKind::UnsupportedFormatVersion,
            Error::UnsupportedSuite(_) => ErrorKind::UnsupportedSuite,
            Error::UnsupportedProvider(_) => ErrorKind::UnsupportedProvider,
            Error::KeyNotOwned { .. } => ErrorKind::KeyNotOwned,
            Error::KeyNotFound { .. } => ErrorKind::KeyNotFound,
            Error::KeyVersionNotFound { .. } => ErrorKind::KeyVersionNotFound,
            Error::KeyVersionDestroyed { .. } => ErrorKind::KeyVersionDestroyed,
            Error::KeyVersionDisabled { .. } => ErrorKind::KeyVersionDisabled,
            Error::KeyVersionTooOld { .. } => ErrorKind::KeyVersionTooOld,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Throttled { .. } => ErrorKind::Throttled,
            Error::Kms { .. } => ErrorKind::Kms,
            Error::InvalidKeyUri { .. } => ErrorKind::InvalidKeyUri,
            Error::FeatureNotEnabled { .. } => ErrorKind::FeatureNotEnabled,
            Error::InvalidConfig(_) => ErrorKind::InvalidConfig,
            Error::Keyring { .. } => ErrorKind::Keyring,
            Error::MessageTooLarge { .. } => ErrorKind::MessageTooLarge,
            Error::DekNotFound { .. } => ErrorKind::DekNotFound,
            Error::DekStore { .. } => ErrorKind::DekStore,
            Error::BufferTooSmall { .. } => ErrorKind::BufferTooSmall,
            Error::IndexNotFound { .. } => ErrorKind::IndexNotFound,
            Error::IndexRetired { .. } => ErrorKind::IndexRetired,
            Error::IndexMismatch { .. } => ErrorKind::IndexMismatch,
            Error::AuditLog { .. } => ErrorKind::AuditLog,
            Error::Truncated { .. } => ErrorKind::Truncated,
        }
    }

    /// Whether retrying the same call later may succeed (unreachable or throttling KMS).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Throttled { .. })
    }

    pub(crate) fn malformed(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Malformed {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn keyring(
        path: &std::path::Path,
        reason: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        Error::Keyring {
            path: path.display().to_string(),
            reason: reason.into(),
            source,
        }
    }
}

/// The kind of an [`Error`], with a stable snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::DecryptionFailed`].
    DecryptionFailed,
    /// See [`Error::Malformed`].
    Malformed,
    /// See [`Error::UnsupportedFormatVersion`].
    UnsupportedFormatVersion,
    /// See [`Error::UnsupportedSuite`].
    UnsupportedSuite,
    /// See [`Error::UnsupportedProvider`].
    UnsupportedProvider,
    /// See [`Error::KeyNotOwned`].
    KeyNotOwned,
    /// See [`Error::KeyNotFound`].
    KeyNotFound,
    /// See [`Error::KeyVersionNotFound`].
    KeyVersionNotFound,
    /// See [`Error::KeyVersionDestroyed`].
    KeyVersionDestroyed,
    /// See [`Error::KeyVersionDisabled`].
    KeyVersionDisabled,
    /// See [`Error::KeyVersionTooOld`].
    KeyVersionTooOld,
    /// See [`Error::PermissionDenied`].
    PermissionDenied,
    /// See [`Error::Unavailable`].
    Unavailable,
    /// See [`Error::Throttled`].
    Throttled,
    /// See [`Error::Kms`].
    Kms,
    /// See [`Error::InvalidKeyUri`].
    InvalidKeyUri,
    /// See [`Error::FeatureNotEnabled`].
    FeatureNotEnabled,
    /// See [`Error::InvalidConfig`].
    InvalidConfig,
    /// See [`Error::Keyring`].
    Keyring,
    /// See [`Error::MessageTooLarge`].
    MessageTooLarge,
    /// See [`Error::BufferTooSmall`].
    BufferTooSmall,
    /// See [`Error::DekNotFound`].
    DekNotFound,
    /// See [`Error::DekStore`].
    DekStore,
    /// See [`Error::IndexNotFound`].
    IndexNotFound,
    /// See [`Error::IndexRetired`].
    IndexRetired,
    /// See [`Error::IndexMismatch`].
    IndexMismatch,
    /// See [`Error::AuditLog`].
    AuditLog,
    /// See [`Error::Truncated`].
    Truncated,
}

impl ErrorKind {
    /// The stable snake_case name (as written in the test vectors).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::DecryptionFailed => "decryption_failed",
            ErrorKind::Malformed => "malformed",
            ErrorKind::UnsupportedFormatVersion => "unsupported_format_version",
            ErrorKind::UnsupportedSuite => "unsupported_suite",
            ErrorKind::UnsupportedProvider => "unsupported_provider",
            ErrorKind::KeyNotOwned => "key_not_owned",
            ErrorKind::KeyNotFound => "key_not_found",
            ErrorKind::KeyVersionNotFound => "key_version_not_found",
            ErrorKind::KeyVersionDestroyed => "key_version_destroyed",
            ErrorKind::KeyVersionDisabled => "key_version_disabled",
            ErrorKind::KeyVersionTooOld => "key_version_too_old",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Kms => "kms",
            ErrorKind::InvalidKeyUri => "invalid_key_uri",
            ErrorKind::FeatureNotEnabled => "feature_not_enabled",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::Keyring => "keyring",
            ErrorKind::MessageTooLarge => "message_too_large",
            ErrorKind::BufferTooSmall => "buffer_too_small",
            ErrorKind::DekNotFound => "dek_not_found",
            ErrorKind::DekStore => "dek_store",
            ErrorKind::IndexNotFound => "index_not_found",
            ErrorKind::IndexRetired => "index_retired",
            ErrorKind::IndexMismatch => "index_mismatch",
            ErrorKind::AuditLog => "audit_log",
            ErrorKind::Truncated => "truncated",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
