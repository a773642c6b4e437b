//! The end-of-job summary (human lines or `--json`) and the progress bar.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::engine::process::Outcome;
use crate::engine::store::{ConnectionInfo, WriteGuarantee};

/// Counts of a job (one worker's, or all merged).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    /// Values read (NULLs are not values).
    pub scanned: u64,
    /// Values written back (rewrapped or re-encrypted).
    pub changed: u64,
    /// Values already under the current version (rewrap).
    pub already_current: u64,
    /// Values the filter did not select (reencrypt).
    pub skipped: u64,
    /// Values left untouched because they failed.
    pub failed: u64,
    /// Failed values by kind (`decryption_failed`, `mislabeled`, `malformed`, …).
    pub failures: BTreeMap<String, u64>,
    /// Rows an application changed between our read and our write; they were read again
    /// and processed from their new value.
    pub concurrent_updates: u64,
}

impl Counts {
    /// Counts one outcome.
    pub fn record(&mut self, outcome: Outcome) {
        self.scanned += 1;
        match outcome {
            Outcome::Changed => self.changed += 1,
            Outcome::Current => self.already_current += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Failed(kind) => {
                self.failed += 1;
                *self.failures.entry(kind.to_owned()).or_default() += 1;
            }
        }
    }

    /// These counts plus `other`'s.
    pub fn merged(mut self, other: &Counts) -> Counts {
        self.merge(other);
        self
    }

    /// Adds another worker's counts.
    pub fn merge(&mut self, other: &Counts) {
        self.scanned += other.scanned;
        self.changed += other.changed;
        self.already_current += other.already_current;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.concurrent_updates += other.concurrent_updates;
        for (k, v) in &other.failures {
            *self.failures.entry(k.clone()).or_default() += v;
        }
    }
}

/// What a finished (or stopped) job reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The job id (the store's ledger; empty for a store without one: files).
    pub job_id: String,
    /// `rewrap` or `reencrypt`.
    pub kind: String,
    /// Where: `table.column`, the directory, `DEK store …`.
    pub store: String,
    /// What kind of store: `postgres`, `files`, `dek-store`.
    pub store_kind: String,
    /// What the store's write-back guarantees against a concurrent writer.
    pub writes: WriteGuarantee,
    /// How the database connection was carried (PostgreSQL jobs): whether it was
    /// encrypted, the TLS version, the `sslmode` and whether the server was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_connection: Option<ConnectionInfo>,
    /// Counts over the whole job, including before a resume.
    pub total: Counts,
    /// Counts of this run alone.
    pub this_run: Counts,
    /// Up to 20 locations of failed values, with their kind.
    pub failed_samples: Vec<(String, String)>,
    /// KMS calls this run made.
    pub kms_calls: u64,
    /// Wall time of this run.
    pub duration_seconds: f64,
    /// Values per second in this run.
    pub rows_per_second: f64,
    /// `finished`, or `stopped` (resumable) with the reason.
    pub status: String,
}

impl Summary {
    /// The summary as lines for a person.
    pub fn render(&self) -> String {
        let t = &self.total;
        let mut out = format!(
            "{} {}: {} scanned, {} {}, {} already current, {} skipped, {} failed; \
             {} concurrent updates re-read; {} KMS calls; {:.1} s, {:.0} values/s this run; {}\n",
            self.kind,
            self.store,
            t.scanned,
            t.changed,
            if self.kind == "rewrap" {
                "rewrapped"
            } else {
                "re-encrypted"
            },
            t.already_current,
            t.skipped,
            t.failed,
            t.concurrent_updates,
            self.kms_calls,
            self.duration_seconds,
            self.rows_per_second,
            self.status,
        );
        for (kind, n) in &t.failures {
            out.push_str(&format!("  failed ({kind}): {n}\n"));
        }
        for (location, kind) in &self.failed_samples {
            out.push_str(&format!("  e.g. {location}: {kind}\n"));
        }
        if let Some(connection) = &self.database_connection {
            out.push_str(&format!("  database connection: {connection}\n"));
        }
        if self.writes == WriteGuarantee::CompareThenReplace {
            out.push_str(
                "  note: each file is compared, then renamed over; a writer between the two \
                 loses its write\n",
            );
        }
        if !self.job_id.is_empty() {
            out.push_str(&format!("  job id: {}\n", self.job_id));
        }
        out
    }

    /// Rates from a duration.
    pub fn timing(&mut self, elapsed: Duration) {
        self.duration_seconds = elapsed.as_secs_f64();
        self.rows_per_second = if self.duration_seconds > 0.0 {
            self.this_run.scanned as f64 / self.duration_seconds
        } else {
            0.0
        };
    }
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
pub fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let template = if total.is_some() {
        "{msg} [{bar:30}] {pos}/{len} rows, {per_sec}, ETA {eta}"
    } else {
        "{msg} {pos} rows, {per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}
