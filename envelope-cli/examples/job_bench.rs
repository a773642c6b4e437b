//! Helpers of `scripts/bench-jobs.py` (not a benchmark by itself):
//!
//! ```text
//! job_bench fill  DB_URL TABLE ROWS KEY_URI [DEK_STORE_URI]
//!                                             # TABLE(id bigint pk, v bytea): 64-byte values,
//!                                             # v1, or the compact form with a DEK store
//! job_bench floor DB_URL TABLE BATCH          # PostgreSQL alone: the job's reads and
//!                                             # conditional UPDATEs, same batching, values unchanged
//! ```
//!
//! `floor` runs the job engine's own SQL (keyset page, `UPDATE … FROM unnest(…) WHERE the
//! row still holds the value read`, one transaction per batch) with every new value equal to
//! the old one: what the rewrap job would cost if encryption and the KMS were free.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use envelope::{CachePolicy, Envelope, LocalKms};
use envelope_cli::stores::postgres::{Target, connect};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("fill") => {
            let store = args.get(6).map(String::as_str);
            fill(
                &args[2],
                &args[3],
                args[4].parse().unwrap(),
                &args[5],
                store,
            )
            .await
        }
        Some("floor") => floor(&args[2], &args[3], args[4].parse().unwrap()).await,
        _ => {
            eprintln!(
                "usage: job_bench fill DB TABLE ROWS KEY_URI [DEK_STORE_URI] | floor DB TABLE BATCH"
            );
            std::process::exit(2);
        }
    }
}

async fn fill(db: &str, table: &str, rows: i64, key_uri: &str, store: Option<&str>) {
    let (client, _) = connect(db).await.unwrap();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id bigint PRIMARY KEY, v bytea)"
        ))
        .await
        .unwrap();
    let (kms, key_id) = LocalKms::from_uri(key_uri).unwrap();
    // A new DEK every 10,000 values: 100 DEKs per million rows.
    let mut builder = Envelope::builder(kms, key_id)
        .cache_policy(CachePolicy::default().with_max_messages(10_000));
    if let Some(store) = store {
        builder = builder.dek_store(envelope::open_dek_store(store).unwrap());
    }
    let env = builder.build().unwrap();
    let aad = format!("envelope:{table}.v").into_bytes();
    let mut start = 1;
    while start <= rows {
        let end = (start + 9_999).min(rows);
        let mut ids = Vec::new();
        let mut values = Vec::new();
        for id in start..=end {
            let mut plaintext = [b'x'; 64];
            plaintext[..8].copy_from_slice(&id.to_be_bytes());
            ids.push(id);
            values.push(env.encrypt(&plaintext, &aad).await.unwrap());
        }
        client
            .execute(
                &format!("INSERT INTO {table} SELECT * FROM unnest($1::bigint[], $2::bytea[])"),
                &[&ids, &values],
            )
            .await
            .unwrap();
        start = end + 1;
    }
    client
        .batch_execute(&format!("VACUUM ANALYZE {table}"))
        .await
        .unwrap();
}

async fn floor(db: &str, table: &str, batch: i64) {
    let (mut client, _) = connect(db).await.unwrap();
    let target = Target::resolve(&client, table, "v", &[]).await.unwrap();
    let update = target.update_query();
    let started = Instant::now();
    let mut after: Option<String> = None;
    let mut rows_done = 0u64;
    loop {
        let (sql, params) = target.page_query(&after, &None, &batch);
        let rows = client.query(&sql, &params).await.unwrap();
        let Some(last) = rows.last() else { break };
        after = Some(last.get(0));
        let keys: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let values: Vec<Vec<u8>> = rows.iter().map(|r| r.get(1)).collect();
        let tx = client.transaction().await.unwrap();
        let updated = tx.query(&update, &[&keys, &values, &values]).await.unwrap();
        assert_eq!(updated.len(), keys.len());
        tx.commit().await.unwrap();
        rows_done += keys.len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "rows": rows_done, "seconds": seconds, "rows_per_second": rows_done as f64 / seconds })
    );
}
