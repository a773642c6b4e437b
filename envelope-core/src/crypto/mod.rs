//! The crypto provider seam: which audited implementation runs AES-256-GCM, HKDF-SHA256 and
//! key generation.
//!
//! Two providers exist, chosen by Cargo features of `envelope-core` (and of the `envelope`
//! facade):
//!
//! | feature | provider | AES-256-GCM | HKDF-SHA256 | keys (DEKs, local KEKs) |
//! |---|---|---|---|---|
//! | `aws-lc` (default) | [`CryptoProvider::AwsLc`] | aws-lc-rs | aws-lc-rs | aws-lc-rs `rand` (AWS-LC's DRBG) |
//! | `fips` | [`CryptoProvider::AwsLc`] on the AWS-LC FIPS module | aws-lc-rs (FIPS) | aws-lc-rs (FIPS) | aws-lc-rs `rand` (FIPS DRBG) |
//! | `rustcrypto` | [`CryptoProvider::RustCrypto`] | `aes-gcm` | `hkdf` + `sha2` | `rand::rngs::OsRng` |
//!
//! The blind indexes' HMAC-SHA256 runs on the RustCrypto `hmac` and `sha2` crates with both
//! providers (the fastest measured here), and inside the AWS-LC FIPS module in a `fips` build.
//!
//! XChaCha20-Poly1305 always runs on the RustCrypto `chacha20poly1305` crate: AWS-LC has
//! no XChaCha20 (only the 96-bit-nonce ChaCha20-Poly1305 of RFC 8439).
//!
//! Per-message nonces come from the thread-local CSPRNG (`rand::thread_rng()`, no syscall
//! per message) with both providers, except in a `fips` build, where AES-GCM seals draw
//! their IV inside the FIPS module (`RandomizedNonceKey`, the approved IV generation of
//! SP 800-38D §8.2.2); that costs one AWS-LC DRBG call per message (see `BENCHMARKS.md`).
//!
//! The AEAD key schedule is prepared once per DEK, when the DEK is unwrapped or generated, and
//! reused for every message under that DEK.

#[cfg(any(feature = "aws-lc", feature = "fips"))]
mod aws_lc;
#[cfg(feature = "rustcrypto")]
mod rust_crypto;

#[cfg(not(any(feature = "aws-lc", feature = "fips", feature = "rustcrypto")))]
compile_error!(
    "envelope-core needs a crypto provider: enable the `aws-lc` (default), `fips` or `rustcrypto` feature"
);

use std::fmt;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::KEY_LEN;

/// Length of an AES-GCM nonce.
pub(crate) const GCM_NONCE_LEN: usize = 12;
/// Length of an AEAD tag.
pub(crate) const GCM_TAG_LEN: usize = 16;

/// An audited cryptography implementation the SDK can run on.
///
/// The default is the first one compiled in, in this order: [`CryptoProvider::AwsLc`],
/// [`CryptoProvider::RustCrypto`]. Both produce and accept exactly the same bytes (the test
/// vectors run on every provider of a build).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CryptoProvider {
    /// aws-lc-rs (AWS-LC): the fastest AES-256-GCM on x86-64 and aarch64, and a FIPS 140-3
    /// validated module with the `fips` feature. Needs a C compiler to build (and CMake,
    /// Go and Perl for `fips`).
    AwsLc,
    /// The pure-Rust RustCrypto crates (`aes-gcm`, `hkdf`, `sha2`): no C toolchain.
    RustCrypto,
}

