//! The aws-lc-rs provider (AWS-LC; the FIPS 140-3 module with the `fips` feature).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{self, HKDF_SHA256, KeyType, Salt};

use super::{GCM_NONCE_LEN, GCM_TAG_LEN};
use crate::secret::KEY_LEN;

/// An AES-256-GCM key schedule in AWS-LC (zeroized by AWS-LC when dropped).
pub(crate) struct GcmKey {
    /// Seals with a caller nonce (non-FIPS builds: the nonce comes from the thread-local
    /// CSPRNG; test vectors) and opens.
    key: LessSafeKey,
    /// Seals with an IV generated inside the FIPS module.
    #[cfg(feature = "fips")]
    randomized: aws_lc_rs::aead::RandomizedNonceKey,
}

impl GcmKey {
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Self {
        // AES_256_GCM rejects only keys that are not 32 bytes: these cannot fail.
        let Ok(unbound) = UnboundKey::new(&AES_256_GCM, key) else {
            unreachable!("AES-256-GCM accepts every 32-byte key")
        };
        #[cfg(feature = "fips")]
        let Ok(randomized) = aws_lc_rs::aead::RandomizedNonceKey::new(&AES_256_GCM, key) else {
            unreachable!("AES-256-GCM accepts every 32-byte key")
        };
        GcmKey {
            key: LessSafeKey::new(unbound),
            #[cfg(feature = "fips")]
            randomized,
        }
    }

    /// Seals under a fresh nonce written to `nonce`: the thread-local CSPRNG's, or in a FIPS
    /// build the module's own IV generation. `None` when `buf` is too long for GCM.
    #[inline]
    pub(crate) fn seal_in_place(
        &self,
        nonce: &mut [u8; GCM_NONCE_LEN],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Option<[u8; GCM_TAG_LEN]> {
        #[cfg(feature = "fips")]
        {
            let (drawn, tag) = self
                .randomized
                .seal_in_place_separate_tag(Aad::from(ad), buf)
                .ok()?;
            nonce.copy_from_slice(drawn.as_ref());
            tag.as_ref().try_into().ok()
        }
        #[cfg(not(feature = "fips"))]
        {
            use rand::RngCore;
            rand::thread_rng().fill_bytes(nonce);
            self.seal_in_place_with_nonce(nonce, ad, buf)
        }
    }

    /// Seals under the given nonce (the streaming form's per-stream keys with counter
    /// nonces, SP 800-38D §8.2.1; the test vectors).
    #[inline]
    pub(crate) fn seal_in_place_with_nonce(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Option<[u8; GCM_TAG_LEN]> {
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(ad), buf)
            .ok()?;
        tag.as_ref().try_into().ok()
    }

    /// Seals `plaintext` under the given nonce straight into `out_and_tag` (its length plus
    /// the tag's, the ciphertext then the tag, as a streaming segment is on the wire): one
    /// pass over the data, no copy of the plaintext first. `None` when the lengths differ.
    #[inline]
    pub(crate) fn seal_into_with_nonce(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        ad: &[u8],
        plaintext: &[u8],
        out_and_tag: &mut [u8],
    ) -> Option<()> {
        // AWS-LC's scatter seal encrypts `extra_in` into the start of `extra_out_and_tag`
        // and puts the tag after it; with an empty in-place part that is an out-of-place
        // seal, through the same AES-GCM code as the in-place one.
        self.key
            .seal_in_place_scatter(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(ad),
                &mut [],
                plaintext,
                out_and_tag,
            )
            .ok()
    }

    /// Opens `ciphertext` + `tag` straight into `out` (no intermediate copy). `false` on
    /// any authentication failure.
    #[inline]
    pub(crate) fn open(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; GCM_TAG_LEN],
        out: &mut [u8],
    ) -> bool {
        self.key
            .open_separate_gather(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(ad),
                ciphertext,
                tag,
                out,
            )
            .is_ok()
    }
}

/// An HKDF output length for aws-lc-rs.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

pub(crate) fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let prk = Salt::new(HKDF_SHA256, salt).extract(ikm);
    // Fails only for outputs over 255 × 32 bytes; the SDK asks for 32.
    let filled = prk
        .expand(info, Len(out.len()))
        .and_then(|okm: hkdf::Okm<'_, Len>| okm.fill(out));
    assert!(filled.is_ok(), "HKDF-SHA256 output of {} bytes", out.len());
}

/// An HMAC-SHA256 key with its inner and outer pads prepared once (`fips` builds).
#[cfg(feature = "fips")]
pub(crate) struct HmacKey(aws_lc_rs::hmac::Key);

#[cfg(feature = "fips")]
impl HmacKey {
    pub(crate) fn new(key: &[u8]) -> Self {
        HmacKey(aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key))
    }

    #[inline]
    pub(crate) fn sign(&self, data: &[u8]) -> [u8; 32] {
        let tag = aws_lc_rs::hmac::sign(&self.0, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

pub(crate) fn fill_random(out: &mut [u8]) {
    // AWS-LC's RAND_bytes fails only if the entropy source is gone, when no key can be
    // made safely: stop rather than hand out a weak key.
    assert!(
        aws_lc_rs::rand::fill(out).is_ok(),
        "AWS-LC's random generator failed"
    );
}

#[cfg(feature = "fips")]
pub(crate) fn fips_mode() -> bool {
    aws_lc_rs::try_fips_mode().is_ok()
}
