//! Blind indexes: find an encrypted row by its value, with index keys that rotate.
//!
//! An index value is `trunc_N(HMAC-SHA256(K_mac, normalize(value)))` prefixed by its
//! index-key version, where `K_mac` is derived from a random 256-bit index key and the
//! index's definition (name, version, bits, normalizer). Index keys are wrapped by the KMS
//! like DEKs and kept in the index key store beside the DEK store's rows; a KEK rotation
//! rewraps them and changes no index value. Versions are `active` (writes and queries),
//! `query` (queries only: the rotation window) or `retired`. The construction, the
//! encodings and what an index leaks are in `docs/FORMAT.md`, "Blind indexes".
//!
//! | module | what it holds |
//! |---|---|
//! | `normalize` | [`Normalizer`]: the pipeline a value goes through before hashing |
//! | `construction` | key derivation, commitment and the truncated tag |
//! | `value` | [`IndexValue`] and its binary and text encodings |
//! | `store` | [`IndexKeyStore`], [`StoredIndexKey`], states and modes |
//! | `indexes` | [`BlindIndexes`]: compute, query values, create, rotate, retire, rewrap |
//! | `bits` | [`BitsAdvice`]: the bit length for a column's cardinality |

mod bits;
mod construction;
mod indexes;
mod normalize;
mod store;
mod value;

pub use bits::{BitsAdvice, DEFAULT_UNIQUE_BITS, estimate_distinct};
pub use indexes::{
    BlindIndexes, DEFAULT_INDEX_REFRESH, IndexKeysRewrapped, IndexSettings, NormalizerFn,
    check_index_name,
};
pub use normalize::{Normalizer, Step};
pub use store::{
    INDEX_BINDING_KEYS, IndexKeyStore, IndexMode, IndexState, StoredIndexKey, index_binding_context,
};
pub use value::{
    INDEX_TEXT_PREFIX, INDEX_VERSION_LEN, IndexValue, MAX_INDEX_BITS, MIN_INDEX_BITS, tag_len,
    version_of_bytes, version_of_text,
};

#[cfg(any(test, feature = "testing"))]
pub use construction_for_vectors::index_value_with_key;

#[cfg(any(test, feature = "testing"))]
mod construction_for_vectors {
    use super::construction::{Definition, PreparedIndexKey, commitment};
    use super::{IndexValue, Normalizer};
    use crate::crypto::CryptoProvider;
    use crate::error::Result;

    /// The index value and key commitment of an already custom-normalized `value` under a
    /// raw index key: what `testvectors/index.json` records (test builds only).
    pub fn index_value_with_key(
        provider: CryptoProvider,
        key: &[u8; 32],
        index: &str,
        version: u16,
        bits: u16,
        normalizer: &Normalizer,
        value: &[u8],
    ) -> Result<(IndexValue, [u8; 32])> {
        let spec = normalizer.spec();
        let definition = Definition {
            index,
            version,
            bits,
            normalizer: &spec,
        };
        let normalized = normalizer.apply_builtin(value)?;
        Ok((
            PreparedIndexKey::new(provider, key, &definition).tag(&normalized),
            commitment(provider, key, &definition),
        ))
    }
}
