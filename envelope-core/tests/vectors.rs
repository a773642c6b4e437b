//! Checks every vector in `testvectors/v1.json`, twice: through `Envelope` over a keyring
//! built from the file, and by an independent decryption that follows docs/FORMAT.md with
//! the RustCrypto primitives directly (so the document, not just the code, is tested).

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use envelope_core::{CachePolicy, CryptoProvider, EncryptionContext, Envelope, LocalKms, format};

/// Any AAD: every text vector fails before its AAD matters.
const AAD_OF_TEXT: &[u8] = b"";
use serde_json::Value;

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testvectors/v1.json")
}

fn load() -> Value {
    serde_json::from_str(&std::fs::read_to_string(vectors_path()).unwrap()).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn plaintext_of(v: &Value) -> Vec<u8> {
    if let Some(hex) = v["plaintext"].as_str() {
        return unhex(hex);
    }
    let repeat = &v["plaintext_repeat"];
    let pattern = unhex(repeat["hex"].as_str().unwrap());
    let len = repeat["len"].as_u64().unwrap() as usize;
    pattern.iter().copied().cycle().take(len).collect()
}

/// Decryption by hand, following docs/FORMAT.md: parse the header, unwrap the DEK with
/// the KEK, derive the AEAD key and commitment with HKDF-SHA256, check the commitment,
/// decrypt the body with header prefix + commitment + AAD as associated data.
fn decrypt_by_hand(doc: &Value, ct: &[u8], aad: &[u8], context: &Value) -> Vec<u8> {
    assert_eq!(&ct[..3], b"EV\x01");
    let suite = ct[3];
    let nonce_len = match suite {
        1 => 12,
        2 => 24,
        other => panic!("suite {other}"),
    };
    let nonce = &ct[4..4 + nonce_len];
    let commitment = &ct[4 + nonce_len..4 + nonce_len + 32];
    let stable_end = 4 + nonce_len + 32;
    let mut p = stable_end;
    assert_eq!(ct[p], 1, "provider local");
    let id_len = u16::from_be_bytes([ct[p + 1], ct[p + 2]]) as usize;
    let key_id = std::str::from_utf8(&ct[p + 3..p + 3 + id_len])
        .unwrap()
        .to_owned();
    p += 3 + id_len;
    let ver_len = ct[p] as usize;
    let version = std::str::from_utf8(&ct[p + 1..p + 1 + ver_len])
        .unwrap()
        .to_owned();
    p += 1 + ver_len;
    let wrapped_len = u16::from_be_bytes([ct[p], ct[p + 1]]) as usize;
    let wrapped = &ct[p + 2..p + 2 + wrapped_len];
    p += 2 + wrapped_len;
    let body = &ct[p..];

    // Unwrap: AES-256-GCM(KEK), nonce = first 12 bytes, AD = label || key id || version || context.
    let kek = unhex(
        doc["keyring"]["versions"][&version]["kek"]
            .as_str()
            .unwrap(),
    );
    let mut ad = b"envelope.local.wrap.v1".to_vec();
    ad.extend_from_slice(&(key_id.len() as u16).to_be_bytes());
    ad.extend_from_slice(key_id.as_bytes());
    ad.push(version.len() as u8);
    ad.extend_from_slice(version.as_bytes());
    // The encryption context: pair count, then each pair in key order, length-prefixed.
    let pairs = context.as_object().map(|o| o.len()).unwrap_or(0);
    ad.extend_from_slice(&(pairs as u16).to_be_bytes());
    if let Some(object) = context.as_object() {
        let mut sorted: Vec<_> = object.iter().collect();
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (k, v) in sorted {
            let v = v.as_str().unwrap();
            ad.extend_from_slice(&(k.len() as u16).to_be_bytes());
            ad.extend_from_slice(k.as_bytes());
            ad.extend_from_slice(&(v.len() as u16).to_be_bytes());
            ad.extend_from_slice(v.as_bytes());
        }
    }
    let dek = aes_gcm::Aes256Gcm::new_from_slice(&kek)
        .unwrap()
        .decrypt(
            wrapped[..12].into(),
            Payload {
                msg: &wrapped[12..],
                aad: &ad,
            },
        )
        .unwrap();

    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"envelope.v1"), &dek);
    let mut key = [0u8; 32];
    let mut expected_commitment = [0u8; 32];
    hk.expand(
        &[b"envelope.v1.aead-key".as_slice(), &[suite]].concat(),
        &mut key,
    )
    .unwrap();
    hk.expand(
        &[b"envelope.v1.commitment".as_slice(), &[suite]].concat(),
        &mut expected_commitment,
    )
    .unwrap();
    assert_eq!(commitment, expected_commitment, "commitment");

    // Magic, version, suite, then the commitment, then the AAD (the nonce is the AEAD nonce).
    let mut body_ad = ct[..4].to_vec();
    body_ad.extend_from_slice(commitment);
    body_ad.extend_from_slice(aad);
    let payload = Payload {
        msg: body,
        aad: &body_ad,
    };
    match suite {
        1 => aes_gcm::Aes256Gcm::new_from_slice(&key)
            .unwrap()
            .decrypt(nonce.into(), payload),
        _ => chacha20poly1305::XChaCha20Poly1305::new_from_slice(&key)
            .unwrap()
            .decrypt(nonce.into(), payload),
    }
    .unwrap()
}

