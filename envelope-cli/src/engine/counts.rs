//! What happened to each record, and the counts of a job: the engine's vocabulary, shared
//! by the store seam (checkpoints), the page processor and the summary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new value is to be written (the processor's `Decision` carries it).
    Changed,
    /// Already under the current version (rewrap).
    Current,
    /// Not selected by the filter (reencrypt), or a compact value (rewrap: its DEK
    /// rotates in the DEK store, the value never changes).
    Skipped,
    /// Left untouched, for this reason (an error kind, `mislabeled`, `aad_template`,
    /// `changed_concurrently`).
    Failed(&'static str),
}

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
