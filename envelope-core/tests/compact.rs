//! The compact form (format version 3, and the version 2 values it still reads) and its
//! DEK store: every vector of
//! `testvectors/compact.json` through `Envelope` and by hand (docs/FORMAT.md with the raw
//! RustCrypto primitives), the size promise, the cache's store reads, and rotation through
//! the store.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use envelope_core::compact::{
    CompactVersion, DekStore, StoredDek, compact_overhead, inspect_compact, stored_deks_from_json,
};
use envelope_core::testing::MemoryDekStore;
use envelope_core::{
    CachePolicy, Envelope, Error, ErrorKind, LocalKeyring, LocalKms, Suite, format,
};
use serde_json::Value;

use common::Fixture;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn load() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testvectors/compact.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// The vectors' store rows with a vector's `store_edit` applied (as documented in the file).
fn rows_with_edit(doc: &Value, edit: &Value) -> Vec<StoredDek> {
    let mut rows =
        stored_deks_from_json(serde_json::to_string(&doc["dek_store"]).unwrap().as_bytes())
            .unwrap();
    let index = |rows: &[StoredDek], id: &Value| {
        rows.iter()
            .position(|r| r.id.get() == id.as_u64().unwrap())
            .unwrap()
    };
    match edit["op"].as_str() {
        None => {}
        Some("set") => {
            let i = index(&rows, &edit["row"]);
            if let Some(v) = edit["key_version"].as_str() {
                rows[i].wrapped.key_version = v.into();
            }
            if let Some(w) = edit["wrapped_dek"].as_str() {
                rows[i].wrapped.ciphertext = unhex(w);
            }
            if let Some(c) = edit["commitment"].as_str() {
                rows[i].commitment = unhex(c).try_into().unwrap();
            }
            if let Some(s) = edit["state"].as_str() {
                rows[i].state = envelope_core::DekState::parse(s).unwrap();
            }
            if let Some(b) = edit["bound"].as_bool() {
                rows[i].bound = b;
            }
        }
        Some("swap_wrapped") => {
            let (a, b) = (
                index(&rows, &edit["rows"][0]),
                index(&rows, &edit["rows"][1]),
            );
            let wa = rows[a].wrapped.clone();
            rows[a].wrapped = std::mem::replace(&mut rows[b].wrapped, wa);
        }
        Some("swap") => {
            let (a, b) = (
                index(&rows, &edit["rows"][0]),
                index(&rows, &edit["rows"][1]),
            );
            let (ida, idb) = (rows[a].id, rows[b].id);
            rows.swap(a, b);
            rows[a].id = ida;
            rows[b].id = idb;
        }
        Some("delete") => {
            let i = index(&rows, &edit["row"]);
            rows.remove(i);
        }
        Some(other) => panic!("unknown store edit {other}"),
    }
    rows
}

fn store_of(rt: &tokio::runtime::Runtime, rows: &[StoredDek]) -> Arc<MemoryDekStore> {
    let store = Arc::new(MemoryDekStore::new());
    for row in rows {
        rt.block_on(store.import(row)).unwrap();
    }
    store
}

fn reader(ring: &LocalKeyring, key_id: &str, store: Arc<MemoryDekStore>) -> Envelope {
    Envelope::builder(LocalKms::new(ring.clone()), key_id)
        .dek_store(store)
        .build()
        .unwrap()
}

