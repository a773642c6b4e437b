//! `--parquet DIR`: the key material sidecars of Parquet modular encryption as a store.
//! The sidecars are written here in pyarrow's layout with keys wrapped as
//! `envelope_sdk.parquet` wraps them (the Python tests write real Parquet files through
//! pyarrow and run the same jobs on them); the data files are stand-ins with Parquet's
//! magic, which the store never reads past.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

const AAD_PREFIX: &str = "envelope.parquet.v1:";

/// A sidecar in pyarrow's layout: key reference → key material as a JSON string.
fn sidecar(entries: &[(&str, serde_json::Value)]) -> Vec<u8> {
    let top: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(r, m)| ((*r).to_owned(), json!(m.to_string())))
        .collect();
    serde_json::to_vec(&top).unwrap()
}

fn material(master: &str, wrapped: &str, footer: bool) -> serde_json::Value {
    json!({
        "keyMaterialType": "PKMT1",
        "isFooterKey": footer,
        "masterKeyID": master,
        "wrappedDEK": wrapped,
        "doubleWrapping": false,
    })
}

fn sidecar_path(data: &Path) -> std::path::PathBuf {
    let name = data.file_name().unwrap().to_string_lossy();
    data.with_file_name(format!("_KEY_MATERIAL_FOR_{name}.json"))
}

