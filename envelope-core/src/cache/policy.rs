//! How long and how much one DEK may be used, and how long unwrapped DEKs are kept.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::suite::Suite;

/// The DEK cache policy of an [`Envelope`](crate::Envelope).
///
/// Defaults and why:
/// - `max_age` 5 minutes: a fresh DEK costs one KMS call, so even a busy service makes 12
///   generate calls an hour; and a KEK rotation reaches new ciphertexts within 5 minutes.
/// - `max_messages` 2^32: NIST SP 800-38D's bound for AES-GCM with random 96-bit nonces
///   (the policy refuses anything higher for that suite).
/// - `max_bytes` 64 GiB (2^32 AES blocks): keeps the PRP/PRF distinguishing advantage of all
///   data under one DEK near 2^-65.
/// - decrypt side: 10,000 unwrapped DEKs for at most 10 minutes, so that disabling or
///   destroying a KEK version stops decryption in this process within 10 minutes.
/// - negative cache 60 seconds: a KEK reference whose unwrap failed for a lasting reason
///   (not authentic, key or version missing, disabled or destroyed, permission denied) gets
///   the same error without a KMS call for a minute, so repeated junk headers cost one call
///   each a minute. Transient failures (unavailable, throttled) are never remembered.
/// - no unwrap rate limit by default: a cold reader of a large table legitimately unwraps
///   many DEKs at once. Set [`CachePolicy::with_max_unwraps_per_second`] where ciphertexts
///   come from writers you do not trust, to bound the KMS calls distinct junk headers cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    enabled: bool,
    max_age: Duration,
    max_messages: u64,
    max_bytes: u64,
    decrypt_ttl: Duration,
    decrypt_capacity: u64,
    negative_ttl: Duration,
    max_unwraps_per_second: Option<u32>,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            enabled: true,
            max_age: Duration::from_secs(300),
            max_messages: 1 << 32,
            max_bytes: 1 << 36,
            decrypt_ttl: Duration::from_secs(600),
            decrypt_capacity: 10_000,
            negative_ttl: Duration::from_secs(60),
            max_unwraps_per_second: None,
        }
    }
}

impl CachePolicy {
    /// No caching: every encrypt generates a DEK and every decrypt unwraps one (failed
    /// unwraps are not remembered either; a rate limit set with
    /// [`CachePolicy::with_max_unwraps_per_second`] still applies).
    pub fn disabled() -> Self {
        CachePolicy {
            enabled: false,
            negative_ttl: Duration::ZERO,
            ..CachePolicy::default()
        }
    }

    /// How long one DEK encrypts; also the bound on how long after a KEK rotation new
    /// ciphertexts may still name the old version, and how long rewrap results are reused.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// How many messages one DEK encrypts before a new one is generated.
    pub fn with_max_messages(mut self, max_messages: u64) -> Self {
        self.max_messages = max_messages;
        self
    }

    /// How many plaintext bytes one DEK encrypts before a new one is generated. A message
    /// larger than this gets a DEK of its own.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// How long an unwrapped DEK is kept for decryption.
    pub fn with_decrypt_ttl(mut self, ttl: Duration) -> Self {
        self.decrypt_ttl = ttl;
        self
    }

    /// How many unwrapped DEKs are kept for decryption.
    pub fn with_decrypt_capacity(mut self, capacity: u64) -> Self {
        self.decrypt_capacity = capacity;
        self
    }

    /// How long a KEK reference whose unwrap failed for a lasting reason is answered with
    /// the same error without a KMS call (`Duration::ZERO`: never remembered).
    /// [`Envelope::clear_caches`](crate::Envelope::clear_caches) forgets them at once.
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// At most this many unwrap and rewrap KMS calls a second for the envelope (bursts of
    /// one second's worth); calls past it fail at once with the retryable
    /// [`Error::Throttled`](crate::Error::Throttled), without reaching the KMS. `None`
    /// (the default) sets no limit.
    pub fn with_max_unwraps_per_second(mut self, limit: Option<u32>) -> Self {
        self.max_unwraps_per_second = limit;
        self
    }

    /// See [`CachePolicy::with_negative_ttl`].
    pub fn negative_ttl(&self) -> Duration {
        self.negative_ttl
    }

    /// See [`CachePolicy::with_max_unwraps_per_second`].
    pub fn max_unwraps_per_second(&self) -> Option<u32> {
        self.max_unwraps_per_second
    }

    /// Whether caching is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// See [`CachePolicy::with_max_age`].
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// See [`CachePolicy::with_max_messages`].
    pub fn max_messages(&self) -> u64 {
        self.max_messages
    }

    /// See [`CachePolicy::with_max_bytes`].
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// See [`CachePolicy::with_decrypt_ttl`].
    pub fn decrypt_ttl(&self) -> Duration {
        self.decrypt_ttl
    }

    /// See [`CachePolicy::with_decrypt_capacity`].
    pub fn decrypt_capacity(&self) -> u64 {
        self.decrypt_capacity
    }

    /// Checks the policy against a suite's bounds.
    pub fn validate(&self, suite: Suite) -> Result<()> {
        if self.max_messages == 0 || self.max_bytes == 0 || self.max_age.is_zero() {
            return Err(Error::InvalidConfig(
                "cache max_age, max_messages and max_bytes must be positive (use CachePolicy::disabled() to turn caching off)".into(),
            ));
        }
        if self.max_messages > suite.max_messages_per_dek() {
            return Err(Error::InvalidConfig(format!(
                "max_messages {} exceeds the {} bound of {} messages per DEK",
                self.max_messages,
                suite,
                suite.max_messages_per_dek()
            )));
        }
        if self.max_unwraps_per_second == Some(0) {
            return Err(Error::InvalidConfig(
                "max_unwraps_per_second must be positive (None sets no limit)".into(),
            ));
        }
        if self.decrypt_ttl.is_zero() || self.decrypt_capacity == 0 {
            return Err(Error::InvalidConfig(
                "cache decrypt_ttl and decrypt_capacity must be positive".into(),
            ));
        }
        Ok(())
    }
}
