//! The text form: `ev1:` (or `ev3:`/`ev2:` for compact values) and unpadded base64url.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{FORMAT_VERSION, TEXT_PREFIX};
use crate::error::{Error, Result};

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
