//! The header parsers and `inspect` (format version 1 and streams): any bytes give header
//! facts or a typed error, never a panic, and the facts are consistent with the input's
//! length.
#![no_main]

use envelope::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if envelope::stream::is_stream(data) {
        if let Ok(info) = Envelope::inspect(data) {
            assert!(info.segment_size.is_some());
            let segments = (info.overhead - info.header_len) / 16;
            assert!(info.header_len <= data.len());
            // The header alone, or a complete stream whose lengths add up.
            assert!(
                (data.len() == info.header_len && info.plaintext_len == 0)
                    || (segments >= 1 && info.header_len + info.plaintext_len + 16 * segments == data.len())
            );
            assert_eq!(envelope::stream::header_len(data).ok(), Some(info.header_len));
        }
        return;
    }
    if let Ok(info) = Envelope::inspect(data) {
        assert_eq!(info.header_len + info.plaintext_len + 16, data.len());
        assert_eq!(info.overhead, info.header_len + 16);
        assert!(info.wrapped_dek_len >= 1 && info.wrapped_dek_len < info.header_len);
        // The text form of parsable bytes parses to the same facts.
        let text = envelope::format::to_text(data);
        assert_eq!(Envelope::inspect_text(&text).ok(), Some(info));
    }
});
