//! The keyed hash: an index key, prepared once per (index, version), turns a normalized
//! value into its truncated tag (`docs/FORMAT.md`, "Blind indexes").
//!
//! ```text
//! definition = u16(len name) | name | u16(version) | u16(bits) | u16(len normalizer) | normalizer
//! K_mac      = HKDF-SHA256(salt = "envelope blind index v1", ikm = K_index, info = 0x01 | definition)
//! commitment = HKDF-SHA256(salt = "envelope blind index v1", ikm = K_index, info = 0x02 | definition)
//! tag        = first ⌈N/8⌉ bytes of HMAC-SHA256(K_mac, normalize(value)), the last byte's
//!              8⌈N/8⌉ − N low bits cleared
//! ```
//!
//! The definition is bound into the MAC key, not hashed with every value: the per-value work
//! is exactly one HMAC-SHA256 of the normalized value under a prepared key.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::blind_index::value::{IndexValue, tag_len};
use crate::crypto::{self, CryptoProvider, HmacKey};
use crate::secret::KEY_LEN;
use crate::suite::COMMITMENT_LEN;

/// HKDF's salt for every blind-index derivation.
pub(crate) const SALT: &[u8] = b"envelope blind index v1";
const PURPOSE_MAC: u8 = 0x01;
const PURPOSE_COMMITMENT: u8 = 0x02;

/// What an index version's tags are bound to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Definition<'a> {
    pub index: &'a str,
    pub version: u16,
    pub bits: u16,
    pub normalizer: &'a str,
}

impl Definition<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.index.len() + self.normalizer.len());
        for field in [self.index.as_bytes(), self.normalizer.as_bytes()] {
            debug_assert!(field.len() <= usize::from(u16::MAX));
        }
        out.extend_from_slice(&(self.index.len() as u16).to_be_bytes());
        out.extend_from_slice(self.index.as_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.bits.to_be_bytes());
        out.extend_from_slice(&(self.normalizer.len() as u16).to_be_bytes());
        out.extend_from_slice(self.normalizer.as_bytes());
        out
    }
}

/// The commitment a stored index key row carries: proves, after an unwrap, that the key is
/// the one the row was created with, for this definition.
pub(crate) fn commitment(
    provider: CryptoProvider,
    key: &[u8; KEY_LEN],
    definition: &Definition<'_>,
) -> [u8; COMMITMENT_LEN] {
    let mut out = [0u8; COMMITMENT_LEN];
    crypto::hkdf_sha256(
        provider,
        SALT,
        key,
        &[&[PURPOSE_COMMITMENT], &definition.encode()],
        &mut out,
    );
    out
}

/// Whether `key` matches a row's `stored` commitment (constant time).
pub(crate) fn commitment_matches(
    provider: CryptoProvider,
    key: &[u8; KEY_LEN],
    definition: &Definition<'_>,
    stored: &[u8; COMMITMENT_LEN],
) -> bool {
    bool::from(commitment(provider, key, definition).ct_eq(stored))
}

/// An index version's MAC key, prepared: computes tags.
pub(crate) struct PreparedIndexKey {
    mac: HmacKey,
    version: u16,
    len: usize,
    mask: u8,
}

impl PreparedIndexKey {
    /// Derives the MAC key of `definition` from the index key.
    pub(crate) fn new(
        provider: CryptoProvider,
        key: &[u8; KEY_LEN],
        definition: &Definition<'_>,
    ) -> Self {
        let mut mac_key = Zeroizing::new([0u8; KEY_LEN]);
        crypto::hkdf_sha256(
            provider,
            SALT,
            key,
            &[&[PURPOSE_MAC], &definition.encode()],
            mac_key.as_mut(),
        );
        let len = tag_len(definition.bits);
        let unused = (8 * len) as u32 - u32::from(definition.bits);
        PreparedIndexKey {
            mac: HmacKey::new(provider, mac_key.as_ref()),
            version: definition.version,
            len,
            mask: (0xffu16 << unused) as u8,
        }
    }

    /// The index value of an already normalized value.
    #[inline]
    pub(crate) fn tag(&self, normalized: &[u8]) -> IndexValue {
        let mut full = self.mac.sign(normalized);
        full[self.len - 1] &= self.mask;
        IndexValue::new(self.version, &full[..self.len])
    }
}
