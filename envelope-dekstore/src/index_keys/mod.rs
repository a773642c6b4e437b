//! The index key store ([`envelope_core::IndexKeyStore`]) of both DEK stores: a table of
//! wrapped index keys beside the DEKs, one row per (index, version).

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::time::{Duration, UNIX_EPOCH};

use envelope_core::blind_index::{IndexMode, IndexState, StoredIndexKey};
use envelope_core::{COMMITMENT_LEN, Error, Provider, Result, WrappedDek};

/// The columns every query reads, in [`RawIndexRow`]'s order.
pub(crate) const INDEX_COLUMNS: &str = "index_name, version, state, bits, mode, normalizer, provider, key_id, key_version, wrapped_key, commitment";

/// A row's columns as the stores read them.
pub(crate) struct RawIndexRow {
    pub index: String,
    pub version: i64,
    pub state: String,
    pub bits: i64,
    pub mode: String,
    pub normalizer: String,
    pub provider: i64,
    pub key_id: String,
    pub key_version: String,
    pub wrapped_key: Vec<u8>,
    pub commitment: Vec<u8>,
    pub created_unix: i64,
}

impl RawIndexRow {
    /// Checks every column (a row no SDK could have written is an error).
    pub(crate) fn into_stored(self) -> Result<StoredIndexKey> {
        let corrupt = |what: String| Error::DekStore {
            operation: "read index keys",
            message: format!(
                "index key {} version {} is corrupt: {what}",
                self.index, self.version
            ),
            source: None,
        };
        let version = u16::try_from(self.version)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| corrupt("version out of range".into()))?;
        let bits = u16::try_from(self.bits).map_err(|_| corrupt("bits out of range".into()))?;
        let state = IndexState::parse(&self.state)
            .ok_or_else(|| corrupt(format!("unknown state {:?}", self.state)))?;
        let mode = IndexMode::parse(&self.mode)
            .ok_or_else(|| corrupt(format!("unknown mode {:?}", self.mode)))?;
        let provider = u8::try_from(self.provider)
            .ok()
            .and_then(|p| Provider::from_id(p).ok())
            .ok_or_else(|| corrupt(format!("unknown provider {}", self.provider)))?;
        let commitment: [u8; COMMITMENT_LEN] = self
            .commitment
            .as_slice()
            .try_into()
            .map_err(|_| corrupt(format!("commitment of {} bytes", self.commitment.len())))?;
        Ok(StoredIndexKey {
            index: self.index,
            version,
            state,
            bits,
            mode,
            normalizer: self.normalizer,
            wrapped: WrappedDek {
                provider,
                key_id: self.key_id,
                key_version: self.key_version,
                ciphertext: self.wrapped_key,
            },
            commitment,
            created: UNIX_EPOCH + Duration::from_secs(self.created_unix.max(0) as u64),
        })
    }
}

/// The error for a version that exists already.
pub(crate) fn version_taken(key: &StoredIndexKey, location: &str) -> Error {
    Error::DekStore {
        operation: "insert index key",
        message: format!(
            "blind index {:?} already has version {} in {location} (a concurrent create or rotate?)",
            key.index, key.version
        ),
        source: None,
    }
}
