//! The index key store contract: where index keys live, wrapped by the KMS like DEKs, one
//! row per (index, version). The SQLite and PostgreSQL DEK stores of `envelope-dekstore`
//! implement it in a table beside their DEKs (core knows no database).

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::Result;
use crate::kms::{EncryptionContext, WrappedDek};
use crate::suite::COMMITMENT_LEN;

/// The encryption-context keys an index key's wrap binds, besides the envelope's own
/// context: its index, version and commitment (lower-case hex). A wrapped index key copied
/// into another row fails to unwrap.
pub const INDEX_BINDING_KEYS: [&str; 3] = [
    "envelope:index",
    "envelope:index_version",
    "envelope:commitment",
];

/// The context an index key is wrapped and unwrapped under.
pub fn index_binding_context(
    base: &EncryptionContext,
    index: &str,
    version: u16,
    commitment: &[u8; COMMITMENT_LEN],
) -> EncryptionContext {
    let mut context = base.clone();
    let hex: String = commitment.iter().map(|b| format!("{b:02x}")).collect();
    for (key, value) in
        INDEX_BINDING_KEYS
            .into_iter()
            .zip([index.to_owned(), version.to_string(), hex])
    {
        context.insert(key.to_owned(), value);
    }
    context
}

/// The state of one index-key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexState {
    /// Writes and queries (one version per index).
    Active,
    /// Queries only: the previous active version during a rotation window, until
    /// `envelope reindex` has moved every row and the version is retired.
    Query,
    /// Refused for writes and queries.
    Retired,
}

impl IndexState {
    /// The stored name: `active`, `query`, `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexState::Active => "active",
            IndexState::Query => "query",
            IndexState::Retired => "retired",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "active" => Some(IndexState::Active),
            "query" => Some(IndexState::Query),
            "retired" => Some(IndexState::Retired),
            _ => None,
        }
    }
}

impl fmt::Display for IndexState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an index's bit length was chosen (recorded for people: the bits decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexMode {
    /// Long enough that false positives are negligible: a lookup returns the row.
    Unique,
    /// Deliberately colliding: each tag is shared by several distinct values, so the
    /// column does not reveal which rows are equal, and lookups filter the candidates.
    Private,
}

impl IndexMode {
    /// `unique` or `private`.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexMode::Unique => "unique",
            IndexMode::Private => "private",
        }
    }

    /// Parses `unique` or `private`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "unique" => Some(IndexMode::Unique),
            "private" => Some(IndexMode::Private),
            _ => None,
        }
    }
}

impl fmt::Display for IndexMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the index key store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIndexKey {
    /// The index name (the hash's domain).
    pub index: String,
    /// The version (from 1).
    pub version: u16,
    /// Its state.
    pub state: IndexState,
    /// Tag bits, 8 to 256.
    pub bits: u16,
    /// How the bits were chosen.
    pub mode: IndexMode,
    /// The normalizer spec ([`crate::blind_index::Normalizer::spec`]).
    pub normalizer: String,
    /// The index key wrapped by the KMS (bound to the row: [`index_binding_context`]).
    pub wrapped: WrappedDek,
    /// The key's commitment to this definition, checked after every unwrap.
    pub commitment: [u8; COMMITMENT_LEN],
    /// When the row was created.
    pub created: SystemTime,
}

/// Where index keys live.
///
/// The contract: `(index, version)` is unique and never reused; a row's definition
/// (bits, mode, normalizer, commitment) never changes; a KEK rotation changes only its
/// wrapped key ([`IndexKeyStore::replace_index_wrap`]); at most one version per index is
/// [`IndexState::Active`]. Errors: [`crate::Error::Unavailable`] when unreachable, else
/// [`crate::Error::DekStore`].
#[async_trait]
pub trait IndexKeyStore: Send + Sync + fmt::Debug {
    /// Stores a new version. With `activate`, it is stored active and the index's active
    /// version (if any) becomes [`IndexState::Query`] in the same transaction; otherwise
    /// the row's own state is kept. Fails with [`crate::Error::DekStore`] when the version
    /// exists.
    async fn insert_index_key(&self, key: &StoredIndexKey, activate: bool) -> Result<()>;

    /// Every version of `index`, in version order (empty when there is none).
    async fn index_keys(&self, index: &str) -> Result<Vec<StoredIndexKey>>;

    /// Every row, by index and version.
    async fn all_index_keys(&self) -> Result<Vec<StoredIndexKey>>;

    /// Sets a version's state (making one active demotes the active one to
    /// [`IndexState::Query`] in the same transaction); `false` when there is no such row.
    async fn set_index_state(&self, index: &str, version: u16, state: IndexState) -> Result<bool>;

    /// Replaces a row's wrapped key where it still holds `old` (a KEK rotation); `false`
    /// when it no longer does.
    async fn replace_index_wrap(
        &self,
        index: &str,
        version: u16,
        old: &WrappedDek,
        new: &WrappedDek,
    ) -> Result<bool>;

    /// Where the store is, for messages.
    fn index_store_location(&self) -> String;
}
