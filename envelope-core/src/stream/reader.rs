//! [`DecryptingReader`]: a `std::io::Read` (and `Seek`, over a seekable source) that
//! releases only authenticated segments, reading only the segments a read needs.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use super::layout::SegmentSpan;
use super::parallel::{self, SEGMENTS_PER_THREAD};
use super::segments::StreamOpener;
use crate::error::Error;
use crate::suite::TAG_LEN;

/// Why [`Opened::read_and_open`] stopped.
enum Failure {
    /// Reading the source failed.
    Io(io::Error),
    /// This segment did not open.
    Segment(u64, Error),
}

/// Why a stream read failed, carried inside the `std::io::Error` a [`DecryptingReader`]
/// returns (`io::ErrorKind::InvalidData`; [`StreamError::of`] finds it). Every byte the
/// reader returned before it was authenticated; nothing of the failing segment or after it
/// was returned.
#[derive(Debug, Clone)]
pub struct StreamError {
    error: Arc<Error>,
    segment: u64,
    released: u64,
}

impl StreamError {
    /// The SDK error: [`Error::Truncated`], [`Error::DecryptionFailed`],
    /// [`Error::Malformed`], …
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The segment that failed.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// How many plaintext bytes the reader had returned, all authenticated.
    pub fn plaintext_released(&self) -> u64 {
        self.released
    }

    /// The stream error inside an `io::Error` from a [`DecryptingReader`], if it is one.
    pub fn of(error: &io::Error) -> Option<&StreamError> {
        error.get_ref()?.downcast_ref::<StreamError>()
    }

    /// The SDK error an adapter's `io::Error` carries: a reader's [`StreamError`], or the
    /// error a writer failed to seal with. `None` for an I/O error of the source or sink.
    pub fn sdk_error(error: io::Error) -> Option<Error> {
        let inner = error.into_inner()?;
        let inner = match inner.downcast::<StreamError>() {
            Ok(failure) => return Some(failure.into_error()),
            Err(other) => other,
        };
        inner.downcast::<Error>().ok().map(|e| *e)
    }

    /// The SDK error, owned. A reader keeps a copy of its failure (every later read
    /// repeats it): while it lives, the error is rebuilt from its kind and fields (the
    /// kinds a reader reports are `decryption_failed`, `truncated`, `malformed` and
    /// `buffer_too_small`; the SDK error is not `Clone`).
    pub fn into_error(self) -> Error {
        Arc::try_unwrap(self.error).unwrap_or_else(|shared| match &*shared {
            Error::DecryptionFailed => Error::DecryptionFailed,
            Error::Truncated {
                segments,
                segment_size,
            } => Error::Truncated {
                segments: *segments,
                segment_size: *segment_size,
            },
            Error::BufferTooSmall { needed, capacity } => Error::BufferTooSmall {
                needed: *needed,
                capacity: *capacity,
            },
            Error::Malformed { field, reason } => Error::Malformed {
                field,
                reason: reason.clone(),
            },
            other => Error::malformed("stream", other.to_string()),
        })
    }

    pub(crate) fn new(error: Error, segment: u64, released: u64) -> Self {
        StreamError {
            error: Arc::new(error),
            segment,
            released,
        }
    }

    pub(crate) fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (at segment {}; the {} bytes returned before it are authentic, nothing after them was returned)",
            self.error, self.segment, self.released
        )
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

/// What both readers share: the opener, the plaintext of the segments opened last, the
/// position and the failure that stops every later read.
struct Opened {
    opener: StreamOpener,
    threads: usize,
    /// Plaintext of the segments opened last, starting at plaintext offset `plain_start`.
    plain: Vec<u8>,
    plain_start: u64,
    /// Wire bytes of the segments being opened.
    sealed: Vec<u8>,
    /// The plaintext position.
    pos: u64,
    released: u64,
    failed: Option<StreamError>,
}

impl Opened {
    fn new(opener: StreamOpener, threads: usize) -> Self {
        Opened {
            opener,
            threads: threads.max(1),
            plain: Vec::new(),
            plain_start: 0,
            sealed: Vec::new(),
            pos: 0,
            released: 0,
            failed: None,
        }
    }

