//! Vault's failures, mapped onto the SDK's semantic errors.

use envelope_core::Error;

/// What went wrong talking to Vault, before it is mapped (private detail).
#[derive(Debug)]
pub(crate) enum VaultFailure {
    /// The request never got an HTTP answer (connect, TLS, timeout, reset).
    Transport(reqwest::Error),
    /// Vault answered with an error status and its `errors` list.
    Status { status: u16, errors: Vec<String> },
    /// The client configuration cannot produce a request.
    Config(&'static str),
}

/// The source error attached to mapped errors: status and Vault's own messages (which
/// never contain key material or plaintext).
#[derive(Debug)]
pub(crate) struct VaultStatusError {
    status: u16,
    errors: Vec<String>,
}

impl std::fmt::Display for VaultStatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Vault answered HTTP {}: {}",
            self.status,
            self.errors.join("; ")
        )
    }
}

impl std::error::Error for VaultStatusError {}

pub(crate) fn classify(
    failure: VaultFailure,
    operation: &'static str,
    key_id: &str,
    version: &str,
) -> Error {
    let (status, errors) = match failure {
        VaultFailure::Transport(e) => {
            return Error::Unavailable {
                operation,
                source: Some(Box::new(e)),
            };
        }
        VaultFailure::Config(message) => return Error::InvalidConfig(message.into()),
        VaultFailure::Status { status, errors } => (status, errors),
    };
    let text = errors.join("; ").to_ascii_lowercase();
    let source = || -> Option<envelope_core::BoxError> {
        Some(Box::new(VaultStatusError {
            status,
            errors: errors.clone(),
        }))
    };
    match status {
        403 => Error::PermissionDenied {
            operation,
            key_id: key_id.to_owned(),
            source: source(),
        },
        429 => Error::Throttled {
            operation,
            source: source(),
        },
        // 503: sealed or in standby; 500/502/504: transient server or proxy trouble.
        500..=599 => Error::Unavailable {
            operation,
            source: source(),
        },
        404 => Error::KeyNotFound {
            key_id: key_id.to_owned(),
        },
        _ if text.contains("too old") || text.contains("disallowed by policy") => {
            Error::KeyVersionTooOld {
                key_id: key_id.to_owned(),
                version: version.to_owned(),
            }
        }
        _ if text.contains("key not found") || text.contains("no existing key") => {
            Error::KeyNotFound {
                key_id: key_id.to_owned(),
            }
        }
        _ if text.contains("message authentication failed")
            || text.contains("invalid ciphertext")
            || text.contains("unable to decrypt")
            || text.contains("invalid version") =>
        {
            Error::DecryptionFailed
        }
        _ => Error::Kms {
            operation,
            message: format!("Vault answered HTTP {status}: {}", errors.join("; ")),
            source: source(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope_core::ErrorKind;

    fn status(code: u16, msg: &str) -> Error {
        classify(
            VaultFailure::Status {
                status: code,
                errors: vec![msg.into()],
            },
            "unwrap",
            "k",
            "1",
        )
    }

    #[test]
    fn statuses_map_to_semantic_errors() {
        assert_eq!(
            status(403, "permission denied").kind(),
            ErrorKind::PermissionDenied
        );
        assert_eq!(status(429, "rate limited").kind(), ErrorKind::Throttled);
        assert_eq!(
            status(503, "Vault is sealed").kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            status(
                400,
                "ciphertext or signature version is disallowed by policy (too old)"
            )
            .kind(),
            ErrorKind::KeyVersionTooOld
        );
        assert_eq!(
            status(400, "encryption key not found").kind(),
            ErrorKind::KeyNotFound
        );
        assert_eq!(
            status(400, "cipher: message authentication failed").kind(),
            ErrorKind::DecryptionFailed
        );
        let other = status(400, "something new");
        assert_eq!(other.kind(), ErrorKind::Kms);
        assert!(other.to_string().contains("something new"));
    }
}
