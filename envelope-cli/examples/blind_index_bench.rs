//! One run of `scripts/bench-blind-index.py` (not a benchmark by itself): on a real
//! PostgreSQL, N rows of `user{i}@example.com` in a plaintext table and in an encrypted twin
//! (compact ciphertexts, a `unique` 64-bit index and a `private` index of about 10 rows per
//! value bucket, btrees on both), then
//!
//! 1. lookups: `lookups` random addresses, each looked up in the plaintext table
//!    (`WHERE email = $1`), by the unique index and by the private index (query values,
//!    `WHERE idx = ANY($1)`, decryption of every candidate and removal of false positives);
//!    median and p90 latency of each, interleaved so that noise hits all three alike;
//! 2. false positives: candidates that are not the address, per lookup, against the theory
//!    `(X − 1) / 2^N` for X distinct values;
//! 3. `envelope reindex` of every row into an empty index column (the release binary given),
//!    against the PostgreSQL floor of the same run: the engine's own keyset pages and
//!    conditional `UPDATE … FROM unnest(…)` with precomputed values, same batch size.
//!
//! ```text
//! blind_index_bench DB_URL ROWS LOOKUPS ENVELOPE_BIN
//! ```
//!
//! Prints one JSON object.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use envelope::blind_index::{BlindIndexes, IndexSettings, Normalizer};
use envelope::{CachePolicy, Envelope, LocalKeyring, LocalKms};
use envelope_cli::stores::postgres::connect;
use rand::{Rng, SeedableRng};

const AAD: &[u8] = b"envelope:bi_enc.email";
const NORMALIZER: &str = "nfkc_casefold+trim_collapse";