    fn batch(&self) -> usize {
        self.threads * SEGMENTS_PER_THREAD
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some(failed) => Err(failed.clone().into_io()),
            None => Ok(()),
        }
    }

    fn fail(&mut self, error: Error, segment: u64) -> io::Error {
        let failure = StreamError {
            error: Arc::new(error),
            segment,
            released: self.released,
        };
        self.failed = Some(failure.clone());
        failure.into_io()
    }

    /// Opens `spans` (contiguous, in `self.sealed` from its start) into `self.plain`; on
    /// failure records it and returns the `io::Error`.
    fn open_spans(&mut self, spans: &[SegmentSpan]) -> io::Result<()> {
        self.fill_plain(spans, |opened, plain| opened.open_into(spans, plain))
    }

    /// Reads `spans` (contiguous) from `source`'s position and opens them into
    /// `self.plain`, like [`Self::read_and_open`].
    fn read_spans(&mut self, source: &mut impl Read, spans: &[SegmentSpan]) -> io::Result<()> {
        self.fill_plain(spans, |opened, plain| {
            opened.read_and_open(source, spans, plain)
        })
    }

    /// Runs `open` into `self.plain`, sized for `spans`, and positions it.
    fn fill_plain(
        &mut self,
        spans: &[SegmentSpan],
        open: impl FnOnce(&mut Self, &mut [u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let size = u64::from(self.opener.layout().segment_size());
        let plain_len: usize = spans.iter().map(|s| s.len as usize - TAG_LEN).sum();
        // Every byte is overwritten by an opened segment (or zeroed when one fails); the
        // buffer is wiped when the reader is dropped.
        let mut plain = std::mem::take(&mut self.plain);
        plain.resize(plain_len, 0);
        let opened = open(self, &mut plain);
        self.plain = plain;
        match opened {
            Ok(()) => {
                self.plain_start = spans.first().map_or(0, |s| s.index) * size;
                Ok(())
            }
            Err(e) => {
                self.plain.clear();
                Err(e)
            }
        }
    }

    /// Opens `spans` (contiguous, in `self.sealed` from its start) into `out` (exactly
    /// their plaintext length), in parallel; on failure `out` is zeroed and the failure
    /// recorded.
    fn open_into(&mut self, spans: &[SegmentSpan], out: &mut [u8]) -> io::Result<()> {
        let base = spans.first().map_or(0, |s| s.offset);
        let mut work: Vec<(SegmentSpan, &[u8], &mut [u8])> = Vec::with_capacity(spans.len());
        let mut rest = &mut out[..];
        for span in spans {
            let start = (span.offset - base) as usize;
            let sealed = &self.sealed[start..start + span.len as usize];
            let (segment, tail) = rest.split_at_mut(span.len as usize - TAG_LEN);
            rest = tail;
            work.push((*span, sealed, segment));
        }
        let opener = &self.opener;
        let failed_at = std::sync::Mutex::new(None::<u64>);
        let opened = parallel::for_each(self.threads, &mut work, |(span, sealed, out)| {
            opener
                .open_segment(span.index, span.last, sealed, out)
                .inspect_err(|_| {
                    let mut at = failed_at.lock().unwrap_or_else(|p| p.into_inner());
                    *at = Some(at.map_or(span.index, |a| a.min(span.index)));
                })
        });
        drop(work);
        opened.map_err(|e| {
            zeroize::Zeroize::zeroize(out);
            let at = failed_at
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or(0);
            self.fail(e, at)
        })
    }

    /// Reads `spans` (contiguous, the first at `source`'s position) and opens them into
    /// `out` (exactly their plaintext length), a job of segments at a time
    /// ([`parallel::pipeline`]): on several threads the caller's thread reads the source
    /// and opens jobs too, while `threads - 1` helpers open what it has read, so the copy
    /// from the source overlaps the decryption; on one, each job is opened right after it
    /// is read, while it is in cache. Memory: a batch (8 jobs per thread). On failure `out`
    /// is zeroed; a failing segment is recorded (every later read repeats it), an I/O
    /// error of the source is not.
    fn read_and_open(
        &mut self,
        source: &mut impl Read,
        spans: &[SegmentSpan],
        out: &mut [u8],
    ) -> io::Result<()> {
        let size = self.opener.layout().segment_size() as usize;
        let sealed_len = size + TAG_LEN;
        if spans.is_empty() {
            return Ok(());
        }
        let per_job = parallel::JOB_SEGMENTS;
        // Up to a batch's worth of slots, as the writer has, but no more than the read
        // needs: a 4 KiB range read allocates (and zeroes) one segment, not a batch.
        let wire: usize = spans.iter().map(|s| s.len as usize).sum();
        let slot_len = (per_job * sealed_len).min(wire);
        let jobs_needed = spans.len().div_ceil(per_job);
        let slot_count = if self.threads > 1 {
            (self.threads * parallel::SEGMENTS_PER_THREAD / per_job).min(jobs_needed)
        } else {
            1
        };
        if self.sealed.len() < slot_count * slot_len {
            self.sealed.resize(slot_count * slot_len, 0);
        }
        let slots: Vec<&mut [u8]> = self.sealed.chunks_mut(slot_len).take(slot_count).collect();
        // Every span but the stream's final segment is full, so the jobs' spans and
        // plaintext line up (split by length: a final segment may hold no plaintext).
        let mut jobs: Vec<(&[SegmentSpan], &mut [u8])> = Vec::new();
        let mut rest = &mut out[..];
        for group in spans.chunks(per_job) {
            let plain: usize = group.iter().map(|s| s.len as usize - TAG_LEN).sum();
            let (part, tail) = rest.split_at_mut(plain);
            rest = tail;
            jobs.push((group, part));
        }
        let opener = &self.opener;
        let first = spans.first().map_or(0, |s| s.index);
        let result = parallel::pipeline(
            self.threads,
            slots,
            jobs,
            |(group, _), slot| {
                let wire: usize = group.iter().map(|s| s.len as usize).sum();
                source.read_exact(&mut slot[..wire]).map_err(Failure::Io)
            },
            |(group, plain), slot| {
                for (k, span) in group.iter().enumerate() {
                    let wire = &slot[k * sealed_len..k * sealed_len + span.len as usize];
                    let at = k * size;
                    let segment = &mut plain[at..at + span.len as usize - TAG_LEN];
                    opener
                        .open_segment(span.index, span.last, wire, segment)
                        .map_err(|e| Failure::Segment(span.index, e))?;
                }
                Ok(0)
            },
            |_| Ok(()),
            || {
                let panicked = Error::InvalidConfig("a segment thread panicked".into());
                Failure::Segment(first, panicked)
            },
        );
        match result {
            Ok(()) => Ok(()),
            Err(failure) => {
                zeroize::Zeroize::zeroize(out);
                match failure {
                    Failure::Io(e) => Err(e),
                    Failure::Segment(segment, e) => Err(self.fail(e, segment)),
                }
            }
        }
    }

    /// Copies opened plaintext at the position into `buf`; 0 when the position is outside
    /// what is opened.
    fn serve(&mut self, buf: &mut [u8]) -> usize {
        let end = self.plain_start + self.plain.len() as u64;
        if self.pos < self.plain_start || self.pos >= end {
            return 0;
        }
        let at = (self.pos - self.plain_start) as usize;
        let n = buf.len().min(self.plain.len() - at);
        buf[..n].copy_from_slice(&self.plain[at..at + n]);
        self.pos += n as u64;
        self.released += n as u64;
        n
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.plain);
    }
}

