//! The compact form's bytes (format version 2; `docs/FORMAT.md`, "Compact form").
//!
//! ```text
//! "EV" | 0x02 | suite | DEK id (u64, big-endian, non-zero) | nonce || ciphertext || tag (16)
//! associated data = bytes 0..12 (magic, version, suite, DEK id) || key commitment (32) || AAD
//! ```
//!
//! The key commitment is not in the field: it is in the DEK store's row, checked against the
//! unwrapped DEK when the row is loaded, and bound into every field's tag through the
//! associated data.

use std::fmt;
use std::num::NonZeroU64;

use crate::error::{Error, Result};
use crate::format::{MAGIC, NonceSource, Output, prefix_of, seal_body};
use crate::suite::{COMMITMENT_LEN, DataKey, Suite, TAG_LEN};

/// The format version byte of the compact form.
pub const COMPACT_FORMAT_VERSION: u8 = 2;
/// The prefix of the compact text form: `ev2:` + base64url (unpadded) of the binary form.
pub const COMPACT_TEXT_PREFIX: &str = "ev2:";
/// Length of a DEK id in the header.
pub const DEK_ID_LEN: usize = 8;
/// Magic, version, suite and DEK id: the header bytes before the nonce.
const ID_END: usize = 4 + DEK_ID_LEN;

/// The number a DEK store assigned to a DEK, and what a compact ciphertext names its DEK by.
///
/// Never zero. Stores hand them out from a sequence that never reuses a number, so two DEKs
/// of one store never share an id (see `docs/FORMAT.md`, "DEK store").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DekId(NonZeroU64);

impl DekId {
    /// The id `n`; `None` for zero.
    pub const fn new(n: u64) -> Option<Self> {
        match NonZeroU64::new(n) {
            Some(n) => Some(DekId(n)),
            None => None,
        }
    }

    /// The id as a number.
    pub const fn get(self) -> u64 {
        self.0.get()
    }

    /// The header bytes (big-endian).
    pub const fn to_bytes(self) -> [u8; DEK_ID_LEN] {
        self.0.get().to_be_bytes()
    }

    /// The key an envelope's caches and negative cache use for this id: a zero byte (no KEK
    /// reference starts with provider 0) followed by the id.
    pub(crate) fn cache_key(self) -> [u8; 1 + DEK_ID_LEN] {
        let mut key = [0u8; 1 + DEK_ID_LEN];
        key[1..].copy_from_slice(&self.to_bytes());
        key
    }
}

impl fmt::Display for DekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether `input` is a binary ciphertext of the compact form (magic and version byte only;
/// [`parse`] checks the rest).
#[inline]
pub(crate) fn is_compact(input: &[u8]) -> bool {
    input.len() > 2 && input[..2] == MAGIC && input[2] == COMPACT_FORMAT_VERSION
}

/// The overhead of the compact form for `suite`: 4 + 8 + nonce + 16 bytes (40 for
/// AES-256-GCM, 52 for XChaCha20-Poly1305).
pub const fn compact_overhead(suite: Suite) -> usize {
    ID_END + suite.nonce_len() + TAG_LEN
}

/// A compact ciphertext split into its fields, borrowing the input.
#[derive(Debug)]
pub(crate) struct ParsedCompact<'a> {
    pub suite: Suite,
    pub dek_id: DekId,
    /// Magic, version, suite, DEK id: the associated data's first 12 bytes.
    pub prefix: &'a [u8],
    pub nonce: &'a [u8],
    /// Ciphertext and tag.
    pub body: &'a [u8],
}

