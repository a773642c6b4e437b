//! Wire format v1 (see `docs/FORMAT.md`, which this module implements byte for byte).
//!
//! ```text
//! stable part (authenticated by the body tag)      KEK reference (replaced by rewrap)
//! "EV" | 0x01 | suite | nonce | commitment(32)  ||  provider | u16 len | key id | u8 len |
//!                                                   key version | u16 len | wrapped DEK
//! body: ciphertext (same length as the plaintext) || tag (16)
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};
use crate::kms::{LabelCheck, Provider, WrappedDek};
use crate::suite::{COMMITMENT_LEN, DataKey, FIXED_AD_LEN, Suite, TAG_LEN};

/// The two magic bytes at the start of every binary ciphertext.
pub const MAGIC: [u8; 2] = *b"EV";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// The prefix of the text form: `ev1:` followed by the base64url (unpadded) binary form.
pub const TEXT_PREFIX: &str = "ev1:";
/// The longest key id the header can carry.
pub const MAX_KEY_ID_LEN: usize = u16::MAX as usize;
/// The longest key version the header can carry.
pub const MAX_KEY_VERSION_LEN: usize = u8::MAX as usize;
/// The longest wrapped DEK the header can carry.
pub const MAX_WRAPPED_DEK_LEN: usize = u16::MAX as usize;

/// Length of magic, version and suite.
const PREFIX_LEN: usize = 4;

/// A ciphertext split into its fields, borrowing the input.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub suite: Suite,
    /// Magic through commitment: the header bytes that never change after encryption.
    pub stable: &'a [u8],
    pub nonce: &'a [u8],
    pub commitment: &'a [u8],
    /// Provider byte through the end of the wrapped DEK: what rewrap replaces, and the
    /// decrypt cache's key.
    pub kek_ref: &'a [u8],
    pub provider: Provider,
    /// Key id bytes; UTF-8 is checked when they are used ([`Parsed::wrapped`]), off the
    /// cached hot path.
    pub key_id: &'a [u8],
    pub key_version: &'a [u8],
    pub wrapped_dek: &'a [u8],
    /// Ciphertext and tag.
    pub body: &'a [u8],
}

fn utf8<'a>(bytes: &'a [u8], field: &'static str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|_| Error::malformed(field, "not valid UTF-8"))
}

impl<'a> Parsed<'a> {
    pub(crate) fn key_id(&self) -> Result<&'a str> {
        utf8(self.key_id, "key id")
    }

    pub(crate) fn key_version(&self) -> Result<&'a str> {
        utf8(self.key_version, "key version")
    }

    pub(crate) fn wrapped(&self) -> Result<WrappedDek> {
        Ok(WrappedDek {
            provider: self.provider,
            key_id: self.key_id()?.to_owned(),
            key_version: self.key_version()?.to_owned(),
            ciphertext: self.wrapped_dek.to_vec(),
        })
    }
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        match self.input.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(out) => {
                self.pos += n;
                Ok(out)
            }
            None => Err(self.truncated(n, field)),
        }
    }

    #[cold]
    #[inline(never)]
    fn truncated(&self, n: usize, field: &'static str) -> Error {
        let available = self.input.len().saturating_sub(self.pos);
        Error::malformed(
            field,
            format!(
                "truncated: needs {n} bytes at offset {}, {available} left",
                self.pos
            ),
        )
    }

    #[inline]
    fn u8(&mut self, field: &'static str) -> Result<u8> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }

    #[inline]
    fn u16(&mut self, field: &'static str) -> Result<usize> {
        Ok(u16::from_be_bytes(self.array::<2>(field)?) as usize)
    }

    #[inline]
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        match self.take(N, field)?.try_into() {
            Ok(a) => Ok(a),
            Err(_) => unreachable!("take returned {N} bytes"),
        }
    }
}

