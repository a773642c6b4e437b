//! Blind indexes: index values of plaintexts (one, or a batch), the values a lookup must
//! match during a rotation window, and index administration (create, rotate, state).
//!
//! The client's options name the index key store (`index_store_uri`, else the DEK
//! store); without one these functions fail with `ENVELOPE_INVALID_ARGUMENT`.

use envelope::blind_index::{
    BlindIndexes, IndexMode, IndexSettings, IndexState, IndexValue, Normalizer,
};

use crate::batch::{BatchOutput, split};
use crate::boundary::{FfiError, boundary};
use crate::buffers::{array, give, input, non_null, utf8};
use crate::client::{Client, client_ref, envelope_client};
use crate::status::envelope_status;

/// The binary form of an index value (`version (u16 BE) | tag`): for `bytea` columns.
pub const ENVELOPE_INDEX_BINARY: u32 = 0;
/// The text form (`bi<version>:<base64url tag>`): for `text` columns.
pub const ENVELOPE_INDEX_TEXT: u32 = 1;

/// Index version state `active` (writes and queries).
pub const ENVELOPE_INDEX_ACTIVE: u32 = 1;
/// Index version state `query` (queries only: the rotation window).
pub const ENVELOPE_INDEX_QUERY: u32 = 2;
/// Index version state `retired` (refused).
pub const ENVELOPE_INDEX_RETIRED_STATE: u32 = 3;

fn indexes(client: &Client) -> Result<&BlindIndexes, FfiError> {
    client.indexes.as_ref().ok_or_else(|| {
        FfiError::Invalid(
            "this client has no index key store: set index_store_uri (or dek_store_uri) in its options".into(),
        )
    })
}

fn encode(value: &IndexValue, form: u32, out: &mut Vec<u8>) -> Result<(), FfiError> {
    match form {
        ENVELOPE_INDEX_BINARY => {
            out.extend_from_slice(&value.version().to_be_bytes());
            out.extend_from_slice(value.tag());
        }
        ENVELOPE_INDEX_TEXT => out.extend_from_slice(value.to_text().as_bytes()),
        other => {
            return Err(FfiError::Invalid(format!(
                "form {other}: use ENVELOPE_INDEX_BINARY (0) or ENVELOPE_INDEX_TEXT (1)"
            )));
        }
    }
    Ok(())
}

/// The optional name of a custom normalizer the caller already applied.
///
/// # Safety
/// `ptr` valid for `len` bytes (NULL when 0).
unsafe fn applied<'a>(ptr: *const u8, len: usize) -> Result<Option<&'a str>, FfiError> {
    // SAFETY: per the caller's contract.
    let bytes = unsafe { input(ptr, len, "custom_applied")? };
    if bytes.is_empty() {
        return Ok(None);
    }
    utf8(bytes, "custom_applied").map(Some)
}

/// Index values of `values` under the active version: the cached path on the caller's
/// thread, else a load on the client's runtime.
fn compute(
    client: &Client,
    index: &str,
    values: &[&[u8]],
    custom: Option<&str>,
) -> Result<Vec<IndexValue>, FfiError> {
    let indexes = indexes(client)?;
    if let Some(done) = indexes.try_compute_many(index, values, custom) {
        return Ok(done?);
    }
    Ok(client
        .envelope
        .run(indexes.compute_many(index, values, custom))?)
}

/// The index value of `value` under the index's active version, in `form`
/// (`ENVELOPE_INDEX_BINARY` or `ENVELOPE_INDEX_TEXT`). `custom_applied` (may be NULL)
/// names the index's `custom:NAME` normalizer when the caller already ran it on `value`.
/// Free `*out` with `envelope_bytes_free`.
///
/// # Safety
/// `index`, `value` and `custom_applied` valid for their lengths; `out`, `out_len` writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn envelope_blind_index(
    client: *const envelope_client,
    index: *const u8,
    index_len: usize,
    value: *const u8,
    value_len: usize,
    custom_applied: *const u8,
    custom_applied_len: usize,
    form: u32,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    boundary(|| {
        let (out, out_len) = (non_null(out, "out")?, non_null(out_len, "out_len")?);
        // SAFETY: per this function's contract.
        let (c, index, value, custom) = unsafe {
            (
                client_ref(client)?,
                utf8(input(index, index_len, "index")?, "index")?,
                input(value, value_len, "value")?,
                applied(custom_applied, custom_applied_len)?,
            )
        };
        let values = compute(c, index, &[value], custom)?;
        let mut bytes = Vec::new();
        encode(&values[0], form, &mut bytes)?;
        // SAFETY: checked non-null; writable per the contract.
        unsafe { give(out, out_len, bytes) };
        Ok(())
    })
}

