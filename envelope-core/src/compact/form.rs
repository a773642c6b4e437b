//! The compact form's bytes (format versions 3 and 2; `docs/FORMAT.md`, "Compact form").
//!
//! ```text
//! v3 (committing, the default):
//!   "EV" | 0x03 | suite | DEK id (u64 BE, non-zero) | key commitment (32) | nonce || ciphertext || tag (16)
//! v2 (non-committing, written only on request):
//!   "EV" | 0x02 | suite | DEK id (u64 BE, non-zero) | nonce || ciphertext || tag (16)
//! associated data = bytes 0..12 (magic, version, suite, DEK id) || key commitment (32) || AAD
//! ```
//!
//! A version 3 value carries its DEK's key commitment, checked in constant time against the
//! DEK its id resolves to before the tag: the value opens under at most one DEK, whoever
//! writes the store. A version 2 value carries none (its tag binds the store row's
//! commitment only, which does not commit against someone who knows two DEKs).

use std::fmt;
use std::num::NonZeroU64;

use crate::error::{Error, Result};
use crate::format::{MAGIC, NonceSource, Output, open_appended, prefix_of, seal_body};
use crate::suite::{COMMITMENT_LEN, DataKey, Suite, TAG_LEN};

/// The format version byte of the compact form new values are written in (version 3, the
/// key-committing one).
pub const COMPACT_FORMAT_VERSION: u8 = CompactVersion::V3.byte();
/// The prefix of the compact text form new values are written in: `ev3:` + base64url
/// (unpadded) of the binary form. Version 2 values use `ev2:`.
pub const COMPACT_TEXT_PREFIX: &str = CompactVersion::V3.text_prefix();
/// Length of a DEK id in the header.
pub const DEK_ID_LEN: usize = 8;
/// Magic, version, suite and DEK id: the header bytes before the nonce (v2) or the
/// commitment (v3).
const ID_END: usize = 4 + DEK_ID_LEN;

/// The versions of the compact form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompactVersion {
    /// Format version 2: 40 bytes of overhead (AES-256-GCM), **not key-committing**. Its
    /// tag binds the store row's key commitment, so it resists a store writer who cannot
    /// unwrap DEKs; someone who knows two DEKs and can write the store can craft one value
    /// that opens to two different plaintexts (a multi-key AES-GCM collision), one under
    /// each DEK. Written only when a caller asks for it; read unless refused
    /// ([`crate::EnvelopeBuilder::accept_compact_v2`]).
    V2,
    /// Format version 3 (the default): version 2 plus the DEK's 32-byte key commitment in
    /// the value, 72 bytes of overhead (AES-256-GCM). A value opens under at most one DEK,
    /// also for someone who knows every DEK and writes the store (128-bit security against
    /// a search for two DEKs with equal commitments; `docs/FORMAT.md`).
    #[default]
    V3,
}

impl CompactVersion {
    /// The format version byte: 2 or 3.
    pub const fn byte(self) -> u8 {
        match self {
            CompactVersion::V2 => 2,
            CompactVersion::V3 => 3,
        }
    }

    /// The version for a format version byte, if it is a compact one.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            2 => Some(CompactVersion::V2),
            3 => Some(CompactVersion::V3),
            _ => None,
        }
    }

    /// The text form's prefix: `ev2:` or `ev3:`.
    pub const fn text_prefix(self) -> &'static str {
        match self {
            CompactVersion::V2 => "ev2:",
            CompactVersion::V3 => "ev3:",
        }
    }

    /// Whether a value of this version carries its key commitment (version 3).
    pub const fn is_committing(self) -> bool {
        matches!(self, CompactVersion::V3)
    }

    /// The bytes a value of this version adds to its plaintext under `suite`: 4 + 8 (+ 32
    /// for v3) + nonce + 16. AES-256-GCM: 40 (v2), 72 (v3); XChaCha20-Poly1305: 52, 84.
    pub const fn overhead(self, suite: Suite) -> usize {
        self.commitment_len() + ID_END + suite.nonce_len() + TAG_LEN
    }

    /// The commitment's length in the value: 0 (v2) or 32 (v3).
    const fn commitment_len(self) -> usize {
        match self {
            CompactVersion::V2 => 0,
            CompactVersion::V3 => COMMITMENT_LEN,
        }
    }
}

impl fmt::Display for CompactVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.byte())
    }
}

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

