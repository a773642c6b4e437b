//! The JSON form of DEK store rows: what `testvectors/compact.json` carries in
//! `dek_store`, and what [`crate::compact::DekStore::import`] takes to copy rows between
//! stores (ids kept).
//!
//! ```json
//! [{"id": 1, "suite": "AES-256-GCM", "provider": "local", "key_id": "vectors",
//!   "key_version": "1", "wrapped_dek": "<hex>", "commitment": "<hex>", "state": "active",
//!   "bound": true}]
//! ```
//!
//! `created` (Unix seconds) is optional; `bound` is optional (absent: `false`, a row
//! written before rows were bound to their ids); any other member (the vectors' `dek`) is
//! ignored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::compact::{DekId, DekState, StoredDek};
use crate::error::{Error, Result};
use crate::kms::{Provider, WrappedDek};
use crate::suite::{COMMITMENT_LEN, Suite};

#[derive(Deserialize)]
struct RowJson {
    id: u64,
    suite: String,
    provider: String,
    key_id: String,
    key_version: String,
    wrapped_dek: String,
    commitment: String,
    state: String,
    #[serde(default)]
    created: Option<u64>,
    #[serde(default)]
    bound: bool,
}

fn invalid(what: String) -> Error {
    Error::InvalidConfig(format!("DEK store rows JSON: {what}"))
}

fn unhex(field: &str, id: u64, s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return Err(invalid(format!("row {id}: {field} is not hex")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| invalid(format!("row {id}: {field} is not hex")))
        })
        .collect()
}

/// Parses rows in the JSON form (an array of objects).
pub fn stored_deks_from_json(json: &[u8]) -> Result<Vec<StoredDek>> {
    let rows: Vec<RowJson> = serde_json::from_slice(json).map_err(|e| invalid(format!("{e}")))?;
    rows.into_iter()
        .map(|r| {
            let id = DekId::new(r.id).ok_or_else(|| invalid("id 0: ids start at 1".into()))?;
            let suite = Suite::from_name(&r.suite)
                .ok_or_else(|| invalid(format!("row {id}: unknown suite {:?}", r.suite)))?;
            let provider = Provider::from_scheme(&r.provider)
                .ok_or_else(|| invalid(format!("row {id}: unknown provider {:?}", r.provider)))?;
            let commitment: [u8; COMMITMENT_LEN] = unhex("commitment", r.id, &r.commitment)?
                .try_into()
                .map_err(|_| invalid(format!("row {id}: commitment is not 32 bytes")))?;
            let state = DekState::parse(&r.state)
                .ok_or_else(|| invalid(format!("row {id}: unknown state {:?}", r.state)))?;
            let ciphertext = unhex("wrapped_dek", r.id, &r.wrapped_dek)?;
            if r.key_id.is_empty() || ciphertext.is_empty() {
                return Err(invalid(format!("row {id}: empty key id or wrapped DEK")));
            }
            Ok(StoredDek {
                id,
                suite,
                wrapped: WrappedDek {
                    provider,
                    key_id: r.key_id,
                    key_version: r.key_version,
                    ciphertext,
                },
                commitment,
                created: UNIX_EPOCH + Duration::from_secs(r.created.unwrap_or(0)),
                state,
                bound: r.bound,
            })
        })
        .collect()
}

/// The JSON form of rows (no DEK, only what the store holds).
pub fn stored_deks_to_json(rows: &[StoredDek]) -> serde_json::Value {
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    rows.iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id.get(),
                "suite": r.suite.name(),
                "provider": r.wrapped.provider.scheme(),
                "key_id": r.wrapped.key_id,
                "key_version": r.wrapped.key_version,
                "wrapped_dek": hex(&r.wrapped.ciphertext),
                "commitment": hex(&r.commitment),
                "state": r.state.as_str(),
                "bound": r.bound,
                "created": r.created.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            })
        })
        .collect()
}
