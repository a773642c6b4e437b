//! The rotation jobs over PostgreSQL, end to end through the `envelope` binary, against a
//! real server (scripts/test.sh starts it; these tests fail, never skip, without it).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::*;

/// 100,000 rows under version 1 (text and bytea columns, NULLs), rotate, dry run, rewrap:
/// every value current, bodies identical, KMS calls = distinct DEKs; a second run changes
/// nothing.
#[tokio::test(flavor = "multi_thread")]
async fn rewrap_moves_every_row_and_touches_nothing_else() {
    let client = db().await;
    let keyring = Keyring::new();
    let table = unique("big");
    let env = keyring.envelope(1000);
    fill_table(&client, &env, &table, 100_000).await;
    let ssn_before = ssn_column(&client, &table).await;
    let doc_before = doc_column(&client, &table).await;
    let ssn_deks: BTreeSet<String> = ssn_before
        .iter()
        .filter_map(|(_, v)| v.as_ref())
        .map(|v| header(&binary(v)).dek_fingerprint)
        .collect();
    keyring.rotate();

    let dry = envelope(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--db",
        &pg_url(),
        "--table",
        &table,
        "--column",
        "ssn",
        "--dry-run",
        "--json",
    ]);
    let dry = json_of(&dry, 0);
    assert_eq!(dry["stale_by_label"], 90_000);
    assert_eq!(
        ssn_column(&client, &table).await,
        ssn_before,
        "--dry-run changed nothing"
    );
    assert!(
        checkpoints(&client, &table).await.is_empty(),
        "no job recorded"
    );

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
    assert_eq!(summary["total"]["scanned"], 90_000);
    assert_eq!(summary["total"]["changed"], 90_000);
    assert_eq!(summary["total"]["failed"], 0);
    assert_eq!(
        summary["kms_calls"],
        ssn_deks.len() as u64,
        "one KMS call per distinct DEK"
    );

    let out = envelope(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--db",
        &pg_url(),
        "--table",
        &table,
        "--column",
        "doc",
        "--workers",
        "3",
        "--batch-size",
        "700",
        "--json",
    ]);
    let summary = &json_of(&out, 0)[0];
    let docs = doc_before.iter().filter(|(_, v)| v.is_some()).count() as u64;
    assert_eq!(summary["total"]["changed"], docs);

    let ssn_after = ssn_column(&client, &table).await;
    let doc_after = doc_column(&client, &table).await;
    let reader = keyring.envelope(1000);
    let ssn_aad = column_aad(&table, "ssn");
    let doc_aad = column_aad(&table, "doc");
    for ((id, before), (_, after)) in ssn_before.iter().zip(&ssn_after) {
        match (before, after) {
            (None, None) => {}
            (Some(b), Some(a)) => {
                let (b, a) = (binary(b), binary(a));
                assert_eq!(header(&a).key_version, "2", "row {id}");
                assert_eq!(stable_and_body(&a), stable_and_body(&b), "row {id}: body");
                assert_eq!(reader.decrypt(&a, &ssn_aad).await.unwrap(), plaintext(*id));
            }
            other => panic!("row {id}: NULL-ness changed: {other:?}"),
        }
    }
    for ((id, before), (_, after)) in doc_before.iter().zip(&doc_after) {
        match (before, after) {
            (None, None) => {}
            (Some(b), Some(a)) => {
                assert_eq!(header(a).key_version, "2", "row {id}");
                assert_eq!(stable_and_body(a), stable_and_body(b), "row {id}: body");
                assert_eq!(reader.decrypt(a, &doc_aad).await.unwrap(), plaintext(*id));
            }
            other => panic!("row {id}: NULL-ness changed: {other:?}"),
        }
    }

    // Idempotent: a second run finds everything current.
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
    assert_eq!(summary["total"]["changed"], 0);
    assert_eq!(summary["total"]["already_current"], 90_000);
    assert_eq!(ssn_column(&client, &table).await, ssn_after);

    let census = json_of(
        &envelope(&[
            "census",
            "--db",
            &pg_url(),
            "--table",
            &table,
            "--column",
            "ssn",
            "--json",
        ]),
        0,
    );
    assert_eq!(census["scanned"], 90_000);
    assert_eq!(census["groups"].as_array().unwrap().len(), 1);
    assert_eq!(census["groups"][0]["key_version"], "2");
}

