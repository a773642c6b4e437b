//! Algorithm suites and the per-DEK prepared cipher.
//!
//! A DEK is never used as an AEAD key as is: once per DEK, HKDF-SHA256 derives the AEAD key
//! and the 32-byte key commitment (see `docs/FORMAT.md`). Both derivations cost one HKDF
//! each, paid once per DEK, never per message. AES-256-GCM and HKDF run on the
//! [`CryptoProvider`] the envelope was built with; XChaCha20-Poly1305 always on RustCrypto.

use std::fmt;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::{self, CryptoProvider, GCM_NONCE_LEN, GcmKey};
use crate::error::{Error, Result};
use crate::secret::{Dek, KEY_LEN};

/// Length of the key commitment stored in every header.
pub const COMMITMENT_LEN: usize = 32;
/// Length of the authentication tag at the end of every body.
pub const TAG_LEN: usize = 16;

const HKDF_SALT: &[u8] = b"envelope.v1";
const INFO_AEAD_KEY: &[u8] = b"envelope.v1.aead-key";
const INFO_COMMITMENT: &[u8] = b"envelope.v1.commitment";
/// The streaming form's per-DEK root key, from which each stream's segment key is derived.
const INFO_STREAM_ROOT: &[u8] = b"envelope.v4.stream-root";

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
            Suite::Aes256Gcm => crypto::GCM_MAX_PLAINTEXT,
            // 2^32 − 1 ChaCha20 blocks of 64 bytes: block 0 keys Poly1305 (RFC 8439 §2.8).
            Suite::XChaCha20Poly1305 => (1 << 38) - 64,
        }
    }

    /// The suite's conventional name.
    pub const fn name(self) -> &'static str {
        match self {
            Suite::Aes256Gcm => "AES-256-GCM",
            Suite::XChaCha20Poly1305 => "XChaCha20-Poly1305",
        }
    }

    /// The suite of a conventional name (as [`Suite::name`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        [Suite::Aes256Gcm, Suite::XChaCha20Poly1305]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

enum Cipher {
    Gcm(GcmKey),
    XChaCha(Box<XChaCha20Poly1305>),
}

/// A DEK prepared for use: the AEAD key schedule and the key commitment, derived once.
///
/// The cipher states zeroize their key material on drop (AWS-LC frees its contexts with
/// cleansing; the RustCrypto crates' `zeroize` features); the DEK itself is dropped as soon
/// as this is built.
pub(crate) struct DataKey {
    suite: Suite,
    cipher: Cipher,
    commitment: [u8; COMMITMENT_LEN],
    /// The root of the streaming form's segment keys (format version 4): a third HKDF
    /// output of the DEK, independent of the AEAD key and the commitment.
    stream_root: Zeroizing<[u8; KEY_LEN]>,
    /// The fixed start of every body's associated data under this key: magic, format
    /// version, suite, then the key commitment.
    fixed_ad: [u8; FIXED_AD_LEN],
    provider: CryptoProvider,
}

/// Length of the fixed part of the associated data: magic, version, suite, commitment.
pub(crate) const FIXED_AD_LEN: usize = 4 + COMMITMENT_LEN;

impl DataKey {
    /// Derives the AEAD key and commitment from `dek` for `suite`, on `provider` (which
    /// must be compiled in; builders check it).
    pub(crate) fn new(provider: CryptoProvider, suite: Suite, dek: &Dek) -> Self {
        let mut aead_key = Zeroizing::new([0u8; KEY_LEN]);
        let mut commitment = [0u8; COMMITMENT_LEN];
        let ikm = dek.expose_secret();
        crypto::hkdf_sha256(
            provider,
            HKDF_SALT,
            ikm,
            &[INFO_AEAD_KEY, &[suite.id()]],
            aead_key.as_mut(),
        );
        crypto::hkdf_sha256(
            provider,
            HKDF_SALT,
            ikm,
            &[INFO_COMMITMENT, &[suite.id()]],
            &mut commitment,
        );
        let mut stream_root = Zeroizing::new([0u8; KEY_LEN]);
        crypto::hkdf_sha256(
            provider,
            HKDF_SALT,
            ikm,
            &[INFO_STREAM_ROOT, &[suite.id()]],
            stream_root.as_mut(),
        );
        let cipher = Cipher::new(provider, suite, &aead_key);
        let mut fixed_ad = [0u8; FIXED_AD_LEN];
        fixed_ad[..4].copy_from_slice(&[b'E', b'V', 1, suite.id()]);
        fixed_ad[4..].copy_from_slice(&commitment);
        DataKey {
            suite,
            cipher,
            commitment,
            stream_root,
            fixed_ad,
            provider,
        }
    }

    pub(crate) fn suite(&self) -> Suite {
        self.suite
    }

    /// The key commitment (not secret: it is stored in headers and DEK store rows).
    pub(crate) fn commitment(&self) -> &[u8; COMMITMENT_LEN] {
        &self.commitment
    }