#[test]
fn committed_vectors_are_current() {
    let committed = std::fs::read_to_string(vectors_path()).unwrap();
    assert!(
        committed == envelope_core::vectors::generate_file(),
        "testvectors/v1.json differs from the generator: run \
         `cargo run -p envelope-core --features testing --example generate_testvectors`"
    );
}

#[test]
fn every_vector_has_its_expected_outcome() {
    let doc = load();
    let dir = tempfile::tempdir().unwrap();
    let keyring = common::vectors_keyring(&doc, dir.path());
    let key_id = doc["keyring"]["key_id"].as_str().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    let mut positives = 0;
    let mut negatives = 0;
    // Every vector on every crypto provider compiled into this build.
    for &provider in CryptoProvider::available() {
        for v in vectors {
            let name = v["name"].as_str().unwrap();
            let name = &format!("{name} [{provider}]");
            // A fresh envelope per vector: no cache carries a DEK from one vector to the next.
            let kms = LocalKms::new(keyring.clone())
                .with_crypto_provider(provider)
                .unwrap();
            let context: EncryptionContext = v
                .get("encryption_context")
                .map(|c| serde_json::from_value(c.clone()).unwrap())
                .unwrap_or_default();
            let envelope = Envelope::builder(Arc::new(kms), key_id)
                .cache_policy(CachePolicy::default())
                .crypto_provider(provider)
                .encryption_context(context)
                .build()
                .unwrap();
            let ct = unhex(v["ciphertext"].as_str().unwrap());
            let aad = unhex(v["aad"].as_str().unwrap());
            let outcome = rt.block_on(envelope.decrypt(&ct, &aad));
            // The caller-buffer path on a warm cache must agree with the Vec path.
            let mut buf = vec![0xEEu8; ct.len()];
            let into = rt.block_on(envelope.decrypt_into(&ct, &aad, &mut buf));
            let expected = v["expected"].as_str().unwrap();
            if expected == "ok" {
                positives += 1;
                let plaintext = plaintext_of(v);
                assert_eq!(
                    outcome.unwrap_or_else(|e| panic!("{name}: {e}")),
                    plaintext,
                    "{name}"
                );
                let n = into.unwrap_or_else(|e| panic!("{name} into: {e}"));
                assert_eq!(&buf[..n], plaintext.as_slice(), "{name} into");
                assert_eq!(
                    decrypt_by_hand(&doc, &ct, &aad, &v["encryption_context"]),
                    plaintext,
                    "{name} by hand"
                );
                let info = Envelope::inspect(&ct).unwrap();
                assert_eq!(info.suite.name(), v["suite"].as_str().unwrap(), "{name}");
                assert_eq!(
                    info.key_version,
                    v["key_version"].as_str().unwrap(),
                    "{name}"
                );
                if let Some(text) = v["ciphertext_text"].as_str() {
                    assert_eq!(format::from_text(text).unwrap(), ct, "{name}");
                }
            } else {
                negatives += 1;
                let err = outcome.expect_err(name);
                assert_eq!(err.kind().as_str(), expected, "{name}: {err}");
                let err = into.expect_err(name);
                assert_eq!(err.kind().as_str(), expected, "{name} into: {err}");
                // No plaintext residue: the buffer holds its fill or zeros, nothing else.
                assert!(
                    buf.iter().all(|&b| b == 0xEE || b == 0),
                    "{name}: plaintext residue in the caller's buffer"
                );
            }
        }
    }
    let providers = CryptoProvider::available().len();
    let (positives, negatives) = (positives / providers, negatives / providers);
    assert!(
        positives >= 18 && negatives >= 30,
        "{positives} positive, {negatives} negative"
    );

    // Text-form vectors, through the whole text decryption path.
    let envelope = Envelope::builder(Arc::new(LocalKms::new(keyring.clone())), key_id)
        .build()
        .unwrap();
    let texts = doc["text_vectors"].as_array().unwrap();
    assert!(texts.len() >= 10, "{} text vectors", texts.len());
    for t in texts {
        let err = rt
            .block_on(envelope.decrypt_text(t["text"].as_str().unwrap(), AAD_OF_TEXT))
            .unwrap_err();
        assert_eq!(
            err.kind().as_str(),
            t["expected"].as_str().unwrap(),
            "{}: {err}",
            t["name"]
        );
    }
}

#[test]
fn rewrapped_vector_keeps_stable_header_and_body() {
    let doc = load();
    let vectors = doc["vectors"].as_array().unwrap();
    let rewrapped = vectors
        .iter()
        .find(|v| v.get("rewrap_of").is_some())
        .unwrap();
    let original = vectors
        .iter()
        .find(|v| v["name"] == rewrapped["rewrap_of"])
        .unwrap();
    let a = unhex(original["ciphertext"].as_str().unwrap());
    let b = unhex(rewrapped["ciphertext"].as_str().unwrap());
    let (ia, ib) = (
        Envelope::inspect(&a).unwrap(),
        Envelope::inspect(&b).unwrap(),
    );
    assert_eq!(
        (ia.key_version.as_str(), ib.key_version.as_str()),
        ("1", "2")
    );
    let stable = 4 + 12 + 32;
    assert_eq!(a[..stable], b[..stable]);
    assert_eq!(a[ia.header_len..], b[ib.header_len..]);
}
