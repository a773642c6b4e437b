//! The pure-Rust provider: the RustCrypto `aes-gcm`, `hkdf` and `sha2` crates.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use hkdf::Hkdf;
use sha2::Sha256;

use super::{GCM_NONCE_LEN, GCM_TAG_LEN};
use crate::secret::KEY_LEN;

/// An AES-256-GCM key schedule (zeroized on drop by the crate's `zeroize` feature).
pub(crate) struct GcmKey(Box<Aes256Gcm>);

impl GcmKey {
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Self {
        GcmKey(Box::new(Aes256Gcm::new(GenericArray::from_slice(key))))
    }

    /// Seals under `nonce` (the caller drew it). `None` when `buf` is too long for GCM.
    #[inline]
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Option<[u8; GCM_TAG_LEN]> {
        self.0
            .encrypt_in_place_detached(GenericArray::from_slice(nonce), ad, buf)
            .ok()
            .map(Into::into)
    }

    /// Copies `ciphertext` into `out` and opens it there. `false` on any authentication
    /// failure.
    #[inline]
    pub(crate) fn open(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; GCM_TAG_LEN],
        out: &mut [u8],
    ) -> bool {
        out.copy_from_slice(ciphertext);
        self.0
            .decrypt_in_place_detached(
                GenericArray::from_slice(nonce),
                ad,
                out,
                GenericArray::from_slice(tag),
            )
            .is_ok()
    }
}

pub(crate) fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let filled = Hkdf::<Sha256>::new(Some(salt), ikm).expand_multi_info(info, out);
    // Fails only for outputs over 255 × 32 bytes; the SDK asks for 32.
    assert!(filled.is_ok(), "HKDF-SHA256 output of {} bytes", out.len());
}