impl CryptoProvider {
    /// Every provider compiled into this build, the default first.
    pub const fn available() -> &'static [CryptoProvider] {
        #[cfg(all(any(feature = "aws-lc", feature = "fips"), feature = "rustcrypto"))]
        {
            &[CryptoProvider::AwsLc, CryptoProvider::RustCrypto]
        }
        #[cfg(all(any(feature = "aws-lc", feature = "fips"), not(feature = "rustcrypto")))]
        {
            &[CryptoProvider::AwsLc]
        }
        #[cfg(all(not(any(feature = "aws-lc", feature = "fips")), feature = "rustcrypto"))]
        {
            &[CryptoProvider::RustCrypto]
        }
        #[cfg(not(any(feature = "aws-lc", feature = "fips", feature = "rustcrypto")))]
        {
            &[]
        }
    }

    /// Whether this provider is compiled into this build.
    pub fn is_available(self) -> bool {
        Self::available().contains(&self)
    }

    /// The provider's name, as printed by tools and the C ABI.
    pub const fn name(self) -> &'static str {
        match self {
            CryptoProvider::AwsLc => "aws-lc-rs",
            CryptoProvider::RustCrypto => "rustcrypto",
        }
    }

    /// Fails with [`Error::InvalidConfig`] unless this provider is compiled in.
    pub(crate) fn check_available(self) -> Result<()> {
        if self.is_available() {
            Ok(())
        } else {
            Err(Error::InvalidConfig(format!(
                "crypto provider {} is not compiled into this build (enable its Cargo feature)",
                self.name()
            )))
        }
    }
}

impl Default for CryptoProvider {
    fn default() -> Self {
        Self::available()[0]
    }
}

impl fmt::Display for CryptoProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether AES-256-GCM, HKDF and key generation run inside the AWS-LC FIPS 140-3 module.
///
/// `true` only in a build with the `fips` feature, after AWS-LC confirmed that its FIPS
/// module is active (`FIPS_mode()`), and only for envelopes using
/// [`CryptoProvider::AwsLc`]. XChaCha20-Poly1305 is never FIPS-approved: a FIPS deployment
/// keeps the default AES-256-GCM suite.
pub fn fips_mode() -> bool {
    #[cfg(feature = "fips")]
    {
        aws_lc::fips_mode()
    }
    #[cfg(not(feature = "fips"))]
    {
        false
    }
}

/// Fills a fresh 32-byte key from the provider's CSPRNG (AWS-LC's DRBG, or the operating
/// system's through `OsRng`).
pub(crate) fn random_key(provider: CryptoProvider) -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    match provider {
        #[cfg(any(feature = "aws-lc", feature = "fips"))]
        CryptoProvider::AwsLc => aws_lc::fill_random(key.as_mut()),
        _ => {
            use rand::RngCore;
            rand::rngs::OsRng.fill_bytes(key.as_mut());
        }
    }
    key
}

/// HKDF-SHA256 (RFC 5869): extract with `salt`, expand with the concatenation of `info`
/// into `out` (at most 255 × 32 bytes; the SDK asks for 32).
pub(crate) fn hkdf_sha256(
    provider: CryptoProvider,
    salt: &[u8],
    ikm: &[u8],
    info: &[&[u8]],
    out: &mut [u8],
) {
    match provider {
        #[cfg(any(feature = "aws-lc", feature = "fips"))]
        CryptoProvider::AwsLc => aws_lc::hkdf_sha256(salt, ikm, info, out),
        #[cfg(feature = "rustcrypto")]
        CryptoProvider::RustCrypto => rust_crypto::hkdf_sha256(salt, ikm, info, out),
        #[allow(unreachable_patterns)]
        other => unreachable!("provider {other} is not compiled in (checked at build time)"),
    }
}

/// An HMAC-SHA256 key prepared once (inner and outer pads): the blind indexes' keyed hash.
///
/// On the RustCrypto `hmac` 0.13 and `sha2` 0.11 crates (SHA-NI where the CPU has it; their
/// hash states, the key's equivalent, zeroize on drop) with both providers: the fastest HMAC-SHA256 measured on this machine (`BENCHMARKS.md`, "Blind
/// indexes"), and the same bytes as AWS-LC's. A `fips` build computes it inside the AWS-LC
/// FIPS module instead.
pub(crate) struct HmacKey {
    #[cfg(feature = "fips")]
    key: aws_lc::HmacKey,
    #[cfg(not(feature = "fips"))]
    key: hmac_zeroizing::Hmac<sha2_zeroizing::Sha256>,
}

