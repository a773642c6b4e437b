//! A blocking `Read + Seek` over an object's ranged GETs, for the stream readers: each
//! read is one GET of exactly the bytes asked for, so a reader that opens two segments
//! makes one GET of two segments.

use std::io::{self, Read, Seek, SeekFrom};

use super::{S3, S3Url};

/// An object as a seekable source. Used from a blocking thread (it runs each GET on the
/// runtime through `handle`).
pub struct RangeReader {
    s3: S3,
    url: S3Url,
    len: u64,
    pos: u64,
    handle: tokio::runtime::Handle,
}

impl RangeReader {
    /// A reader over `url`, `len` bytes long, at offset 0.
    pub fn new(s3: S3, url: S3Url, len: u64, handle: tokio::runtime::Handle) -> Self {
        RangeReader {
            s3,
            url,
            len,
            pos: 0,
            handle,
        }
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let end = (self.pos + buf.len() as u64).min(self.len);
        let bytes = self
            .handle
            .block_on(self.s3.get_range(&self.url, self.pos, end))
            .map_err(|e| io::Error::other(e.message))?;
        if bytes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} ended at {} bytes", self.url, self.pos),
            ));
        }
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.pos += bytes.len() as u64;
        Ok(bytes.len())
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        self.pos = target;
        Ok(target)
    }
}
