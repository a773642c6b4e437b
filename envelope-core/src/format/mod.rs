//! Wire format v1 (see `docs/FORMAT.md`, which this module implements byte for byte).
//!
//! ```text
//! stable part (authenticated by the body tag)      KEK reference (replaced by rewrap)
//! "EV" | 0x01 | suite | nonce | commitment(32)  ||  provider | u16 len | key id | u8 len |
//!                                                   key version | u16 len | wrapped DEK
//! body: ciphertext (same length as the plaintext) || tag (16)
//! ```

mod header;
mod seal;
mod text;

pub(crate) use header::{
    Parsed, encode_kek_ref, parse, parse_kek_ref, replace_kek_ref, stable_len,
};
#[cfg(any(test, feature = "testing"))]
pub(crate) use seal::{MAX_NONCE_LEN, seal};
pub(crate) use seal::{
    NonceSource, Output, check_message_len, open_appended, prefix_of, seal_body,
};
pub use text::{from_text, to_text};

use crate::error::Result;
use crate::kms::{LabelCheck, Provider, WrappedDek};
use crate::suite::{Suite, TAG_LEN};

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
    /// For the streaming form (format version 4): plaintext bytes per segment; `None` for
    /// the value forms.
    pub segment_size: Option<u32>,
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

/// Reads the header of a binary ciphertext without any key: format version 1, or a stream
/// (version 4; see [`crate::stream::inspect`], whose header alone is enough here).
pub fn inspect(ciphertext: &[u8]) -> Result<HeaderInfo> {
    if crate::stream::is_stream(ciphertext) {
        return crate::stream::inspect(ciphertext, None);
    }
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
        segment_size: None,
    })
}

/// The wrapped DEK of a binary ciphertext, as its header records it (no key, no KMS call);
/// for a stream, its current slot's.
pub fn wrapped_dek(ciphertext: &[u8]) -> Result<WrappedDek> {
    if crate::stream::is_stream(ciphertext) {
        return crate::stream::StreamHeader::parse(ciphertext)?
            .key_source()?
            .wrapped();
    }
    parse(ciphertext)?.wrapped()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::suite::DataKey;

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