    /// Magic, version, suite and commitment: the fixed start of the body's associated data.
    #[inline]
    pub(crate) fn fixed_ad(&self) -> &[u8; FIXED_AD_LEN] {
        &self.fixed_ad
    }

    /// Constant-time comparison of a header's commitment with this key's.
    ///
    /// XORs the values word by word and makes one constant-time decision on the result
    /// (`subtle`'s slice comparison pays an optimization barrier per byte).
    #[inline]
    pub(crate) fn commitment_matches(&self, candidate: &[u8]) -> bool {
        let Ok(candidate) = <&[u8; COMMITMENT_LEN]>::try_from(candidate) else {
            return false;
        };
        let (ours, _) = self.commitment.as_chunks::<8>();
        let (theirs, _) = candidate.as_chunks::<8>();
        let mut diff = 0u64;
        for (a, b) in ours.iter().zip(theirs) {
            diff |= u64::from_ne_bytes(*a) ^ u64::from_ne_bytes(*b);
        }
        bool::from(diff.ct_eq(&0))
    }

    /// Encrypts `buf` in place under a fresh random nonce written to `nonce` (the suite's
    /// nonce length), and returns the tag.
    #[inline]
    pub(crate) fn seal_in_place(
        &self,
        nonce: &mut [u8],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        match &self.cipher {
            Cipher::Gcm(k) => k.seal_in_place(gcm_nonce_mut(nonce), ad, buf),
            Cipher::XChaCha(c) => {
                rand::thread_rng().fill_bytes(nonce);
                self.xchacha_seal(c, nonce, ad, buf)
            }
        }
    }

    /// Encrypts `buf` in place under the given nonce (deterministic test vectors only).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn seal_in_place_with_nonce(
        &self,
        nonce: &[u8],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        self.cipher.seal_with_nonce(self.suite, nonce, ad, buf)
    }

    fn xchacha_seal(
        &self,
        cipher: &XChaCha20Poly1305,
        nonce: &[u8],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        cipher
            .encrypt_in_place_detached(GenericArray::from_slice(nonce), ad, buf)
            .map(Into::into)
            .map_err(|_| Error::MessageTooLarge {
                len: buf.len() as u64,
                max: self.suite.max_plaintext_len(),
            })
    }

    /// Authenticates `ciphertext` + `tag` and writes the plaintext into `out` (exactly as
    /// long as `ciphertext`). On failure `out` is zeroed and the error is opaque.
    #[inline]
    pub(crate) fn open(
        &self,
        nonce: &[u8],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        self.cipher.open(nonce, ad, ciphertext, tag, out)
    }
}

impl Cipher {
    /// Prepares a 32-byte AEAD key for `suite` on `provider`.
    fn new(provider: CryptoProvider, suite: Suite, key: &[u8; KEY_LEN]) -> Self {
        match suite {
            Suite::Aes256Gcm => Cipher::Gcm(GcmKey::new(provider, key)),
            Suite::XChaCha20Poly1305 => Cipher::XChaCha(Box::new(XChaCha20Poly1305::new(
                GenericArray::from_slice(key.as_ref()),
            ))),
        }
    }

    /// Authenticates `ciphertext` + `tag` and writes the plaintext into `out` (exactly as
    /// long as `ciphertext`). On failure `out` is zeroed and the error is opaque.
    #[inline]
    fn open(
        &self,
        nonce: &[u8],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::DecryptionFailed)?;
        match self {
            Cipher::Gcm(k) => {
                let nonce: &[u8; GCM_NONCE_LEN] =
                    nonce.try_into().map_err(|_| Error::DecryptionFailed)?;
                k.open(nonce, ad, ciphertext, tag, out)
            }
            Cipher::XChaCha(c) => {
                out.copy_from_slice(ciphertext);
                c.decrypt_in_place_detached(
                    GenericArray::from_slice(nonce),
                    ad,
                    out,
                    GenericArray::from_slice(tag),
                )
                .map_err(|_| {
                    zeroize::Zeroize::zeroize(&mut *out);
                    Error::DecryptionFailed
                })
            }
        }
    }

    /// Encrypts `buf` in place under the given nonce (the suite's length) and returns the
    /// tag. Fails only when `buf` exceeds the suite's per-message limit.
    #[inline]
    fn seal_with_nonce(
        &self,
        suite: Suite,
        nonce: &[u8],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let len = buf.len() as u64;
        let too_large = || Error::MessageTooLarge {
            len,
            max: suite.max_plaintext_len(),
        };
        match self {
            Cipher::Gcm(k) => {
                let nonce: &[u8; GCM_NONCE_LEN] = nonce
                    .try_into()
                    .map_err(|_| Error::malformed("nonce", "AES-GCM nonces are 12 bytes"))?;
                k.seal_in_place_with_nonce(nonce, ad, buf)
            }
            Cipher::XChaCha(c) => c
                .encrypt_in_place_detached(GenericArray::from_slice(nonce), ad, buf)
                .map(Into::into)
                .map_err(|_| too_large()),
        }
    }
}

