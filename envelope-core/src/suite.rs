//! Algorithm suites and the per-DEK prepared cipher.
//!
//! A DEK is never used as an AEAD key as is: once per DEK, HKDF-SHA256 derives the AEAD key
//! and the 32-byte key commitment (see `docs/FORMAT.md`). Both derivations cost one HKDF
//! each, paid once per DEK, never per message.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;
use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::{Dek, KEY_LEN};

/// Length of the key commitment stored in every header.
pub const COMMITMENT_LEN: usize = 32;
/// Length of the authentication tag at the end of every body.
pub const TAG_LEN: usize = 16;

const HKDF_SALT: &[u8] = b"envelope.v1";
const INFO_AEAD_KEY: &[u8] = b"envelope.v1.aead-key";
const INFO_COMMITMENT: &[u8] = b"envelope.v1.commitment";

/// An AEAD algorithm suite. The id byte is part of the wire format and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Suite {
    /// AES-256-GCM with a random 96-bit nonce per message (the default).
    #[default]
    Aes256Gcm,
    /// XChaCha20-Poly1305 with a random 192-bit nonce per message.
    XChaCha20Poly1305,
}

impl Suite {
    /// The suite's id byte in the header.
    pub const fn id(self) -> u8 {
        match self {
            Suite::Aes256Gcm => 0x01,
            Suite::XChaCha20Poly1305 => 0x02,
        }
    }

