//! DEK store administration: copying rows into a store (migrations, test vectors).

use crate::boundary::{FfiError, boundary};
use crate::buffers::{input, non_null, utf8};
use crate::status::envelope_status;

/// Imports DEK store rows, ids kept, into the store `store_uri` names (created if
/// missing): `rows_json` is a JSON array in the documented row form (`docs/FORMAT.md`,
/// "DEK store"; `testvectors/compact.json` carries one in `dek_store`). Fails on the first
/// id the store already has (`ENVELOPE_DEK_STORE_ERROR`; rows before it stay imported);
/// `*imported` (may be NULL) gets the number of rows imported.
///
/// # Safety
/// `store_uri` and `rows_json` valid for their lengths; `imported` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_dek_store_import_json(
    store_uri: *const u8,
    store_uri_len: usize,
    rows_json: *const u8,
    rows_json_len: usize,
    imported: *mut usize,
) -> envelope_status {
    boundary(|| {
        // SAFETY: per this function's contract.
        let (uri, json) = unsafe {
            (
                input(store_uri, store_uri_len, "store_uri")?,
                input(rows_json, rows_json_len, "rows_json")?,
            )
        };
        let rows = envelope::compact::stored_deks_from_json(json)?;
        let store = envelope::open_dek_store(utf8(uri, "store_uri")?)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| FfiError::Invalid(format!("cannot start a runtime: {e}")))?;
        let mut count = 0;
        let result = runtime.block_on(async {
            for row in &rows {
                store.import(row).await?;
                count += 1;
            }
            Ok::<(), envelope::Error>(())
        });
        if !imported.is_null() {
            let out = non_null(imported, "imported")?;
            // SAFETY: checked non-null; the caller guarantees it is writable.
            unsafe { *out = count };
        }
        result?;
        Ok(())
    })
}
