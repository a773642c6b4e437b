//! A value that belongs to one process: built on first use, and built again in a forked
//! child, for KMS clients whose pooled connections and runtime threads the parent owns.

use std::future::Future;

/// A lazily built value, rebuilt when the process id changes (after `fork`). Backends keep
/// their SDK client in one, so that a worker forked after the client was made (gunicorn
/// `--preload`, `multiprocessing`) never waits on a parent's pooled connection.
#[derive(Debug, Default)]
pub struct PerProcess<T> {
    slot: tokio::sync::Mutex<Option<(u32, T)>>,
}

impl<T: Clone> PerProcess<T> {
    /// An empty slot: nothing is built until [`PerProcess::get_or_try_init`].
    pub fn new() -> Self {
        PerProcess {
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// This process's value, built by `init` on first use in this process. A failed `init`
    /// leaves the slot as it was, so the next call tries again.
    pub async fn get_or_try_init<E, F, Fut>(&self, init: F) -> std::result::Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let mut slot = self.slot.lock().await;
        let pid = std::process::id();
        if let Some((built_by, value)) = slot.as_ref()
            && *built_by == pid
        {
            return Ok(value.clone());
        }
        let value = init().await?;
        *slot = Some((pid, value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn built_once_per_process_and_retried_after_a_failure() {
        let slot = PerProcess::<u32>::new();
        let failed: Result<u32, &str> = slot.get_or_try_init(|| async { Err("down") }).await;
        assert_eq!(failed, Err("down"));
        let first: Result<u32, &str> = slot.get_or_try_init(|| async { Ok(1) }).await;
        assert_eq!(first, Ok(1));
        let again: Result<u32, &str> = slot.get_or_try_init(|| async { Ok(2) }).await;
        assert_eq!(again, Ok(1), "built once in this process");
    }
}
