//! Building an [`Envelope`]: KMS and key, suite, crypto provider, cache policy,
//! encryption context, DEK store and compact version.

use super::{Envelope, Inner};
use std::sync::Arc;

use crate::audit::KeyUseLog;
use crate::cache::{ActiveSlot, CachePolicy, HotKeys, SingleFlightCache, UnwrapGuard};
use crate::compact::{self, CompactVersion, DekStore};
use crate::crypto::CryptoProvider;
use crate::error::{Error, Result};
use crate::kms::{EncryptionContext, Kms};
use crate::stats::Counters;
use crate::suite::Suite;

/// Builds an [`Envelope`].
pub struct EnvelopeBuilder {
    kms: Arc<dyn Kms>,
    key_id: String,
    suite: Suite,
    provider: CryptoProvider,
    policy: CachePolicy,
    context: EncryptionContext,
    store: Option<Arc<dyn DekStore>>,
    compact_version: CompactVersion,
    accept_compact_v2: bool,
    audit: Option<Arc<dyn KeyUseLog>>,
    audit_label: Option<String>,
}

impl EnvelopeBuilder {
    /// Reports every KMS call and, once a minute, how many encryptions and decryptions each
    /// cached DEK served, to `log` (off by default). See [`crate::audit`]; the
    /// `envelope-audit` crate's `AuditLog` writes a tamper-evident log. With a log that
    /// fails closed, operations fail with [`Error::AuditLog`] while it cannot record.
    pub fn key_use_log(mut self, log: Arc<dyn KeyUseLog>) -> Self {
        self.audit = Some(log);
        self
    }

    /// A label carried by every key-use event of this envelope (a caller, a table, a
    /// column: never a secret).
    pub fn audit_label(mut self, label: impl Into<String>) -> Self {
        self.audit_label = Some(label.into());
        self
    }

    /// The crypto provider for AES-256-GCM and HKDF (default [`CryptoProvider::default`]:
    /// aws-lc-rs when compiled in). Every provider reads every provider's ciphertexts.
    pub fn crypto_provider(mut self, provider: CryptoProvider) -> Self {
        self.provider = provider;
        self
    }

    /// The AEAD suite for new ciphertexts (default AES-256-GCM). Any suite decrypts.
    pub fn suite(mut self, suite: Suite) -> Self {
        self.suite = suite;
        self
    }

    /// The DEK cache policy (default [`CachePolicy::default`]).
    pub fn cache_policy(mut self, policy: CachePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The encryption context bound to every KMS wrap and unwrap.
    pub fn encryption_context(mut self, context: EncryptionContext) -> Self {
        self.context = context;
        self
    }

    /// A DEK store: new ciphertexts are written in the compact form (version 3, 72 bytes of
    /// overhead for AES-256-GCM, key-committing), naming their DEK by its id in `store`, and
    /// compact ciphertexts decrypt through it. Without a store the envelope writes v1 and
    /// refuses compact ciphertexts with [`Error::InvalidConfig`].
    pub fn dek_store(mut self, store: Arc<dyn DekStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The compact version new values are written in (with a [`EnvelopeBuilder::dek_store`]):
    /// [`CompactVersion::V3`] by default. [`CompactVersion::V2`] saves 32 bytes per value
    /// and is **not key-committing**: someone who knows two DEKs and can write the store can
    /// make one v2 value open to two different plaintexts. Choose it only for a reader that
    /// cannot read version 3 yet.
    pub fn compact_version(mut self, version: CompactVersion) -> Self {
        self.compact_version = version;
        self
    }

    /// Whether version 2 compact values decrypt (default `true`, so that values written
    /// before version 3 stay readable). Set `false` once a census shows none left (re-encrypt
    /// them first): a v2 value then fails with [`Error::UnsupportedFormatVersion`]`(2)`,
    /// which closes the downgrade to a non-committing value. An envelope that refuses v2
    /// cannot write it ([`EnvelopeBuilder::build`] says so).
    pub fn accept_compact_v2(mut self, accept: bool) -> Self {
        self.accept_compact_v2 = accept;
        self
    }

    /// Checks the configuration and builds the envelope. Makes no KMS call.
    pub fn build(self) -> Result<Envelope> {
        self.policy.validate(self.suite)?;
        self.provider.check_available()?;
        if self.key_id.is_empty() {
            return Err(Error::InvalidConfig("key id must not be empty".into()));
        }
        compact::check_user_context(&self.context)?;
        if self.compact_version == CompactVersion::V2 && !self.accept_compact_v2 {
            return Err(Error::InvalidConfig(
                "an envelope that refuses compact version 2 values cannot write them".into(),
            ));
        }
        let policy = self.policy;
        Ok(Envelope {
            inner: Arc::new(Inner {
                kms: self.kms,
                key_id: self.key_id,
                suite: self.suite,
                provider: self.provider,
                context: self.context,
                store: self.store,
                compact_version: self.compact_version,
                accept_compact_v2: self.accept_compact_v2,
                unwrapped: SingleFlightCache::new(policy.decrypt_capacity(), policy.decrypt_ttl()),
                hot: HotKeys::new(policy.decrypt_capacity()),
                rewraps: SingleFlightCache::new(policy.decrypt_capacity(), policy.max_age()),
                guard: UnwrapGuard::new(
                    policy.negative_ttl(),
                    policy.decrypt_capacity(),
                    policy.max_unwraps_per_second(),
                ),
                policy,
                active: ActiveSlot::default(),
                counters: Counters::default(),
                audit: self.audit.map(|log| super::Audit {
                    log,
                    label: self.audit_label,
                }),
            }),
        })
    }
}

impl Envelope {
    /// Starts building an envelope that wraps DEKs under `key_id` of `kms`.
    pub fn builder<K: Kms + 'static>(kms: K, key_id: impl Into<String>) -> EnvelopeBuilder {
        Self::builder_dyn(Arc::new(kms), key_id)
    }

    /// Like [`Envelope::builder`], for a KMS already behind an `Arc<dyn Kms>`.
    pub fn builder_dyn(kms: Arc<dyn Kms>, key_id: impl Into<String>) -> EnvelopeBuilder {
        EnvelopeBuilder {
            kms,
            key_id: key_id.into(),
            suite: Suite::default(),
            provider: CryptoProvider::default(),
            policy: CachePolicy::default(),
            context: EncryptionContext::new(),
            store: None,
            compact_version: CompactVersion::default(),
            accept_compact_v2: true,
            audit: None,
            audit_label: None,
        }
    }
}
