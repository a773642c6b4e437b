//! Administration of local keyring files (the development KMS), for tools and tests.

use envelope::LocalKeyring;

use crate::boundary::{FfiError, boundary};
use crate::buffers::{input, non_null, utf8};
use crate::status::envelope_status;

/// # Safety
/// Both pointers valid for their lengths.
unsafe fn path_and_key<'a>(
    path: *const u8,
    path_len: usize,
    key_id: *const u8,
    key_id_len: usize,
) -> Result<(&'a str, &'a str), FfiError> {
    // SAFETY: per the caller's contract.
    let (path, key_id) = unsafe {
        (
            input(path, path_len, "path")?,
            input(key_id, key_id_len, "key_id")?,
        )
    };
    Ok((utf8(path, "path")?, utf8(key_id, "key_id")?))
}

/// Creates a keyring file (mode 0600) holding `key_id` at version 1; fails if it exists.
///
/// # Safety
/// `path` and `key_id` valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_local_keyring_create(
    path: *const u8,
    path_len: usize,
    key_id: *const u8,
    key_id_len: usize,
) -> envelope_status {
    boundary(|| {
        // SAFETY: forwarded contract.
        let (path, key_id) = unsafe { path_and_key(path, path_len, key_id, key_id_len)? };
        LocalKeyring::create(path, key_id)?;
        Ok(())
    })
}

/// Rotates `key_id`: a new primary version, written to `*new_version`.
///
/// # Safety
/// `path` and `key_id` valid for their lengths; `new_version` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_local_keyring_rotate(
    path: *const u8,
    path_len: usize,
    key_id: *const u8,
    key_id_len: usize,
    new_version: *mut u32,
) -> envelope_status {
    boundary(|| {
        let new_version = non_null(new_version, "new_version")?;
        // SAFETY: forwarded contract.
        let (path, key_id) = unsafe { path_and_key(path, path_len, key_id, key_id_len)? };
        let version = LocalKeyring::new(path).rotate(key_id)?;
        // SAFETY: checked non-null; the caller guarantees it is writable.
        unsafe { *new_version = version };
        Ok(())
    })
}

/// Destroys a non-primary version of `key_id` (crypto-shredding).
///
/// # Safety
/// `path` and `key_id` valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_local_keyring_destroy_version(
    path: *const u8,
    path_len: usize,
    key_id: *const u8,
    key_id_len: usize,
    version: u32,
) -> envelope_status {
    boundary(|| {
        // SAFETY: forwarded contract.
        let (path, key_id) = unsafe { path_and_key(path, path_len, key_id, key_id_len)? };
        LocalKeyring::new(path).destroy_version(key_id, version)?;
        Ok(())
    })
}
