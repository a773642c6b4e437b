//! The joint between the envelope core and a key management service.
//!
//! A backend implements [`Kms`]: three required methods (wrap, unwrap, describe) and two
//! provided ones that a backend overrides when its service does better (a server-side data
//! key generation, a server-side rewrap that never exposes the DEK). Conveniences built on
//! those live on [`KmsExt`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::secret::Dek;

/// Key/value pairs bound to every wrap and unwrap (AWS encryption context, Vault `context`
/// for derived keys, GCP additional authenticated data). Constant for an `Envelope`; the
/// per-message AAD is separate and never reaches the KMS.
pub type EncryptionContext = BTreeMap<String, String>;

/// The canonical bytes of an encryption context, for backends that bind it as one value
/// (the local KMS's associated data, Vault's `context`): the pair count as u16, then for each
/// pair in key order the key and the value, each prefixed by its length as u16 (big-endian).
pub fn canonical_context(context: &EncryptionContext) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(context.len() as u16).to_be_bytes());
    for (k, v) in context {
        out.extend_from_slice(&(k.len() as u16).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// A KMS provider. The id byte is part of the wire format and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// The local keyring file (`local://`).
    Local,
    /// AWS KMS (`aws-kms://`).
    AwsKms,
    /// Google Cloud KMS (`gcp-kms://`).
    GcpKms,
    /// HashiCorp Vault / OpenBao Transit (`vault://`).
    VaultTransit,
}

impl Provider {
    /// The provider's id byte in the header.
    pub const fn id(self) -> u8 {
        match self {
            Provider::Local => 0x01,
            Provider::AwsKms => 0x02,
            Provider::GcpKms => 0x03,
            Provider::VaultTransit => 0x04,
        }
    }

    /// The provider for an id byte, or [`Error::UnsupportedProvider`].
    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            0x01 => Ok(Provider::Local),
            0x02 => Ok(Provider::AwsKms),
            0x03 => Ok(Provider::GcpKms),
            0x04 => Ok(Provider::VaultTransit),
            other => Err(Error::UnsupportedProvider(other)),
        }
    }

    /// The key URI scheme of this provider.
    pub const fn scheme(self) -> &'static str {
        match self {
            Provider::Local => "local",
            Provider::AwsKms => "aws-kms",
            Provider::GcpKms => "gcp-kms",
            Provider::VaultTransit => "vault",
        }
    }

    /// The provider whose key URI scheme is `scheme` (`local`, `aws-kms`, `gcp-kms`,
    /// `vault`).
    pub fn from_scheme(scheme: &str) -> Option<Self> {
        [
            Provider::Local,
            Provider::AwsKms,
            Provider::GcpKms,
            Provider::VaultTransit,
        ]
        .into_iter()
        .find(|p| p.scheme() == scheme)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// A DEK wrapped by a KEK, with the exact KEK version that wrapped it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WrappedDek {
    /// The provider that wrapped it.
    pub provider: Provider,
    /// The provider's key id (keyring key name, ARN, CryptoKey name, Transit key name).
    pub key_id: String,
    /// The KEK version that wrapped it; empty when the service does not say.
    pub key_version: String,
    /// The wrapped DEK as the service returned it (opaque, not secret).
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for WrappedDek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedDek")
            .field("provider", &self.provider)
            .field("key_id", &self.key_id)
            .field("key_version", &self.key_version)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

impl WrappedDek {
    /// Checks the header's version label against what the wrapped DEK itself carries,
    /// without any key or KMS call. The label is not covered by the body's tag, so a census
    /// that reads headers only trusts it only as far as this check goes.
    pub fn check_label(&self) -> LabelCheck {
        match self.provider {
            Provider::VaultTransit => match std::str::from_utf8(&self.ciphertext)
                .ok()
                .and_then(vault_carried_version)
            {
                Some(carried) if carried == self.key_version => LabelCheck::Matches,
                Some(carried) => LabelCheck::Mislabeled {
                    carried: carried.to_owned(),
                },
                None => LabelCheck::Mislabeled {
                    carried: String::new(),
                },
            },
            Provider::Local => LabelCheck::BoundByWrap,
            Provider::AwsKms | Provider::GcpKms => LabelCheck::Opaque,
        }
    }
}

/// The `N` of a Vault Transit ciphertext `vault:vN:…` (digits only), or `None` when it has
/// no such prefix: the one parser of Vault's version prefix, used by the label check and
/// the Vault backend.
pub fn vault_carried_version(ciphertext: &str) -> Option<&str> {
    let (version, _) = ciphertext.strip_prefix("vault:v")?.split_once(':')?;
    (!version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())).then_some(version)
}

