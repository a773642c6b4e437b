//! `decrypt` through a local-keyring envelope, differentially on both crypto providers:
//! the same input gives the same plaintext or the same error kind on aws-lc-rs and
//! RustCrypto, never a panic, and the caller-buffer path agrees with the `Vec` path.
#![no_main]

mod common;

use std::sync::OnceLock;

use envelope::{BlockingEnvelope, CryptoProvider};
use libfuzzer_sys::fuzz_target;

fn envelopes() -> &'static (BlockingEnvelope, BlockingEnvelope) {
    static E: OnceLock<(BlockingEnvelope, BlockingEnvelope)> = OnceLock::new();
    E.get_or_init(|| {
        (
            common::envelope(CryptoProvider::AwsLc),
            common::envelope(CryptoProvider::RustCrypto),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (aad, ct) = common::split_aad(data);
    let (lc, rc) = envelopes();
    let a = lc.decrypt(ct, aad);
    let b = rc.decrypt(ct, aad);
    common::same_outcome(&a, &b, "providers");
    let mut buf = vec![0u8; ct.len()];
    match (lc.decrypt_into(ct, aad, &mut buf), &a) {
        (Ok(n), Ok(p)) => assert_eq!(&buf[..n], p.as_slice()),
        (Err(e), Err(f)) => {
            assert_eq!(e.kind(), f.kind());
            assert!(buf.iter().all(|&b| b == 0), "plaintext left after an error");
        }
        (x, y) => panic!("into and Vec disagree: {:?} / {:?}", x.map(|_| ()), y.as_ref().map(|_| ())),
    }
});
