//! The `envelope_jobs` ledger: one row per job and key range with its checkpoint (saved
//! in the same transaction as each page) and its lease (which worker holds the range, and
//! until when). Workers of any process claim unfinished ranges whose lease ran out with
//! `FOR UPDATE SKIP LOCKED`; a commit first renews the lease of the range it checkpoints,
//! and fails when another worker took the range over, so a page is written once.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::{Client, GenericClient, Row};

use super::Column;
use crate::engine::counts::Counts;
use crate::engine::store::{Checkpoint, Claim, JobMeta, Ledger, Part, Range};
use crate::exit::CliError;

/// The ledger table's definition (created on first use; the lease columns are added to a
/// table an earlier version created).
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
    owner text,
    lease_until timestamptz,
    PRIMARY KEY (job_id, part)
);
ALTER TABLE envelope_jobs ADD COLUMN IF NOT EXISTS owner text;
ALTER TABLE envelope_jobs ADD COLUMN IF NOT EXISTS lease_until timestamptz";

/// The columns [`part_of`] reads, in order.
const PART_COLUMNS: &str = "part, range_start, range_end, last_key, finished, scanned, \
     changed, already_current, skipped, failed, concurrent_updates, failures";

/// Creates the table if needed (serialized by an advisory lock: processes that join one
/// job start together).
async fn ensure_table(client: &mut Client) -> Result<(), CliError> {
    let create = async {
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('envelope_jobs'))",
            &[],
        )
        .await?;
        tx.batch_execute(SCHEMA).await?;
        tx.commit().await
    };
    create.await.map_err(|e| {
        CliError::new(format!(
            "cannot create the envelope_jobs checkpoint table: {}",
            super::describe_pg_error(&e)
        ))
    })
}

fn part_of(job_id: &str, row: &Row) -> Result<Part, CliError> {
    let count = |i: usize| row.get::<_, i64>(i) as u64;
    let failures: String = row.get(11);
    let failures: BTreeMap<String, u64> = serde_json::from_str(&failures)
        .map_err(|e| CliError::new(format!("job {job_id:?}: unreadable failure counts: {e}")))?;
    Ok(Part {
        number: row.get(0),
        range: Range {
            start: row.get(1),
            end: row.get(2),
        },
        last: row.get(3),
        finished: row.get(4),
        counts: Counts {
            scanned: count(5),
            changed: count(6),
            already_current: count(7),
            skipped: count(8),
            failed: count(9),
            concurrent_updates: count(10),
            failures,
        },
    })
}