fn email(i: i64) -> String {
    format!("user{i}@example.com")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p90(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() * 9 / 10]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: blind_index_bench DB_URL ROWS LOOKUPS ENVELOPE_BIN");
        std::process::exit(2);
    }
    let (db, rows, lookups, envelope_bin) = (
        &args[1],
        args[2].parse::<i64>().unwrap(),
        args[3].parse::<usize>().unwrap(),
        &args[4],
    );
    let dir = tempfile::tempdir().unwrap();
    let keyring_path = dir.path().join("keyring.json");
    LocalKeyring::create(&keyring_path, "default").unwrap();
    let key_uri = format!("local://{}", keyring_path.display());
    let store_uri = format!("sqlite://{}", dir.path().join("deks.sqlite").display());
    let (kms, key_id) = LocalKms::from_uri(&key_uri).unwrap();
    let envelope = Envelope::builder(kms, key_id)
        .cache_policy(CachePolicy::default().with_max_messages(10_000))
        .dek_store(envelope::open_dek_store(&store_uri).unwrap())
        .build()
        .unwrap();
    let indexes = BlindIndexes::new(
        &envelope,
        envelope::open_index_key_store(&store_uri).unwrap(),
    );
    // About 10 rows per value bucket: 2^N ≈ X / 10.
    let private_bits = ((rows as f64 / 10.0).log2().round() as u16).max(8);
    let normalizer = Normalizer::parse(NORMALIZER).unwrap();
    indexes
        .create("bi.unique", &IndexSettings::unique(normalizer.clone()))
        .await
        .unwrap();
    indexes
        .create(
            "bi.private",
            &IndexSettings::private(private_bits, normalizer.clone()),
        )
        .await
        .unwrap();

    let (client, _) = connect(db).await.unwrap();
    client
        .batch_execute(
            "DROP TABLE IF EXISTS bi_plain; DROP TABLE IF EXISTS bi_enc;
             CREATE TABLE bi_plain (id bigint PRIMARY KEY, email text NOT NULL);
             CREATE TABLE bi_enc (id bigint PRIMARY KEY, email bytea NOT NULL,
                                  idx_u bytea, idx_p bytea, idx_r bytea, idx_f bytea);",
        )
        .await
        .unwrap();
    let fill = Instant::now();
    let mut start = 1;
    while start <= rows {
        let end = (start + 9_999).min(rows);
        let ids: Vec<i64> = (start..=end).collect();
        let emails: Vec<String> = ids.iter().map(|i| email(*i)).collect();
        let mut cts = Vec::with_capacity(ids.len());
        for e in &emails {
            cts.push(envelope.encrypt(e.as_bytes(), AAD).await.unwrap());
        }
        let refs: Vec<&[u8]> = emails.iter().map(|e| e.as_bytes()).collect();
        let u: Vec<Vec<u8>> = indexes
            .compute_many("bi.unique", &refs, None)
            .await
            .unwrap()
            .iter()
            .map(|v| v.to_bytes())
            .collect();
        let p: Vec<Vec<u8>> = indexes
            .compute_many("bi.private", &refs, None)
            .await
            .unwrap()
            .iter()
            .map(|v| v.to_bytes())
            .collect();
        client
            .execute(
                "INSERT INTO bi_plain SELECT * FROM unnest($1::bigint[], $2::text[])",
                &[&ids, &emails],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO bi_enc (id, email, idx_u, idx_p) \
                 SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[])",
                &[&ids, &cts, &u, &p],
            )
            .await
            .unwrap();
        start = end + 1;
    }
    for statement in [
        "CREATE INDEX ON bi_plain (email)",
        "CREATE INDEX ON bi_enc (idx_u)",
        "CREATE INDEX ON bi_enc (idx_p)",
        "VACUUM ANALYZE bi_plain",
        "VACUUM ANALYZE bi_enc",
    ] {
        client.batch_execute(statement).await.unwrap();
    }
    let fill_seconds = fill.elapsed().as_secs_f64();

    // Lookups, interleaved.
    let plain_q = client
        .prepare("SELECT id, email FROM bi_plain WHERE email = $1")
        .await
        .unwrap();
    let unique_q = client
        .prepare("SELECT id, email FROM bi_enc WHERE idx_u = ANY($1)")
        .await
        .unwrap();
    let private_q = client
        .prepare("SELECT id, email FROM bi_enc WHERE idx_p = ANY($1)")
        .await
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let (mut t_plain, mut t_unique, mut t_private) = (Vec::new(), Vec::new(), Vec::new());
    let (mut fp_unique, mut fp_private, mut candidates_private) = (0u64, 0u64, 0u64);
    for _ in 0..lookups {
        let id = rng.gen_range(1..=rows);
        let wanted = email(id);
        let t = Instant::now();
        let found = client.query(&plain_q, &[&wanted]).await.unwrap();
        t_plain.push(t.elapsed().as_secs_f64());
        assert_eq!(found.len(), 1);
        for (name, statement, times, fps) in [
            ("bi.unique", &unique_q, &mut t_unique, &mut fp_unique),
            ("bi.private", &private_q, &mut t_private, &mut fp_private),
        ] {
            let t = Instant::now();
            let values: Vec<Vec<u8>> = indexes
                .query_values(name, wanted.as_bytes())
                .await
                .unwrap()
                .iter()
                .map(|v| v.to_bytes())
                .collect();
            let candidates = client.query(statement, &[&values]).await.unwrap();
            let target = normalizer
                .apply_builtin(wanted.as_bytes())
                .unwrap()
                .into_owned();
            let mut matched = Vec::new();
            for row in &candidates {
                let plain = envelope.decrypt(row.get::<_, &[u8]>(1), AAD).await.unwrap();
                if normalizer.apply_builtin(&plain).unwrap()[..] == target[..] {
                    matched.push(row.get::<_, i64>(0));
                }
            }
            times.push(t.elapsed().as_secs_f64());
            assert_eq!(matched, [id], "{name}: exactly the row");
            *fps += (candidates.len() - 1) as u64;
            if name == "bi.private" {
                candidates_private += candidates.len() as u64;
            }
        }
    }

    // reindex into the empty idx_r, then the floor into idx_f.
    let t = Instant::now();
    let out = std::process::Command::new(envelope_bin)
        .args([
            "reindex",
            "--key",
            &key_uri,
            "--db",
            db,
            "--table",
            "bi_enc",
            "--column",
            "email",
            "--index-column",
            "idx_r",
            "--index",
            "bi.unique",
            "--dek-store",
            &store_uri,
            "--aad",
            "envelope:{table}.{column}",
            "--batch-size",
            "1000",
            "--json",
        ])
        .output()
        .unwrap();
    let reindex_seconds = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let same: i64 = client
        .query_one("SELECT count(*) FROM bi_enc WHERE idx_r = idx_u", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(same, rows, "reindex wrote the unique index values");
    let floor_seconds = floor(&client).await;

    let x = rows as f64;
    println!(
        "{}",
        serde_json::json!({
            "rows": rows,
            "lookups": lookups,
            "fill_seconds": fill_seconds,
            "private_bits": private_bits,
            "lookup_median_seconds": {
                "plaintext": median(t_plain.clone()),
                "unique": median(t_unique.clone()),
                "private": median(t_private.clone()),
            },
            "lookup_p90_seconds": {
                "plaintext": p90(t_plain),
                "unique": p90(t_unique),
                "private": p90(t_private),
            },
            "false_positives_per_lookup": {
                "unique": fp_unique as f64 / lookups as f64,
                "unique_theory": (x - 1.0) / 2f64.powi(64),
                "private": fp_private as f64 / lookups as f64,
                "private_theory": (x - 1.0) / 2f64.powi(i32::from(private_bits)),
                "private_rows_per_lookup": candidates_private as f64 / lookups as f64,
            },
            "reindex_seconds": reindex_seconds,
            "reindex_rows_per_second": x / reindex_seconds,
            "update_floor_seconds": floor_seconds,
            "reindex_over_floor": reindex_seconds / floor_seconds,
        })
    );
}

