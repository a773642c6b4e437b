//! A tight loop over the warm-cache hot paths, for a profiler:
//!
//! `cargo build --release --example profile_hot_path`
//! `perf record -g target/release/examples/profile_hot_path encrypt 5000000`
//!
//! Argument 1: `encrypt`, `decrypt` or `floor`; argument 2: iterations.

use std::hint::black_box;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use envelope::{BlockingEnvelope, LocalKeyring};
use rand::RngCore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("encrypt");
    let iterations: u64 = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5_000_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("keyring.json");
    LocalKeyring::create(&path, "default")?;
    let envelope = BlockingEnvelope::new(envelope::open(&format!("local://{}", path.display()))?)?;
    let plaintext = [0x5a; 64];
    let aad = b"table=patients;column=ssn;row=4242";
    let ct = envelope.encrypt(&plaintext, aad)?;
    let cipher = aes_gcm::Aes256Gcm::new(&[7u8; 32].into());
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        match what {
            "encrypt" => drop(black_box(envelope.encrypt(black_box(&plaintext), aad)?)),
            "decrypt" => drop(black_box(envelope.decrypt(black_box(&ct), aad)?)),
            _ => {
                let mut nonce = [0u8; 12];
                rand::thread_rng().fill_bytes(&mut nonce);
                let payload = Payload {
                    msg: black_box(&plaintext[..]),
                    aad,
                };
                drop(black_box(
                    cipher
                        .encrypt((&nonce).into(), payload)
                        .map_err(|_| "aead")?,
                ));
            }
        }
    }
    let per_op = started.elapsed().as_nanos() as f64 / iterations as f64;
    println!("{what}: {per_op:.1} ns per operation over {iterations} iterations");
    Ok(())
}