/// Decrypts a stream read once, in order, from a source positioned just after the header
/// (a pipe, standard input, an HTTP body), in constant memory: a batch of `threads × 32`
/// segments at a time, opened in parallel, with one byte of look-ahead to find the final
/// segment.
///
/// Every segment is authenticated before any of its bytes are returned. A failure is an
/// `io::Error` carrying a [`StreamError`]; every later read fails the same way.
pub struct DecryptingReader<R: Read> {
    inner: R,
    opened: Opened,
    /// Bytes read but not yet opened: the first `filled` bytes.
    pending: Vec<u8>,
    filled: usize,
    eof: bool,
    /// The next segment's index.
    next: u64,
    /// Whether the final segment was opened.
    done: bool,
}

impl<R: Read> fmt::Debug for DecryptingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptingReader")
            .field("opener", &self.opened.opener)
            .field("threads", &self.opened.threads)
            .field("position", &self.opened.pos)
            .finish_non_exhaustive()
    }
}

impl<R: Read> DecryptingReader<R> {
    /// A reader over `inner`, positioned just after the stream's header.
    pub fn new(inner: R, opener: StreamOpener, threads: usize) -> Self {
        DecryptingReader {
            inner,
            opened: Opened::new(opener, threads),
            pending: Vec::new(),
            filled: 0,
            eof: false,
            next: 0,
            done: false,
        }
    }

