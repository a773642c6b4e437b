//! The SQLite store: the contract, tampering through SQL, ids never reused, two processes'
//! stores on one file.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use envelope_core::DekStore;
use envelope_core::compact::inspect_compact;
use envelope_core::testing::check_dek_store;
use envelope_dekstore::{SqliteDekStore, open_dek_store};

/// Runs statements on the store file through a connection of its own (as another
/// program with write access would).
fn sql(path: &std::path::Path, statements: &str) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    connection.execute_batch(statements).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteDekStore::open(dir.path().join("deks.sqlite")).unwrap();
    check_dek_store(&store).await.unwrap();
    assert!(format!("{store:?}").contains("deks.sqlite"));
    // Owner-only file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("deks.sqlite"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_sqlite_rows_fail_with_typed_errors() {
    let (_guard, ring) = common::keyring();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deks.sqlite");
    let uri = format!("sqlite://{}", path.display());
    let open = || open_dek_store(&uri).unwrap();
    common::tampering_fails_with_typed_errors(&ring, open, |statement| {
        let path = path.clone();
        async move { sql(&path, &statement.replace("{T}", "envelope_deks")) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_never_reused_and_two_processes_share_one_file() {
    let (_guard, ring) = common::keyring();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deks.sqlite");
    let first: Arc<dyn DekStore> = Arc::new(SqliteDekStore::open(&path).unwrap());
    let second: Arc<dyn DekStore> = Arc::new(SqliteDekStore::open(&path).unwrap());
    let mut ids = Vec::new();
    for store in [&first, &second, &first, &second] {
        let env = common::envelope(&ring, store.clone());
        let ct = env.encrypt(b"x", b"").await.unwrap();
        ids.push(inspect_compact(&ct).unwrap().dek_id.get());
    }
    assert_eq!(ids, [1, 2, 3, 4]);
    // Deleting the newest row does not give its id to the next DEK.
    sql(&path, "DELETE FROM envelope_deks WHERE id = 4");
    let env = common::envelope(&ring, first.clone());
    let ct = env.encrypt(b"x", b"").await.unwrap();
    assert_eq!(inspect_compact(&ct).unwrap().dek_id.get(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_dek_store(&format!(
        "sqlite://{}/missing/dir/deks.sqlite",
        dir.path().display()
    ))
    .unwrap_err();
    assert_eq!(err.kind(), envelope_core::ErrorKind::DekStore, "{err}");
    assert!(err.to_string().contains("missing/dir"), "{err}");
    let not_db = dir.path().join("not.sqlite");
    std::fs::write(
        &not_db,
        b"this is not a database, just forty-odd bytes of text",
    )
    .unwrap();
    let err = open_dek_store(&format!("sqlite://{}", not_db.display())).unwrap_err();
    assert_eq!(err.kind(), envelope_core::ErrorKind::DekStore, "{err}");
}

/// A store file written before rows were bound to their ids (no `bound` column) opens, gets
/// the column, and its rows read as unbound; new rows are bound.
#[tokio::test]
async fn a_file_from_before_row_binding_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE envelope_deks (
                id INTEGER PRIMARY KEY AUTOINCREMENT, suite INTEGER NOT NULL,
                provider INTEGER NOT NULL, key_id TEXT NOT NULL, key_version TEXT NOT NULL,
                wrapped_dek BLOB NOT NULL,
                commitment BLOB NOT NULL CHECK (length(commitment) = 32),
                created INTEGER NOT NULL,
                state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')));
             INSERT INTO envelope_deks (suite, provider, key_id, key_version, wrapped_dek, commitment, created)
             VALUES (1, 1, 'k', '1', x'01', zeroblob(32), 0);",
        )
        .unwrap();
    }
    let store = SqliteDekStore::open(&path).unwrap();
    common::check_migrated_store(&store).await;
    // Opening again does not migrate twice.
    drop(store);
    SqliteDekStore::open(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_indexes_keep_their_contract_in_sqlite() {
    let (_guard, ring) = common::keyring();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deks.sqlite");
    let uri = format!("sqlite://{}", path.display());
    let open = || envelope_dekstore::open_index_key_store(&uri).unwrap();
    common::index::blind_indexes_keep_their_contract(&ring, open, |statement| {
        let path = path.clone();
        async move { sql(&path, &statement.replace("{T}", "envelope_index_keys")) }
    })
    .await;
}