/// Whether `input` is a binary ciphertext of the compact form, either version (magic and
/// version byte only; [`inspect_compact`] checks the rest).
#[inline]
pub fn is_compact(input: &[u8]) -> bool {
    input.len() > 2 && input[..2] == MAGIC && CompactVersion::from_byte(input[2]).is_some()
}

/// The overhead of the compact form new values are written in (version 3) for `suite`:
/// 4 + 8 + 32 + nonce + 16 bytes (72 for AES-256-GCM, 84 for XChaCha20-Poly1305). See
/// [`CompactVersion::overhead`] for version 2.
pub const fn compact_overhead(suite: Suite) -> usize {
    CompactVersion::V3.overhead(suite)
}

/// A compact ciphertext split into its fields, borrowing the input.
#[derive(Debug)]
pub(crate) struct ParsedCompact<'a> {
    pub version: CompactVersion,
    pub suite: Suite,
    pub dek_id: DekId,
    /// Magic, version, suite, DEK id: the associated data's first 12 bytes.
    pub prefix: &'a [u8],
    /// The key commitment the value carries (version 3), `None` in version 2.
    pub commitment: Option<&'a [u8]>,
    pub nonce: &'a [u8],
    /// Ciphertext and tag.
    pub body: &'a [u8],
}

impl ParsedCompact<'_> {
    /// Header length (magic through nonce).
    fn header_len(&self) -> usize {
        ID_END + self.version.commitment_len() + self.nonce.len()
    }

    /// The header facts of this value.
    fn info(&self) -> CompactInfo {
        let header_len = self.header_len();
        CompactInfo {
            format_version: self.version.byte(),
            committing: self.version.is_committing(),
            suite: self.suite,
            dek_id: self.dek_id,
            header_len,
            plaintext_len: self.body.len() - TAG_LEN,
            overhead: header_len + TAG_LEN,
        }
    }
}

/// Splits a compact binary ciphertext (version 2 or 3), checking every length. Never
/// panics.
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
    let byte = *input
        .get(2)
        .ok_or_else(|| truncated("format version", 1, 2))?;
    let version = CompactVersion::from_byte(byte).ok_or(Error::UnsupportedFormatVersion(byte))?;
    let suite = Suite::from_id(*input.get(3).ok_or_else(|| truncated("suite", 1, 3))?)?;
    let id_bytes: [u8; DEK_ID_LEN] = input
        .get(4..ID_END)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| truncated("DEK id", DEK_ID_LEN, 4))?;
    let dek_id = DekId::new(u64::from_be_bytes(id_bytes))
        .filter(|id| id.get() <= MAX_DEK_ID)
        .ok_or_else(|| {
            Error::malformed("DEK id", format!("must be in 1..={MAX_DEK_ID} (2^63 - 1)"))
        })?;
    let nonce_start = ID_END + version.commitment_len();
    let commitment = match version {
        CompactVersion::V2 => None,
        CompactVersion::V3 => Some(
            input
                .get(ID_END..nonce_start)
                .ok_or_else(|| truncated("key commitment", COMMITMENT_LEN, ID_END))?,
        ),
    };
    let nonce_end = nonce_start + suite.nonce_len();
    let nonce = input
        .get(nonce_start..nonce_end)
        .ok_or_else(|| truncated("nonce", suite.nonce_len(), nonce_start))?;
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
        version,
        suite,
        dek_id,
        prefix: &input[..ID_END],
        commitment,
        nonce,
        body,
    })
}

/// The largest DEK id: 2^63 - 1 (the stores' signed 64-bit primary keys).
pub const MAX_DEK_ID: u64 = i64::MAX as u64;

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
    version: CompactVersion,
    dek_id: DekId,
    nonce: NonceSource,
    aad: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let suite = key.suite();
    out[..2].copy_from_slice(&MAGIC);
    out[2] = version.byte();
    out[3] = suite.id();
    out[4..ID_END].copy_from_slice(&dek_id.to_bytes());
    let nonce_start = ID_END + version.commitment_len();
    out[ID_END..nonce_start].copy_from_slice(&key.commitment()[..version.commitment_len()]);
    let (header, rest) = out.split_at_mut(nonce_start + suite.nonce_len());
    let (prefix, nonce_slot) = header.split_at_mut(nonce_start);
    let (body, tag_out) = rest.split_at_mut(rest.len() - TAG_LEN);
    with_associated_data(&prefix[..ID_END], key, aad, |ad| {
        seal_body(key, nonce, nonce_slot, ad, body, tag_out)
    })
}

