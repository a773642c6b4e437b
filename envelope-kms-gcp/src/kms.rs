//! The Google Cloud KMS [`Kms`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use envelope_core::{
    Dek, EncryptionContext, Error, KeyDescription, Kms, KmsExt, PerProcess, Provider, Result,
    WrappedDek, canonical_context,
};
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::CryptoKeyVersion;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::config::GcpKmsBuilder;
use crate::errors::map_error;
use crate::integrity::{check_decrypt, check_encrypt, crc32c};
use crate::versions::{describe, version_id};

/// How many requests a [`GcpKms`] has sent, by Cloud KMS method (successful or not; the
/// client's own retries of one call count once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcpKmsCalls {
    /// `Encrypt`.
    pub encrypt: u64,
    /// `Decrypt`.
    pub decrypt: u64,
    /// `GetCryptoKey` and `ListCryptoKeyVersions` (one per page).
    pub describe: u64,
}

#[derive(Debug, Default)]
struct Counters {
    encrypt: AtomicU64,
    decrypt: AtomicU64,
    describe: AtomicU64,
}

/// A [`Kms`] over Google Cloud KMS (`google-cloud-kms-v1`, REST).
///
/// - New DEKs: generated locally from the OS CSPRNG and wrapped with `Encrypt` under the
///   key's primary version (Cloud KMS has no data-key generation).
/// - Unwrap: `Decrypt` on the CryptoKey named in the header (the service finds the version
///   in its own ciphertext).
/// - Rewrap: `Decrypt`, then `Encrypt` under the primary version, unless Decrypt reports
///   that the primary version already wrapped it (`used_primary`): one call pair per
///   distinct DEK that moves, one call for one that is current.
/// - Describe: `GetCryptoKey` and `ListCryptoKeyVersions`.
/// - The KEK version recorded in headers is the CryptoKeyVersion id that `Encrypt` reports.
/// - The envelope's encryption context is Cloud KMS's additional authenticated data, in the
///   canonical encoding of [`canonical_context`] (none for an empty context).
/// - Every Encrypt and Decrypt carries and checks CRC32C checksums.
pub struct GcpKms {
    builder: GcpKmsBuilder,
    /// The client, rebuilt in a forked child (whose parent's pooled connections belong to a
    /// runtime thread that does not exist there).
    client: PerProcess<KeyManagementService>,
    calls: Counters,
}

impl std::fmt::Debug for GcpKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpKms")
            .field("endpoint", &self.builder.endpoint)
            .field("anonymous", &self.builder.anonymous)
            .finish_non_exhaustive()
    }
}

/// A DEK's bytes handed to the client as the request's plaintext; zeroized when the
/// request is dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
struct PlaintextDek([u8; 32]);

impl AsRef<[u8]> for PlaintextDek {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn aad(context: &EncryptionContext) -> Option<Vec<u8>> {
    (!context.is_empty()).then(|| canonical_context(context))
}

/// Takes the DEK out of a Decrypt response's plaintext, zeroizing the buffer.
fn take_dek(plaintext: Bytes) -> Result<Dek> {
    let len = plaintext.len();
    let dek = Dek::from_slice(&plaintext);
    if let Ok(mut owned) = plaintext.try_into_mut() {
        owned.as_mut().zeroize();
    }
    dek.ok_or_else(|| Error::Kms {
        operation: "unwrap",
        message: format!("Cloud KMS returned a {len}-byte data key, expected 32"),
        source: None,
    })
}

impl GcpKms {
    pub(crate) fn from_builder(builder: GcpKmsBuilder) -> Self {
        GcpKms {
            builder,
            client: PerProcess::new(),
            calls: Counters::default(),
        }
    }

    /// Requests sent so far, by Cloud KMS method.
    pub fn calls(&self) -> GcpKmsCalls {
        let c = &self.calls;
        GcpKmsCalls {
            encrypt: c.encrypt.load(Ordering::Relaxed),
            decrypt: c.decrypt.load(Ordering::Relaxed),
            describe: c.describe.load(Ordering::Relaxed),
        }
    }

