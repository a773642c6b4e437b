//! The DEK store: where the compact form's wrapped DEKs live, once each.
//!
//! Core defines the contract; the SQLite and PostgreSQL implementations live in the
//! `envelope-dekstore` crate (core knows no database).

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::compact::DekId;
use crate::error::Result;
use crate::kms::WrappedDek;
use crate::suite::{COMMITMENT_LEN, Suite};

/// The lifecycle state of a stored DEK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DekState {
    /// Decrypts (every DEK starts here).
    Active,
    /// Refused for decryption (after its values moved to new DEKs with `reencrypt`):
    /// decrypting under it fails with [`crate::Error::DekNotFound`], and re-activating it
    /// restores access. Delete the row to destroy the DEK for good.
    Retired,
}

impl DekState {
    /// The stored name: `active` or `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            DekState::Active => "active",
            DekState::Retired => "retired",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "active" => Some(DekState::Active),
            "retired" => Some(DekState::Retired),
            _ => None,
        }
    }
}

impl fmt::Display for DekState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DEK to store: the store assigns its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDek {
    /// The suite the DEK's AEAD key and commitment are derived for.
    pub suite: Suite,
    /// The DEK wrapped by the KMS (the same KEK reference a v1 header carries).
    pub wrapped: WrappedDek,
    /// The key commitment of the DEK for `suite` (`docs/FORMAT.md`, "Key derivation").
    pub commitment: [u8; COMMITMENT_LEN],
}

/// One row of a DEK store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDek {
    /// The id compact ciphertexts name it by.
    pub id: DekId,
    /// The suite of its AEAD key and commitment.
    pub suite: Suite,
    /// The wrapped DEK and the KEK version that wrapped it (replaced by a rotation).
    pub wrapped: WrappedDek,
    /// The key commitment, checked against the unwrapped DEK on every load.
    pub commitment: [u8; COMMITMENT_LEN],
    /// When the row was stored.
    pub created: SystemTime,
    /// Whether it may decrypt.
    pub state: DekState,
}

/// One change a rotation applies: the row's wrapped DEK `old` becomes `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDekChange {
    /// The row.
    pub id: DekId,
    /// The wrapped DEK the job read (the change applies only if the row still holds it).
    pub old: WrappedDek,
    /// The wrapped DEK under the current KEK version.
    pub new: WrappedDek,
}

/// A rotation job's checkpoint, saved with each page of changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCheckpoint {
    /// The job id.
    pub job: String,
    /// The last id the job has finished (every row up to it is done).
    pub last_id: DekId,
    /// The job's running counts, as the job serialized them.
    pub progress: String,
}

/// The table of wrapped DEKs that compact ciphertexts name by id.
///
/// The contract every implementation keeps (the security argument in `docs/FORMAT.md`
/// rests on it):
/// - [`DekStore::insert`] assigns an id no row of this store has ever had (a database
///   sequence under a primary key: never reused, even after a delete);
/// - [`DekStore::get`] returns the row stored under that id or `None`;
/// - a rotation changes only a row's wrapped DEK, never its id, suite or commitment.
///
/// Errors: an unreachable store is [`crate::Error::Unavailable`] (retryable); any other
/// failure [`crate::Error::DekStore`]. Implementations never log or return key material
/// (the store holds wrapped DEKs only).
#[async_trait]
pub trait DekStore: Send + Sync + fmt::Debug {
    /// Stores a new DEK and returns the id assigned to it.
    async fn insert(&self, dek: &NewDek) -> Result<DekId>;

    /// Copies a row from another store keeping its id, state and creation time (migrating
    /// a store, loading test vectors). Fails with [`crate::Error::DekStore`] when the id is
    /// taken; later [`DekStore::insert`]s get ids above every imported one.
    async fn import(&self, row: &StoredDek) -> Result<()>;

    /// The row stored under `id`, or `None`.
    async fn get(&self, id: DekId) -> Result<Option<StoredDek>>;

    /// Up to `limit` rows with ids greater than `after` (all when `None`), in id order.
    async fn list(&self, after: Option<DekId>, limit: usize) -> Result<Vec<StoredDek>>;

    /// Applies `changes` and saves `checkpoint` atomically: each change only where the row
    /// still holds its `old` wrapped DEK. Returns how many rows changed.
    async fn apply_rewraps(
        &self,
        changes: &[WrappedDekChange],
        checkpoint: &StoreCheckpoint,
    ) -> Result<usize>;

    /// The saved checkpoint of a rotation job, if any.
    async fn checkpoint(&self, job: &str) -> Result<Option<StoreCheckpoint>>;

    /// Sets a row's state; `false` when there is no such row.
    async fn set_state(&self, id: DekId, state: DekState) -> Result<bool>;

    /// Where the store is, for messages (a path or a URI without credentials).
    fn location(&self) -> String;
}
