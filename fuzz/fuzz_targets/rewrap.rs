//! `rewrap` through a local-keyring envelope: any input rewraps or fails with a typed
//! error; a successful rewrap keeps the stable header and the body byte for byte, and the
//! result decrypts exactly like the input did.
#![no_main]

mod common;

use std::sync::OnceLock;

use envelope::{BlockingEnvelope, CryptoProvider, Envelope};
use libfuzzer_sys::fuzz_target;

fn envelope() -> &'static BlockingEnvelope {
    static E: OnceLock<BlockingEnvelope> = OnceLock::new();
    E.get_or_init(|| common::envelope(CryptoProvider::default()))
}

fuzz_target!(|data: &[u8]| {
    let (aad, ct) = common::split_aad(data);
    let env = envelope();
    let Ok(rewrapped) = env.rewrap(ct) else { return };
    let (before, after) = (Envelope::inspect(ct), Envelope::inspect(&rewrapped.ciphertext));
    let (Ok(before), Ok(after)) = (before, after) else {
        panic!("rewrap accepted or produced an unparsable ciphertext")
    };
    let stable = 4 + before.suite.nonce_len() + 32;
    assert_eq!(ct[..stable], rewrapped.ciphertext[..stable], "stable header changed");
    assert_eq!(ct[before.header_len..], rewrapped.ciphertext[after.header_len..], "body changed");
    let (x, y) = (env.decrypt(ct, aad), env.decrypt(&rewrapped.ciphertext, aad));
    match (x, y) {
        (Ok(p), Ok(q)) => assert_eq!(p, q),
        (Err(_), Err(_)) => {}
        (x, y) => panic!("rewrap changed decryptability: {:?} / {:?}", x.is_ok(), y.is_ok()),
    }
});