/// A job killed with SIGKILL mid-run and resumed ends in the same state as an
/// uninterrupted run of the same rows, and the resumed run starts at the checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn killed_job_resumes_from_its_checkpoint() {
    let client = db().await;
    let keyring = Keyring::new();
    let table = unique("killed");
    let twin = unique("twin");
    let env = keyring.envelope(20);
    fill_table(&client, &env, &table, 20_000).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE {twin} (LIKE {table} INCLUDING ALL); INSERT INTO {twin} SELECT * FROM {table}"
        ))
        .await
        .unwrap();
    let before = ssn_column(&client, &table).await;
    keyring.rotate();

    let url = pg_url();
    let args = [
        "rewrap",
        "--key",
        &keyring.uri,
        "--db",
        &url,
        "--table",
        &table,
        "--column",
        "ssn",
        "--batch-size",
        "500",
        "--max-rate",
        "300",
    ];
    let mut child = command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a few batches are committed.
    let mut waited = 0;
    loop {
        let done = checkpoints(&client, &table).await;
        if done
            .first()
            .is_some_and(|(_, scanned, _)| *scanned >= 2_000)
        {
            break;
        }
        assert!(waited < 600, "the job made no progress in 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (job_id, scanned_at_kill, last_key) = checkpoints(&client, &table).await.remove(0);
    assert!(scanned_at_kill < 18_000, "killed too late to test a resume");
    let last_key: i64 = last_key.unwrap().parse().unwrap();
    // Rows up to the checkpoint are rewrapped, rows after it are not.
    let mid = ssn_column(&client, &table).await;
    for (id, v) in &mid {
        if let Some(v) = v
            && *id > last_key + 1_000
        {
            assert_eq!(
                header(&binary(v)).key_version,
                "1",
                "row {id} beyond the checkpoint"
            );
        }
        if let Some(v) = v
            && *id <= last_key
        {
            assert_eq!(
                header(&binary(v)).key_version,
                "2",
                "row {id} before the checkpoint"
            );
        }
    }

    let mut resume_args = args[..args.len() - 2].to_vec();
    resume_args.extend(["--resume", &job_id, "--json"]);
    let summary = json_of(&envelope(&resume_args), 0)[0].clone();
    assert_eq!(summary["job_id"], job_id);
    assert_eq!(
        summary["total"]["scanned"], 18_000,
        "every value counted once"
    );
    assert_eq!(
        summary["this_run"]["scanned"].as_i64().unwrap(),
        18_000 - scanned_at_kill,
        "the resumed run starts after the checkpoint"
    );
    // A finished job resumed again does nothing.
    let again = json_of(&envelope(&resume_args), 0)[0].clone();
    assert_eq!(again["this_run"]["scanned"], 0);

    let out = envelope(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--db",
        &url,
        "--table",
        &twin,
        "--column",
        "ssn",
        "--json",
    ]);
    json_of(&out, 0);
    let resumed = ssn_column(&client, &table).await;
    let uninterrupted = ssn_column(&client, &twin).await;
    let reader = keyring.envelope(20);
    let aad = column_aad(&table, "ssn");
    let twin_aad = column_aad(&twin, "ssn");
    for (((id, b), (_, r)), (_, u)) in before.iter().zip(&resumed).zip(&uninterrupted) {
        match (b, r, u) {
            (None, None, None) => {}
            (Some(b), Some(r), Some(u)) => {
                let (b, r, u) = (binary(b), binary(r), binary(u));
                assert_eq!(header(&r).key_version, "2");
                assert_eq!(header(&u).key_version, "2");
                assert_eq!(stable_and_body(&r), stable_and_body(&b), "row {id}");
                assert_eq!(stable_and_body(&u), stable_and_body(&b), "row {id}");
                assert_eq!(reader.decrypt(&r, &aad).await.unwrap(), plaintext(*id));
                // The twin's rows were encrypted with the first table's AAD.
                assert!(reader.decrypt(&u, &twin_aad).await.is_err());
                assert_eq!(reader.decrypt(&u, &aad).await.unwrap(), plaintext(*id));
            }
            other => panic!("row {id}: {other:?}"),
        }
    }
}

