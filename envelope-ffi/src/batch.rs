//! Batch encrypt and decrypt: many small fields in one call (one boundary crossing, one
//! output allocation), with a status per item.

use envelope::BlockingEnvelope;

use crate::boundary::{FfiError, boundary, set_last_error};
use crate::buffers::{array, give, input, non_null};
use crate::client::{client_ref, envelope_client};
use crate::status::envelope_status;

/// One item's operation: the client, the item, its AAD.
type ItemOp = fn(&BlockingEnvelope, &[u8], &[u8], &mut Vec<u8>) -> envelope::Result<()>;

/// Splits `buf` at `offsets` (`count + 1` non-decreasing offsets ending within `buf`).
pub(crate) fn split<'a>(
    buf: &'a [u8],
    offsets: &[usize],
    name: &str,
) -> Result<Vec<&'a [u8]>, FfiError> {
    let mut items = Vec::with_capacity(offsets.len().saturating_sub(1));
    for w in offsets.windows(2) {
        let (start, end) = (w[0], w[1]);
        if start > end || end > buf.len() {
            return Err(FfiError::Invalid(format!(
                "{name} offsets must be non-decreasing and within the buffer ({start}..{end} of {})",
                buf.len()
            )));
        }
        items.push(&buf[start..end]);
    }
    Ok(items)
}

/// A batch's results as they are produced: one output buffer, `count + 1` offsets, a status
/// per item, and the first failure's detail.
pub(crate) struct BatchOutput {
    pub(crate) output: Vec<u8>,
    offsets: Vec<usize>,
    codes: Vec<u32>,
    first_failure: Option<String>,
}

impl BatchOutput {
    /// Room for `count` items of about `item_len` bytes each.
    pub(crate) fn new(count: usize, capacity: usize) -> Self {
        let mut offsets = Vec::with_capacity(count + 1);
        offsets.push(0);
        BatchOutput {
            output: Vec::with_capacity(capacity),
            offsets,
            codes: Vec::with_capacity(count),
            first_failure: None,
        }
    }

    /// The next item succeeded: its bytes are what `output` gained since the last item.
    pub(crate) fn ok(&mut self) {
        self.codes.push(envelope_status::ENVELOPE_OK as u32);
        self.offsets.push(self.output.len());
    }

    /// The next item failed (its output left empty).
    pub(crate) fn failed(&mut self, error: &envelope::Error) {
        let item = self.codes.len();
        self.codes.push(envelope_status::of(error) as u32);
        self.offsets.push(self.output.len());
        self.first_failure
            .get_or_insert_with(|| format!("item {item}: {error}"));
    }

    /// Writes the statuses and offsets and hands the output over; the first failure
    /// becomes the thread's last error.
    ///
    /// # Safety
    /// `statuses` writable for as many items as were recorded (NULL when none),
    /// `out_offsets` for one more, `out` and `out_len` writable.
    pub(crate) unsafe fn deliver(
        self,
        statuses: *mut u32,
        out: *mut *mut u8,
        out_len: *mut usize,
        out_offsets: *mut usize,
    ) {
        let count = self.codes.len();
        // SAFETY: per this function's contract.
        unsafe {
            if count > 0 {
                std::ptr::copy_nonoverlapping(self.codes.as_ptr(), statuses, count);
            }
            std::ptr::copy_nonoverlapping(self.offsets.as_ptr(), out_offsets, count + 1);
            give(out, out_len, self.output);
        }
        if let Some(message) = self.first_failure {
            set_last_error(message);
        }
    }
}

