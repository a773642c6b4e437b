//! The compact form (format versions 3 and 2). The first input byte picks what is fuzzed:
//!
//! - `0`: the rest as a binary value: `inspect_compact` and the text form never panic, and
//!   a value that inspects re-encodes to a text that decodes to the same bytes;
//! - `1`: the rest as `[aad length] aad ciphertext`, decrypted through a DEK store holding
//!   the rows of `testvectors/compact.json`, differentially on both crypto providers (same
//!   plaintext or same error kind, never a panic), and through a reader that refuses
//!   version 2 (which must refuse every version 2 value and agree on the rest);
//! - `2`: the rest as DEK store rows in their JSON form: parsed rows write back to JSON that
//!   parses to the same rows.
#![no_main]

mod common;

use std::sync::{Arc, OnceLock};

use envelope::compact::{self, DekStore, stored_deks_from_json, stored_deks_to_json};
use envelope::{BlockingEnvelope, CryptoProvider, ErrorKind};
use envelope_core::testing::MemoryDekStore;
use libfuzzer_sys::fuzz_target;

/// The store with the vectors' rows, and readers over it on both providers plus a strict one.
fn readers() -> &'static (BlockingEnvelope, BlockingEnvelope, BlockingEnvelope) {
    static R: OnceLock<(BlockingEnvelope, BlockingEnvelope, BlockingEnvelope)> = OnceLock::new();
    R.get_or_init(|| {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../testvectors/compact.json");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("compact vectors"))
                .expect("vectors JSON");
        let rows = stored_deks_from_json(doc["dek_store"].to_string().as_bytes()).expect("rows");
        let store = Arc::new(MemoryDekStore::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for row in &rows {
            runtime.block_on(store.import(row)).expect("import");
        }
        let reader = |provider: CryptoProvider, accept_v2: bool| {
            let envelope = common::builder(provider)
                .dek_store(store.clone())
                .accept_compact_v2(accept_v2)
                .build()
                .expect("envelope");
            BlockingEnvelope::new(envelope).expect("blocking envelope")
        };
        (
            reader(CryptoProvider::AwsLc, true),
            reader(CryptoProvider::RustCrypto, true),
            reader(CryptoProvider::AwsLc, false),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(info) = compact::inspect_compact(rest) {
                assert_eq!(info.format_version, rest[2]);
                assert_eq!(info.committing, rest[2] == 3);
                assert_eq!(info.plaintext_len + info.overhead, rest.len());
                let text = envelope::format::to_text(rest);
                assert!(text.starts_with(&format!("ev{}:", rest[2])), "{text}");
                assert_eq!(envelope::format::from_text(&text).expect("own text"), rest);
            }
        }
        1 => {
            let (aad, ct) = common::split_aad(rest);
            let (lc, rc, strict) = readers();
            let a = lc.decrypt(ct, aad);
            let b = rc.decrypt(ct, aad);
            common::same_outcome(&a, &b, "providers");
            let s = strict.decrypt(ct, aad);
            if ct.len() > 2 && ct[..3] == *b"EV\x02" {
                assert!(s.is_err(), "a reader refusing version 2 opened one");
                if a.is_ok() {
                    assert!(
                        matches!(s, Err(envelope::Error::UnsupportedFormatVersion(2))),
                        "a genuine version 2 value not refused as one: {:?}",
                        s.as_ref().map(Vec::len)
                    );
                }
            } else {
                common::same_outcome(&s, &a, "strict and lenient readers");
            }
            if let Err(e) = &a {
                assert_ne!(e.kind(), ErrorKind::InvalidConfig, "the readers have a store: {e}");
            }
        }
        _ => {
            if let Ok(rows) = stored_deks_from_json(rest) {
                let json = stored_deks_to_json(&rows).to_string();
                let again = stored_deks_from_json(json.as_bytes()).expect("own JSON");
                assert_eq!(again, rows);
            }
        }
    }
});
