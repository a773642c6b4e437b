//! The rotation API: rewrap (header only), re-encrypt (new DEK), the DEK store's rows
//! moved to the current KEK version, and the key's description.

use super::audited::Subject;
use super::{Envelope, Inner};
use crate::audit::KeyOperation;
use std::sync::Arc;

use crate::cache::GuardedOp;
use crate::compact::{self, StoredDek, binding_context};
use crate::error::{Error, Result};
use crate::format::{self, Parsed};
use crate::kms::{EncryptionContext, KeyDescription, Kms, KmsExt, WrappedDek};
use crate::stats::{Counters, KmsOp};
use crate::suite::DataKey;

#[derive(Debug)]
pub(super) struct RewrapOutcome {
    /// The new KEK reference, or `None` when the DEK is already under the current version.
    pub(super) new_ref: Option<Box<[u8]>>,
    pub(super) key_version: String,
}

/// The result of [`Envelope::rewrap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrapped {
    /// The ciphertext under the current KEK version (the input itself when unchanged).
    pub ciphertext: Vec<u8>,
    /// Whether the header changed.
    pub changed: bool,
    /// The KEK version before.
    pub from_version: String,
    /// The KEK version after.
    pub to_version: String,
}

impl Envelope {
    /// Moves a ciphertext's DEK to the current version of this envelope's KEK, touching only
    /// the header: the nonce, commitment and body bytes stay identical. A ciphertext already
    /// under the current version comes back unchanged. One KMS call per distinct DEK (results
    /// are reused for the cache's `max_age`).
    ///
    /// A stream (format version 4), whole or its header alone, comes back with one header
    /// slot rewritten ([`Envelope::rewrap_stream`] says which bytes); its segments are not
    /// read.
    ///
    /// A compact ciphertext carries no KEK reference: it is refused with
    /// [`Error::InvalidConfig`]; rotate its DEK store instead ([`Envelope::rewrap_wrapped`],
    /// `envelope rewrap --dek-store`).
    pub async fn rewrap(&self, ciphertext: &[u8]) -> Result<Rewrapped> {
        if compact::is_compact(ciphertext) {
            return Err(Error::InvalidConfig(
                "a compact ciphertext has no KEK reference to rewrap: rotate its DEK store (envelope rewrap --dek-store)".into(),
            ));
        }
        if crate::stream::is_stream(ciphertext) {
            return self.rewrap_stream_bytes(ciphertext).await;
        }
        let parsed = format::parse(ciphertext)?;
        let outcome = self.inner.rewrap_outcome_of(&parsed).await?;
        Ok(match &outcome.new_ref {
            None => Rewrapped {
                ciphertext: ciphertext.to_vec(),
                changed: false,
                from_version: parsed.key_version()?.to_owned(),
                to_version: outcome.key_version.clone(),
            },
            Some(new_ref) => Rewrapped {
                ciphertext: format::replace_kek_ref(&parsed, new_ref),
                changed: true,
                from_version: parsed.key_version()?.to_owned(),
                to_version: outcome.key_version.clone(),
            },
        })
    }

    /// [`Envelope::rewrap`] for many ciphertexts, results in input order. The DEKs not yet
    /// in the rewrap memo are rewrapped in one KMS request where the service has a batch
    /// rewrap ([`Kms::rewrap_dek_batch`], e.g. Vault's `batch_input`); otherwise one call per
    /// distinct DEK, as [`Envelope::rewrap`] makes.
    pub async fn rewrap_many(&self, ciphertexts: &[&[u8]]) -> Vec<Result<Rewrapped>> {
        if self.inner.policy.is_enabled() {
            self.inner.prefetch_rewraps(ciphertexts).await;
        }
        let mut out = Vec::with_capacity(ciphertexts.len());
        for ciphertext in ciphertexts {
            out.push(self.rewrap(ciphertext).await);
        }
        out
    }

