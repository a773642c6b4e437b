//! The C ABI entry points with arbitrary lengths, offsets and buffer capacities: every call
//! returns a status code (never a panic across the boundary, never an out-of-bounds access
//! under AddressSanitizer), and outputs are written only on success.
//!
//! Input: byte 0 picks the entry point, byte 1 an output capacity, byte 2 an AAD length,
//! then the AAD and the data. Batch calls derive `count` and the offsets from the data.
#![no_main]

mod common;

use std::sync::OnceLock;

use envelope_ffi::*;
use libfuzzer_sys::fuzz_target;

struct Client(*mut envelope_client);
// SAFETY: the C ABI's clients are thread-safe (documented in envelope.h).
unsafe impl Send for Client {}
// SAFETY: as above.
unsafe impl Sync for Client {}

fn client() -> *const envelope_client {
    static C: OnceLock<Client> = OnceLock::new();
    C.get_or_init(|| {
        let (path, key_id) = common::vectors_keyring();
        let uri = format!("local://{}#{key_id}", path.display());
        let mut out = std::ptr::null_mut();
        // SAFETY: valid pointers and lengths; default options.
        let status = unsafe { envelope_client_new(uri.as_ptr(), uri.len(), std::ptr::null(), &mut out) };
        assert_eq!(status as u32, 0, "client");
        Client(out)
    })
    .0
}

fn ok(status: envelope_status) -> bool {
    status as u32 == 0
}

fuzz_target!(|input: &[u8]| {
    let [which, cap, aad_len, rest @ ..] = input else { return };
    let (aad, data) = rest.split_at((*aad_len as usize).min(rest.len()));
    let client = client();
    let cap = *cap as usize * 4;
    let mut buf = vec![0xA5u8; cap];
    let mut out_len = usize::MAX;
    // SAFETY: every pointer below is valid for the length passed with it.
    unsafe {
        match which % 6 {
            0 => {
                let s = envelope_decrypt_into(client, data.as_ptr(), data.len(), aad.as_ptr(), aad.len(), buf.as_mut_ptr(), cap, &mut out_len);
                if !ok(s) && s as u32 != 4 {
                    assert!(buf.iter().all(|&b| b == 0xA5 || b == 0), "output written on failure");
                }
            }
            1 => {
                let s = envelope_encrypt_into(client, data.as_ptr(), data.len(), aad.as_ptr(), aad.len(), buf.as_mut_ptr(), cap, &mut out_len);
                if ok(s) {
                    assert!(out_len <= cap);
                    let mut plain = vec![0u8; out_len];
                    let mut n = 0;
                    let s = envelope_decrypt_into(client, buf.as_ptr(), out_len, aad.as_ptr(), aad.len(), plain.as_mut_ptr(), plain.len(), &mut n);
                    assert!(ok(s) && &plain[..n] == data, "round trip");
                }
            }
            2 => {
                let mut out = std::ptr::null_mut();
                if ok(envelope_inspect_json(data.as_ptr(), data.len(), &mut out, &mut out_len)) {
                    let json = std::slice::from_raw_parts(out, out_len);
                    serde_json::from_slice::<serde_json::Value>(json).expect("inspect gives JSON");
                    envelope_bytes_free(out, out_len);
                } else {
                    assert!(out.is_null());
                }
            }
            3 | 4 => {
                // count and offsets from the data: arbitrary, often invalid, values.
                let count = data.first().map_or(0, |&c| (c % 8) as usize);
                let offsets: Vec<usize> = (0..=count)
                    .map(|i| data.get(1 + i).map_or(data.len(), |&o| o as usize))
                    .collect();
                let mut statuses = vec![0u32; count];
                let mut out = std::ptr::null_mut();
                let mut out_offsets = vec![0usize; count + 1];
                let f = if which % 6 == 3 { envelope_decrypt_batch } else { envelope_encrypt_batch };
                let s = f(client, count, data.as_ptr(), data.len(), offsets.as_ptr(), aad.as_ptr(), aad.len(), std::ptr::null(), statuses.as_mut_ptr(), &mut out, &mut out_len, out_offsets.as_mut_ptr());
                if ok(s) {
                    assert!(out_offsets.windows(2).all(|w| w[0] <= w[1]) && out_offsets[count] == out_len);
                    envelope_bytes_free(out, out_len);
                }
            }
            _ => {
                let mut n = 0;
                let _ = envelope_last_error_message(buf.as_mut_ptr(), cap, &mut n);
                if cap > 0 {
                    assert!(buf[..cap].contains(&0), "NUL-terminated within the buffer");
                }
                let text = envelope_status_message(u32::from_le_bytes([*which, *aad_len, 0, 0]));
                assert!(!text.is_null());
            }
        }
    }
});