    /// The suite for an id byte, or [`Error::UnsupportedSuite`].
    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            0x01 => Ok(Suite::Aes256Gcm),
            0x02 => Ok(Suite::XChaCha20Poly1305),
            other => Err(Error::UnsupportedSuite(other)),
        }
    }

    /// The per-message nonce length in bytes.
    pub const fn nonce_len(self) -> usize {
        match self {
            Suite::Aes256Gcm => 12,
            Suite::XChaCha20Poly1305 => 24,
        }
    }

    /// The most messages one DEK may encrypt with random nonces of this suite.
    ///
    /// AES-GCM with random 96-bit nonces: 2^32 invocations per key (NIST SP 800-38D §8.3).
    /// XChaCha20-Poly1305's 192-bit nonces make collisions negligible long before 2^64.
    pub const fn max_messages_per_dek(self) -> u64 {
        match self {
            Suite::Aes256Gcm => 1 << 32,
            Suite::XChaCha20Poly1305 => u64::MAX,
        }
    }

    /// The largest plaintext one message may carry.
    pub const fn max_plaintext_len(self) -> u64 {
        match self {
            // 2^39 - 256 bits (SP 800-38D).
            Suite::Aes256Gcm => (1 << 36) - 32,
            // 2^32 blocks of 64 bytes.
            Suite::XChaCha20Poly1305 => 1 << 38,
        }
    }

    /// The suite's conventional name.
    pub const fn name(self) -> &'static str {
        match self {
            Suite::Aes256Gcm => "AES-256-GCM",
            Suite::XChaCha20Poly1305 => "XChaCha20-Poly1305",
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

enum Cipher {
    Gcm(Box<Aes256Gcm>),
    XChaCha(Box<XChaCha20Poly1305>),
}

/// A DEK prepared for use: the AEAD key schedule and the key commitment, derived once.
///
/// The cipher states zeroize their key material on drop (the `zeroize` features of the
/// RustCrypto crates); the DEK itself is dropped as soon as this is built.
pub(crate) struct DataKey {
    suite: Suite,
    cipher: Cipher,
    commitment: [u8; COMMITMENT_LEN],
}

impl DataKey {
    /// Derives the AEAD key and commitment from `dek` for `suite`.
    pub(crate) fn new(suite: Suite, dek: &Dek) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), dek.expose_secret());
        let mut aead_key = Zeroizing::new([0u8; KEY_LEN]);
        let mut commitment = [0u8; COMMITMENT_LEN];
        // Both outputs are 32 bytes, far below HKDF-SHA256's 8160-byte limit: cannot fail.
        let ok_key = hk.expand_multi_info(&[INFO_AEAD_KEY, &[suite.id()]], aead_key.as_mut());
        let ok_commit = hk.expand_multi_info(&[INFO_COMMITMENT, &[suite.id()]], &mut commitment);
        debug_assert!(ok_key.is_ok() && ok_commit.is_ok());
        let key = GenericArray::from_slice(aead_key.as_ref());
        let cipher = match suite {
            Suite::Aes256Gcm => Cipher::Gcm(Box::new(Aes256Gcm::new(key))),
            Suite::XChaCha20Poly1305 => Cipher::XChaCha(Box::new(XChaCha20Poly1305::new(key))),
        };
        DataKey {
            suite,
            cipher,
            commitment,
        }
    }

    pub(crate) fn suite(&self) -> Suite {
        self.suite
    }

    pub(crate) fn commitment(&self) -> &[u8; COMMITMENT_LEN] {
        &self.commitment
    }

    /// Constant-time comparison of a header's commitment with this key's.
    ///
    /// XORs the values word by word and makes one constant-time decision on the result
    /// (`subtle`'s slice comparison pays an optimization barrier per byte).
    #[inline]
    pub(crate) fn commitment_matches(&self, candidate: &[u8]) -> bool {
        if candidate.len() != COMMITMENT_LEN {
            return false;
        }
        let mut diff = 0u64;
        for (a, b) in self
            .commitment
            .chunks_exact(8)
            .zip(candidate.chunks_exact(8))
        {
            let word =
                |s: &[u8]| u64::from_ne_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
            diff |= word(a) ^ word(b);
        }
        bool::from(diff.ct_eq(&0))
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let tag = match &self.cipher {
            Cipher::Gcm(c) => c.encrypt_in_place_detached(GenericArray::from_slice(nonce), ad, buf),
            Cipher::XChaCha(c) => {
                c.encrypt_in_place_detached(GenericArray::from_slice(nonce), ad, buf)
            }
        }
        .map_err(|_| Error::MessageTooLarge {
            len: buf.len() as u64,
            max: self.suite.max_plaintext_len(),
        })?;
        Ok(tag.into())
    }

    /// Decrypts `buf` in place after checking `tag`; opaque failure.
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8],
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<()> {
        let tag = GenericArray::from_slice(tag);
        match &self.cipher {
            Cipher::Gcm(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(nonce), ad, buf, tag)
            }
            Cipher::XChaCha(c) => {
                c.decrypt_in_place_detached(GenericArray::from_slice(nonce), ad, buf, tag)
            }
        }
        .map_err(|_| Error::DecryptionFailed)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("suite", &self.suite)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_ids_round_trip_and_unknown_is_rejected() {
        for s in [Suite::Aes256Gcm, Suite::XChaCha20Poly1305] {
            assert_eq!(Suite::from_id(s.id()).ok(), Some(s));
        }
        assert!(matches!(
            Suite::from_id(0x7f),
            Err(Error::UnsupportedSuite(0x7f))
        ));
    }

    #[test]
    fn commitment_depends_on_key_and_suite() {
        let dek = Dek::from_array([7; KEY_LEN]);
        let a = DataKey::new(Suite::Aes256Gcm, &dek);
        let b = DataKey::new(Suite::XChaCha20Poly1305, &dek);
        let c = DataKey::new(Suite::Aes256Gcm, &Dek::from_array([8; KEY_LEN]));
        assert_ne!(a.commitment(), b.commitment());
        assert_ne!(a.commitment(), c.commitment());
        assert!(a.commitment_matches(a.commitment()));
        let mut other = *a.commitment();
        other[31] ^= 1;
        assert!(!a.commitment_matches(&other));
        assert!(!a.commitment_matches(&a.commitment()[..31]));
    }

    #[test]
    fn debug_is_redacted() {
        let dk = DataKey::new(Suite::Aes256Gcm, &Dek::from_array([0x5a; KEY_LEN]));
        let shown = format!("{dk:?}");
        assert!(shown.contains("REDACTED") && !shown.contains("5a") && !shown.contains("90"));
    }
}