    /// [`Envelope::rewrap`] for the text form.
    pub async fn rewrap_text(&self, ciphertext: &str) -> Result<(String, bool)> {
        let rewrapped = self.rewrap(&format::from_text(ciphertext)?).await?;
        let changed = rewrapped.changed;
        let text = if changed {
            format::to_text(&rewrapped.ciphertext)
        } else {
            ciphertext.to_owned()
        };
        Ok((text, changed))
    }

    /// Decrypts and encrypts again under a new DEK (new nonce, new body), for when a DEK may
    /// have been exposed. `aad` must equal the original encryption's and is kept. A stream
    /// held in memory comes back as a stream with the same segment size (large streams are
    /// re-encrypted through a reader and a writer, as `envelope reencrypt --dir` does).
    pub async fn reencrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let plaintext = zeroize::Zeroizing::new(self.decrypt(ciphertext, aad).await?);
        // Never re-encrypt under the DEK being replaced: retire it if it is the active one.
        if crate::stream::is_stream(ciphertext) {
            let header = crate::stream::StreamHeader::parse(ciphertext)?;
            let kek_ref = header.current_slot().kek_ref;
            self.inner
                .active
                .retire_if(|active| *active.kek_ref == *kek_ref);
            return self
                .encrypt_stream_in_memory(&plaintext, aad, header.segment_size)
                .await;
        }
        if compact::is_compact(ciphertext) {
            let id = compact::parse(ciphertext)?.dek_id;
            self.inner
                .active
                .retire_if(|active| active.dek_id == Some(id));
        } else {
            let parsed = format::parse(ciphertext)?;
            self.inner
                .active
                .retire_if(|active| *active.kek_ref == *parsed.kek_ref);
        }
        self.encrypt(&plaintext, aad).await
    }

    /// Describes this envelope's KEK (current version, versions, rotation state) through
    /// the KMS. Counted as a KMS call.
    pub async fn describe_key(&self) -> Result<KeyDescription> {
        let inner = &self.inner;
        inner
            .kms(
                KmsOp::Describe,
                KeyOperation::Describe,
                &inner.key_id,
                Subject::default(),
                inner.kms.describe_key(&inner.key_id),
            )
            .await
    }

    /// Moves DEK store rows' wrapped DEKs to the current version of this envelope's KEK (the
    /// DEK store's rotation), results in input order: `Ok(None)` when a row's DEK is already
    /// under the current version, `Ok(Some(new))` when it moved. Every new wrap is bound to
    /// its row ([`compact::binding_context`]); a row written before rows were bound is
    /// unwrapped and wrapped again (bound) whatever its version. One KMS request for the
    /// bound rows where the service has a batch rewrap ([`Kms::rewrap_dek_batch`]), else one
    /// call per DEK. Nothing is cached: each call asks the KMS.
    pub async fn rewrap_wrapped(&self, rows: &[StoredDek]) -> Vec<Result<Option<WrappedDek>>> {
        let inner = &self.inner;
        let moved = |old: &WrappedDek, new: WrappedDek| -> Result<Option<WrappedDek>> {
            inner.kms.check_owned(&new)?;
            Ok((!Inner::same_version(old, &new)).then_some(new))
        };
        let bound_context =
            |row: &StoredDek| binding_context(&inner.context, row.id, row.suite, &row.commitment);
        // Another provider's DEKs fail alone; this KMS's go to it together.
        let mut out: Vec<Option<Result<Option<WrappedDek>>>> = rows
            .iter()
            .map(|r| inner.kms.check_owned(&r.wrapped).err().map(Err))
            .collect();
        let batchable: Vec<usize> = (0..rows.len())
            .filter(|&i| out[i].is_none() && rows[i].bound)
            .collect();
        if batchable.len() >= 2 && inner.kms.supports_batch_rewrap() {
            let batch: Vec<WrappedDek> =
                batchable.iter().map(|&i| rows[i].wrapped.clone()).collect();
            let contexts: Vec<EncryptionContext> =
                batchable.iter().map(|&i| bound_context(&rows[i])).collect();
            let request = inner.kms.rewrap_dek_batch(&batch, &inner.key_id, &contexts);
            let subject = Subject {
                count: batch.len() as u64,
                ..Subject::default()
            };
            if let Ok(items) = inner
                .kms(
                    KmsOp::Rewrap,
                    KeyOperation::Rewrap,
                    &inner.key_id,
                    subject,
                    request,
                )
                .await
                && items.len() == batchable.len()
            {
                for (&i, item) in batchable.iter().zip(items) {
                    out[i] = Some(item.and_then(|new| moved(&rows[i].wrapped, new)));
                }
            }
        }
        for (row, slot) in rows.iter().zip(out.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            let context = bound_context(row);
            *slot = Some(if row.bound {
                inner
                    .kms(
                        KmsOp::Rewrap,
                        KeyOperation::Rewrap,
                        &row.wrapped.key_id,
                        Subject::wrapped(&row.wrapped, &row.commitment, Some(row.id.get())),
                        inner.kms.rewrap_dek(&row.wrapped, &inner.key_id, &context),
                    )
                    .await
                    .and_then(|new| moved(&row.wrapped, new))
            } else {
                inner.bind_unbound(row, &context).await.map(Some)
            });
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| unreachable!("every slot is filled above")))
            .collect()
    }
}

