//! Reading and writing the header: the parser that splits a binary ciphertext into its
//! fields (checking every length, never panicking) and the KEK reference's encoding.

use super::{
    FORMAT_VERSION, MAGIC, MAX_KEY_ID_LEN, MAX_KEY_VERSION_LEN, MAX_WRAPPED_DEK_LEN, PREFIX_LEN,
};
use crate::error::{Error, Result};
use crate::kms::{Provider, WrappedDek};
use crate::suite::{COMMITMENT_LEN, Suite, TAG_LEN};

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
    #[inline(always)]
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

    #[inline(always)]
    fn u8(&mut self, field: &'static str) -> Result<u8> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }

    #[inline(always)]
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
    let (provider, key_id, key_version, wrapped_dek) = read_kek_ref(&mut r)?;
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

/// A KEK reference block's fields: provider, key id, key version, wrapped DEK.
type KekRefFields<'a> = (Provider, &'a [u8], &'a [u8], &'a [u8]);

/// Reads a KEK reference block.
#[inline]
fn read_kek_ref<'a>(r: &mut Reader<'a>) -> Result<KekRefFields<'a>> {
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
    Ok((provider, key_id, key_version, wrapped_dek))
}

/// A KEK reference kept apart from a v1 header (a stream's header slot), as the [`Parsed`]
/// view the key paths take: `stable` and `commitment` are the stream's, `kek_ref` is exactly
/// the encoded reference (it must be all of `kek_ref`), and there is no nonce or body.
pub(crate) fn parse_kek_ref<'a>(
    suite: Suite,
    stable: &'a [u8],
    commitment: &'a [u8],
    kek_ref: &'a [u8],
) -> Result<Parsed<'a>> {
    let mut r = Reader {
        input: kek_ref,
        pos: 0,
    };
    let (provider, key_id, key_version, wrapped_dek) = read_kek_ref(&mut r)?;
    if r.pos != kek_ref.len() {
        return Err(Error::malformed(
            "KEK reference slot",
            "the recorded length does not match the reference it holds",
        ));
    }
    Ok(Parsed {
        suite,
        stable,
        nonce: &[],
        commitment,
        kek_ref,
        provider,
        key_id,
        key_version,
        wrapped_dek,
        body: &[],
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

/// The ciphertext with its KEK reference replaced; the stable part and body are copied
/// byte for byte.
pub(crate) fn replace_kek_ref(parsed: &Parsed<'_>, new_ref: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parsed.stable.len() + new_ref.len() + parsed.body.len());
    out.extend_from_slice(parsed.stable);
    out.extend_from_slice(new_ref);
    out.extend_from_slice(parsed.body);
    out
}
