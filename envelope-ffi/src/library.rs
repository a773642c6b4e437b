//! The library itself: version, crypto provider, FIPS mode, status messages and the
//! calling thread's last error.

use std::ffi::c_char;

use crate::boundary::with_last_error;
use crate::status::envelope_status;

/// The library version, NUL-terminated, static.
#[unsafe(no_mangle)]
pub extern "C" fn envelope_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The crypto provider running AES-256-GCM for new clients, NUL-terminated, static:
/// `"aws-lc-rs"` (the default build) or `"rustcrypto"`.
#[unsafe(no_mangle)]
pub extern "C" fn envelope_crypto_provider() -> *const c_char {
    let name: &'static [u8] = match envelope::CryptoProvider::default() {
        envelope::CryptoProvider::RustCrypto => b"rustcrypto\0",
        _ => b"aws-lc-rs\0",
    };
    name.as_ptr() as *const c_char
}

/// 1 when this library was built on the AWS-LC FIPS 140-3 module (the `fips` feature) and
/// the module reports FIPS mode active; 0 otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn envelope_fips_mode() -> u32 {
    u32::from(envelope::fips_mode())
}

/// A static, NUL-terminated description of a status code (also for unknown values).
#[unsafe(no_mangle)]
pub extern "C" fn envelope_status_message(status: u32) -> *const c_char {
    let message = envelope_status::from_u32(status)
        .map(envelope_status::message)
        .unwrap_or(b"unknown status code\0");
    message.as_ptr() as *const c_char
}

/// Copies the calling thread's last error message (UTF-8, NUL-terminated, truncated to
/// `buf_len`) into `buf`; `*out_len` receives the full message length without the NUL.
///
/// # Safety
/// `buf` must be valid for `buf_len` bytes of writes (or NULL with `buf_len` 0); `out_len`
/// must be valid for a write or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_last_error_message(
    buf: *mut u8,
    buf_len: usize,
    out_len: *mut usize,
) -> envelope_status {
    // Not through `boundary`: it must not overwrite the message it reports.
    with_last_error(|message| {
        if !out_len.is_null() {
            // SAFETY: checked non-null; the caller guarantees it is writable.
            unsafe { *out_len = message.len() };
        }
        if buf.is_null() || buf_len == 0 {
            return envelope_status::ENVELOPE_OK;
        }
        let n = message.len().min(buf_len - 1);
        // SAFETY: `buf` is valid for `buf_len` bytes and `n + 1 <= buf_len`.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), buf, n);
            *buf.add(n) = 0;
        }
        envelope_status::ENVELOPE_OK
    })
}
