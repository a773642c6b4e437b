//! Checks every vector in `testvectors/stream.json` twice: through `Envelope` and both
//! stream readers over a keyring built from the file, and by an independent decryption
//! that follows docs/FORMAT.md ("Streaming form") with the RustCrypto primitives directly.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use envelope_core::stream::{self, DecryptingReader, SeekableDecryptingReader, StreamError};
use envelope_core::{CachePolicy, CryptoProvider, Envelope, LocalKms};
use serde_json::Value;
use sha2::Digest;

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testvectors/stream.json")
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn be16(b: &[u8]) -> usize {
    u16::from_be_bytes([b[0], b[1]]) as usize
}

/// Decryption by hand, as docs/FORMAT.md describes it.
fn decrypt_by_hand(doc: &Value, s: &[u8], aad: &[u8]) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(&s[..3], b"EV\x04");
    let suite = s[3];
    let segment_size = u32::from_be_bytes(s[4..8].try_into().unwrap()) as usize;
    let slot_len = be16(&s[8..10]);
    let (salt, commitment) = (&s[10..42], &s[42..74]);
    let stable = &s[..74];
    // The slots: generation, length, reference, zeros, check; the higher valid generation wins.
    let mut best: Option<(u32, &[u8])> = None;
    for i in 0..2 {
        let slot = &s[74 + i * slot_len..74 + (i + 1) * slot_len];
        let (body, check) = slot.split_at(slot_len - 16);
        let mut h = sha2::Sha256::new();
        h.update(b"envelope.v4.slot");
        h.update(body);
        let generation = u32::from_be_bytes(body[..4].try_into().unwrap());
        if generation == 0 || h.finalize()[..16] != *check {
            continue;
        }
        let reference = &body[6..6 + be16(&body[4..6])];
        if best.is_none_or(|(g, _)| generation > g) {
            best = Some((generation, reference));
        }
    }
    let (_, reference) = best.expect("a valid slot");
    // The KEK reference: provider, key id, key version, wrapped DEK (as in format 1).
    assert_eq!(reference[0], 1, "local keyring");
    let id_len = be16(&reference[1..3]);
    let key_id = &reference[3..3 + id_len];
    let mut p = 3 + id_len;
    let version = std::str::from_utf8(&reference[p + 1..p + 1 + reference[p] as usize]).unwrap();
    p += 1 + reference[p] as usize;
    let wrapped = &reference[p + 2..p + 2 + be16(&reference[p..p + 2])];
    let kek = unhex(doc["keyring"]["versions"][version]["kek"].as_str().unwrap());
    let mut wrap_ad = b"envelope.local.wrap.v1".to_vec();
    wrap_ad.extend_from_slice(&(key_id.len() as u16).to_be_bytes());
    wrap_ad.extend_from_slice(key_id);
    wrap_ad.push(version.len() as u8);
    wrap_ad.extend_from_slice(version.as_bytes());
    wrap_ad.extend_from_slice(&[0, 0]);
    let dek = aes_gcm::Aes256Gcm::new_from_slice(&kek)
        .unwrap()
        .decrypt(
            wrapped[..12].into(),
            Payload {
                msg: &wrapped[12..],
                aad: &wrap_ad,
            },
        )
        .unwrap();
    // Commitment and stream root from the DEK; the segment key from the root and the salt.
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"envelope.v1"), &dek);
    let (mut expected, mut root, mut key) = ([0u8; 32], [0u8; 32], [0u8; 32]);
    hk.expand(
        &[b"envelope.v1.commitment".as_slice(), &[suite]].concat(),
        &mut expected,
    )
    .unwrap();
    assert_eq!(commitment, expected, "commitment");
    hk.expand(
        &[b"envelope.v4.stream-root".as_slice(), &[suite]].concat(),
        &mut root,
    )
    .unwrap();
    hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &root)
        .expand(
            &[b"envelope.v4.segment-key".as_slice(), &[suite]].concat(),
            &mut key,
        )
        .unwrap();
    // Segments: nonce = zeros || u32 index || last flag; AD = stable part || AAD.
    let header_len = 74 + 2 * slot_len;
    let body = &s[header_len..];
    let sealed = segment_size + 16;
    let count = body.len().div_ceil(sealed);
    let mut ad = stable.to_vec();
    ad.extend_from_slice(aad);
    let mut out = Vec::new();
    for i in 0..count {
        let segment = &body[i * sealed..((i + 1) * sealed).min(body.len())];
        let nonce_len = if suite == 1 { 12 } else { 24 };
        let mut nonce = vec![0u8; nonce_len];
        nonce[nonce_len - 5..nonce_len - 1].copy_from_slice(&(i as u32).to_be_bytes());
        nonce[nonce_len - 1] = u8::from(i + 1 == count);
        let payload = Payload {
            msg: segment,
            aad: &ad,
        };
        let plain = match suite {
            1 => aes_gcm::Aes256Gcm::new_from_slice(&key)
                .unwrap()
                .decrypt(nonce.as_slice().into(), payload),
            _ => chacha20poly1305::XChaCha20Poly1305::new_from_slice(&key)
                .unwrap()
                .decrypt(nonce.as_slice().into(), payload),
        }
        .unwrap();
        out.extend_from_slice(&plain);
    }
    (out, dek)
}

