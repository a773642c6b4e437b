//! A tree of Parquet files under modular encryption (PME) whose data keys envelope wrapped
//! (`envelope_sdk.parquet` in Python), with their key material outside the files: one
//! sidecar `_KEY_MATERIAL_FOR_<file>.json` beside each data file (docs/PARQUET.md).
//!
//! The store's values are the wrapped keys in the sidecars (the footer key and one key per
//! encrypted column), each an envelope ciphertext in text form, so census, rewrap, reencrypt
//! and retire run on them unchanged; a data file is never opened beyond its last four bytes.
//! Positions are `DATA_FILE#KEY_REFERENCE`, relative to the tree, in order. A rewrap
//! replaces a sidecar (temporary file, fsync, rename, directory fsync) after checking that
//! every wrapped key it changes is still the one read ([`WriteGuarantee::CompareThenReplace`]),
//! and removes the Hadoop checksum file beside it (`.NAME.crc`), which would no longer
//! match. No checkpoint: a rerun finds finished keys current.
//!
//! Parquet files without a sidecar are values too, unreadable ones, so that a census counts
//! them and says why: not encrypted, or encrypted with the key material inside the file
//! (which a rotation can only move by rewriting the file).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::{Map, Value as Json};

use crate::engine::store::{
    Checkpoint, CommitError, Committed, Range, Record, Store, StoreInfo, Value, Write,
    WriteGuarantee,
};
use crate::exit::CliError;
use crate::output::AtomicOutput;
use crate::stores::files::{relative, walk};
use crate::value::Stored;

/// How a sidecar's name begins (parquet-java's and pyarrow's name for external key material).
pub const SIDECAR_PREFIX: &str = "_KEY_MATERIAL_FOR_";
/// How a sidecar's name ends.
pub const SIDECAR_SUFFIX: &str = ".json";
/// The AAD of a wrapped key: this prefix, then the key material's master key id.
pub const AAD_PREFIX: &[u8] = b"envelope.parquet.v1:";
/// The key material type this store reads (PME's version 1).
const KEY_MATERIAL_TYPE: &str = "PKMT1";

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

/// The sidecar of a data file (relative, `/`-separated).
fn sidecar_of(data: &str) -> String {
    match data.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{SIDECAR_PREFIX}{name}{SIDECAR_SUFFIX}"),
        None => format!("{SIDECAR_PREFIX}{data}{SIDECAR_SUFFIX}"),
    }
}

/// The data file a sidecar belongs to, when `rel` names a sidecar.
fn data_of(rel: &str) -> Option<String> {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((dir, name)) => (Some(dir), name),
        None => (None, rel),
    };
    let data = name
        .strip_prefix(SIDECAR_PREFIX)?
        .strip_suffix(SIDECAR_SUFFIX)?;
    if data.is_empty() {
        return None;
    }
    Some(match dir {
        Some(dir) => format!("{dir}/{data}"),
        None => data.to_owned(),
    })
}

/// The Hadoop checksum file beside `path` (`.NAME.crc`), which Hadoop's local file system
/// verifies a file against when it exists.
fn checksum_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy();
    Some(path.with_file_name(format!(".{name}.crc")))
}

/// The four-byte magic at both ends of a Parquet file: `PAR1` (plaintext footer) or `PARE`
/// (encrypted footer); `None` for any other file.
fn parquet_magic(path: &Path) -> std::io::Result<Option<[u8; 4]>> {
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len < 12 {
        return Ok(None);
    }
    let mut head = [0u8; 4];
    file.read_exact(&mut head)?;
    let mut tail = [0u8; 4];
    file.seek(SeekFrom::End(-4))?;
    file.read_exact(&mut tail)?;
    Ok(match (&head, &tail) {
        (b"PAR1", b"PAR1") | (b"PARE", b"PARE") => Some(tail),
        _ => None,
    })
}

fn malformed(field: &'static str, reason: impl Into<String>) -> envelope::Error {
    envelope::Error::Malformed {
        field,
        reason: reason.into(),
    }
}

/// A sidecar's entries: key reference → key material (a JSON object).
type Sidecar = BTreeMap<String, Map<String, Json>>;

