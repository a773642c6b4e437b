//! One value at a time: encrypt, decrypt (into the caller's buffer or a library-owned
//! one, binary or text form), re-encrypt and rewrap.

use envelope::BlockingEnvelope;

use crate::boundary::{FfiError, boundary};
use crate::buffers::{give, input, non_null, utf8};
use crate::client::{client_ref, envelope_client};
use crate::status::envelope_status;

/// Shared shape of the single-item operations: a client, one input, AAD, one output.
///
/// # Safety
/// Pointers as documented on the public functions.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn single(
    client_ptr: *const envelope_client,
    data: *const u8,
    data_len: usize,
    aad: *const u8,
    aad_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
    op: impl FnOnce(&BlockingEnvelope, &[u8], &[u8]) -> Result<Vec<u8>, FfiError>,
) -> envelope_status {
    boundary(|| {
        let out = non_null(out, "out")?;
        let out_len = non_null(out_len, "out_len")?;
        // SAFETY: per the public functions' contracts.
        let (c, data, aad) = unsafe {
            (
                client_ref(client_ptr)?,
                input(data, data_len, "data")?,
                input(aad, aad_len, "aad")?,
            )
        };
        let bytes = op(&c.envelope, data, aad)?;
        // SAFETY: checked non-null above.
        unsafe { give(out, out_len, bytes) };
        Ok(())
    })
}

/// Shared shape of the `_into` operations: the SDK writes the result straight into the
/// caller's buffer (no intermediate allocation or copy).
///
/// # Safety
/// Pointers as documented on the public functions.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn single_into(
    client_ptr: *const envelope_client,
    data: *const u8,
    data_len: usize,
    aad: *const u8,
    aad_len: usize,
    out_buf: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
    op: impl FnOnce(&BlockingEnvelope, &[u8], &[u8], &mut [u8]) -> envelope::Result<usize>,
) -> envelope_status {
    boundary(|| {
        let out_len = non_null(out_len, "out_len")?;
        if out_buf.is_null() && out_cap > 0 {
            return Err(FfiError::Null("out_buf"));
        }
        // SAFETY: per the public functions' contracts.
        let (c, data, aad) = unsafe {
            (
                client_ref(client_ptr)?,
                input(data, data_len, "data")?,
                input(aad, aad_len, "aad")?,
            )
        };
        // A mutable view of memory that is also read as input would be undefined behaviour.
        let out_range = (out_buf as usize)..(out_buf as usize).saturating_add(out_cap);
        for (name, input) in [("data", data), ("aad", aad)] {
            let start = input.as_ptr() as usize;
            let overlaps = !input.is_empty()
                && out_cap > 0
                && start < out_range.end
                && out_range.start < start + input.len();
            if overlaps {
                return Err(FfiError::Invalid(format!(
                    "out_buf must not overlap `{name}`"
                )));
            }
        }
        let out: &mut [u8] = if out_cap == 0 {
            &mut []
        } else {
            // SAFETY: non-null, writable for `out_cap` bytes per the contract, and checked
            // above not to overlap the inputs.
            unsafe { std::slice::from_raw_parts_mut(out_buf, out_cap) }
        };
        match op(&c.envelope, data, aad, out) {
            Ok(n) => {
                // SAFETY: checked non-null; the caller guarantees it is writable.
                unsafe { *out_len = n };
                Ok(())
            }
            Err(envelope::Error::BufferTooSmall { needed, capacity }) => {
                // SAFETY: as above.
                unsafe { *out_len = needed };
                Err(FfiError::BufferTooSmall { needed, capacity })
            }
            Err(e) => Err(e.into()),
        }
    })
}

/// Encrypts into the caller's buffer `out_buf` of `out_cap` bytes (the fast path for
/// bindings: no library-owned allocation to free). `*out_len` receives the ciphertext's
/// length; when it exceeds `out_cap` the call returns `ENVELOPE_BUFFER_TOO_SMALL`, writes
/// nothing into `out_buf`, and the message's DEK use is spent (call again with a larger
/// buffer, or `envelope_encrypt`). A ciphertext is the plaintext plus the header and tag
/// (`envelope_inspect_json`'s `overhead`).
///
/// # Safety
/// `client` live; inputs valid for their lengths; `out_buf` writable for `out_cap` bytes
/// (NULL only with `out_cap` 0) and not overlapping the inputs (an overlap is refused with
/// `ENVELOPE_INVALID_ARGUMENT`); `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_encrypt_into(
    client: *const envelope_client,
    plaintext: *const u8,
    plaintext_len: usize,
    aad: *const u8,
    aad_len: usize,
    out_buf: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> envelope_status {
    // SAFETY: forwarded contract.
    unsafe {
        single_into(
            client,
            plaintext,
            plaintext_len,
            aad,
            aad_len,
            out_buf,
            out_cap,
            out_len,
            |e, pt, aad, out| e.encrypt_into(pt, aad, out),
        )
    }
}