/// Splits a compact binary ciphertext, checking every length. Never panics.
pub(crate) fn parse(input: &[u8]) -> Result<ParsedCompact<'_>> {
    let truncated = |field: &'static str, need: usize, at: usize| {
        Error::malformed(
            field,
            format!(
                "truncated: needs {need} bytes at offset {at}, {} left",
                input.len().saturating_sub(at)
            ),
        )
    };
    if input.get(..2).ok_or_else(|| truncated("magic", 2, 0))? != MAGIC {
        return Err(Error::malformed(
            "magic",
            "not an envelope ciphertext (expected the bytes \"EV\")",
        ));
    }
    let version = *input
        .get(2)
        .ok_or_else(|| truncated("format version", 1, 2))?;
    if version != COMPACT_FORMAT_VERSION {
        return Err(Error::UnsupportedFormatVersion(version));
    }
    let suite = Suite::from_id(*input.get(3).ok_or_else(|| truncated("suite", 1, 3))?)?;
    let id_bytes: [u8; DEK_ID_LEN] = input
        .get(4..ID_END)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| truncated("DEK id", DEK_ID_LEN, 4))?;
    let dek_id = DekId::new(u64::from_be_bytes(id_bytes))
        .ok_or_else(|| Error::malformed("DEK id", "must not be zero"))?;
    let nonce_end = ID_END + suite.nonce_len();
    let nonce = input
        .get(ID_END..nonce_end)
        .ok_or_else(|| truncated("nonce", suite.nonce_len(), ID_END))?;
    let body = &input[nonce_end..];
    if body.len() < TAG_LEN {
        return Err(Error::malformed(
            "body",
            format!(
                "truncated: {} bytes, the tag alone needs {TAG_LEN}",
                body.len()
            ),
        ));
    }
    Ok(ParsedCompact {
        suite,
        dek_id,
        prefix: &input[..ID_END],
        nonce,
        body,
    })
}

/// Runs `f` with the compact body's associated data: magic, version, suite and DEK id (12
/// bytes), the key's commitment (32), then the caller's AAD; up to 128 bytes on the stack.
#[inline]
fn with_associated_data<R>(
    prefix: &[u8],
    key: &DataKey,
    aad: &[u8],
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    const STACK: usize = 128;
    const FIXED: usize = ID_END + COMMITMENT_LEN;
    let total = FIXED + aad.len();
    if total <= STACK {
        let mut buf = [0u8; STACK];
        buf[..ID_END].copy_from_slice(prefix);
        buf[ID_END..FIXED].copy_from_slice(key.commitment());
        buf[FIXED..total].copy_from_slice(aad);
        f(&buf[..total])
    } else {
        f(&[prefix, key.commitment(), aad].concat())
    }
}

/// Seals `plaintext` into `out` (exactly its compact ciphertext's length, plaintext already
/// copied after the header); on error zeroizes the copied plaintext.
fn seal_laid_out(
    key: &DataKey,
    dek_id: DekId,
    nonce: NonceSource,
    aad: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let suite = key.suite();
    out[..2].copy_from_slice(&MAGIC);
    out[2] = COMPACT_FORMAT_VERSION;
    out[3] = suite.id();
    out[4..ID_END].copy_from_slice(&dek_id.to_bytes());
    let (header, rest) = out.split_at_mut(ID_END + suite.nonce_len());
    let (prefix, nonce_slot) = header.split_at_mut(ID_END);
    let (body, tag_out) = rest.split_at_mut(rest.len() - TAG_LEN);
    with_associated_data(prefix, key, aad, |ad| {
        seal_body(key, nonce, nonce_slot, ad, body, tag_out)
    })
}

/// Opens a parsed compact ciphertext with the DEK its id resolved to, into `out` (exactly
/// the plaintext's length).
#[inline]
fn open_into(key: &DataKey, parsed: &ParsedCompact<'_>, aad: &[u8], out: &mut [u8]) -> Result<()> {
    if key.suite() != parsed.suite {
        return Err(Error::DecryptionFailed);
    }
    let (ct, tag) = parsed.body.split_at(parsed.body.len() - TAG_LEN);
    with_associated_data(parsed.prefix, key, aad, |ad| {
        key.open(parsed.nonce, ad, ct, tag, out)
    })
}

