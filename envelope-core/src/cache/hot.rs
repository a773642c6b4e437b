//! A small direct-mapped front for the decrypt cache.
//!
//! A moka lookup costs several times the AES-GCM of a 64-byte field (hashing, bookkeeping
//! for its eviction policy, expiry reads). Most decrypt traffic reuses a handful of DEKs, so
//! a fixed array of slots indexed by the wrapped DEK's last bytes (random output of the KMS:
//! an AEAD tag for every supported KMS) answers those without hashing or locking. A slot
//! holds one DEK; a miss falls through to moka, which stays the authority on capacity.
//! Entries carry the expiry of the unwrap that produced them, so the TTL holds here too.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::clock::{self, CoarseInstant};
use crate::suite::DataKey;

/// The most slots a front holds.
const MAX_SLOTS: usize = 1024;

/// A prepared DEK and when its unwrap stops being trusted.
#[derive(Debug)]
pub(crate) struct CachedKey {
    pub key: DataKey,
    pub expires: CoarseInstant,
    /// The key-use log's counters for this DEK, when the envelope has a log.
    pub usage: Option<Arc<crate::audit::DekUsage>>,
}

impl CachedKey {
    /// Counts one use served from the cache, for the key-use log.
    #[inline]
    pub(crate) fn count(&self, operation: crate::audit::CacheOperation) {
        if let Some(usage) = &self.usage {
            usage.count(operation);
        }
    }
}

#[derive(Debug)]
struct Slot {
    kek_ref: Box<[u8]>,
    cached: Arc<CachedKey>,
}

/// Direct-mapped slots from KEK reference bytes to prepared DEKs.
#[derive(Debug)]
pub(crate) struct HotKeys {
    slots: Box<[ArcSwapOption<Slot>]>,
    mask: usize,
}

impl HotKeys {
    /// A front with at most `capacity` slots (rounded up to a power of two, at most 1024).
    pub(crate) fn new(capacity: u64) -> Self {
        let n = (capacity.min(MAX_SLOTS as u64) as usize)
            .max(1)
            .next_power_of_two();
        HotKeys {
            slots: (0..n).map(|_| ArcSwapOption::empty()).collect(),
            mask: n - 1,
        }
    }

    #[inline]
    fn index(&self, kek_ref: &[u8]) -> usize {
        let mut tail = [0u8; 8];
        let n = kek_ref.len().min(8);
        tail[..n].copy_from_slice(&kek_ref[kek_ref.len() - n..]);
        let h = u64::from_le_bytes(tail).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 32) as usize & self.mask
    }

    /// Runs `f` with the unexpired key cached for `kek_ref`, if any.
    #[inline]
    pub(crate) fn with<R>(&self, kek_ref: &[u8], f: impl FnOnce(&CachedKey) -> R) -> Option<R> {
        let guard = self.slots[self.index(kek_ref)].load();
        let slot = guard.as_deref()?;
        if *slot.kek_ref != *kek_ref || slot.cached.expires <= clock::now() {
            return None;
        }
        Some(f(&slot.cached))
    }

    /// Puts a key in its slot, replacing whatever was there.
    pub(crate) fn insert(&self, kek_ref: &[u8], cached: Arc<CachedKey>) {
        self.slots[self.index(kek_ref)].store(Some(Arc::new(Slot {
            kek_ref: kek_ref.into(),
            cached,
        })));
    }

    /// Empties every slot.
    pub(crate) fn clear(&self) {
        for slot in self.slots.iter() {
            slot.store(None);
        }
    }
}