impl Envelope {
    /// [`Envelope::rewrap`] of a stream (or its header alone): the same bytes with the new
    /// slot written.
    async fn rewrap_stream_bytes(&self, bytes: &[u8]) -> Result<Rewrapped> {
        let rewrap = self.rewrap_stream(bytes).await?;
        let mut ciphertext = bytes.to_vec();
        let changed = rewrap.write.is_some();
        if let Some(write) = rewrap.write {
            let at = write.offset as usize;
            ciphertext[at..at + write.bytes.len()].copy_from_slice(&write.bytes);
        }
        Ok(Rewrapped {
            ciphertext,
            changed,
            from_version: rewrap.from_version,
            to_version: rewrap.to_version,
        })
    }
}

impl Inner {
    /// The rewrap of one KEK reference: from the memo, or one KMS call (single flight).
    pub(super) async fn rewrap_outcome_of(
        &self,
        parsed: &Parsed<'_>,
    ) -> Result<Arc<RewrapOutcome>> {
        if self.policy.is_enabled() {
            if let Some(hit) = self.rewraps.get(parsed.kek_ref) {
                Counters::bump(&self.counters.rewrap_hits);
                return Ok(hit);
            }
            Counters::bump(&self.counters.rewrap_misses);
            self.rewraps
                .get_or_load(
                    parsed.kek_ref,
                    || Box::from(parsed.kek_ref),
                    || self.rewrap_ref(parsed),
                )
                .await
        } else {
            Counters::bump(&self.counters.rewrap_misses);
            self.rewrap_ref(parsed).await
        }
    }

    /// Binds a row written before rows were bound to their ids: unwraps its DEK under the
    /// envelope's context, checks it against the row's commitment, and wraps it under the
    /// current KEK version and the row's binding `context`.
    pub(super) async fn bind_unbound(
        &self,
        row: &StoredDek,
        context: &EncryptionContext,
    ) -> Result<WrappedDek> {
        let subject = || Subject::wrapped(&row.wrapped, &row.commitment, Some(row.id.get()));
        let dek = self
            .kms(
                KmsOp::Unwrap,
                KeyOperation::Unwrap,
                &row.wrapped.key_id,
                subject(),
                self.kms.unwrap_dek(&row.wrapped, &self.context),
            )
            .await?;
        if !DataKey::new(self.provider, row.suite, &dek).commitment_matches(&row.commitment) {
            return Err(Error::DecryptionFailed);
        }
        let new = self
            .kms(
                KmsOp::Rewrap,
                KeyOperation::Wrap,
                &self.key_id,
                Subject {
                    version: None,
                    ..subject()
                },
                self.kms.wrap_dek(&self.key_id, &dek, context),
            )
            .await?;
        self.kms.check_owned(&new)?;
        Ok(new)
    }

