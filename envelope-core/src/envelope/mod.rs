//! The `Envelope` API: encrypt, decrypt, rewrap, re-encrypt and inspect.
//!
//! | module | what it holds |
//! |---|---|
//! | this one | the [`Envelope`] handle, its shared state, accessors and statistics |
//! | [`builder`] | [`EnvelopeBuilder`] |
//! | `values` | the value path: encrypt, decrypt (parse → key → open), inspect |
//! | `rotation` | rewrap, re-encrypt, the DEK store's rotation, the key's description |
//! | `streams` | the streaming form's sealer, opener and header-only rewrap |
//! | `keys` | where data keys come from: the active DEK, unwrapped DEKs, the guard |

mod audited;
mod builder;
mod keys;
mod rotation;
mod streams;
mod values;

pub use builder::EnvelopeBuilder;
use rotation::RewrapOutcome;
pub use rotation::Rewrapped;
pub use streams::{SlotWrite, StreamRewrap};

use std::fmt;
use std::sync::Arc;

use crate::cache::{ActiveSlot, CachePolicy, CachedKey, HotKeys, SingleFlightCache, UnwrapGuard};
use crate::compact::{CompactVersion, DekStore};
use crate::crypto::CryptoProvider;
use crate::kms::{EncryptionContext, Kms};
use crate::stats::{ActiveDekStats, Counters, EnvelopeStats};
use crate::suite::Suite;

/// Envelope encryption under one KEK: a cached DEK encrypts, the KMS wraps the DEK, and the
/// wrapped DEK travels in the ciphertext's header.
///
/// Cheap to clone (all clones share one cache). Built with [`Envelope::builder`].
#[derive(Clone)]
pub struct Envelope {
    inner: Arc<Inner>,
}

struct Inner {
    kms: Arc<dyn Kms>,
    key_id: String,
    suite: Suite,
    provider: CryptoProvider,
    context: EncryptionContext,
    policy: CachePolicy,
    /// Where compact-form DEKs live; `Some` makes encryption write the compact form.
    store: Option<Arc<dyn DekStore>>,
    /// The compact version new values are written in.
    compact_version: CompactVersion,
    /// Whether version 2 (non-committing) compact values decrypt.
    accept_compact_v2: bool,
    active: ActiveSlot,
    /// Prepared DEKs for decryption, keyed by the header's KEK reference bytes (v1) or by
    /// [`DekId::cache_key`] (compact form).
    unwrapped: SingleFlightCache<Box<[u8]>, Arc<CachedKey>>,
    /// The lock-free front of `unwrapped`.
    hot: HotKeys,
    /// Rewrap results, keyed by the old KEK reference bytes.
    rewraps: SingleFlightCache<Box<[u8]>, Arc<RewrapOutcome>>,
    /// The negative cache and rate limit in front of every unwrap and rewrap call.
    guard: UnwrapGuard,
    counters: Counters,
    /// Where key use is reported, if anywhere.
    audit: Option<Audit>,
}

/// An envelope's key-use log and the label its events carry.
struct Audit {
    log: Arc<dyn crate::audit::KeyUseLog>,
    label: Option<String>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("kms", &self.inner.kms)
            .field("key_id", &self.inner.key_id)
            .field("suite", &self.inner.suite)
            .field("crypto_provider", &self.inner.provider)
            .field("policy", &self.inner.policy)
            .field("dek_store", &self.inner.store)
            .field("compact_version", &self.inner.compact_version)
            .field("accept_compact_v2", &self.inner.accept_compact_v2)
            .field("key_use_log", &self.inner.audit.as_ref().map(|a| &a.log))
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// The KEK's key id.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The KMS behind this envelope.
    pub fn kms(&self) -> &Arc<dyn Kms> {
        &self.inner.kms
    }

    /// The encryption context every wrap and unwrap of this envelope binds.
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.inner.context
    }

    /// The suite new ciphertexts use.
    pub fn suite(&self) -> Suite {
        self.inner.suite
    }

    /// The crypto provider for AES-256-GCM and HKDF.
    pub fn crypto_provider(&self) -> CryptoProvider {
        self.inner.provider
    }

    /// The cache policy.
    pub fn cache_policy(&self) -> &CachePolicy {
        &self.inner.policy
    }

    /// Forgets the active DEK and the rewrap memo, so that the next encrypt and rewrap use
    /// the KEK's current version now instead of within the policy's `max_age`. Call it after
    /// rotating the KEK from this process. Decryption caches are kept.
    pub fn refresh_kek(&self) {
        self.inner.active.store(None);
        self.inner.rewraps.clear();
    }

    /// Forgets every cached DEK (the active one, the unwrapped ones, the rewrap memo) and
    /// every remembered unwrap failure. After destroying, disabling or re-enabling a KEK
    /// version, this makes the change take effect in this process at once rather than
    /// within the policy's decrypt TTL or negative TTL.
    pub fn clear_caches(&self) {
        self.refresh_kek();
        self.inner.unwrapped.clear();
        self.inner.hot.clear();
        self.inner.guard.clear();
    }

    /// A snapshot of the counters: KMS calls by operation, cache hits and misses, DEKs
    /// created, and the active DEK's usage.
    pub fn stats(&self) -> EnvelopeStats {
        let active = self.inner.active.current().map(|a| {
            let (messages, bytes) = a.usage();
            ActiveDekStats {
                key_version: a.key_version.clone(),
                messages,
                bytes,
                age: a.age(),
            }
        });
        self.inner.counters.snapshot(active)
    }

    /// The DEK store compact ciphertexts read through, if any.
    pub fn dek_store(&self) -> Option<&Arc<dyn DekStore>> {
        self.inner.store.as_ref()
    }
}
