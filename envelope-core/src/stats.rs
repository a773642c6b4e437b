//! Counters an envelope keeps: KMS calls by operation, cache hits and misses, DEKs created.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::Result;

/// The KMS operations an envelope performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KmsOp {
    Generate,
    Unwrap,
    Rewrap,
    Describe,
}

impl KmsOp {
    fn name(self) -> &'static str {
        match self {
            KmsOp::Generate => "generate_dek",
            KmsOp::Unwrap => "unwrap_dek",
            KmsOp::Rewrap => "rewrap_dek",
            KmsOp::Describe => "describe_key",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    kms_generate: AtomicU64,
    kms_unwrap: AtomicU64,
    kms_rewrap: AtomicU64,
    kms_describe: AtomicU64,
    kms_failures: AtomicU64,
    pub encrypt_hits: AtomicU64,
    pub encrypt_misses: AtomicU64,
    pub decrypt_hits: AtomicU64,
    pub decrypt_misses: AtomicU64,
    pub rewrap_hits: AtomicU64,
    pub rewrap_misses: AtomicU64,
    pub deks_created: AtomicU64,
    pub unwraps_remembered: AtomicU64,
    pub unwraps_rate_limited: AtomicU64,
    pub dek_store_reads: AtomicU64,
    pub dek_store_writes: AtomicU64,
}

impl Counters {
    /// Runs one KMS call, counting it and emitting one `tracing` event with the key id,
    /// operation, outcome and latency (never key material).
    pub(crate) async fn kms_call<T>(
        &self,
        op: KmsOp,
        key_id: &str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.counter(op).fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = call.await;
        self.trace(op, key_id, started, &result);
        result
    }

    fn counter(&self, op: KmsOp) -> &AtomicU64 {
        match op {
            KmsOp::Generate => &self.kms_generate,
            KmsOp::Unwrap => &self.kms_unwrap,
            KmsOp::Rewrap => &self.kms_rewrap,
            KmsOp::Describe => &self.kms_describe,
        }
    }

    fn trace<T>(&self, op: KmsOp, key_id: &str, started: Instant, result: &Result<T>) {
        let latency_us = started.elapsed().as_micros() as u64;
        match result {
            Ok(_) => tracing::debug!(
                target: "envelope::kms",
                operation = op.name(),
                key_id,
                outcome = "ok",
                latency_us,
                "KMS call"
            ),
            Err(e) => {
                self.kms_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "envelope::kms",
                    operation = op.name(),
                    key_id,
                    outcome = e.kind().as_str(),
                    latency_us,
                    "KMS call failed"
                )
            }
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, active: Option<ActiveDekStats>) -> EnvelopeStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EnvelopeStats {
            kms_generate_calls: l(&self.kms_generate),
            kms_unwrap_calls: l(&self.kms_unwrap),
            kms_rewrap_calls: l(&self.kms_rewrap),
            kms_describe_calls: l(&self.kms_describe),
            kms_failures: l(&self.kms_failures),
            encrypt_cache_hits: l(&self.encrypt_hits),
            encrypt_cache_misses: l(&self.encrypt_misses),
            decrypt_cache_hits: l(&self.decrypt_hits),
            decrypt_cache_misses: l(&self.decrypt_misses),
            rewrap_cache_hits: l(&self.rewrap_hits),
            rewrap_cache_misses: l(&self.rewrap_misses),
            deks_created: l(&self.deks_created),
            unwraps_refused_remembered: l(&self.unwraps_remembered),
            unwraps_refused_rate_limited: l(&self.unwraps_rate_limited),
            dek_store_reads: l(&self.dek_store_reads),
            dek_store_writes: l(&self.dek_store_writes),
            active_dek: active,
        }
    }
}

/// Usage of the DEK currently used for encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveDekStats {
    /// The KEK version that wrapped it.
    pub key_version: String,
    /// Messages encrypted (reserved) under it.
    pub messages: u64,
    /// Plaintext bytes encrypted (reserved) under it.
    pub bytes: u64,
    /// How long it has been active.
    pub age: Duration,
}

/// A snapshot of an envelope's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnvelopeStats {
    /// `generate_dek` calls made to the KMS.
    pub kms_generate_calls: u64,
    /// `unwrap_dek` calls made to the KMS.
    pub kms_unwrap_calls: u64,
    /// `rewrap_dek` calls made to the KMS.
    pub kms_rewrap_calls: u64,
    /// `describe_key` calls made to the KMS.
    pub kms_describe_calls: u64,
    /// KMS calls that failed.
    pub kms_failures: u64,
    /// Encryptions served by the active DEK.
    pub encrypt_cache_hits: u64,
    /// Encryptions that needed a new DEK.
    pub encrypt_cache_misses: u64,
    /// Decryptions whose DEK was cached.
    pub decrypt_cache_hits: u64,
    /// Decryptions that needed an unwrap (or waited for one in flight).
    pub decrypt_cache_misses: u64,
    /// Rewraps served from the rewrap memo.
    pub rewrap_cache_hits: u64,
    /// Rewraps that needed a KMS call (or waited for one in flight).
    pub rewrap_cache_misses: u64,
    /// DEKs generated for encryption.
    pub deks_created: u64,
    /// Unwraps and rewraps answered from the negative cache (the same KEK reference failed
    /// recently), without a KMS call.
    pub unwraps_refused_remembered: u64,
    /// Unwraps and rewraps refused by the envelope's rate limit, without a KMS call.
    pub unwraps_refused_rate_limited: u64,
    /// DEK store rows read (compact form: one per DEK id not cached).
    pub dek_store_reads: u64,
    /// DEK store rows written (compact form: one per new DEK).
    pub dek_store_writes: u64,
    /// The active encryption DEK, if any.
    pub active_dek: Option<ActiveDekStats>,
}

impl EnvelopeStats {
    /// All KMS calls made.
    pub fn kms_calls(&self) -> u64 {
        self.kms_generate_calls
            + self.kms_unwrap_calls
            + self.kms_rewrap_calls
            + self.kms_describe_calls
    }
}