/// Shared body of the batch functions.
///
/// # Safety
/// As documented on `envelope_encrypt_batch`.
#[allow(clippy::too_many_arguments)]
unsafe fn batch(
    client_ptr: *const envelope_client,
    count: usize,
    data: *const u8,
    data_len: usize,
    data_offsets: *const usize,
    aad: *const u8,
    aad_len: usize,
    aad_offsets: *const usize,
    statuses: *mut u32,
    out: *mut *mut u8,
    out_len: *mut usize,
    out_offsets: *mut usize,
    op: ItemOp,
) -> envelope_status {
    boundary(|| {
        let out = non_null(out, "out")?;
        let out_len = non_null(out_len, "out_len")?;
        // `statuses` may be NULL for an empty batch (a pointer with its length, 0).
        if count > 0 {
            non_null(statuses, "statuses")?;
        }
        let out_offsets = non_null(out_offsets, "out_offsets")?;
        // SAFETY: per the public functions' contracts: `count + 1` offsets each.
        let (c, data, data_offsets) = unsafe {
            (
                client_ref(client_ptr)?,
                input(data, data_len, "data")?,
                array(data_offsets, count + 1, "data_offsets")?,
            )
        };
        let items = split(data, data_offsets, "data")?;
        let aads = if aad_offsets.is_null() {
            // One AAD shared by every item (a column-level AAD), or none.
            // SAFETY: per the contract, `aad` is valid for `aad_len` bytes.
            let shared = unsafe { input(aad, aad_len, "aad")? };
            vec![shared; count]
        } else {
            // SAFETY: per the contract, `count + 1` offsets into `aad_len` bytes.
            let (aad, aad_offsets) = unsafe {
                (
                    input(aad, aad_len, "aad")?,
                    array(aad_offsets, count + 1, "aad_offsets")?,
                )
            };
            split(aad, aad_offsets, "aad")?
        };
        // Ciphertexts are their plaintext plus a header and tag of a few hundred bytes at
        // most; reserving that up front avoids regrowing a large output many times.
        let mut results = BatchOutput::new(count, data.len() + count.saturating_mul(256));
        for (item, aad) in items.iter().zip(&aads) {
            // Each item appends straight into the one output buffer (left as it was when the
            // item fails).
            match op(&c.envelope, item, aad, &mut results.output) {
                Ok(()) => results.ok(),
                Err(e) => results.failed(&e),
            }
        }
        // SAFETY: all output pointers were checked non-null; the caller guarantees `count`
        // statuses and `count + 1` offsets of writable space.
        unsafe { results.deliver(statuses, out, out_len, out_offsets) };
        Ok(())
    })
}

/// Encrypts `count` plaintexts in one call.
///
/// Item `i` is `data[data_offsets[i] .. data_offsets[i + 1]]`, its AAD likewise in `aad`;
/// with `aad_offsets` NULL, all of `aad` (possibly empty) is every item's AAD. On return `statuses[i]` is item
/// `i`'s status, and its ciphertext is `out[out_offsets[i] .. out_offsets[i + 1]]` (empty
/// when it failed). The call returns `ENVELOPE_OK` when the batch ran, even if items failed;
/// `envelope_last_error_message` then names the first failed item.
///
/// # Safety
/// `data` valid for `data_len` bytes, `data_offsets` for `count + 1` elements, `aad` for
/// `aad_len` bytes and `aad_offsets` for `count + 1` elements (or NULL); `statuses` writable for `count` elements (NULL when `count` is 0),
/// `out_offsets` for `count + 1`; `out`/`out_len` writable. Free `out` with
/// `envelope_bytes_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_encrypt_batch(
    client: *const envelope_client,
    count: usize,
    data: *const u8,
    data_len: usize,
    data_offsets: *const usize,
    aad: *const u8,
    aad_len: usize,
    aad_offsets: *const usize,
    statuses: *mut u32,
    out: *mut *mut u8,
    out_len: *mut usize,
    out_offsets: *mut usize,
) -> envelope_status {
    // SAFETY: forwarded contract.
    unsafe {
        batch(
            client,
            count,
            data,
            data_len,
            data_offsets,
            aad,
            aad_len,
            aad_offsets,
            statuses,
            out,
            out_len,
            out_offsets,
            |e, pt, aad, out| e.encrypt_append(pt, aad, out),
        )
    }
}

/// Decrypts `count` binary ciphertexts in one call; the layout is `envelope_encrypt_batch`'s.
///
/// # Safety
/// As `envelope_encrypt_batch`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_decrypt_batch(
    client: *const envelope_client,
    count: usize,
    data: *const u8,
    data_len: usize,
    data_offsets: *const usize,
    aad: *const u8,
    aad_len: usize,
    aad_offsets: *const usize,
    statuses: *mut u32,
    out: *mut *mut u8,
    out_len: *mut usize,
    out_offsets: *mut usize,
) -> envelope_status {
    // SAFETY: forwarded contract.
    unsafe {
        batch(
            client,
            count,
            data,
            data_len,
            data_offsets,
            aad,
            aad_len,
            aad_offsets,
            statuses,
            out,
            out_len,
            out_offsets,
            |e, ct, aad, out| e.decrypt_append(ct, aad, out),
        )
    }
}
