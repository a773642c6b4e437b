//! The `envelope_jobs` checkpoint table: one row per job and key range, updated in the
//! same transaction as each batch, so that a killed job resumes exactly after the last
//! committed batch.

use std::collections::BTreeMap;

use tokio_postgres::{Client, GenericClient};

use super::Target;
use crate::exit::CliError;
use crate::summary::Counts;

/// The checkpoint table's definition (created on first use).
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS envelope_jobs (
    job_id text NOT NULL,
    part integer NOT NULL,
    kind text NOT NULL,
    table_name text NOT NULL,
    column_name text NOT NULL,
    key_uri text NOT NULL,
    range_start text,
    range_end text,
    last_key text,
    finished boolean NOT NULL DEFAULT false,
    scanned bigint NOT NULL DEFAULT 0,
    changed bigint NOT NULL DEFAULT 0,
    already_current bigint NOT NULL DEFAULT 0,
    skipped bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    concurrent_updates bigint NOT NULL DEFAULT 0,
    failures text NOT NULL DEFAULT '{}',
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, part)
)";

/// One key range of a job and how far it got.
#[derive(Debug, Clone)]
pub struct Part {
    /// The range's number.
    pub part: i32,
    /// Keys after this one (exclusive; `None`: from the first key).
    pub range_start: Option<String>,
    /// Keys up to this one (inclusive; `None`: to the last key).
    pub range_end: Option<String>,
    /// The last key of the last committed batch.
    pub last_key: Option<String>,
    /// Whether the range is done.
    pub finished: bool,
    /// Counts so far.
    pub counts: Counts,
}

/// A job as the table records it.
#[derive(Debug)]
pub struct JobRecord {
    /// `rewrap` or `reencrypt`.
    pub kind: String,
    /// The table as named when the job started.
    pub table: String,
    /// The column.
    pub column: String,
    /// The key URI.
    pub key_uri: String,
    /// Its ranges.
    pub parts: Vec<Part>,
}

/// Creates the table if needed.
pub async fn ensure_table(client: &Client) -> Result<(), CliError> {
    client.batch_execute(SCHEMA).await.map_err(|e| {
        CliError::new(format!(
            "cannot create the envelope_jobs checkpoint table: {}",
            super::describe_pg_error(&e)
        ))
    })
}

/// Records a new job with its ranges.
pub async fn create(
    client: &mut Client,
    job_id: &str,
    kind: &str,
    target: &Target,
    key_uri: &str,
    ranges: &[(Option<String>, Option<String>)],
) -> Result<Vec<Part>, CliError> {
    let tx = client.transaction().await?;
    let mut parts = Vec::with_capacity(ranges.len());
    for (i, (start, end)) in ranges.iter().enumerate() {
        let part = i as i32;
        tx.execute(
            "INSERT INTO envelope_jobs (job_id, part, kind, table_name, column_name, key_uri, \
             range_start, range_end) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &job_id,
                &part,
                &kind,
                &target.table,
                &target.column,
                &key_uri,
                start,
                end,
            ],
        )
        .await?;
        parts.push(Part {
            part,
            range_start: start.clone(),
            range_end: end.clone(),
            last_key: None,
            finished: false,
            counts: Counts::default(),
        });
    }
    tx.commit().await?;
    Ok(parts)
}

/// Loads a job, or explains that there is none by that id.
pub async fn load(client: &Client, job_id: &str) -> Result<JobRecord, CliError> {
    let rows = client
        .query(
            "SELECT part, kind, table_name, column_name, key_uri, range_start, range_end, \
             last_key, finished, scanned, changed, already_current, skipped, failed, \
             concurrent_updates, failures FROM envelope_jobs WHERE job_id = $1 ORDER BY part",
            &[&job_id],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Err(CliError::new(format!(
            "no job {job_id:?} in envelope_jobs: nothing to resume"
        )));
    };
    let mut record = JobRecord {
        kind: first.get(1),
        table: first.get(2),
        column: first.get(3),
        key_uri: first.get(4),
        parts: Vec::new(),
    };
    for row in &rows {
        let count = |i: usize| row.get::<_, i64>(i) as u64;
        let failures: String = row.get(15);
        let failures: BTreeMap<String, u64> = serde_json::from_str(&failures).map_err(|e| {
            CliError::new(format!("job {job_id:?}: unreadable failure counts: {e}"))
        })?;
        record.parts.push(Part {
            part: row.get(0),
            range_start: row.get(5),
            range_end: row.get(6),
            last_key: row.get(7),
            finished: row.get(8),
            counts: Counts {
                scanned: count(9),
                changed: count(10),
                already_current: count(11),
                skipped: count(12),
                failed: count(13),
                concurrent_updates: count(14),
                failures,
            },
        });
    }
    Ok(record)
}

/// Saves a range's progress (inside the batch's transaction).
pub async fn save(client: &impl GenericClient, job_id: &str, part: &Part) -> Result<(), CliError> {
    let c = &part.counts;
    let n = |v: u64| v as i64;
    let failures = serde_json::to_string(&c.failures)
        .map_err(|e| CliError::new(format!("cannot record failure counts: {e}")))?;
    client
        .execute(
            "UPDATE envelope_jobs SET last_key = $3, finished = $4, scanned = $5, changed = $6, \
             already_current = $7, skipped = $8, failed = $9, concurrent_updates = $10, \
             failures = $11, updated_at = now() WHERE job_id = $1 AND part = $2",
            &[
                &job_id,
                &part.part,
                &part.last_key,
                &part.finished,
                &n(c.scanned),
                &n(c.changed),
                &n(c.already_current),
                &n(c.skipped),
                &n(c.failed),
                &n(c.concurrent_updates),
                &failures,
            ],
        )
        .await?;
    Ok(())
}