impl HmacKey {
    /// Prepares `key` (any provider: see the type's documentation).
    pub(crate) fn new(_provider: CryptoProvider, key: &[u8]) -> Self {
        #[cfg(feature = "fips")]
        {
            HmacKey {
                key: aws_lc::HmacKey::new(key),
            }
        }
        #[cfg(not(feature = "fips"))]
        {
            use hmac_zeroizing::KeyInit;
            // HMAC takes keys of any length: this cannot fail.
            let Ok(mac) =
                <hmac_zeroizing::Hmac<sha2_zeroizing::Sha256> as KeyInit>::new_from_slice(key)
            else {
                unreachable!("HMAC accepts keys of any length")
            };
            HmacKey { key: mac }
        }
    }

    /// HMAC-SHA256 of `data`.
    #[inline]
    pub(crate) fn sign(&self, data: &[u8]) -> [u8; 32] {
        #[cfg(feature = "fips")]
        {
            self.key.sign(data)
        }
        #[cfg(not(feature = "fips"))]
        {
            use hmac_zeroizing::Mac;
            // The clone's hash states zeroize when it is dropped (sha2's `zeroize` feature).
            let mut mac = self.key.clone();
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
    }
}

/// An AES-256-GCM key with its key schedule prepared once, on one provider.
pub(crate) enum GcmKey {
    #[cfg(any(feature = "aws-lc", feature = "fips"))]
    AwsLc(aws_lc::GcmKey),
    #[cfg(feature = "rustcrypto")]
    RustCrypto(rust_crypto::GcmKey),
}

impl GcmKey {
    /// Prepares `key` on `provider`, which must be compiled in (builders check it with
    /// [`CryptoProvider::check_available`]).
    pub(crate) fn new(provider: CryptoProvider, key: &[u8; KEY_LEN]) -> Self {
        match provider {
            #[cfg(any(feature = "aws-lc", feature = "fips"))]
            CryptoProvider::AwsLc => GcmKey::AwsLc(aws_lc::GcmKey::new(key)),
            #[cfg(feature = "rustcrypto")]
            CryptoProvider::RustCrypto => GcmKey::RustCrypto(rust_crypto::GcmKey::new(key)),
            #[allow(unreachable_patterns)]
            other => unreachable!("provider {other} is not compiled in (checked at build time)"),
        }
    }

    /// Encrypts `buf` in place under a fresh random nonce, written to `nonce`; returns the
    /// tag. Fails only when `buf` exceeds GCM's per-message limit.
    #[inline]
    pub(crate) fn seal_in_place(
        &self,
        nonce: &mut [u8; GCM_NONCE_LEN],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN]> {
        match self {
            #[cfg(any(feature = "aws-lc", feature = "fips"))]
            GcmKey::AwsLc(k) => k.seal_in_place(nonce, ad, buf),
            #[cfg(feature = "rustcrypto")]
            GcmKey::RustCrypto(k) => {
                use rand::RngCore;
                rand::thread_rng().fill_bytes(nonce);
                k.seal_in_place(nonce, ad, buf)
            }
        }
        .ok_or(Error::MessageTooLarge {
            len: buf.len() as u64,
            max: GCM_MAX_PLAINTEXT,
        })
    }

    /// Encrypts `buf` in place under the given nonce: the streaming form's segments (a key
    /// derived per stream, a counter nonce: the deterministic construction of SP 800-38D
    /// §8.2.1) and the test vectors. Messages of the value forms always draw a fresh nonce.
    pub(crate) fn seal_in_place_with_nonce(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN]> {
        match self {
            #[cfg(any(feature = "aws-lc", feature = "fips"))]
            GcmKey::AwsLc(k) => k.seal_in_place_with_nonce(nonce, ad, buf),
            #[cfg(feature = "rustcrypto")]
            GcmKey::RustCrypto(k) => k.seal_in_place(nonce, ad, buf),
        }
        .ok_or(Error::MessageTooLarge {
            len: buf.len() as u64,
            max: GCM_MAX_PLAINTEXT,
        })
    }