/// Splits a binary ciphertext into its fields, checking every length. Never panics.
#[inline]
pub(crate) fn parse(input: &[u8]) -> Result<Parsed<'_>> {
    let mut r = Reader { input, pos: 0 };
    if r.take(2, "magic")? != MAGIC {
        return Err(Error::malformed(
            "magic",
            "not an envelope ciphertext (expected the bytes \"EV\")",
        ));
    }
    let version = r.u8("format version")?;
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedFormatVersion(version));
    }
    let suite = Suite::from_id(r.u8("suite")?)?;
    let nonce = r.take(suite.nonce_len(), "nonce")?;
    let commitment = r.take(COMMITMENT_LEN, "commitment")?;
    let stable_end = r.pos;
    let provider = Provider::from_id(r.u8("provider")?)?;
    let key_id_len = r.u16("key id length")?;
    if key_id_len == 0 {
        return Err(Error::malformed("key id length", "must not be zero"));
    }
    let key_id = r.take(key_id_len, "key id")?;
    let key_version_len = r.u8("key version length")? as usize;
    let key_version = r.take(key_version_len, "key version")?;
    let wrapped_len = r.u16("wrapped DEK length")?;
    if wrapped_len == 0 {
        return Err(Error::malformed("wrapped DEK length", "must not be zero"));
    }
    let wrapped_dek = r.take(wrapped_len, "wrapped DEK")?;
    let ref_end = r.pos;
    let body = &input[ref_end..];
    if body.len() < TAG_LEN {
        return Err(Error::malformed(
            "body",
            format!(
                "truncated: {} bytes, the tag alone needs {TAG_LEN}",
                body.len()
            ),
        ));
    }
    Ok(Parsed {
        suite,
        stable: &input[..stable_end],
        nonce,
        commitment,
        kek_ref: &input[stable_end..ref_end],
        provider,
        key_id,
        key_version,
        wrapped_dek,
        body,
    })
}

/// Serializes the KEK reference block of a wrapped DEK, checking every length.
pub(crate) fn encode_kek_ref(wrapped: &WrappedDek) -> Result<Vec<u8>> {
    let (id, version, ct) = (
        wrapped.key_id.as_bytes(),
        wrapped.key_version.as_bytes(),
        &wrapped.ciphertext,
    );
    if id.is_empty() || id.len() > MAX_KEY_ID_LEN {
        return Err(Error::InvalidConfig(format!(
            "key id must be 1 to {MAX_KEY_ID_LEN} bytes, got {}",
            id.len()
        )));
    }
    if version.len() > MAX_KEY_VERSION_LEN {
        return Err(Error::Kms {
            operation: "wrap",
            message: format!(
                "key version of {} bytes exceeds the header's {MAX_KEY_VERSION_LEN}",
                version.len()
            ),
            source: None,
        });
    }
    if ct.is_empty() || ct.len() > MAX_WRAPPED_DEK_LEN {
        return Err(Error::Kms {
            operation: "wrap",
            message: format!(
                "wrapped DEK of {} bytes is outside 1..={MAX_WRAPPED_DEK_LEN}",
                ct.len()
            ),
            source: None,
        });
    }
    let mut out = Vec::with_capacity(6 + id.len() + version.len() + ct.len());
    out.push(wrapped.provider.id());
    out.extend_from_slice(&(id.len() as u16).to_be_bytes());
    out.extend_from_slice(id);
    out.push(version.len() as u8);
    out.extend_from_slice(version);
    out.extend_from_slice(&(ct.len() as u16).to_be_bytes());
    out.extend_from_slice(ct);
    Ok(out)
}

/// Length of the stable part of the header for a suite.
pub(crate) const fn stable_len(suite: Suite) -> usize {
    PREFIX_LEN + suite.nonce_len() + COMMITMENT_LEN
}

/// Runs `f` with the body's associated data: magic, version and suite (4 bytes), the key
/// commitment, then the caller's AAD. (The nonce is authenticated as the AEAD nonce.) The
/// first 36 bytes come pre-assembled from the key; up to 128 bytes in all are assembled on
/// the stack, larger ones in a `Vec`.
///
/// For decryption this uses the key's own commitment: callers check first that the header's
/// suite and commitment equal the key's, so the bytes are the header's.
#[inline]
fn with_associated_data<R>(key: &DataKey, aad: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    const STACK: usize = 128;
    let fixed = key.fixed_ad();
    let total = FIXED_AD_LEN + aad.len();
    if total <= STACK {
        let mut buf = [0u8; STACK];
        buf[..FIXED_AD_LEN].copy_from_slice(fixed);
        buf[FIXED_AD_LEN..total].copy_from_slice(aad);
        f(&buf[..total])
    } else {
        f(&[&fixed[..], aad].concat())
    }
}

/// The longest nonce of any suite.
#[cfg(any(test, feature = "testing"))]
pub(crate) const MAX_NONCE_LEN: usize = 24;