/// What a wrapped DEK says about the KEK version label in its header
/// ([`WrappedDek::check_label`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LabelCheck {
    /// The wrapped DEK carries its version (Vault's `vault:vN:` prefix) and it equals the label.
    Matches,
    /// The wrapped DEK carries another version than the label (empty when it carries none
    /// where it must): the header was altered. Decrypt and rewrap refuse such a ciphertext.
    Mislabeled {
        /// The version the wrapped DEK carries.
        carried: String,
    },
    /// The wrap binds the version as associated data without showing it (the local
    /// keyring): every unwrap and rewrap checks the label, a reader without the key cannot.
    BoundByWrap,
    /// The wrapped DEK is opaque (AWS KMS, Google Cloud KMS): only the KMS can say which
    /// version wrapped it, so only a KMS call (unwrap, rewrap) checks the label.
    Opaque,
}

impl LabelCheck {
    /// A short name: `matches`, `mislabeled`, `bound_by_wrap` or `opaque`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LabelCheck::Matches => "matches",
            LabelCheck::Mislabeled { .. } => "mislabeled",
            LabelCheck::BoundByWrap => "bound_by_wrap",
            LabelCheck::Opaque => "opaque",
        }
    }
}

/// A fresh DEK and its wrapped form.
#[derive(Debug)]
pub struct GeneratedDek {
    /// The plaintext DEK (zeroized on drop).
    pub dek: Dek,
    /// The DEK wrapped by the key's current version.
    pub wrapped: WrappedDek,
}

/// The state of one KEK version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyVersionState {
    /// Usable for wrap (if primary) and unwrap.
    Enabled,
    /// Temporarily unusable; can be re-enabled.
    Disabled,
    /// Scheduled for destruction; still recoverable on some services.
    PendingDestruction,
    /// Gone for good: data wrapped by it is unrecoverable.
    Destroyed,
    /// A state this SDK does not model, as the service named it.
    Other(String),
}

/// One KEK version as the KMS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersionInfo {
    /// The version, in the same form as [`WrappedDek::key_version`].
    pub version: String,
    /// Its state.
    pub state: KeyVersionState,
    /// When it was created, where the service says.
    pub created_at: Option<SystemTime>,
}

/// How a key rotates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationState {
    /// Whether the service rotates the key on a schedule.
    pub automatic: bool,
    /// The rotation period, where set.
    pub period: Option<Duration>,
    /// The next scheduled rotation, where the service says.
    pub next_rotation: Option<SystemTime>,
    /// When the current version was created or last rotated in, where the service says.
    pub last_rotated: Option<SystemTime>,
}

/// What a KMS says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDescription {
    /// The key id.
    pub key_id: String,
    /// The version new wraps use; `None` when the service does not say.
    pub current_version: Option<String>,
    /// Known versions (may be empty when the service does not list them).
    pub versions: Vec<KeyVersionInfo>,
    /// Rotation facts.
    pub rotation: RotationState,
}

/// A key management service that wraps and unwraps data keys under its KEKs.
///
/// Implementations must report the exact KEK version of every wrap, map their failures to
/// the semantic [`Error`] variants, never put key material into an error, and answer
/// [`Error::KeyNotOwned`] for a [`WrappedDek`] of another provider.
#[async_trait]
pub trait Kms: Send + Sync + fmt::Debug {
    /// The provider this KMS speaks for.
    fn provider(&self) -> Provider;