    /// Seals `plaintext` under the given nonce into `out_and_tag` (exactly
    /// `plaintext.len() + 16` bytes: the ciphertext, then the tag). On aws-lc-rs this is
    /// one out-of-place pass; RustCrypto's AES-GCM works in place, so it copies first.
    pub(crate) fn seal_into_with_nonce(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        ad: &[u8],
        plaintext: &[u8],
        out_and_tag: &mut [u8],
    ) -> Result<()> {
        if out_and_tag.len() != plaintext.len() + GCM_TAG_LEN {
            return Err(Error::BufferTooSmall {
                needed: plaintext.len() + GCM_TAG_LEN,
                capacity: out_and_tag.len(),
            });
        }
        let too_large = || Error::MessageTooLarge {
            len: plaintext.len() as u64,
            max: GCM_MAX_PLAINTEXT,
        };
        match self {
            #[cfg(any(feature = "aws-lc", feature = "fips"))]
            GcmKey::AwsLc(k) => k
                .seal_into_with_nonce(nonce, ad, plaintext, out_and_tag)
                .ok_or_else(too_large),
            #[cfg(feature = "rustcrypto")]
            GcmKey::RustCrypto(k) => {
                let (out, tag) = out_and_tag.split_at_mut(plaintext.len());
                out.copy_from_slice(plaintext);
                let Some(sealed) = k.seal_in_place(nonce, ad, out) else {
                    // The copy of the plaintext does not outlive a failed seal.
                    zeroize::Zeroize::zeroize(out);
                    return Err(too_large());
                };
                tag.copy_from_slice(&sealed);
                Ok(())
            }
        }
    }

    /// Authenticates `ciphertext` and `tag`, and writes the plaintext into `out` (exactly
    /// `ciphertext.len()` bytes). On failure `out` holds no plaintext (it is zeroed) and the
    /// error is the opaque [`Error::DecryptionFailed`].
    #[inline]
    pub(crate) fn open(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; GCM_TAG_LEN],
        out: &mut [u8],
    ) -> Result<()> {
        debug_assert_eq!(ciphertext.len(), out.len());
        let ok = match self {
            #[cfg(any(feature = "aws-lc", feature = "fips"))]
            GcmKey::AwsLc(k) => k.open(nonce, ad, ciphertext, tag, out),
            #[cfg(feature = "rustcrypto")]
            GcmKey::RustCrypto(k) => k.open(nonce, ad, ciphertext, tag, out),
        };
        if ok {
            Ok(())
        } else {
            zeroize::Zeroize::zeroize(out);
            Err(Error::DecryptionFailed)
        }
    }

    /// The provider this key runs on.
    pub(crate) fn provider(&self) -> CryptoProvider {
        match self {
            #[cfg(any(feature = "aws-lc", feature = "fips"))]
            GcmKey::AwsLc(_) => CryptoProvider::AwsLc,
            #[cfg(feature = "rustcrypto")]
            GcmKey::RustCrypto(_) => CryptoProvider::RustCrypto,
        }
    }
}

