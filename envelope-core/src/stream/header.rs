//! The stream header: the stable part (authenticated by every segment) and the two KEK
//! reference slots that a rewrap updates in place, one at a time.

use sha2_zeroizing::{Digest, Sha256};

use super::layout::StreamLayout;
use crate::error::{Error, Result};
use crate::format::{self, MAGIC, Parsed};
use crate::suite::{COMMITMENT_LEN, Suite};

/// The format version byte of the streaming form.
pub const STREAM_FORMAT_VERSION: u8 = 4;
/// Length of the stable part: magic, version, suite, segment size, slot length, salt and
/// commitment. Its first [`PREFIX_LEN`] bytes give the whole header's length.
pub const STABLE_LEN: usize = 4 + 4 + 2 + SALT_LEN + COMMITMENT_LEN;
/// Bytes of a stream that give its header's length ([`header_len`]).
pub const PREFIX_LEN: usize = 10;
/// Length of the per-stream random salt.
pub const SALT_LEN: usize = 32;
/// The smallest segment size a stream may declare (plaintext bytes per segment).
pub const MIN_SEGMENT_SIZE: u32 = 4096;
/// The largest segment size a stream may declare.
pub const MAX_SEGMENT_SIZE: u32 = 1 << 24;
/// The segment size written by default: 64 KiB.
pub const DEFAULT_SEGMENT_SIZE: u32 = 1 << 16;
/// The smallest slot length a header may declare.
pub const MIN_SLOT_LEN: usize = 64;
/// The largest slot length a header may declare.
pub const MAX_SLOT_LEN: usize = 16384;
/// The slot length written for a KEK reference of up to [`DEFAULT_SLOT_LEN`] − 150 bytes
/// (every KMS's reference today, with room for a longer key version or wrapped DEK after a
/// rotation); longer references get a slot with the same headroom.
pub const DEFAULT_SLOT_LEN: usize = 512;
/// The slot's fixed fields: generation (4), reference length (2), check (16).
const SLOT_FIXED_LEN: usize = 4 + 2 + SLOT_CHECK_LEN;
const SLOT_CHECK_LEN: usize = 16;
const SLOT_CHECK_LABEL: &[u8] = b"envelope.v4.slot";
/// Headroom a writer leaves in a slot beyond its own reference.
const SLOT_HEADROOM: usize = 128;

/// Offsets of the stable part's fields.
const SUITE_AT: usize = 3;
const SEGMENT_SIZE_AT: usize = 4;
const SLOT_LEN_AT: usize = 8;
const SALT_AT: usize = 10;
const COMMITMENT_AT: usize = SALT_AT + SALT_LEN;

/// The header length of a stream whose first [`PREFIX_LEN`] bytes are `prefix`:
/// [`STABLE_LEN`] + 2 × the slot length. Checks magic, version, suite, segment size and
/// slot length.
pub fn header_len(prefix: &[u8]) -> Result<usize> {
    let fields = Prefix::read(prefix)?;
    Ok(STABLE_LEN + 2 * fields.slot_len)
}

/// The fixed fields at the start of a stream.
struct Prefix {
    suite: Suite,
    segment_size: u32,
    slot_len: usize,
}

impl Prefix {
    fn read(input: &[u8]) -> Result<Self> {
        if input.len() < PREFIX_LEN {
            if input.len() >= 2 && input[..2] != MAGIC {
                return Err(not_envelope());
            }
            return Err(Error::malformed(
                "stream header",
                format!(
                    "truncated: {} bytes, the header's fixed fields need {PREFIX_LEN}",
                    input.len()
                ),
            ));
        }
        if input[..2] != MAGIC {
            return Err(not_envelope());
        }
        if input[2] != STREAM_FORMAT_VERSION {
            return Err(Error::UnsupportedFormatVersion(input[2]));
        }
        let suite = Suite::from_id(input[SUITE_AT])?;
        let segment_size = u32::from_be_bytes(be(&input[SEGMENT_SIZE_AT..SLOT_LEN_AT]));
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
            return Err(Error::malformed(
                "segment size",
                format!("{segment_size} is outside {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE} bytes"),
            ));
        }
        let slot_len = u16::from_be_bytes(be(&input[SLOT_LEN_AT..SALT_AT])) as usize;
        if !(MIN_SLOT_LEN..=MAX_SLOT_LEN).contains(&slot_len) {
            return Err(Error::malformed(
                "slot length",
                format!("{slot_len} is outside {MIN_SLOT_LEN}..={MAX_SLOT_LEN} bytes"),
            ));
        }
        Ok(Prefix {
            suite,
            segment_size,
            slot_len,
        })
    }
}

fn not_envelope() -> Error {
    Error::malformed(
        "magic",
        "not an envelope ciphertext (expected the bytes \"EV\")",
    )
}

