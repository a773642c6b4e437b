//! [`EncryptingWriter`]: a `std::io::Write` that encrypts into the streaming form in
//! constant memory, sealing a batch of segments in parallel.

use std::io::{self, Write};

use super::parallel::{self, SEGMENTS_PER_THREAD};
use super::segments::StreamSealer;

/// Encrypts everything written to it into `inner` as one stream: the header first, then
/// each segment as soon as the next byte shows it is not the final one.
///
/// Call [`EncryptingWriter::finish`] at the end: it seals the final segment. A writer
/// dropped without it leaves a stream with no final segment, which every reader refuses
/// as [`crate::Error::Truncated`] (so a crashed encryption can never pass for a shorter
/// file). Memory: one batch of `threads × 32` segments (2 MiB per thread at 64 KiB).
pub struct EncryptingWriter<W: Write> {
    inner: Option<W>,
    sealer: StreamSealer,
    threads: usize,
    /// Segments laid out as on the wire: segment k's plaintext at `k × (size + 16)`, its
    /// tag after it.
    buf: Vec<u8>,
    /// Complete segments in `buf` before the one being filled.
    complete: usize,
    /// Bytes in the segment being filled.
    partial: usize,
    /// The index of `buf`'s first segment in the stream.
    first_index: u64,
    /// Set after a failed write: the stream is unusable.
    poisoned: bool,
}

impl<W: Write> std::fmt::Debug for EncryptingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptingWriter")
            .field("sealer", &self.sealer)
            .field("threads", &self.threads)
            .field("segments_written", &self.first_index)
            .finish_non_exhaustive()
    }
}

impl<W: Write> EncryptingWriter<W> {
    /// Writes the header to `inner` and returns a writer sealing with `threads` threads
    /// (1: only the caller's).
    pub fn new(mut inner: W, sealer: StreamSealer, threads: usize) -> io::Result<Self> {
        inner.write_all(sealer.header())?;
        let threads = threads.max(1);
        let sealed = sealer.layout().sealed_segment_len() as usize;
        Ok(EncryptingWriter {
            inner: Some(inner),
            buf: vec![0u8; sealed * threads * SEGMENTS_PER_THREAD],
            sealer,
            threads,
            complete: 0,
            partial: 0,
            first_index: 0,
            poisoned: false,
        })
    }

    fn batch_len(&self) -> usize {
        self.threads * SEGMENTS_PER_THREAD
    }

    fn sealed_len(&self) -> usize {
        self.sealer.layout().sealed_segment_len() as usize
    }

    fn size(&self) -> usize {
        self.sealer.layout().segment_size() as usize
    }

    /// Seals `buf`'s first `count` segments (all full; the last of them the final segment
    /// holding `final_len` bytes when `final_len` is `Some`) and writes them out.
    fn seal_and_write(&mut self, count: usize, final_len: Option<usize>) -> io::Result<()> {
        let sealed = self.sealer.seal_run(
            self.first_index,
            &mut self.buf,
            count,
            final_len,
            self.threads,
        );
        let end = match sealed {
            Ok(end) => end,
            Err(e) => {
                self.poisoned = true;
                return Err(io::Error::other(e));
            }
        };
        let inner = self.inner.as_mut().ok_or_else(finished)?;
        if let Err(e) = inner.write_all(&self.buf[..end]) {
            self.poisoned = true;
            return Err(e);
        }
        self.first_index += count as u64;
        Ok(())
    }

    /// Seals `source` (whole segments, none of them the final one) straight into the
    /// batch buffer, a job at a time ([`parallel::pipeline`]: the caller's thread and
    /// `threads - 1` helpers seal, and the caller's thread writes out, in order, what has
    /// been sealed).
    fn seal_direct(&mut self, source: &[u8]) -> io::Result<()> {
        let (size, sealed_len) = (self.size(), self.sealed_len());
        let per_job = parallel::JOB_SEGMENTS;
        let first = self.first_index;
        let sealer = &self.sealer;
        let inner = self.inner.as_mut().ok_or_else(finished)?;
        let slots: Vec<&mut [u8]> = self.buf.chunks_mut(per_job * sealed_len).collect();
        let jobs = source
            .chunks(per_job * size)
            .enumerate()
            .map(|(k, plain)| (first + (k * per_job) as u64, plain));
        let written = parallel::pipeline(
            self.threads,
            slots,
            jobs,
            |_, _| Ok(()),
            |(index, plain), slot| {
                sealer
                    .seal_from(index, plain, slot)
                    .map_err(io::Error::other)
            },
            |sealed| inner.write_all(sealed),
            || io::Error::other("a segment thread panicked"),
        );
        match written {
            Ok(()) => {
                self.first_index += (source.len() / size) as u64;
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Seals the final segment, flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.check()?;
        let count = self.complete + 1;
        let final_len = self.partial;
        self.seal_and_write(count, Some(final_len))?;
        let mut inner = self.inner.take().ok_or_else(finished)?;
        inner.flush()?;
        Ok(inner)
    }

    /// The inner writer.
    pub fn get_ref(&self) -> Option<&W> {
        self.inner.as_ref()
    }

    /// The inner writer, mutably (to take what was written so far, e.g. from a `Vec`).
    pub fn get_mut(&mut self) -> Option<&mut W> {
        self.inner.as_mut()
    }

    fn check(&self) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other(
                "an earlier write of this stream failed: the stream is incomplete",
            ));
        }
        Ok(())
    }
}

fn finished() -> io::Error {
    io::Error::other("the stream is already finished")
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check()?;
        let (size, sealed_len) = (self.size(), self.sealed_len());
        let mut rest = data;
        while !rest.is_empty() {
            if self.partial == size {
                // More data follows: the full segment is not the final one.
                self.complete += 1;
                self.partial = 0;
                if self.complete == self.batch_len() {
                    let count = self.complete;
                    self.seal_and_write(count, None)?;
                    self.complete = 0;
                }
            }
            if self.partial == 0 && rest.len() > self.batch_len() * size {
                // At least a batch of whole segments with data after them: the segments
                // buffered before them are not final, and `rest`'s are sealed straight
                // from it by the pipeline, while the sealed ones are written out.
                if self.complete > 0 {
                    let count = self.complete;
                    self.seal_and_write(count, None)?;
                    self.complete = 0;
                }
                let (direct, tail) = rest.split_at((rest.len() - 1) / size * size);
                self.seal_direct(direct)?;
                rest = tail;
                continue;
            }
            let n = (size - self.partial).min(rest.len());
            let at = self.complete * sealed_len + self.partial;
            self.buf[at..at + n].copy_from_slice(&rest[..n]);
            self.partial += n;
            rest = &rest[n..];
        }
        Ok(data.len())
    }

    /// Flushes the inner writer. Segments are written when sealed, and a segment is
    /// sealed only once the next byte shows it is not the final one, so up to one batch
    /// stays buffered until [`EncryptingWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        self.inner.as_mut().ok_or_else(finished)?.flush()
    }
}

impl<W: Write> Drop for EncryptingWriter<W> {
    fn drop(&mut self) {
        // Plaintext still buffered (a writer dropped without `finish`) is wiped.
        zeroize::Zeroize::zeroize(&mut self.buf);
    }
}
