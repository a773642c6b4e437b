//! The store seam: what a place that keeps ciphertexts (a PostgreSQL column, a directory,
//! the DEK store) implements so that every job runs on it.
//!
//! A store hands out [`Record`]s page by page in a stable order of *positions* (opaque
//! strings the store alone interprets: a primary key, a relative path, a DEK id), writes
//! changed values back with a compare-and-set on the value it handed out, and keeps the
//! job's checkpoint where it can commit it with the values (a [`Ledger`]).

use std::time::Duration;

use async_trait::async_trait;
use envelope::WrappedDek;
use envelope::blind_index::IndexValue;
use envelope::compact::StoredDek;
use serde::{Deserialize, Serialize};

use crate::engine::counts::Counts;
use crate::exit::CliError;
use crate::value::Stored;

/// A key range of a store: positions after `start` (exclusive) up to `end` (inclusive);
/// `None` is open-ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// Positions after this one (`None`: from the first).
    pub start: Option<String>,
    /// Positions up to this one (`None`: to the last).
    pub end: Option<String>,
}

impl Range {
    /// The whole store.
    pub fn all() -> Self {
        Range::default()
    }

    /// The positions of a store that keeps them in a sorted list (files, objects) that a
    /// page reads, in order: after `after` (the last one read; else after the range's
    /// start), up to the range's end.
    pub fn positions<'a>(
        &self,
        sorted: &'a [String],
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a String> + use<'a> {
        let first = match after.or(self.start.as_deref()) {
            Some(a) => sorted.partition_point(|p| p.as_str() <= a),
            None => 0,
        };
        let end = self.end.clone();
        sorted[first..]
            .iter()
            .take_while(move |p| end.as_deref().is_none_or(|e| p.as_str() <= e))
    }
}

/// One range of a job and how far it got (a checkpoint row).
#[derive(Debug, Clone)]
pub struct Part {
    /// The range's number within its job.
    pub number: i32,
    /// The range.
    pub range: Range,
    /// The position of the last record of the last committed page.
    pub last: Option<String>,
    /// Whether the range is done.
    pub finished: bool,
    /// Counts so far (every run and worker that worked on this range).
    pub counts: Counts,
}

impl Part {
    /// A fresh part over `range`.
    pub fn new(number: i32, range: Range) -> Self {
        Part {
            number,
            range,
            last: None,
            finished: false,
            counts: Counts::default(),
        }
    }
}

/// What a stored record holds.
#[derive(Debug)]
pub enum Value {
    /// A ciphertext (either form, either encoding).
    Ciphertext {
        /// The decoded value, or why it is not an envelope ciphertext.
        stored: Result<Stored, envelope::Error>,
        /// The AAD it was encrypted with (re-encryption), or why it cannot be rebuilt.
        aad: Result<Vec<u8>, String>,
    },
    /// A DEK store row (its wrapped DEK rotates; no value is written).
    DekRow(StoredDek),
}

/// A blind-index column's value beside a ciphertext, as read (`reindex`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexCell {
    /// The raw bytes (text form as UTF-8, or the binary form).
    pub raw: Vec<u8>,
    /// Whether the column holds the text form.
    pub text: bool,
}

impl IndexCell {
    /// The index value it holds, if it parses.
    pub fn value(&self) -> Option<IndexValue> {
        if self.text {
            std::str::from_utf8(&self.raw)
                .ok()
                .and_then(|t| IndexValue::from_text(t).ok())
        } else {
            IndexValue::from_bytes(&self.raw).ok()
        }
    }
}

/// One stored value as read.
#[derive(Debug)]
pub struct Record {
    /// Where it is in the store's order (opaque to the engine).
    pub position: String,
    /// Where it is, for people (`table.column[key]`, a file path, `dek 42`).
    pub location: String,
    /// The raw bytes as read (text or binary), which a write-back compares against.
    pub read: Vec<u8>,
    /// What it holds.
    pub value: Value,
    /// The blind-index column's value beside it, for a store opened with one (`reindex`):
    /// `None` when not read or NULL.
    pub index: Option<IndexCell>,
}

/// A new value for a record.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new ciphertext, encoded in the record's own form (text or binary).
    Ciphertext(Vec<u8>),
    /// A DEK store row's new wrapped DEK.
    Wrapped(WrappedDek),
    /// Re-encrypt the stream (format version 4) whose header the record holds, bound to
    /// this AAD: the store reads the stream and writes its replacement itself, in constant
    /// memory (only stores that hand out stream headers get it).
    ReencryptStream {
        /// The stream's AAD, kept.
        aad: Vec<u8>,
    },
    /// A new value for the record's blind-index column (the ciphertext stays), encoded by
    /// the store in its column's form; written only where the ciphertext and the index
    /// column still hold what was read.
    Index(IndexValue),
}

