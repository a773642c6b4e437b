//! The DEK store: where the compact form's wrapped DEKs live, once each.
//!
//! Core defines the contract; the SQLite and PostgreSQL implementations live in the
//! `envelope-dekstore` crate (core knows no database).

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::compact::DekId;
use crate::error::{Error, Result};
use crate::kms::{EncryptionContext, WrappedDek};
use crate::suite::{COMMITMENT_LEN, Suite};

/// The encryption-context keys a stored DEK's wrap binds (`docs/FORMAT.md`, "Rows bound to
/// their ids"); an envelope's own context may not use the `envelope:` prefix.
pub const BINDING_KEYS: [&str; 3] = ["envelope:dek_id", "envelope:suite", "envelope:commitment"];

/// The prefix of the encryption-context keys the SDK reserves for itself.
pub const RESERVED_CONTEXT_PREFIX: &str = "envelope:";

/// The encryption context a stored DEK is wrapped and unwrapped under: the envelope's
/// `base` context plus the row's DEK id (decimal), suite name and commitment (lower-case
/// hex). A genuine wrapped DEK copied into another row (another id, suite or commitment)
/// then fails to unwrap.
pub fn binding_context(
    base: &EncryptionContext,
    id: DekId,
    suite: Suite,
    commitment: &[u8; COMMITMENT_LEN],
) -> EncryptionContext {
    let mut context = base.clone();
    let mut hex = String::with_capacity(2 * COMMITMENT_LEN);
    for b in commitment {
        // Writing to a String cannot fail.
        let _ = std::fmt::Write::write_fmt(&mut hex, format_args!("{b:02x}"));
    }
    for (key, value) in BINDING_KEYS
        .into_iter()
        .zip([id.to_string(), suite.name().to_owned(), hex])
    {
        context.insert(key.to_owned(), value);
    }
    context
}

/// Refuses an envelope context that uses the reserved `envelope:` prefix.
pub(crate) fn check_user_context(context: &EncryptionContext) -> Result<()> {
    match context
        .keys()
        .find(|k| k.starts_with(RESERVED_CONTEXT_PREFIX))
    {
        Some(key) => Err(Error::InvalidConfig(format!(
            "encryption context key {key:?}: the prefix {RESERVED_CONTEXT_PREFIX:?} is reserved for the DEK store's row binding"
        ))),
        None => Ok(()),
    }
}

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

/// A DEK to store under a reserved id, its wrap bound to that id ([`binding_context`]).
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
    /// Whether the wrap binds the row's id, suite and commitment ([`binding_context`]):
    /// every row written by this version, and every row a rotation has moved. Rows written
    /// before it are unbound until the store's next rotation binds them. The flag only says
    /// which context to unwrap under: clearing it on a bound row makes the unwrap fail.
    pub bound: bool,
}

impl StoredDek {
    /// The encryption context this row's wrapped DEK unwraps under: the binding context
    /// when [`StoredDek::bound`], else `base` alone.
    pub fn unwrap_context(&self, base: &EncryptionContext) -> EncryptionContext {
        if self.bound {
            binding_context(base, self.id, self.suite, &self.commitment)
        } else {
            base.clone()
        }
    }
}

/// One change a rotation applies: the row's wrapped DEK `old` becomes `new`, bound to the
/// row ([`binding_context`]): the store sets the row's `bound` flag with it.
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
/// - [`DekStore::reserve_id`] hands out an id no row of this store has ever had and no
///   later call will hand out again (a database sequence under a primary key: never
///   reused, even after a delete); [`DekStore::insert`] stores a row under it;
/// - [`DekStore::get`] returns the row stored under that id or `None`;
/// - a rotation changes only a row's wrapped DEK, never its id, suite or commitment.
///
/// Errors: an unreachable store is [`crate::Error::Unavailable`] (retryable); any other
/// failure [`crate::Error::DekStore`]. Implementations never log or return key material
/// (the store holds wrapped DEKs only).
#[async_trait]
pub trait DekStore: Send + Sync + fmt::Debug {
    /// Reserves a fresh id for a DEK about to be wrapped: the wrap binds it
    /// ([`binding_context`]), so the id must be known before the row is written.
    async fn reserve_id(&self) -> Result<DekId>;

    /// Stores a new DEK (bound, active) under an id [`DekStore::reserve_id`] returned. Fails
    /// with [`crate::Error::DekStore`] when the id is taken.
    async fn insert(&self, id: DekId, dek: &NewDek) -> Result<()>;

    /// Copies a row from another store keeping its id, state and creation time (migrating
    /// a store, loading test vectors). Fails with [`crate::Error::DekStore`] when the id is
    /// taken; later [`DekStore::insert`]s get ids above every imported one.
    async fn import(&self, row: &StoredDek) -> Result<()>;

    /// The row stored under `id`, or `None`.
    async fn get(&self, id: DekId) -> Result<Option<StoredDek>>;

    /// Up to `limit` rows with ids greater than `after` (all when `None`), in id order.
    async fn list(&self, after: Option<DekId>, limit: usize) -> Result<Vec<StoredDek>>;

    /// Applies `changes` and saves `checkpoint` atomically: each change only where the row
    /// still holds its `old` wrapped DEK, marking the row bound. Returns how many rows
    /// changed.
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
