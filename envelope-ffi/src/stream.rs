//! Streams (format version 4) across the C ABI: an encryptor and a decryptor fed in pieces
//! (new / update / finish, each update returning library-owned bytes), segments sealed and
//! opened on several threads, and random access (`envelope_stream_decrypt_segment` with
//! the layout functions) for readers that can seek.

use envelope::stream::{self, EncryptingWriter, StreamOpener};

use crate::boundary::{FfiError, boundary};
use crate::buffers::{give, input, non_null};
use crate::client::{client_ref, envelope_client};
use crate::status::envelope_status;

/// A stream being encrypted. Opaque; free with `envelope_stream_encryptor_free`.
pub struct envelope_stream_encryptor {
    _private: [u8; 0],
}

/// A stream being decrypted. Opaque; free with `envelope_stream_decryptor_free`.
pub struct envelope_stream_decryptor {
    _private: [u8; 0],
}

struct Encryptor {
    /// `None` once finished.
    writer: Option<EncryptingWriter<Vec<u8>>>,
}

struct Decryptor {
    opener: StreamOpener,
    threads: usize,
    /// Wire bytes given but not opened yet (at most one segment plus what the next update
    /// completes).
    pending: Vec<u8>,
    next: u64,
    /// Set after `finish` or a failure: no more input is taken.
    closed: bool,
}

fn threads_of(threads: u32) -> usize {
    (threads as usize).clamp(1, 256)
}

/// # Safety
/// `ptr` came from `envelope_stream_encryptor_new` and is live.
unsafe fn encryptor_mut<'a>(
    ptr: *mut envelope_stream_encryptor,
) -> Result<&'a mut Encryptor, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::Null("encryptor"));
    }
    // SAFETY: from `Box::into_raw(Box<Encryptor>)`, live per the contract.
    Ok(unsafe { &mut *(ptr as *mut Encryptor) })
}

/// # Safety
/// `ptr` came from `envelope_stream_decryptor_new` and is live.
unsafe fn decryptor_mut<'a>(
    ptr: *mut envelope_stream_decryptor,
) -> Result<&'a mut Decryptor, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::Null("decryptor"));
    }
    // SAFETY: from `Box::into_raw(Box<Decryptor>)`, live per the contract.
    Ok(unsafe { &mut *(ptr as *mut Decryptor) })
}

fn io_error(e: std::io::Error) -> FfiError {
    let shown = e.to_string();
    match stream::StreamError::sdk_error(e) {
        Some(sdk) => sdk.into(),
        None => FfiError::Invalid(format!("stream write failed: {shown}")),
    }
}

/// Starts encrypting a stream bound to `aad`: one KMS call when the client's DEK is not
/// cached. `segment_size` is the plaintext bytes per segment (0: 65536; else 4096 to
/// 16777216); `threads` seal segments in parallel (0 or 1: the caller's thread only).
/// The stream's header is the start of the first update's output.
///
/// # Safety
/// `client` live for the encryptor's life; `aad` valid for `aad_len`; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_stream_encryptor_new(
    client: *const envelope_client,
    aad: *const u8,
    aad_len: usize,
    segment_size: u32,
    threads: u32,
    out: *mut *mut envelope_stream_encryptor,
) -> envelope_status {
    boundary(|| {
        let out = non_null(out, "out")?;
        // SAFETY: per the contract.
        let (c, aad) = unsafe { (client_ref(client)?, input(aad, aad_len, "aad")?) };
        let size = if segment_size == 0 {
            stream::DEFAULT_SEGMENT_SIZE
        } else {
            segment_size
        };
        let sealer = c.envelope.stream_sealer(aad, size)?;
        let writer =
            EncryptingWriter::new(Vec::new(), sealer, threads_of(threads)).map_err(io_error)?;
        let boxed = Box::new(Encryptor {
            writer: Some(writer),
        });
        // SAFETY: checked non-null; writable per the contract.
        unsafe { *out = Box::into_raw(boxed) as *mut envelope_stream_encryptor };
        Ok(())
    })
}

