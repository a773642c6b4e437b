//! Bounds on what hostile ciphertexts can make an envelope ask of its KMS.
//!
//! Anyone who can write a ciphertext column can write junk headers, and every header whose
//! KEK reference is not cached costs an unwrap call: money and throttling an attacker
//! controls. Two bounds apply before any unwrap or rewrap call:
//!
//! - a *negative cache*: a KEK reference whose unwrap failed for a reason that will not
//!   change by retrying (the KMS could not authenticate it, the key or version does not
//!   exist, is disabled or destroyed, permission denied, another provider's key) is
//!   answered with the same error, without a KMS call, for `negative_ttl`. Transient
//!   failures (unavailable, throttled) are never remembered. A failure of the key
//!   commitment after a *successful* unwrap is not remembered either: the unwrap was
//!   genuine, and remembering it would let one forged copy of a real header deny the real
//!   rows for the TTL;
//! - a *rate limit*: at most `max_unwraps_per_second` unwrap and rewrap calls per envelope
//!   (a token bucket holding one second's worth); past it the call fails at once with the
//!   retryable [`Error::Throttled`], without reaching the KMS.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The KMS operations the guard stands in front of. Failures are remembered per operation:
/// a rewrap the caller's credentials may not perform (Vault without `transit/rewrap`, AWS
/// without `kms:ReEncrypt*`) says nothing about whether the same DEK unwraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuardedOp {
    Unwrap,
    Rewrap,
}

impl GuardedOp {
    fn name(self) -> &'static str {
        match self {
            GuardedOp::Unwrap => "unwrap",
            GuardedOp::Rewrap => "rewrap",
        }
    }
}

type FailureCache = moka::sync::Cache<Box<[u8]>, RememberedFailure>;

/// The negative cache and the rate limit of one envelope.
pub(crate) struct UnwrapGuard {
    /// Remembered failures: unwraps, then rewraps.
    failures: Option<[FailureCache; 2]>,
    limiter: Option<Mutex<TokenBucket>>,
}

impl std::fmt::Debug for UnwrapGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnwrapGuard")
            .field("negative_cache", &self.failures.is_some())
            .field("rate_limited", &self.limiter.is_some())
            .finish()
    }
}

/// Why a call did not reach the KMS.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The same KEK reference failed recently: its error again.
    Remembered(Error),
    /// The rate limit is spent.
    RateLimited(Error),
}

impl UnwrapGuard {
    /// A guard remembering failures for `negative_ttl` (zero: never) among at most
    /// `capacity` KEK references, and allowing `max_per_second` calls (`None`: unlimited).
    pub(crate) fn new(negative_ttl: Duration, capacity: u64, max_per_second: Option<u32>) -> Self {
        UnwrapGuard {
            failures: (!negative_ttl.is_zero()).then(|| {
                let cache = || {
                    moka::sync::Cache::builder()
                        .max_capacity(capacity)
                        .time_to_live(negative_ttl)
                        .build()
                };
                [cache(), cache()]
            }),
            limiter: max_per_second.map(|rate| Mutex::new(TokenBucket::new(rate))),
        }
    }

    fn failures(&self, op: GuardedOp) -> Option<&FailureCache> {
        self.failures.as_ref().map(|caches| &caches[op as usize])
    }

    /// Whether `op` for `kek_ref` may go to the KMS now; takes a token when it may.
    pub(crate) fn admit(&self, kek_ref: &[u8], op: GuardedOp) -> Result<(), Refusal> {
        if let Some(failure) = self.failures(op).and_then(|f| f.get(kek_ref)) {
            return Err(Refusal::Remembered(failure.to_error()));
        }
        let operation = op.name();
        if let Some(limiter) = &self.limiter {
            let admitted = match limiter.lock() {
                Ok(mut bucket) => bucket.try_take(Instant::now()),
                Err(poisoned) => poisoned.into_inner().try_take(Instant::now()),
            };
            if !admitted {
                return Err(Refusal::RateLimited(Error::Throttled {
                    operation,
                    source: Some(
                        "refused before the KMS: this envelope's unwrap rate limit \
                         (CachePolicy::with_max_unwraps_per_second) is spent"
                            .into(),
                    ),
                }));
            }
        }
        Ok(())
    }