    /// Wraps `dek` under the current version of `key_id`.
    async fn wrap_dek(
        &self,
        key_id: &str,
        dek: &Dek,
        context: &EncryptionContext,
    ) -> Result<WrappedDek>;

    /// Unwraps a DEK. The key id and version come from `wrapped`: never "any key".
    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &EncryptionContext) -> Result<Dek>;

    /// Describes a key: its current version, versions and rotation state.
    async fn describe_key(&self, key_id: &str) -> Result<KeyDescription>;

    /// Creates a fresh DEK wrapped by the current version of `key_id`.
    ///
    /// The default draws the DEK from the OS CSPRNG and calls [`Kms::wrap_dek`]; services
    /// with a data-key API (AWS GenerateDataKey, Vault `datakey`) override it.
    async fn generate_dek(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDek> {
        let dek = Dek::generate();
        let wrapped = self.wrap_dek(key_id, &dek, context).await?;
        Ok(GeneratedDek { dek, wrapped })
    }

    /// Rewraps a DEK under the current version of `target_key_id`.
    ///
    /// The default unwraps and wraps again; services with a server-side rewrap (AWS
    /// ReEncrypt, Vault `rewrap`) override it so that the DEK never leaves the service.
    async fn rewrap_dek(
        &self,
        wrapped: &WrappedDek,
        target_key_id: &str,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        let dek = self.unwrap_dek(wrapped, context).await?;
        self.wrap_dek(target_key_id, &dek, context).await
    }

    /// Whether the service rewraps many DEKs in one request ([`Kms::rewrap_dek_batch`],
    /// e.g. Vault's `batch_input`). Callers batch only when it does, and otherwise call
    /// [`Kms::rewrap_dek`] per DEK.
    fn supports_batch_rewrap(&self) -> bool {
        false
    }

    /// Rewraps many DEKs, `contexts[i]` being item `i`'s encryption context (the same
    /// length as `wrapped`): the outer error is the request's, the inner ones each item's,
    /// in input order. Services with a batch API make one request
    /// ([`Kms::supports_batch_rewrap`]); the default makes one [`Kms::rewrap_dek`] call per
    /// DEK.
    async fn rewrap_dek_batch(
        &self,
        wrapped: &[WrappedDek],
        target_key_id: &str,
        contexts: &[EncryptionContext],
    ) -> Result<Vec<Result<WrappedDek>>> {
        rewrap_each(self, wrapped, target_key_id, contexts).await
    }
}

/// [`Kms::rewrap_dek_batch`] for a service without a batch API: one [`Kms::rewrap_dek`]
/// call per DEK, in order (the trait's default, and what a wrapper that adds behaviour to
/// each call, such as a rate limit, uses).
pub async fn rewrap_each<K: Kms + ?Sized>(
    kms: &K,
    wrapped: &[WrappedDek],
    target_key_id: &str,
    contexts: &[EncryptionContext],
) -> Result<Vec<Result<WrappedDek>>> {
    if contexts.len() != wrapped.len() {
        return Err(Error::InvalidConfig(format!(
            "{} encryption contexts for {} wrapped DEKs",
            contexts.len(),
            wrapped.len()
        )));
    }
    let mut out = Vec::with_capacity(wrapped.len());
    for (w, context) in wrapped.iter().zip(contexts) {
        out.push(kms.rewrap_dek(w, target_key_id, context).await);
    }
    Ok(out)
}

/// Conveniences for every [`Kms`].
#[async_trait]
pub trait KmsExt: Kms {
    /// Fails with [`Error::KeyNotOwned`] unless `wrapped` belongs to this KMS's provider.
    fn check_owned(&self, wrapped: &WrappedDek) -> Result<()> {
        if wrapped.provider == self.provider() {
            Ok(())
        } else {
            Err(Error::KeyNotOwned {
                kms: self.provider().to_string(),
                provider: wrapped.provider.to_string(),
                key_id: wrapped.key_id.clone(),
            })
        }
    }