/// Decryption by hand, following docs/FORMAT.md "Compact form": look the DEK id up in the
/// rows, unwrap the row's wrapped DEK with the KEK, derive the AEAD key and commitment,
/// check the row's commitment (and, in version 3, the value's), decrypt with magic..DEK id
/// || commitment || AAD.
fn decrypt_by_hand(doc: &Value, rows: &Value, ct: &[u8], aad: &[u8]) -> Vec<u8> {
    assert_eq!(&ct[..2], b"EV");
    let version = ct[2];
    assert!(version == 2 || version == 3, "compact version {version}");
    let suite = ct[3];
    let nonce_len = if suite == 1 { 12 } else { 24 };
    let id = u64::from_be_bytes(ct[4..12].try_into().unwrap());
    let nonce_start = if version == 3 { 44 } else { 12 };
    let value_commitment = (version == 3).then(|| &ct[12..44]);
    let nonce = &ct[nonce_start..nonce_start + nonce_len];
    let body = &ct[nonce_start + nonce_len..];
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"].as_u64() == Some(id))
        .unwrap();
    let (key_id, version) = (
        row["key_id"].as_str().unwrap(),
        row["key_version"].as_str().unwrap(),
    );
    let wrapped = unhex(row["wrapped_dek"].as_str().unwrap());
    let kek = unhex(doc["keyring"]["versions"][version]["kek"].as_str().unwrap());
    let mut ad = b"envelope.local.wrap.v1".to_vec();
    ad.extend_from_slice(&(key_id.len() as u16).to_be_bytes());
    ad.extend_from_slice(key_id.as_bytes());
    ad.push(version.len() as u8);
    ad.extend_from_slice(version.as_bytes());
    // A bound row's wrap binds its id, suite and commitment (keys in byte order).
    if row["bound"].as_bool().unwrap_or(false) {
        let pairs = [
            (
                "envelope:commitment",
                row["commitment"].as_str().unwrap().to_owned(),
            ),
            ("envelope:dek_id", id.to_string()),
            ("envelope:suite", row["suite"].as_str().unwrap().to_owned()),
        ];
        ad.extend_from_slice(&(pairs.len() as u16).to_be_bytes());
        for (k, v) in pairs {
            ad.extend_from_slice(&(k.len() as u16).to_be_bytes());
            ad.extend_from_slice(k.as_bytes());
            ad.extend_from_slice(&(v.len() as u16).to_be_bytes());
            ad.extend_from_slice(v.as_bytes());
        }
    } else {
        ad.extend_from_slice(&[0, 0]);
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
    assert_eq!(hex::encode(&dek), row["dek"].as_str().unwrap());
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"envelope.v1"), &dek);
    let mut key = [0u8; 32];
    let mut commitment = [0u8; 32];
    hk.expand(
        &[b"envelope.v1.aead-key".as_slice(), &[suite]].concat(),
        &mut key,
    )
    .unwrap();
    hk.expand(
        &[b"envelope.v1.commitment".as_slice(), &[suite]].concat(),
        &mut commitment,
    )
    .unwrap();
    assert_eq!(hex::encode(commitment), row["commitment"].as_str().unwrap());
    if let Some(carried) = value_commitment {
        assert_eq!(carried, commitment, "the value's commitment is its DEK's");
    }
    let mut body_ad = ct[..12].to_vec();
    body_ad.extend_from_slice(&commitment);
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
fn committed_compact_vectors_are_current() {
    let committed = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testvectors/compact.json"),
    )
    .unwrap();
    assert!(
        committed == envelope_core::vectors::compact::generate_file(),
        "testvectors/compact.json is stale: run cargo run -p envelope-core --features testing --example generate_testvectors"
    );
}

