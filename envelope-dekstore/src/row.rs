//! Mapping between a DEK store row's columns and [`StoredDek`], shared by the stores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use envelope_core::compact::{DekId, DekState, StoreCheckpoint, StoredDek};
use envelope_core::{COMMITMENT_LEN, Error, Provider, Result, Suite, WrappedDek};

/// A row's columns as the stores read them.
pub(crate) struct RawRow {
    pub id: i64,
    pub suite: i64,
    pub provider: i64,
    pub key_id: String,
    pub key_version: String,
    pub wrapped_dek: Vec<u8>,
    pub commitment: Vec<u8>,
    pub created_unix: i64,
    pub state: String,
    pub bound: bool,
}

fn corrupt(id: i64, what: String) -> Error {
    Error::DekStore {
        operation: "get",
        message: format!("row {id} is corrupt: {what}"),
        source: None,
    }
}

impl RawRow {
    /// Checks every column (a row no SDK could have written is an error, not a guess).
    pub(crate) fn into_stored(self) -> Result<StoredDek> {
        let id = u64::try_from(self.id)
            .ok()
            .and_then(DekId::new)
            .ok_or_else(|| corrupt(self.id, "id is not positive".into()))?;
        let suite = u8::try_from(self.suite)
            .ok()
            .and_then(|s| Suite::from_id(s).ok())
            .ok_or_else(|| corrupt(self.id, format!("unknown suite {}", self.suite)))?;
        let provider = u8::try_from(self.provider)
            .ok()
            .and_then(|p| Provider::from_id(p).ok())
            .ok_or_else(|| corrupt(self.id, format!("unknown provider {}", self.provider)))?;
        let commitment: [u8; COMMITMENT_LEN] =
            self.commitment.as_slice().try_into().map_err(|_| {
                corrupt(
                    self.id,
                    format!("commitment of {} bytes", self.commitment.len()),
                )
            })?;
        let state = DekState::parse(&self.state)
            .ok_or_else(|| corrupt(self.id, format!("unknown state {:?}", self.state)))?;
        if self.key_id.is_empty() || self.wrapped_dek.is_empty() {
            return Err(corrupt(self.id, "empty key id or wrapped DEK".into()));
        }
        Ok(StoredDek {
            id,
            suite,
            wrapped: WrappedDek {
                provider,
                key_id: self.key_id,
                key_version: self.key_version,
                ciphertext: self.wrapped_dek,
            },
            commitment,
            created: UNIX_EPOCH + Duration::from_secs(self.created_unix.max(0) as u64),
            state,
            bound: self.bound,
        })
    }
}

/// A checkpoint as the stores' jobs tables hold it.
pub(crate) fn checkpoint(job: String, last_id: i64, progress: String) -> Result<StoreCheckpoint> {
    let id = u64::try_from(last_id)
        .ok()
        .and_then(DekId::new)
        .ok_or_else(|| Error::DekStore {
            operation: "checkpoint",
            message: format!("job {job}: last id {last_id} is not an id"),
            source: None,
        })?;
    Ok(StoreCheckpoint {
        job,
        last_id: id,
        progress,
    })
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An id a database assigned, as a [`DekId`].
pub(crate) fn assigned_id(operation: &'static str, id: i64) -> Result<DekId> {
    u64::try_from(id)
        .ok()
        .and_then(DekId::new)
        .ok_or_else(|| Error::DekStore {
            operation,
            message: format!("the database assigned id {id}"),
            source: None,
        })
}

/// An id as the databases' signed 64-bit integer.
pub(crate) fn sql_id(id: DekId) -> Result<i64> {
    i64::try_from(id.get()).map_err(|_| Error::DekStore {
        operation: "id",
        message: format!("DEK id {id} exceeds the stores' 2^63 - 1"),
        source: None,
    })
}
