//! A stored ciphertext in the form its store keeps it: binary (`bytea`, binary files) or
//! text (`text` columns, `ev1:` files).

use envelope::format;

/// How a store keeps ciphertexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The binary form (`EV` …).
    Binary,
    /// The text form (`ev1:` + base64url).
    Text,
}

/// A stored value, decoded to the binary form for processing.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The form to write back in.
    pub form: Form,
    /// The binary ciphertext.
    pub binary: Vec<u8>,
}

impl Stored {
    /// Decodes a value of a text column or text file.
    pub fn from_text(text: &str) -> envelope::Result<Self> {
        Ok(Stored {
            form: Form::Text,
            binary: format::from_text(text.trim_end_matches(['\n', '\r']))?,
        })
    }

    /// Decodes a file's bytes: the text form when they start with `ev`, else binary.
    pub fn from_file_bytes(bytes: Vec<u8>) -> envelope::Result<Self> {
        if bytes.starts_with(b"ev") {
            let text = std::str::from_utf8(&bytes).map_err(|_| envelope::Error::Malformed {
                field: "text form",
                reason: "not valid UTF-8".into(),
            })?;
            Self::from_text(text)
        } else {
            Ok(Stored {
                form: Form::Binary,
                binary: bytes,
            })
        }
    }

    /// A new ciphertext in this value's form, as bytes (binary, or the text's UTF-8).
    pub fn encode(form: Form, binary: &[u8]) -> Vec<u8> {
        match form {
            Form::Binary => binary.to_vec(),
            Form::Text => format::to_text(binary).into_bytes(),
        }
    }
}
