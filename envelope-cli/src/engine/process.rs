//! What a job does to one page of records: rewrap (header only; a DEK store row's wrapped
//! DEK), or re-encrypt (new DEK, new body), with each record's outcome classified.

use std::collections::HashSet;

use std::sync::Arc;

use envelope::blind_index::BlindIndexes;
use envelope::compact::StoredDek;
use envelope::{Envelope, ErrorKind, LabelCheck, compact};

use crate::engine::census::unreadable_kind;
pub use crate::engine::counts::Outcome;
use crate::engine::headers::StoreHeaders;
use crate::engine::store::{Change, Record, Value};
use crate::labels::{LabelVerifier, Verdict};
use crate::value::Stored;

/// Which job.
#[derive(Debug, Clone)]
pub enum JobKind {
    /// Move stale DEKs to the current KEK version, header only.
    Rewrap,
    /// New DEK and body for the values the filter selects.
    Reencrypt(Filter),
    /// Fill or move each value's blind-index column to the index's active version, from
    /// the decrypted value (the ciphertext stays).
    Reindex(Reindex),
}

/// What `reindex` computes.
#[derive(Debug, Clone)]
pub struct Reindex {
    /// The index keys.
    pub indexes: BlindIndexes,
    /// The index name.
    pub index: String,
}

impl JobKind {
    /// `rewrap` or `reencrypt`.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Rewrap => "rewrap",
            JobKind::Reencrypt(_) => "reencrypt",
            JobKind::Reindex(_) => "reindex",
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

/// The key whose values a job moves, when values under other keys sit beside them (a
/// Parquet tree's footer and column master keys): those are skipped, never moved under
/// this key.
#[derive(Debug, Clone)]
pub struct KeyScope {
    provider: envelope::Provider,
    /// The key's ids: as named, and as the KMS describes it (an AWS alias and its key ARN).
    ids: Vec<String>,
}

impl KeyScope {
    /// The scope of the job's key: its id as named and its id as the KMS describes it.
    pub async fn of(envelope: &Envelope) -> envelope::Result<Self> {
        let described = envelope.describe_key().await?;
        let mut ids = vec![envelope.key_id().to_owned()];
        if described.key_id != ids[0] {
            ids.push(described.key_id);
        }
        Ok(KeyScope {
            provider: envelope.kms().provider(),
            ids,
        })
    }

    fn owns(&self, info: &envelope::HeaderInfo) -> bool {
        info.provider == self.provider && self.ids.contains(&info.key_id)
    }
}

/// A record's outcome and, when it changed, its new value.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The outcome.
    pub outcome: Outcome,
    /// The new value ([`Outcome::Changed`] only).
    pub change: Option<Change>,
}

impl Decision {
    /// An outcome with nothing to write.
    pub fn of(outcome: Outcome) -> Self {
        Decision {
            outcome,
            change: None,
        }
    }

    fn changed(change: Change) -> Self {
        Decision {
            outcome: Outcome::Changed,
            change: Some(change),
        }
    }
}