/// Opens a parsed compact ciphertext with the DEK its id resolved to, into `out` (exactly
/// the plaintext's length). A version 3 value's commitment is compared with the DEK's in
/// constant time before the tag is checked; every failure is the one opaque
/// [`Error::DecryptionFailed`].
#[inline]
fn open_into(key: &DataKey, parsed: &ParsedCompact<'_>, aad: &[u8], out: &mut [u8]) -> Result<()> {
    if key.suite() != parsed.suite {
        return Err(Error::DecryptionFailed);
    }
    if let Some(commitment) = parsed.commitment
        && !key.commitment_matches(commitment)
    {
        return Err(Error::DecryptionFailed);
    }
    let (ct, tag) = parsed.body.split_at(parsed.body.len() - TAG_LEN);
    with_associated_data(parsed.prefix, key, aad, |ad| {
        key.open(parsed.nonce, ad, ct, tag, out)
    })
}

impl Output<'_> {
    /// Encrypts one message in the compact form `version` under the DEK stored as `dek_id`.
    #[inline]
    pub(crate) fn seal_compact(
        &mut self,
        key: &DataKey,
        version: CompactVersion,
        dek_id: DekId,
        nonce: NonceSource,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<usize> {
        let suite = key.suite();
        crate::format::check_message_len(suite, plaintext)?;
        let header_len = ID_END + version.commitment_len() + suite.nonce_len();
        let len = header_len + plaintext.len() + TAG_LEN;
        match self {
            Output::Append(vec) => {
                let start = vec.len();
                vec.reserve(len);
                vec.resize(start + header_len, 0);
                vec.extend_from_slice(plaintext);
                vec.extend_from_slice(&[0u8; TAG_LEN]);
                let sealed = seal_laid_out(key, version, dek_id, nonce, aad, &mut vec[start..]);
                if sealed.is_err() {
                    vec.truncate(start);
                }
                sealed.map(|()| len)
            }
            Output::Slice(buf) => {
                let out = prefix_of(buf, len)?;
                out[header_len..len - TAG_LEN].copy_from_slice(plaintext);
                seal_laid_out(key, version, dek_id, nonce, aad, out).map(|()| len)
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
            Output::Append(vec) => open_appended(vec, len, |out| open_into(key, parsed, aad, out)),
            Output::Slice(buf) => open_into(key, parsed, aad, prefix_of(buf, len)?).map(|()| len),
        }
    }
}

/// Encrypts one compact message with a given nonce (the test vectors' deterministic path;
/// the SDK always draws a fresh nonce).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn seal_with_nonce(
    key: &DataKey,
    version: CompactVersion,
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
        version,
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
    /// 3 (key-committing) or 2 (not committing).
    pub format_version: u8,
    /// Whether the value carries its key commitment (version 3).
    pub committing: bool,
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
    Ok(parse(ciphertext)?.info())
}