impl fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcmKey")
            .field("provider", &self.provider())
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// The largest plaintext of one AES-GCM message: 2^39 − 256 bits (SP 800-38D).
pub(crate) const GCM_MAX_PLAINTEXT: u64 = (1 << 36) - 32;

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST GCM test vector (gcmEncryptExtIV256.rsp, Count = 0 of the [Keylen = 256,
    /// IVlen = 96, PTlen = 128, AADlen = 128, Taglen = 128] group), run on every provider.
    #[test]
    fn nist_vector_on_every_provider() {
        let key: [u8; 32] =
            hex32("92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b");
        let nonce: [u8; 12] = hex::decode("ac93a1a6145299bde902f21a")
            .expect("hex")
            .try_into()
            .expect("12");
        let pt = hex::decode("2d71bcfa914e4ac045b2aa60955fad24").expect("hex");
        let aad = hex::decode("1e0889016f67601c8ebea4943bc23ad6").expect("hex");
        let ct = hex::decode("8995ae2e6df3dbf96fac7b7137bae67f").expect("hex");
        let tag: [u8; 16] = hex::decode("eca5aa77d51d4a0a14d9c51e1da474ab")
            .expect("hex")
            .try_into()
            .expect("16");
        for &provider in CryptoProvider::available() {
            let k = GcmKey::new(provider, &key);
            let mut buf = pt.clone();
            let got = k
                .seal_in_place_with_nonce(&nonce, &aad, &mut buf)
                .expect("seal");
            assert_eq!((buf.as_slice(), got), (ct.as_slice(), tag), "{provider}");
            // Out of place: the same ciphertext then the tag, the plaintext untouched.
            let mut wire = vec![0u8; pt.len() + GCM_TAG_LEN];
            k.seal_into_with_nonce(&nonce, &aad, &pt, &mut wire)
                .expect("seal");
            assert_eq!(wire, [ct.as_slice(), &tag].concat(), "{provider}");
            let mut short = vec![0u8; pt.len() + GCM_TAG_LEN - 1];
            assert!(matches!(
                k.seal_into_with_nonce(&nonce, &aad, &pt, &mut short),
                Err(Error::BufferTooSmall { .. })
            ));
            let mut out = vec![0u8; ct.len()];
            k.open(&nonce, &aad, &ct, &tag, &mut out).expect("open");
            assert_eq!(out, pt, "{provider}");
            let mut bad = tag;
            bad[0] ^= 1;
            assert!(matches!(
                k.open(&nonce, &aad, &ct, &bad, &mut out),
                Err(Error::DecryptionFailed)
            ));
            assert!(
                out.iter().all(|&b| b == 0),
                "{provider}: no plaintext residue"
            );
        }
    }

    #[test]
    fn random_nonces_differ_and_round_trip() {
        for &provider in CryptoProvider::available() {
            let k = GcmKey::new(provider, &[3; 32]);
            let (mut n1, mut n2) = ([0u8; 12], [0u8; 12]);
            let mut a = *b"same plaintext";
            let mut b = a;
            let t1 = k.seal_in_place(&mut n1, b"ad", &mut a).expect("seal");
            let _ = k.seal_in_place(&mut n2, b"ad", &mut b).expect("seal");
            assert_ne!(n1, n2, "{provider}");
            let mut out = [0u8; 14];
            k.open(&n1, b"ad", &a, &t1, &mut out).expect("open");
            assert_eq!(&out, b"same plaintext");
        }
    }

    /// RFC 5869 test case 1 (SHA-256), run on every provider.
    #[test]
    fn hkdf_rfc5869_case_1_on_every_provider() {
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").expect("hex");
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").expect("hex");
        let okm = hex::decode(
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        )
        .expect("hex");
        for &provider in CryptoProvider::available() {
            let mut out = vec![0u8; okm.len()];
            // The info split in two parts must equal the whole.
            hkdf_sha256(provider, &salt, &ikm, &[&info[..3], &info[3..]], &mut out);
            assert_eq!(out, okm, "{provider}");
        }
    }

    #[test]
    fn random_keys_differ_on_every_provider() {
        for &provider in CryptoProvider::available() {
            assert_ne!(*random_key(provider), *random_key(provider), "{provider}");
        }
    }

    #[test]
    fn default_is_first_available_and_debug_is_redacted() {
        assert_eq!(CryptoProvider::default(), CryptoProvider::available()[0]);
        let k = GcmKey::new(CryptoProvider::default(), &[0x5a; 32]);
        let shown = format!("{k:?}");
        assert!(shown.contains("REDACTED") && !shown.contains("5a") && !shown.contains("90"));
    }

    #[test]
    fn fips_mode_matches_the_build() {
        assert_eq!(fips_mode(), cfg!(feature = "fips"));
    }

    fn hex32(s: &str) -> [u8; 32] {
        hex::decode(s).expect("hex").try_into().expect("32 bytes")
    }
}
