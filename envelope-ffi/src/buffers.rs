//! Buffers across the boundary: reading the caller's (NULL only with length 0), handing
//! out library-owned bytes, and releasing them zeroized.

use crate::boundary::{FfiError, boundary};

/// Zeroes a buffer that may hold plaintext before it is freed: one `memset`, then an
/// optimization barrier so the stores cannot be removed as dead (a byte-wise volatile loop
/// costs a cycle per byte, a third of a 64-byte field's whole encryption).
pub(crate) fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(&mut *bytes);
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// Reads a caller's buffer; NULL is allowed only with length 0.
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes for `'a`, or `len` must be 0.
pub(crate) unsafe fn input<'a>(
    ptr: *const u8,
    len: usize,
    name: &'static str,
) -> Result<&'a [u8], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::Null(name));
    }
    // SAFETY: non-null, and the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Reads a caller's array of `len` elements (NULL only with length 0).
///
/// # Safety
/// `ptr` must be valid for reads of `len` elements, or `len` must be 0.
pub(crate) unsafe fn array<'a, T>(
    ptr: *const T,
    len: usize,
    name: &'static str,
) -> Result<&'a [T], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::Null(name));
    }
    // SAFETY: non-null, and the caller guarantees `len` readable elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

pub(crate) fn utf8<'a>(bytes: &'a [u8], name: &str) -> Result<&'a str, FfiError> {
    std::str::from_utf8(bytes)
        .map_err(|_| FfiError::Invalid(format!("`{name}` is not valid UTF-8")))
}

pub(crate) fn non_null<T>(ptr: *mut T, name: &'static str) -> Result<*mut T, FfiError> {
    if ptr.is_null() {
        Err(FfiError::Null(name))
    } else {
        Ok(ptr)
    }
}

/// Hands bytes to the caller as a library-owned buffer.
///
/// # Safety
/// `out` and `out_len` must be valid for writes (checked non-null by the caller).
pub(crate) unsafe fn give(out: *mut *mut u8, out_len: *mut usize, bytes: Vec<u8>) {
    let boxed: Box<[u8]> = bytes.into_boxed_slice();
    let len = boxed.len();
    let ptr = Box::into_raw(boxed) as *mut u8;
    // SAFETY: both pointers were checked non-null and the caller guarantees they are writable.
    unsafe {
        *out = ptr;
        *out_len = len;
    }
}

/// Releases bytes returned by this library, zeroizing them first (NULL is a no-op).
///
/// # Safety
/// `ptr` and `len` must be exactly a pair returned by this library, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_bytes_free(ptr: *mut u8, len: usize) {
    let _ = boundary(|| {
        if !ptr.is_null() {
            // SAFETY: `ptr`/`len` came from `Box::<[u8]>::into_raw` in `give`.
            let mut boxed = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) };
            wipe(&mut boxed);
            drop(boxed);
        }
        Ok(())
    });
}