    /// The Cloud KMS client, built on first use (and again in a forked child) from the
    /// builder and Application Default Credentials. Failing to find credentials is
    /// `PermissionDenied`; an unusable configuration is `InvalidConfig`.
    pub async fn client(&self) -> Result<KeyManagementService> {
        self.client.get_or_try_init(|| self.build_client()).await
    }

    async fn build_client(&self) -> Result<KeyManagementService> {
        let b = &self.builder;
        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_delay(Duration::from_millis(100))
            .with_maximum_delay(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::InvalidConfig(format!("retry back-off: {e}")))?;
        let mut client = KeyManagementService::builder()
            .with_retry_policy(
                Aip194Strict
                    .continue_on_client_timeout()
                    .with_attempt_limit(b.max_attempts)
                    .with_time_limit(b.operation_timeout),
            )
            .with_backoff_policy(backoff)
            .with_attempt_timeout(b.attempt_timeout);
        if let Some(endpoint) = &b.endpoint {
            client = client.with_endpoint(endpoint);
        }
        if b.anonymous {
            client = client.with_credentials(
                google_cloud_auth::credentials::anonymous::Builder::new().build(),
            );
        }
        client.build().await.map_err(|e| {
            Error::InvalidConfig(format!(
                "Cloud KMS client: {e} (Application Default Credentials: set \
                 GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`)"
            ))
        })
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `Encrypt` with the checksums sent and checked; returns the ciphertext and the id of
    /// the version that wrapped it.
    async fn encrypt(
        &self,
        key_id: &str,
        dek: &Dek,
        context: &EncryptionContext,
        operation: &'static str,
    ) -> Result<WrappedDek> {
        let client = self.client().await?;
        let aad = aad(context);
        let sent_aad = aad.is_some();
        let mut request = client
            .encrypt()
            .set_name(key_id)
            .set_plaintext_crc32c(crc32c(dek.expose_secret()))
            .set_plaintext(Bytes::from_owner(PlaintextDek(*dek.expose_secret())))
            .with_idempotency(true);
        if let Some(aad) = aad {
            request = request
                .set_additional_authenticated_data_crc32c(crc32c(&aad))
                .set_additional_authenticated_data(aad);
        }
        Self::bump(&self.calls.encrypt);
        let response = request
            .send()
            .await
            .map_err(|e| map_error(e, operation, key_id))?;
        check_encrypt(&response, sent_aad, operation)?;
        let version = version_id(key_id, &response.name, operation)?.to_owned();
        Ok(WrappedDek {
            provider: Provider::GcpKms,
            key_id: key_id.to_owned(),
            key_version: version,
            ciphertext: response.ciphertext.to_vec(),
        })
    }

    /// `Decrypt` with the checksums sent and checked; returns the DEK and whether the
    /// key's primary version decrypted it.
    async fn decrypt(
        &self,
        wrapped: &WrappedDek,
        context: &EncryptionContext,
        operation: &'static str,
    ) -> Result<(Dek, bool)> {
        self.check_owned(wrapped)?;
        let client = self.client().await?;
        let aad = aad(context);
        let mut request = client
            .decrypt()
            .set_name(&wrapped.key_id)
            .set_ciphertext_crc32c(crc32c(&wrapped.ciphertext))
            .set_ciphertext(wrapped.ciphertext.clone())
            .with_idempotency(true);
        if let Some(aad) = aad {
            request = request
                .set_additional_authenticated_data_crc32c(crc32c(&aad))
                .set_additional_authenticated_data(aad);
        }
        Self::bump(&self.calls.decrypt);
        let response = request
            .send()
            .await
            .map_err(|e| map_error(e, operation, &wrapped.key_id))?;
        let checked = check_decrypt(&response, operation);
        let used_primary = response.used_primary;
        let dek = take_dek(response.plaintext);
        checked?;
        Ok((dek?, used_primary))
    }

    async fn list_versions(&self, key_id: &str) -> Result<Option<Vec<CryptoKeyVersion>>> {
        let client = self.client().await?;
        let mut versions = Vec::new();
        let mut page_token = String::new();
        loop {
            Self::bump(&self.calls.describe);
            let page = match client
                .list_crypto_key_versions()
                .set_parent(key_id)
                .set_page_token(page_token)
                .send()
                .await
            {
                Ok(page) => page,
                Err(e) if versions_unlistable(&e) => return Ok(None),
                Err(e) => return Err(map_error(e, "describe", key_id)),
            };
            versions.extend(page.crypto_key_versions);
            if page.next_page_token.is_empty() {
                return Ok(Some(versions));
            }
            page_token = page.next_page_token;
        }
    }
}

/// Errors of ListCryptoKeyVersions (after GetCryptoKey found the key) after which
/// describe_key names the primary version only: the caller may not list versions
/// (`cloudkms.cryptoKeyVersions.list`), or the server has no such method (UNIMPLEMENTED, or
/// HTTP 404 from an emulator without the route; Cloud KMS never deletes a CryptoKey, so a
/// 404 right after reading it means the method is missing).
fn versions_unlistable(error: &google_cloud_gax::error::Error) -> bool {
    use google_cloud_gax::error::rpc::Code;
    error.status().is_some_and(|status| {
        matches!(
            status.code,
            Code::PermissionDenied | Code::NotFound | Code::Unimplemented
        )
    }) || error.http_status_code() == Some(404)
}

#[async_trait]
impl Kms for GcpKms {
    fn provider(&self) -> Provider {
        Provider::GcpKms
    }