    /// The opener (the header's facts, the layout).
    pub fn opener(&self) -> &StreamOpener {
        &self.opened.opener
    }

    /// Reads and opens the next batch. `Ok(false)` after the final segment.
    fn load(&mut self) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let layout = self.opened.opener.layout();
        let sealed_len = layout.sealed_segment_len() as usize;
        let batch = self.opened.batch();
        let want = batch * sealed_len + 1;
        if self.pending.len() < want {
            self.pending.resize(want, 0);
        }
        while !self.eof && self.filled < want {
            match self.inner.read(&mut self.pending[self.filled..want]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let first = self.next;
        let (count, last_len) = if self.eof {
            let n = self.filled;
            if n == 0 {
                let error = Error::Truncated {
                    segments: first,
                    segment_size: layout.segment_size(),
                };
                return Err(self.opened.fail(error, first));
            }
            let count = n.div_ceil(sealed_len);
            (count, n - (count - 1) * sealed_len)
        } else {
            (batch, sealed_len)
        };
        if self.eof && last_len < TAG_LEN {
            let error = Error::malformed(
                "segment",
                format!(
                    "the final segment is {last_len} bytes, shorter than its {TAG_LEN}-byte tag: \
                     the stream was cut inside a segment"
                ),
            );
            return Err(self.opened.fail(error, first + count as u64 - 1));
        }
        let spans: Vec<SegmentSpan> = (0..count)
            .map(|k| {
                let last = self.eof && k + 1 == count;
                SegmentSpan {
                    index: first + k as u64,
                    offset: (k * sealed_len) as u64,
                    len: if last { last_len } else { sealed_len } as u64,
                    last,
                }
            })
            .collect();
        let used = (count - 1) * sealed_len + last_len;
        // The batch is opened where it was read: the two buffers swap, and only the
        // look-ahead after the batch moves over (one byte, or nothing at the end).
        std::mem::swap(&mut self.opened.sealed, &mut self.pending);
        let ahead = self.filled - used;
        if self.pending.len() < ahead {
            self.pending.resize(ahead, 0);
        }
        self.pending[..ahead].copy_from_slice(&self.opened.sealed[used..self.filled]);
        self.opened.sealed.truncate(used);
        self.filled = ahead;
        self.next = first + count as u64;
        self.done = self.eof;
        self.opened.open_spans(&spans)?;
        Ok(true)
    }
}

impl<R: Read> Read for DecryptingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.opened.check()?;
        loop {
            let n = self.opened.serve(buf);
            if n > 0 || buf.is_empty() || !self.load()? {
                return Ok(n);
            }
        }
    }
}

/// Decrypts a stream from a seekable source holding it from offset 0 (a file, a ranged
/// object reader): `Read` and `Seek` over the plaintext, reading only the segments a read
/// covers. After a seek, a read opens just the segments it needs (a 4 KiB read reads at
/// most two segments); reading on in order, each read of the source opens twice as many
/// segments as the one before, up to a batch of `threads × 32`. A read into a buffer of
/// whole segments, at a segment boundary, opens as many as the buffer holds straight into
/// it. With several threads the caller's thread reads the source while it and `threads -
/// 1` helpers open what it has read. The source's length decides which segment is final.
///
/// Every segment is authenticated before any of its bytes are returned. A failure is an
/// `io::Error` carrying a [`StreamError`]; every later read fails the same way.
pub struct SeekableDecryptingReader<R: Read + Seek> {
    inner: R,
    opened: Opened,
    total_len: u64,
    count: u64,
    plaintext_len: u64,
    /// Segments the last load opened (0 after a seek): reading on in order, each load
    /// opens twice as many, up to a batch.
    window: u64,
}

