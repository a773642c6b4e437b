//! Sealing or opening a batch of segments on several threads (the caller's and scoped
//! helpers): segments are independent, so a batch splits into contiguous runs.

use crate::error::{Error, Result};

/// The segments a reader or writer handles per batch and thread: with 64 KiB segments, 2
/// MiB per thread (a thread spawn per 2 MiB costs well under 1% of sealing them).
pub(crate) const SEGMENTS_PER_THREAD: usize = 32;

/// Runs `f` on every item, split into up to `threads` contiguous runs, one per thread (the
/// first on the caller's thread). Returns the error of the lowest failing item.
pub(crate) fn for_each<T: Send>(
    threads: usize,
    items: &mut [T],
    f: impl Fn(&mut T) -> Result<()> + Sync,
) -> Result<()> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter_mut().try_for_each(f);
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let mut runs = items.chunks_mut(per);
        let first = runs.next();
        let helpers: Vec<_> = runs
            .map(|run| scope.spawn(move || run.iter_mut().try_for_each(f)))
            .collect();
        let mut result = first.map_or(Ok(()), |run| run.iter_mut().try_for_each(f));
        for helper in helpers {
            let joined = helper
                .join()
                .unwrap_or_else(|_| Err(Error::InvalidConfig("a segment thread panicked".into())));
            if result.is_ok() {
                result = joined;
            }
        }
        result
    })
}