fn be<const N: usize>(bytes: &[u8]) -> [u8; N] {
    match bytes.try_into() {
        Ok(a) => a,
        Err(_) => unreachable!("callers pass exactly {N} bytes"),
    }
}

/// One of the two KEK reference slots, as read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot<'a> {
    /// 0 for an empty slot; the slot with the higher generation is the current one.
    pub generation: u32,
    /// The encoded KEK reference (empty for an empty slot).
    pub kek_ref: &'a [u8],
}

/// A stream header split into its fields, borrowing the input.
#[derive(Debug)]
pub(crate) struct StreamHeader<'a> {
    pub suite: Suite,
    pub segment_size: u32,
    pub slot_len: usize,
    /// Magic through commitment: what every segment authenticates.
    pub stable: &'a [u8],
    pub salt: &'a [u8],
    pub commitment: &'a [u8],
    /// The two slots in header order; `None` where the check does not verify (a torn
    /// write, or damage).
    pub slots: [Option<Slot<'a>>; 2],
    /// The index of the current slot.
    pub current: usize,
}

impl<'a> StreamHeader<'a> {
    /// Parses the header at the start of `input` (which may continue with segments).
    pub(crate) fn parse(input: &'a [u8]) -> Result<Self> {
        let prefix = Prefix::read(input)?;
        let header_len = STABLE_LEN + 2 * prefix.slot_len;
        if input.len() < header_len {
            return Err(Error::malformed(
                "stream header",
                format!(
                    "truncated: {} bytes, the header is {header_len}",
                    input.len()
                ),
            ));
        }
        let stable = &input[..STABLE_LEN];
        let slot_bytes = |i: usize| {
            let start = STABLE_LEN + i * prefix.slot_len;
            &input[start..start + prefix.slot_len]
        };
        let slots = [read_slot(slot_bytes(0))?, read_slot(slot_bytes(1))?];
        let current = match slots {
            [Some(a), Some(b)] if a.generation == b.generation => {
                return Err(Error::malformed(
                    "KEK reference slots",
                    format!("both slots claim generation {}", a.generation),
                ));
            }
            [Some(a), Some(b)] => usize::from(b.generation > a.generation),
            [Some(_), None] => 0,
            [None, Some(_)] => 1,
            [None, None] => {
                return Err(Error::malformed(
                    "KEK reference slots",
                    "neither slot holds a complete KEK reference",
                ));
            }
        };
        Ok(StreamHeader {
            suite: prefix.suite,
            segment_size: prefix.segment_size,
            slot_len: prefix.slot_len,
            stable,
            salt: &input[SALT_AT..COMMITMENT_AT],
            commitment: &input[COMMITMENT_AT..STABLE_LEN],
            slots,
            current,
        })
    }

    /// The header's length.
    pub(crate) fn len(&self) -> usize {
        STABLE_LEN + 2 * self.slot_len
    }

    /// The geometry of the stream.
    pub(crate) fn layout(&self) -> StreamLayout {
        StreamLayout::new(self.len() as u64, self.segment_size)
    }

    /// The current slot.
    pub(crate) fn current_slot(&self) -> Slot<'a> {
        match self.slots[self.current] {
            Some(slot) => slot,
            None => unreachable!("parse chose a verified slot"),
        }
    }

    /// The current KEK reference as the key paths' [`Parsed`] view.
    pub(crate) fn key_source(&self) -> Result<Parsed<'a>> {
        format::parse_kek_ref(
            self.suite,
            self.stable,
            self.commitment,
            self.current_slot().kek_ref,
        )
    }

    /// The bytes that move `new_ref` into the slot that is not current, with the next
    /// generation, and that slot's offset from the start of the stream.
    pub(crate) fn next_slot(&self, new_ref: &[u8]) -> Result<(u64, Vec<u8>)> {
        let generation = self
            .current_slot()
            .generation
            .checked_add(1)
            .ok_or_else(|| {
                Error::malformed("KEK reference slots", "the generation counter is exhausted")
            })?;
        let target = 1 - self.current;
        let bytes = encode_slot(self.slot_len, generation, new_ref)?;
        Ok(((STABLE_LEN + target * self.slot_len) as u64, bytes))
    }
}

