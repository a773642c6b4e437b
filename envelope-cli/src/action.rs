//! What a job does to one batch of stored values: rewrap (header only) or re-encrypt (new
//! DEK, new body), with each value's outcome classified.

use std::collections::HashSet;

use std::sync::Arc;

use envelope::{Envelope, ErrorKind, LabelCheck, compact};

use crate::census::unreadable_kind;
use crate::dekstore::StoreHeaders;
use crate::labels::{LabelVerifier, Verdict};
use crate::value::{Form, Stored};

/// Which job.
#[derive(Debug, Clone)]
pub enum JobKind {
    /// Move stale DEKs to the current KEK version, header only.
    Rewrap,
    /// New DEK and body for the values the filter selects.
    Reencrypt(Filter),
}

impl JobKind {
    /// `rewrap` or `reencrypt`.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Rewrap => "rewrap",
            JobKind::Reencrypt(_) => "reencrypt",
        }
    }
}

/// Which ciphertexts `reencrypt` replaces.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// DEK fingerprints (any matches); empty: no DEK condition.
    pub deks: HashSet<String>,
    /// KEK version labels (any matches); empty: no version condition.
    pub kek_versions: HashSet<String>,
}

impl Filter {
    fn selects(&self, info: &envelope::HeaderInfo) -> bool {
        (self.deks.is_empty() || self.deks.contains(&info.dek_fingerprint))
            && (self.kek_versions.is_empty() || self.kek_versions.contains(&info.key_version))
    }
}

/// One stored value to process.
#[derive(Debug)]
pub struct Item {
    /// Where it is (primary key, file path), for messages.
    pub location: String,
    /// The decoded value, or why it is not an envelope ciphertext.
    pub stored: Result<Stored, envelope::Error>,
    /// The AAD it was encrypted with (re-encryption only), or why it cannot be rebuilt.
    pub aad: Result<Vec<u8>, String>,
}

/// What happened to one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new value to store (encoded in the store's form).
    Changed(Vec<u8>),
    /// Already under the current version (rewrap).
    Current,
    /// Not selected by the filter (reencrypt), or a compact value (rewrap: its DEK
    /// rotates in the DEK store, the value never changes).
    Skipped,
    /// Left untouched, for this reason (an error kind, `mislabeled`, `aad_template`).
    Failed(&'static str),
}

/// A KMS failure that stops the job (retryable: the KMS is unreachable, throttling,
/// timing out). Nothing of the current batch has been written.
#[derive(Debug)]
pub struct Stop(pub envelope::Error);

/// Processes batches for one job.
pub struct Processor {
    envelope: Envelope,
    kind: JobKind,
    verifier: LabelVerifier,
    store: Option<Arc<StoreHeaders>>,
}

impl Processor {
    /// A processor whose envelope targets the key's current version.
    pub fn new(envelope: Envelope, kind: JobKind) -> Self {
        let verifier = LabelVerifier::new(envelope.kms().clone());
        let store = envelope
            .dek_store()
            .map(|s| Arc::new(StoreHeaders::new(s.clone())));
        Processor {
            envelope,
            kind,
            verifier,
            store,
        }
    }

    /// The job kind.
    pub fn kind(&self) -> &JobKind {
        &self.kind
    }