/// Index values of `count` values in one call: item `i` is
/// `data[data_offsets[i] .. data_offsets[i + 1]]`; its index value is
/// `out[out_offsets[i] .. out_offsets[i + 1]]` (empty when `statuses[i]` is not
/// `ENVELOPE_OK`). Returns `ENVELOPE_OK` when the batch ran; a failure that concerns the
/// index itself (unknown, retired, mismatched normalizer) fails the call.
///
/// # Safety
/// As `envelope_encrypt_batch` for `data`, `data_offsets`, `statuses`, `out`, `out_len`,
/// `out_offsets`; `index` and `custom_applied` valid for their lengths.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn envelope_blind_index_batch(
    client: *const envelope_client,
    index: *const u8,
    index_len: usize,
    count: usize,
    data: *const u8,
    data_len: usize,
    data_offsets: *const usize,
    custom_applied: *const u8,
    custom_applied_len: usize,
    form: u32,
    statuses: *mut u32,
    out: *mut *mut u8,
    out_len: *mut usize,
    out_offsets: *mut usize,
) -> envelope_status {
    boundary(|| {
        let (out, out_len) = (non_null(out, "out")?, non_null(out_len, "out_len")?);
        let out_offsets = non_null(out_offsets, "out_offsets")?;
        if count > 0 {
            non_null(statuses, "statuses")?;
        }
        // SAFETY: per this function's contract.
        let (c, index, data, data_offsets, custom) = unsafe {
            (
                client_ref(client)?,
                utf8(input(index, index_len, "index")?, "index")?,
                input(data, data_len, "data")?,
                array(data_offsets, count + 1, "data_offsets")?,
                applied(custom_applied, custom_applied_len)?,
            )
        };
        let items = split(data, data_offsets, "data")?;
        let mut results = BatchOutput::new(count, count * 12);
        match compute(c, index, &items, custom) {
            Ok(values) => {
                for v in &values {
                    encode(v, form, &mut results.output)?;
                    results.ok();
                }
            }
            // A value a text normalizer refuses fails alone; the rest are computed one by one.
            Err(FfiError::Envelope(e)) if e.kind() == envelope::ErrorKind::Malformed => {
                for item in &items {
                    match compute(c, index, &[item], custom) {
                        Ok(v) => {
                            encode(&v[0], form, &mut results.output)?;
                            results.ok();
                        }
                        Err(FfiError::Envelope(e)) => results.failed(&e),
                        Err(other) => return Err(other),
                    }
                }
            }
            Err(other) => return Err(other),
        }
        // SAFETY: checked non-null; writable for `count` statuses and `count + 1` offsets.
        unsafe { results.deliver(statuses, out, out_len, out_offsets) };
        Ok(())
    })
}

