//! The tokio forms of the stream adapters: [`AsyncEncryptingWriter`] (`AsyncWrite`) and
//! [`AsyncDecryptingReader`] (`AsyncRead`, a source read in order). Sealing and opening are
//! the synchronous adapters' (a batch of segments at a time, on `threads` threads, run
//! inside `poll_write` / `poll_read`: about a millisecond per batch); the inner writer or
//! reader is driven without blocking.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::reader::StreamError;
use super::segments::{StreamOpener, StreamSealer};
use super::writer::EncryptingWriter;
use crate::error::Error;

/// Encrypts everything written to it into `inner` as one stream. `shutdown` (tokio's
/// `AsyncWriteExt::shutdown`) seals the final segment, writes the rest and shuts `inner`
/// down; a writer dropped before it leaves a stream every reader refuses as
/// [`Error::Truncated`]. Memory: one batch of segments and its sealed bytes.
pub struct AsyncEncryptingWriter<W> {
    inner: W,
    /// `None` once the final segment is sealed.
    sealing: Option<EncryptingWriter<Vec<u8>>>,
    /// Sealed bytes not yet accepted by `inner`, from `written` on.
    out: Vec<u8>,
    written: usize,
}

impl<W> std::fmt::Debug for AsyncEncryptingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncEncryptingWriter")
            .field("sealing", &self.sealing)
            .field("pending", &(self.out.len() - self.written))
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> AsyncEncryptingWriter<W> {
    /// A writer sealing with `threads` threads; the header goes out with the first bytes.
    pub fn new(inner: W, sealer: StreamSealer, threads: usize) -> io::Result<Self> {
        let mut sealing = EncryptingWriter::new(Vec::new(), sealer, threads)?;
        let out = sealing.get_mut().map(std::mem::take).unwrap_or_default();
        Ok(AsyncEncryptingWriter {
            inner,
            sealing: Some(sealing),
            out,
            written: 0,
        })
    }

    /// The inner writer.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Writes the sealed bytes `inner` has not taken yet.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AsyncEncryptingWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let Some(sealing) = this.sealing.as_mut() else {
            return Poll::Ready(Err(io::Error::other("the stream is already finished")));
        };
        io::Write::write_all(sealing, buf)?;
        this.out = sealing.get_mut().map(std::mem::take).unwrap_or_default();
        Poll::Ready(Ok(buf.len()))
    }

    /// Writes what is sealed and flushes `inner`. Up to one batch stays buffered until
    /// `shutdown`: a segment is sealed once the next byte shows it is not the final one.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if let Some(sealing) = this.sealing.take() {
            this.out = sealing.finish()?;
            this.written = 0;
            ready!(this.poll_drain(cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Decrypts a stream read in order from `inner`, positioned just after its header (read it
/// with tokio's `read_exact`: [`super::PREFIX_LEN`] bytes, then [`super::header_len`] of
/// them). Every segment is authenticated before any of its bytes are returned; a failure
/// is an `io::Error` carrying a [`StreamError`], and every later read fails the same way.
pub struct AsyncDecryptingReader<R> {
    inner: R,
    opener: StreamOpener,
    threads: usize,
    /// Wire bytes read but not opened (the last segment is held back until the next byte
    /// or the end shows whether it is final).
    pending: Vec<u8>,
    /// Opened plaintext not returned yet, from `served` on.
    plain: Vec<u8>,
    served: usize,
    next: u64,
    released: u64,
    done: bool,
    failed: Option<StreamError>,
}

impl<R> std::fmt::Debug for AsyncDecryptingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncDecryptingReader")
            .field("opener", &self.opener)
            .field("next_segment", &self.next)
            .finish_non_exhaustive()
    }
}

/// Bytes read from the inner reader at a time: a batch of 64 KiB segments per thread.
const READ_CHUNK: usize = 32 * (64 << 10);

impl<R: AsyncRead + Unpin> AsyncDecryptingReader<R> {
    /// A reader opening segments with `threads` threads.
    pub fn new(inner: R, opener: StreamOpener, threads: usize) -> Self {
        AsyncDecryptingReader {
            inner,
            opener,
            threads: threads.max(1),
            pending: Vec::new(),
            plain: Vec::new(),
            served: 0,
            next: 0,
            released: 0,
            done: false,
            failed: None,
        }
    }

    fn fail(&mut self, error: Error, segment: u64) -> io::Error {
        let failure = StreamError::new(error, segment, self.released);
        self.failed = Some(failure.clone());
        failure.into_io()
    }

    /// Opens the whole segments of `pending` known not to be final, or all of it as the
    /// end of the stream.
    fn open_pending(&mut self, ends: bool) -> io::Result<()> {
        let sealed_len = self.opener.layout().sealed_segment_len() as usize;
        let take = if ends {
            if self.pending.is_empty() {
                let segments = self.next;
                let error = Error::Truncated {
                    segments,
                    segment_size: self.opener.layout().segment_size(),
                };
                return Err(self.fail(error, segments));
            }
            self.pending.len()
        } else {
            (self.pending.len().saturating_sub(1) / sealed_len) * sealed_len
        };
        if take == 0 {
            return Ok(());
        }
        // Every byte is overwritten by an opened segment (or zeroed when one fails); the
        // buffer is wiped when the reader is dropped.
        self.plain.resize(take, 0);
        self.served = 0;
        match self.opener.open_run(
            self.next,
            &self.pending[..take],
            ends,
            &mut self.plain,
            self.threads,
        ) {
            Ok(n) => {
                self.plain.truncate(n);
                self.pending.drain(..take);
                self.next += take.div_ceil(sealed_len) as u64;
                Ok(())
            }
            Err(e) => {
                self.plain.clear();
                let at = self.next;
                Err(self.fail(e, at))
            }
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for AsyncDecryptingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(failed) = &this.failed {
                return Poll::Ready(Err(failed.clone().into_io()));
            }
            if this.served < this.plain.len() {
                let n = buf.remaining().min(this.plain.len() - this.served);
                buf.put_slice(&this.plain[this.served..this.served + n]);
                this.served += n;
                this.released += n as u64;
                return Poll::Ready(Ok(()));
            }
            if this.done || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let have = this.pending.len();
            this.pending.resize(have + READ_CHUNK, 0);
            let mut chunk = ReadBuf::new(&mut this.pending[have..]);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut chunk);
            let got = chunk.filled().len();
            this.pending.truncate(have + got);
            ready!(polled)?;
            if got == 0 {
                this.done = true;
                this.open_pending(true)?;
            } else {
                this.open_pending(false)?;
            }
        }
    }
}

impl<R> Drop for AsyncDecryptingReader<R> {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.plain);
    }
}
