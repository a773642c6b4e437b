//! Where data keys come from: the active DEK for encryption (generated and wrapped by the
//! KMS, or kept in the DEK store), and unwrapped DEKs for decryption (cached, guarded).

use super::Inner;
use std::sync::Arc;

use super::audited::{Subject, dek_ref};
use crate::audit::KeyOperation;
use crate::cache::{ActiveDek, CachedKey, GuardedOp, Refusal};
use crate::compact::{DekId, DekState, DekStore, NewDek, binding_context};
use crate::error::{Error, Result};
use crate::format::{self, Parsed};
use crate::kms::{GeneratedDek, Kms, KmsExt};
use crate::secret::Dek;
use crate::stats::{Counters, KmsOp};
use crate::suite::DataKey;

impl Inner {
    /// Gets a usable active DEK with one message reserved, generating a new DEK when needed.
    /// Concurrent callers wait on one lock, so they share one KMS call.
    pub(super) async fn refresh_active(&self, len: usize) -> Result<Arc<ActiveDek>> {
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

    pub(super) async fn new_active(&self) -> Result<ActiveDek> {
        let (generated, key, dek_id) = match &self.store {
            Some(store) => {
                let (generated, key, id) = self.new_stored_dek(&**store).await?;
                (generated, key, Some(id))
            }
            None => {
                let (generated, key) = self.new_kms_dek().await?;
                (generated, key, None)
            }
        };
        let cached = self.cached_key(key, dek_id.map(DekId::get), &generated.wrapped);
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

    /// A fresh DEK generated and wrapped by the KMS (one call), prepared.
    pub(super) async fn new_kms_dek(&self) -> Result<(GeneratedDek, DataKey)> {
        let (generated, key) = self
            .kms(
                KmsOp::Generate,
                KeyOperation::Generate,
                &self.key_id,
                Subject::default(),
                async {
                    let generated = self.kms.generate_dek(&self.key_id, &self.context).await?;
                    let key = DataKey::new(self.provider, self.suite, &generated.dek);
                    Ok((generated, key))
                },
            )
            .await?;
        self.kms.check_owned(&generated.wrapped)?;
        Ok((generated, key))
    }

    /// A fresh DEK for the compact form: an id reserved in the store, the DEK drawn from the
    /// crypto provider and wrapped under the row's binding context (its id, suite and
    /// commitment), then the row inserted. Values name the id only after the row exists.
    pub(super) async fn new_stored_dek(
        &self,
        store: &dyn DekStore,
    ) -> Result<(GeneratedDek, DataKey, DekId)> {
        let id = store.reserve_id().await?;
        let dek = Dek::generate_with(self.provider);
        let key = DataKey::new(self.provider, self.suite, &dek);
        let context = binding_context(&self.context, id, self.suite, key.commitment());
        let wrapped = self
            .kms(
                KmsOp::Generate,
                KeyOperation::Generate,
                &self.key_id,
                Subject {
                    dek: Some(dek_ref(key.commitment(), Some(id.get()))),
                    ..Subject::default()
                },
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

    /// Resolves a DEK id through the store (one read and one unwrap per id, single flight).
    pub(super) async fn load_stored_key(&self, id: DekId) -> Result<Arc<CachedKey>> {
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
    pub(super) async fn unwrap_stored(
        &self,
        store: &dyn DekStore,
        id: DekId,
    ) -> Result<Arc<CachedKey>> {
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
                .kms(
                    KmsOp::Unwrap,
                    KeyOperation::Unwrap,
                    &row.wrapped.key_id,
                    Subject::wrapped(&row.wrapped, &row.commitment, Some(id.get())),
                    self.kms
                        .unwrap_dek(&row.wrapped, &row.unwrap_context(&self.context)),
                )
                .await?;
            let data_key = DataKey::new(self.provider, row.suite, &dek);
            if !data_key.commitment_matches(&row.commitment) {
                return Err(Error::DecryptionFailed);
            }
            Ok((data_key, row.wrapped))
        }
        .await
        .inspect_err(|e| self.guard.remember(&key, GuardedOp::Unwrap, e))?;
        Ok(self.cached_key(loaded.0, Some(id.get()), &loaded.1))
    }

    pub(super) async fn load_data_key(&self, parsed: &Parsed<'_>) -> Result<Arc<CachedKey>> {
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
    pub(super) async fn unwrap_checked(&self, parsed: &Parsed<'_>) -> Result<Arc<CachedKey>> {
        let wrapped = parsed.wrapped()?;
        self.kms.check_owned(&wrapped)?;
        self.admit(parsed.kek_ref, GuardedOp::Unwrap)?;
        let dek = self
            .kms(
                KmsOp::Unwrap,
                KeyOperation::Unwrap,
                &wrapped.key_id,
                Subject::wrapped(&wrapped, parsed.commitment, None),
                self.kms.unwrap_dek(&wrapped, &self.context),
            )
            .await
            .inspect_err(|e| self.guard.remember(parsed.kek_ref, GuardedOp::Unwrap, e))?;
        let key = DataKey::new(self.provider, parsed.suite, &dek);
        if !key.commitment_matches(parsed.commitment) {
            return Err(Error::DecryptionFailed);
        }
        Ok(self.cached_key(key, None, &wrapped))
    }

    /// Lets an unwrap or rewrap of `kek_ref` go to the KMS, or answers it from the negative
    /// cache or the rate limit (counted).
    pub(super) fn admit(&self, kek_ref: &[u8], op: GuardedOp) -> Result<()> {
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
}