/// How the nonce of a new message is chosen.
#[derive(Clone, Copy)]
pub(crate) enum NonceSource {
    /// Drawn fresh by the crypto provider (always, in the SDK).
    Fresh,
    /// Given: the first `Suite::nonce_len()` bytes (the test vectors' deterministic path).
    #[cfg(any(test, feature = "testing"))]
    Fixed([u8; MAX_NONCE_LEN]),
}

/// Seals a message laid out in `out` (exactly the ciphertext's length): magic, version,
/// suite, a nonce slot, the commitment, the KEK reference of `header_len - stable_len`
/// bytes, the plaintext, and a 16-byte tag slot. Writes the nonce and the tag; on error
/// zeroizes the plaintext.
fn seal_laid_out(
    key: &DataKey,
    nonce: NonceSource,
    aad: &[u8],
    out: &mut [u8],
    header_len: usize,
) -> Result<()> {
    let suite = key.suite();
    let (header, rest) = out.split_at_mut(header_len);
    let (body, tag_out) = rest.split_at_mut(rest.len() - TAG_LEN);
    let nonce_slot = &mut header[PREFIX_LEN..PREFIX_LEN + suite.nonce_len()];
    with_associated_data(key, aad, |ad| {
        seal_body(key, nonce, nonce_slot, ad, body, tag_out)
    })
}

/// Seals `body` (the plaintext, in place) with the nonce `nonce` chooses into `nonce_slot`
/// and the tag into `tag_out`; on error zeroizes the plaintext. Shared by both forms.
pub(crate) fn seal_body(
    key: &DataKey,
    nonce: NonceSource,
    nonce_slot: &mut [u8],
    ad: &[u8],
    body: &mut [u8],
    tag_out: &mut [u8],
) -> Result<()> {
    let sealed = match nonce {
        NonceSource::Fresh => key.seal_in_place(nonce_slot, ad, body),
        #[cfg(any(test, feature = "testing"))]
        NonceSource::Fixed(fixed) => {
            nonce_slot.copy_from_slice(&fixed[..key.suite().nonce_len()]);
            key.seal_in_place_with_nonce(nonce_slot, ad, body)
        }
    };
    match sealed {
        Ok(tag) => {
            tag_out.copy_from_slice(&tag);
            Ok(())
        }
        Err(e) => {
            zeroize::Zeroize::zeroize(body);
            Err(e)
        }
    }
}

/// Checks that `plaintext` fits one message of `suite`.
pub(crate) fn check_message_len(suite: Suite, plaintext: &[u8]) -> Result<()> {
    if plaintext.len() as u64 > suite.max_plaintext_len() {
        return Err(Error::MessageTooLarge {
            len: plaintext.len() as u64,
            max: suite.max_plaintext_len(),
        });
    }
    Ok(())
}

/// Writes a header (`header` is exactly its length) but for the nonce, which sealing
/// writes: magic, version, suite, a nonce slot, the commitment, the KEK reference.
#[inline]
fn write_header(key: &DataKey, kek_ref: &[u8], header: &mut [u8]) {
    let stable = stable_len(key.suite());
    let fixed = key.fixed_ad();
    header[..PREFIX_LEN].copy_from_slice(&fixed[..PREFIX_LEN]);
    header[stable - COMMITMENT_LEN..stable].copy_from_slice(&fixed[PREFIX_LEN..]);
    header[stable..].copy_from_slice(kek_ref);
}

/// Encrypts one message under a prepared DEK with the given nonce (the test vectors'
/// deterministic path; the SDK always draws a fresh nonce).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn seal(
    key: &DataKey,
    kek_ref: &[u8],
    nonce: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    if nonce.len() != key.suite().nonce_len() {
        return Err(Error::malformed("nonce", "wrong length for the suite"));
    }
    let mut fixed = [0u8; MAX_NONCE_LEN];
    fixed[..nonce.len()].copy_from_slice(nonce);
    let mut out = Vec::new();
    Output::Append(&mut out).seal(key, kek_ref, NonceSource::Fixed(fixed), plaintext, aad)?;
    Ok(out)
}

/// The plaintext length of a parsed ciphertext.
#[inline]
pub(crate) fn plaintext_len(parsed: &Parsed<'_>) -> usize {
    parsed.body.len() - TAG_LEN
}

/// Writes the plaintext into `out` (exactly [`plaintext_len`] bytes) after checking the
/// commitment and the tag. On error `out` holds no plaintext.
#[inline]
pub(crate) fn open_into(
    key: &DataKey,
    parsed: &Parsed<'_>,
    aad: &[u8],
    out: &mut [u8],
) -> Result<()> {
    if key.suite() != parsed.suite || !key.commitment_matches(parsed.commitment) {
        return Err(Error::DecryptionFailed);
    }
    let (ct, tag) = parsed.body.split_at(parsed.body.len() - TAG_LEN);
    with_associated_data(key, aad, |ad| key.open(parsed.nonce, ad, ct, tag, out))
}

