//! Running a rewrap or re-encrypt job on one store, written once for every store: plan the
//! ranges (or resume, or join a job other processes work on), then per range read a page,
//! process it (KMS calls happen here, outside any transaction), commit its changes with
//! the checkpoint, read again and re-process the records an application changed in between,
//! and sum the counts into one summary.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::ProgressBar;

use crate::engine::counts::Counts;
use crate::engine::process::{Decision, Outcome, Processor, Stop};
use crate::engine::store::{
    Checkpoint, Claim, CommitError, Committed, JobMeta, Part, Record, Store, Value, Write,
};
use crate::engine::summary::{Summary, progress};
use crate::exit::{CliError, USAGE};

/// How often a page retries records that an application keeps changing under it.
const CONFLICT_ROUNDS: usize = 3;
/// Failed locations kept for the summary.
const FAILED_SAMPLES: usize = 20;

/// How a job is to run.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// The key URI (recorded with the job; a resume or a join must name the same).
    pub key_uri: String,
    /// Records per page; each page is one commit.
    pub batch_size: usize,
    /// Concurrent workers in this process (each over its own range).
    pub workers: u16,
    /// A job to resume (its id).
    pub resume: Option<String>,
    /// A job to share with other processes (its id; created by the first to come).
    pub join: Option<String>,
    /// Ranges a joined job is cut into when this process creates it.
    pub parts: u16,
    /// How long a claimed range stays a worker's without a commit.
    pub lease: Duration,
}

/// How a job ended.
#[derive(Debug)]
pub struct JobEnd {
    /// The summary.
    pub summary: Summary,
    /// Why it stopped early, if it did (the checkpoint holds every committed page).
    pub stopped: Option<envelope::Error>,
}

/// A job id: a prefix and the start time in microseconds (unique per ledger in practice;
/// the ledger refuses a duplicate).
fn new_job_id(prefix: &str) -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{prefix}-{micros:x}")
}

/// This process, as the owner of leases: host, process id and worker number.
fn owner(worker: u16) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{}/{worker}", std::process::id())
}

