//! Cloud KMS client failures mapped onto the SDK's semantic errors.

use envelope_core::Error;
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;

use crate::versions::version_in_message;

/// Maps a failed call by its status code (and, for FAILED_PRECONDITION, the version state
/// the message names); the client's error is kept as the source. Cloud KMS messages name
/// keys, versions and states, never key material.
pub(crate) fn map_error(error: GaxError, operation: &'static str, key_id: &str) -> Error {
    let key_id = key_id.to_owned();
    let Some(status) = error.status() else {
        if error.is_authentication() {
            // No usable credentials (no ADC, an expired or refused token).
            return Error::PermissionDenied {
                operation,
                key_id,
                source: Some(Box::new(error)),
            };
        }
        if error.is_binding() || error.is_serialization() {
            return Error::Kms {
                operation,
                message: format!("the request could not be built: {error}"),
                source: Some(Box::new(error)),
            };
        }
        // No status from the service: timeouts, connection failures, exhausted retries,
        // an answer that was not a Cloud KMS response.
        return Error::Unavailable {
            operation,
            source: Some(Box::new(error)),
        };
    };
    let code = status.code;
    let message = status.message.clone();
    let source = Some(Box::new(error) as envelope_core::BoxError);
    match code {
        Code::NotFound => {
            let version = version_in_message(&message);
            if version.is_empty() {
                Error::KeyNotFound { key_id }
            } else {
                Error::KeyVersionNotFound { key_id, version }
            }
        }
        Code::FailedPrecondition => {
            // "…/cryptoKeyVersions/N is not enabled, current state is: STATE."
            let version = version_in_message(&message);
            if message.contains("DESTROY_SCHEDULED") || message.contains("DISABLED") {
                Error::KeyVersionDisabled { key_id, version }
            } else if message.contains("DESTROYED") {
                Error::KeyVersionDestroyed { key_id, version }
            } else {
                Error::Kms {
                    operation,
                    message: format!("{}: {message}", code.name()),
                    source,
                }
            }
        }
        Code::PermissionDenied | Code::Unauthenticated => Error::PermissionDenied {
            operation,
            key_id,
            source,
        },
        // Decrypt answers INVALID_ARGUMENT for a ciphertext that is not authentic under
        // the key (tampered, another key's, the wrong additional authenticated data).
        Code::InvalidArgument if operation == "unwrap" => Error::DecryptionFailed,
        Code::ResourceExhausted => Error::Throttled { operation, source },
        Code::Unavailable | Code::DeadlineExceeded | Code::Internal | Code::Aborted => {
            Error::Unavailable { operation, source }
        }
        _ => Error::Kms {
            operation,
            message: format!("{}: {message}", code.name()),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope_core::ErrorKind;
    use google_cloud_gax::error::rpc::Status;

    const VERSION: &str = "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/4";

    fn status(code: Code, message: &str) -> GaxError {
        GaxError::service(Status::default().set_code(code).set_message(message))
    }

    /// The statuses real Cloud KMS answers with, as the client crate delivers them; drongo
    /// has no version states and no quotas, so these mappings are tested here.
    #[test]
    fn statuses_map_to_semantic_variants() {
        let cases = [
            (
                Code::FailedPrecondition,
                format!("{VERSION} is not enabled, current state is: DISABLED."),
                "unwrap",
                ErrorKind::KeyVersionDisabled,
            ),
            (
                Code::FailedPrecondition,
                format!("{VERSION} is not enabled, current state is: DESTROY_SCHEDULED."),
                "unwrap",
                ErrorKind::KeyVersionDisabled,
            ),
            (
                Code::FailedPrecondition,
                format!("{VERSION} is not enabled, current state is: DESTROYED."),
                "unwrap",
                ErrorKind::KeyVersionDestroyed,
            ),
            (
                Code::FailedPrecondition,
                "The request cannot be fulfilled.".into(),
                "wrap",
                ErrorKind::Kms,
            ),
            (
                Code::NotFound,
                "CryptoKey not found.".into(),
                "wrap",
                ErrorKind::KeyNotFound,
            ),
            (
                Code::NotFound,
                format!("{VERSION} not found."),
                "describe",
                ErrorKind::KeyVersionNotFound,
            ),
            (
                Code::PermissionDenied,
                "Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied".into(),
                "unwrap",
                ErrorKind::PermissionDenied,
            ),
            (
                Code::Unauthenticated,
                "Request had invalid authentication credentials.".into(),
                "wrap",
                ErrorKind::PermissionDenied,
            ),
            (
                Code::InvalidArgument,
                "Decryption failed: the ciphertext is invalid.".into(),
                "unwrap",
                ErrorKind::DecryptionFailed,
            ),
            (
                Code::InvalidArgument,
                "Plaintext too large.".into(),
                "wrap",
                ErrorKind::Kms,
            ),
            (
                Code::ResourceExhausted,
                "Quota exceeded".into(),
                "unwrap",
                ErrorKind::Throttled,
            ),
            (
                Code::Unavailable,
                "The service is unavailable.".into(),
                "wrap",
                ErrorKind::Unavailable,
            ),
            (
                Code::DeadlineExceeded,
                "Deadline exceeded".into(),
                "wrap",
                ErrorKind::Unavailable,
            ),
            (Code::Unimplemented, "".into(), "describe", ErrorKind::Kms),
        ];
        for (code, message, operation, kind) in cases {
            let err = map_error(status(code, &message), operation, "k");
            assert_eq!(err.kind(), kind, "{code:?} {message}");
        }
        match map_error(
            status(
                Code::FailedPrecondition,
                &format!("{VERSION} is not enabled, current state is: DESTROYED."),
            ),
            "unwrap",
            "k",
        ) {
            Error::KeyVersionDestroyed { version, .. } => assert_eq!(version, "4"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failures_without_a_status_are_retryable_unavailability() {
        for error in [
            GaxError::timeout("deadline"),
            GaxError::exhausted("too many attempts"),
            GaxError::io("connection reset"),
        ] {
            let err = map_error(error, "unwrap", "k");
            assert_eq!(err.kind(), ErrorKind::Unavailable);
            assert!(err.is_retryable());
        }
        let err = map_error(GaxError::ser("bad request"), "wrap", "k");
        assert_eq!(err.kind(), ErrorKind::Kms);
    }
}
