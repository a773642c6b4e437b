//! The compact form's DEK store as a store of the engine: its records are the store's rows
//! (one per DEK), `rewrap` moves each row's wrapped DEK to the current KEK version (no
//! value is ever written), and the store keeps the rotation's checkpoint itself.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use envelope::compact::{DekId, DekStore, StoreCheckpoint, WrappedDekChange};

use crate::engine::counts::Counts;
use crate::engine::store::{
    Checkpoint, Claim, CommitError, Committed, JobMeta, Ledger, Part, Range, Record, Store,
    StoreInfo, Value, Write, WriteGuarantee,
};
use crate::exit::CliError;

/// Opens the store a `--dek-store` URI names.
pub fn open(uri: &str) -> Result<Arc<dyn DekStore>, CliError> {
    Ok(envelope::open_dek_store(uri)?)
}

/// A DEK store's rows as engine records.
pub struct DekStoreRows {
    store: Arc<dyn DekStore>,
}

impl DekStoreRows {
    /// The rows of `store`.
    pub fn new(store: Arc<dyn DekStore>) -> Self {
        DekStoreRows { store }
    }
}

fn parse_id(position: &str) -> Result<DekId, CliError> {
    position
        .parse::<u64>()
        .ok()
        .and_then(DekId::new)
        .ok_or_else(|| CliError::new(format!("{position:?} is not a DEK id")))
}

fn record(row: envelope::compact::StoredDek) -> Record {
    Record {
        position: row.id.to_string(),
        location: format!("dek {}", row.id),
        read: Vec::new(),
        value: Value::DekRow(row),
        index: None,
    }
}

#[async_trait]
impl Store for DekStoreRows {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: "dek-store",
            name: format!("DEK store {}", self.store.location()),
            connection: None,
            writes: WriteGuarantee::PerValueNewerWins,
        }
    }

    async fn page(
        &self,
        range: &Range,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, CliError> {
        let after = match after.or(range.start.as_deref()) {
            Some(p) => Some(parse_id(p)?),
            None => None,
        };
        let end = range.end.as_deref().map(parse_id).transpose()?;
        let rows = self.store.list(after, limit).await?;
        Ok(rows
            .into_iter()
            .filter(|r| end.is_none_or(|e| r.id <= e))
            .map(record)
            .collect())
    }

    async fn reread(&self, positions: &[String]) -> Result<Vec<Record>, CliError> {
        let mut out = Vec::new();
        for p in positions {
            if let Some(row) = self.store.get(parse_id(p)?).await? {
                out.push(record(row));
            }
        }
        Ok(out)
    }

    async fn commit(
        &self,
        writes: &[Write<'_>],
        checkpoint: Option<&Checkpoint<'_>>,
    ) -> Result<Committed, CommitError> {
        let mut changes = Vec::with_capacity(writes.len());
        for w in writes {
            let new = w.wrapped()?;
            let Value::DekRow(row) = &w.record.value else {
                return Err(CommitError::Failed(CliError::new(format!(
                    "{}: not a DEK store row",
                    w.record.location
                ))));
            };
            changes.push(WrappedDekChange {
                id: row.id,
                old: row.wrapped.clone(),
                new: new.clone(),
            });
        }
        let Some(checkpoint) = checkpoint.filter(|c| c.part.last.is_some()) else {
            // An empty store, or the end of a range with nothing new: nothing to record.
            if changes.is_empty() {
                return Ok(Committed::default());
            }
            return Err(CommitError::Failed(CliError::new(
                "a DEK store rotation commits with its checkpoint",
            )));
        };
        let last_id = parse_id(checkpoint.part.last.as_deref().unwrap_or_default())?;
        let progress = serde_json::to_string(&checkpoint.part.counts)
            .map_err(|e| CliError::new(format!("cannot record the job's progress: {e}")))?;
        let applied = self
            .store
            .apply_rewraps(
                &changes,
                &StoreCheckpoint {
                    job: checkpoint.job_id.to_owned(),
                    last_id,
                    progress,
                },
            )
            .await?;
        Ok(Committed {
            conflicts: Vec::new(),
            superseded: (changes.len() - applied) as u64,
        })
    }

    fn ledger(&self) -> Option<&dyn Ledger> {
        Some(self)
    }
}

/// A DEK store records one checkpoint per rotation: the last id done and the counts.
#[async_trait]
impl Ledger for DekStoreRows {
    fn id_prefix(&self, _kind: &str) -> String {
        "dekstore".to_owned()
    }

    async fn create(
        &self,
        _job: &JobMeta,
        _ranges: &[Range],
        join: bool,
    ) -> Result<Vec<Part>, CliError> {
        if join {
            return Err(cooperative_needs_postgres());
        }
        // The first commit records the checkpoint.
        Ok(vec![Part::new(0, Range::all())])
    }

    async fn load(&self, job_id: &str) -> Result<(Option<JobMeta>, Vec<Part>), CliError> {
        let checkpoint = self.store.checkpoint(job_id).await?.ok_or_else(|| {
            CliError::new(format!(
                "no DEK store rotation {job_id:?} in {}: nothing to resume",
                self.store.location()
            ))
        })?;
        let counts: Counts = serde_json::from_str(&checkpoint.progress).map_err(|e| {
            CliError::new(format!("job {job_id}: unreadable checkpoint progress: {e}"))
        })?;
        let mut part = Part::new(0, Range::all());
        part.last = Some(checkpoint.last_id.to_string());
        part.counts = counts;
        Ok((None, vec![part]))
    }

    async fn claim(&self, _: &str, _: &str, _: Duration) -> Result<Claim, CliError> {
        Err(cooperative_needs_postgres())
    }
}

fn cooperative_needs_postgres() -> CliError {
    CliError::with_code(
        crate::exit::USAGE,
        "--join shares a job between processes through PostgreSQL's envelope_jobs table: \
         a DEK store rotation runs in one process (rerun with --resume to continue one)",
    )
}