/// The first `len` bytes of a caller's buffer, or [`Error::BufferTooSmall`].
#[inline]
pub(crate) fn prefix_of(buf: &mut [u8], len: usize) -> Result<&mut [u8]> {
    let capacity = buf.len();
    buf.get_mut(..len).ok_or(Error::BufferTooSmall {
        needed: len,
        capacity,
    })
}

/// Where an encryption or decryption writes: appended to a `Vec`, or into the start of a
/// caller's buffer. Either way the output is written in place, with no intermediate copy,
/// and left without plaintext residue on error (a `Vec` keeps its old length).
pub(crate) enum Output<'a> {
    /// Append to this vector.
    Append(&'a mut Vec<u8>),
    /// Write to the start of this buffer; too short a buffer is [`Error::BufferTooSmall`].
    Slice(&'a mut [u8]),
}

impl Output<'_> {
    /// Seals one message; returns the ciphertext's length. The plaintext is copied once,
    /// into its place in the output, and encrypted there.
    #[inline]
    pub(crate) fn seal(
        &mut self,
        key: &DataKey,
        kek_ref: &[u8],
        nonce: NonceSource,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<usize> {
        let suite = key.suite();
        check_message_len(suite, plaintext)?;
        let header_len = stable_len(suite) + kek_ref.len();
        let len = header_len + plaintext.len() + TAG_LEN;
        match self {
            Output::Append(vec) => {
                // The header is written in place (a small memset first); the plaintext and
                // the tag slot are appended, so a large body is written once, not zeroed
                // first.
                let start = vec.len();
                vec.reserve(len);
                vec.resize(start + header_len, 0);
                write_header(key, kek_ref, &mut vec[start..]);
                vec.extend_from_slice(plaintext);
                vec.extend_from_slice(&[0u8; TAG_LEN]);
                let sealed = seal_laid_out(key, nonce, aad, &mut vec[start..], header_len);
                if sealed.is_err() {
                    vec.truncate(start);
                }
                sealed.map(|()| len)
            }
            Output::Slice(buf) => {
                let out = prefix_of(buf, len)?;
                write_header(key, kek_ref, &mut out[..header_len]);
                out[header_len..len - TAG_LEN].copy_from_slice(plaintext);
                seal_laid_out(key, nonce, aad, out, header_len).map(|()| len)
            }
        }
    }

    /// Opens one message; returns the plaintext's length. Into a slice, the plaintext is
    /// written straight from the ciphertext (no intermediate copy on aws-lc-rs).
    #[inline]
    pub(crate) fn open(&mut self, key: &DataKey, parsed: &Parsed<'_>, aad: &[u8]) -> Result<usize> {
        let len = plaintext_len(parsed);
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

/// The ciphertext with its KEK reference replaced; the stable part and body are copied
/// byte for byte.
pub(crate) fn replace_kek_ref(parsed: &Parsed<'_>, new_ref: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parsed.stable.len() + new_ref.len() + parsed.body.len());
    out.extend_from_slice(parsed.stable);
    out.extend_from_slice(new_ref);
    out.extend_from_slice(parsed.body);
    out
}

/// Header facts of a ciphertext, read without any key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderInfo {
    /// The format version.
    pub format_version: u8,
    /// The algorithm suite.
    pub suite: Suite,
    /// The KMS provider whose KEK wrapped the DEK.
    pub provider: Provider,
    /// The KEK's key id.
    pub key_id: String,
    /// The KEK version that wrapped the DEK (empty when the KMS did not report one).
    pub key_version: String,
    /// Length of the wrapped DEK.
    pub wrapped_dek_len: usize,
    /// Length of everything before the body.
    pub header_len: usize,
    /// Length of the plaintext.
    pub plaintext_len: usize,
    /// Bytes added to the plaintext (header and tag).
    pub overhead: usize,
    /// The DEK's fingerprint: the first 8 bytes of its key commitment, in hex. It names one
    /// DEK across rewraps (the commitment is derived from the DEK and never changes) and is
    /// what a re-encryption after a suspected DEK exposure selects by.
    pub dek_fingerprint: String,
    /// What the wrapped DEK says about the version label (see [`LabelCheck`]).
    pub label: LabelCheck,
    /// For the compact form: the DEK store row the KEK facts above were read from
    /// ([`crate::compact::header_info`]); `None` for format version 1.
    pub dek_id: Option<crate::compact::DekId>,
}

/// Length in bytes of [`HeaderInfo::dek_fingerprint`] before hex encoding.
pub const DEK_FINGERPRINT_LEN: usize = 8;

/// The DEK fingerprint of a key commitment: its first 8 bytes in hex.
pub(crate) fn fingerprint(commitment: &[u8]) -> String {
    commitment
        .iter()
        .take(DEK_FINGERPRINT_LEN)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the header of a binary ciphertext without any key.
pub fn inspect(ciphertext: &[u8]) -> Result<HeaderInfo> {
    let p = parse(ciphertext)?;
    let header_len = p.stable.len() + p.kek_ref.len();
    let wrapped = p.wrapped()?;
    let dek_fingerprint = fingerprint(p.commitment);
    Ok(HeaderInfo {
        format_version: FORMAT_VERSION,
        suite: p.suite,
        provider: p.provider,
        label: wrapped.check_label(),
        key_id: wrapped.key_id,
        key_version: wrapped.key_version,
        wrapped_dek_len: p.wrapped_dek.len(),
        header_len,
        plaintext_len: p.body.len() - TAG_LEN,
        overhead: header_len + TAG_LEN,
        dek_fingerprint,
        dek_id: None,
    })
}

/// The wrapped DEK of a binary ciphertext, as its header records it (no key, no KMS call).
pub fn wrapped_dek(ciphertext: &[u8]) -> Result<WrappedDek> {
    parse(ciphertext)?.wrapped()
}

/// The text form of a binary ciphertext: `ev1:` (v1), `ev3:` or `ev2:` (compact, by its
/// version byte) + base64url without padding.
pub fn to_text(ciphertext: &[u8]) -> String {
    let prefix = if crate::compact::is_compact(ciphertext) {
        crate::compact::CompactVersion::from_byte(ciphertext[2])
            .map_or(TEXT_PREFIX, crate::compact::CompactVersion::text_prefix)
    } else {
        TEXT_PREFIX
    };
    let mut out = String::with_capacity(prefix.len() + ciphertext.len().div_ceil(3) * 4);
    out.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(ciphertext, &mut out);
    out
}

/// The version number N of a text form's `evN:` prefix and the payload after it.
///
/// N is 1 to 3 ASCII digits without a leading zero, at most 255 (`docs/FORMAT.md`, "Text
/// form"): `ev1:`, `ev2:` and `ev3:` are this build's; another such N is
/// [`Error::UnsupportedFormatVersion`]; anything else (no prefix, upper case, a leading zero,
/// a sign, more digits) is malformed.
fn text_prefix(text: &str) -> Result<(u8, &str)> {
    let malformed = || {
        Error::malformed(
            "text form",
            "does not start with \"ev1:\", \"ev2:\" or \"ev3:\"",
        )
    };
    let rest = text.strip_prefix("ev").ok_or_else(malformed)?;
    let digits_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, after) = rest.split_at(digits_len);
    let payload = after.strip_prefix(':').ok_or_else(malformed)?;
    if digits.is_empty() || digits.len() > 3 || digits.starts_with('0') {
        return Err(malformed());
    }
    let version = digits.parse::<u8>().map_err(|_| malformed())?;
    match version {
        FORMAT_VERSION | 2 | 3 => Ok((version, payload)),
        other => Err(Error::UnsupportedFormatVersion(other)),
    }
}

/// The binary form of a text ciphertext of either form: `ev1:` (v1), `ev3:` or `ev2:`
/// (compact). The prefix must match the binary: `ev2:` and `ev3:` hold exactly the compact
/// binaries of that version byte, `ev1:` every other binary.
pub fn from_text(text: &str) -> Result<Vec<u8>> {
    let (version, encoded) = text_prefix(text)?;
    let binary = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|e| Error::malformed("text form", format!("invalid base64url: {e}")))?;
    // One ciphertext, one text form, as `to_text` chooses it.
    let binary_version = crate::compact::is_compact(&binary).then(|| binary[2]);
    let matches = match binary_version {
        Some(byte) => byte == version,
        None => version == FORMAT_VERSION,
    };
    if !matches {
        return Err(Error::malformed(
            "text form",
            format!(
                "the prefix \"ev{version}:\" does not match the binary ({})",
                match binary_version {
                    Some(byte) => format!("a compact ciphertext, format version {byte}"),
                    None => "not a compact ciphertext".to_owned(),
                }
            ),
        ));
    }
    Ok(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_ref() -> Vec<u8> {
        encode_kek_ref(&WrappedDek {
            provider: Provider::Local,
            key_id: "default".into(),
            key_version: "1".into(),
            ciphertext: vec![9; 60],
        })
        .expect("valid ref")
    }

    #[test]
    fn parse_rejects_every_truncation_without_panicking() {
        let key = DataKey::new(
            crate::CryptoProvider::default(),
            Suite::Aes256Gcm,
            &crate::secret::Dek::from_array([1; 32]),
        );
        let ct = seal(&key, &sample_ref(), &[2; 12], b"hello", b"aad").expect("seal");
        // Cuts inside the body's ciphertext parse (the tag check catches them); every cut
        // before that fails parsing.
        for len in 0..ct.len() - b"hello".len() {
            let err = parse(&ct[..len]).expect_err("truncated input must fail");
            assert!(matches!(err, Error::Malformed { .. }), "len {len}: {err:?}");
        }
        assert!(parse(&ct).is_ok());
    }

    #[test]
    fn text_form_round_trips_and_names_versions() {
        let bytes = vec![0x45, 0x56, 1, 2, 3];
        assert_eq!(from_text(&to_text(&bytes)).expect("decode"), bytes);
        assert!(matches!(
            from_text("ev4:AAAA"),
            Err(Error::UnsupportedFormatVersion(4))
        ));
        assert!(matches!(
            from_text("ev255:AAAA"),
            Err(Error::UnsupportedFormatVersion(255))
        ));
        // N: 1-3 digits, no leading zero, at most 255; anything else is malformed.
        for text in [
            "ev01:AAAA",
            "ev003:AAAA",
            "ev+1:AAAA",
            "ev256:AAAA",
            "ev1000:AAAA",
            "ev:AAAA",
            "EV1:AAAA",
            "ev1AAAA",
        ] {
            assert!(
                matches!(from_text(text), Err(Error::Malformed { .. })),
                "{text}"
            );
        }
        // ev3: is the committing compact form: a version 3 binary, and nothing else.
        let v3 = vec![0x45, 0x56, 3, 1, 0];
        assert_eq!(to_text(&v3), "ev3:RVYDAQA");
        assert_eq!(from_text("ev3:RVYDAQA").expect("decode"), v3);
        for text in ["ev1:RVYDAQA", "ev2:RVYDAQA", "ev3:RVYCAQA", "ev3:RVYBAgM"] {
            assert!(
                matches!(from_text(text), Err(Error::Malformed { .. })),
                "{text}"
            );
        }
        // The prefix names the binary's version: ev2: is the compact form.
        let compact = vec![0x45, 0x56, 2, 1, 0];
        assert_eq!(to_text(&compact), "ev2:RVYCAQA");
        assert_eq!(from_text("ev2:RVYCAQA").expect("decode"), compact);
        assert!(matches!(
            from_text("ev1:RVYCAQA"),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            from_text("ev2:RVYBAgM"),
            Err(Error::Malformed { .. })
        ));
        // What decodes re-encodes to the same text (the fuzz target's invariant): `ev2:` with
        // no compact binary behind it is refused.
        for text in ["ev2:", "ev2:AAAA", "ev2:RVY"] {
            assert!(
                matches!(from_text(text), Err(Error::Malformed { .. })),
                "{text}"
            );
        }
        for text in ["ev1:", "ev1:AAAA", "ev2:RVYCAQA", "ev3:RVYDAQA"] {
            assert_eq!(to_text(&from_text(text).expect("decodes")), text);
        }
        assert!(matches!(from_text("xyz"), Err(Error::Malformed { .. })));
        assert!(matches!(from_text("ev1:@@@"), Err(Error::Malformed { .. })));
    }

    #[test]
    fn kek_ref_lengths_are_checked() {
        let mut w = WrappedDek {
            provider: Provider::Local,
            key_id: String::new(),
            key_version: "1".into(),
            ciphertext: vec![1],
        };
        assert!(encode_kek_ref(&w).is_err());
        w.key_id = "k".into();
        w.key_version = "v".repeat(256);
        assert!(encode_kek_ref(&w).is_err());
        w.key_version = "1".into();
        w.ciphertext = Vec::new();
        assert!(encode_kek_ref(&w).is_err());
    }
}