    /// The envelope (for its KMS call counters).
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The outcome of every item, in order; a [`Stop`] when the KMS fails retryably.
    pub async fn process(&self, items: &[&Item]) -> Result<Vec<Outcome>, Stop> {
        let mut outcomes = vec![Outcome::Skipped; items.len()];
        let mut pending = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let stored = match &item.stored {
                Ok(s) => s,
                Err(e) => {
                    outcomes[i] = Outcome::Failed(e.kind().as_str());
                    continue;
                }
            };
            if matches!(self.kind, JobKind::Rewrap)
                && compact::inspect_compact(&stored.binary).is_ok()
            {
                // Nothing to do in the value: its DEK's row rotates with --dek-store.
                outcomes[i] = Outcome::Skipped;
                continue;
            }
            let info = match crate::dekstore::header(&stored.binary, self.store.as_deref()).await {
                Ok(info) => info,
                Err(e) if e.is_retryable() => return Err(Stop(e)),
                Err(e) => {
                    outcomes[i] = Outcome::Failed(unreadable_kind(&e));
                    continue;
                }
            };
            if matches!(info.label, LabelCheck::Mislabeled { .. }) {
                outcomes[i] = Outcome::Failed("mislabeled");
                continue;
            }
            match &self.kind {
                JobKind::Rewrap => pending.push(i),
                JobKind::Reencrypt(filter) if filter.selects(&info) => pending.push(i),
                JobKind::Reencrypt(_) => outcomes[i] = Outcome::Skipped,
            }
        }
        match &self.kind {
            JobKind::Rewrap => self.rewrap(items, &pending, &mut outcomes).await?,
            JobKind::Reencrypt(_) => self.reencrypt(items, &pending, &mut outcomes).await?,
        }
        Ok(outcomes)
    }

    async fn rewrap(
        &self,
        items: &[&Item],
        pending: &[usize],
        outcomes: &mut [Outcome],
    ) -> Result<(), Stop> {
        let binaries: Vec<&[u8]> = pending
            .iter()
            .filter_map(|&i| items[i].stored.as_ref().ok().map(|s| s.binary.as_slice()))
            .collect();
        let results = self.envelope.rewrap_many(&binaries).await;
        for ((&i, binary), result) in pending.iter().zip(&binaries).zip(results) {
            let form = items[i].stored.as_ref().map_or(Form::Binary, |s| s.form);
            outcomes[i] = match result {
                Ok(r) if r.changed => Outcome::Changed(Stored::encode(form, &r.ciphertext)),
                Ok(_) => Outcome::Current,
                Err(e) => self.failure(binary, e).await?,
            };
        }
        Ok(())
    }

    async fn reencrypt(
        &self,
        items: &[&Item],
        pending: &[usize],
        outcomes: &mut [Outcome],
    ) -> Result<(), Stop> {
        for &i in pending {
            let Ok(stored) = &items[i].stored else {
                continue;
            };
            let Ok(aad) = &items[i].aad else {
                outcomes[i] = Outcome::Failed("aad_template");
                continue;
            };
            outcomes[i] = match self.envelope.reencrypt(&stored.binary, aad).await {
                Ok(new) => Outcome::Changed(Stored::encode(stored.form, &new)),
                Err(e) => self.failure(&stored.binary, e).await?,
            };
        }
        Ok(())
    }

    /// The wrapped DEK a value decrypts through (a compact value's: its store row's, with
    /// the row).
    async fn wrapped(
        &self,
        binary: &[u8],
    ) -> envelope::Result<(envelope::WrappedDek, Option<envelope::compact::StoredDek>)> {
        match &self.store {
            Some(store) => store.source(binary).await,
            None => Ok((envelope::format::wrapped_dek(binary)?, None)),
        }
    }

    /// Classifies a failed value: a stop for retryable errors, `mislabeled` when the DEK
    /// opens under another version than its label, else the error's kind.
    async fn failure(&self, binary: &[u8], e: envelope::Error) -> Result<Outcome, Stop> {
        if e.is_retryable() {
            return Err(Stop(e));
        }
        let kind = e.kind();
        if matches!(
            kind,
            ErrorKind::DecryptionFailed | ErrorKind::KeyVersionNotFound
        ) && let Ok((wrapped, row)) = self.wrapped(binary).await
            && wrapped.check_label() == LabelCheck::BoundByWrap
        {
            // One unwrap per distinct DEK (memoized): a wrong AAD leaves the label verified.
            match self.verifier.verdict(&wrapped, row.as_ref()).await {
                Ok(Some(Verdict::Mislabeled { .. })) => return Ok(Outcome::Failed("mislabeled")),
                Ok(_) => {}
                Err(e) => return Err(Stop(e)),
            }
        }
        Ok(Outcome::Failed(kind.as_str()))
    }
}
