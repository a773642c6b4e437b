//! AWS SDK failures mapped onto the SDK's semantic errors.

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use envelope_core::Error;

/// Maps any KMS operation's `SdkError` by the service's error code; the SDK error is kept as
/// the source. KMS error messages name keys and states, never key material.
pub(crate) fn map_sdk_error<E, R>(
    error: SdkError<E, R>,
    operation: &'static str,
    key_id: &str,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (code, message) = match &error {
        SdkError::ServiceError(service) => (
            service.err().code().unwrap_or("").to_owned(),
            service.err().message().unwrap_or("").to_owned(),
        ),
        // No answer from KMS: connect failure, timeout, broken response.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return Error::Unavailable {
                operation,
                source: Some(Box::new(error)),
            };
        }
        _ => (String::new(), String::new()),
    };
    let key_id = key_id.to_owned();
    let source = Some(Box::new(error) as envelope_core::BoxError);
    match code.as_str() {
        "NotFoundException" => Error::KeyNotFound { key_id },
        "DisabledException" => Error::KeyVersionDisabled {
            key_id,
            version: String::new(),
        },
        "KMSInvalidStateException" | "KMSInvalidStateFault" => {
            if message.to_ascii_lowercase().contains("pending") {
                // Scheduled for deletion: recoverable only by cancelling the deletion.
                Error::KeyVersionDisabled {
                    key_id,
                    version: String::new(),
                }
            } else {
                Error::Kms {
                    operation,
                    message: format!("{code}: {message}"),
                    source,
                }
            }
        }
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException" => Error::PermissionDenied {
            operation,
            key_id,
            source,
        },
        "InvalidCiphertextException" | "IncorrectKeyException" => Error::DecryptionFailed,
        "ThrottlingException" | "LimitExceededException" | "RequestLimitExceeded" => {
            Error::Throttled { operation, source }
        }
        "KMSInternalException"
        | "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "ServiceUnavailableException"
        | "InternalFailure" => Error::Unavailable { operation, source },
        _ => Error::Kms {
            operation,
            message: if code.is_empty() {
                "request failed".into()
            } else {
                format!("{code}: {message}")
            },
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kms::error::ErrorMetadata;
    use aws_sdk_kms::operation::decrypt::DecryptError;
    use aws_sdk_kms::operation::generate_data_key::GenerateDataKeyError;
    use aws_sdk_kms::types::error::{
        DisabledException, InvalidCiphertextException, KmsInvalidStateException, NotFoundException,
    };
    use envelope_core::ErrorKind;

    /// The metadata the SDK's deserializer attaches to every modeled error.
    fn meta(code: &str, message: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message(message).build()
    }

    fn service<E>(e: E) -> SdkError<E, ()> {
        SdkError::service_error(e, ())
    }

    fn generic(code: &str) -> SdkError<DecryptError, ()> {
        service(DecryptError::generic(
            ErrorMetadata::builder().code(code).message("m").build(),
        ))
    }

    // The SDK's own error types, as the service would produce them. These key states are
    // not enforced by moto, so this is where their mapping is tested.
    #[test]
    fn modeled_errors_map_to_semantic_variants() {
        let disabled = GenerateDataKeyError::DisabledException(
            DisabledException::builder()
                .message("arn:... is disabled.")
                .meta(meta("DisabledException", "arn:... is disabled."))
                .build(),
        );
        assert_eq!(
            map_sdk_error(service(disabled), "generate", "k").kind(),
            ErrorKind::KeyVersionDisabled
        );
        let pending = GenerateDataKeyError::KmsInvalidStateException(
            KmsInvalidStateException::builder()
                .message("arn:... is pending deletion.")
                .meta(meta(
                    "KMSInvalidStateException",
                    "arn:... is pending deletion.",
                ))
                .build(),
        );
        assert_eq!(
            map_sdk_error(service(pending), "generate", "k").kind(),
            ErrorKind::KeyVersionDisabled
        );
        let missing = GenerateDataKeyError::NotFoundException(
            NotFoundException::builder()
                .message("Invalid keyId")
                .meta(meta("NotFoundException", "Invalid keyId"))
                .build(),
        );
        assert_eq!(
            map_sdk_error(service(missing), "generate", "k").kind(),
            ErrorKind::KeyNotFound
        );
        let invalid = DecryptError::InvalidCiphertextException(
            InvalidCiphertextException::builder()
                .meta(meta("InvalidCiphertextException", ""))
                .build(),
        );
        assert_eq!(
            map_sdk_error(service(invalid), "unwrap", "k").kind(),
            ErrorKind::DecryptionFailed
        );
    }

    #[test]
    fn unmodeled_codes_and_transport_failures() {
        let cases = [
            ("AccessDeniedException", ErrorKind::PermissionDenied),
            ("ThrottlingException", ErrorKind::Throttled),
            ("KMSInternalException", ErrorKind::Unavailable),
            ("DependencyTimeoutException", ErrorKind::Unavailable),
            ("SomethingNew", ErrorKind::Kms),
        ];
        for (code, kind) in cases {
            let e = map_sdk_error(generic(code), "unwrap", "k");
            assert_eq!(e.kind(), kind, "{code}");
        }
        let timeout: SdkError<DecryptError, ()> = SdkError::timeout_error("deadline");
        let e = map_sdk_error(timeout, "unwrap", "k");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
    }
}