#[test]
fn every_compact_vector_has_its_expected_outcome() {
    let doc = load();
    let dir = tempfile::tempdir().unwrap();
    let ring = common::vectors_keyring(&doc, dir.path());
    let key_id = doc["keyring"]["key_id"].as_str().unwrap();
    let rt = runtime();
    let vectors = doc["vectors"].as_array().unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let ct = unhex(v["ciphertext"].as_str().unwrap());
        let aad = unhex(v["aad"].as_str().unwrap());
        let rows = rows_with_edit(&doc, &v["store_edit"]);
        // Fresh envelope and store per vector: nothing cached between vectors.
        let env = reader(&ring, key_id, store_of(&rt, &rows));
        let got = rt.block_on(env.decrypt(&ct, &aad));
        match v["expected"].as_str().unwrap() {
            "ok" => {
                let plaintext = unhex(v["plaintext"].as_str().unwrap());
                assert_eq!(got.unwrap(), plaintext, "{name}");
                let info = inspect_compact(&ct).unwrap();
                assert_eq!(info.dek_id.get(), v["dek_id"].as_u64().unwrap(), "{name}");
                assert_eq!(info.suite.name(), v["suite"].as_str().unwrap(), "{name}");
                let version = envelope_core::compact::CompactVersion::from_byte(ct[2]).unwrap();
                assert_eq!(info.overhead, version.overhead(info.suite), "{name}");
                assert_eq!(info.committing, version.is_committing(), "{name}");
                let rows_json =
                    serde_json::to_value(envelope_core::compact::stored_deks_to_json(&rows))
                        .unwrap();
                let mut rows_with_deks = rows_json.clone();
                for (r, orig) in rows_with_deks
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .zip(doc["dek_store"].as_array().unwrap())
                {
                    r["dek"] = orig["dek"].clone();
                }
                assert_eq!(
                    decrypt_by_hand(&doc, &rows_with_deks, &ct, &aad),
                    plaintext,
                    "{name} by hand"
                );
                if let Some(text) = v["ciphertext_text"].as_str() {
                    assert!(text.starts_with(&format!("ev{}:", ct[2])), "{name}");
                    assert_eq!(format::to_text(&ct), text, "{name}");
                    assert_eq!(
                        rt.block_on(env.decrypt_text(text, &aad)).unwrap(),
                        plaintext,
                        "{name} text"
                    );
                }
            }
            expected => {
                let err = got.expect_err(name);
                assert_eq!(err.kind().as_str(), expected, "{name}: {err}");
                kinds.insert(expected.to_owned());
            }
        }
    }
    for kind in [
        "decryption_failed",
        "malformed",
        "unsupported_format_version",
        "unsupported_suite",
        "dek_not_found",
        "key_version_destroyed",
    ] {
        assert!(kinds.contains(kind), "no negative vector expects {kind}");
    }
    for t in doc["text_vectors"].as_array().unwrap() {
        let env = reader(
            &ring,
            key_id,
            store_of(&rt, &rows_with_edit(&doc, &Value::Null)),
        );
        let err = rt
            .block_on(env.decrypt_text(t["text"].as_str().unwrap(), b""))
            .unwrap_err();
        assert_eq!(
            err.kind().as_str(),
            t["expected"].as_str().unwrap(),
            "{}",
            t["name"]
        );
    }
}

#[test]
fn an_eleven_byte_value_takes_83_bytes_committed_or_51_in_version_2() {
    let fx = Fixture::new();
    let rt = runtime();
    let store = Arc::new(MemoryDekStore::new());
    let env = Envelope::builder(LocalKms::new(LocalKeyring::new(fx.path())), "default")
        .dek_store(store.clone())
        .build()
        .unwrap();
    let ct = rt
        .block_on(env.encrypt(b"123-45-6789", b"t.ssn:42"))
        .unwrap();
    assert_eq!(ct.len(), 83, "11-byte SSN, AES-256-GCM, version 3");
    assert_eq!(compact_overhead(Suite::Aes256Gcm), 72);
    let text = rt
        .block_on(env.encrypt_to_text(b"123-45-6789", b"t.ssn:42"))
        .unwrap();
    assert_eq!(text.len(), 4 + 111, "{text}");
    assert!(text.starts_with("ev3:"));
    let sixty_four = rt.block_on(env.encrypt(&[7; 64], b"")).unwrap();
    assert_eq!(sixty_four.len(), 136);
    // Version 2, on request: 40 bytes of overhead, not key-committing.
    let v2 = Envelope::builder(LocalKms::new(LocalKeyring::new(fx.path())), "default")
        .dek_store(store.clone())
        .compact_version(CompactVersion::V2)
        .build()
        .unwrap();
    let v2_ct = rt
        .block_on(v2.encrypt(b"123-45-6789", b"t.ssn:42"))
        .unwrap();
    assert_eq!((v2_ct.len(), v2_ct[2]), (51, 2));
    assert!(
        rt.block_on(v2.encrypt_to_text(b"123-45-6789", b""))
            .unwrap()
            .starts_with("ev2:")
    );
    assert_eq!(
        rt.block_on(env.decrypt(&v2_ct, b"t.ssn:42")).unwrap(),
        b"123-45-6789"
    );
    // The v1 form of the same value, for comparison: 138 bytes of overhead.
    let v1 = fx.envelope(CachePolicy::default());
    assert_eq!(
        rt.block_on(v1.encrypt(b"123-45-6789", b"")).unwrap().len(),
        149
    );
    // Both forms decrypt through the store-backed envelope.
    let v1_ct = rt.block_on(v1.encrypt(b"v1 value", b"a")).unwrap();
    assert_eq!(rt.block_on(env.decrypt(&v1_ct, b"a")).unwrap(), b"v1 value");
    assert_eq!(
        rt.block_on(env.decrypt(&ct, b"t.ssn:42")).unwrap(),
        b"123-45-6789"
    );
    let xchacha = Envelope::builder(LocalKms::new(LocalKeyring::new(fx.path())), "default")
        .suite(Suite::XChaCha20Poly1305)
        .dek_store(store.clone())
        .build()
        .unwrap();
    let x = rt.block_on(xchacha.encrypt(b"123-45-6789", b"")).unwrap();
    assert_eq!(x.len(), 11 + 84);
    assert_eq!(rt.block_on(env.decrypt(&x, b"")).unwrap(), b"123-45-6789");
    // One DEK, one store row, for all of them (per suite and writer).
    assert_eq!(store.edit(|rows| rows.len()), 3);
}

