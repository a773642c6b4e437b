//! `--max-rate`: a [`Kms`] that spaces its calls to at most N per second.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use envelope::{
    Dek, EncryptionContext, GeneratedDek, KeyDescription, Kms, Provider, Result, WrappedDek,
};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces the calls of the KMS it wraps at least `1/rate` seconds apart, across tasks.
#[derive(Debug)]
pub struct RateLimitedKms {
    inner: Arc<dyn Kms>,
    interval: Duration,
    next_slot: Mutex<Instant>,
}

impl RateLimitedKms {
    /// Wraps `inner` at `calls_per_second` (> 0).
    pub fn new(inner: Arc<dyn Kms>, calls_per_second: f64) -> Self {
        RateLimitedKms {
            inner,
            interval: Duration::from_secs_f64(1.0 / calls_per_second),
            next_slot: Mutex::new(Instant::now()),
        }
    }

    async fn wait_turn(&self) {
        let slot = {
            let mut next = self.next_slot.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[async_trait]
impl Kms for RateLimitedKms {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }

    async fn wrap_dek(
        &self,
        key_id: &str,
        dek: &Dek,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        self.wait_turn().await;
        self.inner.wrap_dek(key_id, dek, context).await
    }

    async fn unwrap_dek(&self, wrapped: &WrappedDek, context: &EncryptionContext) -> Result<Dek> {
        self.wait_turn().await;
        self.inner.unwrap_dek(wrapped, context).await
    }

    async fn describe_key(&self, key_id: &str) -> Result<KeyDescription> {
        self.wait_turn().await;
        self.inner.describe_key(key_id).await
    }

    async fn generate_dek(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDek> {
        self.wait_turn().await;
        self.inner.generate_dek(key_id, context).await
    }

    async fn rewrap_dek(
        &self,
        wrapped: &WrappedDek,
        target_key_id: &str,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        self.wait_turn().await;
        self.inner.rewrap_dek(wrapped, target_key_id, context).await
    }

    fn supports_batch_rewrap(&self) -> bool {
        self.inner.supports_batch_rewrap()
    }

    async fn rewrap_dek_batch(
        &self,
        wrapped: &[WrappedDek],
        target_key_id: &str,
        contexts: &[EncryptionContext],
    ) -> Result<Vec<Result<WrappedDek>>> {
        if !self.inner.supports_batch_rewrap() {
            // One call per DEK, each in its turn.
            return envelope::kms::rewrap_each(self, wrapped, target_key_id, contexts).await;
        }
        self.wait_turn().await;
        self.inner
            .rewrap_dek_batch(wrapped, target_key_id, contexts)
            .await
    }
}
