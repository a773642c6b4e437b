//! The compact form's DEK store in the jobs: reading compact headers through the store,
//! the census of the store's rows, and its rotation (`rewrap --dek-store`: each row's
//! wrapped DEK moves to the current KEK version; no value is written).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use envelope::compact::{self, DekId, DekStore, StoreCheckpoint, StoredDek, WrappedDekChange};
use envelope::{Envelope, HeaderInfo, LabelCheck, WrappedDek, format};
use tokio::sync::Mutex;

use crate::action::Outcome;
use crate::census::Census;
use crate::exit::CliError;
use crate::labels::{LabelVerifier, Verdict};
use crate::summary::{Counts, Summary, progress};

/// Reads compact headers through a DEK store: one store read per DEK id, remembered.
pub struct StoreHeaders {
    store: Arc<dyn DekStore>,
    rows: Mutex<HashMap<DekId, Option<StoredDek>>>,
}

impl StoreHeaders {
    /// A reader over `store`.
    pub fn new(store: Arc<dyn DekStore>) -> Self {
        StoreHeaders {
            store,
            rows: Mutex::new(HashMap::new()),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn DekStore> {
        &self.store
    }

    async fn row(&self, id: DekId) -> envelope::Result<StoredDek> {
        let mut rows = self.rows.lock().await;
        let row = match rows.get(&id) {
            Some(row) => row.clone(),
            None => {
                let row = self.store.get(id).await?;
                rows.insert(id, row.clone());
                row
            }
        };
        row.ok_or(envelope::Error::DekNotFound {
            id: id.get(),
            retired: false,
        })
    }

    /// The header facts of a binary ciphertext of either form (a compact one's KEK facts
    /// come from its store row).
    pub async fn header(&self, binary: &[u8]) -> envelope::Result<HeaderInfo> {
        match compact::inspect_compact(binary) {
            Ok(info) => compact::header_info(binary, &self.row(info.dek_id).await?),
            Err(envelope::Error::UnsupportedFormatVersion(_)) => format::inspect(binary),
            Err(e) => Err(e),
        }
    }

    /// The wrapped DEK a ciphertext of either form decrypts through.
    pub async fn wrapped(&self, binary: &[u8]) -> envelope::Result<WrappedDek> {
        Ok(self.source(binary).await?.0)
    }

    /// The wrapped DEK a ciphertext decrypts through, and for a compact one its store row
    /// (whose binding the unwrap needs).
    pub async fn source(&self, binary: &[u8]) -> envelope::Result<(WrappedDek, Option<StoredDek>)> {
        match compact::inspect_compact(binary) {
            Ok(info) => {
                let row = self.row(info.dek_id).await?;
                Ok((row.wrapped.clone(), Some(row)))
            }
            Err(envelope::Error::UnsupportedFormatVersion(_)) => {
                Ok((format::wrapped_dek(binary)?, None))
            }
            Err(e) => Err(e),
        }
    }
}

/// The header of a stored ciphertext: through the store when there is one; without one, a
/// compact value is an `UnsupportedFormatVersion(2)` error (the census says
/// `needs_dek_store`).
pub async fn header(binary: &[u8], store: Option<&StoreHeaders>) -> envelope::Result<HeaderInfo> {
    match store {
        Some(store) => store.header(binary).await,
        None => format::inspect(binary),
    }
}

/// Opens the store a `--dek-store` URI names.
pub fn open(uri: &str) -> Result<Arc<dyn DekStore>, CliError> {
    Ok(envelope::open_dek_store(uri)?)
}

/// Rows read per page (census, rotation).
const PAGE: usize = 1000;

/// The census of a store's rows by KEK provider, key, version and suite. With a verifier,
/// labels the row cannot show (the local keyring's) are checked by one unwrap per row.
pub async fn census(
    store: &dyn DekStore,
    verifier: Option<&LabelVerifier>,
) -> Result<Census, CliError> {
    let mut census = Census::default();
    let mut after = None;
    loop {
        let rows = store.list(after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        for row in &rows {
            let verdict = match verifier {
                Some(v) if row.wrapped.check_label() == LabelCheck::BoundByWrap => {
                    v.verdict(&row.wrapped, Some(row)).await?
                }
                _ => None,
            };
            census.observe_row(row, verdict.as_ref());
        }
    }
    Ok(census)
}

/// How a store rotation ended.
pub struct RotationEnd {
    /// The summary (store = the store's location).
    pub summary: Summary,
    /// Why it stopped early (retryable: rerun with `--resume`), if it did.
    pub stopped: Option<envelope::Error>,
}

/// A new job id for a store rotation.
fn new_job_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("dekstore-{now}-{}", std::process::id())
}

/// `rewrap --dek-store`: moves every row's wrapped DEK to the current version of the
/// envelope's KEK, a page at a time (one KMS request per page where the KMS has a batch
/// rewrap, else one call per DEK), each page's changes and the checkpoint committed
/// together. A change applies only over the wrapped DEK read (a concurrent rotation wins).
/// Values are never read or written.
pub async fn rotate(
    store: &dyn DekStore,
    envelope: &Envelope,
    batch_size: usize,
    resume: Option<&str>,
) -> Result<RotationEnd, CliError> {
    let started = Instant::now();
    let kms_before = envelope.stats().kms_calls();
    let (job_id, mut after, mut total) = match resume {
        Some(job) => {
            let checkpoint = store.checkpoint(job).await?.ok_or_else(|| {
                CliError::new(format!(
                    "no DEK store rotation {job:?} in {}: nothing to resume",
                    store.location()
                ))
            })?;
            let total: Counts = serde_json::from_str(&checkpoint.progress).map_err(|e| {
                CliError::new(format!("job {job}: unreadable checkpoint progress: {e}"))
            })?;
            (job.to_owned(), Some(checkpoint.last_id), total)
        }
        None => (new_job_id(), None, Counts::default()),
    };
    let mut this_run = Counts::default();
    let mut failed_samples = Vec::new();
    let bar = progress(None, "rewrap DEK store");
    let mut stopped = None;
    loop {
        let rows = store.list(after, batch_size).await?;
        let Some(last) = rows.last().map(|r| r.id) else {
            break;
        };
        let results = envelope.rewrap_wrapped(&rows).await;
        if let Some(e) = results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .find(|e| e.is_retryable())
        {
            stopped = Some(clone_retryable(e));
            break;
        }
        let mut page = Counts::default();
        let mut changes = Vec::new();
        for (row, result) in rows.iter().zip(results) {
            let outcome = match result {
                Ok(None) => Outcome::Current,
                Ok(Some(new)) => {
                    changes.push(WrappedDekChange {
                        id: row.id,
                        old: row.wrapped.clone(),
                        new,
                    });
                    Outcome::Changed(Vec::new())
                }
                Err(e) => {
                    if failed_samples.len() < 20 {
                        failed_samples.push((format!("dek {}", row.id), e.to_string()));
                    }
                    Outcome::Failed(e.kind().as_str())
                }
            };
            page.record(&outcome);
        }
        let mut next_total = total.clone();
        next_total.merge(&page);
        let checkpoint = StoreCheckpoint {
            job: job_id.clone(),
            last_id: last,
            progress: serde_json::to_string(&next_total).unwrap_or_default(),
        };
        let applied = store.apply_rewraps(&changes, &checkpoint).await?;
        // A row another rotation changed since our read keeps its newer wrap.
        let raced = (changes.len() - applied) as u64;
        page.concurrent_updates += raced;
        next_total.concurrent_updates += raced;
        total = next_total;
        this_run.merge(&page);
        bar.inc(rows.len() as u64);
        after = Some(last);
    }
    bar.finish_and_clear();
    let mut summary = Summary {
        job_id,
        kind: "rewrap".into(),
        store: format!("DEK store {}", store.location()),
        database_connection: None,
        total,
        this_run,
        failed_samples,
        kms_calls: envelope.stats().kms_calls() - kms_before,
        duration_seconds: 0.0,
        rows_per_second: 0.0,
        status: match &stopped {
            Some(e) => format!("stopped: {e}"),
            None => "finished".into(),
        },
    };
    summary.timing(started.elapsed());
    Ok(RotationEnd { summary, stopped })
}

/// A copy of a retryable error for the end report (errors are not `Clone`).
fn clone_retryable(e: &envelope::Error) -> envelope::Error {
    envelope::Error::Unavailable {
        operation: "rewrap",
        source: Some(e.to_string().into()),
    }
}

/// Whether a stored value is one the jobs can read: a v1 header, or a well-formed compact
/// one (its store is consulted later).
pub fn parses(binary: &[u8]) -> bool {
    format::inspect(binary).is_ok() || compact::inspect_compact(binary).is_ok()
}

/// The verdict for a value's label through its wrapped DEK (either form).
pub async fn verdict(
    verifier: &LabelVerifier,
    binary: &[u8],
    store: Option<&StoreHeaders>,
) -> envelope::Result<Option<Verdict>> {
    let (wrapped, row) = match store {
        Some(store) => store.source(binary).await?,
        None => (format::wrapped_dek(binary)?, None),
    };
    verifier.verdict(&wrapped, row.as_ref()).await
}
