//! The `Envelope` API: encrypt, decrypt, rewrap, re-encrypt and inspect.

use std::fmt;
use std::sync::Arc;

use crate::cache::{
    ActiveDek, ActiveSlot, CachePolicy, CachedKey, GuardedOp, HotKeys, Refusal, SingleFlightCache,
    UnwrapGuard,
};
use crate::clock;
use crate::compact::{
    self, CompactVersion, DekId, DekState, DekStore, NewDek, ParsedCompact, StoredDek,
    binding_context,
};
use crate::crypto::CryptoProvider;
use crate::error::{Error, Result};
use crate::format::{self, HeaderInfo, NonceSource, Output, Parsed};
use crate::kms::{EncryptionContext, GeneratedDek, KeyDescription, Kms, KmsExt, WrappedDek};
use crate::secret::Dek;
use crate::stats::{ActiveDekStats, Counters, EnvelopeStats, KmsOp};
use crate::suite::{DataKey, Suite};

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
}

#[derive(Debug)]
struct RewrapOutcome {
    /// The new KEK reference, or `None` when the DEK is already under the current version.
    new_ref: Option<Box<[u8]>>,
    key_version: String,
}

/// The result of [`Envelope::rewrap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrapped {
    /// The ciphertext under the current KEK version (the input itself when unchanged).
    pub ciphertext: Vec<u8>,
    /// Whether the header changed.
    pub changed: bool,
    /// The KEK version before.
    pub from_version: String,
    /// The KEK version after.
    pub to_version: String,
}

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
}