/// Decrypts into the caller's buffer; as `envelope_encrypt_into` (the plaintext is never
/// longer than the ciphertext, so a buffer of the ciphertext's length always fits). The
/// plaintext is written once, straight from the ciphertext; on failure no plaintext is
/// left in `out_buf`.
///
/// # Safety
/// As `envelope_encrypt_into`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_decrypt_into(
    client: *const envelope_client,
    ciphertext: *const u8,
    ciphertext_len: usize,
    aad: *const u8,
    aad_len: usize,
    out_buf: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> envelope_status {
    // SAFETY: forwarded contract.
    unsafe {
        single_into(
            client,
            ciphertext,
            ciphertext_len,
            aad,
            aad_len,
            out_buf,
            out_cap,
            out_len,
            |e, ct, aad, out| e.decrypt_into(ct, aad, out),
        )
    }
}

/// Encrypts `plaintext` bound to `aad` into the binary form.
///
/// # Safety
/// `client` live; `plaintext`/`aad` valid for their lengths (NULL only with length 0);
/// `out`/`out_len` valid for writes. Free the output with `envelope_bytes_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_encrypt(
    client: *const envelope_client,
    plaintext: *const u8,
    plaintext_len: usize,
    aad: *const u8,
    aad_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    // SAFETY: forwarded contract.
    unsafe {
        single(
            client,
            plaintext,
            plaintext_len,
            aad,
            aad_len,
            out,
            out_len,
            |e, pt, aad| Ok(e.encrypt(pt, aad)?),
        )
    }
}

/// Encrypts into the text form (`ev1:` + base64url; UTF-8, not NUL-terminated).
///
/// # Safety
/// As `envelope_encrypt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_encrypt_text(
    client: *const envelope_client,
    plaintext: *const u8,
    plaintext_len: usize,
    aad: *const u8,
    aad_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    // SAFETY: forwarded contract.
    unsafe {
        single(
            client,
            plaintext,
            plaintext_len,
            aad,
            aad_len,
            out,
            out_len,
            |e, pt, aad| Ok(e.encrypt_to_text(pt, aad)?.into_bytes()),
        )
    }
}

/// Decrypts a binary ciphertext; `aad` must equal the encryption's.
///
/// # Safety
/// As `envelope_encrypt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_decrypt(
    client: *const envelope_client,
    ciphertext: *const u8,
    ciphertext_len: usize,
    aad: *const u8,
    aad_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    // SAFETY: forwarded contract.
    unsafe {
        single(
            client,
            ciphertext,
            ciphertext_len,
            aad,
            aad_len,
            out,
            out_len,
            |e, ct, aad| Ok(e.decrypt(ct, aad)?),
        )
    }
}

/// Decrypts a text-form ciphertext (UTF-8 bytes, no NUL needed).
///
/// # Safety
/// As `envelope_encrypt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_decrypt_text(
    client: *const envelope_client,
    text: *const u8,
    text_len: usize,
    aad: *const u8,
    aad_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    // SAFETY: forwarded contract.
    unsafe {
        single(
            client,
            text,
            text_len,
            aad,
            aad_len,
            out,
            out_len,
            |e, text, aad| Ok(e.decrypt_text(utf8(text, "text")?, aad)?),
        )
    }
}

/// Decrypts and encrypts again under a new DEK (same AAD).
///
/// # Safety
/// As `envelope_encrypt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_reencrypt(
    client: *const envelope_client,
    ciphertext: *const u8,
    ciphertext_len: usize,
    aad: *const u8,
    aad_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    // SAFETY: forwarded contract.
    unsafe {
        single(
            client,
            ciphertext,
            ciphertext_len,
            aad,
            aad_len,
            out,
            out_len,
            |e, ct, aad| Ok(e.reencrypt(ct, aad)?),
        )
    }
}

/// Moves a ciphertext (binary or `ev1:` text form, detected by its prefix) to the current
/// KEK version, header only; the output has the input's form. `*changed` tells whether the
/// header changed.
///
/// # Safety
/// As `envelope_encrypt`; `changed` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_rewrap(
    client: *const envelope_client,
    ciphertext: *const u8,
    ciphertext_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
    changed: *mut bool,
) -> envelope_status {
    boundary(|| {
        let out = non_null(out, "out")?;
        let out_len = non_null(out_len, "out_len")?;
        let changed = non_null(changed, "changed")?;
        // SAFETY: per this function's contract.
        let (c, ct) = unsafe {
            (
                client_ref(client)?,
                input(ciphertext, ciphertext_len, "ciphertext")?,
            )
        };
        let (bytes, did_change) = if ct.starts_with(envelope::format::TEXT_PREFIX.as_bytes()) {
            let (text, did_change) = c.envelope.rewrap_text(utf8(ct, "ciphertext")?)?;
            (text.into_bytes(), did_change)
        } else {
            let r = c.envelope.rewrap(ct)?;
            (r.ciphertext, r.changed)
        };
        // SAFETY: all three checked non-null; the caller guarantees they are writable.
        unsafe {
            give(out, out_len, bytes);
            *changed = did_change;
        }
        Ok(())
    })
}