impl<R: Read + Seek> fmt::Debug for SeekableDecryptingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeekableDecryptingReader")
            .field("opener", &self.opened.opener)
            .field("threads", &self.opened.threads)
            .field("position", &self.opened.pos)
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl<R: Read + Seek> SeekableDecryptingReader<R> {
    /// A reader over `inner` (its length is the stream's).
    pub fn new(mut inner: R, opener: StreamOpener, threads: usize) -> io::Result<Self> {
        let total_len = inner.seek(SeekFrom::End(0))?;
        let mut opened = Opened::new(opener, threads);
        let layout = opened.opener.layout();
        let count = match layout.segment_count(total_len) {
            Ok(count) => count,
            Err(e) => return Err(opened.fail(e, 0)),
        };
        let plaintext_len = total_len - layout.header_len() - count * TAG_LEN as u64;
        Ok(SeekableDecryptingReader {
            inner,
            opened,
            total_len,
            count,
            plaintext_len,
            window: 0,
        })
    }

    /// The stream's plaintext length.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// The opener (the header's facts, the layout).
    pub fn opener(&self) -> &StreamOpener {
        &self.opened.opener
    }

    /// The inner source.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads and opens the segments from the one holding the position: those `len`
    /// plaintext bytes need, or a whole batch when reading on in order. `Ok(false)` past
    /// the end.
    fn load(&mut self, len: usize) -> io::Result<bool> {
        let layout = self.opened.opener.layout();
        let pos = self.opened.pos;
        let first = layout.segment_of(pos);
        if pos >= self.plaintext_len && !(pos == 0 && first < self.count) {
            return Ok(false);
        }
        let size = u64::from(layout.segment_size());
        let batch = self.opened.batch() as u64;
        let needed = (pos % size + len as u64).div_ceil(size).max(1);
        let want = (self.window * 2).max(needed).min(batch);
        self.window = want;
        let end_index = (first + want).min(self.count);
        let spans: Vec<SegmentSpan> = (first..end_index)
            .map(|i| layout.span(i, self.count, self.total_len))
            .collect();
        let Some(head) = spans.first() else {
            return Ok(false);
        };
        self.inner.seek(SeekFrom::Start(head.offset))?;
        self.opened.read_spans(&mut self.inner, &spans)?;
        Ok(true)
    }
}

impl<R: Read + Seek> SeekableDecryptingReader<R> {
    /// Opens whole segments at a segment boundary straight into the caller's buffer (no
    /// copy through the reader's own), as many as it holds: `None` when the read does not
    /// start a segment or holds less than one.
    fn read_direct(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let layout = self.opened.opener.layout();
        let size = u64::from(layout.segment_size());
        let pos = self.opened.pos;
        if !pos.is_multiple_of(size) || (buf.len() as u64) < size || pos >= self.plaintext_len {
            return Ok(None);
        }
        let first = pos / size;
        // As many segments as the buffer holds: memory stays bounded by the jobs in
        // flight, whatever the buffer's size.
        let want = (buf.len() as u64 / size).min(self.count - first);
        let spans: Vec<SegmentSpan> = (first..first + want)
            .map(|i| layout.span(i, self.count, self.total_len))
            .collect();
        let Some(head) = spans.first() else {
            return Ok(None);
        };
        self.inner.seek(SeekFrom::Start(head.offset))?;
        let plain_len: usize = spans.iter().map(|s| s.len as usize - TAG_LEN).sum();
        self.opened
            .read_and_open(&mut self.inner, &spans, &mut buf[..plain_len])?;
        self.opened.pos += plain_len as u64;
        self.opened.released += plain_len as u64;
        self.window = want;
        Ok(Some(plain_len))
    }
}

impl<R: Read + Seek> Read for SeekableDecryptingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.opened.check()?;
        let mut n = self.opened.serve(buf);
        if n == 0
            && let Some(direct) = self.read_direct(buf)?
        {
            return Ok(direct);
        }
        if n == 0 && !buf.is_empty() && self.load(buf.len())? {
            n = self.opened.serve(buf);
        }
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SeekableDecryptingReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.plaintext_len.checked_add_signed(d),
            SeekFrom::Current(d) => self.opened.pos.checked_add_signed(d),
        }
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        if target != self.opened.pos {
            self.opened.pos = target;
            self.window = 0;
        }
        Ok(target)
    }
}
