//! Where a stream's segments are: computed from the header length, the segment size and
//! the stream's total length, with no index stored anywhere.

use crate::error::{Error, Result};
use crate::suite::TAG_LEN;

/// The most segments one stream may have (the nonce's 32-bit counter).
pub const MAX_SEGMENTS: u64 = 1 << 32;

/// The geometry of one stream: every segment but the last holds exactly `segment_size`
/// plaintext bytes and is `segment_size + 16` bytes on the wire; the last holds 1 to
/// `segment_size` bytes (0 only when the whole plaintext is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLayout {
    header_len: u64,
    segment_size: u32,
}

/// Where one segment is, and whether it is the final one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    /// The segment's number, from 0.
    pub index: u64,
    /// Its offset in the stream.
    pub offset: u64,
    /// Its length on the wire (plaintext and tag).
    pub len: u64,
    /// Whether it is the stream's final segment.
    pub last: bool,
}

impl StreamLayout {
    pub(crate) fn new(header_len: u64, segment_size: u32) -> Self {
        StreamLayout {
            header_len,
            segment_size,
        }
    }

    /// The header's length: where segment 0 starts.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Plaintext bytes per segment.
    pub fn segment_size(&self) -> u32 {
        self.segment_size
    }

    /// A full segment's length on the wire.
    pub fn sealed_segment_len(&self) -> u64 {
        u64::from(self.segment_size) + TAG_LEN as u64
    }

    /// The number of segments of a stream `total_len` bytes long (header included), or why
    /// that length cannot be a complete stream: no segment at all is [`Error::Truncated`];
    /// a final segment shorter than its tag is malformed (cut inside a segment).
    pub fn segment_count(&self, total_len: u64) -> Result<u64> {
        let body = total_len.checked_sub(self.header_len).ok_or_else(|| {
            Error::malformed(
                "stream header",
                format!(
                    "truncated: the stream is {total_len} bytes, its header {}",
                    self.header_len
                ),
            )
        })?;
        if body == 0 {
            return Err(Error::Truncated {
                segments: 0,
                segment_size: self.segment_size,
            });
        }
        let count = body.div_ceil(self.sealed_segment_len());
        let last = body - (count - 1) * self.sealed_segment_len();
        if last < TAG_LEN as u64 {
            return Err(Error::malformed(
                "segment",
                format!(
                    "the final segment is {last} bytes, shorter than its {TAG_LEN}-byte tag: \
                     the stream was cut inside a segment"
                ),
            ));
        }
        if count > MAX_SEGMENTS {
            return Err(Error::malformed(
                "stream",
                format!("{count} segments exceed the limit of {MAX_SEGMENTS}"),
            ));
        }
        Ok(count)
    }

    /// The plaintext length of a complete stream of `total_len` bytes.
    pub fn plaintext_len(&self, total_len: u64) -> Result<u64> {
        let count = self.segment_count(total_len)?;
        Ok(total_len - self.header_len - count * TAG_LEN as u64)
    }

    /// The stream length for a plaintext of `plaintext_len` bytes.
    pub fn stream_len(&self, plaintext_len: u64) -> u64 {
        let count = plaintext_len.div_ceil(u64::from(self.segment_size)).max(1);
        self.header_len + plaintext_len + count * TAG_LEN as u64
    }

    /// Segment `index` of a stream of `count` segments and `total_len` bytes.
    pub fn span(&self, index: u64, count: u64, total_len: u64) -> SegmentSpan {
        let offset = self.header_len + index * self.sealed_segment_len();
        let last = index + 1 == count;
        let len = if last {
            total_len - offset
        } else {
            self.sealed_segment_len()
        };
        SegmentSpan {
            index,
            offset,
            len,
            last,
        }
    }

    /// The segment that holds plaintext byte `offset`.
    pub fn segment_of(&self, plaintext_offset: u64) -> u64 {
        plaintext_offset / u64::from(self.segment_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_and_cuts_are_named() {
        let layout = StreamLayout::new(100, 4096);
        for plaintext in [0u64, 1, 4095, 4096, 4097, 8192, 10_000] {
            let total = layout.stream_len(plaintext);
            assert_eq!(layout.plaintext_len(total).expect("complete"), plaintext);
        }
        assert!(matches!(
            layout.segment_count(100),
            Err(Error::Truncated { segments: 0, .. })
        ));
        assert!(matches!(
            layout.segment_count(100 + 4112 + 15),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            layout.segment_count(99),
            Err(Error::Malformed { .. })
        ));
        let span = layout.span(1, 2, 100 + 4112 + 20);
        assert_eq!((span.offset, span.len, span.last), (4212, 20, true));
    }
}