fn wrapped_keys(path: &Path) -> Vec<(String, String, String)> {
    let top: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    top.iter()
        .map(|(r, m)| {
            let m: serde_json::Value = serde_json::from_str(m.as_str().unwrap()).unwrap();
            (
                r.clone(),
                m["masterKeyID"].as_str().unwrap().to_owned(),
                m["wrappedDEK"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn sidecars_rotate_and_data_files_stay_byte_identical() {
    let keyring = Keyring::new();
    let env = keyring.envelope(1_000);
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    let d = root.to_str().unwrap();
    let mut keys = Vec::new();
    let mut data_files = Vec::new();
    for i in 0..3 {
        let data = root.join(format!("year=202{i}/part-{i}.parquet"));
        let mut body = b"PARE".to_vec();
        body.extend(pseudo_random(100, i));
        body.extend(b"PARE");
        write_file(&data, &body);
        let mut entries = Vec::new();
        for (reference, master, footer) in
            [("footerKey", "footer", true), ("columnKey0", "pii", false)]
        {
            let key = pseudo_random(32, 100 + i);
            let aad = format!("{AAD_PREFIX}{master}");
            let wrapped = env.encrypt_to_text(&key, aad.as_bytes()).await.unwrap();
            keys.push((data.clone(), reference, master, key));
            entries.push((reference, material(master, &wrapped, footer)));
        }
        write_file(&sidecar_path(&data), &sidecar(&entries));
        data_files.push((data, body));
    }
    // Hadoop's checksum of one sidecar: stale once the sidecar changes.
    let crc = root.join("year=2020/._KEY_MATERIAL_FOR_part-0.parquet.json.crc");
    write_file(&crc, b"crc");
    // What a census must count as unreadable, and a rewrap leave alone.
    let plain = root.join("plain/p.parquet");
    write_file(&plain, b"PAR1 not encrypted PAR1");
    let internal = root.join("internal/i.parquet");
    write_file(&internal, b"PARE key material inside PARE");
    let corrupt = root.join("bad/c.parquet");
    write_file(&corrupt, b"PARE ................. PARE");
    write_file(&sidecar_path(&corrupt), b"{\"footerKey\": \"{not json\"}");
    let foreign = root.join("bad/f.parquet");
    write_file(&foreign, b"PARE ................. PARE");
    let foreign_sidecar = sidecar(&[(
        "footerKey",
        material("k1", "c29tZSBvdGhlciBLTVMncyB3cmFwcGVkIGtleQ==", true),
    )]);
    write_file(&sidecar_path(&foreign), &foreign_sidecar);
    write_file(&root.join("_SUCCESS"), b"");

    let census = json_of(&envelope(&["census", "--parquet", d, "--json"]), 0);
    assert_eq!(census["scanned"], 10, "{census}");
    let groups = census["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{census}");
    assert_eq!(groups[0]["key_version"], "1");
    assert_eq!(groups[0]["count"], 6);
    let unreadable = &census["unreadable"]["malformed"];
    assert_eq!(unreadable["count"], 4, "{census}");
    let text = ok(envelope(&["census", "--parquet", d])).stdout;
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("unreadable (malformed): 4"), "{text}");

    keyring.rotate();
    let before_corrupt = std::fs::read(sidecar_path(&corrupt)).unwrap();
    let out = envelope(&["rewrap", "--key", &keyring.uri, "--parquet", d]);
    // Exit 3: some values failed; each named with why.
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.contains("6 rewrapped"), "{summary}");
    assert!(summary.contains("4 failed"), "{summary}");
    for (what, why) in [
        ("bad/c.parquet", "key material that is not JSON"),
        ("bad/f.parquet#footerKey", "another KMS client wrote it"),
        ("internal/i.parquet", "the key material inside the file"),
        ("plain/p.parquet", "not encrypted"),
    ] {
        let line = summary
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("{what} not named: {summary}"));
        assert!(line.contains(why), "{line}");
    }

    // Data files: not a byte changed. Sidecars: every key under version 2, unwrapping to
    // the same data key, the checksum gone; the bad ones untouched.
    for (data, body) in &data_files {
        assert_eq!(&std::fs::read(data).unwrap(), body);
    }
    assert!(!crc.exists());
    assert_eq!(
        std::fs::read(sidecar_path(&corrupt)).unwrap(),
        before_corrupt
    );
    assert_eq!(
        std::fs::read(sidecar_path(&foreign)).unwrap(),
        foreign_sidecar
    );
    for (data, reference, master, key) in &keys {
        let entries = wrapped_keys(&sidecar_path(data));
        let (_, m, wrapped) = entries.iter().find(|(r, _, _)| r == reference).unwrap();
        assert_eq!(m, master);
        assert_eq!(header(&binary(wrapped)).key_version, "2");
        let aad = format!("{AAD_PREFIX}{master}");
        assert_eq!(
            &env.decrypt_text(wrapped, aad.as_bytes()).await.unwrap()[..],
            &key[..]
        );
    }
    let census = json_of(&envelope(&["census", "--parquet", d, "--json"]), 0);
    assert_eq!(census["groups"][0]["key_version"], "2", "{census}");
    assert_eq!(census["groups"][0]["count"], 6);

    // A second run has nothing to do and writes nothing.
    let sidecars: Vec<Vec<u8>> = data_files
        .iter()
        .map(|(d, _)| std::fs::read(sidecar_path(d)).unwrap())
        .collect();
    envelope(&["rewrap", "--key", &keyring.uri, "--parquet", d]);
    for ((d, _), before) in data_files.iter().zip(&sidecars) {
        assert_eq!(&std::fs::read(sidecar_path(d)).unwrap(), before);
    }

    // Version 1 holds nothing now: retire's check passes.
    ok(envelope(&[
        "retire",
        "--key",
        &keyring.uri,
        "--version",
        "1",
        "--action",
        "check",
        "--parquet",
        d,
    ]));
}

#[tokio::test]
async fn retire_is_refused_while_a_sidecar_holds_the_version() {
    let keyring = Keyring::new();
    let env = keyring.envelope(1_000);
    let tree = tempfile::tempdir().unwrap();
    let data = tree.path().join("part-0.parquet");
    write_file(&data, b"PARE ................. PARE");
    let wrapped = env
        .encrypt_to_text(&[7u8; 32], format!("{AAD_PREFIX}pii").as_bytes())
        .await
        .unwrap();
    write_file(
        &sidecar_path(&data),
        &sidecar(&[("footerKey", material("pii", &wrapped, true))]),
    );
    keyring.rotate();
    let out = envelope(&[
        "retire",
        "--key",
        &keyring.uri,
        "--version",
        "1",
        "--action",
        "check",
        "--parquet",
        tree.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("still under it"), "{stderr}");
    assert!(stderr.contains("part-0.parquet#footerKey"), "{stderr}");
}

#[test]
fn aad_does_not_apply_to_parquet_trees() {
    let keyring = Keyring::new();
    let tree = tempfile::tempdir().unwrap();
    let out = envelope(&[
        "reencrypt",
        "--key",
        &keyring.uri,
        "--all",
        "--parquet",
        tree.path().to_str().unwrap(),
        "--aad",
        "{path}",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--aad does not apply to --parquet"),
        "{stderr}"
    );
}
