//! The rewrap / re-encrypt job over a PostgreSQL column.
//!
//! Keyset pagination on the single-column primary key (compared in the key's own type, so
//! integers, text, uuid and other types whose text form round-trips all work); each batch is
//! read, processed (KMS calls happen here, outside any transaction), then written in one
//! transaction that updates a row only if it still holds the value read and records the
//! checkpoint. A row an application changed in between is read again and processed from
//! its new value. With `--workers K` the key space is cut into K ranges of about equal
//! row counts, each with its own connection and checkpoint row.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use indicatif::ProgressBar;
use tokio_postgres::Transaction;

use super::checkpoint::{self, Part};
use super::{ReadRow, Target, connect, decode_row};
use crate::aad::AadTemplate;
use crate::action::{Item, Outcome, Processor, Stop};
use crate::exit::CliError;
use crate::summary::{Counts, Summary, progress};

/// How often a batch retries rows that an application keeps changing under it.
const CONFLICT_ROUNDS: usize = 3;
/// Failed locations kept for the summary.
const FAILED_SAMPLES: usize = 20;

/// What the job is asked to do.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The connection string.
    pub db: String,
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// The key URI (recorded with the job; a resume must name the same).
    pub key_uri: String,
    /// The AAD template (re-encryption).
    pub template: Option<AadTemplate>,
    /// Rows per batch.
    pub batch_size: u32,
    /// Parallel key ranges.
    pub workers: u16,
    /// A job to resume.
    pub resume: Option<String>,
}

/// How a job ended.
#[derive(Debug)]
pub struct JobEnd {
    /// The summary.
    pub summary: Summary,
    /// Why it stopped early, if it did (the checkpoint holds every committed batch).
    pub stopped: Option<envelope::Error>,
}

/// Runs the job to its end or to a stop.
pub async fn run(spec: &JobSpec, processor: Arc<Processor>) -> Result<JobEnd, CliError> {
    let started = Instant::now();
    let kind = processor.kind().name();
    let (mut client, transport) = connect(&spec.db).await?;
    let vars: Vec<&str> = spec
        .template
        .as_ref()
        .map(|t| t.variables().collect())
        .unwrap_or_default();
    let target = Target::resolve(&client, &spec.table, &spec.column, &vars).await?;
    checkpoint::ensure_table(&client).await?;
    let (job_id, parts) = match &spec.resume {
        Some(job_id) => {
            let record = checkpoint::load(&client, job_id).await?;
            let mine = (
                kind,
                spec.table.as_str(),
                spec.column.as_str(),
                spec.key_uri.as_str(),
            );
            let theirs = (
                record.kind.as_str(),
                record.table.as_str(),
                record.column.as_str(),
                record.key_uri.as_str(),
            );
            if mine != theirs {
                return Err(CliError::new(format!(
                    "job {job_id:?} is a {} of {}.{} with key {}; this command is a {kind} of {}.{} with key {}",
                    record.kind,
                    record.table,
                    record.column,
                    record.key_uri,
                    spec.table,
                    spec.column,
                    spec.key_uri
                )));
            }
            (job_id.clone(), record.parts)
        }
        None => {
            refuse_foreign_column(&client, &target).await?;
            let job_id = new_job_id(kind);
            let ranges = split(&client, &target, spec.workers).await?;
            let parts =
                checkpoint::create(&mut client, &job_id, kind, &target, &spec.key_uri, &ranges)
                    .await?;
            (job_id, parts)
        }
    };
    eprintln!("{kind} job {job_id} on {}", target.name());
    let before = Counts::default();
    let mut earlier = before.clone();
    for p in &parts {
        earlier.merge(&p.counts);
    }
    let total_rows = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let row = client.query_one(&target.count_query(), &[]).await?;
        Some(row.get::<_, i64>(0) as u64)
    } else {
        None
    };
    let bar = progress(total_rows, kind);
    bar.set_position(earlier.scanned);
    let calls_before = processor.envelope().stats().kms_calls();
    let stop_flag = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for part in parts.into_iter().filter(|p| !p.finished) {
        let worker = Worker {
            job_id: job_id.clone(),
            target: target.clone(),
            template: spec.template.clone(),
            batch_size: i64::from(spec.batch_size),
            processor: processor.clone(),
            stop: stop_flag.clone(),
            bar: bar.clone(),
        };
        let db = spec.db.clone();
        handles.push(tokio::spawn(async move {
            let (mut client, _) = connect(&db).await?;
            worker.run(&mut client, part).await
        }));
    }
    let mut total = earlier.clone();
    let mut this_run = Counts::default();
    let mut failed_samples = Vec::new();
    let mut stopped = None;
    let mut error = None;
    for handle in handles {
        match handle.await {
            Ok(Ok(result)) => {
                total.merge(&result.counts_this_run);
                this_run.merge(&result.counts_this_run);
                failed_samples.extend(result.failed_samples);
                if stopped.is_none() {
                    stopped = result.stopped;
                }
            }
            Ok(Err(e)) => error = Some(e),
            Err(e) => error = Some(CliError::new(format!("a worker failed: {e}"))),
        }
    }
    bar.finish_and_clear();
    if let Some(e) = error {
        return Err(CliError::new(format!(
            "{}; committed batches are kept: resume with --resume {job_id}",
            e.message
        )));
    }
    failed_samples.truncate(FAILED_SAMPLES);
    let mut summary = Summary {
        job_id,
        kind: kind.to_owned(),
        store: target.name(),
        database_connection: Some(super::ConnectionInfo::from(&transport)),
        total,
        this_run,
        failed_samples,
        kms_calls: processor.envelope().stats().kms_calls() - calls_before,
        duration_seconds: 0.0,
        rows_per_second: 0.0,
        status: match &stopped {
            None => "finished".into(),
            Some(e) => format!("stopped: {e}"),
        },
    };
    summary.timing(started.elapsed());
    Ok(JobEnd { summary, stopped })
}