/// Reads and parses a sidecar; `Ok(None)` when it is gone.
fn read_sidecar(path: &Path) -> Result<Option<Sidecar>, CliError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::new(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    parse_sidecar(&bytes)
        .map(Some)
        .map_err(|reason| CliError::new(format!("{}: {reason}", path.display())))
}

/// A sidecar's JSON: an object of key references, each holding its key material as a JSON
/// string (parquet-java's and pyarrow's layout).
fn parse_sidecar(bytes: &[u8]) -> Result<Sidecar, String> {
    let top: Map<String, Json> = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a key material sidecar (a JSON object): {e}"))?;
    top.into_iter()
        .map(|(reference, material)| {
            let Json::String(text) = material else {
                return Err(format!(
                    "key {reference:?}: its key material is not a JSON string"
                ));
            };
            let material: Map<String, Json> = serde_json::from_str(&text)
                .map_err(|e| format!("key {reference:?}: key material that is not JSON: {e}"))?;
            Ok((reference, material))
        })
        .collect()
}

/// The sidecar's JSON again, with each key material as a JSON string.
fn render_sidecar(sidecar: &Sidecar) -> Vec<u8> {
    let top: Map<String, Json> = sidecar
        .iter()
        .map(|(reference, material)| {
            let text = Json::Object(material.clone()).to_string();
            (reference.clone(), Json::String(text))
        })
        .collect();
    Json::Object(top).to_string().into_bytes()
}

/// A wrapped key's envelope ciphertext and its AAD, or why the material is not envelope's.
fn wrapped_key(material: &Map<String, Json>) -> (Result<Stored, envelope::Error>, Vec<u8>) {
    let master = material
        .get("masterKeyID")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let mut aad = AAD_PREFIX.to_vec();
    aad.extend_from_slice(master.as_bytes());
    let field = "parquet key material";
    let stored = match (
        material.get("keyMaterialType").and_then(Json::as_str),
        material.get("doubleWrapping").and_then(Json::as_bool),
        material.get("wrappedDEK").and_then(Json::as_str),
    ) {
        (Some(KEY_MATERIAL_TYPE), _, _) if master.is_empty() => {
            Err(malformed(field, "no master key id"))
        }
        (Some(KEY_MATERIAL_TYPE), Some(true), _) => Err(malformed(
            field,
            format!(
                "master key {master:?}: double-wrapped (another KMS client wrote it; envelope wraps each data key itself)"
            ),
        )),
        (Some(KEY_MATERIAL_TYPE), _, Some(wrapped)) if wrapped.starts_with("ev") => {
            Stored::from_text(wrapped)
        }
        (Some(KEY_MATERIAL_TYPE), _, Some(_)) => Err(malformed(
            field,
            format!(
                "master key {master:?}: the wrapped key is not an envelope ciphertext (another KMS client wrote it)"
            ),
        )),
        (Some(KEY_MATERIAL_TYPE), _, None) => Err(malformed(field, "no wrapped key")),
        (other, _, _) => Err(malformed(
            field,
            format!("key material type {other:?}, expected {KEY_MATERIAL_TYPE:?}"),
        )),
    };
    (stored, aad)
}

/// The Parquet files under a directory, through the key material in their sidecars.
pub struct ParquetTree {
    dir: PathBuf,
    /// Every position, in order.
    positions: Vec<String>,
    entries: HashMap<String, Entry>,
}

