//! The log's files: segments named by the sequence number of their first line, read back
//! as complete lines and a torn tail.
//!
//! A segment is `audit-SEQ-MILLIS.jsonl` (`SEQ` zero-padded to 20 digits, `MILLIS` when it
//! was opened, 13 digits), so that names sort in log order. A writer opens a new segment
//! when it starts, when the current one reaches its size or age, and after a failed write
//! (never appending after a partial line).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::AuditError;

/// The segments of a log directory, in log order.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| AuditError::io(dir, e))? {
        let entry = entry.map_err(|e| AuditError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("audit-") && name.ends_with(".jsonl") {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// A segment read back: its complete lines (without `\n`) and the bytes after the last
/// newline, if any (a line the writer did not finish: a crash or a full disk).
#[derive(Debug)]
pub struct Segment {
    /// The file.
    pub path: PathBuf,
    /// Complete lines.
    pub lines: Vec<String>,
    /// Bytes of an unfinished last line.
    pub torn: Option<usize>,
    /// Complete lines that are not UTF-8 (line numbers, 0-based): damage.
    pub not_utf8: Vec<usize>,
}

/// Reads a segment.
pub fn read(path: &Path) -> Result<Segment, AuditError> {
    let bytes = std::fs::read(path).map_err(|e| AuditError::io(path, e))?;
    let mut lines = Vec::new();
    let mut not_utf8 = Vec::new();
    let mut rest: &[u8] = &bytes;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        match std::str::from_utf8(&rest[..end]) {
            Ok(s) => lines.push(s.to_owned()),
            Err(_) => {
                not_utf8.push(lines.len());
                lines.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            }
        }
        rest = &rest[end + 1..];
    }
    Ok(Segment {
        path: path.to_owned(),
        lines,
        torn: (!rest.is_empty()).then_some(rest.len()),
        not_utf8,
    })
}

/// An open segment being appended to.
#[derive(Debug)]
pub struct OpenSegment {
    file: File,
    /// Its path.
    pub path: PathBuf,
    /// Bytes written.
    pub bytes: u64,
    /// When it was opened (Unix milliseconds).
    pub opened: u64,
}

impl OpenSegment {
    /// Creates the segment whose first line will be `seq` (a new file, never an existing
    /// one).
    pub fn create(dir: &Path, seq: u64, now_millis: u64) -> io::Result<Self> {
        let mut millis = now_millis;
        loop {
            let path = dir.join(format!("audit-{seq:020}-{millis:013}.jsonl"));
            let mut options = std::fs::OpenOptions::new();
            options.append(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
            match options.open(&path) {
                Ok(file) => {
                    return Ok(OpenSegment {
                        file,
                        path,
                        bytes: 0,
                        opened: now_millis,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => millis += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends one line and its newline in one write.
    pub fn append(&mut self, line: &str) -> io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.file.write_all(&buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// Whether the file holds no byte at all (not even part of a failed line).
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.file.metadata()?.len() == 0)
    }

    /// Asks the OS to put the segment on disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}
