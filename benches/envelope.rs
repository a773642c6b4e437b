//! Envelope costs next to the raw AEAD floor measured in the same run.
//!
//! `cargo bench --bench envelope`; `scripts/bench-report.py` prints the medians and ratios.
//! The async API is timed inside one `block_on` (as an async service calls it); the
//! blocking facade is timed call by call.
//! Every `envelope/*` figure is meant to be read as a ratio to the `floor/*` figure of the
//! same operation and size: the floor is the aes-gcm crate used directly, as a careful user
//! would (a fresh 96-bit nonce from the same thread-local CSPRNG, an allocating
//! encrypt/decrypt of the same plaintext and AAD).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use envelope::{BlockingEnvelope, CachePolicy, Envelope, LocalKeyring, LocalKms};
use rand::RngCore;

const SIZES: [usize; 3] = [64, 1024, 1 << 20];
const AAD: &[u8] = b"table=patients;column=ssn;row=4242";

struct Setup {
    _dir: tempfile::TempDir,
    keyring: LocalKeyring,
    rt: tokio::runtime::Runtime,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let keyring =
            LocalKeyring::create(dir.path().join("keyring.json"), "default").expect("keyring");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        Setup {
            _dir: dir,
            keyring,
            rt,
        }
    }

    fn envelope(&self, policy: CachePolicy) -> Envelope {
        Envelope::builder(LocalKms::new(self.keyring.clone()), "default")
            .cache_policy(policy)
            .build()
            .expect("envelope")
    }
}

/// Times `iters` calls of an async operation awaited in one task (as an async service
/// calls the SDK), without a `block_on` per call.
fn time_async<F, Fut, T>(rt: &tokio::runtime::Runtime, iters: u64, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = envelope::Result<T>>,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(op().await.expect("operation"));
        }
        start.elapsed()
    })
}

fn floor_cipher() -> Aes256Gcm {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    Aes256Gcm::new(&key.into())
}

fn floor_encrypt(cipher: &Aes256Gcm, plaintext: &[u8]) -> (Vec<u8>, [u8; 12]) {
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: AAD,
            },
        )
        .expect("encrypt");
    (ct, nonce)
}

fn encrypt_decrypt(c: &mut Criterion) {
    let setup = Setup::new();
    let envelope = setup.envelope(CachePolicy::default());
    let cipher = floor_cipher();
    for size in SIZES {
        let plaintext = vec![0x5a; size];
        let mut group = c.benchmark_group(format!("encrypt/{size}"));
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 20 {
            group.sample_size(30);
        }
        group.bench_function("floor", |b| {
            b.iter(|| floor_encrypt(&cipher, black_box(&plaintext)))
        });
        setup
            .rt
            .block_on(envelope.encrypt(&plaintext, AAD))
            .expect("warm");
        group.bench_function("envelope", |b| {
            b.iter_custom(|iters| {
                time_async(&setup.rt, iters, || {
                    envelope.encrypt(black_box(&plaintext), AAD)
                })
            })
        });
        group.finish();

        let mut group = c.benchmark_group(format!("decrypt/{size}"));
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 20 {
            group.sample_size(30);
        }
        let (floor_ct, nonce) = floor_encrypt(&cipher, &plaintext);
        group.bench_function("floor", |b| {
            b.iter(|| {
                cipher
                    .decrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: black_box(&floor_ct),
                            aad: AAD,
                        },
                    )
                    .expect("decrypt")
            })
        });
        let ct = setup
            .rt
            .block_on(envelope.encrypt(&plaintext, AAD))
            .expect("encrypt");
        group.bench_function("envelope", |b| {
            b.iter_custom(|iters| {
                time_async(&setup.rt, iters, || envelope.decrypt(black_box(&ct), AAD))
            })
        });
        group.finish();
    }
}

/// The blocking facade (what the C ABI calls) and decryption across many DEKs.
fn blocking_and_many_deks(c: &mut Criterion) {
    let setup = Setup::new();
    let cipher = floor_cipher();
    let plaintext = [0x5a; 64];
    let blocking = BlockingEnvelope::new(setup.envelope(CachePolicy::default())).expect("blocking");
    let ct = blocking.encrypt(&plaintext, AAD).expect("warm");

    // 1,000 ciphertexts under 1,000 distinct DEKs, decrypted round-robin (warm cache).
    let writer = setup.envelope(CachePolicy::default().with_max_messages(1));
    let many: Vec<Vec<u8>> = (0..1000)
        .map(|_| {
            setup
                .rt
                .block_on(writer.encrypt(&plaintext, AAD))
                .expect("encrypt")
        })
        .collect();
    let reader = setup.envelope(CachePolicy::default());
    for ct in &many {
        setup.rt.block_on(reader.decrypt(ct, AAD)).expect("warm");
    }

    let mut group = c.benchmark_group("blocking/64");
    group.bench_function("floor-encrypt", |b| {
        b.iter(|| floor_encrypt(&cipher, black_box(&plaintext)))
    });
    group.bench_function("encrypt", |b| {
        b.iter(|| blocking.encrypt(black_box(&plaintext), AAD))
    });
    group.bench_function("decrypt", |b| {
        b.iter(|| blocking.decrypt(black_box(&ct), AAD).expect("decrypt"))
    });
    let reader = BlockingEnvelope::new(reader).expect("blocking");
    let mut i = 0;
    group.bench_function("decrypt-1000-deks", |b| {
        b.iter(|| {
            i = (i + 1) % many.len();
            reader.decrypt(black_box(&many[i]), AAD).expect("decrypt")
        })
    });
    group.finish();
}

/// Costs that include a KMS call (the local keyring file): a cold encrypt and rewrap.
fn kms_bound(c: &mut Criterion) {
    let setup = Setup::new();
    let plaintext = [0x5a; 64];
    let cold = setup.envelope(CachePolicy::disabled());
    let warm = setup.envelope(CachePolicy::default());
    let ct = setup
        .rt
        .block_on(warm.encrypt(&plaintext, AAD))
        .expect("encrypt");
    setup.keyring.rotate("default").expect("rotate");
    warm.refresh_kek();

    let mut group = c.benchmark_group("kms/64");
    group.bench_function("encrypt-cold", |b| {
        b.iter(|| setup.rt.block_on(cold.encrypt(black_box(&plaintext), AAD)))
    });
    group.bench_function("rewrap-kms-call", |b| {
        b.iter(|| {
            setup
                .rt
                .block_on(cold.rewrap(black_box(&ct)))
                .expect("rewrap")
        })
    });
    setup.rt.block_on(warm.rewrap(&ct)).expect("warm");
    group.bench_function("rewrap-memoized", |b| {
        b.iter(|| {
            setup
                .rt
                .block_on(warm.rewrap(black_box(&ct)))
                .expect("rewrap")
        })
    });
    group.finish();
}

criterion_group!(benches, encrypt_decrypt, blocking_and_many_deks, kms_bound);
criterion_main!(benches);
