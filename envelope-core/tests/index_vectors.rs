//! `testvectors/index.json`: the committed file is what the generator writes, and every
//! index value is recomputed by hand from the spec with the RustCrypto `hkdf` and `hmac`
//! crates (not the SDK's code path), on every provider of the build.
#![allow(clippy::unwrap_used)]

use envelope_core::blind_index::{IndexValue, Normalizer, index_value_with_key};
use envelope_core::{CryptoProvider, ErrorKind};
use hmac::Mac;
use serde_json::Value;

fn file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testvectors/index.json")
}

fn vectors() -> Value {
    serde_json::from_str(&std::fs::read_to_string(file()).unwrap()).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn the_committed_file_is_current() {
    assert!(
        std::fs::read_to_string(file()).unwrap() == envelope_core::vectors::index::generate_file(),
        "testvectors/index.json is stale: cargo run -p envelope-core --features testing --example generate_testvectors"
    );
}

#[test]
fn normalizers_match_their_vectors() {
    let v = vectors();
    for case in v["normalizers"].as_array().unwrap() {
        let n = Normalizer::parse(case["normalizer"].as_str().unwrap()).unwrap();
        let input = unhex(case["input_hex"].as_str().unwrap());
        let out = n.apply_builtin(&input).unwrap();
        assert_eq!(hex::encode(&*out), case["output_hex"], "{case}");
    }
    for case in v["refused_inputs"].as_array().unwrap() {
        let n = Normalizer::parse(case["normalizer"].as_str().unwrap()).unwrap();
        let input = unhex(case["input_hex"].as_str().unwrap());
        let e = n.apply_builtin(&input).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed);
    }
    for spec in v["invalid_normalizers"].as_array().unwrap() {
        let e = Normalizer::parse(spec.as_str().unwrap()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{spec}");
    }
    for case in v["invalid_encodings"].as_array().unwrap() {
        let e = match (case.get("binary_hex"), case.get("text")) {
            (Some(b), _) => IndexValue::from_bytes(&unhex(b.as_str().unwrap())).unwrap_err(),
            (_, Some(t)) => IndexValue::from_text(t.as_str().unwrap()).unwrap_err(),
            _ => panic!("{case}"),
        };
        assert_eq!(e.kind().as_str(), case["error"], "{case}");
    }
}

/// The spec, written out with the RustCrypto crates.
fn by_hand(case: &Value) -> (Vec<u8>, Vec<u8>) {
    let (index, spec) = (
        case["index"].as_str().unwrap(),
        case["normalizer"].as_str().unwrap(),
    );
    let (version, bits) = (
        case["version"].as_u64().unwrap() as u16,
        case["bits"].as_u64().unwrap() as u16,
    );
    let mut definition = Vec::new();
    definition.extend_from_slice(&(index.len() as u16).to_be_bytes());
    definition.extend_from_slice(index.as_bytes());
    definition.extend_from_slice(&version.to_be_bytes());
    definition.extend_from_slice(&bits.to_be_bytes());
    definition.extend_from_slice(&(spec.len() as u16).to_be_bytes());
    definition.extend_from_slice(spec.as_bytes());
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(
        Some(b"envelope blind index v1"),
        &unhex(case["key_hex"].as_str().unwrap()),
    );
    let (mut mac_key, mut commitment) = ([0u8; 32], [0u8; 32]);
    hk.expand_multi_info(&[&[1], &definition], &mut mac_key)
        .unwrap();
    hk.expand_multi_info(&[&[2], &definition], &mut commitment)
        .unwrap();
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&mac_key).unwrap();
    mac.update(&unhex(case["normalized_hex"].as_str().unwrap()));
    let full = mac.finalize().into_bytes();
    let len = (bits as usize).div_ceil(8);
    let mut tag = full[..len].to_vec();
    let unused = 8 * len - bits as usize;
    *tag.last_mut().unwrap() &= 0xffu8.checked_shl(unused as u32).unwrap_or(0);
    let mut binary = version.to_be_bytes().to_vec();
    binary.extend_from_slice(&tag);
    (binary, commitment.to_vec())
}

#[test]
fn index_values_match_their_vectors_and_the_spec_by_hand() {
    let v = vectors();
    let cases = v["index_values"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let (binary, commitment) = by_hand(case);
        assert_eq!(hex::encode(&binary), case["binary_hex"], "by hand: {case}");
        assert_eq!(
            hex::encode(&commitment),
            case["commitment_hex"],
            "by hand: {case}"
        );
        let value = IndexValue::from_bytes(&binary).unwrap();
        assert_eq!(value.to_text(), case["text"]);
        assert_eq!(
            IndexValue::from_text(case["text"].as_str().unwrap()).unwrap(),
            value
        );
        for provider in CryptoProvider::available() {
            let key: [u8; 32] = unhex(case["key_hex"].as_str().unwrap()).try_into().unwrap();
            let (got, c) = index_value_with_key(
                *provider,
                &key,
                case["index"].as_str().unwrap(),
                case["version"].as_u64().unwrap() as u16,
                case["bits"].as_u64().unwrap() as u16,
                &Normalizer::parse(case["normalizer"].as_str().unwrap()).unwrap(),
                &unhex(case["input_hex"].as_str().unwrap()),
            )
            .unwrap();
            assert_eq!(got, value, "{provider}: {case}");
            assert_eq!(hex::encode(c), case["commitment_hex"]);
        }
    }
    // Equal after normalization: equal values; another version: another tag.
    assert_eq!(
        cases[0]["binary_hex"].as_str().unwrap()[4..],
        cases[1]["binary_hex"].as_str().unwrap()[4..]
    );
}
