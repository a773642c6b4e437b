//! [`BlindIndexes`]: index keys from the index key store, unwrapped once per process and
//! prepared, and the operations on them: compute, query values, create, rotate, retire,
//! and the KEK rotation of the store's rows.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::blind_index::construction::{
    Definition, PreparedIndexKey, commitment, commitment_matches,
};
use crate::blind_index::normalize::Normalizer;
use crate::blind_index::store::{
    IndexKeyStore, IndexMode, IndexState, StoredIndexKey, index_binding_context,
};
use crate::blind_index::value::{IndexValue, MAX_INDEX_BITS, MIN_INDEX_BITS};
use crate::crypto::{self, CryptoProvider};
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::kms::{EncryptionContext, Kms, KmsExt};
use crate::secret::Dek;

/// A caller normalizer: registered under the name an index's `custom:NAME` step names.
pub type NormalizerFn = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// How long a process trusts what it loaded of an index (its versions and states) before
/// reading the store again: a rotation or retirement done elsewhere takes effect within it.
pub const DEFAULT_INDEX_REFRESH: Duration = Duration::from_secs(60);

/// What a new index version is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSettings {
    /// Tag bits, 8 to 256.
    pub bits: u16,
    /// How the bits were chosen.
    pub mode: IndexMode,
    /// The normalizer.
    pub normalizer: Normalizer,
}

impl IndexSettings {
    /// `unique` mode with [`crate::blind_index::DEFAULT_UNIQUE_BITS`] bits.
    pub fn unique(normalizer: Normalizer) -> Self {
        IndexSettings {
            bits: crate::blind_index::DEFAULT_UNIQUE_BITS,
            mode: IndexMode::Unique,
            normalizer,
        }
    }

    /// `private` mode with `bits` bits (see [`crate::blind_index::BitsAdvice`]).
    pub fn private(bits: u16, normalizer: Normalizer) -> Self {
        IndexSettings {
            bits,
            mode: IndexMode::Private,
            normalizer,
        }
    }

    fn check(&self) -> Result<()> {
        if !(MIN_INDEX_BITS..=MAX_INDEX_BITS).contains(&self.bits) {
            return Err(Error::InvalidConfig(format!(
                "a blind index keeps {MIN_INDEX_BITS} to {MAX_INDEX_BITS} bits, not {}",
                self.bits
            )));
        }
        Ok(())
    }
}

/// Checks an index name: 1 to 128 characters of `A-Z a-z 0-9 _ . : / -`
/// (`users.email`, `billing/customers.ssn`).
pub fn check_index_name(index: &str) -> Result<()> {
    let ok = (1..=128).contains(&index.len())
        && index
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "index name {index:?}: 1 to 128 characters of A-Z a-z 0-9 _ . : / -"
        )))
    }
}

/// A KEK rotation of the index key store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexKeysRewrapped {
    /// Rows read.
    pub examined: u64,
    /// Rows whose wrapped key moved to the KEK's current version.
    pub rewrapped: u64,
    /// Rows a concurrent change replaced first (left as they are).
    pub superseded: u64,
}

struct LoadedVersion {
    version: u16,
    state: IndexState,
    normalizer: Normalizer,
    key: Arc<PreparedIndexKey>,
}

struct Loaded {
    /// Until when it is trusted (coarse monotonic clock: cheap to read per value).
    until: coarsetime::Instant,
    /// Non-retired versions, the active one first, then newest first.
    versions: Vec<LoadedVersion>,
    /// The newest version (retired or not), for messages.
    newest: u16,
}

/// Which prepared key: index, version, commitment.
type PreparedId = (String, u16, [u8; 32]);

struct Inner {
    kms: Arc<dyn Kms>,
    key_id: String,
    context: EncryptionContext,
    provider: CryptoProvider,
    store: Arc<dyn IndexKeyStore>,
    refresh: Duration,
    /// What was loaded, by index: read lock-free on every value, replaced on a load. A
    /// list, searched by name: an application has a handful of indexes, and comparing a
    /// short name is cheaper than hashing it.
    loaded: ArcSwap<Vec<(String, Arc<Loaded>)>>,
    /// Prepared keys by (index, version, commitment): kept across refreshes, so that a
    /// refresh costs a store read and no KMS call.
    prepared: RwLock<HashMap<PreparedId, Arc<PreparedIndexKey>>>,
    normalizers: RwLock<HashMap<String, NormalizerFn>>,
    unwraps: AtomicU64,
}

