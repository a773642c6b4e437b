//! Checks both stores run: the contract, and tampering with rows through plain SQL (what
//! an attacker with write access to the store's table can do).
#![allow(dead_code, clippy::unwrap_used)]

pub mod index;

use std::future::Future;
use std::sync::Arc;

use envelope_core::compact::inspect_compact;
use envelope_core::{DekStore, Envelope, ErrorKind, LocalKeyring, LocalKms};

/// A keyring with key `default` in a temp dir (kept alive by the returned guard).
pub fn keyring() -> (tempfile::TempDir, LocalKeyring) {
    let dir = tempfile::tempdir().unwrap();
    let ring = LocalKeyring::create(dir.path().join("keyring.json"), "default").unwrap();
    (dir, ring)
}

pub fn envelope(ring: &LocalKeyring, store: Arc<dyn DekStore>) -> Envelope {
    Envelope::builder(LocalKms::new(ring.clone()), "default")
        .dek_store(store)
        .build()
        .unwrap()
}

/// Encrypts one value under each of two fresh DEKs (two writer envelopes: two rows), then
/// edits the rows with `sql` (statements over table `{T}`, where `{A}` and `{B}` stand for
/// the two rows' ids) and checks what a cold reader sees for the first value.
pub async fn tampering_fails_with_typed_errors<F, Fut>(
    ring: &LocalKeyring,
    open: impl Fn() -> Arc<dyn DekStore>,
    sql: F,
) where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let cases: [(&str, &str, ErrorKind); 5] = [
        (
            "altered commitment",
            "UPDATE {T} SET commitment = (SELECT commitment FROM {T} WHERE id = {B}) WHERE id = {A}",
            ErrorKind::DecryptionFailed,
        ),
        (
            "altered wrapped DEK",
            "UPDATE {T} SET wrapped_dek = (SELECT wrapped_dek FROM {T} WHERE id = {B}) WHERE id = {A}",
            ErrorKind::DecryptionFailed,
        ),
        (
            "swapped rows",
            "UPDATE {T} SET id = 0 - id WHERE id IN ({A}, {B}); UPDATE {T} SET id = CASE WHEN id = 0 - {A} THEN {B} ELSE {A} END WHERE id < 0",
            ErrorKind::DecryptionFailed,
        ),
        (
            "deleted row",
            "DELETE FROM {T} WHERE id = {A}",
            ErrorKind::DekNotFound,
        ),
        (
            "retired row",
            "UPDATE {T} SET state = 'retired' WHERE id = {A}",
            ErrorKind::DekNotFound,
        ),
    ];
    for (name, statement, expected) in cases {
        let store = open();
        let first = envelope(ring, store.clone());
        let second = envelope(ring, store.clone());
        let value = first
            .encrypt(b"123-45-6789", b"patients.ssn:1")
            .await
            .unwrap();
        let other = second
            .encrypt(b"987-65-4321", b"patients.ssn:2")
            .await
            .unwrap();
        let (a, b) = (
            inspect_compact(&value).unwrap().dek_id.get(),
            inspect_compact(&other).unwrap().dek_id.get(),
        );
        assert_ne!(a, b);
        // Untouched, a cold reader opens both.
        let reader = envelope(ring, store.clone());
        assert_eq!(
            reader.decrypt(&value, b"patients.ssn:1").await.unwrap(),
            b"123-45-6789"
        );
        let sql_text = statement
            .replace("{A}", &a.to_string())
            .replace("{B}", &b.to_string());
        sql(sql_text).await;
        let cold = envelope(ring, open());
        let err = cold.decrypt(&value, b"patients.ssn:1").await.unwrap_err();
        assert_eq!(err.kind(), expected, "{name}: {err}");
        // The other value is untouched by edits of row A (a swap moves it too).
        if name != "swapped rows" {
            assert_eq!(
                cold.decrypt(&other, b"patients.ssn:2").await.unwrap(),
                b"987-65-4321",
                "{name}"
            );
        }
        // Copying a value to another row fails through the AAD, whatever the store says.
        let err = cold.decrypt(&other, b"patients.ssn:1").await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::DecryptionFailed,
            "{name}: copied value"
        );
    }
}

/// After a store written before rows were bound has been opened (row 1 written by the old
/// schema): row 1 reads as unbound, the next id is 2, a new row is bound, and its id cannot
/// be inserted twice.
pub async fn check_migrated_store(store: &dyn DekStore) {
    let old = store
        .get(envelope_core::DekId::new(1).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!old.bound);
    let id = store.reserve_id().await.unwrap();
    assert_eq!(id.get(), 2);
    let mut new = envelope_core::compact::NewDek {
        suite: old.suite,
        wrapped: old.wrapped.clone(),
        commitment: old.commitment,
    };
    new.commitment[0] = 1;
    store.insert(id, &new).await.unwrap();
    assert!(store.get(id).await.unwrap().unwrap().bound);
    assert!(matches!(
        store.insert(id, &new).await,
        Err(envelope_core::Error::DekStore { .. })
    ));
}