/// Puts a slot kept apart from the stream (an object's metadata, where a rewrap of an
/// immutable object writes it: see `docs/FORMAT.md`) into `header`, in the position of the
/// slot that is not current, when it is valid and newer than the current slot. `Ok(true)`
/// when it was applied; `Ok(false)` for an older slot (the object was rewritten since).
pub fn apply_slot(header: &mut [u8], slot: &[u8]) -> Result<bool> {
    let parsed = StreamHeader::parse(header)?;
    if slot.len() != parsed.slot_len {
        return Err(Error::malformed(
            "KEK reference slot",
            format!(
                "a {}-byte slot for a header with {}-byte slots",
                slot.len(),
                parsed.slot_len
            ),
        ));
    }
    let Some(candidate) = read_slot(slot)? else {
        return Err(Error::malformed(
            "KEK reference slot",
            "the slot kept apart from the stream fails its check",
        ));
    };
    if candidate.generation <= parsed.current_slot().generation {
        return Ok(false);
    }
    let at = STABLE_LEN + (1 - parsed.current) * parsed.slot_len;
    header[at..at + slot.len()].copy_from_slice(slot);
    Ok(true)
}

/// Reads one slot: `None` when its check does not verify or it is empty.
fn read_slot(slot: &[u8]) -> Result<Option<Slot<'_>>> {
    let (body, check) = slot.split_at(slot.len() - SLOT_CHECK_LEN);
    let generation = u32::from_be_bytes(be(&body[..4]));
    if generation == 0 || slot_check(body)[..] != *check {
        return Ok(None);
    }
    let len = u16::from_be_bytes(be(&body[4..6])) as usize;
    let kek_ref = body.get(6..6 + len).ok_or_else(|| {
        Error::malformed(
            "KEK reference slot",
            format!(
                "a reference of {len} bytes does not fit a {}-byte slot",
                slot.len()
            ),
        )
    })?;
    Ok(Some(Slot {
        generation,
        kek_ref,
    }))
}

/// The first 16 bytes of SHA-256("envelope.v4.slot" || slot without check): detects a torn
/// or partial slot write (not an authenticator: the key commitment is, see
/// `docs/FORMAT.md`).
fn slot_check(body: &[u8]) -> [u8; SLOT_CHECK_LEN] {
    let mut hash = Sha256::new();
    hash.update(SLOT_CHECK_LABEL);
    hash.update(body);
    let digest = hash.finalize();
    let mut out = [0u8; SLOT_CHECK_LEN];
    out.copy_from_slice(&digest[..SLOT_CHECK_LEN]);
    out
}

/// A slot holding `kek_ref` at `generation`.
fn encode_slot(slot_len: usize, generation: u32, kek_ref: &[u8]) -> Result<Vec<u8>> {
    if kek_ref.len() + SLOT_FIXED_LEN > slot_len {
        return Err(Error::InvalidConfig(format!(
            "the new KEK reference ({} bytes) does not fit this stream's {slot_len}-byte slot; \
             re-encrypt the stream instead",
            kek_ref.len()
        )));
    }
    let mut slot = vec![0u8; slot_len];
    slot[..4].copy_from_slice(&generation.to_be_bytes());
    slot[4..6].copy_from_slice(&(kek_ref.len() as u16).to_be_bytes());
    slot[6..6 + kek_ref.len()].copy_from_slice(kek_ref);
    let check_at = slot_len - SLOT_CHECK_LEN;
    let check = slot_check(&slot[..check_at]);
    slot[check_at..].copy_from_slice(&check);
    Ok(slot)
}

/// The slot length a writer chooses for a KEK reference.
pub(crate) fn slot_len_for(kek_ref_len: usize) -> Result<usize> {
    let needed = kek_ref_len + SLOT_FIXED_LEN + SLOT_HEADROOM;
    let len = needed.div_ceil(64) * 64;
    let len = len.max(DEFAULT_SLOT_LEN);
    if len > MAX_SLOT_LEN {
        return Err(Error::InvalidConfig(format!(
            "a KEK reference of {kek_ref_len} bytes does not fit a stream header slot"
        )));
    }
    Ok(len)
}

/// A new header: the stable part, slot 0 holding `kek_ref` at generation 1, slot 1 empty.
pub(crate) fn encode(
    suite: Suite,
    segment_size: u32,
    salt: &[u8; SALT_LEN],
    commitment: &[u8; COMMITMENT_LEN],
    kek_ref: &[u8],
) -> Result<Vec<u8>> {
    if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size) {
        return Err(Error::InvalidConfig(format!(
            "segment size {segment_size} is outside {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE} bytes"
        )));
    }
    let slot_len = slot_len_for(kek_ref.len())?;
    let mut out = Vec::with_capacity(STABLE_LEN + 2 * slot_len);
    out.extend_from_slice(&MAGIC);
    out.push(STREAM_FORMAT_VERSION);
    out.push(suite.id());
    out.extend_from_slice(&segment_size.to_be_bytes());
    out.extend_from_slice(&(slot_len as u16).to_be_bytes());
    out.extend_from_slice(salt);
    out.extend_from_slice(commitment);
    let first = encode_slot(slot_len, 1, kek_ref)?;
    out.extend_from_slice(&first);
    out.resize(STABLE_LEN + 2 * slot_len, 0);
    Ok(out)
}
