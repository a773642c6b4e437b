//! The end-of-job summary (human lines or `--json`) and the progress bar.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::engine::counts::Counts;
use crate::engine::store::{ConnectionInfo, WriteGuarantee};

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
            match self.kind.as_str() {
                "rewrap" => "rewrapped",
                "reindex" => "index values written",
                _ => "re-encrypted",
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
                "  note: each file or object is compared, then replaced; a writer between the \
                 two loses its write\n",
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
