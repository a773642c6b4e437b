//! A tight loop over the warm-cache hot paths, for a profiler:
//!
//! `cargo build --release --example profile_hot_path`
//! `perf record -g target/release/examples/profile_hot_path encrypt-into 5000000`
//!
//! Argument 1: `encrypt`, `decrypt` (allocating), `encrypt-into`, `decrypt-into` (caller's
//! buffer), or `floor-encrypt`, `floor-decrypt` (raw aws-lc-rs with a thread-local nonce,
//! into a reused buffer); argument 2: iterations.

use std::hint::black_box;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
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
    let mut buf = [0u8; 512];
    let floor = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).map_err(|_| "key")?);
    let fixed_nonce = [3u8; 12];
    let mut sealed = plaintext.to_vec();
    let floor_tag = floor
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(fixed_nonce),
            Aad::from(aad),
            &mut sealed,
        )
        .map_err(|_| "seal")?;
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        match what {
            "encrypt" => drop(black_box(envelope.encrypt(black_box(&plaintext), aad)?)),
            "decrypt" => drop(black_box(envelope.decrypt(black_box(&ct), aad)?)),
            "encrypt-into" => {
                black_box(envelope.encrypt_into(black_box(&plaintext), aad, &mut buf)?);
            }
            "decrypt-into" => {
                black_box(envelope.decrypt_into(black_box(&ct), aad, &mut buf)?);
            }
            "floor-encrypt" => {
                let mut nonce = [0u8; 12];
                rand::thread_rng().fill_bytes(&mut nonce);
                buf[..64].copy_from_slice(black_box(&plaintext));
                let tag = floor
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        &mut buf[..64],
                    )
                    .map_err(|_| "seal")?;
                drop(black_box(tag));
            }
            "floor-decrypt" => {
                floor
                    .open_separate_gather(
                        Nonce::assume_unique_for_key(fixed_nonce),
                        Aad::from(aad),
                        black_box(&sealed),
                        floor_tag.as_ref(),
                        &mut buf[..64],
                    )
                    .map_err(|_| "open")?;
                black_box(&buf);
            }
            other => return Err(format!("unknown case {other:?}").into()),
        }
    }
    let per_op = started.elapsed().as_nanos() as f64 / iterations as f64;
    println!("{what}: {per_op:.1} ns per operation over {iterations} iterations");
    Ok(())
}