impl EnvelopeBuilder {
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
            }),
        })
    }
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
            .finish_non_exhaustive()
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
        }
    }

    /// The KEK's key id.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The KMS behind this envelope.
    pub fn kms(&self) -> &Arc<dyn Kms> {
        &self.inner.kms
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

    /// Encrypts `plaintext`, binding `aad` (for example table, column and row id), into
    /// the binary form.
    pub async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encrypt_append(plaintext, aad, &mut out).await?;
        Ok(out)
    }

    /// Appends the binary ciphertext of `plaintext` to `out` (the allocation-free form of
    /// [`Envelope::encrypt`], for batches). `out` is unchanged on error.
    pub async fn encrypt_append(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.encrypt_to(plaintext, aad, &mut Output::Append(out))
            .await
            .map(drop)
    }

    /// Encrypts `plaintext` into the start of the caller's buffer `out` and returns the
    /// ciphertext's length: the hot path with no allocation at all. A buffer shorter than
    /// the ciphertext gets [`Error::BufferTooSmall`] with the length needed, and nothing is
    /// written (that message's use of the active DEK is spent). The ciphertext is the
    /// plaintext plus [`HeaderInfo::overhead`] bytes.
    pub async fn encrypt_into(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut [u8],
    ) -> Result<usize> {
        self.encrypt_to(plaintext, aad, &mut Output::Slice(out))
            .await
    }

    /// Encrypts into an [`Output`] (the one implementation behind every encrypt form).
    pub(crate) async fn encrypt_to(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Result<usize> {
        if let Some(sealed) = self.try_encrypt_cached_to(plaintext, aad, out) {
            return sealed;
        }
        let active = self.inner.refresh_active(plaintext.len()).await?;
        self.inner.seal_to(&active, plaintext, aad, out)
    }

    /// Encrypts into the text form (`ev1:` + base64url), for text columns.
    pub async fn encrypt_to_text(&self, plaintext: &[u8], aad: &[u8]) -> Result<String> {
        Ok(format::to_text(&self.encrypt(plaintext, aad).await?))
    }

    /// Decrypts a binary ciphertext; `aad` must equal the encryption's.
    pub async fn decrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.decrypt_append(ciphertext, aad, &mut out).await?;
        Ok(out)
    }

    /// Appends the plaintext of a binary ciphertext to `out` (the allocation-free form of
    /// [`Envelope::decrypt`]). `out` is unchanged on error.
    pub async fn decrypt_append(
        &self,
        ciphertext: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.decrypt_to(ciphertext, aad, &mut Output::Append(out))
            .await
            .map(drop)
    }

    /// Decrypts into the start of the caller's buffer `out` and returns the plaintext's
    /// length: the authenticated plaintext is written straight from the ciphertext into
    /// `out`, with no intermediate copy. A buffer shorter than the plaintext (the
    /// ciphertext's length always suffices) gets [`Error::BufferTooSmall`]; on any error no
    /// plaintext is left in `out`.
    pub async fn decrypt_into(
        &self,
        ciphertext: &[u8],
        aad: &[u8],
        out: &mut [u8],
    ) -> Result<usize> {
        self.decrypt_to(ciphertext, aad, &mut Output::Slice(out))
            .await
    }

    /// Decrypts into an [`Output`] (the one implementation behind every decrypt form).
    pub(crate) async fn decrypt_to(
        &self,
        ciphertext: &[u8],
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Result<usize> {
        if compact::is_compact(ciphertext) {
            let parsed = self.inner.parse_compact(ciphertext)?;
            if let Some(opened) = self.inner.open_compact_cached_to(&parsed, aad, out) {
                return opened;
            }
            let key = self.inner.load_stored_key(parsed.dek_id).await?;
            return out.open_compact(&key.key, &parsed, aad);
        }
        let parsed = format::parse(ciphertext)?;
        if let Some(opened) = self.inner.open_cached_to(&parsed, aad, out) {
            return opened;
        }
        let key = self.inner.load_data_key(&parsed).await?;
        out.open(&key.key, &parsed, aad)
    }

    /// Decrypts a text-form ciphertext.
    pub async fn decrypt_text(&self, ciphertext: &str, aad: &[u8]) -> Result<Vec<u8>> {
        self.decrypt(&format::from_text(ciphertext)?, aad).await
    }

    /// Moves a ciphertext's DEK to the current version of this envelope's KEK, touching only
    /// the header: the nonce, commitment and body bytes stay identical. A ciphertext already
    /// under the current version comes back unchanged. One KMS call per distinct DEK (results
    /// are reused for the cache's `max_age`).
    ///
    /// A compact ciphertext carries no KEK reference: it is refused with
    /// [`Error::InvalidConfig`]; rotate its DEK store instead ([`Envelope::rewrap_wrapped`],
    /// `envelope rewrap --dek-store`).
    pub async fn rewrap(&self, ciphertext: &[u8]) -> Result<Rewrapped> {
        if compact::is_compact(ciphertext) {
            return Err(Error::InvalidConfig(
                "a compact ciphertext has no KEK reference to rewrap: rotate its DEK store (envelope rewrap --dek-store)".into(),
            ));
        }
        let parsed = format::parse(ciphertext)?;
        let inner = &self.inner;
        let outcome = if inner.policy.is_enabled() {
            if let Some(hit) = inner.rewraps.get(parsed.kek_ref) {
                Counters::bump(&inner.counters.rewrap_hits);
                hit
            } else {
                Counters::bump(&inner.counters.rewrap_misses);
                inner
                    .rewraps
                    .get_or_load(
                        parsed.kek_ref,
                        || Box::from(parsed.kek_ref),
                        || inner.rewrap_ref(&parsed),
                    )
                    .await?
            }
        } else {
            Counters::bump(&inner.counters.rewrap_misses);
            inner.rewrap_ref(&parsed).await?
        };
        Ok(match &outcome.new_ref {
            None => Rewrapped {
                ciphertext: ciphertext.to_vec(),
                changed: false,
                from_version: parsed.key_version()?.to_owned(),
                to_version: outcome.key_version.clone(),
            },
            Some(new_ref) => Rewrapped {
                ciphertext: format::replace_kek_ref(&parsed, new_ref),
                changed: true,
                from_version: parsed.key_version()?.to_owned(),
                to_version: outcome.key_version.clone(),
            },
        })
    }

    /// [`Envelope::rewrap`] for many ciphertexts, results in input order. The DEKs not yet
    /// in the rewrap memo are rewrapped in one KMS request where the service has a batch
    /// rewrap ([`Kms::rewrap_dek_batch`], e.g. Vault's `batch_input`); otherwise one call per
    /// distinct DEK, as [`Envelope::rewrap`] makes.
    pub async fn rewrap_many(&self, ciphertexts: &[&[u8]]) -> Vec<Result<Rewrapped>> {
        if self.inner.policy.is_enabled() {
            self.inner.prefetch_rewraps(ciphertexts).await;
        }
        let mut out = Vec::with_capacity(ciphertexts.len());
        for ciphertext in ciphertexts {
            out.push(self.rewrap(ciphertext).await);
        }
        out
    }

    /// [`Envelope::rewrap`] for the text form.
    pub async fn rewrap_text(&self, ciphertext: &str) -> Result<(String, bool)> {
        let rewrapped = self.rewrap(&format::from_text(ciphertext)?).await?;
        let changed = rewrapped.changed;
        let text = if changed {
            format::to_text(&rewrapped.ciphertext)
        } else {
            ciphertext.to_owned()
        };
        Ok((text, changed))
    }

    /// Decrypts and encrypts again under a new DEK (new nonce, new body), for when a DEK may
    /// have been exposed. `aad` must equal the original encryption's and is kept.
    pub async fn reencrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let plaintext = zeroize::Zeroizing::new(self.decrypt(ciphertext, aad).await?);
        // Never re-encrypt under the DEK being replaced: retire it if it is the active one.
        if compact::is_compact(ciphertext) {
            let id = compact::parse(ciphertext)?.dek_id;
            self.inner
                .active
                .retire_if(|active| active.dek_id == Some(id));
        } else {
            let parsed = format::parse(ciphertext)?;
            self.inner
                .active
                .retire_if(|active| *active.kek_ref == *parsed.kek_ref);
        }
        self.encrypt(&plaintext, aad).await
    }

    /// Reads the header of a binary v1 ciphertext without any key or KMS call. A compact
    /// ciphertext names a DEK store row instead of a KEK: it is refused with
    /// [`Error::InvalidConfig`] saying so; read it with [`compact::inspect_compact`] (no
    /// store) or [`compact::header_info`] (with its row).
    pub fn inspect(ciphertext: &[u8]) -> Result<HeaderInfo> {
        if compact::is_compact(ciphertext) {
            let id = compact::inspect_compact(ciphertext)?.dek_id;
            return Err(Error::InvalidConfig(format!(
                "the ciphertext is in the compact form: its header names DEK {id} of a DEK store, \
                 not a KEK (read it with compact::inspect_compact, or compact::header_info with its row)"
            )));
        }
        format::inspect(ciphertext)
    }

    /// Reads the header of a text-form v1 ciphertext (see [`Envelope::inspect`]).
    pub fn inspect_text(ciphertext: &str) -> Result<HeaderInfo> {
        Self::inspect(&format::from_text(ciphertext)?)
    }

    /// Describes this envelope's KEK (current version, versions, rotation state) through
    /// the KMS. Counted as a KMS call.
    pub async fn describe_key(&self) -> Result<KeyDescription> {
        let inner = &self.inner;
        inner
            .counters
            .kms_call(
                KmsOp::Describe,
                &inner.key_id,
                inner.kms.describe_key(&inner.key_id),
            )
            .await
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

    /// Encrypts with the active DEK if one is usable, without awaiting anything; `None`
    /// means a KMS call is needed. The blocking facade's fast path.
    pub(crate) fn try_encrypt_cached_to(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Option<Result<usize>> {
        let inner = &self.inner;
        if !inner.policy.is_enabled() {
            return None;
        }
        let sealed = inner
            .active
            .with_reserved(&inner.policy, plaintext.len(), |active| {
                inner.seal_to(active, plaintext, aad, out)
            })?;
        Counters::bump(&inner.counters.encrypt_hits);
        Some(sealed)
    }

    /// Decrypts with a cached DEK if there is one, without awaiting anything; `None` means
    /// a KMS call is needed.
    pub(crate) fn try_decrypt_cached_to(
        &self,
        ciphertext: &[u8],
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Option<Result<usize>> {
        if compact::is_compact(ciphertext) {
            return match self.inner.parse_compact(ciphertext) {
                Ok(parsed) => self.inner.open_compact_cached_to(&parsed, aad, out),
                Err(e) => Some(Err(e)),
            };
        }
        let parsed = match format::parse(ciphertext) {
            Ok(parsed) => parsed,
            Err(e) => return Some(Err(e)),
        };
        self.inner.open_cached_to(&parsed, aad, out)
    }

    /// The DEK store compact ciphertexts read through, if any.
    pub fn dek_store(&self) -> Option<&Arc<dyn DekStore>> {
        self.inner.store.as_ref()
    }

    /// Moves DEK store rows' wrapped DEKs to the current version of this envelope's KEK (the
    /// DEK store's rotation), results in input order: `Ok(None)` when a row's DEK is already
    /// under the current version, `Ok(Some(new))` when it moved. Every new wrap is bound to
    /// its row ([`compact::binding_context`]); a row written before rows were bound is
    /// unwrapped and wrapped again (bound) whatever its version. One KMS request for the
    /// bound rows where the service has a batch rewrap ([`Kms::rewrap_dek_batch`]), else one
    /// call per DEK. Nothing is cached: each call asks the KMS.
    pub async fn rewrap_wrapped(&self, rows: &[StoredDek]) -> Vec<Result<Option<WrappedDek>>> {
        let inner = &self.inner;
        let moved = |old: &WrappedDek, new: WrappedDek| -> Result<Option<WrappedDek>> {
            inner.kms.check_owned(&new)?;
            Ok((!Inner::same_version(old, &new)).then_some(new))
        };
        let bound_context =
            |row: &StoredDek| binding_context(&inner.context, row.id, row.suite, &row.commitment);
        // Another provider's DEKs fail alone; this KMS's go to it together.
        let mut out: Vec<Option<Result<Option<WrappedDek>>>> = rows
            .iter()
            .map(|r| inner.kms.check_owned(&r.wrapped).err().map(Err))
            .collect();
        let batchable: Vec<usize> = (0..rows.len())
            .filter(|&i| out[i].is_none() && rows[i].bound)
            .collect();
        if batchable.len() >= 2 && inner.kms.supports_batch_rewrap() {
            let batch: Vec<WrappedDek> =
                batchable.iter().map(|&i| rows[i].wrapped.clone()).collect();
            let contexts: Vec<EncryptionContext> =
                batchable.iter().map(|&i| bound_context(&rows[i])).collect();
            let request = inner.kms.rewrap_dek_batch(&batch, &inner.key_id, &contexts);
            if let Ok(items) = inner
                .counters
                .kms_call(KmsOp::Rewrap, &inner.key_id, request)
                .await
                && items.len() == batchable.len()
            {
                for (&i, item) in batchable.iter().zip(items) {
                    out[i] = Some(item.and_then(|new| moved(&rows[i].wrapped, new)));
                }
            }
        }
        for (row, slot) in rows.iter().zip(out.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            let context = bound_context(row);
            *slot = Some(if row.bound {
                inner
                    .counters
                    .kms_call(
                        KmsOp::Rewrap,
                        &row.wrapped.key_id,
                        inner.kms.rewrap_dek(&row.wrapped, &inner.key_id, &context),
                    )
                    .await
                    .and_then(|new| moved(&row.wrapped, new))
            } else {
                inner.bind_unbound(row, &context).await.map(Some)
            });
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| unreachable!("every slot is filled above")))
            .collect()
    }
}

impl Inner {
    /// Binds a row written before rows were bound to their ids: unwraps its DEK under the
    /// envelope's context, checks it against the row's commitment, and wraps it under the
    /// current KEK version and the row's binding `context`.
    async fn bind_unbound(
        &self,
        row: &StoredDek,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        let dek = self
            .counters
            .kms_call(
                KmsOp::Unwrap,
                &row.wrapped.key_id,
                self.kms.unwrap_dek(&row.wrapped, &self.context),
            )
            .await?;
        if !DataKey::new(self.provider, row.suite, &dek).commitment_matches(&row.commitment) {
            return Err(Error::DecryptionFailed);
        }
        let new = self
            .counters
            .kms_call(
                KmsOp::Rewrap,
                &self.key_id,
                self.kms.wrap_dek(&self.key_id, &dek, context),
            )
            .await?;
        self.kms.check_owned(&new)?;
        Ok(new)
    }

    /// Parses a compact value, refusing version 2 where this envelope does.
    #[inline]
    fn parse_compact<'a>(&self, ciphertext: &'a [u8]) -> Result<ParsedCompact<'a>> {
        let parsed = compact::parse(ciphertext)?;
        if parsed.version == CompactVersion::V2 && !self.accept_compact_v2 {
            return Err(Error::UnsupportedFormatVersion(CompactVersion::V2.byte()));
        }
        Ok(parsed)
    }

    #[inline]
    fn seal_to(
        &self,
        active: &ActiveDek,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Result<usize> {
        match active.dek_id {
            Some(id) => out.seal_compact(
                active.data_key(),
                self.compact_version,
                id,
                NonceSource::Fresh,
                plaintext,
                aad,
            ),
            None => out.seal(
                active.data_key(),
                &active.kek_ref,
                NonceSource::Fresh,
                plaintext,
                aad,
            ),
        }
    }

    /// Gets a usable active DEK with one message reserved, generating a new DEK when needed.
    /// Concurrent callers wait on one lock, so they share one KMS call.
    async fn refresh_active(&self, len: usize) -> Result<Arc<ActiveDek>> {
        if !self.policy.is_enabled() {
            Counters::bump(&self.counters.encrypt_misses);
            return self.new_active().await.map(Arc::new);
        }
        let _guard = self.active.refresh_lock().lock().await;
        if let Some(current) = self.active.current()
            && current.try_reserve(&self.policy, len)
        {
            Counters::bump(&self.counters.encrypt_hits);
            return Ok(current);
        }
        Counters::bump(&self.counters.encrypt_misses);
        let fresh = Arc::new(self.new_active().await?);
        // The first message of a fresh DEK always fits.
        fresh.try_reserve(&self.policy, len);
        self.active.store(Some(fresh.clone()));
        Ok(fresh)
    }

    async fn new_active(&self) -> Result<ActiveDek> {
        let (generated, key, dek_id) = match &self.store {
            Some(store) => {
                let (generated, key, id) = self.new_stored_dek(&**store).await?;
                (generated, key, Some(id))
            }
            None => {
                let generated = self
                    .counters
                    .kms_call(
                        KmsOp::Generate,
                        &self.key_id,
                        self.kms.generate_dek(&self.key_id, &self.context),
                    )
                    .await?;
                self.kms.check_owned(&generated.wrapped)?;
                let key = DataKey::new(self.provider, self.suite, &generated.dek);
                (generated, key, None)
            }
        };
        let cached = Arc::new(CachedKey {
            key,
            expires: clock::deadline(self.policy.decrypt_ttl()),
        });
        drop(generated.dek);
        let kek_ref: Arc<[u8]> = format::encode_kek_ref(&generated.wrapped)?.into();
        Counters::bump(&self.counters.deks_created);
        if self.policy.is_enabled() {
            // Our own ciphertexts decrypt without an unwrap (or a store read).
            let cache_key = dek_id.map(DekId::cache_key);
            let key: &[u8] = match &cache_key {
                Some(k) => k,
                None => &kek_ref,
            };
            self.unwrapped.insert(Box::from(key), cached.clone());
            self.hot.insert(key, cached.clone());
        }
        Ok(ActiveDek::new(
            cached,
            kek_ref,
            dek_id,
            generated.wrapped.key_version,
            self.policy.max_age(),
        ))
    }

    /// A fresh DEK for the compact form: an id reserved in the store, the DEK drawn from the
    /// crypto provider and wrapped under the row's binding context (its id, suite and
    /// commitment), then the row inserted. Values name the id only after the row exists.
    async fn new_stored_dek(&self, store: &dyn DekStore) -> Result<(GeneratedDek, DataKey, DekId)> {
        let id = store.reserve_id().await?;
        let dek = Dek::generate_with(self.provider);
        let key = DataKey::new(self.provider, self.suite, &dek);
        let context = binding_context(&self.context, id, self.suite, key.commitment());
        let wrapped = self
            .counters
            .kms_call(
                KmsOp::Generate,
                &self.key_id,
                self.kms.wrap_dek(&self.key_id, &dek, &context),
            )
            .await?;
        self.kms.check_owned(&wrapped)?;
        store
            .insert(
                id,
                &NewDek {
                    suite: self.suite,
                    wrapped: wrapped.clone(),
                    commitment: *key.commitment(),
                },
            )
            .await?;
        Counters::bump(&self.counters.dek_store_writes);
        Ok((GeneratedDek { dek, wrapped }, key, id))
    }

    /// Decrypts with a cached DEK (the lock-free front first, then moka) into `out`;
    /// `None` when the DEK must be unwrapped.
    #[inline]
    fn open_cached_to(
        &self,
        parsed: &Parsed<'_>,
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Option<Result<usize>> {
        if !self.policy.is_enabled() {
            return None;
        }
        let opened = match self
            .hot
            .with(parsed.kek_ref, |key| out.open(key, parsed, aad))
        {
            Some(opened) => opened,
            None => {
                let cached = self.unwrapped.get(parsed.kek_ref)?;
                if cached.expires <= clock::now() {
                    return None;
                }
                self.hot.insert(parsed.kek_ref, cached.clone());
                out.open(&cached.key, parsed, aad)
            }
        };
        Counters::bump(&self.counters.decrypt_hits);
        Some(opened)
    }

    /// [`Inner::open_cached_to`] for the compact form, keyed by the DEK id.
    #[inline]
    fn open_compact_cached_to(
        &self,
        parsed: &ParsedCompact<'_>,
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Option<Result<usize>> {
        if !self.policy.is_enabled() {
            return None;
        }
        let key = parsed.dek_id.cache_key();
        let opened = match self.hot.with(&key, |dk| out.open_compact(dk, parsed, aad)) {
            Some(opened) => opened,
            None => {
                let cached = self.unwrapped.get(&key[..])?;
                if cached.expires <= clock::now() {
                    return None;
                }
                self.hot.insert(&key, cached.clone());
                out.open_compact(&cached.key, parsed, aad)
            }
        };
        Counters::bump(&self.counters.decrypt_hits);
        Some(opened)
    }

    /// Resolves a DEK id through the store (one read and one unwrap per id, single flight).
    async fn load_stored_key(&self, id: DekId) -> Result<Arc<CachedKey>> {
        Counters::bump(&self.counters.decrypt_misses);
        let Some(store) = &self.store else {
            return Err(Error::InvalidConfig(format!(
                "the ciphertext is in the compact form (DEK {id}): build the envelope with a DEK store to read it"
            )));
        };
        if !self.policy.is_enabled() {
            return self.unwrap_stored(&**store, id).await;
        }
        let key = id.cache_key();
        let cached = self
            .unwrapped
            .get_or_load(
                &key[..],
                || Box::from(&key[..]),
                || self.unwrap_stored(&**store, id),
            )
            .await?;
        self.hot.insert(&key, cached.clone());
        Ok(cached)
    }

    /// Reads the store row of `id`, unwraps its DEK and checks the row's commitment before
    /// anything can cache it: a row whose wrapped DEK and commitment disagree fails like a
    /// bad tag.
    async fn unwrap_stored(&self, store: &dyn DekStore, id: DekId) -> Result<Arc<CachedKey>> {
        let key = id.cache_key();
        self.admit(&key, GuardedOp::Unwrap)?;
        let loaded = async {
            Counters::bump(&self.counters.dek_store_reads);
            let row = store.get(id).await?.ok_or(Error::DekNotFound {
                id: id.get(),
                retired: false,
            })?;
            if row.state == DekState::Retired {
                return Err(Error::DekNotFound {
                    id: id.get(),
                    retired: true,
                });
            }
            self.kms.check_owned(&row.wrapped)?;
            let dek = self
                .counters
                .kms_call(
                    KmsOp::Unwrap,
                    &row.wrapped.key_id,
                    self.kms
                        .unwrap_dek(&row.wrapped, &row.unwrap_context(&self.context)),
                )
                .await?;
            let data_key = DataKey::new(self.provider, row.suite, &dek);
            if !data_key.commitment_matches(&row.commitment) {
                return Err(Error::DecryptionFailed);
            }
            Ok(data_key)
        }
        .await
        .inspect_err(|e| self.guard.remember(&key, GuardedOp::Unwrap, e))?;
        Ok(Arc::new(CachedKey {
            key: loaded,
            expires: clock::deadline(self.policy.decrypt_ttl()),
        }))
    }

    async fn load_data_key(&self, parsed: &Parsed<'_>) -> Result<Arc<CachedKey>> {
        Counters::bump(&self.counters.decrypt_misses);
        if !self.policy.is_enabled() {
            return self.unwrap_checked(parsed).await;
        }
        let cached = self
            .unwrapped
            .get_or_load(
                parsed.kek_ref,
                || Box::from(parsed.kek_ref),
                || self.unwrap_checked(parsed),
            )
            .await?;
        self.hot.insert(parsed.kek_ref, cached.clone());
        Ok(cached)
    }

    /// Unwraps the header's DEK and checks its commitment before anything can cache it, so
    /// a tampered header can never poison the cache.
    async fn unwrap_checked(&self, parsed: &Parsed<'_>) -> Result<Arc<CachedKey>> {
        let wrapped = parsed.wrapped()?;
        self.kms.check_owned(&wrapped)?;
        self.admit(parsed.kek_ref, GuardedOp::Unwrap)?;
        let dek = self
            .counters
            .kms_call(
                KmsOp::Unwrap,
                &wrapped.key_id,
                self.kms.unwrap_dek(&wrapped, &self.context),
            )
            .await
            .inspect_err(|e| self.guard.remember(parsed.kek_ref, GuardedOp::Unwrap, e))?;
        let key = DataKey::new(self.provider, parsed.suite, &dek);
        if !key.commitment_matches(parsed.commitment) {
            return Err(Error::DecryptionFailed);
        }
        Ok(Arc::new(CachedKey {
            key,
            expires: clock::deadline(self.policy.decrypt_ttl()),
        }))
    }

    /// Lets an unwrap or rewrap of `kek_ref` go to the KMS, or answers it from the negative
    /// cache or the rate limit (counted).
    fn admit(&self, kek_ref: &[u8], op: GuardedOp) -> Result<()> {
        self.guard
            .admit(kek_ref, op)
            .map_err(|refusal| match refusal {
                Refusal::Remembered(e) => {
                    Counters::bump(&self.counters.unwraps_remembered);
                    e
                }
                Refusal::RateLimited(e) => {
                    Counters::bump(&self.counters.unwraps_rate_limited);
                    e
                }
            })
    }

    async fn rewrap_ref(&self, parsed: &Parsed<'_>) -> Result<Arc<RewrapOutcome>> {
        let wrapped = parsed.wrapped()?;
        self.kms.check_owned(&wrapped)?;
        self.admit(parsed.kek_ref, GuardedOp::Rewrap)?;
        let new = self
            .counters
            .kms_call(
                KmsOp::Rewrap,
                &wrapped.key_id,
                self.kms.rewrap_dek(&wrapped, &self.key_id, &self.context),
            )
            .await
            .inspect_err(|e| self.guard.remember(parsed.kek_ref, GuardedOp::Rewrap, e))?;
        Self::rewrap_outcome(&*self.kms, &wrapped, new)
    }

    /// Rewraps the distinct DEKs of `ciphertexts` that the memo lacks in one batch request,
    /// when the KMS has one, and stores the outcomes in the memo (failures in the guard).
    async fn prefetch_rewraps(&self, ciphertexts: &[&[u8]]) {
        let mut seen = std::collections::HashSet::new();
        let mut refs = Vec::new();
        let mut wrapped = Vec::new();
        for ciphertext in ciphertexts {
            let Ok(parsed) = format::parse(ciphertext) else {
                continue;
            };
            if self.rewraps.get(parsed.kek_ref).is_some() || !seen.insert(parsed.kek_ref) {
                continue;
            }
            let Ok(w) = parsed.wrapped() else { continue };
            if self.kms.check_owned(&w).is_err()
                || self.guard.admit(parsed.kek_ref, GuardedOp::Rewrap).is_err()
            {
                continue;
            }
            refs.push(parsed.kek_ref);
            wrapped.push(w);
        }
        if wrapped.len() < 2 || !self.kms.supports_batch_rewrap() {
            return;
        }
        let contexts = vec![self.context.clone(); wrapped.len()];
        let batch = self.kms.rewrap_dek_batch(&wrapped, &self.key_id, &contexts);
        let Ok(items) = self
            .counters
            .kms_call(KmsOp::Rewrap, &self.key_id, batch)
            .await
        else {
            return;
        };
        for ((kek_ref, old), item) in refs.into_iter().zip(&wrapped).zip(items) {
            match item.and_then(|new| Self::rewrap_outcome(&*self.kms, old, new)) {
                Ok(outcome) => self.rewraps.insert(Box::from(kek_ref), outcome),
                Err(e) => self.guard.remember(kek_ref, GuardedOp::Rewrap, &e),
            }
        }
    }

    /// Whether a rewrap left the DEK under the version it was under (a KMS that reports no
    /// version never says so: the rewrap counts as a move).
    fn same_version(old: &WrappedDek, new: &WrappedDek) -> bool {
        !new.key_version.is_empty()
            && new.key_id == old.key_id
            && new.key_version == old.key_version
    }

    fn rewrap_outcome(
        kms: &dyn Kms,
        wrapped: &WrappedDek,
        new: WrappedDek,
    ) -> Result<Arc<RewrapOutcome>> {
        kms.check_owned(&new)?;
        let new_ref = if Self::same_version(wrapped, &new) {
            None
        } else {
            Some(format::encode_kek_ref(&new)?.into_boxed_slice())
        };
        Ok(Arc::new(RewrapOutcome {
            new_ref,
            key_version: new.key_version,
        }))
    }
}
