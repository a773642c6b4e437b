//! Newtypes for key material: zeroized on drop, redacted in `Debug`, exposed explicitly.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::crypto::{self, CryptoProvider};

/// Length in bytes of every data key and local key-encryption key (AES-256 / XChaCha20).
pub const KEY_LEN: usize = 32;

/// A plaintext data-encryption key (DEK): 32 bytes, zeroized on drop, never printed.
///
/// It has no `Clone`: a DEK lives in exactly one place (the cache entry that prepared its
/// cipher) and is dropped as soon as the cipher is built.
pub struct Dek(Zeroizing<[u8; KEY_LEN]>);

impl Dek {
    /// Draws a fresh DEK from the default crypto provider's CSPRNG (AWS-LC's DRBG, or the
    /// operating system's).
    pub fn generate() -> Self {
        Self::generate_with(CryptoProvider::default())
    }

    /// Draws a fresh DEK from `provider`'s CSPRNG (the provider must be compiled in; an
    /// unavailable one falls back to the operating system's CSPRNG).
    pub fn generate_with(provider: CryptoProvider) -> Self {
        Dek(crypto::random_key(provider))
    }

    /// Takes ownership of key bytes returned by a KMS. The slice must be exactly 32 bytes;
    /// the caller remains responsible for zeroizing its own copy.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Dek(Zeroizing::new(array)))
    }

    /// Takes ownership of a key array, zeroizing the caller's copy.
    pub fn from_array(mut bytes: [u8; KEY_LEN]) -> Self {
        let dek = Dek(Zeroizing::new(bytes));
        bytes.zeroize();
        dek
    }

    /// The key bytes. Every use is explicit and greppable.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dek([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_key_bytes() {
        let dek = Dek::from_array([0xAB; KEY_LEN]);
        let shown = format!("{dek:?} {dek:#?}");
        assert!(shown.contains("REDACTED"));
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            Dek::generate().expose_secret(),
            Dek::generate().expose_secret()
        );
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(Dek::from_slice(&[1; 31]).is_none());
        assert!(Dek::from_slice(&[1; 33]).is_none());
        assert!(Dek::from_slice(&[1; 32]).is_some());
    }
}