#[test]
fn an_envelope_can_refuse_version_2_values() {
    let fx = Fixture::new();
    let rt = runtime();
    let store = Arc::new(MemoryDekStore::new());
    let builder = || {
        Envelope::builder(LocalKms::new(LocalKeyring::new(fx.path())), "default")
            .dek_store(store.clone())
    };
    let v2 = builder()
        .compact_version(CompactVersion::V2)
        .build()
        .unwrap();
    let old = rt.block_on(v2.encrypt(b"old", b"a")).unwrap();
    let strict = builder().accept_compact_v2(false).build().unwrap();
    let err = rt.block_on(strict.decrypt(&old, b"a")).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormatVersion(2)), "{err}");
    assert!(
        rt.block_on(strict.decrypt_text(&format::to_text(&old), b"a"))
            .is_err()
    );
    // Its re-encryption is version 3, which it reads.
    let moved = rt.block_on(v2.reencrypt(&old, b"a")).unwrap();
    assert_eq!(moved[2], 2, "a v2 writer re-encrypts into v2");
    let moved = rt
        .block_on(builder().build().unwrap().reencrypt(&old, b"a"))
        .unwrap();
    assert_eq!(moved[2], 3);
    assert_eq!(rt.block_on(strict.decrypt(&moved, b"a")).unwrap(), b"old");
    // Refusing v2 and writing it contradict each other.
    let err = builder()
        .compact_version(CompactVersion::V2)
        .accept_compact_v2(false)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

