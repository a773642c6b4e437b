//! The PostgreSQL store against a real server (`scripts/lib/postgres.sh` sets
//! `ENVELOPE_TEST_PG_URL`; without it these tests fail, they never skip): the contract,
//! tampering through SQL, ids never reused (also after an import), a dropped connection.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use envelope_core::DekStore;
use envelope_core::compact::inspect_compact;
use envelope_core::testing::check_dek_store;
use envelope_dekstore::{PgDekStore, open_dek_store};

fn pg_url() -> String {
    std::env::var("ENVELOPE_TEST_PG_URL")
        .expect("ENVELOPE_TEST_PG_URL is not set: run scripts/test.sh, which starts PostgreSQL")
}

/// A table name no other test (or earlier run) uses.
fn table() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "deks_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

async fn sql(statements: &str) {
    let (client, connection) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(statements).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_contract() {
    let store = PgDekStore::new(&pg_url(), &table()).unwrap();
    check_dek_store(&store).await.unwrap();
    // A schema-qualified table works too.
    sql("CREATE SCHEMA IF NOT EXISTS keys").await;
    let store = PgDekStore::new(&pg_url(), &format!("keys.{}", table())).unwrap();
    check_dek_store(&store).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_postgres_rows_fail_with_typed_errors() {
    let (_guard, ring) = common::keyring();
    let table = table();
    let url = pg_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let uri = format!("{url}{sep}table={table}");
    let open = || open_dek_store(&uri).unwrap();
    common::tampering_fails_with_typed_errors(&ring, open, |statement| {
        let statement = statement.replace("{T}", &table);
        async move { sql(&statement).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_never_reused_not_even_after_a_delete_or_an_import() {
    let (_guard, ring) = common::keyring();
    let table = table();
    let store: Arc<dyn DekStore> = Arc::new(PgDekStore::new(&pg_url(), &table).unwrap());
    let id_of = |ct: &[u8]| inspect_compact(ct).unwrap().dek_id.get();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let env = common::envelope(&ring, store.clone());
        ids.push(id_of(&env.encrypt(b"x", b"").await.unwrap()));
    }
    assert_eq!(ids, [1, 2, 3]);
    sql(&format!("DELETE FROM {table} WHERE id = 3")).await;
    let env = common::envelope(&ring, store.clone());
    assert_eq!(id_of(&env.encrypt(b"x", b"").await.unwrap()), 4);
    // An imported row far ahead moves the sequence past it, never back.
    let mut row = store
        .get(envelope_core::DekId::new(1).unwrap())
        .await
        .unwrap()
        .unwrap();
    row.id = envelope_core::DekId::new(1000).unwrap();
    store.import(&row).await.unwrap();
    let env = common::envelope(&ring, store.clone());
    assert_eq!(id_of(&env.encrypt(b"x", b"").await.unwrap()), 1001);
    row.id = envelope_core::DekId::new(10).unwrap();
    store.import(&row).await.unwrap();
    let env = common::envelope(&ring, store.clone());
    assert_eq!(id_of(&env.encrypt(b"x", b"").await.unwrap()), 1002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_reconnects_and_a_dead_server_is_retryable() {
    let (_guard, ring) = common::keyring();
    let table = table();
    let store: Arc<dyn DekStore> = Arc::new(PgDekStore::new(&pg_url(), &table).unwrap());
    let writer = common::envelope(&ring, store.clone());
    let ct = writer.encrypt(b"kept", b"").await.unwrap();
    // The server ends every connection of this table's store (as a restart would).
    let (client, connection) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let terminated = client
        .query(
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE pid <> pg_backend_pid() AND query LIKE '%{table}%'"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(terminated.len(), 1, "the store's one connection");
    let reader = common::envelope(&ring, store.clone());
    let mut result = reader.decrypt(&ct, b"").await;
    if let Err(e) = &result {
        // The first call may meet the dead connection (retryable); the next reconnects.
        assert!(e.is_retryable(), "{e}");
        reader.clear_caches();
        result = reader.decrypt(&ct, b"").await;
    }
    assert_eq!(result.unwrap(), b"kept");
    // Nothing listening: a retryable error, not a hang, and no password in the message.
    let dead = open_dek_store("postgres://envelope:s3cret@127.0.0.1:9/postgres?connect_timeout=2")
        .unwrap();
    let env = common::envelope(&ring, dead.clone());
    let err = env.encrypt(b"x", b"").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(!format!("{err} {err:?} {dead:?}").contains("s3cret"));
    // A role without the table's privileges: a typed store error naming the refusal.
    sql(&format!(
        "DO $$ BEGIN CREATE ROLE envelope_reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         REVOKE ALL ON {table} FROM envelope_reader"
    ))
    .await;
    let reader_url = pg_url().replacen("envelope@", "envelope_reader@", 1);
    let denied = open_dek_store(&format!("{reader_url}?table={table}")).unwrap();
    let env = common::envelope(&ring, denied);
    let err = env.decrypt(&ct, b"").await.unwrap_err();
    assert_eq!(err.kind(), envelope_core::ErrorKind::DekStore, "{err}");
    assert!(err.to_string().contains("permission denied"), "{err}");
}

/// A table written before rows were bound to their ids (no `bound` column) gets the column
/// on first use, and its rows read as unbound; new rows are bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_from_before_row_binding_is_migrated() {
    let table = table();
    sql(&format!(
        "CREATE TABLE {table} (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, suite smallint NOT NULL,
            provider smallint NOT NULL, key_id text NOT NULL, key_version text NOT NULL,
            wrapped_dek bytea NOT NULL, commitment bytea NOT NULL CHECK (length(commitment) = 32),
            created timestamptz NOT NULL DEFAULT now(),
            state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')));
         INSERT INTO {table} (suite, provider, key_id, key_version, wrapped_dek, commitment)
         VALUES (1, 1, 'k', '1', '\\x01', decode(repeat('00', 32), 'hex'));"
    ))
    .await;
    let store = PgDekStore::new(&pg_url(), &table).unwrap();
    common::check_migrated_store(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_indexes_keep_their_contract_in_postgres() {
    let (_guard, ring) = common::keyring();
    let table = table();
    let url = pg_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let uri = format!("{url}{sep}table={table}");
    let open = || envelope_dekstore::open_index_key_store(&uri).unwrap();
    let keys = format!("{table}_index_keys");
    common::index::blind_indexes_keep_their_contract(&ring, open, |statement| {
        let statement = statement.replace("{T}", &keys);
        async move { sql(&statement).await }
    })
    .await;
}
