//! Encrypt side: the one active DEK of an envelope, reused until a limit is reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::cache::{CachePolicy, CachedKey};
use crate::clock::{self, CoarseInstant};
use crate::compact::DekId;
use crate::suite::DataKey;

/// A DEK in use for encryption, with its serialized KEK reference and usage counters.
#[derive(Debug)]
pub(crate) struct ActiveDek {
    cached: Arc<CachedKey>,
    pub kek_ref: Arc<[u8]>,
    /// The DEK store id when the envelope writes the compact form (then the header names
    /// the DEK by this id instead of carrying `kek_ref`).
    pub dek_id: Option<DekId>,
    pub key_version: String,
    /// When the DEK stops being used (`max_age` after creation).
    expires: CoarseInstant,
    created: CoarseInstant,
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl ActiveDek {
    pub(crate) fn new(
        cached: Arc<CachedKey>,
        kek_ref: Arc<[u8]>,
        dek_id: Option<DekId>,
        key_version: String,
        max_age: Duration,
    ) -> Self {
        ActiveDek {
            cached,
            kek_ref,
            dek_id,
            key_version,
            expires: clock::deadline(max_age),
            created: clock::now(),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// The prepared DEK.
    #[inline]
    /// The cached key (and its key-use counters).
    pub(crate) fn cached(&self) -> &CachedKey {
        &self.cached
    }

    /// The cached key, shared.
    pub(crate) fn cached_arc(&self) -> Arc<CachedKey> {
        self.cached.clone()
    }

    pub(crate) fn data_key(&self) -> &DataKey {
        &self.cached.key
    }

    /// Reserves one message of `len` bytes; `false` when the DEK has reached a limit.
    ///
    /// A DEK is retired once it has encrypted `max_messages` messages or once the next
    /// message would take it past `max_bytes` (a message larger than `max_bytes` is allowed
    /// only as the first message of a DEK), or once it is `max_age` old.
    pub(crate) fn try_reserve(&self, policy: &CachePolicy, len: usize) -> bool {
        if clock::now() >= self.expires {
            return false;
        }
        let len = len as u64;
        let previous_messages = self.messages.fetch_add(1, Ordering::Relaxed);
        if previous_messages >= policy.max_messages() {
            return false;
        }
        let previous_bytes = self.bytes.fetch_add(len, Ordering::Relaxed);
        previous_messages == 0 || previous_bytes.saturating_add(len) <= policy.max_bytes()
    }

    /// Messages and bytes reserved so far (including refused reservations that retired it).
    pub(crate) fn usage(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn age(&self) -> Duration {
        clock::elapsed(self.created)
    }
}

/// The slot holding the active DEK, plus the lock that makes refreshes single-flight.
#[derive(Debug, Default)]
pub(crate) struct ActiveSlot {
    current: ArcSwapOption<ActiveDek>,
    refresh: tokio::sync::Mutex<()>,
}

impl ActiveSlot {
    /// Runs `f` with the active DEK after reserving a message, without locking or
    /// allocating; `None` when there is no usable DEK.
    #[inline]
    pub(crate) fn with_reserved<R>(
        &self,
        policy: &CachePolicy,
        len: usize,
        f: impl FnOnce(&ActiveDek) -> R,
    ) -> Option<R> {
        let guard = self.current.load();
        let active = guard.as_deref()?;
        if active.try_reserve(policy, len) {
            Some(f(active))
        } else {
            None
        }
    }

    /// The lock held while a new DEK is fetched, so that concurrent misses make one call.
    pub(crate) fn refresh_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.refresh
    }

    pub(crate) fn store(&self, active: Option<Arc<ActiveDek>>) {
        self.current.store(active);
    }

    /// Empties the slot if its DEK satisfies `predicate`.
    pub(crate) fn retire_if(&self, predicate: impl Fn(&ActiveDek) -> bool) {
        let current = self.current.load_full();
        if let Some(active) = &current
            && predicate(active)
        {
            self.current.compare_and_swap(&current, None);
        }
    }

    pub(crate) fn current(&self) -> Option<Arc<ActiveDek>> {
        self.current.load_full()
    }
}
