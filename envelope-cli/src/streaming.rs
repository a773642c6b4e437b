//! Files and pipes in the streaming form (format version 4) for `encrypt`, `decrypt` and
//! `inspect`: constant memory, segments sealed and opened on `--threads` threads, plaintext
//! ranges read from the segments that hold them, and outputs that appear under their name
//! only when complete.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use envelope::Envelope;
use envelope::stream::{self, DecryptingReader, EncryptingWriter, SeekableDecryptingReader};

use crate::exit::CliError;

/// Inputs at least this long are encrypted in the streaming form by `--form auto`: below
/// it a value form costs 140 bytes less and holds the file in memory once (1 MiB).
pub const STREAM_THRESHOLD: usize = 1 << 20;

/// A plaintext range `A:B` of `decrypt --range` (bytes `A` to `B`, `B` excluded; either may
/// be omitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// The first byte.
    pub start: u64,
    /// The byte after the last (`None`: to the end).
    pub end: Option<u64>,
}

impl std::str::FromStr for ByteRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: a range is START:END (bytes, END excluded)"))?;
        let num = |t: &str| -> Result<Option<u64>, String> {
            if t.is_empty() {
                return Ok(None);
            }
            t.parse()
                .map(Some)
                .map_err(|_| format!("{t:?} is not a byte offset"))
        };
        let start = num(a)?.unwrap_or(0);
        let end = num(b)?;
        if end.is_some_and(|e| e < start) {
            return Err(format!("{s:?}: END is before START"));
        }
        Ok(ByteRange { start, end })
    }
}

/// Encrypts `source` (after `already`, bytes read from it before the form was decided)
/// into a stream written to `sink`, with a sealer from [`envelope::Envelope::stream_sealer`].
pub fn encrypt_with<W: Write>(
    sealer: stream::StreamSealer,
    threads: usize,
    already: &[u8],
    source: &mut dyn Read,
    sink: W,
) -> Result<W, CliError> {
    let mut writer = EncryptingWriter::new(sink, sealer, threads).map_err(io_error("write"))?;
    writer.write_all(already).map_err(io_error("write"))?;
    // Reads of two batches: the writer's threads copy whole batches straight from them.
    let mut buf = zeroize::Zeroizing::new(vec![0u8; threads.max(1) * (4 << 20)]);
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::new(format!("cannot read the input: {e}"))),
        };
        writer.write_all(&buf[..n]).map_err(io_error("encrypt"))?;
    }
    writer.finish().map_err(io_error("write"))
}

/// Decrypts the stream in `input` (a file: random access) or on stdin (in order) into
/// `sink`, the plaintext range `range` only. `head` holds the stream's first bytes, already
/// read to tell its form.
pub async fn decrypt_to(
    envelope: &Envelope,
    aad: &[u8],
    threads: usize,
    input: Option<&Path>,
    head: Vec<u8>,
    range: Option<ByteRange>,
    sink: &mut dyn Write,
) -> Result<u64, CliError> {
    let range = range.unwrap_or(ByteRange {
        start: 0,
        end: None,
    });
    match input {
        Some(path) => {
            let mut file = File::open(path)
                .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
            // The header's first bytes were read already (to tell the form): read the rest.
            file.seek(SeekFrom::Start(head.len() as u64))?;
            let header = stream::read_header(&mut io::Cursor::new(&head).chain(&mut file))
                .map_err(io_error("read the header"))?;
            let opener = envelope.stream_opener(&header, aad).await?;
            let mut reader =
                SeekableDecryptingReader::new(file, opener, threads).map_err(stream_error)?;
            reader
                .seek(SeekFrom::Start(range.start))
                .map_err(stream_error)?;
            copy_range(&mut reader, range, sink)
        }
        None => {
            let mut stdin = io::stdin().lock();
            let mut source = io::Cursor::new(head).chain(&mut stdin);
            let header = stream::read_header(&mut source).map_err(io_error("read the header"))?;
            let opener = envelope.stream_opener(&header, aad).await?;
            let mut reader = DecryptingReader::new(BufReader::new(source), opener, threads);
            io::copy(&mut (&mut reader).take(range.start), &mut io::sink())
                .map_err(stream_error)?;
            copy_range(&mut reader, range, sink)
        }
    }
}

/// Copies the range's bytes from a reader positioned at its start.
pub fn copy_range(
    reader: &mut dyn Read,
    range: ByteRange,
    sink: &mut dyn Write,
) -> Result<u64, CliError> {
    // Reads of whole batches: a seekable reader opens segments straight into them.
    let mut buf = zeroize::Zeroizing::new(vec![0u8; 4 << 20]);
    let mut left = range.end.map(|end| end - range.start);
    let mut copied = 0u64;
    while left != Some(0) {
        let want = left.map_or(buf.len(), |l| l.min(buf.len() as u64) as usize);
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stream_error(e)),
        };
        sink.write_all(&buf[..n])
            .map_err(|e| CliError::new(format!("cannot write the output: {e}")))?;
        copied += n as u64;
        left = left.map(|l| l - n as u64);
    }
    Ok(copied)
}

/// A stream reader's failure as the CLI says it (the SDK error's kind decides the exit
/// code; the message says how much was authentic).
pub fn stream_error(e: io::Error) -> CliError {
    match stream::StreamError::of(&e) {
        Some(failure) => CliError::new(failure.error().to_string())
            .context(format!(
                "at segment {}: the {} bytes written before it are authentic, nothing after them was written",
                failure.segment(),
                failure.plaintext_released()
            )),
        None => CliError::new(format!("stream: {e}")),
    }
}

fn io_error(what: &'static str) -> impl Fn(io::Error) -> CliError {
    move |e| match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<envelope::Error>())
    {
        Some(inner) => CliError::new(inner.to_string()),
        None => CliError::new(format!("cannot {what}: {e}")),
    }
}

/// The header facts of a stream file, reading its header and its length only.
pub fn inspect_file(path: &Path) -> Result<envelope::HeaderInfo, CliError> {
    let mut file = File::open(path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    let header = stream::read_header(&mut file).map_err(io_error("read the header"))?;
    let len = file
        .metadata()
        .map_err(|e| CliError::new(format!("cannot stat {}: {e}", path.display())))?
        .len();
    Ok(stream::inspect(&header, Some(len))?)
}

/// The default `--threads`: the CPUs, at most 4.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(1)
}