/// An application writing rows while the job runs loses no update: the job's write only
/// applies where the row still holds the value it read.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writer_loses_no_update() {
    let client = db().await;
    let keyring = Keyring::new();
    let table = unique("busy");
    let env = keyring.envelope(10);
    fill_table(&client, &env, &table, 5_000).await;
    keyring.rotate();
    let url = pg_url();
    let mut child = command(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--db",
        &url,
        "--table",
        &table,
        "--column",
        "ssn",
        "--batch-size",
        "250",
        "--max-rate",
        "150",
        "--json",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();

    // The writer updates rows just ahead of the checkpoint: the batch being processed.
    let writer_env = keyring.envelope(1000);
    let aad = column_aad(&table, "ssn");
    let mut written: HashMap<i64, Vec<u8>> = HashMap::new();
    let mut n = 0;
    while child.try_wait().unwrap().is_none() {
        let last: i64 = checkpoints(&client, &table)
            .await
            .first()
            .and_then(|(_, _, k)| k.as_deref().map(|k| k.parse().unwrap()))
            .unwrap_or(0);
        for id in (last + 1..=last + 40).step_by(3) {
            if id > 5_000 || id % 10 == 0 {
                continue;
            }
            n += 1;
            let value = format!("writer-{id}-{n}").into_bytes();
            let ct = writer_env.encrypt_to_text(&value, &aad).await.unwrap();
            client
                .execute(
                    &format!("UPDATE {table} SET ssn = $1 WHERE id = $2"),
                    &[&ct, &id],
                )
                .await
                .unwrap();
            written.insert(id, value);
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let out = child.wait_with_output().unwrap();
    let summary = json_of(&out, 0)[0].clone();
    assert!(
        summary["total"]["concurrent_updates"].as_u64().unwrap() > 0,
        "the writer never hit a batch in flight: {summary}"
    );
    let reader = keyring.envelope(10);
    for (id, value) in ssn_column(&client, &table).await {
        let Some(value) = value else { continue };
        let ct = binary(&value);
        let plain = reader.decrypt(&ct, &aad).await.unwrap();
        match written.get(&id) {
            Some(w) => assert_eq!(&plain, w, "row {id}: the application's update was lost"),
            None => assert_eq!(plain, plaintext(id)),
        }
        assert_eq!(header(&ct).key_version, "2", "row {id}");
    }
}

/// Retire refuses while one row is still under the version and names it; with none left
/// it destroys the version and prints the evidence.
#[tokio::test(flavor = "multi_thread")]
async fn retire_is_refused_while_a_row_remains() {
    let client = db().await;
    let keyring = Keyring::new();
    let table = unique("retire");
    let env = keyring.envelope(100);
    fill_table(&client, &env, &table, 300).await;
    let straggler = ssn_column(&client, &table).await[0].1.clone().unwrap();
    keyring.rotate();
    let url = pg_url();
    let store = [
        "--db",
        url.as_str(),
        "--table",
        table.as_str(),
        "--column",
        "ssn",
    ];
    let mut rewrap = vec!["rewrap", "--key", keyring.uri.as_str()];
    rewrap.extend(store);
    json_of(&envelope(&[rewrap.clone(), vec!["--json"]].concat()), 0);
    client
        .execute(
            &format!("INSERT INTO {table} (id, ssn) VALUES (1000, $1)"),
            &[&straggler],
        )
        .await
        .unwrap();

    let mut retire = vec![
        "retire",
        "--key",
        keyring.uri.as_str(),
        "--version",
        "1",
        "--action",
        "destroy",
    ];
    retire.extend(store);
    let out = envelope(&retire);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{table}.ssn[1000]")), "{stderr}");
    assert!(stderr.contains("1 ciphertext(s)"), "{stderr}");
    let keys = json_of(&envelope(&["keys", "list", &keyring.uri, "--json"]), 0);
    assert_eq!(
        keys[0]["versions"][0]["state"], "enabled",
        "nothing destroyed"
    );

    // A relabeled row cannot hide under the current version: the gate unwraps to check.
    let relabeled = envelope::format::to_text(&relabel(&binary(&straggler), "2"));
    client
        .execute(
            &format!("UPDATE {table} SET ssn = $1 WHERE id = 1000"),
            &[&relabeled],
        )
        .await
        .unwrap();
    let out = envelope(&retire);
    assert_eq!(out.status.code(), Some(4), "a relabeled row hid: {out:?}");
    let census = json_of(
        &envelope(&[
            "census",
            "--db",
            &url,
            "--table",
            &table,
            "--column",
            "ssn",
            "--verify-with",
            &keyring.uri,
            "--json",
        ]),
        0,
    );
    assert_eq!(census["mislabeled"][0]["labeled_version"], "2");
    assert_eq!(census["mislabeled"][0]["actual_version"], "1");
    assert_eq!(
        census["mislabeled"][0]["samples"][0],
        format!("{table}.ssn[1000]")
    );
    let out = envelope(&[rewrap.clone(), vec!["--json"]].concat());
    let summary = json_of(&out, 3)[0].clone();
    assert_eq!(summary["total"]["failures"]["mislabeled"], 1, "{summary}");
    assert_eq!(
        summary["failed_samples"][0][0],
        format!("{table}.ssn[1000]")
    );

    client
        .execute(&format!("DELETE FROM {table} WHERE id = 1000"), &[])
        .await
        .unwrap();
    let out = envelope(&[retire.clone(), vec!["--json"]].concat());
    let evidence = json_of(&out, 0);
    assert_eq!(evidence["ciphertexts_under_version"], 0);
    assert_eq!(evidence["key_after"]["versions"][0]["state"], "destroyed");
}

/// Vault through the job: batch rewrap (one KMS call per batch), a relabeled row named by
/// census and rewrap, and the KMS stopped mid-job leaving a resumable checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn vault_job_batches_names_mislabeled_rows_and_stops_resumably() {
    let bao = Bao::start().await;
    bao.cli(&["write", "-f", "transit/keys/orders"]);
    let uri = format!("vault://{}/transit/keys/orders?http=loopback", bao.host);
    let client = db().await;
    let table = unique("vault");
    let env = {
        let (builder, key_id) = envelope::vault::VaultBuilder::from_env()
            .with_url(&uri)
            .unwrap();
        let kms = builder.with_token("private-root").build().unwrap();
        envelope::Envelope::builder(kms, key_id)
            .cache_policy(envelope::CachePolicy::default().with_max_messages(10))
            .build()
            .unwrap()
    };
    fill_table(&client, &env, &table, 3_000).await;
    bao.cli(&["write", "-f", "transit/keys/orders/rotate"]);
    // One row relabeled from v1 to v2: census and rewrap both name it.
    let first = ssn_column(&client, &table).await[0].1.clone().unwrap();
    let relabeled = envelope::format::to_text(&relabel(&binary(&first), "2"));
    client
        .execute(
            &format!("UPDATE {table} SET ssn = $1 WHERE id = 1"),
            &[&relabeled],
        )
        .await
        .unwrap();
    let url = pg_url();
    let before = ssn_column(&client, &table).await;
    let census = json_of(
        &envelope(&[
            "census", "--db", &url, "--table", &table, "--column", "ssn", "--json",
        ]),
        0,
    );
    assert_eq!(census["mislabeled"][0]["labeled_version"], "2");
    assert_eq!(census["mislabeled"][0]["actual_version"], "1");

    let run = |extra: &[&str]| {
        let mut args = vec![
            "rewrap",
            "--key",
            uri.as_str(),
            "--db",
            url.as_str(),
            "--table",
            table.as_str(),
            "--column",
            "ssn",
        ];
        args.extend(extra);
        let mut c = command(&args);
        c.env("VAULT_TOKEN", "private-root");
        c
    };
    // Stop the KMS in the middle of a slow job.
    let child = run(&["--batch-size", "20", "--max-rate", "15", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut waited = 0;
    while checkpoints(&client, &table)
        .await
        .first()
        .is_none_or(|(_, scanned, _)| *scanned < 200)
    {
        assert!(waited < 600, "no progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    drop(bao);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (job_id, scanned, last_key) = checkpoints(&client, &table).await.remove(0);
    assert!(stderr.contains(&format!("--resume {job_id}")), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary[0]["total"]["failures"]["mislabeled"], 1,
        "{summary}"
    );
    assert_eq!(
        summary[0]["failed_samples"][0][0],
        format!("{table}.ssn[1]")
    );
    assert!(scanned > 0 && scanned < 2_700 && last_key.is_some());
    // Every row is either moved (v2, same body) or untouched; nothing is lost.
    let mut moved = 0;
    for ((id, now), (_, orig)) in ssn_column(&client, &table).await.iter().zip(&before) {
        match (now, orig) {
            (None, None) => {}
            (Some(now), Some(orig)) => {
                let (now, orig) = (binary(now), binary(orig));
                assert_eq!(stable_and_body(&now), stable_and_body(&orig), "row {id}");
                let version = header(&now).key_version;
                assert!(version == "1" || version == "2", "row {id}");
                if version == "2" && now != orig {
                    moved += 1;
                }
            }
            other => panic!("row {id}: {other:?}"),
        }
    }
    assert!(moved > 0, "some rows were committed before the stop");
}

/// The census and job summaries say how the database connection was carried, and a
/// `sslmode` the server cannot meet stops the command with one clear line. (The TLS
/// handshakes themselves are tested against TLS clusters in envelope-dekstore/tests/tls.rs.)
#[tokio::test(flavor = "multi_thread")]
async fn summaries_report_the_database_connection_and_sslmode_is_enforced() {
    let client = db().await;
    let keyring = Keyring::new();
    let table = unique("transport");
    fill_table(&client, &keyring.envelope(100), &table, 10).await;
    let census = |url: &str| {
        envelope(&[
            "census", "--db", url, "--table", &table, "--column", "ssn", "--json",
        ])
    };
    // The test server has no TLS: libpq's default (prefer) falls back to plaintext, and says so.
    let json = json_of(&census(&pg_url()), 0);
    assert_eq!(json["database_connection"]["encrypted"], false, "{json}");
    assert_eq!(json["database_connection"]["sslmode"], "prefer");
    assert_eq!(json["database_connection"]["server_verified"], false);
    let text = envelope(&[
        "census",
        "--db",
        &pg_url(),
        "--table",
        &table,
        "--column",
        "ssn",
    ]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("database connection: PLAINTEXT (sslmode=prefer)"),
        "{stdout}"
    );
    // require cannot be met: refused before any row is read.
    let out = census(&format!("{}?sslmode=require", pg_url()));
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not offer TLS"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // A job's summary carries the same facts.
    keyring.rotate();
    let out = envelope(&[
        "rewrap",
        "--key",
        &keyring.uri,
        "--db",
        &format!("{}?sslmode=disable", pg_url()),
        "--table",
        &table,
        "--column",
        "ssn",
        "--json",
    ]);
    let summary = &json_of(&out, 0)[0];
    assert_eq!(summary["total"]["changed"], json["scanned"], "{summary}");
    assert_eq!(summary["total"]["failed"], 0);
    assert_eq!(summary["database_connection"]["encrypted"], false);
    assert_eq!(summary["database_connection"]["sslmode"], "disable");
}

/// `--workers 2` splits the key range of every primary key type the README names (the
/// split took `max()` of the key, which `uuid` lacks), also on a schema-qualified,
/// mixed-case table: every value is rewrapped once, and a second run finds all current.
#[tokio::test(flavor = "multi_thread")]
async fn several_workers_split_every_primary_key_type() {
    let client = db().await;
    let keyring = Keyring::new();
    let env = keyring.envelope(1_000);
    client
        .batch_execute("CREATE SCHEMA IF NOT EXISTS \"Split Keys\"")
        .await
        .unwrap();
    let kinds = [
        ("integer", "i"),
        ("text", "'k' || lpad(i::text, 5, '0')"),
        ("uuid", "md5(i::text)::uuid"),
        ("numeric", "i::numeric / 7"),
        (
            "timestamp",
            "timestamp '2026-01-01' + i * interval '1 minute'",
        ),
    ];
    for (pk_type, key_of) in kinds {
        let table = format!("\"Split Keys\".\"{}\"", unique(&format!("Keys_{pk_type}")));
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (\"Id\" {pk_type} PRIMARY KEY, ssn text);
                 INSERT INTO {table} SELECT {key_of}, NULL FROM generate_series(1, 3000) AS i"
            ))
            .await
            .unwrap();
        let keys: Vec<String> = client
            .query(&format!("SELECT \"Id\"::text FROM {table}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut values = Vec::new();
        for key in &keys {
            values.push(env.encrypt_to_text(key.as_bytes(), b"").await.unwrap());
        }
        client
            .execute(
                &format!(
                    "UPDATE {table} t SET ssn = v.ssn FROM unnest($1::text[], $2::text[]) AS v(k, ssn) \
                     WHERE t.\"Id\" = v.k::{pk_type}"
                ),
                &[&keys, &values],
            )
            .await
            .unwrap();
        keyring.rotate();
        env.refresh_kek();
        let rewrap = |workers: &str| {
            json_of(
                &envelope(&[
                    "rewrap",
                    "--key",
                    &keyring.uri,
                    "--db",
                    &pg_url(),
                    "--table",
                    &table,
                    "--column",
                    "ssn",
                    "--workers",
                    workers,
                    "--json",
                ]),
                0,
            )
        };
        let first = &rewrap("2")[0];
        assert_eq!(first["total"]["changed"], 3000, "{pk_type}: {first}");
        assert_eq!(first["total"]["failed"], 0, "{pk_type}: {first}");
        let again = &rewrap("3")[0];
        assert_eq!(
            again["total"]["already_current"], 3000,
            "{pk_type}: {again}"
        );
        assert_eq!(again["total"]["changed"], 0, "{pk_type}: {again}");
    }
}
