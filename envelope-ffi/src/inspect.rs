//! Reading a ciphertext's header without a KMS call.

use envelope::Envelope;

use crate::boundary::boundary;
use crate::buffers::{give, input, non_null, utf8};
use crate::status::envelope_status;

/// The header of a ciphertext (binary or text form, v1 or compact) as JSON, without any
/// key or store: v1 gives `{"format_version": 1, "suite", "provider", "key_id",
/// "key_version", "wrapped_dek_len", "header_len", "plaintext_len", "overhead"}`; the
/// compact form `{"format_version": 2, "suite", "dek_id", "header_len", "plaintext_len",
/// "overhead"}` (its KEK is in the DEK store's row); a stream (format version 4, whole or
/// its header alone) the v1 fields and `"segment_size"`.
///
/// # Safety
/// `ciphertext` valid for its length; `out`/`out_len` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_inspect_json(
    ciphertext: *const u8,
    ciphertext_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    boundary(|| {
        let out = non_null(out, "out")?;
        let out_len = non_null(out_len, "out_len")?;
        // SAFETY: per this function's contract.
        let ct = unsafe { input(ciphertext, ciphertext_len, "ciphertext")? };
        // Text forms start "evN:" (N = 1, 2, 3), binaries "EV".
        let text = ct.starts_with(b"ev");
        let binary = if text {
            std::borrow::Cow::Owned(envelope::format::from_text(utf8(ct, "ciphertext")?)?)
        } else {
            std::borrow::Cow::Borrowed(ct)
        };
        if envelope::compact::is_compact(&binary) {
            let info = envelope::compact::inspect_compact(&binary)?;
            let json = serde_json::json!({
                "format_version": info.format_version,
                "committing": info.committing,
                "suite": info.suite.name(),
                "dek_id": info.dek_id.get(),
                "header_len": info.header_len,
                "plaintext_len": info.plaintext_len,
                "overhead": info.overhead,
            });
            // SAFETY: checked non-null above.
            unsafe { give(out, out_len, json.to_string().into_bytes()) };
            return Ok(());
        }
        let info = Envelope::inspect(&binary)?;
        let mut json = serde_json::json!({
            "format_version": info.format_version,
            "suite": info.suite.name(),
            "provider": info.provider.scheme(),
            "key_id": info.key_id,
            "key_version": info.key_version,
            "wrapped_dek_len": info.wrapped_dek_len,
            "header_len": info.header_len,
            "plaintext_len": info.plaintext_len,
            "overhead": info.overhead,
        });
        if let Some(size) = info.segment_size {
            json["segment_size"] = size.into();
        }
        // SAFETY: checked non-null above.
        unsafe { give(out, out_len, json.to_string().into_bytes()) };
        Ok(())
    })
}