/// Encrypts the next `data_len` bytes of plaintext. `*out`/`*out_len` receive the stream
/// bytes ready so far (library-owned; free with `envelope_bytes_free`; possibly empty: a
/// segment is released once the next byte shows it is not the final one, a batch of
/// `threads × 32` segments at a time).
///
/// # Safety
/// `encryptor` live; `data` valid for `data_len`; `out`/`out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_stream_encrypt_update(
    encryptor: *mut envelope_stream_encryptor,
    data: *const u8,
    data_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    boundary(|| {
        let (out, out_len) = (non_null(out, "out")?, non_null(out_len, "out_len")?);
        // SAFETY: per the contract.
        let (e, data) = unsafe { (encryptor_mut(encryptor)?, input(data, data_len, "data")?) };
        let writer = e
            .writer
            .as_mut()
            .ok_or_else(|| FfiError::Invalid("the stream is already finished".into()))?;
        std::io::Write::write_all(writer, data).map_err(io_error)?;
        let ready = writer.get_mut().map(std::mem::take).unwrap_or_default();
        // SAFETY: checked non-null above.
        unsafe { give(out, out_len, ready) };
        Ok(())
    })
}

/// Seals the final segment: `*out`/`*out_len` receive the rest of the stream. The
/// encryptor takes no more input (free it). A stream whose encryptor is freed without
/// `finish` has no final segment: every reader refuses it as truncated.
///
/// # Safety
/// `encryptor` live; `out`/`out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_stream_encrypt_finish(
    encryptor: *mut envelope_stream_encryptor,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    boundary(|| {
        let (out, out_len) = (non_null(out, "out")?, non_null(out_len, "out_len")?);
        // SAFETY: per the contract.
        let e = unsafe { encryptor_mut(encryptor)? };
        let writer = e
            .writer
            .take()
            .ok_or_else(|| FfiError::Invalid("the stream is already finished".into()))?;
        let rest = writer.finish().map_err(io_error)?;
        // SAFETY: checked non-null above.
        unsafe { give(out, out_len, rest) };
        Ok(())
    })
}

/// Releases an encryptor (NULL is a no-op); buffered plaintext is zeroized.
///
/// # Safety
/// `encryptor` from `envelope_stream_encryptor_new`, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_stream_encryptor_free(encryptor: *mut envelope_stream_encryptor) {
    let _ = boundary(|| {
        if !encryptor.is_null() {
            // SAFETY: from `Box::into_raw(Box<Encryptor>)`, freed once.
            drop(unsafe { Box::from_raw(encryptor as *mut Encryptor) });
        }
        Ok(())
    });
}

/// The length of a stream's header from its first 10 bytes (`ENVELOPE_MALFORMED` when they
/// are not a stream's, `ENVELOPE_UNSUPPORTED_FORMAT_VERSION` for another form).
///
/// # Safety
/// `prefix` valid for `prefix_len`; `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_stream_header_len(
    prefix: *const u8,
    prefix_len: usize,
    out_len: *mut usize,
) -> envelope_status {
    boundary(|| {
        let out_len = non_null(out_len, "out_len")?;
        // SAFETY: per the contract.
        let prefix = unsafe { input(prefix, prefix_len, "prefix")? };
        let len = stream::header_len(prefix)?;
        // SAFETY: checked non-null.
        unsafe { *out_len = len };
        Ok(())
    })
}

/// Starts decrypting the stream whose header is at the start of `header` (at least
/// `envelope_stream_header_len` bytes; more are ignored), bound to `aad`: one KMS unwrap
/// when the DEK is not cached, and the key commitment checked. Feed the stream from its
/// header's end on to `envelope_stream_decrypt_update`, or read segments at random with
/// `envelope_stream_decrypt_segment`. `threads` open segments in parallel.
///
/// # Safety
/// `client` live; inputs valid for their lengths; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_stream_decryptor_new(
    client: *const envelope_client,
    header: *const u8,
    header_len: usize,
    aad: *const u8,
    aad_len: usize,
    threads: u32,
    out: *mut *mut envelope_stream_decryptor,
) -> envelope_status {
    boundary(|| {
        let out = non_null(out, "out")?;
        // SAFETY: per the contract.
        let (c, header, aad) = unsafe {
            (
                client_ref(client)?,
                input(header, header_len, "header")?,
                input(aad, aad_len, "aad")?,
            )
        };
        let opener = c.envelope.stream_opener(header, aad)?;
        let boxed = Box::new(Decryptor {
            opener,
            threads: threads_of(threads),
            pending: Vec::new(),
            next: 0,
            closed: false,
        });
        // SAFETY: checked non-null.
        unsafe { *out = Box::into_raw(boxed) as *mut envelope_stream_decryptor };
        Ok(())
    })
}