/// The index values a lookup of `value` must match: one per version not retired, the
/// active one first (two during a rotation window). `*out` holds them in `form`, each
/// preceded by its length as a big-endian u16; `*count` gets how many. Build
/// `WHERE idx = ANY($1)` from them, then decrypt the candidates and drop the rows whose
/// plaintext differs. Free `*out` with `envelope_bytes_free`.
///
/// # Safety
/// `index`, `value` and `custom_applied` valid for their lengths; `out`, `out_len`,
/// `count` writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn envelope_blind_index_query_values(
    client: *const envelope_client,
    index: *const u8,
    index_len: usize,
    value: *const u8,
    value_len: usize,
    custom_applied: *const u8,
    custom_applied_len: usize,
    form: u32,
    out: *mut *mut u8,
    out_len: *mut usize,
    count: *mut usize,
) -> envelope_status {
    boundary(|| {
        let (out, out_len) = (non_null(out, "out")?, non_null(out_len, "out_len")?);
        let count = non_null(count, "count")?;
        // SAFETY: per this function's contract.
        let (c, index, value, custom) = unsafe {
            (
                client_ref(client)?,
                utf8(input(index, index_len, "index")?, "index")?,
                input(value, value_len, "value")?,
                applied(custom_applied, custom_applied_len)?,
            )
        };
        let indexes = indexes(c)?;
        // Loaded: on the caller's thread; else a load on the client's runtime.
        let values = match indexes.try_query_values_applied(index, value, custom) {
            Some(done) => done?,
            None => c
                .envelope
                .run(indexes.query_values_applied(index, value, custom))?,
        };
        let mut bytes = Vec::new();
        for v in &values {
            let mut one = Vec::new();
            encode(v, form, &mut one)?;
            bytes.extend_from_slice(&(one.len() as u16).to_be_bytes());
            bytes.extend_from_slice(&one);
        }
        // SAFETY: checked non-null; writable per the contract.
        unsafe {
            *count = values.len();
            give(out, out_len, bytes);
        }
        Ok(())
    })
}

/// Fails with `ENVELOPE_INDEX_MISMATCH` unless the index's active version uses the
/// normalizer `normalizer` (a spec: `nfkc_casefold+trim_collapse`) and, when `bits` is not
/// 0, keeps `bits` bits: what a column type declares is what the store holds.
///
/// # Safety
/// `index` and `normalizer` valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_blind_index_check(
    client: *const envelope_client,
    index: *const u8,
    index_len: usize,
    normalizer: *const u8,
    normalizer_len: usize,
    bits: u32,
) -> envelope_status {
    boundary(|| {
        // SAFETY: per this function's contract.
        let (c, index, normalizer) = unsafe {
            (
                client_ref(client)?,
                utf8(input(index, index_len, "index")?, "index")?,
                utf8(
                    input(normalizer, normalizer_len, "normalizer")?,
                    "normalizer",
                )?,
            )
        };
        let bits = (bits != 0)
            .then(|| u16::try_from(bits))
            .transpose()
            .map_err(|_| FfiError::Invalid(format!("bits {bits}: 8 to 256")))?;
        let indexes = indexes(c)?;
        c.envelope
            .run(indexes.check_definition(index, normalizer, bits))?;
        Ok(())
    })
}

