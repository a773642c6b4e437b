//! The text form: any string decodes or fails with a typed error; what decodes is canonical
//! (encoding it again gives the same string), so one ciphertext has one text form.
#![no_main]

use envelope::format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(bytes) = format::from_text(&text) {
        assert_eq!(format::to_text(&bytes), text, "a non-canonical text form was accepted");
    }
    let _ = envelope::Envelope::inspect_text(&text);
});