    /// Remembers the failure of `op` for `kek_ref`, if it is one worth remembering.
    pub(crate) fn remember(&self, kek_ref: &[u8], op: GuardedOp, error: &Error) {
        if let (Some(failures), Some(failure)) = (self.failures(op), RememberedFailure::of(error)) {
            failures.insert(Box::from(kek_ref), failure);
        }
    }

    /// Forgets every remembered failure.
    pub(crate) fn clear(&self) {
        for failures in self.failures.iter().flatten() {
            failures.invalidate_all();
        }
    }
}

/// A failure that retrying will not change, stored without its backend source.
#[derive(Debug, Clone)]
enum RememberedFailure {
    DecryptionFailed,
    KeyNotOwned {
        kms: String,
        provider: String,
        key_id: String,
    },
    KeyNotFound {
        key_id: String,
    },
    KeyVersionNotFound {
        key_id: String,
        version: String,
    },
    KeyVersionDestroyed {
        key_id: String,
        version: String,
    },
    KeyVersionDisabled {
        key_id: String,
        version: String,
    },
    KeyVersionTooOld {
        key_id: String,
        version: String,
    },
    PermissionDenied {
        operation: &'static str,
        key_id: String,
    },
    Malformed {
        field: &'static str,
        reason: String,
    },
}

impl RememberedFailure {
    fn of(error: &Error) -> Option<Self> {
        Some(match error {
            Error::DecryptionFailed => RememberedFailure::DecryptionFailed,
            Error::KeyNotOwned {
                kms,
                provider,
                key_id,
            } => RememberedFailure::KeyNotOwned {
                kms: kms.clone(),
                provider: provider.clone(),
                key_id: key_id.clone(),
            },
            Error::KeyNotFound { key_id } => RememberedFailure::KeyNotFound {
                key_id: key_id.clone(),
            },
            Error::KeyVersionNotFound { key_id, version } => {
                RememberedFailure::KeyVersionNotFound {
                    key_id: key_id.clone(),
                    version: version.clone(),
                }
            }
            Error::KeyVersionDestroyed { key_id, version } => {
                RememberedFailure::KeyVersionDestroyed {
                    key_id: key_id.clone(),
                    version: version.clone(),
                }
            }
            Error::KeyVersionDisabled { key_id, version } => {
                RememberedFailure::KeyVersionDisabled {
                    key_id: key_id.clone(),
                    version: version.clone(),
                }
            }
            Error::KeyVersionTooOld { key_id, version } => RememberedFailure::KeyVersionTooOld {
                key_id: key_id.clone(),
                version: version.clone(),
            },
            Error::PermissionDenied {
                operation, key_id, ..
            } => RememberedFailure::PermissionDenied {
                operation,
                key_id: key_id.clone(),
            },
            Error::Malformed { field, reason } => RememberedFailure::Malformed {
                field,
                reason: reason.clone(),
            },
            // Transient (unavailable, throttled) or local (configuration, keyring file)
            // failures may clear at any moment: never remembered.
            _ => return None,
        })
    }

    fn to_error(&self) -> Error {
        match self.clone() {
            RememberedFailure::DecryptionFailed => Error::DecryptionFailed,
            RememberedFailure::KeyNotOwned {
                kms,
                provider,
                key_id,
            } => Error::KeyNotOwned {
                kms,
                provider,
                key_id,
            },
            RememberedFailure::KeyNotFound { key_id } => Error::KeyNotFound { key_id },
            RememberedFailure::KeyVersionNotFound { key_id, version } => {
                Error::KeyVersionNotFound { key_id, version }
            }
            RememberedFailure::KeyVersionDestroyed { key_id, version } => {
                Error::KeyVersionDestroyed { key_id, version }
            }
            RememberedFailure::KeyVersionDisabled { key_id, version } => {
                Error::KeyVersionDisabled { key_id, version }
            }
            RememberedFailure::KeyVersionTooOld { key_id, version } => {
                Error::KeyVersionTooOld { key_id, version }
            }
            RememberedFailure::PermissionDenied { operation, key_id } => Error::PermissionDenied {
                operation,
                key_id,
                source: None,
            },
            RememberedFailure::Malformed { field, reason } => Error::Malformed { field, reason },
        }
    }
}