#[test]
fn a_cold_reader_makes_one_store_read_and_one_unwrap_even_when_concurrent() {
    let fx = Fixture::new();
    let rt = runtime();
    let store = Arc::new(MemoryDekStore::new());
    let writer = Envelope::builder(LocalKms::new(LocalKeyring::new(fx.path())), "default")
        .dek_store(store.clone())
        .build()
        .unwrap();
    let values: Vec<Vec<u8>> = (0..2000)
        .map(|i| {
            rt.block_on(
                writer.encrypt(format!("value {i}").as_bytes(), &i.to_string().into_bytes()),
            )
            .unwrap()
        })
        .collect();
    let s = writer.stats();
    assert_eq!(
        (s.kms_generate_calls, s.dek_store_writes, s.dek_store_reads),
        (1, 1, 0)
    );
    let reads_before = store.reads();
    let reader = Envelope::builder(LocalKms::new(LocalKeyring::new(fx.path())), "default")
        .dek_store(store.clone())
        .build()
        .unwrap();
    let values = Arc::new(values);
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..16usize {
            let (reader, values) = (reader.clone(), values.clone());
            tasks.push(tokio::spawn(async move {
                for i in (t..2000).step_by(16) {
                    let pt = reader
                        .decrypt(&values[i], &i.to_string().into_bytes())
                        .await
                        .unwrap();
                    assert_eq!(pt, format!("value {i}").into_bytes());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let s = reader.stats();
    assert_eq!(s.kms_unwrap_calls, 1, "{s:?}");
    assert_eq!(s.dek_store_reads, 1, "{s:?}");
    assert_eq!(store.reads() - reads_before, 1);
    assert_eq!(s.decrypt_cache_hits + s.decrypt_cache_misses, 2000);
}

#[test]
fn compact_values_need_a_store_and_cannot_be_rewrapped_one_by_one() {
    let fx = Fixture::new();
    let rt = runtime();
    let store = Arc::new(MemoryDekStore::new());
    let env = Envelope::builder(LocalKms::new(LocalKeyring::new(fx.path())), "default")
        .dek_store(store.clone())
        .build()
        .unwrap();
    let ct = rt.block_on(env.encrypt(b"x", b"")).unwrap();
    let plain = fx.envelope(CachePolicy::default());
    let err = rt.block_on(plain.decrypt(&ct, b"")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("DEK store"), "{err}");
    let err = rt.block_on(env.rewrap(&ct)).unwrap_err();
    assert!(err.to_string().contains("--dek-store"), "{err}");
    let err = Envelope::inspect(&ct).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("DEK 1"), "{err}");
    assert!(Envelope::inspect_text(&format::to_text(&ct)).is_err());
    // Re-encryption moves the value to a new DEK (a new row), the same plaintext.
    let again = rt.block_on(env.reencrypt(&ct, b"")).unwrap();
    let (a, b) = (
        inspect_compact(&ct).unwrap().dek_id,
        inspect_compact(&again).unwrap().dek_id,
    );
    assert_ne!(a, b);
    assert_eq!(rt.block_on(env.decrypt(&again, b"")).unwrap(), b"x");
    assert_eq!(store.edit(|rows| rows.len()), 2);
    // A retired row refuses; re-activating restores.
    rt.block_on(store.set_state(a, envelope_core::DekState::Retired))
        .unwrap();
    let cold = Envelope::builder(LocalKms::new(LocalKeyring::new(fx.path())), "default")
        .dek_store(store.clone())
        .build()
        .unwrap();
    let err = rt.block_on(cold.decrypt(&ct, b"")).unwrap_err();
    assert!(
        matches!(err, Error::DekNotFound { id, retired: true } if id == a.get()),
        "{err}"
    );
    assert!(err.to_string().contains("retired"), "{err}");
}

#[test]
fn rotating_the_store_moves_every_dek_and_no_value() {
    let fx = Fixture::new();
    let rt = runtime();
    let store = Arc::new(MemoryDekStore::new());
    let ring = LocalKeyring::new(fx.path());
    let mut values = Vec::new();
    for process in 0..5 {
        // Each "process" writes its own DEK row.
        let env = Envelope::builder(LocalKms::new(ring.clone()), "default")
            .dek_store(store.clone())
            .build()
            .unwrap();
        for i in 0..10 {
            let aad = format!("{process}/{i}");
            values.push((
                aad.clone(),
                rt.block_on(env.encrypt(b"secret", aad.as_bytes())).unwrap(),
            ));
        }
    }
    ring.rotate("default").unwrap();
    let rotator = Envelope::builder(LocalKms::new(ring.clone()), "default")
        .dek_store(store.clone())
        .build()
        .unwrap();
    let rows = rt.block_on(store.list(None, 100)).unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.bound));
    let mut batch = rows.clone();
    // A row of another provider fails alone; the others still move.
    let mut foreign = batch[0].clone();
    foreign.wrapped.provider = envelope_core::Provider::VaultTransit;
    batch.insert(2, foreign);
    let mut moved = rt.block_on(rotator.rewrap_wrapped(&batch));
    assert_eq!(rotator.stats().kms_rewrap_calls, 5, "one call per DEK");
    let refused = moved.remove(2);
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::KeyNotOwned);
    let changes: Vec<_> = rows
        .iter()
        .zip(moved)
        .map(|(row, new)| envelope_core::compact::WrappedDekChange {
            id: row.id,
            old: row.wrapped.clone(),
            new: new.unwrap().expect("moved to v2"),
        })
        .collect();
    let checkpoint = envelope_core::compact::StoreCheckpoint {
        job: "t".into(),
        last_id: rows[4].id,
        progress: "{}".into(),
    };
    assert_eq!(
        rt.block_on(store.apply_rewraps(&changes, &checkpoint))
            .unwrap(),
        5
    );
    // Already current: nothing moves.
    let rows = rt.block_on(store.list(None, 100)).unwrap();
    assert!(rows.iter().all(|r| r.wrapped.key_version == "2"));
    let again = rt.block_on(rotator.rewrap_wrapped(&rows));
    assert!(again.into_iter().all(|r| r.unwrap().is_none()));
    // Version 1 destroyed: every value still decrypts through the rotated store.
    ring.destroy_version("default", 1).unwrap();
    let cold = Envelope::builder(LocalKms::new(ring.clone()), "default")
        .dek_store(store.clone())
        .build()
        .unwrap();
    for (aad, ct) in &values {
        assert_eq!(
            rt.block_on(cold.decrypt(ct, aad.as_bytes())).unwrap(),
            b"secret"
        );
    }
    assert_eq!(cold.stats().kms_unwrap_calls, 5);
}

#[test]
fn rows_are_bound_to_their_ids_and_a_rotation_binds_rows_written_before() {
    let fx = Fixture::new();
    let rt = runtime();
    let store = Arc::new(MemoryDekStore::new());
    let ring = LocalKeyring::new(fx.path());
    let kms = LocalKms::new(ring.clone());
    let env = Envelope::builder(LocalKms::new(ring.clone()), "default")
        .dek_store(store.clone())
        .build()
        .unwrap();
    let ct = rt.block_on(env.encrypt(b"bound", b"a")).unwrap();
    let row = store.edit(|rows| rows[&1].clone());
    assert!(row.bound);
    let base = envelope_core::EncryptionContext::new();
    use envelope_core::Kms;
    // The genuine wrap, copied into row 7 (same suite and commitment), does not unwrap there.
    let mut copy = row.clone();
    copy.id = envelope_core::DekId::new(7).unwrap();
    let err = rt
        .block_on(kms.unwrap_dek(&copy.wrapped, &copy.unwrap_context(&base)))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed);
    // Nor under another suite or without its binding.
    let mut other_suite = row.clone();
    other_suite.suite = Suite::XChaCha20Poly1305;
    assert!(
        rt.block_on(kms.unwrap_dek(&row.wrapped, &other_suite.unwrap_context(&base)))
            .is_err()
    );
    assert!(rt.block_on(kms.unwrap_dek(&row.wrapped, &base)).is_err());

    // A row written before rows were bound: its DEK wrapped under the bare context.
    let dek = rt
        .block_on(kms.unwrap_dek(&row.wrapped, &row.unwrap_context(&base)))
        .unwrap();
    let legacy = rt.block_on(kms.wrap_dek("default", &dek, &base)).unwrap();
    store.edit(|rows| {
        let r = rows.get_mut(&1).unwrap();
        r.wrapped = legacy.clone();
        r.bound = false;
    });
    let cold = || {
        Envelope::builder(LocalKms::new(ring.clone()), "default")
            .dek_store(store.clone())
            .build()
            .unwrap()
    };
    assert_eq!(rt.block_on(cold().decrypt(&ct, b"a")).unwrap(), b"bound");
    // The next rotation binds it, even with no KEK rotation in between.
    let unbound = store.edit(|rows| rows[&1].clone());
    let moved = rt.block_on(cold().rewrap_wrapped(std::slice::from_ref(&unbound)));
    let new = moved
        .into_iter()
        .next()
        .unwrap()
        .unwrap()
        .expect("bound anew");
    let changes = [envelope_core::compact::WrappedDekChange {
        id: unbound.id,
        old: unbound.wrapped.clone(),
        new,
    }];
    let checkpoint = envelope_core::compact::StoreCheckpoint {
        job: "bind".into(),
        last_id: unbound.id,
        progress: "{}".into(),
    };
    assert_eq!(
        rt.block_on(store.apply_rewraps(&changes, &checkpoint))
            .unwrap(),
        1
    );
    let rebound = store.edit(|rows| rows[&1].clone());
    assert!(rebound.bound);
    assert_eq!(rt.block_on(cold().decrypt(&ct, b"a")).unwrap(), b"bound");
    // A bound row whose flag is cleared fails: the flag only picks the context.
    store.edit(|rows| rows.get_mut(&1).unwrap().bound = false);
    assert_eq!(
        rt.block_on(cold().decrypt(&ct, b"a")).unwrap_err().kind(),
        ErrorKind::DecryptionFailed
    );

    // The binding's keys are reserved.
    let mut context = envelope_core::EncryptionContext::new();
    context.insert("envelope:dek_id".into(), "1".into());
    let err = Envelope::builder(LocalKms::new(ring.clone()), "default")
        .encryption_context(context)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("reserved"), "{err}");
}