/// A job id: the kind and the start time in microseconds (unique per database in practice;
/// the checkpoint's primary key refuses a duplicate).
fn new_job_id(kind: &str) -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{kind}-{micros:x}")
}

/// Refuses a column whose first values include no envelope ciphertext at all (a wrong
/// `--column` would otherwise be reported row by row as failures).
async fn refuse_foreign_column(
    client: &tokio_postgres::Client,
    target: &Target,
) -> Result<(), CliError> {
    let limit: i64 = 100;
    let (sql, params) = target.page_query(&None, &None, &limit);
    let rows = client.query(&sql, &params).await?;
    let read: Vec<ReadRow> = rows
        .iter()
        .filter_map(|r| decode_row(target, None, r))
        .collect();
    let envelope_values = read
        .iter()
        .filter(|r| {
            r.item
                .stored
                .as_ref()
                .is_ok_and(|s| crate::dekstore::parses(&s.binary))
        })
        .count();
    if !read.is_empty() && envelope_values == 0 {
        return Err(CliError::new(format!(
            "column {} holds no envelope ciphertexts (none of its first {} values parses): wrong --column?",
            target.name(),
            read.len()
        )));
    }
    Ok(())
}

/// `workers` key ranges of about equal row counts.
async fn split(
    client: &tokio_postgres::Client,
    target: &Target,
    workers: u16,
) -> Result<Vec<(Option<String>, Option<String>)>, CliError> {
    if workers <= 1 {
        return Ok(vec![(None, None)]);
    }
    let ends: Vec<String> = client
        .query(&target.split_query(workers), &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut ranges = Vec::with_capacity(ends.len().max(1));
    let mut start = None;
    for (i, end) in ends.iter().enumerate() {
        let last = i + 1 == ends.len();
        ranges.push((start.clone(), if last { None } else { Some(end.clone()) }));
        start = Some(end.clone());
    }
    if ranges.is_empty() {
        ranges.push((None, None));
    }
    Ok(ranges)
}

struct Worker {
    job_id: String,
    target: Target,
    template: Option<AadTemplate>,
    batch_size: i64,
    processor: Arc<Processor>,
    stop: Arc<AtomicBool>,
    bar: ProgressBar,
}

struct WorkerResult {
    counts_this_run: Counts,
    failed_samples: Vec<(String, String)>,
    stopped: Option<envelope::Error>,
}

impl Worker {
    async fn run(
        &self,
        client: &mut tokio_postgres::Client,
        mut part: Part,
    ) -> Result<WorkerResult, CliError> {
        let mut result = WorkerResult {
            counts_this_run: Counts::default(),
            failed_samples: Vec::new(),
            stopped: None,
        };
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(result);
            }
            let after = part.last_key.clone().or_else(|| part.range_start.clone());
            let (sql, params) = self
                .target
                .page_query(&after, &part.range_end, &self.batch_size);
            let rows = client.query(&sql, &params).await?;
            if rows.is_empty() {
                part.finished = true;
                checkpoint::save(&*client, &self.job_id, &part).await?;
                return Ok(result);
            }
            let read: Vec<ReadRow> = rows
                .iter()
                .filter_map(|r| decode_row(&self.target, self.template.as_ref(), r))
                .collect();
            let last_key = read.last().map(|r| r.key.clone());
            let items: Vec<&Item> = read.iter().map(|r| &r.item).collect();
            let outcomes = match self.processor.process(&items).await {
                Ok(o) => o,
                Err(Stop(e)) => return Ok(self.stopped(result, e)),
            };
            let tx = client.transaction().await?;
            let finals = match self.write(&tx, &read, outcomes).await? {
                Ok(finals) => finals,
                Err(Stop(e)) => return Ok(self.stopped(result, e)),
            };
            let mut batch_counts = Counts::default();
            for (location, outcome) in &finals {
                batch_counts.record(outcome);
                if let Outcome::Failed(kind) = outcome
                    && result.failed_samples.len() < FAILED_SAMPLES
                {
                    result
                        .failed_samples
                        .push((location.clone(), (*kind).to_owned()));
                }
            }
            batch_counts.concurrent_updates = finals.conflicts;
            part.counts.merge(&batch_counts);
            part.last_key = last_key;
            checkpoint::save(&tx, &self.job_id, &part).await?;
            tx.commit().await?;
            result.counts_this_run.merge(&batch_counts);
            self.bar.inc(read.len() as u64);
        }
    }

    fn stopped(&self, mut result: WorkerResult, e: envelope::Error) -> WorkerResult {
        self.stop.store(true, Ordering::Relaxed);
        result.stopped = Some(e);
        result
    }

    /// Writes a batch's changed values where rows still hold what was read; re-reads and
    /// re-processes rows changed in between. The final outcome of every row, by location.
    async fn write(
        &self,
        tx: &Transaction<'_>,
        read: &[ReadRow],
        outcomes: Vec<Outcome>,
    ) -> Result<Result<Finals, Stop>, CliError> {
        let update = self.target.update_query();
        let mut finals = Finals::default();
        let mut todo: Vec<(String, String, Vec<u8>, Vec<u8>)> = Vec::new();
        for (row, outcome) in read.iter().zip(outcomes) {
            match outcome {
                Outcome::Changed(new) => todo.push((
                    row.item.location.clone(),
                    row.key.clone(),
                    row.raw.clone(),
                    new,
                )),
                other => finals.push(row.item.location.clone(), other),
            }
        }
        for round in 0..=CONFLICT_ROUNDS {
            if todo.is_empty() {
                break;
            }
            let keys: Vec<&str> = todo.iter().map(|t| t.1.as_str()).collect();
            let updated: HashSet<String> = match self.target.form {
                crate::value::Form::Text => {
                    let olds: Vec<&str> = todo.iter().map(|t| utf8(&t.2)).collect();
                    let news: Vec<&str> = todo.iter().map(|t| utf8(&t.3)).collect();
                    tx.query(&update, &[&keys, &olds, &news]).await?
                }
                crate::value::Form::Binary => {
                    let olds: Vec<&[u8]> = todo.iter().map(|t| t.2.as_slice()).collect();
                    let news: Vec<&[u8]> = todo.iter().map(|t| t.3.as_slice()).collect();
                    tx.query(&update, &[&keys, &olds, &news]).await?
                }
            }
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect();
            let mut conflicted = Vec::new();
            for (location, key, old, new) in todo.drain(..) {
                if updated.contains(&key) {
                    finals.push(location, Outcome::Changed(new));
                } else {
                    conflicted.push((location, key, old, new));
                }
            }
            if conflicted.is_empty() {
                break;
            }
            finals.conflicts += conflicted.len() as u64;
            if round == CONFLICT_ROUNDS {
                for (location, ..) in conflicted {
                    finals.push(location, Outcome::Failed("changed_concurrently"));
                }
                break;
            }
            // Read the rows again (this statement sees every committed change) and process
            // their new values.
            let keys: Vec<String> = conflicted.iter().map(|c| c.1.clone()).collect();
            let rows = tx.query(&self.target.reread_query(), &[&keys]).await?;
            let mut now: HashMap<String, ReadRow> = HashMap::new();
            for row in &rows {
                if let Some(r) = decode_row(&self.target, self.template.as_ref(), row) {
                    now.insert(r.key.clone(), r);
                }
            }
            let mut again = Vec::new();
            for (location, key, ..) in conflicted {
                match now.remove(&key) {
                    Some(r) => again.push(r),
                    // Deleted or set to NULL meanwhile: nothing left to move.
                    None => finals.push(location, Outcome::Skipped),
                }
            }
            let items: Vec<&Item> = again.iter().map(|r| &r.item).collect();
            let outcomes = match self.processor.process(&items).await {
                Ok(o) => o,
                Err(stop) => return Ok(Err(stop)),
            };
            for (row, outcome) in again.into_iter().zip(outcomes) {
                match outcome {
                    Outcome::Changed(new) => {
                        todo.push((row.item.location.clone(), row.key, row.raw, new))
                    }
                    other => finals.push(row.item.location, other),
                }
            }
        }
        Ok(Ok(finals))
    }
}

/// The final outcomes of a batch and how many conflicts it met.
#[derive(Default)]
struct Finals {
    outcomes: Vec<(String, Outcome)>,
    conflicts: u64,
}

impl Finals {
    fn push(&mut self, location: String, outcome: Outcome) {
        self.outcomes.push((location, outcome));
    }
}

impl<'a> IntoIterator for &'a Finals {
    type Item = &'a (String, Outcome);
    type IntoIter = std::slice::Iter<'a, (String, Outcome)>;
    fn into_iter(self) -> Self::IntoIter {
        self.outcomes.iter()
    }
}

fn utf8(bytes: &[u8]) -> &str {
    // Text-column values and their text-form replacements are UTF-8 by construction.
    std::str::from_utf8(bytes).unwrap_or_default()
}