impl ParquetTree {
    /// Walks `dir`: each sidecar's key references, and each Parquet file without a sidecar,
    /// present now, are the job's.
    pub fn open(dir: &Path) -> Result<Self, CliError> {
        let rels: Vec<String> = walk(dir)?.iter().map(|p| relative(dir, p)).collect();
        let present: HashSet<&str> = rels.iter().map(String::as_str).collect();
        let mut entries = HashMap::new();
        for rel in &rels {
            let Some(data) = data_of(rel) else { continue };
            match read_sidecar(&dir.join(rel)) {
                Ok(Some(sidecar)) if !sidecar.is_empty() => {
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
                    entries.insert(
                        data,
                        Entry::Unreadable {
                            reason: format!("{rel}: a key material sidecar without keys"),
                        },
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    entries.insert(
                        data,
                        Entry::Unreadable {
                            reason: e.to_string(),
                        },
                    );
                }
            }
        }
        for rel in &rels {
            if data_of(rel).is_some() || present.contains(sidecar_of(rel).as_str()) {
                continue;
            }
            let path = dir.join(rel);
            let magic = parquet_magic(&path)
                .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
            let reason = match magic.as_ref() {
                None => continue,
                Some(b"PARE") => {
                    "an encrypted footer with the key material inside the file (no sidecar): \
                     moving its keys to a new KEK version rewrites the file; write with \
                     external key material to rotate by sidecar"
                }
                Some(_) => {
                    "no key material sidecar: not encrypted, or encrypted with a plaintext \
                     footer and the key material inside the file"
                }
            };
            entries.insert(
                rel.clone(),
                Entry::Unreadable {
                    reason: reason.to_owned(),
                },
            );
        }
        let mut positions: Vec<String> = entries.keys().cloned().collect();
        positions.sort();
        Ok(ParquetTree {
            dir: dir.to_path_buf(),
            positions,
            entries,
        })
    }

    /// The record at `position` as it is now (`None`: gone).
    fn record(
        &self,
        position: &str,
        sidecars: &mut HashMap<String, Option<Sidecar>>,
    ) -> Result<Option<Record>, CliError> {
        let Some(entry) = self.entries.get(position) else {
            return Ok(None);
        };
        let location = format!("{}/{position}", self.dir.display());
        let (reference, sidecar) = match entry {
            Entry::Unreadable { reason } => {
                return Ok(Some(Record {
                    position: position.to_owned(),
                    location,
                    read: Vec::new(),
                    value: Value::Ciphertext {
                        stored: Err(malformed("parquet file", reason.clone())),
                        aad: Err(reason.clone()),
                    },
                    index: None,
                }));
            }
            Entry::Key { sidecar, reference } => (reference, sidecar),
        };
        if !sidecars.contains_key(sidecar) {
            let parsed = read_sidecar(&self.dir.join(sidecar))?;
            sidecars.insert(sidecar.clone(), parsed);
        }
        let Some(Some(material)) = sidecars.get(sidecar).map(|s| {
            s.as_ref()
                .and_then(|entries| entries.get(reference.as_str()))
        }) else {
            return Ok(None);
        };
        let (stored, aad) = wrapped_key(material);
        let read = material
            .get("wrappedDEK")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .as_bytes()
            .to_vec();
        Ok(Some(Record {
            position: position.to_owned(),
            location,
            read,
            value: Value::Ciphertext {
                stored,
                aad: Ok(aad),
            },
            index: None,
        }))
    }

    fn records<'a>(
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
            if let Some(record) = self.record(position, &mut sidecars)? {
                out.push(record);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for ParquetTree {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: "parquet",
            name: self.dir.display().to_string(),
            connection: None,
            writes: WriteGuarantee::CompareThenReplace,
        }
    }

    async fn page(
        &self,
        range: &Range,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, CliError> {
        self.records(range.positions(&self.positions, after), limit)
    }

    async fn reread(&self, positions: &[String]) -> Result<Vec<Record>, CliError> {
        self.records(positions.iter(), usize::MAX)
    }

    async fn commit(
        &self,
        writes: &[Write<'_>],
        _checkpoint: Option<&Checkpoint<'_>>,
    ) -> Result<Committed, CommitError> {
        // Each sidecar once: read now, every change checked against what was read, then
        // replaced whole. One changed key anywhere in the page: nothing is written.
        let mut sidecars: BTreeMap<&str, (Sidecar, Vec<(&str, &[u8])>)> = BTreeMap::new();
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
                let Some(now) = read_sidecar(&self.dir.join(sidecar))? else {
                    conflicts.push(w.record.position.clone());
                    continue;
                };
                sidecars.insert(sidecar, (now, Vec::new()));
            }
            let Some((now, changes)) = sidecars.get_mut(sidecar.as_str()) else {
                continue;
            };
            let current = now
                .get(reference)
                .and_then(|m| m.get("wrappedDEK"))
                .and_then(Json::as_str);
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
        for (sidecar, (mut entries, changes)) in sidecars {
            for (reference, new) in changes {
                let new = String::from_utf8(new.to_vec()).map_err(|_| {
                    CliError::new(format!("{sidecar}: a rewrapped key not in the text form"))
                })?;
                if let Some(material) = entries.get_mut(reference) {
                    material.insert("wrappedDEK".to_owned(), Json::String(new));
                }
            }
            let path = self.dir.join(sidecar);
            if let Some(crc) = checksum_of(&path) {
                match fs::remove_file(&crc) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(CommitError::Failed(CliError::new(format!(
                            "cannot remove the stale checksum {}: {e}",
                            crc.display()
                        ))));
                    }
                }
            }
            AtomicOutput::write(&path, &render_sidecar(&entries))?;
        }
        Ok(Committed::default())
    }

