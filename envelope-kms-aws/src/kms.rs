//! The AWS KMS [`Kms`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::{DataKeySpec, KeyState};
use envelope_core::{
    Dek, EncryptionContext, Error, GeneratedDek, KeyDescription, KeyVersionInfo, KeyVersionState,
    Kms, KmsExt, PerProcess, Provider, Result, RotationState, WrappedDek,
};
use zeroize::Zeroize;

use crate::config::AwsKmsBuilder;
use crate::errors::map_sdk_error;

/// How many requests an [`AwsKms`] has sent, by KMS API (successful or not; the SDK's own
/// retries of one call count once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsKmsCalls {
    /// `GenerateDataKey`.
    pub generate_data_key: u64,
    /// `Encrypt`.
    pub encrypt: u64,
    /// `Decrypt`.
    pub decrypt: u64,
    /// `ReEncrypt`.
    pub re_encrypt: u64,
    /// `DescribeKey`, `GetKeyRotationStatus` and `ListKeyRotations`.
    pub describe: u64,
}

#[derive(Debug, Default)]
struct Counters {
    generate_data_key: AtomicU64,
    encrypt: AtomicU64,
    decrypt: AtomicU64,
    re_encrypt: AtomicU64,
    describe: AtomicU64,
}

/// A [`Kms`] over AWS KMS (`aws-sdk-kms`).
///
/// - New DEKs: `GenerateDataKey` (AES_256) under the envelope's key (ARN or alias ARN).
/// - Unwrap: `Decrypt` with the `KeyId` pinned to the key ARN recorded in the header
///   (never "any key").
/// - Rewrap: `ReEncrypt`, so the DEK never leaves KMS.
/// - Describe: `DescribeKey`, `GetKeyRotationStatus`, `ListKeyRotations`.
/// - The KEK version recorded in headers is the `KeyMaterialId` KMS returns; where a server
///   does not return one (older regions, emulators) the header's version is empty and every
///   rewrap calls `ReEncrypt` (the result is then always treated as changed).
/// - The envelope's encryption context is passed as KMS's encryption context.
pub struct AwsKms {
    builder: AwsKmsBuilder,
    /// The SDK client, rebuilt in a forked child (whose parent's pooled connections belong
    /// to a runtime thread that does not exist there).
    client: PerProcess<Client>,
    calls: Counters,
}

impl std::fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKms")
            .field("region", &self.builder.region)
            .field("endpoint", &self.builder.endpoint)
            .finish_non_exhaustive()
    }
}