/// A record and the value that replaces it, if it still holds what was read.
#[derive(Debug)]
pub struct Write<'a> {
    /// The record as read.
    pub record: &'a Record,
    /// Its replacement.
    pub change: &'a Change,
}

impl Write<'_> {
    /// The new ciphertext, or an error for a store that keeps ciphertexts only.
    pub fn ciphertext(&self) -> Result<&[u8], CommitError> {
        match self.change {
            Change::Ciphertext(new) => Ok(new),
            _ => Err(self.wrong_change("a ciphertext")),
        }
    }

    /// The AAD of a stream to re-encrypt in place, or `None` for any other change.
    pub fn reencrypt_stream(&self) -> Option<&[u8]> {
        match self.change {
            Change::ReencryptStream { aad } => Some(aad),
            _ => None,
        }
    }

    /// The new wrapped DEK, or an error for a store that keeps DEK rows only.
    pub fn wrapped(&self) -> Result<&WrappedDek, CommitError> {
        match self.change {
            Change::Wrapped(new) => Ok(new),
            _ => Err(self.wrong_change("a new wrapped DEK")),
        }
    }

    /// The new blind-index value, or an error for a store without an index column.
    pub fn index(&self) -> Result<&IndexValue, CommitError> {
        match self.change {
            Change::Index(new) => Ok(new),
            _ => Err(self.wrong_change("a blind-index value")),
        }
    }

    fn wrong_change(&self, takes: &str) -> CommitError {
        CommitError::Failed(CliError::new(format!(
            "{}: this store takes {takes} only",
            self.record.location
        )))
    }
}

/// A job's progress to record with a page's writes.
#[derive(Debug)]
pub struct Checkpoint<'a> {
    /// The job id.
    pub job_id: &'a str,
    /// The part, with its `last`, `finished` and `counts` as they are once the page is in.
    pub part: &'a Part,
    /// The worker that holds the part's lease (cooperative jobs); the commit fails with
    /// [`CommitError::LeaseLost`] when another worker took the part over.
    pub owner: Option<&'a str>,
    /// The lease to renew with the commit.
    pub lease: Duration,
}

/// How a commit went.
#[derive(Debug, Default)]
pub struct Committed {
    /// Positions that no longer hold what was read. When not empty, *nothing* was written
    /// (values or checkpoint) by a transactional store: the engine reads them again,
    /// processes their new values and commits the page again.
    pub conflicts: Vec<String>,
    /// Writes a newer concurrent write superseded; the store kept the newer value and
    /// committed the rest (stores whose compare-and-set is per value).
    pub superseded: u64,
}

/// Why a commit failed.
#[derive(Debug)]
pub enum CommitError {
    /// Another worker holds the part's lease now: this worker's page was not written.
    LeaseLost,
    /// Any other failure (nothing of the page was written by a transactional store).
    Failed(CliError),
}

impl<E: Into<CliError>> From<E> for CommitError {
    fn from(e: E) -> Self {
        CommitError::Failed(e.into())
    }
}

/// How the store's connection is carried (for summaries and evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// Whether the connection was encrypted (TLS).
    pub encrypted: bool,
    /// The TLS version (`TLSv1.3`), when encrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// The `sslmode` it was made with.
    pub sslmode: String,
    /// Whether the server's certificate was verified (`verify-ca`, `verify-full`).
    pub server_verified: bool,
}

impl std::fmt::Display for ConnectionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.tls_version, self.server_verified) {
            (None, _) => write!(f, "PLAINTEXT (sslmode={})", self.sslmode),
            (Some(v), true) => write!(f, "{v}, server verified (sslmode={})", self.sslmode),
            (Some(v), false) => write!(f, "{v}, server NOT verified (sslmode={})", self.sslmode),
        }
    }
}

/// What a write-back guarantees against a concurrent writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteGuarantee {
    /// Every write of a page and its checkpoint commit in one transaction, each only where
    /// the value is still the one read.
    Transactional,
    /// Each value is replaced only where it is still the one read, one at a time; the
    /// checkpoint commits with the page's writes; a concurrent newer write wins.
    PerValueNewerWins,
    /// Each file or object is compared, then replaced: a writer between the compare and the
    /// replacement loses its write (not atomic); no checkpoint (a rerun skips what is done).
    CompareThenReplace,
}

/// A store's description, for summaries, plans and evidence.
#[derive(Debug, Clone, Serialize)]
pub struct StoreInfo {
    /// `postgres`, `files`, `dek-store`.
    pub kind: &'static str,
    /// Where: `table.column`, the directory, `DEK store sqlite:///…`.
    pub name: String,
    /// How it is reached, when over a network.
    pub connection: Option<ConnectionInfo>,
    /// What a write-back guarantees.
    pub writes: WriteGuarantee,
}