impl Cipher {
    /// Seals `plaintext` into `out_and_tag` (the ciphertext, then the tag: exactly 16
    /// bytes longer) under the given nonce, out of place where the provider can.
    fn seal_into_with_nonce(
        &self,
        suite: Suite,
        nonce: &[u8],
        ad: &[u8],
        plaintext: &[u8],
        out_and_tag: &mut [u8],
    ) -> Result<()> {
        match self {
            Cipher::Gcm(k) => {
                let nonce: &[u8; GCM_NONCE_LEN] = nonce
                    .try_into()
                    .map_err(|_| Error::malformed("nonce", "AES-GCM nonces are 12 bytes"))?;
                k.seal_into_with_nonce(nonce, ad, plaintext, out_and_tag)
            }
            Cipher::XChaCha(_) => {
                if out_and_tag.len() != plaintext.len() + TAG_LEN {
                    return Err(Error::BufferTooSmall {
                        needed: plaintext.len() + TAG_LEN,
                        capacity: out_and_tag.len(),
                    });
                }
                let (out, tag) = out_and_tag.split_at_mut(plaintext.len());
                out.copy_from_slice(plaintext);
                match self.seal_with_nonce(suite, nonce, ad, out) {
                    Ok(sealed) => {
                        tag.copy_from_slice(&sealed);
                        Ok(())
                    }
                    Err(e) => {
                        // The copy of the plaintext does not outlive a failed seal.
                        zeroize::Zeroize::zeroize(out);
                        Err(e)
                    }
                }
            }
        }
    }
}

/// The info of the streaming form's segment key derivation.
const INFO_SEGMENT_KEY: &[u8] = b"envelope.v4.segment-key";

/// One stream's segment key (format version 4): derived from a DEK's stream root and the
/// stream's random salt, so that every stream has its own key and its segments can use
/// counter nonces (`docs/FORMAT.md`, "Streaming form"). Zeroized on drop like
/// [`DataKey`]'s cipher.
pub(crate) struct SegmentKey {
    suite: Suite,
    cipher: Cipher,
}

impl SegmentKey {
    /// `HKDF-SHA256(salt, stream_root, "envelope.v4.segment-key" || suite)`.
    pub(crate) fn derive(key: &DataKey, salt: &[u8]) -> Self {
        let mut segment_key = Zeroizing::new([0u8; KEY_LEN]);
        crypto::hkdf_sha256(
            key.provider,
            salt,
            key.stream_root.as_ref(),
            &[INFO_SEGMENT_KEY, &[key.suite.id()]],
            segment_key.as_mut(),
        );
        SegmentKey {
            suite: key.suite,
            cipher: Cipher::new(key.provider, key.suite, &segment_key),
        }
    }

    /// The suite.
    pub(crate) fn suite(&self) -> Suite {
        self.suite
    }

    /// Seals one segment in place under its nonce; returns the tag.
    #[inline]
    pub(crate) fn seal(&self, nonce: &[u8], ad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        self.cipher.seal_with_nonce(self.suite, nonce, ad, buf)
    }

    /// Seals one segment from `plaintext` into `out_and_tag` (its wire bytes: the
    /// ciphertext, then the tag) under its nonce.
    #[inline]
    pub(crate) fn seal_into(
        &self,
        nonce: &[u8],
        ad: &[u8],
        plaintext: &[u8],
        out_and_tag: &mut [u8],
    ) -> Result<()> {
        self.cipher
            .seal_into_with_nonce(self.suite, nonce, ad, plaintext, out_and_tag)
    }

    /// Opens one segment into `out` (as long as `ciphertext`); on failure `out` is zeroed.
    #[inline]
    pub(crate) fn open(
        &self,
        nonce: &[u8],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        self.cipher.open(nonce, ad, ciphertext, tag, out)
    }
}

impl fmt::Debug for SegmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentKey")
            .field("suite", &self.suite)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// The 12-byte nonce slot of an AES-GCM header.
#[inline]
fn gcm_nonce_mut(nonce: &mut [u8]) -> &mut [u8; GCM_NONCE_LEN] {
    // The header reserves exactly `Suite::nonce_len()` bytes: 12 for AES-GCM.
    match nonce.try_into() {
        Ok(n) => n,
        Err(_) => unreachable!("an AES-GCM nonce slot is 12 bytes"),
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
        let a = DataKey::new(CryptoProvider::default(), Suite::Aes256Gcm, &dek);
        let b = DataKey::new(CryptoProvider::default(), Suite::XChaCha20Poly1305, &dek);
        let c = DataKey::new(
            CryptoProvider::default(),
            Suite::Aes256Gcm,
            &Dek::from_array([8; KEY_LEN]),
        );
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
        let dk = DataKey::new(
            CryptoProvider::default(),
            Suite::Aes256Gcm,
            &Dek::from_array([0x5a; KEY_LEN]),
        );
        let shown = format!("{dk:?}");
        assert!(shown.contains("REDACTED") && !shown.contains("5a") && !shown.contains("90"));
    }
}