    pub(super) async fn rewrap_ref(&self, parsed: &Parsed<'_>) -> Result<Arc<RewrapOutcome>> {
        let wrapped = parsed.wrapped()?;
        self.kms.check_owned(&wrapped)?;
        self.admit(parsed.kek_ref, GuardedOp::Rewrap)?;
        let new = self
            .kms(
                KmsOp::Rewrap,
                KeyOperation::Rewrap,
                &wrapped.key_id,
                Subject::wrapped(&wrapped, parsed.commitment, None),
                self.kms.rewrap_dek(&wrapped, &self.key_id, &self.context),
            )
            .await
            .inspect_err(|e| self.guard.remember(parsed.kek_ref, GuardedOp::Rewrap, e))?;
        Self::rewrap_outcome(&*self.kms, &wrapped, new)
    }

    /// Rewraps the distinct DEKs of `ciphertexts` that the memo lacks in one batch request,
    /// when the KMS has one, and stores the outcomes in the memo (failures in the guard).
    pub(super) async fn prefetch_rewraps(&self, ciphertexts: &[&[u8]]) {
        let mut seen = std::collections::HashSet::new();
        let mut refs = Vec::new();
        let mut wrapped = Vec::new();
        for ciphertext in ciphertexts {
            let parsed = if crate::stream::is_stream(ciphertext) {
                crate::stream::StreamHeader::parse(ciphertext).and_then(|h| h.key_source())
            } else {
                format::parse(ciphertext)
            };
            let Ok(parsed) = parsed else {
                continue;
            };
            if self.rewraps.get(parsed.kek_ref).is_some() || !seen.insert(parsed.kek_ref) {
                continue;
            }
            let Ok(w) = parsed.wrapped() else { continue };
            if self.kms.check_owned(&w).is_err()
                || self.guard.admit(parsed.kek_ref, GuardedOp::Rewrap).is_err()
            {
                continue;
            }
            refs.push(parsed.kek_ref);
            wrapped.push(w);
        }
        if wrapped.len() < 2 || !self.kms.supports_batch_rewrap() {
            return;
        }
        let contexts = vec![self.context.clone(); wrapped.len()];
        let batch = self.kms.rewrap_dek_batch(&wrapped, &self.key_id, &contexts);
        let subject = Subject {
            count: wrapped.len() as u64,
            ..Subject::default()
        };
        let Ok(items) = self
            .kms(
                KmsOp::Rewrap,
                KeyOperation::Rewrap,
                &self.key_id,
                subject,
                batch,
            )
            .await
        else {
            return;
        };
        for ((kek_ref, old), item) in refs.into_iter().zip(&wrapped).zip(items) {
            match item.and_then(|new| Self::rewrap_outcome(&*self.kms, old, new)) {
                Ok(outcome) => self.rewraps.insert(Box::from(kek_ref), outcome),
                Err(e) => self.guard.remember(kek_ref, GuardedOp::Rewrap, &e),
            }
        }
    }

    /// Whether a rewrap left the DEK under the version it was under (a KMS that reports no
    /// version never says so: the rewrap counts as a move).
    pub(super) fn same_version(old: &WrappedDek, new: &WrappedDek) -> bool {
        !new.key_version.is_empty()
            && new.key_id == old.key_id
            && new.key_version == old.key_version
    }

    pub(super) fn rewrap_outcome(
        kms: &dyn Kms,
        wrapped: &WrappedDek,
        new: WrappedDek,
    ) -> Result<Arc<RewrapOutcome>> {
        kms.check_owned(&new)?;
        let new_ref = if Self::same_version(wrapped, &new) {
            None
        } else {
            Some(format::encode_kek_ref(&new)?.into_boxed_slice())
        };
        Ok(Arc::new(RewrapOutcome {
            new_ref,
            key_version: new.key_version,
        }))
    }
}
