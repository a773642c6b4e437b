//! A tree of Parquet files under modular encryption (PME) whose data keys envelope wrapped
//! (`envelope_sdk.parquet` in Python, `EnvelopeKmsClient` in Java and Spark), with their key
//! material outside the files: one sidecar `_KEY_MATERIAL_FOR_<file>.json` beside each data
//! file (docs/PARQUET.md), in a directory or under an S3 prefix ([`tree::Tree`]).
//!
//! The store's values are the wrapped keys in the sidecars (the footer key and one key per
//! encrypted column), each an envelope ciphertext in text form, so census, rewrap, reencrypt
//! and retire run on them unchanged; a data file is never opened beyond its last four bytes.
//! Positions are `DATA_FILE#KEY_REFERENCE`, relative to the tree, in order. A rewrap
//! replaces a sidecar after checking that every wrapped key it changes is still the one
//! read: in a directory by a temporary file renamed over it, removing the Hadoop checksum
//! beside it ([`WriteGuarantee::CompareThenReplace`]); on S3 by a PUT conditional on the
//! ETag read, so that a concurrent writer's sidecar is never overwritten
//! ([`WriteGuarantee::PerValueNewerWins`]). No checkpoint: a rerun finds finished keys
//! current.
//!
//! Parquet files without a sidecar are values too, unreadable ones, so that a census counts
//! them and says why: not encrypted, or encrypted with the key material inside the file
//! (which a rotation can only move by rewriting the file).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::engine::store::{
    Checkpoint, CommitError, Committed, Range, Record, Store, StoreInfo, Value, Write,
    WriteGuarantee,
};
use crate::exit::CliError;
use crate::s3::{S3, S3Url};

pub mod sidecar;
pub mod tree;

use sidecar::{Sidecar, data_of, sidecar_of, wrapped_key, wrapped_text};
use tree::{Replaced, Tree};

pub use sidecar::{AAD_PREFIX, SIDECAR_PREFIX, SIDECAR_SUFFIX};

/// What a position is.
#[derive(Debug, Clone)]
enum Entry {
    /// One wrapped key in a sidecar.
    Key {
        /// The sidecar, relative to the tree.
        sidecar: String,
        /// Its key reference (`footerKey`, `columnKey0`, …).
        reference: String,
    },
    /// A Parquet file (or sidecar) whose keys this store cannot list, and why.
    Unreadable { reason: String },
}

const NO_SIDECAR_ENCRYPTED: &str = "an encrypted footer with the key material inside the file \
     (no sidecar): moving its keys to a new KEK version rewrites the file; write with external \
     key material to rotate by sidecar";
const NO_SIDECAR_PLAIN: &str = "no key material sidecar: not encrypted, or encrypted with a \
     plaintext footer and the key material inside the file";

/// A sidecar as read: its entries and, on S3, its ETag.
type ReadSidecar = Option<(Sidecar, Option<String>)>;

/// The Parquet files of a tree, through the key material in their sidecars.
pub struct ParquetTree {
    tree: Tree,
    /// Every position, in order.
    positions: Vec<String>,
    entries: HashMap<String, Entry>,
}

impl ParquetTree {
    /// The tree at `location`: `s3://bucket/prefix` (through `endpoint`, when given) or a
    /// directory.
    pub async fn open(location: &Path, endpoint: Option<&str>) -> Result<Self, CliError> {
        let text = location.to_string_lossy();
        let tree = match S3Url::parse(&text) {
            Some(url) => Tree::S3 {
                s3: S3::connect(endpoint).await,
                url: url?,
            },
            None => Tree::Local(location.to_path_buf()),
        };
        Self::walk(tree).await
    }

    /// Lists the tree: each sidecar's key references, and each Parquet file without a
    /// sidecar, present now, are the job's.
    async fn walk(tree: Tree) -> Result<Self, CliError> {
        let files = tree.list().await?;
        let present: HashSet<&str> = files.iter().map(|(rel, _)| rel.as_str()).collect();
        let mut entries = HashMap::new();
        for (rel, _) in &files {
            let Some(data) = data_of(rel) else { continue };
            match read_sidecar(&tree, rel).await {
                Ok(Some((sidecar, _))) if !sidecar.is_empty() => {
                    for reference in sidecar.keys() {
                        entries.insert(
                            format!("{data}#{reference}"),
                            Entry::Key {
                                sidecar: rel.clone(),
                                reference: reference.clone(),
                            },
                        );
                    }
                }
                Ok(Some(_)) => {
                    let reason = format!("{rel}: a key material sidecar without keys");
                    entries.insert(data, Entry::Unreadable { reason });
                }
                Ok(None) => {}
                Err(e) => {
                    let reason = e.to_string();
                    entries.insert(data, Entry::Unreadable { reason });
                }
            }
        }
        for (rel, len) in &files {
            if data_of(rel).is_some() || present.contains(sidecar_of(rel).as_str()) {
                continue;
            }
            let reason = match tree.parquet_magic(rel, *len).await?.as_ref() {
                None => continue,
                Some(b"PARE") => NO_SIDECAR_ENCRYPTED,
                Some(_) => NO_SIDECAR_PLAIN,
            };
            let reason = reason.to_owned();
            entries.insert(rel.clone(), Entry::Unreadable { reason });
        }
        let mut positions: Vec<String> = entries.keys().cloned().collect();
        positions.sort();
        Ok(ParquetTree {
            tree,
            positions,
            entries,
        })
    }

