//! The local KMS: KEKs in a keyring file on this machine.
//!
//! This is the development and air-gapped default. It is not a production KMS: the KEKs sit
//! in a file readable by whoever runs as this user, there is no audit log and no access
//! control beyond file permissions. Use a cloud KMS or Vault for production data.

mod keyring;

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use zeroize::Zeroizing;

pub use keyring::{LocalKeyring, LocalVersionState};

use crate::crypto::{CryptoProvider, GCM_NONCE_LEN, GcmKey};
use crate::error::{Error, Result};
use crate::kms::{
    EncryptionContext, GeneratedDek, KeyDescription, Kms, KmsExt, Provider, WrappedDek,
    canonical_context,
};
use crate::secret::{Dek, KEY_LEN};

/// Domain separation string at the start of the wrap's associated data.
const WRAP_AD_LABEL: &[u8] = b"envelope.local.wrap.v1";
/// Length of a wrapped DEK: nonce (12) + encrypted DEK (32) + tag (16).
pub const LOCAL_WRAPPED_DEK_LEN: usize = 12 + KEY_LEN + 16;

/// How many operations a [`LocalKms`] has served (successful or not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalKmsCalls {
    /// `generate_dek` calls.
    pub generate: u64,
    /// `wrap_dek` calls.
    pub wrap: u64,
    /// `unwrap_dek` calls.
    pub unwrap: u64,
    /// `rewrap_dek` calls.
    pub rewrap: u64,
    /// `describe_key` calls.
    pub describe: u64,
}

#[derive(Debug, Default)]
struct Counters {
    generate: AtomicU64,
    wrap: AtomicU64,
    unwrap: AtomicU64,
    rewrap: AtomicU64,
    describe: AtomicU64,
}

/// A [`Kms`] over a [`LocalKeyring`] file.
#[derive(Debug)]
pub struct LocalKms {
    keyring: LocalKeyring,
    provider: CryptoProvider,
    calls: Counters,
}

impl LocalKms {
    /// A KMS over the keyring at `path`.
    pub fn new(keyring: LocalKeyring) -> Self {
        LocalKms {
            keyring,
            provider: CryptoProvider::default(),
            calls: Counters::default(),
        }
    }

    /// The crypto provider that wraps and unwraps DEKs under the keyring's KEKs (default
    /// [`CryptoProvider::default`]); [`Error::InvalidConfig`] if it is not compiled in.
    pub fn with_crypto_provider(mut self, provider: CryptoProvider) -> Result<Self> {
        provider.check_available()?;
        self.provider = provider;
        Ok(self)
    }

    /// A KMS and key id from a `local://PATH[#KEY_ID]` URI. `local:///abs/keyring.json` is
    /// an absolute path, `local://keyring.json` a relative one; the key id defaults to
    /// `default`.
    pub fn from_uri(uri: &str) -> Result<(Self, String)> {
        let invalid = |reason: &str| Error::InvalidKeyUri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = uri
            .strip_prefix("local://")
            .ok_or_else(|| invalid("expected local://PATH[#KEY_ID]"))?;
        let (path, key_id) = match rest.split_once('#') {
            Some((path, key_id)) => (path, key_id),
            None => (rest, "default"),
        };
        if path.is_empty() {
            return Err(invalid("the keyring path is empty"));
        }
        keyring::validate_key_id(key_id).map_err(|_| {
            invalid("the key id after '#' must be 1 to 128 characters of A-Z a-z 0-9 . _ -")
        })?;
        Ok((LocalKms::new(LocalKeyring::new(path)), key_id.to_owned()))
    }

    /// The keyring this KMS reads.
    pub fn keyring(&self) -> &LocalKeyring {
        &self.keyring
    }

    /// The calls served so far, by operation.
    pub fn calls(&self) -> LocalKmsCalls {
        let c = &self.calls;
        LocalKmsCalls {
            generate: c.generate.load(Ordering::Relaxed),
            wrap: c.wrap.load(Ordering::Relaxed),
            unwrap: c.unwrap.load(Ordering::Relaxed),
            rewrap: c.rewrap.load(Ordering::Relaxed),
            describe: c.describe.load(Ordering::Relaxed),
        }
    }

