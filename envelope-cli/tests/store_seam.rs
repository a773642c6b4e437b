//! The store seam from outside the crate: a store the CLI does not know (ciphertexts in
//! memory) implements `engine::store::Store`, and the engine's census and rewrap run on it
//! unchanged, with concurrent writers re-read and re-processed.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use envelope_cli::engine::census;
use envelope_cli::engine::process::{JobKind, Processor};
use envelope_cli::engine::run::{self, JobOptions};
use envelope_cli::engine::store::{
    Change, Checkpoint, CommitError, Committed, Range, Record, Store, StoreInfo, Value, Write,
    WriteGuarantee,
};
use envelope_cli::exit::CliError;
use envelope_cli::value::Stored;
use tokio::sync::Mutex;

use common::Keyring;

/// Ciphertexts in memory by name; an "application" rewrites one value under the job's
/// feet on the first commit (the engine must read it again and move the new value).
struct InMemory {
    values: Mutex<BTreeMap<String, Vec<u8>>>,
    interloper: Mutex<Option<(String, Vec<u8>)>>,
    commits: AtomicUsize,
}

fn record(key: &str, bytes: &[u8]) -> Record {
    Record {
        position: key.to_owned(),
        location: format!("memory[{key}]"),
        read: bytes.to_vec(),
        value: Value::Ciphertext {
            stored: Stored::from_file_bytes(bytes.to_vec()),
            aad: Ok(Vec::new()),
        },
        index: None,
    }
}

#[async_trait]
impl Store for InMemory {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: "memory",
            name: "memory".into(),
            connection: None,
            writes: WriteGuarantee::Transactional,
        }
    }

    async fn page(
        &self,
        range: &Range,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, CliError> {
        let map = self.values.lock().await;
        let after = after.or(range.start.as_deref());
        Ok(map
            .iter()
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .map(|(k, v)| record(k, v))
            .collect())
    }

    async fn reread(&self, positions: &[String]) -> Result<Vec<Record>, CliError> {
        let map = self.values.lock().await;
        Ok(positions
            .iter()
            .filter_map(|p| map.get(p).map(|v| record(p, v)))
            .collect())
    }

    async fn commit(
        &self,
        writes: &[Write<'_>],
        _checkpoint: Option<&Checkpoint<'_>>,
    ) -> Result<Committed, CommitError> {
        let mut map = self.values.lock().await;
        if self.commits.fetch_add(1, Ordering::SeqCst) == 0
            && let Some((key, value)) = self.interloper.lock().await.take()
        {
            map.insert(key, value);
        }
        let conflicts: Vec<String> = writes
            .iter()
            .filter(|w| map.get(&w.record.position) != Some(&w.record.read))
            .map(|w| w.record.position.clone())
            .collect();
        if conflicts.is_empty() {
            for w in writes {
                let Change::Ciphertext(new) = w.change else {
                    panic!("a DEK row change for a value store");
                };
                map.insert(w.record.position.clone(), new.clone());
            }
        }
        Ok(Committed {
            conflicts,
            superseded: 0,
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn census_and_rewrap_run_on_a_store_the_cli_does_not_know() {
    let keyring = Keyring::new();
    let env = keyring.envelope(1_000);
    let mut values = BTreeMap::new();
    for i in 0..250 {
        values.insert(
            format!("k{i:03}"),
            env.encrypt(format!("value {i}").as_bytes(), b"")
                .await
                .unwrap(),
        );
    }
    let interloper = env.encrypt(b"written meanwhile", b"").await.unwrap();
    keyring.rotate();
    let store = Arc::new(InMemory {
        values: Mutex::new(values),
        interloper: Mutex::new(Some(("k007".into(), interloper))),
        commits: AtomicUsize::new(0),
    });

    let before = census::of_store(&*store, None, None).await.unwrap();
    assert_eq!(before.scanned, 250);

    let (kms, key_id) = envelope::kms_from_uri(&keyring.uri).unwrap();
    let envelope = envelope::Envelope::builder_dyn(kms, key_id)
        .build()
        .unwrap();
    let processor = Arc::new(Processor::new(envelope, JobKind::Rewrap));
    let options = JobOptions {
        key_uri: keyring.uri.clone(),
        batch_size: 100,
        workers: 1,
        resume: None,
        join: None,
        parts: 1,
        lease: Duration::from_secs(60),
    };
    let end = run::run(store.clone(), processor, &options).await.unwrap();
    let summary = end.summary;
    assert!(end.stopped.is_none());
    assert_eq!(summary.store_kind, "memory");
    assert_eq!(summary.total.scanned, 250, "{summary:?}");
    assert_eq!(summary.total.changed, 250, "{summary:?}");
    assert_eq!(summary.total.concurrent_updates, 1, "{summary:?}");

    // Every value, the one written meanwhile included, is under version 2 and decrypts.
    let map = store.values.lock().await;
    for (key, value) in map.iter() {
        assert_eq!(envelope::Envelope::inspect(value).unwrap().key_version, "2");
        let expected = if key == "k007" {
            b"written meanwhile".to_vec()
        } else {
            format!("value {}", key[1..].parse::<u32>().unwrap()).into_bytes()
        };
        assert_eq!(env.decrypt(value, b"").await.unwrap(), expected, "{key}");
    }
}