/// Blind indexes: truncated keyed hashes of normalized values, under index keys the KMS
/// wraps and the index key store keeps, with versions that rotate (`docs/FORMAT.md`,
/// "Blind indexes").
///
/// Writers store [`BlindIndexes::compute`] (the active version); lookups match any of
/// [`BlindIndexes::query_values`] (every version not retired), then decrypt the candidate
/// rows and drop those whose plaintext differs. Cheap to clone.
#[derive(Clone)]
pub struct BlindIndexes {
    inner: Arc<Inner>,
}

impl fmt::Debug for BlindIndexes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlindIndexes")
            .field("kms", &self.inner.kms)
            .field("key_id", &self.inner.key_id)
            .field("store", &self.inner.store)
            .field("refresh", &self.inner.refresh)
            .finish_non_exhaustive()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl BlindIndexes {
    /// Blind indexes whose keys `envelope`'s KEK wraps (its KMS, key, encryption context
    /// and crypto provider), kept in `store`.
    pub fn new(envelope: &Envelope, store: Arc<dyn IndexKeyStore>) -> Self {
        BlindIndexes {
            inner: Arc::new(Inner {
                kms: envelope.kms().clone(),
                key_id: envelope.key_id().to_owned(),
                context: envelope.encryption_context().clone(),
                provider: envelope.crypto_provider(),
                store,
                refresh: DEFAULT_INDEX_REFRESH,
                loaded: ArcSwap::default(),
                prepared: RwLock::default(),
                normalizers: RwLock::default(),
                unwraps: AtomicU64::new(0),
            }),
        }
    }

    /// How long loaded versions and states are trusted (default
    /// [`DEFAULT_INDEX_REFRESH`]). Set it before sharing the handle.
    pub fn with_refresh(mut self, refresh: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.refresh = refresh;
        }
        self
    }

    /// The index key store.
    pub fn store(&self) -> &Arc<dyn IndexKeyStore> {
        &self.inner.store
    }

    /// Index keys unwrapped by the KMS so far (one per version per process).
    pub fn kms_unwraps(&self) -> u64 {
        self.inner.unwraps.load(Ordering::Relaxed)
    }

    /// Registers the function an index's `custom:NAME` step runs.
    pub fn register_normalizer(&self, name: &str, f: NormalizerFn) {
        write(&self.inner.normalizers).insert(name.to_owned(), f);
    }

    /// Forgets what was loaded, so the next call reads the store again (after a rotation
    /// or retirement made elsewhere). Prepared keys are kept.
    pub fn refresh(&self) {
        self.inner.loaded.store(Arc::default());
    }

    fn forget(&self, index: &str) {
        self.inner.loaded.rcu(|list| {
            let mut list = Vec::clone(list);
            list.retain(|(name, _)| name != index);
            list
        });
    }

    /// The index value of `value` under the index's active version.
    pub async fn compute(&self, index: &str, value: &[u8]) -> Result<IndexValue> {
        self.compute_applied(index, value, None).await
    }

    /// [`BlindIndexes::compute`] for a value the caller's `custom:NAME` normalizer has
    /// already transformed (`applied` names it; the language bindings run caller functions
    /// themselves). Fails with [`Error::IndexMismatch`] when the index has another
    /// normalizer.
    pub async fn compute_applied(
        &self,
        index: &str,
        value: &[u8],
        applied: Option<&str>,
    ) -> Result<IndexValue> {
        let loaded = self.load(index).await?;
        let active = active(index, &loaded)?;
        self.tag(index, active, value, applied)
    }

    /// [`BlindIndexes::compute`] without waiting: `None` when the index is not loaded (or
    /// its refresh is due), which needs the async call; no store or KMS call is made.
    pub fn try_compute(&self, index: &str, value: &[u8]) -> Option<Result<IndexValue>> {
        // The map's guard, not a clone of the entry: no reference count touched per value.
        let list = self.inner.loaded.load();
        let loaded = find(&list, index)?;
        Some(active(index, loaded).and_then(|active| self.tag(index, active, value, None)))
    }

    /// [`BlindIndexes::compute_many`] without waiting: `None` when the index is not loaded
    /// (or its refresh is due), which needs the async call; no store or KMS call is made.
    pub fn try_compute_many(
        &self,
        index: &str,
        values: &[&[u8]],
        applied: Option<&str>,
    ) -> Option<Result<Vec<IndexValue>>> {
        let loaded = self.fresh(index)?;
        Some(active(index, &loaded).and_then(|active| {
            values
                .iter()
                .map(|v| self.tag(index, active, v, applied))
                .collect()
        }))
    }

    fn fresh(&self, index: &str) -> Option<Arc<Loaded>> {
        find(&self.inner.loaded.load(), index).cloned()
    }

    /// The index values of many values under the active version (one load).
    pub async fn compute_many(
        &self,
        index: &str,
        values: &[&[u8]],
        applied: Option<&str>,
    ) -> Result<Vec<IndexValue>> {
        let loaded = self.load(index).await?;
        let active = active(index, &loaded)?;
        values
            .iter()
            .map(|v| self.tag(index, active, v, applied))
            .collect()
    }

    /// The index values a lookup of `value` must match: one per version not retired, the
    /// active one first. During a rotation window that is the new and the old version.
    pub async fn query_values(&self, index: &str, value: &[u8]) -> Result<Vec<IndexValue>> {
        self.query_values_applied(index, value, None).await
    }

    /// [`BlindIndexes::query_values_applied`] without waiting: `None` when the index is not
    /// loaded (or its refresh is due); no store or KMS call is made.
    pub fn try_query_values_applied(
        &self,
        index: &str,
        value: &[u8],
        applied: Option<&str>,
    ) -> Option<Result<Vec<IndexValue>>> {
        let list = self.inner.loaded.load();
        let loaded = find(&list, index)?;
        Some(self.window(index, loaded, value, applied))
    }

    /// The values of every loaded (not retired) version.
    fn window(
        &self,
        index: &str,
        loaded: &Loaded,
        value: &[u8],
        applied: Option<&str>,
    ) -> Result<Vec<IndexValue>> {
        if loaded.versions.is_empty() {
            return Err(Error::IndexRetired {
                index: index.to_owned(),
                version: loaded.newest,
            });
        }
        loaded
            .versions
            .iter()
            .map(|v| self.tag(index, v, value, applied))
            .collect()
    }

    /// [`BlindIndexes::query_values`] for a value the caller's `custom:NAME` normalizer has
    /// already transformed (see [`BlindIndexes::compute_applied`]).
    pub async fn query_values_applied(
        &self,
        index: &str,
        value: &[u8],
        applied: Option<&str>,
    ) -> Result<Vec<IndexValue>> {
        let loaded = self.load(index).await?;
        self.window(index, &loaded, value, applied)
    }

    /// Fails with [`Error::IndexMismatch`] unless the index's active version normalizes
    /// with `expected` (a spec) and, when given, keeps `bits` bits: what a column type
    /// declares is what the store holds.
    pub async fn check_definition(
        &self,
        index: &str,
        expected: &str,
        bits: Option<u16>,
    ) -> Result<()> {
        let expected = Normalizer::parse(expected)?;
        let rows = self.describe(index).await?;
        let Some(active) = rows.iter().find(|r| r.state == IndexState::Active) else {
            return Err(Error::IndexRetired {
                index: index.to_owned(),
                version: rows.last().map_or(0, |r| r.version),
            });
        };
        if active.normalizer != expected.spec() {
            return Err(Error::IndexMismatch {
                index: index.to_owned(),
                reason: format!(
                    "normalizer {} was given, the stored index (version {}) uses {}",
                    expected.spec(),
                    active.version,
                    active.normalizer
                ),
            });
        }
        if let Some(bits) = bits.filter(|b| *b != active.bits) {
            return Err(Error::IndexMismatch {
                index: index.to_owned(),
                reason: format!(
                    "{bits} bits were given, the stored index (version {}) keeps {}",
                    active.version, active.bits
                ),
            });
        }
        Ok(())
    }

    fn tag(
        &self,
        index: &str,
        version: &LoadedVersion,
        value: &[u8],
        applied: Option<&str>,
    ) -> Result<IndexValue> {
        let custom = version.normalizer.custom_name();
        let mismatch = |reason: String| Error::IndexMismatch {
            index: index.to_owned(),
            reason,
        };
        let transformed;
        let input: &[u8] = match (custom, applied) {
            (None, None) => value,
            (Some(want), Some(got)) if want == got => value,
            (Some(want), None) => {
                let f = read(&self.inner.normalizers).get(want).cloned().ok_or_else(|| {
                    mismatch(format!(
                        "version {} normalizes with custom:{want}, and no function is registered under that name",
                        version.version
                    ))
                })?;
                transformed = f(value);
                &transformed
            }
            (want, Some(got)) => {
                return Err(mismatch(format!(
                    "the value was normalized by custom:{got}; version {} uses {}",
                    version.version,
                    want.map_or_else(|| version.normalizer.spec(), |w| format!("custom:{w}"))
                )));
            }
        };
        let normalized = version.normalizer.apply_builtin(input)?;
        Ok(version.key.tag(&normalized))
    }

    async fn load(&self, index: &str) -> Result<Arc<Loaded>> {
        if let Some(loaded) = self.fresh(index) {
            return Ok(loaded);
        }
        let rows = self.inner.store.index_keys(index).await?;
        let newest = rows
            .iter()
            .map(|r| r.version)
            .max()
            .ok_or_else(|| Error::IndexNotFound {
                index: index.to_owned(),
                version: None,
            })?;
        let mut versions = Vec::new();
        for row in rows.iter().filter(|r| r.state != IndexState::Retired) {
            let normalizer =
                Normalizer::parse(&row.normalizer).map_err(|e| Error::IndexMismatch {
                    index: index.to_owned(),
                    reason: format!("version {} has an unreadable normalizer: {e}", row.version),
                })?;
            versions.push(LoadedVersion {
                version: row.version,
                state: row.state,
                normalizer,
                key: self.prepared(row).await?,
            });
        }
        versions.sort_by_key(|v| (v.state != IndexState::Active, std::cmp::Reverse(v.version)));
        let loaded = Arc::new(Loaded {
            until: coarsetime::Instant::now() + coarsetime::Duration::from(self.inner.refresh),
            versions,
            newest,
        });
        self.inner.loaded.rcu(|list| {
            let mut list = Vec::clone(list);
            list.retain(|(name, _)| name != index);
            list.push((index.to_owned(), loaded.clone()));
            list
        });
        Ok(loaded)
    }

    /// The prepared key of a row: from memory, or unwrapped, checked against the row's
    /// commitment and derived.
    async fn prepared(&self, row: &StoredIndexKey) -> Result<Arc<PreparedIndexKey>> {
        let id = (row.index.clone(), row.version, row.commitment);
        if let Some(key) = read(&self.inner.prepared).get(&id) {
            return Ok(key.clone());
        }
        let context = index_binding_context(
            &self.inner.context,
            &row.index,
            row.version,
            &row.commitment,
        );
        self.inner.unwraps.fetch_add(1, Ordering::Relaxed);
        let key = self.inner.kms.unwrap_dek(&row.wrapped, &context).await?;
        let definition = Definition {
            index: &row.index,
            version: row.version,
            bits: row.bits,
            normalizer: &row.normalizer,
        };
        if !(MIN_INDEX_BITS..=MAX_INDEX_BITS).contains(&row.bits)
            || !commitment_matches(
                self.inner.provider,
                key.expose_secret(),
                &definition,
                &row.commitment,
            )
        {
            return Err(Error::IndexMismatch {
                index: row.index.clone(),
                reason: format!(
                    "the key of version {} does not match the row's commitment (its definition or key was altered)",
                    row.version
                ),
            });
        }
        let prepared = Arc::new(PreparedIndexKey::new(
            self.inner.provider,
            key.expose_secret(),
            &definition,
        ));
        write(&self.inner.prepared).insert(id, prepared.clone());
        Ok(prepared)
    }

    /// Creates an index: version 1, active. Fails with [`Error::InvalidConfig`] when the
    /// index exists.
    pub async fn create(&self, index: &str, settings: &IndexSettings) -> Result<StoredIndexKey> {
        check_index_name(index)?;
        settings.check()?;
        let rows = self.inner.store.index_keys(index).await?;
        if let Some(last) = rows.last() {
            return Err(Error::InvalidConfig(format!(
                "blind index {index:?} exists (newest version {}): rotate it instead",
                last.version
            )));
        }
        self.add_version(index, 1, settings, true).await
    }

    /// Adds a version and makes it active; the active one becomes [`IndexState::Query`]
    /// (the rotation window). `settings` default to the current active version's.
    pub async fn rotate(
        &self,
        index: &str,
        settings: Option<&IndexSettings>,
    ) -> Result<StoredIndexKey> {
        let rows = self.describe(index).await?;
        let newest = rows.iter().map(|r| r.version).max().unwrap_or(0);
        let version = newest.checked_add(1).ok_or_else(|| {
            Error::InvalidConfig(format!("blind index {index:?} has used every version"))
        })?;
        let settings = match settings {
            Some(s) => s.clone(),
            None => {
                let base = rows
                    .iter()
                    .rev()
                    .find(|r| r.state == IndexState::Active)
                    .or(rows.last())
                    .ok_or_else(|| Error::IndexNotFound {
                        index: index.to_owned(),
                        version: None,
                    })?;
                IndexSettings {
                    bits: base.bits,
                    mode: base.mode,
                    normalizer: Normalizer::parse(&base.normalizer)?,
                }
            }
        };
        settings.check()?;
        self.add_version(index, version, &settings, true).await
    }

    async fn add_version(
        &self,
        index: &str,
        version: u16,
        settings: &IndexSettings,
        activate: bool,
    ) -> Result<StoredIndexKey> {
        let normalizer = settings.normalizer.spec();
        let key = Dek::from_array(*crypto::random_key(self.inner.provider));
        let definition = Definition {
            index,
            version,
            bits: settings.bits,
            normalizer: &normalizer,
        };
        let commitment = commitment(self.inner.provider, key.expose_secret(), &definition);
        let context = index_binding_context(&self.inner.context, index, version, &commitment);
        let wrapped = self
            .inner
            .kms
            .wrap_dek(&self.inner.key_id, &key, &context)
            .await?;
        let row = StoredIndexKey {
            index: index.to_owned(),
            version,
            state: if activate {
                IndexState::Active
            } else {
                IndexState::Query
            },
            bits: settings.bits,
            mode: settings.mode,
            normalizer,
            wrapped,
            commitment,
            created: SystemTime::now(),
        };
        self.inner.store.insert_index_key(&row, activate).await?;
        self.forget(index);
        Ok(row)
    }

    /// Sets a version's state. Retiring the active version is refused (rotate first);
    /// activating a version makes the active one [`IndexState::Query`]. Check with a
    /// census that no row carries a version before retiring it (`envelope retire
    /// --index` does).
    pub async fn set_state(&self, index: &str, version: u16, state: IndexState) -> Result<()> {
        let rows = self.describe(index).await?;
        let row =
            rows.iter()
                .find(|r| r.version == version)
                .ok_or_else(|| Error::IndexNotFound {
                    index: index.to_owned(),
                    version: Some(version),
                })?;
        if row.state == IndexState::Active && state != IndexState::Active {
            return Err(Error::InvalidConfig(format!(
                "version {version} is the active version of blind index {index:?}: rotate the index first"
            )));
        }
        if !self
            .inner
            .store
            .set_index_state(index, version, state)
            .await?
        {
            return Err(Error::IndexNotFound {
                index: index.to_owned(),
                version: Some(version),
            });
        }
        self.forget(index);
        Ok(())
    }

    /// Every version of an index ([`Error::IndexNotFound`] when there is none).
    pub async fn describe(&self, index: &str) -> Result<Vec<StoredIndexKey>> {
        let rows = self.inner.store.index_keys(index).await?;
        if rows.is_empty() {
            return Err(Error::IndexNotFound {
                index: index.to_owned(),
                version: None,
            });
        }
        Ok(rows)
    }

    /// Every version of every index.
    pub async fn list(&self) -> Result<Vec<StoredIndexKey>> {
        self.inner.store.all_index_keys().await
    }

    /// After a KEK rotation: moves every index key's wrap to the KEK's current version
    /// (the index keys themselves do not change, so no index value does). Rows already
    /// current are left alone where the KMS reports versions.
    pub async fn rewrap_keys(&self) -> Result<IndexKeysRewrapped> {
        let mut report = IndexKeysRewrapped::default();
        for row in self.inner.store.all_index_keys().await? {
            report.examined += 1;
            let same_key = row.wrapped.key_id == self.inner.key_id;
            if same_key && self.inner.kms.is_stale(&row.wrapped).await? == Some(false) {
                continue;
            }
            let context = index_binding_context(
                &self.inner.context,
                &row.index,
                row.version,
                &row.commitment,
            );
            let new = self
                .inner
                .kms
                .rewrap_dek(&row.wrapped, &self.inner.key_id, &context)
                .await?;
            if same_key && !new.key_version.is_empty() && new.key_version == row.wrapped.key_version
            {
                continue;
            }
            if self
                .inner
                .store
                .replace_index_wrap(&row.index, row.version, &row.wrapped, &new)
                .await?
            {
                report.rewrapped += 1;
            } else {
                report.superseded += 1;
            }
        }
        Ok(report)
    }
}

/// The entry of `index`, while it is trusted.
fn find<'a>(list: &'a [(String, Arc<Loaded>)], index: &str) -> Option<&'a Arc<Loaded>> {
    list.iter()
        .find(|(name, _)| name == index)
        .map(|(_, loaded)| loaded)
        .filter(|l| coarsetime::Instant::now() < l.until)
}

fn active<'a>(index: &str, loaded: &'a Loaded) -> Result<&'a LoadedVersion> {
    loaded
        .versions
        .first()
        .filter(|v| v.state == IndexState::Active)
        .ok_or_else(|| Error::IndexRetired {
            index: index.to_owned(),
            version: loaded.newest,
        })
}