impl Output<'_> {
    /// Encrypts one message in the compact form under the DEK stored as `dek_id`.
    #[inline]
    pub(crate) fn seal_compact(
        &mut self,
        key: &DataKey,
        dek_id: DekId,
        nonce: NonceSource,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<usize> {
        let suite = key.suite();
        crate::format::check_message_len(suite, plaintext)?;
        let header_len = ID_END + suite.nonce_len();
        let len = header_len + plaintext.len() + TAG_LEN;
        match self {
            Output::Append(vec) => {
                let start = vec.len();
                vec.reserve(len);
                vec.resize(start + header_len, 0);
                vec.extend_from_slice(plaintext);
                vec.extend_from_slice(&[0u8; TAG_LEN]);
                let sealed = seal_laid_out(key, dek_id, nonce, aad, &mut vec[start..]);
                if sealed.is_err() {
                    vec.truncate(start);
                }
                sealed.map(|()| len)
            }
            Output::Slice(buf) => {
                let out = prefix_of(buf, len)?;
                out[header_len..len - TAG_LEN].copy_from_slice(plaintext);
                seal_laid_out(key, dek_id, nonce, aad, out).map(|()| len)
            }
        }
    }

    /// Decrypts a parsed compact ciphertext with the DEK its id resolved to.
    #[inline]
    pub(crate) fn open_compact(
        &mut self,
        key: &DataKey,
        parsed: &ParsedCompact<'_>,
        aad: &[u8],
    ) -> Result<usize> {
        let len = parsed.body.len() - TAG_LEN;
        match self {
            Output::Append(vec) => {
                let start = vec.len();
                vec.resize(start + len, 0);
                let opened = open_into(key, parsed, aad, &mut vec[start..]);
                if opened.is_err() {
                    vec.truncate(start);
                }
                opened.map(|()| len)
            }
            Output::Slice(buf) => open_into(key, parsed, aad, prefix_of(buf, len)?).map(|()| len),
        }
    }
}

/// Encrypts one compact message with a given nonce (the test vectors' deterministic path;
/// the SDK always draws a fresh nonce).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn seal_with_nonce(
    key: &DataKey,
    dek_id: DekId,
    nonce: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    if nonce.len() != key.suite().nonce_len() {
        return Err(Error::malformed("nonce", "wrong length for the suite"));
    }
    let mut fixed = [0u8; crate::format::MAX_NONCE_LEN];
    fixed[..nonce.len()].copy_from_slice(nonce);
    let mut out = Vec::new();
    Output::Append(&mut out).seal_compact(
        key,
        dek_id,
        NonceSource::Fixed(fixed),
        plaintext,
        aad,
    )?;
    Ok(out)
}

/// Header facts of a compact ciphertext, read without the store or any key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactInfo {
    /// Always [`COMPACT_FORMAT_VERSION`].
    pub format_version: u8,
    /// The AEAD suite.
    pub suite: Suite,
    /// The DEK store row that holds the wrapped DEK.
    pub dek_id: DekId,
    /// Header length (magic through nonce).
    pub header_len: usize,
    /// Plaintext length.
    pub plaintext_len: usize,
    /// Header plus tag.
    pub overhead: usize,
}

/// Reads a compact binary ciphertext's header without the store or any key.
pub fn inspect_compact(ciphertext: &[u8]) -> Result<CompactInfo> {
    let p = parse(ciphertext)?;
    let header_len = p.prefix.len() + p.nonce.len();
    Ok(CompactInfo {
        format_version: COMPACT_FORMAT_VERSION,
        suite: p.suite,
        dek_id: p.dek_id,
        header_len,
        plaintext_len: p.body.len() - TAG_LEN,
        overhead: header_len + TAG_LEN,
    })
}

