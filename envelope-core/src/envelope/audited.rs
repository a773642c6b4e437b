//! KMS calls counted, traced and reported to the key-use log; cached keys that carry the
//! log's counters.

use super::Inner;
use std::sync::Arc;

use crate::audit::{DekRef, DekUsage, KeyOperation, KmsUse, TrackedDek};
use crate::cache::CachedKey;
use crate::clock;
use crate::error::Result;
use crate::format::fingerprint;
use crate::kms::{GeneratedDek, KeyDescription, WrappedDek};
use crate::secret::Dek;
use crate::stats::KmsOp;
use crate::suite::DataKey;

/// What a KMS call concerns, known before it is made.
#[derive(Debug, Default)]
pub(super) struct Subject {
    /// The key version the call reads (unwrap, rewrap: the version moved from).
    pub version: Option<String>,
    /// The DEK, when known before the call.
    pub dek: Option<DekRef>,
    /// DEKs the call covers (a batch), 1 when zero.
    pub count: u64,
}

impl Subject {
    /// A call on one wrapped DEK whose commitment (and store id) is known.
    pub(super) fn wrapped(wrapped: &WrappedDek, commitment: &[u8], id: Option<u64>) -> Self {
        Subject {
            version: Some(wrapped.key_version.clone()),
            dek: Some(dek_ref(commitment, id)),
            count: 1,
        }
    }
}

/// The DEK reference the log writes: its fingerprint and store id.
pub(super) fn dek_ref(commitment: &[u8], id: Option<u64>) -> DekRef {
    DekRef {
        fingerprint: fingerprint(commitment),
        id,
    }
}

/// What a KMS call's result says for the log.
pub(super) trait KmsFacts {
    /// The key version the call produced (the wrap's version, the current one).
    fn produced_version(&self) -> Option<&str> {
        None
    }
    /// The DEK the call produced.
    fn produced_dek(&self) -> Option<DekRef> {
        None
    }
}

impl KmsFacts for WrappedDek {
    fn produced_version(&self) -> Option<&str> {
        Some(&self.key_version)
    }
}

impl KmsFacts for (GeneratedDek, DataKey) {
    fn produced_version(&self) -> Option<&str> {
        Some(&self.0.wrapped.key_version)
    }
    fn produced_dek(&self) -> Option<DekRef> {
        Some(dek_ref(self.1.commitment(), None))
    }
}

impl KmsFacts for Dek {}

impl KmsFacts for KeyDescription {
    fn produced_version(&self) -> Option<&str> {
        self.current_version.as_deref()
    }
}

impl KmsFacts for Vec<Result<WrappedDek>> {}

impl Inner {
    /// Whether operations may go on under the key-use log's failure policy.
    #[inline]
    pub(super) fn admit_log(&self) -> Result<()> {
        match &self.audit {
            Some(audit) => audit.log.admit(),
            None => Ok(()),
        }
    }

    /// Runs one KMS call: counted as `counted`, traced, and reported to the key-use log as
    /// `operation` on `key_id`. With a fail-closed log that cannot record, a call that
    /// succeeded fails with [`crate::Error::AuditLog`].
    pub(super) async fn kms<T: KmsFacts>(
        &self,
        counted: KmsOp,
        operation: KeyOperation,
        key_id: &str,
        subject: Subject,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let result = self.counters.kms_call(counted, key_id, call).await;
        let Some(audit) = &self.audit else {
            return result;
        };
        let produced = result.as_ref().ok().and_then(|r| r.produced_version());
        let (key_version, to_version) = match operation {
            KeyOperation::Rewrap => (subject.version, produced.map(str::to_owned)),
            _ => (
                subject.version.or_else(|| produced.map(str::to_owned)),
                None,
            ),
        };
        let dek = subject
            .dek
            .or_else(|| result.as_ref().ok().and_then(|r| r.produced_dek()));
        audit.log.record_kms(KmsUse {
            operation,
            provider: self.kms.provider(),
            key_id: key_id.to_owned(),
            key_version,
            to_version,
            dek,
            count: subject.count.max(1),
            outcome: result.as_ref().map(|_| ()).map_err(|e| e.kind()),
            label: audit.label.clone(),
        })?;
        result
    }

    /// A cached key, carrying the key-use log's counters (registered with the log) when
    /// the envelope has one.
    pub(super) fn cached_key(
        &self,
        key: DataKey,
        id: Option<u64>,
        wrapped: &WrappedDek,
    ) -> Arc<CachedKey> {
        let usage = self.audit.as_ref().map(|audit| {
            let usage = Arc::new(DekUsage::default());
            audit.log.track(
                TrackedDek {
                    dek: dek_ref(key.commitment(), id),
                    provider: self.kms.provider(),
                    key_id: wrapped.key_id.clone(),
                    key_version: wrapped.key_version.clone(),
                    label: audit.label.clone(),
                },
                usage.clone(),
            );
            usage
        });
        Arc::new(CachedKey {
            key,
            expires: clock::deadline(self.policy.decrypt_ttl()),
            usage,
        })
    }
}