async fn load_on(
    client: &impl GenericClient,
    job_id: &str,
) -> Result<Option<(JobMeta, Vec<Part>)>, CliError> {
    let rows = client
        .query(
            &format!(
                "SELECT {PART_COLUMNS}, kind, table_name, column_name, key_uri \
                 FROM envelope_jobs WHERE job_id = $1 ORDER BY part"
            ),
            &[&job_id],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let (table, column): (String, String) = (first.get(13), first.get(14));
    let meta = JobMeta {
        id: job_id.to_owned(),
        kind: first.get(12),
        store: format!("{table}.{column}"),
        key_uri: first.get(15),
    };
    let parts = rows
        .iter()
        .map(|r| part_of(job_id, r))
        .collect::<Result<_, _>>()?;
    Ok(Some((meta, parts)))
}

/// Saves a range's progress inside the page's transaction, renewing the lease of the
/// worker that holds it; `false` when another worker holds it now.
pub(super) async fn save(
    client: &impl GenericClient,
    c: &Checkpoint<'_>,
) -> Result<bool, CliError> {
    let counts = &c.part.counts;
    let n = |v: u64| v as i64;
    let failures = serde_json::to_string(&counts.failures)
        .map_err(|e| CliError::new(format!("cannot record failure counts: {e}")))?;
    let lease_ms = c.lease.as_millis() as i64;
    let updated = client
        .execute(
            "UPDATE envelope_jobs SET last_key = $3, finished = $4, scanned = $5, changed = $6, \
             already_current = $7, skipped = $8, failed = $9, concurrent_updates = $10, \
             failures = $11, updated_at = now(), \
             lease_until = CASE WHEN $12::text IS NULL THEN lease_until \
                 ELSE now() + $13::bigint * interval '1 millisecond' END \
             WHERE job_id = $1 AND part = $2 AND ($12::text IS NULL OR owner = $12::text)",
            &[
                &c.job_id,
                &c.part.number,
                &c.part.last,
                &c.part.finished,
                &n(counts.scanned),
                &n(counts.changed),
                &n(counts.already_current),
                &n(counts.skipped),
                &n(counts.failed),
                &n(counts.concurrent_updates),
                &failures,
                &c.owner,
                &lease_ms,
            ],
        )
        .await?;
    Ok(updated == 1)
}

#[async_trait]
impl Ledger for Column {
    fn leases(&self) -> bool {
        true
    }

    async fn create(
        &self,
        job: &JobMeta,
        ranges: &[Range],
        join: bool,
    ) -> Result<Vec<Part>, CliError> {
        let mut client = self.client().await?;
        let target = (self.target().table.as_str(), self.target().column.as_str());
        let result = create_on(&mut client, job, target, ranges, join).await;
        self.give_back(client).await;
        result
    }

    async fn load(&self, job_id: &str) -> Result<(Option<JobMeta>, Vec<Part>), CliError> {
        let mut client = self.client().await?;
        ensure_table(&mut client).await?;
        let loaded = load_on(&client, job_id).await;
        self.give_back(client).await;
        match loaded? {
            Some((meta, parts)) => Ok((Some(meta), parts)),
            None => Err(CliError::new(format!(
                "no job {job_id:?} in envelope_jobs: nothing to resume"
            ))),
        }
    }

    async fn release(&self, job_id: &str) -> Result<(), CliError> {
        let client = self.client().await?;
        let released = client
            .execute(
                "UPDATE envelope_jobs SET owner = NULL, lease_until = NULL \
                 WHERE job_id = $1 AND NOT finished",
                &[&job_id],
            )
            .await;
        self.give_back(client).await;
        released?;
        Ok(())
    }

    async fn claim(&self, job_id: &str, owner: &str, lease: Duration) -> Result<Claim, CliError> {
        let client = self.client().await?;
        let result = claim_on(&client, job_id, owner, lease).await;
        self.give_back(client).await;
        result
    }
}

async fn create_on(
    client: &mut Client,
    job: &JobMeta,
    (table, column): (&str, &str),
    ranges: &[Range],
    join: bool,
) -> Result<Vec<Part>, CliError> {
    ensure_table(client).await?;
    let tx = client.transaction().await?;
    // Processes joining one job create it once: the first one in records the ranges.
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&job.id])
        .await?;
    if let Some((theirs, parts)) = load_on(&tx, &job.id).await? {
        if !join {
            return Err(CliError::new(format!(
                "job {:?} exists already in envelope_jobs",
                job.id
            )));
        }
        theirs.check_same(job)?;
        tx.commit().await?;
        return Ok(parts);
    }
    let mut parts = Vec::with_capacity(ranges.len());
    for (i, range) in ranges.iter().enumerate() {
        let part = i as i32;
        tx.execute(
            "INSERT INTO envelope_jobs (job_id, part, kind, table_name, column_name, key_uri, \
             range_start, range_end) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &job.id,
                &part,
                &job.kind,
                &table,
                &column,
                &job.key_uri,
                &range.start,
                &range.end,
            ],
        )
        .await?;
        parts.push(Part::new(part, range.clone()));
    }
    tx.commit().await?;
    Ok(parts)
}

async fn claim_on(
    client: &Client,
    job_id: &str,
    owner: &str,
    lease: Duration,
) -> Result<Claim, CliError> {
    let lease_ms = lease.as_millis() as i64;
    let claimed = client
        .query_opt(
            &format!(
                "WITH free AS MATERIALIZED (SELECT part FROM envelope_jobs \
                       WHERE job_id = $1 AND NOT finished \
                       AND (owner IS NULL OR lease_until IS NULL OR lease_until < now()) \
                       ORDER BY part LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 UPDATE envelope_jobs j SET owner = $2, \
                     lease_until = now() + $3::bigint * interval '1 millisecond', \
                     updated_at = now() \
                 FROM free WHERE j.job_id = $1 AND j.part = free.part \
                 RETURNING {}",
                PART_COLUMNS
                    .split(", ")
                    .map(|c| format!("j.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[&job_id, &owner, &lease_ms],
        )
        .await?;
    if let Some(row) = claimed {
        return Ok(Claim::Part(part_of(job_id, &row)?));
    }
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE NOT finished), \
                    extract(epoch FROM min(lease_until - now()) FILTER (WHERE NOT finished))::float8 \
             FROM envelope_jobs WHERE job_id = $1",
            &[&job_id],
        )
        .await?;
    let unfinished: i64 = row.get(0);
    if unfinished == 0 {
        return Ok(Claim::Done);
    }
    // A part is leased by a worker that may be alive: look again when its lease runs out
    // (a part locked by a commit in flight is skipped, and seen again a moment later).
    let seconds: Option<f64> = row.get(1);
    let wait = seconds.unwrap_or(0.0).clamp(0.05, 1.0);
    Ok(Claim::Wait(Duration::from_secs_f64(wait)))
}
