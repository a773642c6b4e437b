//! The coarse monotonic clock behind every cache age and expiry check.
//!
//! Reading `std::time::Instant` costs about 25 ns (a vDSO `clock_gettime` with a TSC read),
//! a tenth of a 64-byte AES-GCM encryption, on every message. The coarse clock
//! (`CLOCK_MONOTONIC_COARSE` on Linux) costs a few nanoseconds and ticks every 1 to 4 ms,
//! far finer than any cache age or TTL.

use std::time::Duration;

/// A point in coarse monotonic time.
pub(crate) type CoarseInstant = coarsetime::Instant;

/// Now, on the coarse clock.
#[inline]
pub(crate) fn now() -> CoarseInstant {
    coarsetime::Instant::now_without_cache_update()
}

/// `after` from now, on the coarse clock.
pub(crate) fn deadline(after: Duration) -> CoarseInstant {
    now() + coarsetime::Duration::from(after)
}

/// How long ago `since` was.
pub(crate) fn elapsed(since: CoarseInstant) -> Duration {
    now().duration_since(since).into()
}