/// Creates an index (version 1, active; `bits` 0 means 64 in `unique` mode) or, with
/// `rotate`, adds a version and makes it active (the active one answers queries until
/// retired; `normalizer` NULL and `bits` 0 keep the active version's). `mode` is
/// `"unique"` or `"private"` (may be NULL: unique, or the active version's). `*version`
/// (may be NULL) gets the new version.
///
/// # Safety
/// `index`, `normalizer` and `mode` valid for their lengths; `version` NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn envelope_blind_index_define(
    client: *const envelope_client,
    index: *const u8,
    index_len: usize,
    normalizer: *const u8,
    normalizer_len: usize,
    mode: *const u8,
    mode_len: usize,
    bits: u32,
    rotate: bool,
    version: *mut u32,
) -> envelope_status {
    boundary(|| {
        // SAFETY: per this function's contract.
        let (c, index, normalizer, mode) = unsafe {
            (
                client_ref(client)?,
                utf8(input(index, index_len, "index")?, "index")?,
                input(normalizer, normalizer_len, "normalizer")?,
                input(mode, mode_len, "mode")?,
            )
        };
        let indexes = indexes(c)?;
        let normalizer = (!normalizer.is_empty())
            .then(|| utf8(normalizer, "normalizer").map(Normalizer::parse))
            .transpose()?
            .transpose()?;
        let mode = (!mode.is_empty())
            .then(|| {
                let m = utf8(mode, "mode")?;
                IndexMode::parse(m)
                    .ok_or_else(|| FfiError::Invalid(format!("mode {m:?}: unique or private")))
            })
            .transpose()?;
        let bits = u16::try_from(bits).map_err(|_| FfiError::Invalid(format!("bits {bits}")))?;
        let row = if rotate {
            let rows = c.envelope.run(indexes.describe(index))?;
            let base = rows
                .iter()
                .find(|r| r.state == IndexState::Active)
                .or(rows.last())
                .ok_or_else(|| FfiError::Invalid("no version to rotate".into()))?;
            let settings = IndexSettings {
                bits: if bits == 0 { base.bits } else { bits },
                mode: mode.unwrap_or(base.mode),
                normalizer: match normalizer {
                    Some(n) => n,
                    None => Normalizer::parse(&base.normalizer)?,
                },
            };
            c.envelope.run(indexes.rotate(index, Some(&settings)))?
        } else {
            let normalizer = normalizer.unwrap_or_default();
            let settings = match (mode.unwrap_or(IndexMode::Unique), bits) {
                (IndexMode::Unique, 0) => IndexSettings::unique(normalizer),
                (mode, 0) => {
                    return Err(FfiError::Invalid(format!(
                        "mode {mode} needs bits (8 to 256)"
                    )));
                }
                (mode, bits) => IndexSettings {
                    bits,
                    mode,
                    normalizer,
                },
            };
            c.envelope.run(indexes.create(index, &settings))?
        };
        if !version.is_null() {
            // SAFETY: non-null and writable per the contract.
            unsafe { *version = u32::from(row.version) };
        }
        Ok(())
    })
}

/// Sets an index version's state (`ENVELOPE_INDEX_ACTIVE`, `_QUERY`, `_RETIRED_STATE`).
/// Retiring the active version is refused (`ENVELOPE_INVALID_CONFIG`): rotate first. Check
/// that no row carries a version before retiring it (`envelope retire --index` does).
///
/// # Safety
/// `index` valid for `index_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_blind_index_set_state(
    client: *const envelope_client,
    index: *const u8,
    index_len: usize,
    version: u32,
    state: u32,
) -> envelope_status {
    boundary(|| {
        // SAFETY: per this function's contract.
        let (c, index) = unsafe {
            (
                client_ref(client)?,
                utf8(input(index, index_len, "index")?, "index")?,
            )
        };
        let state = match state {
            ENVELOPE_INDEX_ACTIVE => IndexState::Active,
            ENVELOPE_INDEX_QUERY => IndexState::Query,
            ENVELOPE_INDEX_RETIRED_STATE => IndexState::Retired,
            other => return Err(FfiError::Invalid(format!("state {other}: 1, 2 or 3"))),
        };
        let version =
            u16::try_from(version).map_err(|_| FfiError::Invalid(format!("version {version}")))?;
        let indexes = indexes(c)?;
        c.envelope.run(indexes.set_state(index, version, state))?;
        indexes.refresh();
        Ok(())
    })
}

/// Runs the built-in steps of the normalizer `normalizer` (a spec such as
/// `nfkc_casefold+trim_collapse`; a leading `custom:NAME` step is skipped: the caller runs
/// it) on `value`: what lookups compare after decrypting candidates, identical to what the
/// index hashes. Free `*out` with `envelope_bytes_free`.
///
/// # Safety
/// `normalizer` and `value` valid for their lengths; `out`, `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_normalize(
    normalizer: *const u8,
    normalizer_len: usize,
    value: *const u8,
    value_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    boundary(|| {
        let (out, out_len) = (non_null(out, "out")?, non_null(out_len, "out_len")?);
        // SAFETY: per this function's contract.
        let (spec, value) = unsafe {
            (
                utf8(
                    input(normalizer, normalizer_len, "normalizer")?,
                    "normalizer",
                )?,
                input(value, value_len, "value")?,
            )
        };
        let normalized = Normalizer::parse(spec)?.apply_builtin(value)?.into_owned();
        // SAFETY: checked non-null; writable per the contract.
        unsafe { give(out, out_len, normalized) };
        Ok(())
    })
}
