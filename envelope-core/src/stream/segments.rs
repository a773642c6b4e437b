//! Sealing and opening segments: the stream's segment key, the counter nonces and the
//! associated data, and the failure classification (truncated, extended, not authentic).

use std::sync::Arc;

use super::layout::{MAX_SEGMENTS, StreamLayout};
use crate::error::{Error, Result};
use crate::format::HeaderInfo;
use crate::suite::{SegmentKey, Suite, TAG_LEN};

/// The longest nonce of any suite.
const MAX_NONCE_LEN: usize = 24;

/// The nonce of segment `index`: zero bytes, the index (32-bit big-endian) and the
/// last-segment flag (`0x01` on the final segment, else `0x00`).
fn nonce(suite: Suite, index: u64, last: bool) -> ([u8; MAX_NONCE_LEN], usize) {
    let len = suite.nonce_len();
    let mut out = [0u8; MAX_NONCE_LEN];
    // Layouts refuse more than 2^32 segments, and the sealer stops there.
    out[len - 5..len - 1].copy_from_slice(&(index as u32).to_be_bytes());
    out[len - 1] = u8::from(last);
    (out, len)
}

/// A stream's key and associated data, shared by the sealer or opener and its threads.
struct Keyed {
    key: SegmentKey,
    /// The stable header part followed by the caller's AAD.
    ad: Vec<u8>,
    layout: StreamLayout,
}

impl Keyed {
    /// The nonce of segment `index` of a stream being sealed; refused past the segment
    /// limit (2^32: the nonce's counter would wrap).
    fn sealing_nonce(&self, index: u64, last: bool) -> Result<([u8; MAX_NONCE_LEN], usize)> {
        if index >= MAX_SEGMENTS {
            return Err(Error::MessageTooLarge {
                len: index.saturating_mul(u64::from(self.layout.segment_size())),
                max: MAX_SEGMENTS * u64::from(self.layout.segment_size()),
            });
        }
        Ok(nonce(self.key.suite(), index, last))
    }

    fn seal(&self, index: u64, last: bool, plaintext: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        let (nonce, len) = self.sealing_nonce(index, last)?;
        self.key.seal(&nonce[..len], &self.ad, plaintext)
    }

    /// Seals segment `index` from `plaintext` into `out_and_tag` (its wire bytes).
    fn seal_into(
        &self,
        index: u64,
        last: bool,
        plaintext: &[u8],
        out_and_tag: &mut [u8],
    ) -> Result<()> {
        let (nonce, len) = self.sealing_nonce(index, last)?;
        self.key
            .seal_into(&nonce[..len], &self.ad, plaintext, out_and_tag)
    }

    fn open(&self, index: u64, last: bool, sealed: &[u8], out: &mut [u8]) -> Result<()> {
        if sealed.len() < TAG_LEN || index >= MAX_SEGMENTS {
            return Err(Error::DecryptionFailed);
        }
        let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let (nonce, len) = nonce(self.key.suite(), index, last);
        self.key.open(&nonce[..len], &self.ad, ciphertext, tag, out)
    }
}

/// Seals the segments of one new stream. Cheap to clone (the key is shared), and usable
/// from several threads at once: [`crate::stream::EncryptingWriter`] seals a batch of
/// segments in parallel this way, and so can a multipart upload.
#[derive(Clone)]
pub struct StreamSealer {
    keyed: Arc<Keyed>,
    header: Arc<[u8]>,
}

impl std::fmt::Debug for StreamSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSealer")
            .field("layout", &self.keyed.layout)
            .field("key", &self.keyed.key)
            .finish()
    }
}

impl StreamSealer {
    pub(crate) fn new(key: SegmentKey, header: Vec<u8>, stable_len: usize, aad: &[u8]) -> Self {
        let layout = StreamLayout::new(header.len() as u64, segment_size_of(&header));
        let mut ad = Vec::with_capacity(stable_len + aad.len());
        ad.extend_from_slice(&header[..stable_len]);
        ad.extend_from_slice(aad);
        StreamSealer {
            keyed: Arc::new(Keyed { key, ad, layout }),
            header: header.into(),
        }
    }

    /// The stream's header: the first bytes of the stream.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// The stream's geometry.
    pub fn layout(&self) -> StreamLayout {
        self.keyed.layout
    }

