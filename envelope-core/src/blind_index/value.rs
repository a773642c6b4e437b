//! The encoded index value: its index-key version, then the truncated tag.
//!
//! ```text
//! binary (bytea):  version (u16, big-endian, ≥ 1) | tag (⌈N/8⌉ bytes, unused low bits zero)
//! text:            "bi" version (decimal) ":" base64url(tag) (unpadded)
//! ```
//!
//! The version is readable without any key, so a census counts values per index version
//! with SQL alone (`get_byte(idx, 0) * 256 + get_byte(idx, 1)`, or
//! `split_part(idx, ':', 1)` on the text form).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

/// Bytes of the version prefix in the binary form.
pub const INDEX_VERSION_LEN: usize = 2;
/// The text form's prefix before the version number.
pub const INDEX_TEXT_PREFIX: &str = "bi";
/// The fewest bits an index may keep.
pub const MIN_INDEX_BITS: u16 = 8;
/// The most bits an index may keep (all of HMAC-SHA256).
pub const MAX_INDEX_BITS: u16 = 256;

/// One index value: which index-key version computed it and its truncated tag (held inline:
/// computing one allocates nothing).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexValue {
    version: u16,
    len: u8,
    /// The tag in its first `len` bytes; the rest is zero.
    tag: [u8; 32],
}

impl fmt::Debug for IndexValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A tag is not secret (it is what the column stores), but it is the value's
        // fingerprint: show its version and length only.
        f.debug_struct("IndexValue")
            .field("version", &self.version)
            .field("tag_len", &self.len)
            .finish()
    }
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::malformed("index value", reason)
}

/// The bytes a tag of `bits` bits takes.
pub const fn tag_len(bits: u16) -> usize {
    (bits as usize).div_ceil(8)
}

impl IndexValue {
    /// A value from its parts (at most 32 bytes; the tag's unused low bits must be zero).
    pub(crate) fn new(version: u16, tag: &[u8]) -> Self {
        let mut inline = [0u8; 32];
        inline[..tag.len()].copy_from_slice(tag);
        IndexValue {
            version,
            len: tag.len() as u8,
            tag: inline,
        }
    }

    /// The index-key version that computed it.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The truncated tag.
    pub fn tag(&self) -> &[u8] {
        &self.tag[..usize::from(self.len)]
    }

    /// The binary form: version (u16 big-endian) then the tag.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(INDEX_VERSION_LEN + self.tag().len());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(self.tag());
        out
    }

    /// The text form: `bi<version>:<base64url tag>`.
    pub fn to_text(&self) -> String {
        format!(
            "{INDEX_TEXT_PREFIX}{}:{}",
            self.version,
            URL_SAFE_NO_PAD.encode(self.tag())
        )
    }

    /// Parses the binary form (checks the version is not 0 and a tag follows).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let version = version_of_bytes(bytes)?;
        let tag = &bytes[INDEX_VERSION_LEN..];
        if tag.is_empty() || tag.len() > tag_len(MAX_INDEX_BITS) {
            return Err(malformed(format!("a tag of {} bytes", tag.len())));
        }
        Ok(IndexValue::new(version, tag))
    }

    /// Parses the text form.
    pub fn from_text(text: &str) -> Result<Self> {
        let version = version_of_text(text)?;
        let Some((_, tag)) = text.split_once(':') else {
            unreachable!("version_of_text checked the colon")
        };
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|e| malformed(format!("the tag is not unpadded base64url: {e}")))?;
        if tag.is_empty() || tag.len() > tag_len(MAX_INDEX_BITS) {
            return Err(malformed(format!("a tag of {} bytes", tag.len())));
        }
        Ok(IndexValue::new(version, &tag))
    }
}

/// The index-key version of a binary index value, without parsing the rest.
pub fn version_of_bytes(bytes: &[u8]) -> Result<u16> {
    let Some(prefix) = bytes.get(..INDEX_VERSION_LEN) else {
        return Err(malformed(format!(
            "{} bytes: shorter than the version",
            bytes.len()
        )));
    };
    match u16::from_be_bytes([prefix[0], prefix[1]]) {
        0 => Err(malformed("version 0 (versions start at 1)")),
        v => Ok(v),
    }
}

/// The index-key version of a text index value, without decoding the tag.
pub fn version_of_text(text: &str) -> Result<u16> {
    let rest = text
        .strip_prefix(INDEX_TEXT_PREFIX)
        .ok_or_else(|| malformed(format!("text form starts with {INDEX_TEXT_PREFIX:?}")))?;
    let (digits, _) = rest
        .split_once(':')
        .ok_or_else(|| malformed("text form has no ':' after the version"))?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(format!(
            "version {digits:?} is not a number from 1"
        )));
    }
    digits
        .parse::<u16>()
        .map_err(|_| malformed(format!("version {digits} exceeds 65535")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_round_trip() {
        let v = IndexValue::new(258, &[0xfb, 0xff, 0x80]);
        assert_eq!(v.to_bytes(), [1, 2, 0xfb, 0xff, 0x80]);
        assert_eq!(v.to_text(), "bi258:-_-A");
        assert_eq!(IndexValue::from_bytes(&v.to_bytes()).unwrap(), v);
        assert_eq!(IndexValue::from_text(&v.to_text()).unwrap(), v);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bytes in [&b""[..], b"\x00", b"\x00\x01", b"\x00\x00\x01"] {
            assert!(IndexValue::from_bytes(bytes).is_err(), "{bytes:?}");
        }
        for text in [
            "",
            "bi:AA",
            "bi0:AA",
            "bi01:AA",
            "bi1AA",
            "bi1:",
            "bi1:!!",
            "x1:AA",
            "bi70000:AA",
        ] {
            assert!(IndexValue::from_text(text).is_err(), "{text:?}");
        }
    }
}