    /// The record at `position` as it is now (`None`: gone).
    async fn record(
        &self,
        position: &str,
        sidecars: &mut HashMap<String, ReadSidecar>,
    ) -> Result<Option<Record>, CliError> {
        let Some(entry) = self.entries.get(position) else {
            return Ok(None);
        };
        let location = self.tree.location(position);
        let (reference, sidecar) = match entry {
            Entry::Unreadable { reason } => {
                return Ok(Some(Record {
                    position: position.to_owned(),
                    location,
                    read: Vec::new(),
                    value: Value::Ciphertext {
                        stored: Err(envelope::Error::Malformed {
                            field: "parquet file",
                            reason: reason.clone(),
                        }),
                        aad: Err(reason.clone()),
                    },
                    index: None,
                }));
            }
            Entry::Key { sidecar, reference } => (reference, sidecar),
        };
        if !sidecars.contains_key(sidecar) {
            let read = read_sidecar(&self.tree, sidecar).await?;
            sidecars.insert(sidecar.clone(), read);
        }
        let Some(Some(material)) = sidecars.get(sidecar).map(|s| {
            s.as_ref()
                .and_then(|(entries, _)| entries.get(reference.as_str()))
        }) else {
            return Ok(None);
        };
        let (stored, aad) = wrapped_key(material);
        Ok(Some(Record {
            position: position.to_owned(),
            location,
            read: wrapped_text(material).as_bytes().to_vec(),
            value: Value::Ciphertext {
                stored,
                aad: Ok(aad),
            },
            index: None,
        }))
    }

    async fn records<'a>(
        &self,
        positions: impl Iterator<Item = &'a String>,
        limit: usize,
    ) -> Result<Vec<Record>, CliError> {
        let mut sidecars = HashMap::new();
        let mut out = Vec::new();
        for position in positions {
            if out.len() == limit {
                break;
            }
            if let Some(record) = self.record(position, &mut sidecars).await? {
                out.push(record);
            }
        }
        Ok(out)
    }
}

/// Reads and parses a sidecar; `Ok(None)` when it is gone.
async fn read_sidecar(tree: &Tree, rel: &str) -> Result<ReadSidecar, CliError> {
    let Some((bytes, etag)) = tree.read(rel).await? else {
        return Ok(None);
    };
    let parsed = sidecar::parse(&bytes)
        .map_err(|reason| CliError::new(format!("{}: {reason}", tree.location(rel))))?;
    Ok(Some((parsed, etag)))
}

#[async_trait]
impl Store for ParquetTree {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: "parquet",
            name: self.tree.name(),
            connection: None,
            writes: match self.tree {
                Tree::Local(_) => WriteGuarantee::CompareThenReplace,
                Tree::S3 { .. } => WriteGuarantee::PerValueNewerWins,
            },
        }
    }

    async fn page(
        &self,
        range: &Range,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, CliError> {
        self.records(range.positions(&self.positions, after), limit)
            .await
    }

    async fn reread(&self, positions: &[String]) -> Result<Vec<Record>, CliError> {
        self.records(positions.iter(), usize::MAX).await
    }

    async fn commit(
        &self,
        writes: &[Write<'_>],
        _checkpoint: Option<&Checkpoint<'_>>,
    ) -> Result<Committed, CommitError> {
        // Each sidecar once: read now, every change checked against what was read, then
        // replaced whole. One changed key anywhere in the page: nothing is written.
        let mut sidecars: BTreeMap<&str, (Sidecar, Option<String>, Vec<(&str, &[u8])>)> =
            BTreeMap::new();
        let mut conflicts = Vec::new();
        for w in writes {
            let new = w.ciphertext()?;
            let Some(Entry::Key { sidecar, reference }) = self.entries.get(&w.record.position)
            else {
                return Err(CommitError::Failed(CliError::new(format!(
                    "{}: not a wrapped key",
                    w.record.location
                ))));
            };
            if !sidecars.contains_key(sidecar.as_str()) {
                let Some((now, etag)) = read_sidecar(&self.tree, sidecar).await? else {
                    conflicts.push(w.record.position.clone());
                    continue;
                };
                sidecars.insert(sidecar, (now, etag, Vec::new()));
            }
            let Some((now, _, changes)) = sidecars.get_mut(sidecar.as_str()) else {
                continue;
            };
            let current = now.get(reference).map(wrapped_text);
            if current.map(str::as_bytes) != Some(w.record.read.as_slice()) {
                conflicts.push(w.record.position.clone());
                continue;
            }
            changes.push((reference, new));
        }
        if !conflicts.is_empty() {
            return Ok(Committed {
                conflicts,
                superseded: 0,
            });
        }
        let mut superseded = 0;
        for (rel, (mut entries, etag, changes)) in sidecars {
            for (reference, new) in &changes {
                let new = String::from_utf8(new.to_vec()).map_err(|_| {
                    CliError::new(format!("{rel}: a rewrapped key not in the text form"))
                })?;
                if let Some(material) = entries.get_mut(*reference) {
                    material.insert("wrappedDEK".to_owned(), Json::String(new));
                }
            }
            let bytes = sidecar::render(&entries);
            if self.tree.replace(rel, bytes, etag.as_deref()).await? == Replaced::Superseded {
                superseded += changes.len() as u64;
            }
        }
        Ok(Committed {
            conflicts: Vec::new(),
            superseded,
        })
    }

    async fn count(&self) -> Option<u64> {
        Some(self.positions.len() as u64)
    }
}