/// A compact ciphertext's header facts completed from its DEK store row: the KEK provider,
/// key id, version and label are the row's, the DEK fingerprint is the row commitment's
/// (the same fingerprint a v1 header under this DEK would show). Fails like a decryption
/// when the row is not the one the ciphertext names, its suite differs, or (version 3) the
/// value's commitment is not the row's (no key is used).
pub fn header_info(ciphertext: &[u8], row: &super::StoredDek) -> Result<crate::HeaderInfo> {
    let parsed = parse(ciphertext)?;
    let info = parsed.info();
    let commitment_differs = parsed
        .commitment
        .is_some_and(|c| !bool::from(subtle::ConstantTimeEq::ct_eq(c, &row.commitment[..])));
    if row.id != info.dek_id || row.suite != info.suite || commitment_differs {
        return Err(Error::DecryptionFailed);
    }
    Ok(crate::HeaderInfo {
        format_version: info.format_version,
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
        segment_size: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CryptoProvider;
    use crate::secret::Dek;

    fn key(byte: u8) -> DataKey {
        DataKey::new(
            CryptoProvider::default(),
            Suite::Aes256Gcm,
            &Dek::from_array([byte; 32]),
        )
    }

    fn sealed(version: CompactVersion) -> (DataKey, Vec<u8>) {
        let key = key(7);
        let id = DekId::new(0x0102_0304_0506_0708).expect("non-zero");
        let ct =
            seal_with_nonce(&key, version, id, &[9; 12], b"123-45-6789", b"aad").expect("seal");
        (key, ct)
    }

    fn open(key: &DataKey, ct: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let p = parse(ct)?;
        let mut out = Vec::new();
        Output::Append(&mut out).open_compact(key, &p, aad)?;
        Ok(out)
    }

    #[test]
    fn layout_is_as_documented() {
        let (key, ct) = sealed(CompactVersion::V3);
        assert_eq!(ct.len(), 11 + 72);
        assert_eq!(&ct[..4], b"EV\x03\x01");
        assert_eq!(&ct[4..12], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&ct[12..44], key.commitment());
        assert_eq!(&ct[44..56], &[9; 12]);
        let info = inspect_compact(&ct).expect("inspect");
        assert_eq!(
            (info.format_version, info.committing),
            (COMPACT_FORMAT_VERSION, true)
        );
        assert_eq!(
            (info.header_len, info.plaintext_len, info.overhead),
            (56, 11, 72)
        );

        let (_, v2) = sealed(CompactVersion::V2);
        assert_eq!(v2.len(), 51);
        assert_eq!(&v2[..4], b"EV\x02\x01");
        assert_eq!(&v2[12..24], &[9; 12]);
        let info = inspect_compact(&v2).expect("inspect");
        assert_eq!((info.format_version, info.committing), (2, false));
        assert_eq!(
            (info.header_len, info.plaintext_len, info.overhead),
            (24, 11, 40)
        );
        assert_eq!(compact_overhead(Suite::Aes256Gcm), 72);
        assert_eq!(compact_overhead(Suite::XChaCha20Poly1305), 84);
        assert_eq!(CompactVersion::V2.overhead(Suite::XChaCha20Poly1305), 52);
    }

    #[test]
    fn every_truncation_and_every_single_byte_flip_is_refused_without_panicking() {
        for version in [CompactVersion::V2, CompactVersion::V3] {
            let (key, ct) = sealed(version);
            for cut in 0..ct.len() {
                match open(&key, &ct[..cut], b"aad") {
                    Err(Error::Malformed { .. } | Error::DecryptionFailed) => {}
                    other => panic!("{version} cut {cut}: {other:?}"),
                }
            }
            for i in 0..ct.len() {
                let mut bad = ct.clone();
                bad[i] ^= 0x01;
                assert!(open(&key, &bad, b"aad").is_err(), "{version}: flip at {i}");
            }
            assert_eq!(open(&key, &ct, b"aad").expect("open"), b"123-45-6789");
            assert!(open(&key, &ct, b"other").is_err());
        }
    }

    #[test]
    fn a_version_3_value_opens_only_under_the_key_it_commits_to() {
        let (_, ct) = sealed(CompactVersion::V3);
        assert!(matches!(
            open(&key(8), &ct, b"aad"),
            Err(Error::DecryptionFailed)
        ));
        // Its commitment replaced by another key's: still refused (the tag binds it too).
        let mut other = ct.clone();
        other[12..44].copy_from_slice(key(8).commitment());
        assert!(matches!(
            open(&key(8), &other, b"aad"),
            Err(Error::DecryptionFailed)
        ));
    }

    #[test]
    fn versions_are_not_interchangeable() {
        // A v3 value relabelled v2 (and the other way round) shifts the nonce and the
        // associated data: refused.
        let (key, mut ct) = sealed(CompactVersion::V3);
        ct[2] = 2;
        assert!(open(&key, &ct, b"aad").is_err());
        let (key, mut v2) = sealed(CompactVersion::V2);
        v2[2] = 3;
        assert!(open(&key, &v2, b"aad").is_err());
    }

    #[test]
    fn ids_outside_1_to_2_pow_63_and_other_versions_are_named() {
        let (_, mut ct) = sealed(CompactVersion::V3);
        for bad in [0u64, 1 << 63, u64::MAX] {
            ct[4..12].copy_from_slice(&bad.to_be_bytes());
            assert!(
                matches!(
                    parse(&ct),
                    Err(Error::Malformed {
                        field: "DEK id",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        ct[2] = 1;
        assert!(matches!(
            parse(&ct),
            Err(Error::UnsupportedFormatVersion(1))
        ));
        ct[2] = 4;
        assert!(!is_compact(&ct));
        assert!(!is_compact(b"EV"));
        assert!(is_compact(b"EV\x02"));
        assert!(is_compact(b"EV\x03"));
    }
}
