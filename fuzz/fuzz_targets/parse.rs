//! The v1 header parser and `inspect`: any bytes give header facts or a typed error, never
//! a panic, and the facts are consistent with the input's length.
#![no_main]

use envelope::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = Envelope::inspect(data) {
        assert_eq!(info.header_len + info.plaintext_len + 16, data.len());
        assert_eq!(info.overhead, info.header_len + 16);
        assert!(info.wrapped_dek_len >= 1 && info.wrapped_dek_len < info.header_len);
        // The text form of parsable bytes parses to the same facts.
        let text = envelope::format::to_text(data);
        assert_eq!(Envelope::inspect_text(&text).ok(), Some(info));
    }
});