    async fn wrap_dek(
        &self,
        key_id: &str,
        dek: &Dek,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        self.encrypt(key_id, dek, context, "wrap").await
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &EncryptionContext) -> Result<Dek> {
        Ok(self.decrypt(wrapped, context, "unwrap").await?.0)
    }

    async fn describe_key(&self, key_id: &str) -> Result<KeyDescription> {
        let client = self.client().await?;
        Self::bump(&self.calls.describe);
        let key = client
            .get_crypto_key()
            .set_name(key_id)
            .send()
            .await
            .map_err(|e| map_error(e, "describe", key_id))?;
        let versions = self.list_versions(key_id).await?;
        describe(&key, versions.as_deref())
    }

    async fn rewrap_dek(
        &self,
        wrapped: &WrappedDek,
        target_key_id: &str,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        let (dek, used_primary) = self.decrypt(wrapped, context, "rewrap").await?;
        if used_primary && wrapped.key_id == target_key_id && !wrapped.key_version.is_empty() {
            // Already under the primary version: nothing to move.
            return Ok(wrapped.clone());
        }
        self.encrypt(target_key_id, &dek, context, "rewrap").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_gax::error::Error as GaxError;
    use google_cloud_gax::error::rpc::{Code, Status};

    #[test]
    fn only_permission_and_missing_method_skip_the_version_list() {
        let status = |code| GaxError::service(Status::default().set_code(code));
        assert!(versions_unlistable(&status(Code::PermissionDenied)));
        assert!(versions_unlistable(&status(Code::NotFound)));
        assert!(versions_unlistable(&status(Code::Unimplemented)));
        assert!(!versions_unlistable(&status(Code::Unavailable)));
        assert!(!versions_unlistable(&status(Code::Internal)));
        // drongo: HTTP 404 with a body that is not a Cloud KMS status.
        let no_route = GaxError::service_with_http_metadata(
            Status::default()
                .set_code(Code::Unknown)
                .set_message("drongo: no matching route"),
            Some(404),
            None,
        );
        assert!(versions_unlistable(&no_route));
        assert!(
            !versions_unlistable(&GaxError::timeout("deadline")),
            "a transport failure is not skipped"
        );
    }

    #[test]
    fn unwrapped_plaintext_must_be_a_32_byte_key() {
        assert!(take_dek(Bytes::from(vec![1u8; 32])).is_ok());
        let err = take_dek(Bytes::from(vec![1u8; 16])).unwrap_err();
        assert!(err.to_string().contains("16-byte"), "{err}");
    }
}
