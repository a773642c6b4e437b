//! The blind-index lifecycle on a real index key store: create, compute, KEK rotation
//! (no index value changes), index-key rotation (the query window), retirement, caller
//! normalizers, and tampering with rows through SQL.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;

use envelope_core::blind_index::{
    BlindIndexes, IndexKeyStore, IndexSettings, IndexState, Normalizer,
};
use envelope_core::{Envelope, ErrorKind, LocalKeyring, LocalKms};

fn indexes(ring: &LocalKeyring, store: Arc<dyn IndexKeyStore>) -> BlindIndexes {
    let envelope = Envelope::builder(LocalKms::new(ring.clone()), "default")
        .build()
        .unwrap();
    BlindIndexes::new(&envelope, store)
}

fn kind<T: std::fmt::Debug>(r: envelope_core::Result<T>) -> ErrorKind {
    r.expect_err("expected an error").kind()
}

/// Runs the lifecycle; `open` gives a fresh handle on the same store (a new process),
/// `sql` runs statements on the index key table `{T}`.
pub async fn blind_indexes_keep_their_contract<F, Fut>(
    ring: &LocalKeyring,
    open: impl Fn() -> Arc<dyn IndexKeyStore>,
    sql: F,
) where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let email = Normalizer::parse("nfkc_casefold+trim_collapse").unwrap();
    let bi = indexes(ring, open());
    let created = bi
        .create("users.email", &IndexSettings::unique(email.clone()))
        .await
        .unwrap();
    assert_eq!(
        (created.version, created.state, created.bits),
        (1, IndexState::Active, 64)
    );
    let v1 = bi.compute("users.email", b"a@b.example").await.unwrap();
    assert_eq!(v1.version(), 1);
    assert_eq!(v1.to_bytes().len(), 2 + 8);
    assert_eq!(
        bi.compute("users.email", "  A@B.EXAMPLE ".as_bytes())
            .await
            .unwrap(),
        v1
    );
    assert_ne!(bi.compute("users.email", b"c@b.example").await.unwrap(), v1);
    assert_eq!(bi.kms_unwraps(), 1, "one unwrap per version per process");
    assert_eq!(
        kind(
            bi.create("users.email", &IndexSettings::unique(email.clone()))
                .await
        ),
        ErrorKind::InvalidConfig
    );
    assert_eq!(
        kind(bi.compute("users.phone", b"1").await),
        ErrorKind::IndexNotFound
    );
    assert_eq!(
        kind(
            bi.create("bad", &IndexSettings::private(7, Normalizer::exact()))
                .await
        ),
        ErrorKind::InvalidConfig
    );
    assert_eq!(
        kind(
            bi.create("bad name", &IndexSettings::unique(Normalizer::exact()))
                .await
        ),
        ErrorKind::InvalidConfig
    );

    // KEK rotation: the index key's wrap moves, no index value changes.
    let before = open().index_keys("users.email").await.unwrap();
    ring.rotate("default").unwrap();
    let moved = indexes(ring, open()).rewrap_keys().await.unwrap();
    assert_eq!((moved.examined, moved.rewrapped), (1, 1));
    let after = open().index_keys("users.email").await.unwrap();
    assert_ne!(before[0].wrapped.key_version, after[0].wrapped.key_version);
    assert_eq!(before[0].commitment, after[0].commitment);
    let fresh = indexes(ring, open());
    assert_eq!(
        fresh.compute("users.email", b"a@b.example").await.unwrap(),
        v1
    );
    assert_eq!(
        indexes(ring, open()).rewrap_keys().await.unwrap().rewrapped,
        0
    );

    // Index-key rotation: v2 writes, v1 and v2 answer queries.
    let rotated = fresh.rotate("users.email", None).await.unwrap();
    assert_eq!(
        (rotated.version, rotated.normalizer.as_str()),
        (2, "nfkc_casefold+trim_collapse")
    );
    let v2 = fresh.compute("users.email", b"a@b.example").await.unwrap();
    assert_eq!(v2.version(), 2);
    assert_ne!(v2.tag(), v1.tag());
    let window = fresh
        .query_values("users.email", b"A@B.example")
        .await
        .unwrap();
    assert_eq!(window, vec![v2, v1]);
    let states: Vec<_> = fresh
        .describe("users.email")
        .await
        .unwrap()
        .iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, [IndexState::Query, IndexState::Active]);
    // The active version cannot be retired; the old one can, and then leaves the window.
    assert_eq!(
        kind(fresh.set_state("users.email", 2, IndexState::Retired).await),
        ErrorKind::InvalidConfig
    );
    assert_eq!(
        kind(fresh.set_state("users.email", 9, IndexState::Retired).await),
        ErrorKind::IndexNotFound
    );
    fresh
        .set_state("users.email", 1, IndexState::Retired)
        .await
        .unwrap();
    assert_eq!(
        fresh
            .query_values("users.email", b"a@b.example")
            .await
            .unwrap(),
        vec![v2]
    );
    // Another process sees it after a refresh.
    let other = indexes(ring, open());
    assert_eq!(
        other
            .query_values("users.email", b"a@b.example")
            .await
            .unwrap(),
        vec![v2]
    );

    // A declared normalizer must be the stored one.
    other
        .check_definition("users.email", "nfkc_casefold+trim_collapse", Some(64))
        .await
        .unwrap();
    assert_eq!(
        kind(other.check_definition("users.email", "exact", None).await),
        ErrorKind::IndexMismatch
    );
    assert_eq!(
        kind(
            other
                .check_definition("users.email", "nfkc_casefold+trim_collapse", Some(32))
                .await
        ),
        ErrorKind::IndexMismatch
    );

    // A caller normalizer runs where registered, and is checked by name.
    let ssn = Normalizer::parse("custom:strip_country+digits").unwrap();
    other
        .create("users.ssn", &IndexSettings::private(16, ssn))
        .await
        .unwrap();
    assert_eq!(
        kind(other.compute("users.ssn", b"US-123-45-6789").await),
        ErrorKind::IndexMismatch
    );
    assert_eq!(
        kind(
            other
                .compute_applied("users.ssn", b"123", Some("other"))
                .await
        ),
        ErrorKind::IndexMismatch
    );
    assert_eq!(
        kind(
            other
                .compute_applied("users.email", b"a", Some("strip_country"))
                .await
        ),
        ErrorKind::IndexMismatch
    );
    other.register_normalizer(
        "strip_country",
        Arc::new(|v: &[u8]| v.strip_prefix(b"US-").unwrap_or(v).to_vec()),
    );
    let s = other.compute("users.ssn", b"US-123-45-6789").await.unwrap();
    assert_eq!(s.tag().len(), 2);
    assert_eq!(
        other
            .compute_applied("users.ssn", b"123-45-6789", Some("strip_country"))
            .await
            .unwrap(),
        s
    );
    assert_eq!(other.list().await.unwrap().len(), 3);

    // Tampering with the rows through SQL: each fails typed, for a process that loads them.
    let cases: [(&str, &str, ErrorKind); 4] = [
        (
            "bits altered (the commitment binds them)",
            "UPDATE {T} SET bits = 128 WHERE index_name = 'users.email' AND version = 2",
            ErrorKind::IndexMismatch,
        ),
        (
            "normalizer altered",
            "UPDATE {T} SET normalizer = 'exact' WHERE index_name = 'users.email' AND version = 2",
            ErrorKind::IndexMismatch,
        ),
        (
            "wrapped key of another index",
            "UPDATE {T} SET wrapped_key = (SELECT wrapped_key FROM {T} WHERE index_name = 'users.ssn') WHERE index_name = 'users.email' AND version = 2",
            ErrorKind::DecryptionFailed,
        ),
        (
            "commitment altered",
            "UPDATE {T} SET commitment = (SELECT commitment FROM {T} WHERE index_name = 'users.ssn') WHERE index_name = 'users.email' AND version = 2",
            ErrorKind::DecryptionFailed,
        ),
    ];
    let original = open().index_keys("users.email").await.unwrap();
    for (what, statement, expected) in cases {
        sql(statement.to_owned()).await;
        let cold = indexes(ring, open());
        assert_eq!(
            kind(cold.compute("users.email", b"a@b.example").await),
            expected,
            "{what}"
        );
        // Restore the row for the next case (a fresh store with the original rows).
        sql("DELETE FROM {T} WHERE index_name = 'users.email' AND version = 2".into()).await;
        let store = open();
        let mut row = original[1].clone();
        row.state = IndexState::Query;
        store.insert_index_key(&row, true).await.unwrap();
        let restored = indexes(ring, open());
        assert_eq!(
            restored
                .compute("users.email", b"a@b.example")
                .await
                .unwrap(),
            v2,
            "{what}"
        );
    }
}