/// A token bucket: `rate` tokens a second, holding at most `rate` (one second's burst).
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        TokenBucket {
            rate,
            tokens: rate,
            updated: Instant::now(),
        }
    }

    fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10);
        bucket.updated = start;
        let burst = (0..100).filter(|_| bucket.try_take(start)).count();
        assert_eq!(burst, 10, "one second's worth at once");
        assert!(!bucket.try_take(start));
        let later = start + Duration::from_millis(500);
        let refilled = (0..100).filter(|_| bucket.try_take(later)).count();
        assert_eq!(refilled, 5, "half a second refills half the rate");
    }

    #[test]
    fn only_lasting_failures_are_remembered() {
        let guard = UnwrapGuard::new(Duration::from_secs(60), 100, None);
        guard.remember(b"a", GuardedOp::Unwrap, &Error::DecryptionFailed);
        guard.remember(
            b"b",
            GuardedOp::Unwrap,
            &Error::Unavailable {
                operation: "unwrap",
                source: None,
            },
        );
        guard.remember(
            b"c",
            GuardedOp::Unwrap,
            &Error::KeyVersionDestroyed {
                key_id: "k".into(),
                version: "1".into(),
            },
        );
        assert!(matches!(
            guard.admit(b"a", GuardedOp::Unwrap),
            Err(Refusal::Remembered(Error::DecryptionFailed))
        ));
        assert!(
            guard.admit(b"b", GuardedOp::Unwrap).is_ok(),
            "transient: not remembered"
        );
        assert!(matches!(
            guard.admit(b"c", GuardedOp::Unwrap),
            Err(Refusal::Remembered(Error::KeyVersionDestroyed { .. }))
        ));
        guard.clear();
        assert!(guard.admit(b"a", GuardedOp::Unwrap).is_ok());
    }

    #[test]
    fn failures_are_remembered_per_operation() {
        let guard = UnwrapGuard::new(Duration::from_secs(60), 100, None);
        let denied = Error::PermissionDenied {
            operation: "rewrap",
            key_id: "k".into(),
            source: None,
        };
        guard.remember(b"a", GuardedOp::Rewrap, &denied);
        assert!(matches!(
            guard.admit(b"a", GuardedOp::Rewrap),
            Err(Refusal::Remembered(Error::PermissionDenied { .. }))
        ));
        assert!(
            guard.admit(b"a", GuardedOp::Unwrap).is_ok(),
            "a refused rewrap says nothing about the unwrap"
        );
    }

    #[test]
    fn zero_ttl_remembers_nothing() {
        let guard = UnwrapGuard::new(Duration::ZERO, 100, None);
        guard.remember(b"a", GuardedOp::Unwrap, &Error::DecryptionFailed);
        assert!(guard.admit(b"a", GuardedOp::Unwrap).is_ok());
    }

    #[test]
    fn rate_limited_calls_fail_retryable() {
        let guard = UnwrapGuard::new(Duration::ZERO, 100, Some(2));
        assert!(guard.admit(b"x", GuardedOp::Unwrap).is_ok());
        assert!(guard.admit(b"y", GuardedOp::Unwrap).is_ok());
        match guard.admit(b"z", GuardedOp::Unwrap) {
            Err(Refusal::RateLimited(e)) => assert!(e.is_retryable()),
            other => panic!("{other:?}"),
        }
    }
}