/// The stream's segment size and header length.
///
/// # Safety
/// `decryptor` live; the outputs writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_stream_decryptor_layout(
    decryptor: *mut envelope_stream_decryptor,
    segment_size: *mut u32,
    header_len: *mut usize,
) -> envelope_status {
    boundary(|| {
        let (size_out, header_out) = (
            non_null(segment_size, "segment_size")?,
            non_null(header_len, "header_len")?,
        );
        // SAFETY: per the contract.
        let d = unsafe { decryptor_mut(decryptor)? };
        let layout = d.opener.layout();
        // SAFETY: checked non-null.
        unsafe {
            *size_out = layout.segment_size();
            *header_out = layout.header_len() as usize;
        }
        Ok(())
    })
}

/// The number of segments of the stream when it is `total_len` bytes long (header
/// included), for random access: `ENVELOPE_TRUNCATED` for a stream with no segment,
/// `ENVELOPE_MALFORMED` for a length no complete stream has.
///
/// # Safety
/// `decryptor` live; `count` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_stream_segment_count(
    decryptor: *mut envelope_stream_decryptor,
    total_len: u64,
    count: *mut u64,
) -> envelope_status {
    boundary(|| {
        let count = non_null(count, "count")?;
        // SAFETY: per the contract.
        let d = unsafe { decryptor_mut(decryptor)? };
        let n = d.opener.layout().segment_count(total_len)?;
        // SAFETY: checked non-null.
        unsafe { *count = n };
        Ok(())
    })
}

/// Opens segment `index` (its bytes on the wire: `sealed`, tag included; `is_last` when it
/// is the stream's final segment) into the caller's buffer; `*out_len` receives its
/// plaintext length (`sealed_len - 16`; `ENVELOPE_BUFFER_TOO_SMALL` with the length
/// needed when `out_cap` is less). A segment that fails leaves nothing in `out_buf`:
/// `ENVELOPE_TRUNCATED` (a final segment sealed as non-final: the stream was cut),
/// `ENVELOPE_MALFORMED` (a non-final segment sealed as final: data was appended),
/// `ENVELOPE_DECRYPTION_FAILED` (anything else).
///
/// # Safety
/// `decryptor` live; `sealed` valid for `sealed_len`; `out_buf` writable for `out_cap`
/// bytes; `out_len` writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn envelope_stream_decrypt_segment(
    decryptor: *mut envelope_stream_decryptor,
    index: u64,
    is_last: bool,
    sealed: *const u8,
    sealed_len: usize,
    out_buf: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> envelope_status {
    boundary(|| {
        let out_len = non_null(out_len, "out_len")?;
        // SAFETY: per the contract.
        let (d, sealed) = unsafe {
            (
                decryptor_mut(decryptor)?,
                input(sealed, sealed_len, "sealed")?,
            )
        };
        let needed = sealed.len().saturating_sub(16);
        if out_cap < needed || sealed.len() < 16 {
            // SAFETY: checked non-null.
            unsafe { *out_len = needed };
            if sealed.len() < 16 {
                return Err(envelope::Error::DecryptionFailed.into());
            }
            return Err(FfiError::BufferTooSmall {
                needed,
                capacity: out_cap,
            });
        }
        let out: &mut [u8] = if needed == 0 {
            &mut []
        } else {
            non_null(out_buf, "out_buf")?;
            // SAFETY: non-null and writable for `out_cap` ≥ `needed` bytes per the contract.
            unsafe { std::slice::from_raw_parts_mut(out_buf, needed) }
        };
        d.opener.open_segment(index, is_last, sealed, out)?;
        // SAFETY: checked non-null.
        unsafe { *out_len = needed };
        Ok(())
    })
}

