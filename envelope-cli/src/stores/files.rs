//! A directory of ciphertext files (one ciphertext per file, binary or text form) as a
//! store of the engine: positions are paths relative to the directory, in order. A stream
//! (format version 4) is read up to the end of its header only, and its rewrap writes one
//! header slot in place (the slot that is not current). Every other
//! replaced file is written to a temporary file in the same directory, fsynced, renamed
//! over the original and the directory fsynced: a crash leaves either the old or the new
//! ciphertext, never a truncated one. The compare before the rename is not atomic against
//! a writer in between ([`WriteGuarantee::CompareThenReplace`]); there is no checkpoint: a
//! rerun finds finished files current.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use envelope::stream;

use crate::aad::AadTemplate;
use crate::engine::store::{
    Checkpoint, CommitError, Committed, Range, Record, Store, StoreInfo, Value, Write,
    WriteGuarantee,
};
use crate::exit::CliError;
use crate::value::Stored;

use crate::output::{AtomicOutput, TEMP_PREFIX};

/// The regular files under `dir`, recursively, in path order (symlinks are not followed;
/// leftover temporary files of an interrupted replacement are skipped).
pub fn walk(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d)
            .map_err(|e| CliError::new(format!("cannot read directory {}: {e}", d.display())))?;
        for entry in entries {
            let entry = entry?;
            let file_type = entry.file_type()?;
            let name = entry.file_name();
            if file_type.is_dir() {
                stack.push(entry.path());
            } else if file_type.is_file() && !name.to_string_lossy().starts_with(TEMP_PREFIX) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `path` relative to `dir`, `/`-separated (a store's position).
pub fn relative(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn read_record(
    dir: &Path,
    rel: &str,
    template: Option<&AadTemplate>,
) -> Result<Option<Record>, CliError> {
    let path = dir.join(rel);
    let bytes = match read_stored(&path) {
        Ok(bytes) => bytes,
        // Removed since the walk: nothing left to move.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::new(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aad = match template {
        None => Ok(Vec::new()),
        Some(t) => t.render(|var| match var {
            "path" => Some(rel),
            "name" => Some(name.as_str()),
            _ => None,
        }),
    };
    Ok(Some(Record {
        position: rel.to_owned(),
        location: path.display().to_string(),
        value: Value::Ciphertext {
            stored: Stored::from_file_bytes(bytes.clone()),
            aad,
        },
        read: bytes,
        index: None,
    }))
}

/// What a job reads of a file: all of a value file; the header alone of a stream (format
/// version 4), whose census and rewrap need nothing else.
fn read_stored(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = fs::File::open(path)?;
    let mut head = Vec::new();
    (&mut file).take(3).read_to_end(&mut head)?;
    if stream::is_stream(&head) {
        let mut source = std::io::Cursor::new(head).chain(file);
        return stream::read_header(&mut source).or_else(|e| match e.kind() {
            // A cut header: what is there, for the census to call malformed.
            std::io::ErrorKind::UnexpectedEof => fs::read(path),
            _ => Err(e),
        });
    }
    file.read_to_end(&mut head)?;
    Ok(head)
}

/// Writes a stream's rewrapped header in place: only the bytes that differ from what was
/// read (one KEK reference slot), then fsync. The slot that was current is not touched, so
/// a crash at any instant leaves a file that decrypts (under the old or the new version).
fn write_stream_header(path: &Path, read: &[u8], new: &[u8]) -> Result<(), CliError> {
    use std::os::unix::fs::FileExt as _;
    let fail = |what: &str, e: std::io::Error| {
        CliError::new(format!("cannot {what} {}: {e}", path.display()))
    };
    if read.len() != new.len() {
        return Err(CliError::new(format!(
            "{}: a rewrap changed the stream header's length",
            path.display()
        )));
    }
    let Some(first) = (0..read.len()).find(|&i| read[i] != new[i]) else {
        return Ok(());
    };
    let last = (0..read.len())
        .rfind(|&i| read[i] != new[i])
        .unwrap_or(first);
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| fail("open for writing", e))?;
    file.write_all_at(&new[first..=last], first as u64)
        .map_err(|e| fail("write the header slot of", e))?;
    file.sync_data().map_err(|e| fail("fsync", e))
}

/// The bytes a commit compares with what was read: a stream's header, or the whole file.
fn current(path: &Path, read: &[u8]) -> Option<Vec<u8>> {
    if stream::is_stream(read) {
        let mut file = fs::File::open(path).ok()?;
        let mut now = vec![0u8; read.len()];
        file.read_exact(&mut now).ok()?;
        Some(now)
    } else {
        fs::read(path).ok()
    }
}

/// Checks that an AAD template uses only the placeholders files have.
pub fn check_template(template: &AadTemplate) -> Result<(), CliError> {
    for var in template.variables() {
        if var != "path" && var != "name" {
            return Err(CliError::new(format!(
                "--aad placeholder {{{var}}}: files have {{path}} (relative, /-separated) and {{name}}"
            )));
        }
    }
    Ok(())
}

/// The files under a directory, as records.
pub struct Directory {
    dir: PathBuf,
    /// Paths relative to `dir`, `/`-separated, sorted.
    files: Vec<String>,
    template: Option<AadTemplate>,
    /// The envelope that re-encrypts streams in place (reencrypt jobs).
    streams: Option<envelope::Envelope>,
}

impl Directory {
    /// Walks `dir` (the files present now are the job's); `template` renders each file's
    /// AAD (re-encryption).
    pub fn open(dir: &Path, template: Option<AadTemplate>) -> Result<Self, CliError> {
        if let Some(t) = &template {
            check_template(t)?;
        }
        let mut files: Vec<String> = walk(dir)?.iter().map(|p| relative(dir, p)).collect();
        files.sort();
        Ok(Directory {
            dir: dir.to_path_buf(),
            files,
            template,
            streams: None,
        })
    }

    /// Re-encrypts streams in place with `envelope` when a job asks
    /// ([`crate::engine::store::Change::ReencryptStream`]).
    pub fn reencrypting_streams(mut self, envelope: envelope::Envelope) -> Self {
        self.streams = Some(envelope);
        self
    }

    /// Re-encrypts the stream at `path` (whose header is `read`) under a new DEK into a
    /// temporary file beside it, then renames it over the stream: constant memory, and a
    /// crash leaves the old stream or the new one.
    async fn reencrypt_stream(&self, path: &Path, read: &[u8], aad: &[u8]) -> Result<(), CliError> {
        let Some(envelope) = &self.streams else {
            return Err(CliError::new(format!(
                "{}: this directory was not opened to re-encrypt streams",
                path.display()
            )));
        };
        let fail = |what: &str, e: std::io::Error| {
            CliError::new(format!("cannot {what} {}: {e}", path.display()))
        };
        let mut file = fs::File::open(path).map_err(|e| fail("open", e))?;
        let header = stream::read_header(&mut file).map_err(|e| fail("read the header of", e))?;
        if header != read {
            return Err(CliError::new(format!(
                "{}: the stream changed while it was re-encrypted",
                path.display()
            )));
        }
        let threads = crate::streaming::default_threads();
        let opener = envelope.stream_opener(&header, aad).await?;
        let segment_size = opener.layout().segment_size();
        let mut reader = stream::SeekableDecryptingReader::new(file, opener, threads)
            .map_err(crate::streaming::stream_error)?;
        let sealer = envelope.stream_sealer(aad, segment_size).await?;
        let mut output = AtomicOutput::create(path)?;
        {
            let sink = std::io::BufWriter::with_capacity(1 << 20, output.file());
            crate::streaming::encrypt_with(sealer, threads, &[], &mut reader, sink)?
                .into_inner()
                .map_err(|e| fail("write the replacement of", e.into_error()))?;
        }
        output.commit()
    }
}

#[async_trait]
impl Store for Directory {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: "files",
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
        let mut out = Vec::new();
        for rel in range.positions(&self.files, after) {
            if out.len() == limit {
                break;
            }
            if let Some(record) = read_record(&self.dir, rel, self.template.as_ref())? {
                out.push(record);
            }
        }
        Ok(out)
    }

    async fn reread(&self, positions: &[String]) -> Result<Vec<Record>, CliError> {
        let mut out = Vec::new();
        for rel in positions {
            if let Some(record) = read_record(&self.dir, rel, self.template.as_ref())? {
                out.push(record);
            }
        }
        Ok(out)
    }

    async fn commit(
        &self,
        writes: &[Write<'_>],
        _checkpoint: Option<&Checkpoint<'_>>,
    ) -> Result<Committed, CommitError> {
        // A writer that replaced a file since we read it wins: the engine reads it again.
        let conflicts: Vec<String> = writes
            .iter()
            .filter(|w| {
                current(&self.dir.join(&w.record.position), &w.record.read).as_deref()
                    != Some(w.record.read.as_slice())
            })
            .map(|w| w.record.position.clone())
            .collect();
        if !conflicts.is_empty() {
            return Ok(Committed {
                conflicts,
                superseded: 0,
            });
        }
        for w in writes {
            let path = self.dir.join(&w.record.position);
            if let Some(aad) = w.reencrypt_stream() {
                self.reencrypt_stream(&path, &w.record.read, aad).await?;
            } else if stream::is_stream(&w.record.read) {
                write_stream_header(&path, &w.record.read, w.ciphertext()?)?;
            } else {
                AtomicOutput::write(&path, w.ciphertext()?)?;
            }
        }
        Ok(Committed::default())
    }

    async fn count(&self) -> Option<u64> {
        Some(self.files.len() as u64)
    }
}
