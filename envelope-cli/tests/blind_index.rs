//! Blind indexes end to end on a real PostgreSQL: create → back-fill (`reindex`) → lookup →
//! KEK rotation (no index value written: contents and `xmin` unchanged) → index-key
//! rotation (the query window) → `reindex` killed with SIGKILL and resumed, beside a
//! concurrent writer → census → `retire --index`; and bad input that writes nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use envelope::blind_index::BlindIndexes;
use envelope::{Envelope, LocalKms};

const ROWS: i64 = 40_000;
const INDEX: &str = "people.email";

fn email(id: i64) -> String {
    // Four rows per address, spelled differently.
    match id % 3 {
        0 => format!("user{}@example.com", id % 10_000),
        1 => format!("  USER{}@Example.COM ", id % 10_000),
        _ => format!("User{}@example.com", id % 10_000),
    }
}

fn compact(keyring: &Keyring, store: &str) -> Envelope {
    let (kms, key_id) = LocalKms::from_uri(&keyring.uri).unwrap();
    Envelope::builder(kms, key_id)
        .dek_store(envelope_dekstore::open_dek_store(store).unwrap())
        .build()
        .unwrap()
}

fn indexes(keyring: &Keyring, store: &str) -> BlindIndexes {
    let (kms, key_id) = LocalKms::from_uri(&keyring.uri).unwrap();
    let env = Envelope::builder(kms, key_id).build().unwrap();
    BlindIndexes::new(
        &env,
        envelope_dekstore::open_index_key_store(store).unwrap(),
    )
}

/// The ids whose email is `value` (normalized), found by index: candidates by
/// `WHERE email_idx = ANY($1)`, false positives dropped after decryption.
async fn lookup(
    client: &tokio_postgres::Client,
    env: &Envelope,
    bi: &BlindIndexes,
    table: &str,
    value: &str,
) -> BTreeSet<i64> {
    let wanted: Vec<Vec<u8>> = bi
        .query_values(INDEX, value.as_bytes())
        .await
        .unwrap()
        .iter()
        .map(|v| v.to_bytes())
        .collect();
    let rows = client
        .query(
            &format!("SELECT id, email FROM {table} WHERE email_idx = ANY($1)"),
            &[&wanted],
        )
        .await
        .unwrap();
    let normal = |s: &str| s.trim().to_lowercase();
    let mut found = BTreeSet::new();
    for r in rows {
        let plain = env
            .decrypt(r.get::<_, &[u8]>(1), &column_aad(table, "email"))
            .await
            .unwrap();
        if normal(std::str::from_utf8(&plain).unwrap()) == normal(value) {
            found.insert(r.get::<_, i64>(0));
        }
    }
    found
}

fn expected(address: i64) -> BTreeSet<i64> {
    (0..4)
        .map(|k| address + k * 10_000)
        .filter(|id| *id >= 1)
        .collect()
}