    fn wrap_loaded(
        &self,
        data: &keyring::KeyringData,
        key_id: &str,
        dek: &Dek,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        let kek = data.kek(key_id, None).map_err(|e| self.name_path(e))?;
        let ciphertext = wrap_fresh(
            self.provider,
            &kek.material,
            key_id,
            kek.version,
            dek,
            context,
        )?;
        Ok(WrappedDek {
            provider: Provider::Local,
            key_id: key_id.to_owned(),
            key_version: kek.version.to_string(),
            ciphertext,
        })
    }

    fn unwrap_loaded(
        &self,
        data: &keyring::KeyringData,
        wrapped: &WrappedDek,
        context: &EncryptionContext,
    ) -> Result<Dek> {
        self.check_owned(wrapped)?;
        // Versions are exact strings: the canonical decimal of a keyring version. "01", "+1"
        // or " 1" name no version (they would otherwise reach version 1 under a label that
        // a census counts apart).
        let version: u32 = wrapped
            .key_version
            .parse()
            .ok()
            .filter(|v: &u32| v.to_string() == wrapped.key_version)
            .ok_or_else(|| Error::KeyVersionNotFound {
                key_id: wrapped.key_id.clone(),
                version: wrapped.key_version.clone(),
            })?;
        let kek = data
            .kek(&wrapped.key_id, Some(version))
            .map_err(|e| self.name_path(e))?;
        unwrap_with_kek(
            self.provider,
            &kek.material,
            &wrapped.key_id,
            version,
            &wrapped.ciphertext,
            context,
        )
    }

    fn name_path(&self, e: Error) -> Error {
        match e {
            Error::Keyring {
                path,
                reason,
                source,
            } if path.is_empty() => Error::Keyring {
                path: self.keyring.path().display().to_string(),
                reason,
                source,
            },
            other => other,
        }
    }
}

/// The associated data of a local wrap: label, key id, version and encryption context, each
/// length-prefixed (see `docs/FORMAT.md`).
fn wrap_associated_data(key_id: &str, version: u32, context: &EncryptionContext) -> Vec<u8> {
    let version = version.to_string();
    let mut ad = Vec::with_capacity(64);
    ad.extend_from_slice(WRAP_AD_LABEL);
    ad.extend_from_slice(&(key_id.len() as u16).to_be_bytes());
    ad.extend_from_slice(key_id.as_bytes());
    ad.push(version.len() as u8);
    ad.extend_from_slice(version.as_bytes());
    ad.extend_from_slice(&canonical_context(context));
    ad
}

/// Wraps a DEK under a KEK: `nonce || AES-256-GCM(kek, dek) || tag`, the nonce drawn by
/// `seal` (fresh in the SDK, fixed for the test vectors).
fn wrap_dek_with(
    provider: CryptoProvider,
    kek: &[u8; KEY_LEN],
    key_id: &str,
    version: u32,
    dek: &Dek,
    context: &EncryptionContext,
    seal: impl FnOnce(&GcmKey, &mut [u8; GCM_NONCE_LEN], &[u8], &mut [u8]) -> Result<[u8; 16]>,
) -> Result<Vec<u8>> {
    let key = GcmKey::new(provider, kek);
    let ad = wrap_associated_data(key_id, version, context);
    let mut out = vec![0u8; LOCAL_WRAPPED_DEK_LEN];
    let (nonce, rest) = out.split_at_mut(GCM_NONCE_LEN);
    let (body, tag) = rest.split_at_mut(KEY_LEN);
    let nonce: &mut [u8; GCM_NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| Error::malformed("wrapped DEK", "nonce slot"))?;
    body.copy_from_slice(dek.expose_secret());
    match seal(&key, nonce, &ad, body) {
        Ok(t) => {
            tag.copy_from_slice(&t);
            Ok(out)
        }
        Err(_) => {
            zeroize::Zeroize::zeroize(&mut out);
            Err(Error::Kms {
                operation: "wrap",
                message: "AES-256-GCM refused to wrap the DEK".into(),
                source: None,
            })
        }
    }
}

