//! Sealing and opening bodies: the associated data (the stable header part, the fixed
//! commitment part and the caller's AAD), nonces, and the output forms (a new buffer,
//! appended, the caller's buffer).

use super::{PREFIX_LEN, Parsed, stable_len};
use crate::error::{Error, Result};
use crate::suite::{COMMITMENT_LEN, DataKey, FIXED_AD_LEN, Suite, TAG_LEN};

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

    /// Writes an already opened plaintext (a stream decrypted in memory); returns its
    /// length.
    pub(crate) fn put(&mut self, plaintext: &[u8]) -> Result<usize> {
        match self {
            Output::Append(vec) => vec.extend_from_slice(plaintext),
            Output::Slice(buf) => prefix_of(buf, plaintext.len())?.copy_from_slice(plaintext),
        }
        Ok(plaintext.len())
    }

    /// Opens one message; returns the plaintext's length. Into a slice, the plaintext is
    /// written straight from the ciphertext (no intermediate copy on aws-lc-rs).
    #[inline]
    pub(crate) fn open(&mut self, key: &DataKey, parsed: &Parsed<'_>, aad: &[u8]) -> Result<usize> {
        let len = plaintext_len(parsed);
        match self {
            Output::Append(vec) => open_appended(vec, len, |out| open_into(key, parsed, aad, out)),
            Output::Slice(buf) => open_into(key, parsed, aad, prefix_of(buf, len)?).map(|()| len),
        }
    }
}

/// Below this many bytes a new plaintext buffer is allocated and zero-filled; from it on,
/// allocated zeroed (glibc's `calloc` serves such sizes from fresh pages that are zero
/// already, but it bypasses the thread cache that makes small allocations cheap).
const ZEROED_ALLOCATION_FROM: usize = 128 * 1024;

/// Opens a message into `len` bytes appended to `vec` (`open` writes the plaintext over
/// them) and returns `len`; on failure `vec` is as it was. A large plaintext into an empty
/// vector without room (a new `Vec`) gets a zeroed allocation instead of a resize, so it is
/// written once, not zeroed first.
#[inline]
pub(crate) fn open_appended(
    vec: &mut Vec<u8>,
    len: usize,
    open: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<usize> {
    let start = vec.len();
    if start == 0 && vec.capacity() < len && len >= ZEROED_ALLOCATION_FROM {
        *vec = vec![0u8; len];
    } else {
        vec.resize(start + len, 0);
    }
    let opened = open(&mut vec[start..]);
    if opened.is_err() {
        vec.truncate(start);
    }
    opened.map(|()| len)
}
