//! The job engine: census, rewrap, reencrypt and retire written once against one store
//! seam ([`store::Store`]), with the rate limit, progress, checkpoints, retries of
//! concurrent updates, cooperative workers and the summary in one place.
//!
//! | module | what it does |
//! |---|---|
//! | [`store`] | the seam: records, ranges, write-back with compare-and-set, the job ledger |
//! | [`run`] | a rewrap or re-encrypt job over one store: plan, pages, commits, summary |
//! | [`process`] | what a job does to one page of records (KMS calls happen here) |
//! | [`census`] | counting records by KEK provider, key, version and suite |
//! | [`headers`] | a value's header facts, a compact one's through its DEK store |
//! | [`counts`] | what happened to a record, and a job's counts |
//! | [`summary`] | the end-of-job summary, the progress bar |
//! | [`ratelimit`] | `--max-rate`: at most N KMS calls per second |
//!
//! The engine never names a store; the stores (in [`crate::stores`]) never name a job.
//!
//! # Adding a store
//!
//! A store is one module in `src/stores/` and one line in [`crate::stores::open_values`]
//! (plus its command-line arguments). It implements [`store::Store`]:
//!
//! ```
//! use async_trait::async_trait;
//! use envelope_cli::engine::store::{
//!     Change, Checkpoint, CommitError, Committed, Range, Record, Store, StoreInfo, Value,
//!     Write, WriteGuarantee,
//! };
//! use envelope_cli::exit::CliError;
//! use envelope_cli::value::Stored;
//! use tokio::sync::Mutex;
//!
//! /// Ciphertexts in memory, keyed by name (a stand-in for an object store, a KV store…).
//! struct InMemory(Mutex<std::collections::BTreeMap<String, Vec<u8>>>);
//!
//! fn record(key: &str, bytes: &[u8]) -> Record {
//!     Record {
//!         position: key.to_owned(),
//!         location: format!("memory[{key}]"),
//!         read: bytes.to_vec(),
//!         value: Value::Ciphertext {
//!             stored: Stored::from_file_bytes(bytes.to_vec()),
//!             aad: Ok(Vec::new()),
//!         },
//!         index: None,
//!     }
//! }
//!
//! #[async_trait]
//! impl Store for InMemory {
//!     fn info(&self) -> StoreInfo {
//!         StoreInfo {
//!             kind: "memory",
//!             name: "memory".into(),
//!             connection: None,
//!             writes: WriteGuarantee::Transactional,
//!         }
//!     }
//!
//!     // Positions in order, after `after`, within the range.
//!     async fn page(&self, range: &Range, after: Option<&str>, limit: usize)
//!         -> Result<Vec<Record>, CliError> {
//!         let map = self.0.lock().await;
//!         let after = after.or(range.start.as_deref());
//!         Ok(map
//!             .iter()
//!             .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
//!             .filter(|(k, _)| range.end.as_deref().is_none_or(|e| k.as_str() <= e))
//!             .take(limit)
//!             .map(|(k, v)| record(k, v))
//!             .collect())
//!     }
//!
//!     async fn reread(&self, positions: &[String]) -> Result<Vec<Record>, CliError> {
//!         let map = self.0.lock().await;
//!         Ok(positions
//!             .iter()
//!             .filter_map(|p| map.get(p).map(|v| record(p, v)))
//!             .collect())
//!     }
//!
//!     // All or nothing: a value changed since it was read is a conflict, and then
//!     // nothing is written (the engine reads it again and commits the page again).
//!     async fn commit(&self, writes: &[Write<'_>], _checkpoint: Option<&Checkpoint<'_>>)
//!         -> Result<Committed, CommitError> {
//!         let mut map = self.0.lock().await;
//!         let conflicts: Vec<String> = writes
//!             .iter()
//!             .filter(|w| map.get(&w.record.position) != Some(&w.record.read))
//!             .map(|w| w.record.position.clone())
//!             .collect();
//!         if conflicts.is_empty() {
//!             for w in writes {
//!                 if let Change::Ciphertext(new) = w.change {
//!                     map.insert(w.record.position.clone(), new.clone());
//!                 }
//!             }
//!         }
//!         Ok(Committed { conflicts, superseded: 0 })
//!     }
//! }
//! ```
//!
//! `tests/store_seam.rs` runs census and a rewrap (with a concurrent writer) on such a
//! store. Census and every job then run on it; a store that keeps checkpoints returns a
//! [`store::Ledger`] from [`store::Store::ledger`] (resumable jobs; with leases, jobs that
//! processes on many machines share with `--join`).

pub mod census;
pub mod counts;
pub mod headers;
pub mod process;
pub mod ratelimit;
pub mod run;
pub mod store;
pub mod summary;