/// The AAD a ciphertext record was encrypted with; `None` (and the outcome set to
/// `aad_template` when its template could not be rendered) when there is none to use.
fn aad_of<'r>(record: &'r Record, outcome: &mut Decision) -> Option<&'r [u8]> {
    let Value::Ciphertext { aad, .. } = &record.value else {
        return None;
    };
    match aad {
        Ok(aad) => Some(aad),
        Err(_) => {
            *outcome = Decision::of(Outcome::Failed("aad_template"));
            None
        }
    }
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
    scope: Option<KeyScope>,
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
            scope: None,
        }
    }

    /// Moves only values under the scope's key; values under other keys are skipped.
    pub fn scoped_to(mut self, scope: KeyScope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The job kind.
    pub fn kind(&self) -> &JobKind {
        &self.kind
    }

    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// KMS calls made so far: the envelope's and the label verifier's unwraps.
    pub fn kms_calls(&self) -> u64 {
        self.envelope.stats().kms_calls() + self.verifier.kms_calls()
    }

    /// The decision for every record, in order; a [`Stop`] when the KMS fails retryably.
    pub async fn process(&self, records: &[&Record]) -> Result<Vec<Decision>, Stop> {
        let mut outcomes = vec![Decision::of(Outcome::Skipped); records.len()];
        let mut pending = Vec::new();
        let mut rows = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let stored = match &record.value {
                Value::DekRow(row) => {
                    rows.push((i, row));
                    continue;
                }
                Value::Ciphertext { stored, .. } => stored,
            };
            let stored = match stored {
                Ok(s) => s,
                Err(e) => {
                    outcomes[i] = Decision::of(Outcome::Failed(e.kind().as_str()));
                    continue;
                }
            };
            if matches!(self.kind, JobKind::Rewrap)
                && compact::inspect_compact(&stored.binary).is_ok()
            {
                // Nothing to do in the value: its DEK's row rotates with --dek-store.
                continue;
            }
            // The one header parse of this value in the job.
            let info =
                match crate::engine::headers::header(&stored.binary, self.store.as_deref()).await {
                    Ok(info) => info,
                    Err(e) if e.is_retryable() => return Err(Stop(e)),
                    Err(e) => {
                        outcomes[i] = Decision::of(Outcome::Failed(unreadable_kind(&e)));
                        continue;
                    }
                };
            if matches!(info.label, LabelCheck::Mislabeled { .. }) {
                outcomes[i] = Decision::of(Outcome::Failed("mislabeled"));
                continue;
            }
            if self.scope.as_ref().is_some_and(|scope| !scope.owns(&info)) {
                // Another master key's value: skipped.
                continue;
            }
            match &self.kind {
                JobKind::Rewrap | JobKind::Reindex(_) => pending.push((i, stored)),
                JobKind::Reencrypt(filter) if filter.selects(&info) => pending.push((i, stored)),
                JobKind::Reencrypt(_) => {}
            }
        }
        match &self.kind {
            JobKind::Rewrap => {
                self.rewrap(&pending, &mut outcomes).await?;
                self.rewrap_rows(&rows, &mut outcomes).await?;
            }
            JobKind::Reencrypt(_) => self.reencrypt(records, &pending, &mut outcomes).await?,
            JobKind::Reindex(reindex) => {
                self.reindex(reindex, records, &pending, &mut outcomes)
                    .await?
            }
        }
        Ok(outcomes)
    }

    /// Each value decrypted, its index value under the active version computed, and
    /// written where the index column holds anything else (NULL, another version, a
    /// stale value). The plaintext is zeroized after use.
    async fn reindex(
        &self,
        reindex: &Reindex,
        records: &[&Record],
        pending: &[(usize, &Stored)],
        outcomes: &mut [Decision],
    ) -> Result<(), Stop> {
        for &(i, stored) in pending {
            let Some(aad) = aad_of(records[i], &mut outcomes[i]) else {
                continue;
            };
            let plaintext = match self.envelope.decrypt(&stored.binary, aad).await {
                Ok(p) => zeroize::Zeroizing::new(p),
                Err(e) => {
                    outcomes[i] = Decision::of(self.failure(&stored.binary, e).await?);
                    continue;
                }
            };
            outcomes[i] = match reindex.indexes.compute(&reindex.index, &plaintext).await {
                Ok(value) if records[i].index.as_ref().and_then(|c| c.value()) == Some(value) => {
                    Decision::of(Outcome::Current)
                }
                Ok(value) => Decision::changed(Change::Index(value)),
                Err(e) if e.is_retryable() => return Err(Stop(e)),
                Err(e) => Decision::of(Outcome::Failed(e.kind().as_str())),
            };
        }
        Ok(())
    }

    async fn rewrap(
        &self,
        pending: &[(usize, &Stored)],
        outcomes: &mut [Decision],
    ) -> Result<(), Stop> {
        let binaries: Vec<&[u8]> = pending.iter().map(|(_, s)| s.binary.as_slice()).collect();
        let results = self.envelope.rewrap_many(&binaries).await;
        for (&(i, stored), result) in pending.iter().zip(results) {
            outcomes[i] = match result {
                Ok(r) if r.changed => Decision::changed(Change::Ciphertext(Stored::encode(
                    stored.form,
                    &r.ciphertext,
                ))),
                Ok(_) => Decision::of(Outcome::Current),
                Err(e) => Decision::of(self.failure(&stored.binary, e).await?),
            };
        }
        Ok(())
    }

    /// DEK store rows: each row's wrapped DEK to the current KEK version (one KMS request
    /// per page where the KMS has a batch rewrap, else one call per DEK).
    async fn rewrap_rows(
        &self,
        rows: &[(usize, &StoredDek)],
        outcomes: &mut [Decision],
    ) -> Result<(), Stop> {
        if rows.is_empty() {
            return Ok(());
        }
        let owned: Vec<StoredDek> = rows.iter().map(|(_, r)| (*r).clone()).collect();
        let results = self.envelope.rewrap_wrapped(&owned).await;
        if let Some(e) = results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .find(|e| e.is_retryable())
        {
            return Err(Stop(envelope::Error::Unavailable {
                operation: "rewrap",
                source: Some(e.to_string().into()),
            }));
        }
        for (&(i, _), result) in rows.iter().zip(results) {
            outcomes[i] = match result {
                Ok(None) => Decision::of(Outcome::Current),
                Ok(Some(new)) => Decision::changed(Change::Wrapped(new)),
                Err(e) => Decision::of(Outcome::Failed(e.kind().as_str())),
            };
        }
        Ok(())
    }

    async fn reencrypt(
        &self,
        records: &[&Record],
        pending: &[(usize, &Stored)],
        outcomes: &mut [Decision],
    ) -> Result<(), Stop> {
        for &(i, stored) in pending {
            let Some(aad) = aad_of(records[i], &mut outcomes[i]) else {
                continue;
            };
            if is_stream_header(&stored.binary) {
                // The store re-encrypts the stream from its file, in constant memory.
                outcomes[i] = Decision::changed(Change::ReencryptStream { aad: aad.to_vec() });
                continue;
            }
            outcomes[i] = match self.envelope.reencrypt(&stored.binary, aad).await {
                Ok(new) => Decision::changed(Change::Ciphertext(Stored::encode(stored.form, &new))),
                Err(e) => Decision::of(self.failure(&stored.binary, e).await?),
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

/// Whether a stored value is a stream's header alone (a store read no further).
fn is_stream_header(binary: &[u8]) -> bool {
    envelope::stream::is_stream(binary)
        && envelope::stream::header_len(binary).is_ok_and(|len| len == binary.len())
}
