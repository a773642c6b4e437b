//! `testvectors/index.json`: blind-index normalizers, index values under raw index keys,
//! their encodings and commitments, and negative cases (docs/FORMAT.md, "Blind indexes").

use serde_json::{Value, json};

use crate::blind_index::{IndexValue, Normalizer, index_value_with_key};
use crate::crypto::CryptoProvider;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Normalizer cases: (spec, input).
const NORMALIZERS: &[(&str, &[u8])] = &[
    ("exact", b"  Ann Lee "),
    ("nfkc_casefold", "Stra\u{df}e".as_bytes()),
    (
        "nfkc_casefold",
        "\u{ff33}\u{ff34}\u{ff32}\u{ff21}\u{ff33}\u{ff33}\u{ff25}".as_bytes(),
    ),
    (
        "nfkc_casefold",
        "\u{fb01}le \u{130}stanbul \u{3a3}\u{391}\u{3a3}".as_bytes(),
    ),
    ("nfkc_casefold", "e\u{301}cole".as_bytes()),
    ("trim_collapse", " \t Ann \u{a0}\n Lee \u{3000}".as_bytes()),
    ("digits", b"123-45-6789"),
    ("digits", b"+1 (555) 010-9999 \xff"),
    (
        "nfkc_casefold+digits",
        "\u{ff11}\u{ff12}\u{ff13}-45".as_bytes(),
    ),
    ("nfkc_casefold+trim_collapse", "  A@B.Example  ".as_bytes()),
    ("trim_collapse+nfkc_casefold", "  MIXED   Case ".as_bytes()),
    ("custom:email_v1+nfkc_casefold", b"Already-Custom"),
];

/// Index value cases: (index, version, bits, normalizer, input).
const VALUES: &[(&str, u16, u16, &str, &[u8])] = &[
    (
        "users.email",
        1,
        64,
        "nfkc_casefold+trim_collapse",
        b"a@b.example",
    ),
    (
        "users.email",
        1,
        64,
        "nfkc_casefold+trim_collapse",
        b"  A@B.EXAMPLE ",
    ),
    (
        "users.email",
        2,
        64,
        "nfkc_casefold+trim_collapse",
        b"a@b.example",
    ),
    ("users.ssn", 1, 16, "digits", b"123-45-6789"),
    ("users.ssn", 1, 13, "digits", b"123-45-6789"),
    ("users.ssn", 1, 8, "digits", b"123456789"),
    ("users.mrn", 7, 256, "exact", b"MRN-000042"),
    ("users.mrn", 300, 128, "exact", b""),
];

/// Inputs a text step refuses (not UTF-8).
const REFUSED: &[(&str, &[u8])] = &[("nfkc_casefold", b"\xff\xfe"), ("trim_collapse", b"a\xc3")];

const BAD_SPECS: &[&str] = &[
    "",
    "lower",
    "exact+digits",
    "digits+digits",
    "digits+custom:x",
    "custom:",
    "custom:Upper",
    "nfkc_casefold+",
];

const BAD_BINARY: &[&str] = &["", "00", "0001", "0000aa"];
const BAD_TEXT: &[&str] = &[
    "",
    "bi:AA",
    "bi0:AA",
    "bi01:AA",
    "bi1AA",
    "bi1:",
    "bi1:!!",
    "x1:AA",
    "bi70000:AA",
];

/// The test key of an (index, version): a fixed pattern (never secret), the same for
/// every case of one version.
fn key(index: &str, version: u16) -> [u8; 32] {
    let seed = index.bytes().fold(version as u32, |a, b| {
        a.wrapping_mul(31).wrapping_add(b.into())
    });
    std::array::from_fn(|j| (seed.rotate_left(j as u32) as u8) ^ (j as u8))
}

/// The vectors as JSON.
pub fn generate() -> Value {
    let provider = CryptoProvider::default();
    let normalizers: Vec<Value> = NORMALIZERS
        .iter()
        .map(|(spec, input)| {
            let n = Normalizer::parse(spec).expect("vector specs parse");
            let out = n.apply_builtin(input).expect("vector inputs normalize");
            json!({ "normalizer": spec, "input_hex": hex(input), "output_hex": hex(&out) })
        })
        .collect();
    let values: Vec<Value> = VALUES
        .iter()
        .map(|(index, version, bits, spec, input)| {
            let n = Normalizer::parse(spec).expect("vector specs parse");
            let k = key(index, *version);
            let (value, commitment) =
                index_value_with_key(provider, &k, index, *version, *bits, &n, input)
                    .expect("vector values compute");
            let normalized = n.apply_builtin(input).expect("normalizes");
            json!({
                "index": index, "version": version, "bits": bits, "normalizer": spec,
                "key_hex": hex(&k), "input_hex": hex(input), "normalized_hex": hex(&normalized),
                "commitment_hex": hex(&commitment), "binary_hex": hex(&value.to_bytes()),
                "text": value.to_text(),
            })
        })
        .collect();
    let refused: Vec<Value> = REFUSED
        .iter()
        .map(|(spec, input)| json!({ "normalizer": spec, "input_hex": hex(input), "error": "malformed" }))
        .collect();
    let encodings: Vec<Value> = BAD_BINARY
        .iter()
        .map(|b| {
            let bytes: Vec<u8> = (0..b.len() / 2)
                .map(|i| u8::from_str_radix(&b[2 * i..2 * i + 2], 16).expect("hex"))
                .collect();
            assert!(IndexValue::from_bytes(&bytes).is_err());
            json!({ "binary_hex": b, "error": "malformed" })
        })
        .chain(BAD_TEXT.iter().map(|t| {
            assert!(IndexValue::from_text(t).is_err());
            json!({ "text": t, "error": "malformed" })
        }))
        .collect();
    json!({
        "description": "envelope blind-index vectors: docs/FORMAT.md, \"Blind indexes\". Keys are test keys.",
        "construction": {
            "definition": "u16(len name) | name | u16(version) | u16(bits) | u16(len normalizer) | normalizer",
            "mac_key": "HKDF-SHA256(salt=\"envelope blind index v1\", ikm=key, info=0x01 | definition)",
            "commitment": "HKDF-SHA256(salt=\"envelope blind index v1\", ikm=key, info=0x02 | definition)",
            "tag": "HMAC-SHA256(mac_key, normalized) truncated to ceil(bits/8) bytes, unused low bits of the last byte cleared",
            "binary": "u16(version) | tag",
            "text": "\"bi\" version \":\" base64url(tag) unpadded",
        },
        "normalizers": normalizers,
        "refused_inputs": refused,
        "invalid_normalizers": BAD_SPECS,
        "index_values": values,
        "invalid_encodings": encodings,
    })
}

/// The file as committed: pretty JSON with a final newline.
pub fn generate_file() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).expect("JSON values serialize");
    text.push('\n');
    text
}