/// Runs the job on `store` to its end or to a stop.
pub async fn run(
    store: Arc<dyn Store>,
    processor: Arc<Processor>,
    options: &JobOptions,
) -> Result<JobEnd, CliError> {
    let started = Instant::now();
    let info = store.info();
    let kind = processor.kind().name();
    let (job_id, parts) = plan(&*store, kind, options).await?;
    if !job_id.is_empty() {
        eprintln!("{kind} job {job_id} on {}", info.name);
    }
    let mut earlier = Counts::default();
    for p in &parts {
        earlier.merge(&p.counts);
    }
    let total_rows = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        store.count().await
    } else {
        None
    };
    let bar = progress(total_rows, kind);
    bar.set_position(earlier.scanned);
    let calls_before = processor.kms_calls();
    let shared = Arc::new(Shared {
        store: store.clone(),
        processor: processor.clone(),
        job_id: job_id.clone(),
        batch_size: options.batch_size.max(1),
        lease: options.lease,
        stop: AtomicBool::new(false),
        bar: bar.clone(),
    });
    let leased = store.ledger().is_some_and(|l| l.leases());
    let mut handles = Vec::new();
    if leased {
        for n in 0..options.workers.max(1) {
            let shared = shared.clone();
            handles.push(tokio::spawn(async move { shared.claim_and_run(n).await }));
        }
    } else {
        for part in parts.into_iter().filter(|p| !p.finished) {
            let shared = shared.clone();
            handles.push(tokio::spawn(async move {
                let mut result = WorkerResult::default();
                shared.run_part(part, None, &mut result).await?;
                Ok(result)
            }));
        }
    }
    let mut this_run = WorkerResult::default();
    let mut error = None;
    for handle in handles {
        match handle.await {
            Ok(Ok(result)) => this_run.merge(result),
            Ok(Err(e)) => error = Some(e),
            Err(e) => error = Some(CliError::new(format!("a worker failed: {e}"))),
        }
    }
    bar.finish_and_clear();
    if let Some(e) = error {
        return Err(match job_id.is_empty() {
            true => e,
            false => CliError::new(format!(
                "{}; committed batches are kept: resume with --resume {job_id}",
                e.message
            )),
        });
    }
    // The job's counts over every run and worker, as the ledger has them.
    let total = match store.ledger().filter(|_| !job_id.is_empty()) {
        Some(ledger) => match ledger.load(&job_id).await {
            Ok((_, parts)) => parts.iter().fold(Counts::default(), |mut t, p| {
                t.merge(&p.counts);
                t
            }),
            Err(_) => earlier.clone().merged(&this_run.counts),
        },
        None => earlier.clone().merged(&this_run.counts),
    };
    let mut failed_samples = this_run.failed_samples;
    failed_samples.truncate(FAILED_SAMPLES);
    let stopped = this_run.stopped;
    let mut summary = Summary {
        job_id,
        kind: kind.to_owned(),
        store: info.name,
        store_kind: info.kind.to_owned(),
        writes: info.writes,
        database_connection: info.connection,
        total,
        this_run: this_run.counts,
        failed_samples,
        kms_calls: processor.kms_calls() - calls_before,
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

/// The job's id and parts: a new job, the one to resume, or the one to join.
async fn plan(
    store: &dyn Store,
    kind: &str,
    options: &JobOptions,
) -> Result<(String, Vec<Part>), CliError> {
    let Some(ledger) = store.ledger() else {
        if options.resume.is_some() || options.join.is_some() {
            return Err(CliError::with_code(
                USAGE,
                format!(
                    "{} keeps no checkpoint: rerun the same command (finished values are current)",
                    store.info().name
                ),
            ));
        }
        let parts = store.split(options.workers).await?;
        return Ok((
            String::new(),
            parts
                .into_iter()
                .enumerate()
                .map(|(i, r)| Part::new(i as i32, r))
                .collect(),
        ));
    };
    let meta = |id: String| JobMeta {
        id,
        kind: kind.to_owned(),
        store: store.info().name,
        key_uri: options.key_uri.clone(),
    };
    if let Some(id) = &options.resume {
        let (theirs, parts) = ledger.load(id).await?;
        if let Some(theirs) = theirs {
            theirs.check_same(&meta(id.clone()))?;
        }
        // The command says the job's earlier workers are gone: their ranges are free.
        ledger.release(id).await?;
        return Ok((id.clone(), parts));
    }
    if let Some(id) = &options.join {
        if !ledger.leases() {
            return Err(CliError::with_code(
                USAGE,
                format!(
                    "--join: {} cannot share a job between processes",
                    store.info().name
                ),
            ));
        }
        store.preflight().await?;
        let ranges = store.split(options.parts).await?;
        let parts = ledger.create(&meta(id.clone()), &ranges, true).await?;
        return Ok((id.clone(), parts));
    }
    store.preflight().await?;
    let id = new_job_id(&ledger.id_prefix(kind));
    let ranges = store.split(options.workers).await?;
    let parts = ledger.create(&meta(id.clone()), &ranges, false).await?;
    Ok((id, parts))
}

/// What the workers of one job share.
struct Shared {
    store: Arc<dyn Store>,
    processor: Arc<Processor>,
    job_id: String,
    batch_size: usize,
    lease: Duration,
    stop: AtomicBool,
    bar: ProgressBar,
}

/// What one worker did in this run.
#[derive(Default)]
struct WorkerResult {
    counts: Counts,
    failed_samples: Vec<(String, String)>,
    stopped: Option<envelope::Error>,
}

impl WorkerResult {
    fn merge(&mut self, other: WorkerResult) {
        self.counts.merge(&other.counts);
        self.failed_samples.extend(other.failed_samples);
        if self.stopped.is_none() {
            self.stopped = other.stopped;
        }
    }
}

/// How a part's run ended.
enum PartEnd {
    /// Finished, or stopped (the stop flag is set).
    Done,
    /// Another worker took the part over (this one's lease ran out).
    LeaseLost,
}

impl Shared {
    /// Claims ranges until every range of the job is finished (waiting while live workers
    /// elsewhere hold the rest) or the job stops.
    async fn claim_and_run(&self, worker: u16) -> Result<WorkerResult, CliError> {
        let owner = owner(worker);
        let mut result = WorkerResult::default();
        let ledger = self
            .store
            .ledger()
            .ok_or_else(|| CliError::new("claiming ranges needs a ledger"))?;
        while !self.stop.load(Ordering::Relaxed) {
            match ledger.claim(&self.job_id, &owner, self.lease).await? {
                Claim::Part(part) => {
                    if let PartEnd::LeaseLost =
                        self.run_part(part, Some(&owner), &mut result).await?
                    {
                        eprintln!(
                            "{owner}: a range of job {} was taken over (its lease ran out)",
                            self.job_id
                        );
                    }
                }
                Claim::Wait(d) => tokio::time::sleep(d).await,
                Claim::Done => break,
            }
        }
        Ok(result)
    }

    /// Works through one range from its checkpoint.
    async fn run_part(
        &self,
        mut part: Part,
        owner: Option<&str>,
        result: &mut WorkerResult,
    ) -> Result<PartEnd, CliError> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(PartEnd::Done);
            }
            let records = self
                .store
                .page(&part.range, part.last.as_deref(), self.batch_size)
                .await?;
            let Some(last) = records.last().map(|r| r.position.clone()) else {
                part.finished = true;
                return match self.commit_page(&part, owner, &[], &[]).await? {
                    Ok(_) => Ok(PartEnd::Done),
                    Err(LeaseLost) => Ok(PartEnd::LeaseLost),
                };
            };
            let refs: Vec<&Record> = records.iter().collect();
            let decisions = match self.processor.process(&refs).await {
                Ok(d) => d,
                Err(Stop(e)) => {
                    self.stopped(result, e);
                    return Ok(PartEnd::Done);
                }
            };
            let n = records.len() as u64;
            let mut next = part.clone();
            next.last = Some(last);
            match self.settle(&mut next, owner, records, decisions).await? {
                Settled::Committed(page) => {
                    let room = FAILED_SAMPLES.saturating_sub(result.failed_samples.len());
                    result
                        .failed_samples
                        .extend(page.failed.into_iter().take(room));
                    result.counts.merge(&page.counts);
                    part = next;
                    self.bar.inc(n);
                }
                Settled::Stopped(e) => {
                    self.stopped(result, e);
                    return Ok(PartEnd::Done);
                }
                Settled::LeaseLost => return Ok(PartEnd::LeaseLost),
            }
        }
    }

    fn stopped(&self, result: &mut WorkerResult, e: envelope::Error) {
        self.stop.store(true, Ordering::Relaxed);
        if result.stopped.is_none() {
            result.stopped = Some(e);
        }
    }

    /// Commits a page: the records' changes with the checkpoint `part` (whose counts it
    /// completes). Records an application changed in between are read again and
    /// re-processed, and the page committed again, up to [`CONFLICT_ROUNDS`] times; then
    /// they count as `changed_concurrently`.
    async fn settle(
        &self,
        part: &mut Part,
        owner: Option<&str>,
        mut records: Vec<Record>,
        mut decisions: Vec<Decision>,
    ) -> Result<Settled, CliError> {
        let base = part.counts.clone();
        let mut conflicts = 0u64;
        let mut round = 0;
        loop {
            round += 1;
            let mut page = PageCounts::default();
            for decision in &decisions {
                page.counts.record(decision.outcome);
            }
            page.counts.concurrent_updates = conflicts;
            part.counts = base.clone().merged(&page.counts);
            let committed = match self.commit_page(part, owner, &records, &decisions).await? {
                Ok(c) => c,
                Err(LeaseLost) => return Ok(Settled::LeaseLost),
            };
            if committed.conflicts.is_empty() {
                // Only failed records are named in the summary.
                page.failed = records
                    .iter()
                    .zip(&decisions)
                    .filter_map(|(r, d)| match d.outcome {
                        Outcome::Failed(kind) => Some((r.location.clone(), failure_of(r, kind))),
                        _ => None,
                    })
                    .take(FAILED_SAMPLES)
                    .collect();
                // Writes a newer concurrent write superseded (recorded with the next page).
                page.counts.concurrent_updates += committed.superseded;
                part.counts.concurrent_updates += committed.superseded;
                return Ok(Settled::Committed(page));
            }
            conflicts += committed.conflicts.len() as u64;
            let index: HashMap<&str, usize> = records
                .iter()
                .enumerate()
                .map(|(i, r)| (r.position.as_str(), i))
                .collect();
            let conflicted: Vec<usize> = committed
                .conflicts
                .iter()
                .filter_map(|p| index.get(p.as_str()).copied())
                .collect();
            if round > CONFLICT_ROUNDS {
                for i in conflicted {
                    decisions[i] = Decision::of(Outcome::Failed("changed_concurrently"));
                }
                continue;
            }
            // Read them again (every committed change is visible) and process the new values.
            let now = self.store.reread(&committed.conflicts).await?;
            let mut fresh: HashMap<String, Record> =
                now.into_iter().map(|r| (r.position.clone(), r)).collect();
            let mut again = Vec::new();
            for i in conflicted {
                match fresh.remove(&records[i].position) {
                    Some(r) => {
                        records[i] = r;
                        again.push(i);
                    }
                    // Deleted or emptied meanwhile: nothing left to move.
                    None => decisions[i] = Decision::of(Outcome::Skipped),
                }
            }
            let refs: Vec<&Record> = again.iter().map(|&i| &records[i]).collect();
            match self.processor.process(&refs).await {
                Ok(new) => {
                    for (i, d) in again.into_iter().zip(new) {
                        decisions[i] = d;
                    }
                }
                Err(Stop(e)) => return Ok(Settled::Stopped(e)),
            }
        }
    }

    /// One commit of a page's changes with the checkpoint.
    async fn commit_page(
        &self,
        part: &Part,
        owner: Option<&str>,
        records: &[Record],
        decisions: &[Decision],
    ) -> Result<Result<Committed, LeaseLost>, CliError> {
        let writes: Vec<Write<'_>> = records
            .iter()
            .zip(decisions)
            .filter_map(|(record, d)| d.change.as_ref().map(|change| Write { record, change }))
            .collect();
        let checkpoint = Checkpoint {
            job_id: &self.job_id,
            part,
            owner,
            lease: self.lease,
        };
        match self.store.commit(&writes, Some(&checkpoint)).await {
            Ok(c) => Ok(Ok(c)),
            Err(CommitError::LeaseLost) => Ok(Err(LeaseLost)),
            Err(CommitError::Failed(e)) => Err(e),
        }
    }
}

/// Another worker holds the part's lease now.
struct LeaseLost;

/// A committed page's counts and its failed records (location, kind).
#[derive(Default)]
struct PageCounts {
    counts: Counts,
    failed: Vec<(String, String)>,
}

/// How a page's commit ended.
enum Settled {
    Committed(PageCounts),
    Stopped(envelope::Error),
    LeaseLost,
}

/// How a failed record is named in a summary: its kind, and for a value that could not be
/// read at all, why (the store's own words: `malformed: … not an envelope ciphertext …`).
fn failure_of(record: &Record, kind: &str) -> String {
    match &record.value {
        Value::Ciphertext {
            stored: Err(envelope::Error::Malformed { field, reason }),
            ..
        } => format!("{kind} ({field}): {reason}"),
        Value::Ciphertext { stored: Err(e), .. } => format!("{kind}: {e}"),
        _ => kind.to_owned(),
    }
}
