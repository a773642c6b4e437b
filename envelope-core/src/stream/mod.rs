//! The streaming form (format version 4): large files and objects encrypted in fixed-size
//! segments under one KMS-wrapped DEK, in constant memory, with random access and a rewrap
//! that rewrites only a 512-byte header slot (`docs/FORMAT.md`, "Streaming form").
//!
//! | module | what it holds |
//! |---|---|
//! | `header` | the header: stable part, the two KEK reference slots, their torn-write check |
//! | `layout` | where each segment is ([`StreamLayout`]), from lengths alone |
//! | `segments` | [`StreamSealer`] and [`StreamOpener`]: the segment key, nonces, failure kinds |
//! | `writer` | [`EncryptingWriter`] (`std::io::Write`) |
//! | `asynch` | [`AsyncEncryptingWriter`] (`tokio::io::AsyncWrite`), [`AsyncDecryptingReader`] (`AsyncRead`) |
//! | `reader` | [`DecryptingReader`] (a pipe) and [`SeekableDecryptingReader`] (`Read + Seek`) |
//! | `parallel` | sealing and opening a batch of segments on several threads |
//!
//! The key comes from an [`crate::Envelope`] ([`crate::Envelope::stream_sealer`],
//! [`crate::Envelope::stream_opener`]): one KMS call per DEK, as for values; the cached
//! active DEK serves many streams, each with its own derived segment key.
//!
//! ```no_run
//! # async fn example(envelope: envelope_core::Envelope) -> Result<(), Box<dyn std::error::Error>> {
//! use std::io::{Read, Seek, SeekFrom, Write};
//! use envelope_core::stream::{self, EncryptingWriter, SeekableDecryptingReader};
//!
//! let sealer = envelope.stream_sealer(b"backup-2026-12-01", stream::DEFAULT_SEGMENT_SIZE).await?;
//! let mut writer = EncryptingWriter::new(std::fs::File::create("db.dump.ev")?, sealer, 2)?;
//! std::io::copy(&mut std::fs::File::open("db.dump")?, &mut writer)?;
//! writer.finish()?.sync_all()?;
//!
//! let mut file = std::fs::File::open("db.dump.ev")?;
//! let header = stream::read_header(&mut file)?;
//! let opener = envelope.stream_opener(&header, b"backup-2026-12-01").await?;
//! let mut reader = SeekableDecryptingReader::new(file, opener, 2)?;
//! reader.seek(SeekFrom::Start(1 << 30))?;
//! let mut page = [0u8; 4096];
//! reader.read_exact(&mut page)?;
//! # Ok(()) }
//! ```

mod asynch;
mod header;
mod layout;
mod parallel;
mod reader;
mod segments;
mod writer;

pub use asynch::{AsyncDecryptingReader, AsyncEncryptingWriter};
pub(crate) use header::StreamHeader;
pub use header::{
    DEFAULT_SEGMENT_SIZE, DEFAULT_SLOT_LEN, MAX_SEGMENT_SIZE, MAX_SLOT_LEN, MIN_SEGMENT_SIZE,
    MIN_SLOT_LEN, PREFIX_LEN, SALT_LEN, STABLE_LEN, STREAM_FORMAT_VERSION, apply_slot, header_len,
};
pub use layout::{MAX_SEGMENTS, SegmentSpan, StreamLayout};
pub use reader::{DecryptingReader, SeekableDecryptingReader, StreamError};
pub use segments::{StreamOpener, StreamSealer};
pub use writer::EncryptingWriter;

use std::io::{self, Read};

use crate::error::Result;
use crate::format::{self, HeaderInfo};
use crate::suite::TAG_LEN;

/// The sealer of a new stream under a prepared DEK: `salt` (32 random bytes; fixed only in
/// the test vectors), the DEK's KEK reference for slot 0, the segment size and the AAD.
pub(crate) fn sealer_for(
    key: &crate::suite::DataKey,
    salt: &[u8; SALT_LEN],
    kek_ref: &[u8],
    segment_size: u32,
    aad: &[u8],
) -> Result<StreamSealer> {
    let header = header::encode(key.suite(), segment_size, salt, key.commitment(), kek_ref)?;
    let segment_key = crate::suite::SegmentKey::derive(key, salt);
    Ok(StreamSealer::new(segment_key, header, STABLE_LEN, aad))
}

/// Whether `bytes` start like a stream (magic and version 4); says nothing of the rest.
pub fn is_stream(bytes: &[u8]) -> bool {
    bytes.len() >= 3 && bytes[..2] == format::MAGIC && bytes[2] == STREAM_FORMAT_VERSION
}

/// Reads exactly a stream's header from `source` (its first bytes), leaving `source` at
/// the first segment. A source that is not a stream is an `InvalidData` error carrying the
/// SDK error.
pub fn read_header<R: Read>(source: &mut R) -> io::Result<Vec<u8>> {
    let mut header = vec![0u8; PREFIX_LEN];
    source.read_exact(&mut header)?;
    let len = header_len(&header).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    header.resize(len, 0);
    source.read_exact(&mut header[PREFIX_LEN..])?;
    Ok(header)
}

/// The header facts of a stream without any key or KMS call: `bytes` holds at least its
/// header; `total_len` is the whole stream's length (`None`: `bytes` is the whole stream).
/// The KEK facts are the current slot's. `plaintext_len` is that of a complete stream of
/// `total_len` bytes, and 0 when `bytes` is the header alone and no length is given.
pub fn inspect(bytes: &[u8], total_len: Option<u64>) -> Result<HeaderInfo> {
    let header = StreamHeader::parse(bytes)?;
    let total = match total_len {
        Some(total) => Some(total),
        None if bytes.len() == header.len() => None,
        None => Some(bytes.len() as u64),
    };
    info_of(&header, total)
}

/// The header facts of a parsed header, for a stream `total_len` bytes long (`None`: the
/// header alone, with no plaintext length).
pub(crate) fn info_of(header: &StreamHeader<'_>, total_len: Option<u64>) -> Result<HeaderInfo> {
    let layout = header.layout();
    let parsed = header.key_source()?;
    let wrapped = parsed.wrapped()?;
    let (plaintext_len, segments) = match total_len {
        None => (0, 0),
        Some(total) => (layout.plaintext_len(total)?, layout.segment_count(total)?),
    };
    let header_len = header.len();
    Ok(HeaderInfo {
        format_version: STREAM_FORMAT_VERSION,
        suite: header.suite,
        provider: wrapped.provider,
        label: wrapped.check_label(),
        key_id: wrapped.key_id,
        key_version: wrapped.key_version,
        wrapped_dek_len: parsed.wrapped_dek.len(),
        header_len,
        plaintext_len: plaintext_len as usize,
        overhead: header_len + segments as usize * TAG_LEN,
        dek_fingerprint: format::fingerprint(header.commitment),
        dek_id: None,
        segment_size: Some(header.segment_size),
    })
}

#[cfg(test)]
mod tests;
