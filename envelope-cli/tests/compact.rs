//! The compact form's rotation end to end through the `envelope` binary against a real
//! PostgreSQL (values and DEK store in one database; scripts/test.sh starts it, these tests
//! fail without it): many compact rows (100,000 in the test command; a million with
//! `scripts/test-million.sh`, in release) rotate with one KMS call per DEK and no data row
//! written; the store rotation resumes after a kill; census, retire and reencrypt read
//! compact values through the store.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use envelope::compact::inspect_compact;
use envelope::{CachePolicy, Envelope, LocalKms};
use tokio_postgres::Client;

/// A DEK store URI for a fresh table in the test database.
fn store_uri(table: &str) -> String {
    format!("{}?table={table}", pg_url())
}

/// An envelope writing the compact form into `store`, a new DEK every `per_dek` values.
fn compact_envelope(keyring: &Keyring, store: &str, per_dek: u64) -> Envelope {
    let (kms, key_id) = LocalKms::from_uri(&keyring.uri).unwrap();
    Envelope::builder(kms, key_id)
        .cache_policy(CachePolicy::default().with_max_messages(per_dek))
        .dek_store(envelope::open_dek_store(store).unwrap())
        .build()
        .unwrap()
}

/// A fingerprint of every data row as stored, and of every row version (`xmin` changes
/// with any UPDATE, even one that writes the same bytes).
async fn table_state(client: &Client, table: &str) -> (String, String) {
    let row = client
        .query_one(
            &format!(
                "SELECT md5(string_agg(id || ':' || coalesce(ssn, '-') || ':' || coalesce(encode(doc, 'hex'), '-'), ',' ORDER BY id)),
                        md5(string_agg(xmin::text, ',' ORDER BY id)) FROM {table}"
            ),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Every store row's KEK version.
async fn row_versions(store: &str) -> Vec<String> {
    let store = envelope::open_dek_store(store).unwrap();
    store
        .list(None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.wrapped.key_version)
        .collect()
}

fn census_json(table: &str, store: &str) -> serde_json::Value {
    json_of(
        &envelope(&[
            "census",
            "--db",
            &pg_url(),
            "--table",
            table,
            "--column",
            "ssn",
            "--dek-store",
            store,
            "--json",
        ]),
        0,
    )
}

/// The groups of a census JSON as (key_version, count).
fn groups(census: &serde_json::Value) -> Vec<(String, u64)> {
    census["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key_version"].as_str().unwrap().to_owned(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Rows of the big rotation test: `ENVELOPE_TEST_BIG_ROWS`, 100,000 by
/// default; `scripts/test-million.sh` runs it with 1,000,000 in release.
fn big_rows() -> i64 {
    std::env::var("ENVELOPE_TEST_BIG_ROWS")
        .ok()
        .map(|n| n.parse().expect("ENVELOPE_TEST_BIG_ROWS: a number of rows"))
        .unwrap_or(100_000)
}

#[tokio::test(flavor = "multi_thread")]
async fn many_compact_rows_rotate_with_one_kms_call_per_dek_and_no_row_written() {
    let client = db().await;
    let keyring = Keyring::new();
    let table = unique("compact_big");
    let store = store_uri(&unique("deks"));
    let rows = big_rows();
    let per_dek = rows as u64 / 10;
    let env = compact_envelope(&keyring, &store, per_dek);
    fill_table(&client, &env, &table, rows).await;
    let text_values = (rows - rows / 10) as u64;
    // 0.9 N text and 0.857 N bytea values, a new DEK every N / 10: 18 DEKs, 18 rows.
    let ssn = ssn_column(&client, &table).await;
    let (first_id, first) = ssn
        .iter()
        .find_map(|(id, v)| v.clone().map(|v| (*id, v)))
        .unwrap();
    assert_eq!(binary(&first).len(), plaintext(first_id).len() + 72);
    let deks = row_versions(&store).await.len();
    assert_eq!(deks, 18);
    let before = table_state(&client, &table).await;

    keyring.rotate();
    let census = census_json(&table, &store);
    assert_eq!(groups(&census), [("1".to_owned(), text_values)]);
    assert_eq!(
        groups(&census["dek_store"]),
        [("1".to_owned(), deks as u64)]
    );

    let started = Instant::now();
    let out = envelope(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--dek-store",
        &store,
        "--json",
    ]);
    let elapsed = started.elapsed();
    let summary = &json_of(&out, 0)[0];
    assert_eq!(summary["total"]["scanned"], deks as u64, "{summary}");
    assert_eq!(summary["total"]["changed"], deks as u64);
    assert_eq!(summary["kms_calls"], deks as u64, "one KMS call per DEK");
    assert_eq!(summary["status"], "finished");
    assert_eq!(
        table_state(&client, &table).await,
        before,
        "no data row written (contents and row versions unchanged)"
    );
    assert!(row_versions(&store).await.iter().all(|v| v == "2"));
    eprintln!("rotated {deks} DEKs of {rows} compact rows in {elapsed:?}");

    // Through the store every value is now under version 2; a second run moves nothing.
    let census = census_json(&table, &store);
    assert_eq!(groups(&census), [("2".to_owned(), text_values)]);
    let again = envelope(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--dek-store",
        &store,
        "--json",
    ]);
    assert_eq!(
        json_of(&again, 0)[0]["total"]["already_current"],
        deks as u64
    );

    // Version 1 can go: nothing in the column or the store is under it.
    let out = envelope(&[
        "retire",
        "--key",
        &keyring.uri,
        "--version",
        "1",
        "--action",
        "destroy",
        "--db",
        &pg_url(),
        "--table",
        &table,
        "--column",
        "ssn",
        "--dek-store",
        &store,
        "--json",
    ]);
    json_of(&out, 0);
    let cold = compact_envelope(&keyring, &store, per_dek);
    let aad = column_aad(&table, "ssn");
    for (id, value) in ssn.iter().step_by(997) {
        if let Some(v) = value {
            assert_eq!(
                cold.decrypt_text(v, &aad).await.unwrap(),
                plaintext(*id),
                "row {id}"
            );
        }
    }
    assert_eq!(cold.stats().kms_unwrap_calls as usize, {
        let ids: BTreeSet<u64> = ssn
            .iter()
            .step_by(997)
            .filter_map(|(_, v)| v.as_ref())
            .map(|v| inspect_compact(&binary(v)).unwrap().dek_id.get())
            .collect();
        ids.len()
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_store_rotation_resumes_from_its_checkpoint() {
    let keyring = Keyring::new();
    let store_table = unique("deks_kill");
    let store = store_uri(&store_table);
    // 2,000 DEK rows: one value per DEK.
    let env = compact_envelope(&keyring, &store, 1);
    for i in 0..2000 {
        env.encrypt(format!("v{i}").as_bytes(), b"").await.unwrap();
    }
    keyring.rotate();
    let mut child = command(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--dek-store",
        &store,
        "--batch-size",
        "50",
        "--max-rate",
        "400",
        "--json",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let client = db().await;
    let jobs = format!("{store_table}_jobs");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done: i64 = client
            .query_opt(&format!("SELECT last_id FROM {jobs}"), &[])
            .await
            .ok()
            .flatten()
            .map_or(0, |r| r.get(0));
        if done >= 300 {
            break;
        }
        assert!(Instant::now() < deadline, "the rotation made no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let row = client
        .query_one(&format!("SELECT job, last_id FROM {jobs}"), &[])
        .await
        .unwrap();
    let (job, last): (String, i64) = (row.get(0), row.get(1));
    assert!(last < 2000, "killed too late to test a resume");
    let versions = row_versions(&store).await;
    // Every row up to the checkpoint moved, none after the next page.
    assert!(versions[..last as usize].iter().all(|v| v == "2"));
    assert!(
        versions[(last as usize + 50).min(2000)..]
            .iter()
            .all(|v| v == "1")
    );

    let out = envelope(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--dek-store",
        &store,
        "--resume",
        &job,
        "--json",
    ]);
    let summary = &json_of(&out, 0)[0];
    assert_eq!(summary["job_id"], job.as_str());
    assert_eq!(summary["total"]["scanned"], 2000, "{summary}");
    assert_eq!(summary["this_run"]["scanned"], 2000 - last, "{summary}");
    assert!(row_versions(&store).await.iter().all(|v| v == "2"));
    // A job id the store never saw.
    let out = envelope(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--dek-store",
        &store,
        "--resume",
        "dekstore-1-1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to resume"));
}

#[tokio::test(flavor = "multi_thread")]
async fn census_retire_and_reencrypt_read_compact_values_through_the_store() {
    let client = db().await;
    let keyring = Keyring::new();
    let table = unique("compact_jobs");
    let store = store_uri(&unique("deks_jobs"));
    let env = compact_envelope(&keyring, &store, 400);
    fill_table(&client, &env, &table, 1000).await;
    keyring.rotate();

    // Without the store, compact values are counted as needing it, not as garbage.
    let out = envelope(&[
        "census",
        "--db",
        &pg_url(),
        "--table",
        &table,
        "--column",
        "ssn",
        "--json",
    ]);
    let census = json_of(&out, 0);
    assert_eq!(
        census["unreadable"]["needs_dek_store"]["count"], 900,
        "{census}"
    );
    assert_eq!(census["scanned"], 900);

    // A column rewrap leaves compact values alone (their DEKs rotate in the store).
    let before = table_state(&client, &table).await;
    let out = envelope(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--db",
        &pg_url(),
        "--table",
        &table,
        "--column",
        "ssn",
        "--json",
    ]);
    let summary = &json_of(&out, 0)[0];
    assert_eq!(summary["total"]["skipped"], 900, "{summary}");
    assert_eq!(summary["total"]["changed"], 0);
    assert_eq!(table_state(&client, &table).await, before);

    // Retire refuses while store rows are under version 1, naming a row.
    let out = envelope(&[
        "retire",
        "--key",
        &keyring.uri,
        "--version",
        "1",
        "--action",
        "destroy",
        "--dek-store",
        &store,
    ]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dek 1"), "{stderr}");

    // Re-encrypt the values of one DEK: they move to a new DEK (a new store row).
    let ssn = ssn_column(&client, &table).await;
    let first = ssn.iter().find_map(|(_, v)| v.clone()).unwrap();
    let old_id = inspect_compact(&binary(&first)).unwrap().dek_id;
    let fingerprint = {
        let store = envelope::open_dek_store(&store).unwrap();
        let row = store.get(old_id).await.unwrap().unwrap();
        envelope::compact::header_info(&binary(&first), &row)
            .unwrap()
            .dek_fingerprint
    };
    let out = envelope(&[
        "reencrypt",
        "--key",
        &keyring.uri,
        "--db",
        &pg_url(),
        "--table",
        &table,
        "--column",
        "ssn",
        "--dek-store",
        &store,
        "--dek",
        &fingerprint,
        "--aad",
        "envelope:{table}.{column}",
        "--json",
    ]);
    let summary = &json_of(&out, 0)[0];
    let moved = summary["total"]["changed"].as_u64().unwrap();
    assert!(moved > 0 && moved < 900, "{summary}");
    let after = ssn_column(&client, &table).await;
    let aad = column_aad(&table, "ssn");
    let cold = compact_envelope(&keyring, &store, 400);
    for ((id, old), (_, new)) in ssn.iter().zip(&after) {
        let (Some(old), Some(new)) = (old, new) else {
            continue;
        };
        let (was, now) = (
            inspect_compact(&binary(old)).unwrap().dek_id,
            inspect_compact(&binary(new)).unwrap().dek_id,
        );
        if was == old_id {
            assert_ne!(now, old_id, "row {id} left on the old DEK");
        } else {
            assert_eq!(old, new, "row {id} outside the filter changed");
        }
        assert_eq!(cold.decrypt_text(new, &aad).await.unwrap(), plaintext(*id));
    }
    // The store census names the new DEK under the current version.
    let census = census_json(&table, &store);
    assert!(
        groups(&census["dek_store"]).contains(&("2".to_owned(), 1)),
        "{census}"
    );
}

#[test]
fn encrypt_decrypt_and_inspect_a_compact_value_from_the_command_line() {
    let keyring = Keyring::new();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("deks.sqlite").display());
    let (plain, sealed) = (dir.path().join("ssn.txt"), dir.path().join("ssn.ev"));
    std::fs::write(&plain, b"123-45-6789").unwrap();
    let p = |path: &std::path::Path| path.display().to_string();
    let out = envelope(&[
        "encrypt",
        "--key",
        &keyring.uri,
        "--dek-store",
        &store,
        "--aad",
        "t.ssn",
        "--text",
        "-i",
        &p(&plain),
        "-o",
        &p(&sealed),
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&sealed).unwrap();
    assert_eq!(text.trim_end().len(), 115, "{text}");
    assert!(text.starts_with("ev3:"));
    // Version 2 only on request, and inspect says it does not commit.
    let old = dir.path().join("old.txt");
    let out = envelope(&[
        "encrypt",
        "--key",
        &keyring.uri,
        "--dek-store",
        &store,
        "--compact-version",
        "2",
        "--aad",
        "t.ssn",
        "--text",
        "-i",
        &p(&plain),
        "-o",
        &p(&old),
    ]);
    assert!(out.status.success(), "{out:?}");
    let old_text = std::fs::read_to_string(&old).unwrap();
    assert!(
        old_text.starts_with("ev2:") && old_text.trim_end().len() == 72,
        "{old_text}"
    );
    let shown = envelope(&["inspect", &p(&old)]);
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(stdout.contains("NOT key-committing"), "{stdout}");
    let shown = json_of(&envelope(&["inspect", "--json", &p(&sealed)]), 0);
    assert_eq!(shown["committing"], true, "{shown}");
    assert_eq!(shown["format_version"], 3);
    // The census flags the version 2 value as not key-committing.
    let census = json_of(
        &envelope(&[
            "census",
            "--dir",
            &p(dir.path()),
            "--dek-store",
            &store,
            "--json",
        ]),
        0,
    );
    assert_eq!(
        census["weaker"]["not_key_committing"]["count"], 1,
        "{census}"
    );
    assert_eq!(
        census["dek_store"]["weaker"],
        serde_json::json!({}),
        "{census}"
    );
    let refused = envelope(&["encrypt", "--key", &keyring.uri, "--compact-version", "2"]);
    assert_ne!(
        refused.status.code(),
        Some(0),
        "--compact-version needs --dek-store"
    );

    // An output path without a directory is written in the working directory.
    let out = command(&[
        "encrypt",
        "--key",
        &keyring.uri,
        "--dek-store",
        &store,
        "-i",
        &p(&plain),
        "-o",
        "relative.ev",
    ])
    .current_dir(dir.path())
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(dir.path().join("relative.ev")).unwrap().len(),
        83
    );
    let out = envelope(&["inspect", &p(&sealed), "--json"]);
    let alone = json_of(&out, 0);
    assert_eq!(
        (alone["format_version"].as_u64(), alone["dek_id"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(alone["overhead"], 72);
    let out = envelope(&["inspect", &p(&sealed), "--dek-store", &store, "--json"]);
    let full = json_of(&out, 0);
    assert_eq!(full["key_version"], "1");
    assert_eq!(full["provider"], "local");

    let out = envelope(&[
        "decrypt",
        "--key",
        &keyring.uri,
        "--aad",
        "t.ssn",
        "-i",
        &p(&sealed),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--dek-store"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty());
    let out = envelope(&[
        "decrypt",
        "--key",
        &keyring.uri,
        "--dek-store",
        &store,
        "--aad",
        "t.ssn",
        "-i",
        &p(&sealed),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"123-45-6789");
}

/// `envelope dek-store`: list the rows, retire a DEK (its values stop decrypting), activate
/// it again, copy the store (ids, states and bindings kept; a rerun copies nothing; a
/// different row under an id is refused).
#[test]
fn dek_store_commands_list_retire_activate_and_copy() {
    let keyring = Keyring::new();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("deks.sqlite").display());
    let copy = format!("sqlite://{}", dir.path().join("copy.sqlite").display());
    let p = |path: &std::path::Path| path.display().to_string();
    let plain = dir.path().join("ssn.txt");
    std::fs::write(&plain, b"123-45-6789").unwrap();
    let sealed = dir.path().join("ssn.ev");
    let crypt = |verb: &str, store: &str, input: &std::path::Path, output: &std::path::Path| {
        envelope(&[
            verb,
            "--key",
            &keyring.uri,
            "--dek-store",
            store,
            "-i",
            &p(input),
            "-o",
            &p(output),
        ])
    };
    assert!(crypt("encrypt", &store, &plain, &sealed).status.success());
    let rows = json_of(&envelope(&["dek-store", "list", &store, "--json"]), 0);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let id = rows[0]["id"].to_string();
    assert_eq!(rows[0]["state"], "active");
    assert_eq!(rows[0]["bound"], true);
    let human = envelope(&["dek-store", "list", &store]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("1 row(s)"),
        "{human:?}"
    );

    let back = dir.path().join("back.txt");
    assert!(
        envelope(&["dek-store", "retire", &store, &id])
            .status
            .success()
    );
    let refused = crypt("decrypt", &store, &sealed, &back);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let retired = json_of(
        &envelope(&["dek-store", "list", &store, "--state", "retired", "--json"]),
        0,
    );
    assert_eq!(retired.as_array().unwrap().len(), 1);
    let missing = envelope(&["dek-store", "retire", &store, "999"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no DEK 999"));
    assert!(
        envelope(&["dek-store", "activate", &store, &id])
            .status
            .success()
    );
    assert!(crypt("decrypt", &store, &sealed, &back).status.success());
    assert_eq!(std::fs::read(&back).unwrap(), b"123-45-6789");

    // The copy decrypts the value; a second copy finds every row there.
    let copied = envelope(&["dek-store", "copy", &store, &copy]);
    assert!(
        String::from_utf8_lossy(&copied.stderr).contains("copied 1 DEK row(s)"),
        "{copied:?}"
    );
    assert_eq!(
        json_of(&envelope(&["dek-store", "list", &copy, "--json"]), 0),
        json_of(&envelope(&["dek-store", "list", &store, "--json"]), 0)
    );
    std::fs::remove_file(&back).unwrap();
    assert!(crypt("decrypt", &copy, &sealed, &back).status.success());
    assert_eq!(std::fs::read(&back).unwrap(), b"123-45-6789");
    let again = envelope(&["dek-store", "copy", &store, &copy]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("copied 0 DEK row(s)"),
        "{again:?}"
    );
    // A row that differs under the same id stops the copy.
    assert!(
        envelope(&["dek-store", "retire", &copy, &id])
            .status
            .success()
    );
    let clash = envelope(&["dek-store", "copy", &store, &copy]);
    assert_eq!(clash.status.code(), Some(1), "{clash:?}");
    assert!(String::from_utf8_lossy(&clash.stderr).contains("differs"));
}