/// Where a store keeps the records of its jobs (checkpoints, and leases of cooperative
/// workers).
#[async_trait]
pub trait Ledger: Send + Sync {
    /// How this ledger's job ids begin (`rewrap`, `reencrypt`; `dekstore` for a DEK store
    /// rotation, so that `--resume` finds its store).
    fn id_prefix(&self, kind: &str) -> String {
        kind.to_owned()
    }

    /// Records a new job over these ranges. With `join`, a job already recorded under
    /// `job.id` is joined instead (it must be the same kind, store and key).
    async fn create(
        &self,
        job: &JobMeta,
        ranges: &[Range],
        join: bool,
    ) -> Result<Vec<Part>, CliError>;

    /// A recorded job (what it is, when the ledger records that) and its parts, or an
    /// error naming the id when there is none.
    async fn load(&self, job_id: &str) -> Result<(Option<JobMeta>, Vec<Part>), CliError>;

    /// Whether workers claim parts with leases ([`Ledger::claim`]), so that processes
    /// on many machines can share a job.
    fn leases(&self) -> bool {
        false
    }

    /// Frees the leases of a job's unfinished parts (a resume: their workers are gone).
    async fn release(&self, job_id: &str) -> Result<(), CliError> {
        let _ = job_id;
        Ok(())
    }

    /// Claims an unfinished part that nobody holds a live lease on, for `lease`.
    async fn claim(&self, job_id: &str, owner: &str, lease: Duration) -> Result<Claim, CliError>;
}

/// The answer to a claim.
#[derive(Debug)]
pub enum Claim {
    /// This part is now the caller's until its lease runs out (renewed by each commit).
    Part(Part),
    /// Every unfinished part is leased by a live worker; ask again after this long.
    Wait(Duration),
    /// Every part is finished.
    Done,
}

/// What identifies a job in a ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobMeta {
    /// The job id.
    pub id: String,
    /// `rewrap` or `reencrypt`.
    pub kind: String,
    /// The store's name ([`StoreInfo::name`]: `table.column` as named on the command line).
    pub store: String,
    /// The key URI.
    pub key_uri: String,
}

impl JobMeta {
    /// Refuses to resume or join a recorded job (`self`) that is not what `mine` describes.
    pub fn check_same(&self, mine: &JobMeta) -> Result<(), CliError> {
        if (&self.kind, &self.store, &self.key_uri) != (&mine.kind, &mine.store, &mine.key_uri) {
            return Err(CliError::new(format!(
                "job {:?} is a {} of {} with key {}; this command is a {} of {} with key {}",
                self.id, self.kind, self.store, self.key_uri, mine.kind, mine.store, mine.key_uri
            )));
        }
        Ok(())
    }
}

/// A place that keeps ciphertexts, as every job sees it. Implement it (one module in
/// `stores/`), register it in [`crate::stores::open_values`], and census, rewrap, reencrypt and
/// retire run on it.
#[async_trait]
pub trait Store: Send + Sync {
    /// What and where it is.
    fn info(&self) -> StoreInfo;

    /// Cuts the store into about `n` ranges of similar size (a store that cannot says one).
    async fn split(&self, n: u16) -> Result<Vec<Range>, CliError> {
        let _ = n;
        Ok(vec![Range::all()])
    }

    /// Up to `limit` records of `range` after position `after`, in position order. An
    /// empty page ends the range.
    async fn page(
        &self,
        range: &Range,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, CliError>;

    /// The records at these positions as they are now (a position gone, or now empty, is
    /// left out).
    async fn reread(&self, positions: &[String]) -> Result<Vec<Record>, CliError>;

    /// Writes each change where its record still holds what was read, together with the
    /// checkpoint when there is one (see [`WriteGuarantee`] for what "together" means
    /// for this store).
    async fn commit(
        &self,
        writes: &[Write<'_>],
        checkpoint: Option<&Checkpoint<'_>>,
    ) -> Result<Committed, CommitError>;

    /// The job ledger, when the store keeps checkpoints (jobs on a store without one are
    /// resumed by running them again: finished values are current).
    fn ledger(&self) -> Option<&dyn Ledger> {
        None
    }

    /// Checks before a new job that the store holds what jobs expect (e.g. a wrong column).
    async fn preflight(&self) -> Result<(), CliError> {
        Ok(())
    }

    /// How many records there are, when cheap to know (for the progress bar).
    async fn count(&self) -> Option<u64> {
        None
    }
}