async fn snapshot(
    client: &tokio_postgres::Client,
    table: &str,
) -> Vec<(i64, String, Option<Vec<u8>>)> {
    client
        .query(
            &format!("SELECT id, xmin::text, email_idx FROM {table} ORDER BY id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn run(args: &[&str], code: i32) -> std::process::Output {
    let out = envelope(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "envelope {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_indexes_survive_both_rotations() {
    let client = db().await;
    let keyring = Keyring::new();
    let store = format!(
        "sqlite://{}",
        keyring.dir.path().join("deks.sqlite").display()
    );
    let table = unique("people");
    let url = pg_url();
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, email bytea, email_idx bytea, n integer, idx_writes integer NOT NULL DEFAULT 0);
             CREATE FUNCTION {table}_count() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN NEW.idx_writes := OLD.idx_writes + 1; RETURN NEW; END $$;
             CREATE TRIGGER {table}_count BEFORE UPDATE OF email_idx ON {table}
               FOR EACH ROW EXECUTE FUNCTION {table}_count();"
        ))
        .await
        .unwrap();
    let env = compact(&keyring, &store);
    let aad = column_aad(&table, "email");
    let ids: Vec<i64> = (1..=ROWS).collect();
    let mut values = Vec::new();
    for id in &ids {
        values.push(env.encrypt(email(*id).as_bytes(), &aad).await.unwrap());
    }
    client
        .execute(
            &format!(
                "INSERT INTO {table} (id, email) SELECT * FROM unnest($1::bigint[], $2::bytea[])"
            ),
            &[&ids, &values],
        )
        .await
        .unwrap();
    let key = keyring.uri.as_str();
    let job = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "reindex",
            "--key",
            key,
            "--db",
            &url,
            "--table",
            &table,
            "--column",
            "email",
            "--index-column",
            "email_idx",
            "--index",
            INDEX,
            "--dek-store",
            &store,
            "--aad",
            "envelope:{table}.{column}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let strs = |v: &[String]| {
        v.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\u{0}")
    };

    // Bad input: one clear line, nothing written.
    let unknown = run(&strs(&job(&[])).split('\u{0}').collect::<Vec<_>>(), 1);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("is not in the index key store"));
    run(
        &[
            "index",
            "create",
            "--key",
            key,
            "--index-store",
            &store,
            "--index",
            INDEX,
            "--normalizer",
            "nfkc_casefold+trim_collapse",
        ],
        0,
    );
    let mut wrong_type = job(&[]);
    let at = wrong_type.iter().position(|a| a == "email_idx").unwrap();
    wrong_type[at] = "n".into();
    let out = run(&strs(&wrong_type).split('\u{0}').collect::<Vec<_>>(), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("index column"),
        "{out:?}"
    );
    let again = run(
        &[
            "index",
            "create",
            "--key",
            key,
            "--index-store",
            &store,
            "--index",
            INDEX,
        ],
        1,
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    // An index whose normalizer is an application function: refused in one line.
    indexes(&keyring, &store)
        .create(
            "people.custom",
            &envelope::blind_index::IndexSettings::unique(
                envelope::blind_index::Normalizer::parse("custom:app_fn+digits").unwrap(),
            ),
        )
        .await
        .unwrap();
    let mut custom = job(&[]);
    let at = custom.iter().position(|a| a == INDEX).unwrap();
    custom[at] = "people.custom".into();
    let out = run(&strs(&custom).split('\u{0}').collect::<Vec<_>>(), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("custom:app_fn"),
        "{out:?}"
    );
    let nulls: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE email_idx IS NULL"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(nulls, ROWS, "bad input wrote nothing");

    // The bit length from the column's real cardinality: 10,000 addresses after the
    // normalizer (4 spellings each), exactly; and estimated from a sample, with its bound.
    let recommend = |extra: &[&str]| {
        let mut args = vec![
            "index",
            "recommend",
            "--key",
            key,
            "--db",
            &url,
            "--table",
            &table,
            "--column",
            "email",
            "--dek-store",
            &store,
            "--aad",
            "envelope:{table}.{column}",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = run(&args, 0);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let exact = recommend(&["--normalizer", "nfkc_casefold+trim_collapse"]);
    assert_eq!(exact["distinct"], 10_000, "{exact}");
    assert_eq!(exact["distinct_exact"], true);
    assert_eq!(exact["private_range"], serde_json::json!([8, 12]));
    assert_eq!(
        (
            exact["unique_bits"].as_u64(),
            exact["private_bits"].as_u64()
        ),
        (Some(64), Some(12))
    );
    let raw = recommend(&[]);
    // Without the normalizer each of the 3 spellings of an address counts: 30,000.
    assert_eq!(
        raw["distinct"], 30_000,
        "without the normalizer every spelling counts"
    );
    let sampled = recommend(&[
        "--normalizer",
        "nfkc_casefold+trim_collapse",
        "--sample",
        "8000",
    ]);
    let estimate = sampled["distinct"].as_f64().unwrap();
    let bound = sampled["distinct_ratio_error_bound"].as_f64().unwrap();
    assert_eq!(sampled["distinct_exact"], false);
    assert!(
        estimate <= 10_000.0 * bound && estimate >= 10_000.0 / bound,
        "estimate {estimate} outside the stated bound {bound}"
    );

    // Back-fill: every row gets version 1.
    let out = run(
        &strs(&job(&["--json", "--batch-size", "2000"]))
            .split('\u{0}')
            .collect::<Vec<_>>(),
        0,
    );
    let summary = &serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0];
    assert_eq!(summary["total"]["changed"], ROWS, "{summary}");
    let bi = indexes(&keyring, &store);
    assert_eq!(
        lookup(&client, &env, &bi, &table, "user42@example.com").await,
        expected(42)
    );
    assert_eq!(
        lookup(&client, &env, &bi, &table, "USER9999@EXAMPLE.COM").await,
        expected(9999)
    );
    assert!(
        lookup(&client, &env, &bi, &table, "nobody@example.com")
            .await
            .is_empty()
    );

    // KEK rotation and the store's rewrap: no index value written, no row touched.
    let before = snapshot(&client, &table).await;
    keyring.rotate();
    let out = run(&["rewrap", "--key", key, "--dek-store", &store], 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 rewrapped"),
        "{out:?}"
    );
    assert_eq!(
        snapshot(&client, &table).await,
        before,
        "contents and xmin unchanged"
    );
    let listed = run(&["index", "list", "--index-store", &store, "--json"], 0);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["key_version"], "2", "{listed}");
    let env = compact(&keyring, &store);
    let bi = indexes(&keyring, &store);
    assert_eq!(
        lookup(&client, &env, &bi, &table, "user42@example.com").await,
        expected(42)
    );

    // Index-key rotation: v2 writes; v1 and v2 answer queries; v1 cannot retire yet.
    run(
        &[
            "index",
            "rotate",
            "--key",
            key,
            "--index-store",
            &store,
            "--index",
            INDEX,
        ],
        0,
    );
    let retire = [
        "retire",
        "--key",
        key,
        "--index",
        INDEX,
        "--version",
        "1",
        "--db",
        &url,
        "--table",
        &table,
        "--column",
        "email",
        "--index-column",
        "email_idx",
        "--index-store",
        &store,
    ];
    let refused = run(&retire, 4);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&format!("{ROWS} row(s)")),
        "{refused:?}"
    );
    let bi = indexes(&keyring, &store);
    assert_eq!(bi.query_values(INDEX, b"x").await.unwrap().len(), 2);
    assert_eq!(
        lookup(&client, &env, &bi, &table, "user42@example.com").await,
        expected(42)
    );

    // reindex to v2, SIGKILLed mid-run, beside a writer; then resumed.
    let mut args = job(&["--batch-size", "100"]);
    args.retain(|a| !a.is_empty());
    let mut child = command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let moved_sql = format!("SELECT count(*) FROM {table} WHERE get_byte(email_idx, 1) = 2");
    let moved = async |client: &tokio_postgres::Client| -> i64 {
        client.query_one(&moved_sql, &[]).await.unwrap().get(0)
    };
    let started = Instant::now();
    while moved(&client).await < 3_000 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "reindex made no progress"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The writer: new addresses for the last rows, with their index under v2.
    let writer_ids: Vec<i64> = (ROWS - 9..=ROWS).collect();
    for id in &writer_ids {
        let value = format!("writer{id}@example.com");
        let ct = env.encrypt(value.as_bytes(), &aad).await.unwrap();
        let idx = bi
            .compute(INDEX, value.as_bytes())
            .await
            .unwrap()
            .to_bytes();
        client
            .execute(
                &format!("UPDATE {table} SET email = $1, email_idx = $2 WHERE id = $3"),
                &[&ct, &idx, id],
            )
            .await
            .unwrap();
    }
    unsafe_kill(&mut child);
    let at_kill = moved(&client).await;
    assert!(
        at_kill < ROWS,
        "the job finished before the kill: raise ROWS"
    );
    let job_id = checkpoints(&client, &table)
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .rfind(|id| id.starts_with("reindex"))
        .expect("the killed job left a checkpoint");
    let out = run(
        &strs(&job(&["--resume", &job_id, "--json"]))
            .split('\u{0}')
            .collect::<Vec<_>>(),
        0,
    );
    assert!(out.status.success());
    // Every row once under v2 (two index writes: back-fill and move), the writer's rows
    // exactly as the writer left them.
    let rows = client
        .query(
            &format!("SELECT id, email, email_idx, idx_writes FROM {table} ORDER BY id"),
            &[],
        )
        .await
        .unwrap();
    for r in &rows {
        let (id, idx, writes): (i64, Vec<u8>, i32) = (r.get(0), r.get(2), r.get(3));
        assert_eq!(&idx[..2], &[0, 2], "row {id}");
        if writer_ids.contains(&id) {
            let plain = env.decrypt(r.get::<_, &[u8]>(1), &aad).await.unwrap();
            assert_eq!(plain, format!("writer{id}@example.com").as_bytes());
            let want = bi.compute(INDEX, &plain).await.unwrap().to_bytes();
            assert_eq!(idx, want, "the writer's index value stays");
        } else {
            assert_eq!(writes, 2, "row {id}: back-filled once and moved once");
        }
    }

    // Census: every value under v2; then v1 retires and leaves the window.
    let census = run(
        &[
            "census",
            "--db",
            &url,
            "--table",
            &table,
            "--column",
            "email",
            "--index-column",
            "email_idx",
            "--json",
        ],
        0,
    );
    let census: serde_json::Value = serde_json::from_slice(&census.stdout).unwrap();
    assert_eq!(
        census["blind_index"]["versions"],
        serde_json::json!({"2": ROWS})
    );
    assert_eq!(census["blind_index"]["missing"], 0);
    run(&retire, 0);
    let bi = indexes(&keyring, &store);
    assert_eq!(bi.query_values(INDEX, b"x").await.unwrap().len(), 1);
    assert_eq!(
        lookup(&client, &env, &bi, &table, "user42@example.com").await,
        expected(42)
    );
    assert_eq!(
        lookup(
            &client,
            &env,
            &bi,
            &table,
            &format!("writer{ROWS}@example.com")
        )
        .await,
        BTreeSet::from([ROWS])
    );
    let described = run(
        &[
            "index",
            "describe",
            "--index-store",
            &store,
            "--index",
            INDEX,
            "--json",
        ],
        0,
    );
    let described: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(described[0]["state"], "retired");
    assert_eq!(described[1]["state"], "active");
}

fn unsafe_kill(child: &mut std::process::Child) {
    // SIGKILL: no cleanup, no rollback message; the open transaction dies with the socket.
    let _ = std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
