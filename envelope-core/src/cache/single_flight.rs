//! A bounded, expiring map whose concurrent misses for one key run the loader once.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

/// Values are cells: the first caller of a missing key runs the loader, the others wait for
/// its result. A failed load leaves the cell empty so that the next caller tries again.
pub(crate) struct SingleFlightCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    cells: moka::sync::Cache<K, Arc<OnceCell<V>>>,
}

impl<K, V> SingleFlightCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        SingleFlightCache {
            cells: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The value for `key` if it is loaded (never waits, never loads).
    #[inline]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cells.get(key)?.get().cloned()
    }

    /// The value for `key`, loading it with `load` on a miss (`to_owned` makes the stored
    /// key, only when the key is absent).
    pub(crate) async fn get_or_load<Q, F, Fut, E>(
        &self,
        key: &Q,
        to_owned: impl FnOnce() -> K,
        load: F,
    ) -> Result<V, E>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = match self.cells.get(key) {
            Some(cell) => cell,
            None => self
                .cells
                .get_with(to_owned(), || Arc::new(OnceCell::new())),
        };
        Ok(cell.get_or_try_init(load).await?.clone())
    }

    /// Stores an already-known value.
    pub(crate) fn insert(&self, key: K, value: V) {
        self.cells
            .insert(key, Arc::new(OnceCell::new_with(Some(value))));
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        self.cells.invalidate_all();
    }
}