/// A compact ciphertext's header facts completed from its DEK store row: the KEK provider,
/// key id, version and label are the row's, the DEK fingerprint is the row commitment's
/// (the same fingerprint a v1 header under this DEK would show). Fails like a decryption
/// when the row is not the one the ciphertext names or its suite differs (no key is used).
pub fn header_info(ciphertext: &[u8], row: &super::StoredDek) -> Result<crate::HeaderInfo> {
    let info = inspect_compact(ciphertext)?;
    if row.id != info.dek_id || row.suite != info.suite {
        return Err(Error::DecryptionFailed);
    }
    Ok(crate::HeaderInfo {
        format_version: COMPACT_FORMAT_VERSION,
        suite: info.suite,
        provider: row.wrapped.provider,
        key_id: row.wrapped.key_id.clone(),
        key_version: row.wrapped.key_version.clone(),
        wrapped_dek_len: row.wrapped.ciphertext.len(),
        header_len: info.header_len,
        plaintext_len: info.plaintext_len,
        overhead: info.overhead,
        dek_fingerprint: crate::format::fingerprint(&row.commitment),
        label: row.wrapped.check_label(),
        dek_id: Some(info.dek_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CryptoProvider;
    use crate::secret::Dek;

    fn sealed() -> (DataKey, Vec<u8>) {
        let key = DataKey::new(
            CryptoProvider::default(),
            Suite::Aes256Gcm,
            &Dek::from_array([7; 32]),
        );
        let id = DekId::new(0x0102_0304_0506_0708).expect("non-zero");
        let ct = seal_with_nonce(&key, id, &[9; 12], b"123-45-6789", b"aad").expect("seal");
        (key, ct)
    }

    #[test]
    fn layout_is_as_documented() {
        let (_, ct) = sealed();
        assert_eq!(ct.len(), 51);
        assert_eq!(&ct[..4], b"EV\x02\x01");
        assert_eq!(&ct[4..12], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&ct[12..24], &[9; 12]);
        let info = inspect_compact(&ct).expect("inspect");
        assert_eq!(
            (info.header_len, info.plaintext_len, info.overhead),
            (24, 11, 40)
        );
        assert_eq!(compact_overhead(Suite::XChaCha20Poly1305), 52);
    }

    #[test]
    fn every_truncation_and_every_single_byte_flip_is_refused_without_panicking() {
        let (key, ct) = sealed();
        for cut in 0..ct.len() {
            let short = &ct[..cut];
            match parse(short) {
                Err(Error::Malformed { .. }) => {}
                // Long enough to parse: the tag then fails.
                Ok(p) => assert!(
                    Output::Append(&mut Vec::new())
                        .open_compact(&key, &p, b"aad")
                        .is_err(),
                    "cut {cut}"
                ),
                Err(e) => panic!("cut {cut}: {e:?}"),
            }
        }
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            let opened = parse(&bad).and_then(|p| {
                let mut out = Vec::new();
                Output::Append(&mut out).open_compact(&key, &p, b"aad")?;
                Ok(out)
            });
            assert!(opened.is_err(), "flip at {i} still opened");
        }
        let mut out = Vec::new();
        let p = parse(&ct).expect("parse");
        assert_eq!(
            Output::Append(&mut out)
                .open_compact(&key, &p, b"aad")
                .expect("open"),
            11
        );
        assert!(
            Output::Append(&mut Vec::new())
                .open_compact(&key, &p, b"other")
                .is_err()
        );
    }

    #[test]
    fn a_zero_id_and_other_versions_are_named() {
        let (_, mut ct) = sealed();
        ct[4..12].copy_from_slice(&[0; 8]);
        assert!(matches!(
            parse(&ct),
            Err(Error::Malformed {
                field: "DEK id",
                ..
            })
        ));
        ct[2] = 1;
        assert!(matches!(
            parse(&ct),
            Err(Error::UnsupportedFormatVersion(1))
        ));
        assert!(!is_compact(&ct));
        assert!(!is_compact(b"EV"));
    }
}