#[test]
fn committed_vectors_are_current() {
    let committed = std::fs::read_to_string(vectors_path()).unwrap();
    assert!(
        committed == envelope_core::vectors::stream::generate_file(),
        "testvectors/stream.json differs from the generator: run \
         `cargo run -p envelope-core --features testing --example generate_testvectors`"
    );
}

/// The outcome of reading a stream whole: the plaintext, or the error kind.
fn outcome(reader: &mut dyn Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(|e| {
        StreamError::of(&e).map_or_else(|| e.to_string(), |f| f.error().kind().as_str().to_owned())
    })?;
    Ok(out)
}

#[test]
fn every_vector_has_its_expected_outcome_on_both_readers_and_by_hand() {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_path()).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keyring = common::vectors_keyring(&doc, dir.path());
    let key_id = doc["keyring"]["key_id"].as_str().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (mut positives, mut negatives) = (0, 0);
    for &provider in CryptoProvider::available() {
        for v in doc["vectors"].as_array().unwrap() {
            let name = format!("{} [{provider}]", v["name"].as_str().unwrap());
            let kms = LocalKms::new(keyring.clone())
                .with_crypto_provider(provider)
                .unwrap();
            let envelope = Envelope::builder(Arc::new(kms), key_id)
                .cache_policy(CachePolicy::default())
                .crypto_provider(provider)
                .build()
                .unwrap();
            let s = unhex(v["stream"].as_str().unwrap());
            let aad = unhex(v["aad"].as_str().unwrap());
            let expected = v["expected"].as_str().unwrap();
            let results: Vec<Result<Vec<u8>, String>> = match rt
                .block_on(envelope.stream_opener(&s, &aad))
            {
                Err(e) => vec![Err(e.kind().as_str().to_owned())],
                Ok(opener) => {
                    let seekable =
                        match SeekableDecryptingReader::new(Cursor::new(&s), opener.clone(), 2) {
                            Ok(mut r) => outcome(&mut r),
                            Err(e) => Err(StreamError::of(&e)
                                .unwrap()
                                .error()
                                .kind()
                                .as_str()
                                .to_owned()),
                        };
                    let mut source = Cursor::new(&s);
                    stream::read_header(&mut source).unwrap();
                    let piped = outcome(&mut DecryptingReader::new(source, opener, 1));
                    let in_memory = rt
                        .block_on(envelope.decrypt(&s, &aad))
                        .map_err(|e| e.kind().as_str().to_owned());
                    vec![seekable, piped, in_memory]
                }
            };
            for result in results {
                if expected == "ok" {
                    assert_eq!(
                        result.unwrap_or_else(|e| panic!("{name}: {e}")),
                        unhex(v["plaintext"].as_str().unwrap()),
                        "{name}"
                    );
                } else {
                    assert_eq!(result.err().as_deref(), Some(expected), "{name}");
                }
            }
            if expected == "ok" {
                positives += 1;
                let (plain, dek) = decrypt_by_hand(&doc, &s, &aad);
                assert_eq!(
                    plain,
                    unhex(v["plaintext"].as_str().unwrap()),
                    "{name} by hand"
                );
                assert_eq!(dek, unhex(v["dek"].as_str().unwrap()), "{name} DEK");
                assert_eq!(
                    &s[10..42],
                    unhex(v["salt"].as_str().unwrap()),
                    "{name} salt"
                );
                let info = stream::inspect(&s, None).unwrap();
                assert_eq!(
                    info.key_version,
                    v["key_version"].as_str().unwrap(),
                    "{name}"
                );
            } else {
                negatives += 1;
            }
        }
    }
    assert!(
        positives >= 9 && negatives >= 15,
        "{positives} positive, {negatives} negative"
    );
}