    /// Seals segment `index` in place: `segment` holds its plaintext (exactly the segment
    /// size, except the final segment: 1 byte to the segment size, or 0 for an empty
    /// stream); the tag is written to `tag`. On error the plaintext is zeroized.
    pub fn seal_segment(
        &self,
        index: u64,
        last: bool,
        segment: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<()> {
        let size = self.keyed.layout.segment_size() as usize;
        if segment.len() > size || (!last && segment.len() != size) {
            return Err(Error::InvalidConfig(format!(
                "segment {index} has {} bytes: a segment holds {size} (the final one 0..={size})",
                segment.len()
            )));
        }
        match self.keyed.seal(index, last, segment) {
            Ok(t) => {
                *tag = t;
                Ok(())
            }
            Err(e) => {
                zeroize::Zeroize::zeroize(segment);
                Err(e)
            }
        }
    }
}

impl StreamSealer {
    /// Seals `count` consecutive segments from segment `first`, laid out in `buf` as on the
    /// wire: segment k's plaintext at `k × (size + 16)` (full segments), its tag slot after
    /// it. With `final_len`, the last of them is the stream's final segment holding that
    /// many bytes (its tag right after them). Runs on up to `threads` threads; returns the
    /// wire length of the run. On error the run's plaintext is zeroized.
    ///
    /// This is what [`crate::stream::EncryptingWriter`] does per batch, and what a
    /// multipart upload does per part (parts aligned to segments, sealed in parallel).
    pub fn seal_run(
        &self,
        first: u64,
        buf: &mut [u8],
        count: usize,
        final_len: Option<usize>,
        threads: usize,
    ) -> Result<usize> {
        let size = self.keyed.layout.segment_size() as usize;
        let sealed_len = size + TAG_LEN;
        let end = match final_len {
            Some(len) if count > 0 => (count - 1) * sealed_len + len + TAG_LEN,
            _ => count * sealed_len,
        };
        if buf.len() < end || final_len.is_some_and(|len| len > size) {
            return Err(Error::InvalidConfig(format!(
                "a run of {count} segments needs {end} bytes laid out as on the wire, got {}",
                buf.len()
            )));
        }
        let mut work: Vec<(u64, bool, &mut [u8])> = buf[..end]
            .chunks_mut(sealed_len)
            .enumerate()
            .map(|(k, chunk)| {
                let last = final_len.is_some() && k + 1 == count;
                let len = if last {
                    final_len.unwrap_or(size)
                } else {
                    size
                };
                (first + k as u64, last, &mut chunk[..len + TAG_LEN])
            })
            .collect();
        let sealed = super::parallel::for_each(threads, &mut work, |(index, last, chunk)| {
            let (plaintext, tag) = chunk.split_at_mut(chunk.len() - TAG_LEN);
            let mut t = [0u8; TAG_LEN];
            self.seal_segment(*index, *last, plaintext, &mut t)?;
            tag.copy_from_slice(&t);
            Ok(())
        });
        drop(work);
        if let Err(e) = sealed {
            zeroize::Zeroize::zeroize(&mut buf[..end]);
            return Err(e);
        }
        Ok(end)
    }