    /// Whether `wrapped` is under an older KEK version than the key's current one
    /// (`None` when the service does not report versions).
    async fn is_stale(&self, wrapped: &WrappedDek) -> Result<Option<bool>> {
        let description = self.describe_key(&wrapped.key_id).await?;
        Ok(match description.current_version {
            Some(current) if !wrapped.key_version.is_empty() => {
                Some(current != wrapped.key_version)
            }
            _ => None,
        })
    }
}

impl<T: Kms + ?Sized> KmsExt for T {}

macro_rules! forward_kms {
    ($ty:ty) => {
        #[async_trait]
        impl<T: Kms + ?Sized> Kms for $ty {
            fn provider(&self) -> Provider {
                (**self).provider()
            }
            async fn wrap_dek(
                &self,
                key_id: &str,
                dek: &Dek,
                context: &EncryptionContext,
            ) -> Result<WrappedDek> {
                (**self).wrap_dek(key_id, dek, context).await
            }
            async fn unwrap_dek(
                &self,
                wrapped: &WrappedDek,
                context: &EncryptionContext,
            ) -> Result<Dek> {
                (**self).unwrap_dek(wrapped, context).await
            }
            async fn describe_key(&self, key_id: &str) -> Result<KeyDescription> {
                (**self).describe_key(key_id).await
            }
            async fn generate_dek(
                &self,
                key_id: &str,
                context: &EncryptionContext,
            ) -> Result<GeneratedDek> {
                (**self).generate_dek(key_id, context).await
            }
            async fn rewrap_dek(
                &self,
                wrapped: &WrappedDek,
                target_key_id: &str,
                context: &EncryptionContext,
            ) -> Result<WrappedDek> {
                (**self).rewrap_dek(wrapped, target_key_id, context).await
            }
            fn supports_batch_rewrap(&self) -> bool {
                (**self).supports_batch_rewrap()
            }
            async fn rewrap_dek_batch(
                &self,
                wrapped: &[WrappedDek],
                target_key_id: &str,
                contexts: &[EncryptionContext],
            ) -> Result<Vec<Result<WrappedDek>>> {
                (**self)
                    .rewrap_dek_batch(wrapped, target_key_id, contexts)
                    .await
            }
        }
    };
}

forward_kms!(Arc<T>);
forward_kms!(Box<T>);

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(provider: Provider, version: &str, ciphertext: &str) -> WrappedDek {
        WrappedDek {
            provider,
            key_id: "k".into(),
            key_version: version.into(),
            ciphertext: ciphertext.as_bytes().to_vec(),
        }
    }

    #[test]
    fn labels_are_checked_where_the_wrapped_dek_carries_them() {
        let vault = |v, ct| wrapped(Provider::VaultTransit, v, ct).check_label();
        assert_eq!(vault("3", "vault:v3:abc"), LabelCheck::Matches);
        assert_eq!(
            vault("2", "vault:v3:abc"),
            LabelCheck::Mislabeled {
                carried: "3".into()
            }
        );
        // A Vault wrapped DEK without its prefix carries nothing where it must.
        assert_eq!(
            vault("3", "v3:abc"),
            LabelCheck::Mislabeled {
                carried: String::new()
            }
        );
        assert_eq!(vault("03", "vault:v3:abc").as_str(), "mislabeled");
        assert_eq!(
            wrapped(Provider::Local, "1", "x").check_label(),
            LabelCheck::BoundByWrap
        );
        assert_eq!(
            wrapped(Provider::AwsKms, "", "x").check_label(),
            LabelCheck::Opaque
        );
        assert_eq!(
            wrapped(Provider::GcpKms, "1", "x").check_label(),
            LabelCheck::Opaque
        );
    }
}