    async fn count(&self) -> Option<u64> {
        Some(self.positions.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names_map_both_ways() {
        assert_eq!(
            sidecar_of("a/b/part-0.parquet"),
            "a/b/_KEY_MATERIAL_FOR_part-0.parquet.json"
        );
        assert_eq!(sidecar_of("x.parquet"), "_KEY_MATERIAL_FOR_x.parquet.json");
        assert_eq!(
            data_of("a/_KEY_MATERIAL_FOR_p.parquet.json").as_deref(),
            Some("a/p.parquet")
        );
        assert_eq!(data_of("_KEY_MATERIAL_FOR_.json"), None);
        assert_eq!(data_of("a/p.parquet"), None);
        for data in ["p.parquet", "d/e/p.parquet"] {
            assert_eq!(data_of(&sidecar_of(data)).as_deref(), Some(data));
        }
        assert_eq!(
            checksum_of(Path::new("/t/_KEY_MATERIAL_FOR_p.parquet.json")),
            Some(PathBuf::from("/t/._KEY_MATERIAL_FOR_p.parquet.json.crc"))
        );
    }

    #[test]
    fn foreign_and_broken_key_material_is_named() {
        let parse = |json: &str| serde_json::from_str::<Map<String, Json>>(json).unwrap();
        let reason = |json: &str| match wrapped_key(&parse(json)).0 {
            Err(envelope::Error::Malformed { reason, .. }) => reason,
            other => panic!("expected malformed, got {other:?}"),
        };
        assert!(reason(r#"{"keyMaterialType":"PKMT1","masterKeyID":"k","wrappedDEK":"AAAA","doubleWrapping":false}"#)
            .contains("another KMS client"));
        assert!(reason(r#"{"keyMaterialType":"PKMT1","masterKeyID":"k","wrappedDEK":"ev1:x","doubleWrapping":true,"wrappedKEK":"y"}"#)
            .contains("double-wrapped"));
        assert!(reason(r#"{"keyMaterialType":"PKMT9","masterKeyID":"k"}"#).contains("PKMT9"));
        assert!(
            reason(r#"{"keyMaterialType":"PKMT1","wrappedDEK":"ev1:x"}"#).contains("master key id")
        );
        assert!(
            reason(r#"{"keyMaterialType":"PKMT1","masterKeyID":"k"}"#).contains("no wrapped key")
        );
        let (_, aad) = wrapped_key(&parse(r#"{"masterKeyID":"pii"}"#));
        assert_eq!(aad, b"envelope.parquet.v1:pii");
    }

    #[test]
    fn sidecars_parse_and_render_as_json_strings() {
        let raw = br#"{"footerKey":"{\"keyMaterialType\":\"PKMT1\",\"masterKeyID\":\"f\",\"wrappedDEK\":\"ev1:a\"}"}"#;
        let parsed = parse_sidecar(raw).unwrap();
        assert_eq!(parsed["footerKey"]["masterKeyID"], "f");
        assert_eq!(parse_sidecar(&render_sidecar(&parsed)).unwrap(), parsed);
        assert!(parse_sidecar(b"[1]").unwrap_err().contains("JSON object"));
        assert!(
            parse_sidecar(br#"{"k":{"a":1}}"#)
                .unwrap_err()
                .contains("not a JSON string")
        );
        assert!(
            parse_sidecar(br#"{"k":"{oops"}"#)
                .unwrap_err()
                .contains("not JSON")
        );
    }
}