    /// Seals whole segments from segment `first` on, none of them the stream's final one,
    /// from `plaintext` (a multiple of the segment size, left untouched) straight into
    /// `out` as on the wire: one pass, on the calling thread (with aws-lc-rs no copy of
    /// the plaintext at all). Returns the wire length. What
    /// [`crate::stream::EncryptingWriter`] does with a caller's large writes, a job at a
    /// time. On error `out` is zeroized.
    pub(crate) fn seal_from(&self, first: u64, plaintext: &[u8], out: &mut [u8]) -> Result<usize> {
        let size = self.keyed.layout.segment_size() as usize;
        let sealed_len = size + TAG_LEN;
        let count = plaintext.len() / size;
        let end = count * sealed_len;
        if !plaintext.len().is_multiple_of(size) || out.len() < end {
            return Err(Error::InvalidConfig(format!(
                "{} bytes of plaintext are not whole segments of {size}, or {} bytes of output \
                 cannot hold them on the wire",
                plaintext.len(),
                out.len()
            )));
        }
        let sealed = plaintext
            .chunks(size)
            .zip(out[..end].chunks_mut(sealed_len))
            .enumerate()
            .try_for_each(|(k, (segment, wire))| {
                self.keyed.seal_into(first + k as u64, false, segment, wire)
            });
        if let Err(e) = sealed {
            zeroize::Zeroize::zeroize(&mut out[..end]);
            return Err(e);
        }
        Ok(end)
    }
}

impl StreamOpener {
    /// Opens a run of consecutive segments from segment `first`, as they are on the wire in
    /// `sealed` (every one full but the last, which is the stream's final segment when
    /// `ends_stream`), into `out` (at least their plaintext length), on up to `threads`
    /// threads; returns the plaintext length. On error `out` holds no plaintext, and the
    /// error is that of the lowest failing segment (see [`StreamOpener::open_segment`]).
    /// What a push-style decryptor (the C ABI's) does with the bytes it has.
    pub fn open_run(
        &self,
        first: u64,
        sealed: &[u8],
        ends_stream: bool,
        out: &mut [u8],
        threads: usize,
    ) -> Result<usize> {
        let sealed_len = self.keyed.layout.sealed_segment_len() as usize;
        let count = sealed.len().div_ceil(sealed_len);
        let last_len = sealed.len() - count.saturating_sub(1) * sealed_len;
        if count == 0 || last_len < TAG_LEN || (!ends_stream && last_len != sealed_len) {
            return Err(Error::malformed(
                "segment",
                format!("a run of {} bytes is not whole segments", sealed.len()),
            ));
        }
        let plain_len = sealed.len() - count * TAG_LEN;
        if out.len() < plain_len {
            return Err(Error::BufferTooSmall {
                needed: plain_len,
                capacity: out.len(),
            });
        }
        let mut work: Vec<(u64, bool, &[u8], &mut [u8])> = Vec::with_capacity(count);
        let mut rest = &mut out[..plain_len];
        for (k, segment) in sealed.chunks(sealed_len).enumerate() {
            let (o, tail) = rest.split_at_mut(segment.len() - TAG_LEN);
            rest = tail;
            work.push((first + k as u64, ends_stream && k + 1 == count, segment, o));
        }
        let opened = super::parallel::for_each(threads, &mut work, |(index, last, segment, o)| {
            self.open_segment(*index, *last, segment, o)
        });
        drop(work);
        match opened {
            Ok(()) => Ok(plain_len),
            Err(e) => {
                zeroize::Zeroize::zeroize(&mut out[..plain_len]);
                Err(e)
            }
        }
    }
}

/// The segment size recorded in a header written by [`super::header::encode`].
fn segment_size_of(header: &[u8]) -> u32 {
    u32::from_be_bytes([header[4], header[5], header[6], header[7]])
}

/// Opens the segments of one stream, in any order. Cheap to clone and usable from several
/// threads at once.
#[derive(Clone)]
pub struct StreamOpener {
    keyed: Arc<Keyed>,
    info: Arc<HeaderInfo>,
}

impl std::fmt::Debug for StreamOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamOpener")
            .field("layout", &self.keyed.layout)
            .field("header", &self.info)
            .finish()
    }
}

impl StreamOpener {
    pub(crate) fn new(
        key: SegmentKey,
        stable: &[u8],
        aad: &[u8],
        layout: StreamLayout,
        info: HeaderInfo,
    ) -> Self {
        let mut ad = Vec::with_capacity(stable.len() + aad.len());
        ad.extend_from_slice(stable);
        ad.extend_from_slice(aad);
        StreamOpener {
            keyed: Arc::new(Keyed { key, ad, layout }),
            info: Arc::new(info),
        }
    }

    /// The stream's geometry.
    pub fn layout(&self) -> StreamLayout {
        self.keyed.layout
    }

    /// The header's facts (the KEK reference of the current slot).
    pub fn header_info(&self) -> &HeaderInfo {
        &self.info
    }

    /// Opens segment `index` (its bytes on the wire, tag included) into `out` (exactly its
    /// plaintext length: `sealed.len() - 16`). `last` says whether the stream's length
    /// makes it the final segment. On any failure `out` holds no plaintext, and the error
    /// says what the segment is:
    ///
    /// - [`Error::Truncated`]: the stream's last segment present authenticates as a
    ///   non-final one (the stream was cut at a segment boundary);
    /// - [`Error::Malformed`]: a segment before the end authenticates as the final one
    ///   (data was appended after the end of the stream);
    /// - [`Error::DecryptionFailed`]: not authentic (changed, moved, duplicated, from
    ///   another stream, wrong AAD).
    pub fn open_segment(
        &self,
        index: u64,
        last: bool,
        sealed: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        if out.len() + TAG_LEN != sealed.len() {
            return Err(Error::BufferTooSmall {
                needed: sealed.len().saturating_sub(TAG_LEN),
                capacity: out.len(),
            });
        }
        let full = sealed.len() as u64 == self.keyed.layout.sealed_segment_len();
        match self.keyed.open(index, last, sealed, out) {
            Ok(()) => Ok(()),
            // Only a full segment can be sealed either way (a non-final segment is always
            // full): a short one failed for good.
            Err(e) if !full => Err(e),
            Err(e) => {
                let other = self.keyed.open(index, !last, sealed, out);
                zeroize::Zeroize::zeroize(&mut *out);
                match other {
                    Ok(()) if last => Err(Error::Truncated {
                        segments: index + 1,
                        segment_size: self.keyed.layout.segment_size(),
                    }),
                    Ok(()) => Err(Error::malformed(
                        "stream",
                        format!(
                            "segment {index} is the stream's final segment, but more bytes \
                             follow it: data was appended"
                        ),
                    )),
                    Err(_) => Err(e),
                }
            }
        }
    }
}