/// The engine's SQL without decryption or hashing: keyset pages of 1,000 (id, email,
/// idx_u), each written to `idx_f` with the engine's conditional `UPDATE … FROM unnest`
/// in its own transaction.
async fn floor(client: &tokio_postgres::Client) -> f64 {
    let page = client
        // `AS k` and `t.id`: a bare `ORDER BY id` would sort by the text output column.
        .prepare(
            "SELECT t.id::text AS k, t.email, t.idx_u FROM bi_enc AS t \
             WHERE t.id > $1 ORDER BY t.id LIMIT 1000",
        )
        .await
        .unwrap();
    let update = client
        .prepare(
            "UPDATE bi_enc AS t SET idx_f = v.new \
             FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::bytea[]) AS v(k, old, old_index, new) \
             WHERE t.id = v.k::bigint AND t.email = v.old AND t.idx_f IS NOT DISTINCT FROM v.old_index \
             RETURNING v.k",
        )
        .await
        .unwrap();
    let t = Instant::now();
    let mut after = 0i64;
    loop {
        let rows = client.query(&page, &[&after]).await.unwrap();
        if rows.is_empty() {
            break;
        }
        let keys: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let olds: Vec<Vec<u8>> = rows.iter().map(|r| r.get(1)).collect();
        let nulls: Vec<Option<Vec<u8>>> = vec![None; rows.len()];
        let news: Vec<Vec<u8>> = rows.iter().map(|r| r.get(2)).collect();
        after = keys.last().unwrap().parse().unwrap();
        client.batch_execute("BEGIN").await.unwrap();
        let written = client
            .query(&update, &[&keys, &olds, &nulls, &news])
            .await
            .unwrap();
        assert_eq!(written.len(), keys.len());
        client.batch_execute("COMMIT").await.unwrap();
    }
    t.elapsed().as_secs_f64()
}