fn context_map(context: &EncryptionContext) -> Option<HashMap<String, String>> {
    (!context.is_empty()).then(|| {
        context
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

fn to_system_time(t: &DateTime) -> Option<SystemTime> {
    let secs = u64::try_from(t.secs()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Takes a plaintext key out of a response blob, zeroizing the blob's buffer.
fn take_dek(blob: Option<Blob>, operation: &'static str) -> Result<Dek> {
    let mut bytes = blob
        .ok_or_else(|| Error::Kms {
            operation,
            message: "KMS returned no plaintext data key".into(),
            source: None,
        })?
        .into_inner();
    let dek = Dek::from_slice(&bytes);
    let len = bytes.len();
    bytes.zeroize();
    dek.ok_or_else(|| Error::Kms {
        operation,
        message: format!("KMS returned a {len}-byte data key, expected 32"),
        source: None,
    })
}

fn missing(operation: &'static str, what: &str) -> Error {
    Error::Kms {
        operation,
        message: format!("KMS returned no {what}"),
        source: None,
    }
}

impl AwsKms {
    pub(crate) fn from_builder(builder: AwsKmsBuilder) -> Self {
        AwsKms {
            builder,
            client: PerProcess::new(),
            calls: Counters::default(),
        }
    }

    /// Requests sent so far, by KMS API.
    pub fn calls(&self) -> AwsKmsCalls {
        let c = &self.calls;
        AwsKmsCalls {
            generate_data_key: c.generate_data_key.load(Ordering::Relaxed),
            encrypt: c.encrypt.load(Ordering::Relaxed),
            decrypt: c.decrypt.load(Ordering::Relaxed),
            re_encrypt: c.re_encrypt.load(Ordering::Relaxed),
            describe: c.describe.load(Ordering::Relaxed),
        }
    }

    /// The SDK client, configured on first use (and again in a forked child) from the
    /// builder and the AWS environment.
    pub async fn client(&self) -> Client {
        let Ok(client) = self
            .client
            .get_or_try_init(|| async {
                Ok::<_, std::convert::Infallible>(self.build_client().await)
            })
            .await;
        client
    }

    async fn build_client(&self) -> Client {
        let b = &self.builder;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(b.operation_timeout)
                    .operation_attempt_timeout(b.attempt_timeout)
                    .connect_timeout(b.connect_timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(b.max_attempts));
        if let Some(region) = &b.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &b.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(creds) = &b.static_credentials {
            loader = loader.credentials_provider(aws_sdk_kms::config::Credentials::new(
                creds.access_key_id.clone(),
                creds.secret_access_key.as_str(),
                None,
                None,
                "envelope-static",
            ));
        }
        Client::new(&loader.load().await)
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl Kms for AwsKms {
    fn provider(&self) -> Provider {
        Provider::AwsKms
    }

    async fn wrap_dek(
        &self,
        key_id: &str,
        dek: &Dek,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        let client = self.client().await;
        Self::bump(&self.calls.encrypt);
        let out = client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(dek.expose_secret().to_vec()))
            .set_encryption_context(context_map(context))
            .send()
            .await
            .map_err(|e| map_sdk_error(e, "wrap", key_id))?;
        Ok(WrappedDek {
            provider: Provider::AwsKms,
            key_id: out.key_id.unwrap_or_else(|| key_id.to_owned()),
            // Encrypt does not return the key material id.
            key_version: String::new(),
            ciphertext: out
                .ciphertext_blob
                .ok_or_else(|| missing("wrap", "ciphertext"))?
                .into_inner(),
        })
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &EncryptionContext) -> Result<Dek> {
        self.check_owned(wrapped)?;
        let client = self.client().await;
        Self::bump(&self.calls.decrypt);
        let out = client
            .decrypt()
            .key_id(&wrapped.key_id)
            .ciphertext_blob(Blob::new(wrapped.ciphertext.clone()))
            .set_encryption_context(context_map(context))
            .send()
            .await
            .map_err(|e| map_sdk_error(e, "unwrap", &wrapped.key_id))?;
        // A header naming other key material than the blob's was tampered with.
        if let Some(material) = &out.key_material_id
            && !wrapped.key_version.is_empty()
            && *material != wrapped.key_version
        {
            let mut plaintext = out.plaintext;
            if let Some(blob) = plaintext.take() {
                blob.into_inner().zeroize();
            }
            return Err(Error::DecryptionFailed);
        }
        take_dek(out.plaintext, "unwrap")
    }

    async fn describe_key(&self, key_id: &str) -> Result<KeyDescription> {
        let client = self.client().await;
        Self::bump(&self.calls.describe);
        let described = client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, "describe", key_id))?;
        let metadata = described
            .key_metadata
            .ok_or_else(|| missing("describe", "key metadata"))?;
        let arn = metadata.arn.clone().unwrap_or_else(|| key_id.to_owned());
        Self::bump(&self.calls.describe);
        let rotation = client
            .get_key_rotation_status()
            .key_id(&arn)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, "describe", key_id))?;
        Self::bump(&self.calls.describe);
        // Earlier key materials come from ListKeyRotations. A role without
        // kms:ListKeyRotations (or a server without the action) still gets the current
        // material, the key state and the rotation schedule; only older versions go unlisted.
        let rotations = match client.list_key_rotations().key_id(&arn).send().await {
            Ok(out) => out.rotations.unwrap_or_default(),
            Err(e) if rotations_unlistable(e.code()) => Vec::new(),
            Err(e) => return Err(map_sdk_error(e, "describe", key_id)),
        };
        let state = match metadata.key_state() {
            Some(KeyState::Enabled) => KeyVersionState::Enabled,
            Some(KeyState::Disabled) => KeyVersionState::Disabled,
            Some(KeyState::PendingDeletion) => KeyVersionState::PendingDestruction,
            Some(other) => KeyVersionState::Other(other.as_str().to_owned()),
            None => KeyVersionState::Other("unknown".into()),
        };
        let current = metadata.current_key_material_id().map(str::to_owned);
        let mut versions: Vec<KeyVersionInfo> = rotations
            .into_iter()
            .filter_map(|r| {
                Some(KeyVersionInfo {
                    version: r.key_material_id?,
                    state: state.clone(),
                    created_at: r.rotation_date.as_ref().and_then(to_system_time),
                })
            })
            .collect();
        if let Some(current) = &current
            && !versions.iter().any(|v| &v.version == current)
        {
            versions.push(KeyVersionInfo {
                version: current.clone(),
                state: state.clone(),
                created_at: metadata.creation_date().and_then(to_system_time),
            });
        }
        let period = rotation
            .rotation_period_in_days()
            .and_then(|d| u64::try_from(d).ok())
            .map(|d| Duration::from_secs(d * 86_400));
        Ok(KeyDescription {
            key_id: arn,
            current_version: current,
            versions,
            rotation: RotationState {
                automatic: rotation.key_rotation_enabled(),
                period: period.filter(|_| rotation.key_rotation_enabled()),
                next_rotation: rotation.next_rotation_date().and_then(to_system_time),
                last_rotated: rotation
                    .on_demand_rotation_start_date()
                    .and_then(to_system_time)
                    .or_else(|| metadata.creation_date().and_then(to_system_time)),
            },
        })
    }

    async fn generate_dek(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDek> {
        let client = self.client().await;
        Self::bump(&self.calls.generate_data_key);
        let out = client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(context_map(context))
            .send()
            .await
            .map_err(|e| map_sdk_error(e, "generate", key_id))?;
        let dek = take_dek(out.plaintext, "generate")?;
        Ok(GeneratedDek {
            dek,
            wrapped: WrappedDek {
                provider: Provider::AwsKms,
                key_id: out.key_id.unwrap_or_else(|| key_id.to_owned()),
                key_version: out.key_material_id.unwrap_or_default(),
                ciphertext: out
                    .ciphertext_blob
                    .ok_or_else(|| missing("generate", "ciphertext"))?
                    .into_inner(),
            },
        })
    }

    async fn rewrap_dek(
        &self,
        wrapped: &WrappedDek,
        target_key_id: &str,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        self.check_owned(wrapped)?;
        let client = self.client().await;
        Self::bump(&self.calls.re_encrypt);
        let out = client
            .re_encrypt()
            .source_key_id(&wrapped.key_id)
            .destination_key_id(target_key_id)
            .ciphertext_blob(Blob::new(wrapped.ciphertext.clone()))
            .set_source_encryption_context(context_map(context))
            .set_destination_encryption_context(context_map(context))
            .send()
            .await
            .map_err(|e| map_sdk_error(e, "rewrap", &wrapped.key_id))?;
        Ok(WrappedDek {
            provider: Provider::AwsKms,
            key_id: out.key_id.unwrap_or_else(|| target_key_id.to_owned()),
            key_version: out.destination_key_material_id.unwrap_or_default(),
            ciphertext: out
                .ciphertext_blob
                .ok_or_else(|| missing("rewrap", "ciphertext"))?
                .into_inner(),
        })
    }
}
/// Error codes of ListKeyRotations after which describe_key lists the current key material
/// only: the caller may not list rotations, or the service does not offer the action.
fn rotations_unlistable(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("AccessDeniedException" | "InvalidAction" | "UnknownOperationException")
    )
}

#[cfg(test)]
mod tests {
    use super::rotations_unlistable;

    #[test]
    fn only_permission_and_unsupported_action_skip_the_rotation_list() {
        assert!(rotations_unlistable(Some("AccessDeniedException")));
        assert!(rotations_unlistable(Some("InvalidAction")));
        assert!(!rotations_unlistable(Some("NotFoundException")));
        assert!(!rotations_unlistable(Some("KMSInternalException")));
        assert!(
            !rotations_unlistable(None),
            "a transport failure is not skipped"
        );
    }
}