/// Wraps a DEK under a KEK with a fresh nonce from the provider.
fn wrap_fresh(
    provider: CryptoProvider,
    kek: &[u8; KEY_LEN],
    key_id: &str,
    version: u32,
    dek: &Dek,
    context: &EncryptionContext,
) -> Result<Vec<u8>> {
    wrap_dek_with(
        provider,
        kek,
        key_id,
        version,
        dek,
        context,
        |k, n, ad, body| k.seal_in_place(n, ad, body),
    )
}

/// Wraps a DEK under a KEK with an explicit nonce (the test vectors' deterministic path).
#[cfg(feature = "testing")]
pub(crate) fn wrap_with_nonce(
    kek: &[u8; KEY_LEN],
    key_id: &str,
    version: u32,
    dek: &Dek,
    context: &EncryptionContext,
    nonce: &[u8; GCM_NONCE_LEN],
) -> Result<Vec<u8>> {
    let provider = CryptoProvider::default();
    wrap_dek_with(
        provider,
        kek,
        key_id,
        version,
        dek,
        context,
        |k, n, ad, body| {
            n.copy_from_slice(nonce);
            k.seal_in_place_with_nonce(n, ad, body)
        },
    )
}

fn unwrap_with_kek(
    provider: CryptoProvider,
    kek: &[u8; KEY_LEN],
    key_id: &str,
    version: u32,
    wrapped: &[u8],
    context: &EncryptionContext,
) -> Result<Dek> {
    if wrapped.len() != LOCAL_WRAPPED_DEK_LEN {
        return Err(Error::DecryptionFailed);
    }
    let key = GcmKey::new(provider, kek);
    let ad = wrap_associated_data(key_id, version, context);
    let (nonce, rest) = wrapped.split_at(GCM_NONCE_LEN);
    let (sealed, tag) = rest.split_at(KEY_LEN);
    let (Ok(nonce), Ok(tag)) = (nonce.try_into(), tag.try_into()) else {
        return Err(Error::DecryptionFailed);
    };
    let mut plain = Zeroizing::new([0u8; KEY_LEN]);
    key.open(nonce, &ad, sealed, tag, plain.as_mut())?;
    Ok(Dek::from_array(*plain))
}

#[async_trait]
impl Kms for LocalKms {
    fn provider(&self) -> Provider {
        Provider::Local
    }

    async fn wrap_dek(
        &self,
        key_id: &str,
        dek: &Dek,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        self.calls.wrap.fetch_add(1, Ordering::Relaxed);
        let data = self.keyring.load()?;
        self.wrap_loaded(&data, key_id, dek, context)
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &EncryptionContext) -> Result<Dek> {
        self.calls.unwrap.fetch_add(1, Ordering::Relaxed);
        let data = self.keyring.load()?;
        self.unwrap_loaded(&data, wrapped, context)
    }

    async fn describe_key(&self, key_id: &str) -> Result<KeyDescription> {
        self.calls.describe.fetch_add(1, Ordering::Relaxed);
        self.keyring.describe(key_id)
    }

    async fn generate_dek(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDek> {
        self.calls.generate.fetch_add(1, Ordering::Relaxed);
        let data = self.keyring.load()?;
        let dek = Dek::generate_with(self.provider);
        let wrapped = self.wrap_loaded(&data, key_id, &dek, context)?;
        Ok(GeneratedDek { dek, wrapped })
    }

    async fn rewrap_dek(
        &self,
        wrapped: &WrappedDek,
        target_key_id: &str,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        self.calls.rewrap.fetch_add(1, Ordering::Relaxed);
        let data = self.keyring.load()?;
        let dek = self.unwrap_loaded(&data, wrapped, context)?;
        self.wrap_loaded(&data, target_key_id, &dek, context)
    }
}

#[cfg(test)]
mod tests;
