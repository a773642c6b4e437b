//! Where a Parquet tree lives: a local directory or an S3 prefix. Only what the store needs:
//! list the files, read a sidecar (with its version, on S3 its ETag), the magic at both ends
//! of a data file (eight bytes, never more), and replace a sidecar.

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use crate::exit::CliError;
use crate::output::AtomicOutput;
use crate::s3::{S3, S3Url};
use crate::stores::files::{relative, walk};

/// A Parquet tree's storage.
pub enum Tree {
    /// A directory, walked recursively.
    Local(PathBuf),
    /// The objects under an S3 prefix.
    S3 {
        /// The client.
        s3: S3,
        /// The prefix (`s3://bucket/prefix`).
        url: S3Url,
    },
}

/// How a replacement went.
#[derive(Debug, PartialEq, Eq)]
pub enum Replaced {
    /// Written.
    Yes,
    /// Another writer replaced it since it was read: nothing written (S3 compares the ETag
    /// atomically; a directory compares the bytes before its rename).
    Superseded,
}

impl Tree {
    /// Where the tree is, for people.
    pub fn name(&self) -> String {
        match self {
            Tree::Local(dir) => dir.display().to_string(),
            Tree::S3 { url, .. } => url.to_string(),
        }
    }

    /// A file's location, for people.
    pub fn location(&self, rel: &str) -> String {
        match self {
            Tree::Local(dir) => format!("{}/{rel}", dir.display()),
            Tree::S3 { url, .. } => url.with_key(&self.key(rel)).to_string(),
        }
    }

    fn key(&self, rel: &str) -> String {
        match self {
            Tree::Local(_) => rel.to_owned(),
            Tree::S3 { url, .. } if url.key.is_empty() => rel.to_owned(),
            Tree::S3 { url, .. } => format!("{}/{rel}", url.key.trim_end_matches('/')),
        }
    }

    /// Every file, relative to the tree and `/`-separated, with its length, sorted.
    pub async fn list(&self) -> Result<Vec<(String, u64)>, CliError> {
        match self {
            Tree::Local(dir) => walk(dir)?
                .iter()
                .map(|p| {
                    let len = fs::metadata(p)
                        .map_err(|e| CliError::new(format!("cannot read {}: {e}", p.display())))?
                        .len();
                    Ok((relative(dir, p), len))
                })
                .collect(),
            Tree::S3 { s3, url } => {
                let prefix = url.key.trim_end_matches('/');
                let listed = s3.list(url).await?;
                Ok(listed
                    .into_iter()
                    .filter_map(|(key, len)| {
                        let rel = if prefix.is_empty() {
                            key.as_str()
                        } else {
                            key.strip_prefix(prefix)?.strip_prefix('/')?
                        };
                        Some((rel.to_owned(), len))
                    })
                    .collect())
            }
        }
    }

    /// A sidecar's bytes and, on S3, its ETag; `None` when it is gone.
    pub async fn read(&self, rel: &str) -> Result<Option<(Vec<u8>, Option<String>)>, CliError> {
        match self {
            Tree::Local(dir) => {
                let path = dir.join(rel);
                match fs::read(&path) {
                    Ok(bytes) => Ok(Some((bytes, None))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(CliError::new(format!(
                        "cannot read {}: {e}",
                        path.display()
                    ))),
                }
            }
            Tree::S3 { s3, url } => s3.get_with_etag(&url.with_key(&self.key(rel))).await,
        }
    }

    /// The four-byte magic at both ends of a data file of length `len`: `PAR1` (plaintext
    /// footer) or `PARE` (encrypted footer); `None` for any other file.
    pub async fn parquet_magic(&self, rel: &str, len: u64) -> Result<Option<[u8; 4]>, CliError> {
        if len < 12 {
            return Ok(None);
        }
        let (head, tail) = match self {
            Tree::Local(dir) => {
                let path = dir.join(rel);
                let read = || -> std::io::Result<([u8; 4], [u8; 4])> {
                    let mut file = fs::File::open(&path)?;
                    let mut head = [0u8; 4];
                    file.read_exact(&mut head)?;
                    let mut tail = [0u8; 4];
                    file.seek(SeekFrom::End(-4))?;
                    file.read_exact(&mut tail)?;
                    Ok((head, tail))
                };
                read().map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?
            }
            Tree::S3 { s3, url } => {
                let object = url.with_key(&self.key(rel));
                let head = s3.get_range(&object, 0, 4).await?;
                let tail = s3.get_range(&object, len - 4, len).await?;
                let four = |b: Vec<u8>| <[u8; 4]>::try_from(b.as_slice()).unwrap_or_default();
                (four(head), four(tail))
            }
        };
        Ok(match (&head, &tail) {
            (b"PAR1", b"PAR1") | (b"PARE", b"PARE") => Some(tail),
            _ => None,
        })
    }

    /// Replaces a sidecar whose content (and on S3 its ETag) were `read` / `etag`. A
    /// directory writes a temporary file, fsyncs and renames it over the sidecar, and removes
    /// Hadoop's checksum beside it (`.NAME.crc`, which would no longer match); S3 PUTs it
    /// only if the ETag is still `etag`.
    pub async fn replace(
        &self,
        rel: &str,
        bytes: Vec<u8>,
        etag: Option<&str>,
    ) -> Result<Replaced, CliError> {
        match self {
            Tree::Local(dir) => {
                let path = dir.join(rel);
                if let Some(crc) = checksum_of(&path) {
                    match fs::remove_file(&crc) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(CliError::new(format!(
                                "cannot remove the stale checksum {}: {e}",
                                crc.display()
                            )));
                        }
                    }
                }
                AtomicOutput::write(&path, &bytes)?;
                Ok(Replaced::Yes)
            }
            Tree::S3 { s3, url } => {
                let object = url.with_key(&self.key(rel));
                let Some(etag) = etag else {
                    return Err(CliError::new(format!(
                        "{object}: no ETag to replace it with"
                    )));
                };
                Ok(if s3.put_if_match(&object, bytes, etag).await? {
                    Replaced::Yes
                } else {
                    Replaced::Superseded
                })
            }
        }
    }
}

/// The Hadoop checksum file beside `path` (`.NAME.crc`), which Hadoop's local file system
/// verifies a file against when it exists.
pub fn checksum_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy();
    Some(path.with_file_name(format!(".{name}.crc")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_sit_beside_their_file() {
        assert_eq!(
            checksum_of(Path::new("/t/_KEY_MATERIAL_FOR_p.parquet.json")),
            Some(PathBuf::from("/t/._KEY_MATERIAL_FOR_p.parquet.json.crc"))
        );
    }
}