impl Decryptor {
    /// Opens every whole segment in `pending` that is known not to be final (more bytes
    /// follow it), or with `ends`, all of it as the end of the stream.
    fn drain(&mut self, ends: bool) -> Result<Vec<u8>, FfiError> {
        let sealed_len = self.opener.layout().sealed_segment_len() as usize;
        let take = if ends {
            if self.pending.is_empty() {
                return Err(envelope::Error::Truncated {
                    segments: self.next,
                    segment_size: self.opener.layout().segment_size(),
                }
                .into());
            }
            self.pending.len()
        } else {
            (self.pending.len().saturating_sub(1) / sealed_len) * sealed_len
        };
        if take == 0 {
            return Ok(Vec::new());
        }
        let count = take.div_ceil(sealed_len) as u64;
        let mut out = vec![0u8; take];
        let n = self.opener.open_run(
            self.next,
            &self.pending[..take],
            ends,
            &mut out,
            self.threads,
        )?;
        out.truncate(n);
        self.pending.drain(..take);
        self.next += count;
        Ok(out)
    }
}

/// Decrypts the next `data_len` bytes of the stream (from the end of its header on).
/// `*out`/`*out_len` receive the plaintext of every segment that authenticated (library-
/// owned, zeroized by `envelope_bytes_free`; possibly empty: the last segment received is
/// held back until more bytes or `finish` show whether it is the final one). After a
/// failure the decryptor takes no more input; the plaintext returned before was authentic.
///
/// # Safety
/// `decryptor` live; `data` valid for `data_len`; `out`/`out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_stream_decrypt_update(
    decryptor: *mut envelope_stream_decryptor,
    data: *const u8,
    data_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    boundary(|| {
        let (out, out_len) = (non_null(out, "out")?, non_null(out_len, "out_len")?);
        // SAFETY: per the contract.
        let (d, data) = unsafe { (decryptor_mut(decryptor)?, input(data, data_len, "data")?) };
        if d.closed {
            return Err(FfiError::Invalid(
                "the decryptor is finished or failed".into(),
            ));
        }
        d.pending.extend_from_slice(data);
        let opened = d.drain(false).inspect_err(|_| d.closed = true)?;
        // SAFETY: checked non-null.
        unsafe { give(out, out_len, opened) };
        Ok(())
    })
}

/// Opens what remains as the stream's final segment: `*out`/`*out_len` receive its
/// plaintext, or the call fails with `ENVELOPE_TRUNCATED` (the stream ended before its
/// final segment), `ENVELOPE_MALFORMED` or `ENVELOPE_DECRYPTION_FAILED`.
///
/// # Safety
/// `decryptor` live; `out`/`out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_stream_decrypt_finish(
    decryptor: *mut envelope_stream_decryptor,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    boundary(|| {
        let (out, out_len) = (non_null(out, "out")?, non_null(out_len, "out_len")?);
        // SAFETY: per the contract.
        let d = unsafe { decryptor_mut(decryptor)? };
        if d.closed {
            return Err(FfiError::Invalid(
                "the decryptor is finished or failed".into(),
            ));
        }
        d.closed = true;
        let opened = d.drain(true)?;
        // SAFETY: checked non-null.
        unsafe { give(out, out_len, opened) };
        Ok(())
    })
}

/// Releases a decryptor (NULL is a no-op).
///
/// # Safety
/// `decryptor` from `envelope_stream_decryptor_new`, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_stream_decryptor_free(decryptor: *mut envelope_stream_decryptor) {
    let _ = boundary(|| {
        if !decryptor.is_null() {
            // SAFETY: from `Box::into_raw(Box<Decryptor>)`, freed once.
            drop(unsafe { Box::from_raw(decryptor as *mut Decryptor) });
        }
        Ok(())
    });
}
