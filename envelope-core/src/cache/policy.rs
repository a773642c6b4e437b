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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    enabled: bool,
    max_age: Duration,
    max_messages: u64,
    max_bytes: u64,
    decrypt_ttl: Duration,
    decrypt_capacity: u64,
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
        }
    }
}

impl CachePolicy {
    /// No caching: every encrypt generates a DEK and every decrypt unwraps one.
    pub fn disabled() -> Self {
        CachePolicy {
            enabled: false,
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
        if self.decrypt_ttl.is_zero() || self.decrypt_capacity == 0 {
            return Err(Error::InvalidConfig(
                "cache decrypt_ttl and decrypt_capacity must be positive".into(),
            ));
        }
        Ok(())
    }
}
