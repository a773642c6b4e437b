//! The jobs over directories of files, the small subcommands, and bad arguments: one line
//! on stderr and a non-zero exit, never a panic or a partial write.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !is_leftover(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A replacement's temporary file that a SIGKILL left behind (the job skips them; the file
/// it was to replace is intact or already replaced).
fn is_leftover(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(".envelope-tmp-"))
}

fn rel(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir)
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

/// Files (text and binary, nested) encrypted with their relative path as AAD.
async fn fill_dir(keyring: &Keyring, dir: &Path, n: usize, per_dek: u64) {
    let env = keyring.envelope(per_dek);
    for i in 0..n {
        let rel = format!("d{}/f{i}.ct", i % 4);
        let pt = format!("file {i}");
        let bytes = if i % 2 == 0 {
            env.encrypt_to_text(pt.as_bytes(), rel.as_bytes())
                .await
                .unwrap()
                .into_bytes()
        } else {
            env.encrypt(pt.as_bytes(), rel.as_bytes()).await.unwrap()
        };
        write_file(&dir.join(&rel), &bytes);
    }
}

fn read_ct(p: &Path) -> Vec<u8> {
    let bytes = std::fs::read(p).unwrap();
    if bytes.starts_with(b"ev") {
        binary(std::str::from_utf8(&bytes).unwrap())
    } else {
        bytes
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn files_census_rewrap_reencrypt_and_a_killed_run() {
    let keyring = Keyring::new();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    fill_dir(&keyring, dir, 300, 1).await;
    let before: Vec<Vec<u8>> = files_under(dir).iter().map(|p| read_ct(p)).collect();
    keyring.rotate();
    let d = dir.to_str().unwrap();

    let census = json_of(&envelope(&["census", "--dir", d, "--json"]), 0);
    assert_eq!(census["scanned"], 300);
    assert_eq!(census["groups"][0]["key_version"], "1");
    assert_eq!(census["groups"][0]["deks"], 300);

    // Killed mid-run: every file is the old or the new ciphertext, never a torn one.
    let mut child = command(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--dir",
        d,
        "--max-rate",
        "100",
        "--batch-size",
        "10",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let mid = json_of(&envelope(&["census", "--dir", d, "--json"]), 0);
    assert_eq!(
        mid["scanned"], 300,
        "no file lost, none torn, no temp file counted"
    );
    assert!(mid["unreadable"].as_object().unwrap().is_empty(), "{mid}");
    assert_eq!(
        mid["groups"].as_array().unwrap().len(),
        2,
        "killed mid-run: {mid}"
    );

    let out = envelope(&["rewrap", "--key", &keyring.uri, "--dir", d, "--json"]);
    let summary = json_of(&out, 0)[0].clone();
    assert_eq!(summary["total"]["scanned"], 300);
    assert!(summary["total"]["already_current"].as_u64().unwrap() > 0);
    let reader = keyring.envelope(1);
    for (p, b) in files_under(dir).iter().zip(&before) {
        let now = read_ct(p);
        assert_eq!(header(&now).key_version, "2");
        assert_eq!(stable_and_body(&now), stable_and_body(b), "{}", p.display());
        let text = std::fs::read(p).unwrap().starts_with(b"ev");
        assert_eq!(
            text,
            rel(dir, p).trim_start_matches("d").starts_with(['0', '2']),
            "form kept"
        );
        assert!(reader.decrypt(&now, rel(dir, p).as_bytes()).await.is_ok());
    }
    let again = json_of(
        &envelope(&["rewrap", "--key", &keyring.uri, "--dir", d, "--json"]),
        0,
    );
    assert_eq!(again[0]["total"]["changed"], 0);

    // Re-encrypt the files of one DEK: new body, same plaintext, AAD rebuilt from {path}.
    let target = &files_under(dir)[5];
    let fingerprint = header(&read_ct(target)).dek_fingerprint;
    let dry = envelope(&[
        "reencrypt",
        "--key",
        &keyring.uri,
        "--dir",
        d,
        "--dek",
        &fingerprint,
        "--aad",
        "{path}",
        "--dry-run",
    ]);
    assert!(dry.status.success());
    assert_eq!(read_ct(target), read_ct(target));
    let out = envelope(&[
        "reencrypt",
        "--key",
        &keyring.uri,
        "--dir",
        d,
        "--dek",
        &fingerprint,
        "--aad",
        "{path}",
        "--json",
    ]);
    let summary = json_of(&out, 0)[0].clone();
    assert_eq!(summary["total"]["changed"], 1);
    assert_eq!(summary["total"]["skipped"], 299);
    let now = read_ct(target);
    assert_ne!(header(&now).dek_fingerprint, fingerprint);
    assert_ne!(stable_and_body(&now).1, stable_and_body(&before[5]).1);
    let plain = reader
        .decrypt(&now, rel(dir, target).as_bytes())
        .await
        .unwrap();
    assert_eq!(
        plain,
        format!(
            "file {}",
            rel(dir, target).split(['f', '.']).nth(1).unwrap()
        )
        .into_bytes()
    );
    assert!(
        !files_under(dir)
            .iter()
            .any(|p| rel(dir, p).contains(".envelope-tmp-"))
    );

    // A wrong AAD template fails every selected file, leaving it untouched (exit 3).
    let out = envelope(&[
        "reencrypt",
        "--key",
        &keyring.uri,
        "--dir",
        d,
        "--all",
        "--aad",
        "x{name}",
        "--json",
    ]);
    let summary = json_of(&out, 3)[0].clone();
    assert_eq!(summary["total"]["failures"]["decryption_failed"], 300);
}

#[test]
fn keys_encrypt_decrypt_inspect() {
    let keyring = Keyring::new();
    let tmp = tempfile::tempdir().unwrap();
    let pt = tmp.path().join("pt");
    let ct = tmp.path().join("ct");
    let back = tmp.path().join("back");
    std::fs::write(&pt, b"top secret").unwrap();
    let run = |args: &[&str]| {
        let out = envelope(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let (p, c, b) = (
        pt.to_str().unwrap(),
        ct.to_str().unwrap(),
        back.to_str().unwrap(),
    );
    run(&[
        "encrypt",
        "--key",
        &keyring.uri,
        "--aad",
        "a",
        "-i",
        p,
        "-o",
        c,
        "--text",
    ]);
    let inspect = run(&["inspect", c, "--json"]);
    let info: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(info["form"], "text");
    assert_eq!(info["key_version"], "1");
    assert_eq!(info["plaintext_len"], 10);
    run(&[
        "decrypt",
        "--key",
        &keyring.uri,
        "--aad",
        "a",
        "-i",
        c,
        "-o",
        b,
    ]);
    assert_eq!(std::fs::read(&back).unwrap(), b"top secret");
    let out = envelope(&["decrypt", "--key", &keyring.uri, "--aad", "b", "-i", c]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no plaintext on a failed decryption");

    let second = format!("{}#orders", keyring.uri);
    run(&["keys", "create", &second]);
    run(&["keys", "rotate", &second]);
    let list: serde_json::Value =
        serde_json::from_str(&run(&["keys", "list", &keyring.uri, "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["key_id"], "orders");
    assert_eq!(list[1]["current_version"], "2");
    run(&["keys", "disable", &second, "--version", "1"]);
    let d: serde_json::Value =
        serde_json::from_str(&run(&["keys", "describe", &second, "--json"])).unwrap();
    assert_eq!(d["versions"][0]["state"], "disabled");
    run(&["keys", "enable", &second, "--version", "1"]);
    run(&["keys", "destroy", &second, "--version", "1"]);
    let d: serde_json::Value =
        serde_json::from_str(&run(&["keys", "describe", &second, "--json"])).unwrap();
    assert_eq!(d["versions"][0]["state"], "destroyed");
}

#[test]
fn help_is_complete() {
    let top = String::from_utf8(envelope(&["--help"]).stdout).unwrap();
    for word in [
        "keys",
        "encrypt",
        "decrypt",
        "inspect",
        "census",
        "rewrap",
        "reencrypt",
        "retire",
        "Exit codes",
    ] {
        assert!(top.contains(word), "--help lacks {word}");
    }
    for sub in [
        vec!["keys", "--help"],
        vec!["keys", "create", "--help"],
        vec!["keys", "describe", "--help"],
        vec!["encrypt", "--help"],
        vec!["decrypt", "--help"],
        vec!["inspect", "--help"],
        vec!["census", "--help"],
        vec!["rewrap", "--help"],
        vec!["reencrypt", "--help"],
        vec!["retire", "--help"],
    ] {
        let out = envelope(&sub);
        assert!(out.status.success(), "{sub:?}");
        assert!(out.stdout.len() > 150, "{sub:?}: help too short");
    }
}

/// Asserts one line on stderr, the exit code, and no panic.
fn one_line_error(args: &[&str], code: i32, needle: &str) {
    let out = envelope(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr:?} lacks {needle:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_give_one_clear_line() {
    let client = db().await;
    let keyring = Keyring::new();
    let table = unique("args");
    fill_table(&client, &keyring.envelope(100), &table, 20).await;
    client
        .batch_execute(&format!(
            "UPDATE {table} SET note = 'plain ' || id; CREATE TABLE {table}_nopk (ssn text)"
        ))
        .await
        .unwrap();
    let before = ssn_column(&client, &table).await;
    let url = pg_url();
    let job = |table: &str, column: &str| -> Vec<String> {
        [
            "rewrap",
            "--key",
            &keyring.uri,
            "--db",
            &url,
            "--table",
            table,
            "--column",
            column,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let as_strs = |v: &Vec<String>| -> Vec<String> { v.clone() };
    let check = |v: Vec<String>, code: i32, needle: &str| {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        one_line_error(&refs, code, needle);
    };
    check(as_strs(&job("no_such_table", "ssn")), 1, "does not exist");
    check(as_strs(&job(&table, "no_such_column")), 1, "has no column");
    check(as_strs(&job(&table, "id")), 1, "text, varchar or bytea");
    check(
        as_strs(&job(&table, "note")),
        1,
        "holds no envelope ciphertexts",
    );
    check(
        as_strs(&job(&format!("{table}_nopk"), "ssn")),
        1,
        "no primary key",
    );
    let mut gcp = job(&table, "ssn");
    gcp[2] = "gcp-kms://projects/p/locations/l/keyRings/r".into();
    check(gcp, 1, "cryptoKeys/K");
    let mut bad_db = job(&table, "ssn");
    bad_db[4] = "postgres://nobody@127.0.0.1:1/none".into();
    check(bad_db, 1, "cannot connect to the database");
    one_line_error(&["rewrap", "--key", &keyring.uri], 2, "name a store");
    one_line_error(
        &[
            "reencrypt",
            "--key",
            &keyring.uri,
            "--dir",
            ".",
            "--aad",
            "",
        ],
        2,
        "needs a filter",
    );
    one_line_error(
        &[
            "reencrypt",
            "--key",
            &keyring.uri,
            "--dir",
            ".",
            "--all",
            "--aad",
            "{id",
        ],
        1,
        "unclosed",
    );
    one_line_error(
        &[
            "reencrypt",
            "--key",
            &keyring.uri,
            "--dir",
            ".",
            "--all",
            "--aad",
            "{id}",
        ],
        1,
        "{path}",
    );
    one_line_error(
        &["keys", "rotate", "vault://127.0.0.1:1/transit/keys/k"],
        1,
        "local keyring",
    );
    one_line_error(&["inspect", "/no/such/file"], 1, "cannot read");
    assert_eq!(
        ssn_column(&client, &table).await,
        before,
        "no partial write"
    );
}

/// `retire` must not destroy a version that a value still needs because the value could not
/// be opened to check its label: a value under a *disabled* version used to count as
/// "unreadable" and let `retire --action destroy` destroy the version it needs.
#[test]
fn retire_refuses_a_version_whose_values_could_not_be_checked() {
    let keyring = Keyring::new();
    let dir = tempfile::tempdir().unwrap();
    let value = dir.path().join("a.ev");
    let out = command(&[
        "encrypt",
        "--key",
        &keyring.uri,
        "-o",
        &value.display().to_string(),
    ])
    .stdin(std::process::Stdio::piped())
    .spawn()
    .and_then(|mut child| {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"still needed")?;
        child.wait_with_output()
    })
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    keyring.rotate();
    let out = envelope(&["keys", "disable", &keyring.uri, "--version", "1"]);
    assert!(out.status.success(), "{out:?}");
    let d = dir.path().display().to_string();
    let out = envelope(&[
        "retire",
        "--key",
        &keyring.uri,
        "--version",
        "1",
        "--action",
        "destroy",
        "--dir",
        &d,
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a.ev"), "{stderr}");
    let census = envelope(&[
        "census",
        "--dir",
        &d,
        "--verify-with",
        &keyring.uri,
        "--json",
    ]);
    let census = json_of(&census, 0);
    assert_eq!(census["unverified"][0]["key_version"], "1", "{census}");
    // Nothing was destroyed: enabling the version makes the value readable again.
    let out = envelope(&["keys", "enable", &keyring.uri, "--version", "1"]);
    assert!(out.status.success(), "{out:?}");
    let out = envelope(&[
        "decrypt",
        "--key",
        &keyring.uri,
        "-i",
        &value.display().to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"still needed");
}
