//! Envelope costs next to raw AES-256-GCM floors measured in the same run.
//!
//! `scripts/bench-rust.py` runs this several times (separate processes) and prints medians
//! with min-max; `cargo bench --bench envelope` runs it once.
//!
//! Every `envelope*` figure is read as a ratio to the FASTEST `floor-*` figure of the same
//! operation and size in the same run. The floors are the AEAD crates used directly, as a
//! careful user would, with a fresh 96-bit nonce from the same thread-local CSPRNG, the same
//! plaintext and the same 34-byte AAD:
//! - `floor-aws-lc`: aws-lc-rs `LessSafeKey`, output in a new `Vec` (one copy + seal in place;
//!   decrypt: one copy + open in place);
//! - `floor-aws-lc-into`: aws-lc-rs into a reused buffer (encrypt: copy + seal in place;
//!   decrypt: `open_separate_gather` straight into the buffer, no copy at all);
//! - `floor-rustcrypto`: the `aes-gcm` crate's allocating `encrypt`/`decrypt`.
//!
//! The async API is timed as an async service calls it: many `.await`s in one task
//! (`iter_custom` inside one `block_on`). The blocking facade (what the C ABI calls) is timed
//! call by call. "Warm": the DEK is cached, the steady state of column encryption.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use envelope::{BlockingEnvelope, CachePolicy, Envelope, LocalKeyring, LocalKms};
use rand::RngCore;

const SIZES: [usize; 3] = [64, 1024, 1 << 20];
const AAD: &[u8] = b"table=patients;column=ssn;row=4242";
const TAG: usize = 16;

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

    /// An envelope writing the compact form, its DEK store a SQLite file in the temp dir.
    fn compact(&self) -> Envelope {
        let store = envelope_dekstore::SqliteDekStore::open(self._dir.path().join("deks.sqlite"))
            .expect("DEK store");
        Envelope::builder(LocalKms::new(self.keyring.clone()), "default")
            .dek_store(std::sync::Arc::new(store))
            .build()
            .expect("envelope")
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

fn fresh_nonce() -> [u8; 12] {
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    nonce
}

/// The raw AEADs, keyed once (as the envelope keys once per DEK).
struct Floors {
    lc: LessSafeKey,
    rc: aes_gcm::Aes256Gcm,
}

impl Floors {
    fn new() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Floors {
            lc: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("key")),
            rc: aes_gcm::Aes256Gcm::new(&key.into()),
        }
    }

    fn lc_encrypt(&self, plaintext: &[u8]) -> (Vec<u8>, [u8; 12]) {
        let nonce = fresh_nonce();
        let mut out = Vec::with_capacity(plaintext.len() + TAG);
        out.extend_from_slice(plaintext);
        self.lc
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut out,
            )
            .expect("seal");
        (out, nonce)
    }

    fn lc_encrypt_into(&self, plaintext: &[u8], out: &mut [u8]) {
        let nonce = fresh_nonce();
        let (body, tag_out) = out.split_at_mut(plaintext.len());
        body.copy_from_slice(plaintext);
        let tag = self
            .lc
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), body)
            .expect("seal");
        tag_out[..TAG].copy_from_slice(tag.as_ref());
    }

    fn lc_decrypt(&self, ct: &[u8], nonce: [u8; 12]) -> Vec<u8> {
        let mut out = ct.to_vec();
        let n = self
            .lc
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut out,
            )
            .expect("open")
            .len();
        out.truncate(n);
        out
    }

    fn lc_decrypt_into(&self, ct: &[u8], nonce: [u8; 12], out: &mut [u8]) {
        let (body, tag) = ct.split_at(ct.len() - TAG);
        self.lc
            .open_separate_gather(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                body,
                tag,
                &mut out[..body.len()],
            )
            .expect("open");
    }

    fn rc_encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = fresh_nonce();
        self.rc
            .encrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: AAD,
                },
            )
            .expect("encrypt")
    }

    fn rc_decrypt(&self, ct: &[u8], nonce: [u8; 12]) -> Vec<u8> {
        self.rc
            .decrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload { msg: ct, aad: AAD },
            )
            .expect("decrypt")
    }
}

fn sized_group<'a>(
    c: &'a mut Criterion,
    name: String,
    size: usize,
) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(size as u64));
    if size >= 1 << 20 {
        group.sample_size(30);
    }
    group
}

fn encrypt_decrypt(c: &mut Criterion) {
    let setup = Setup::new();
    let envelope = setup.envelope(CachePolicy::default());
    let blocking = BlockingEnvelope::new(envelope.clone()).expect("blocking");
    let compact = setup.compact();
    let floors = Floors::new();
    for size in SIZES {
        let plaintext = vec![0x5a; size];
        let mut buf = vec![0u8; size + 4096];

        let mut group = sized_group(c, format!("encrypt/{size}"), size);
        group.bench_function("floor-aws-lc", |b| {
            b.iter(|| floors.lc_encrypt(black_box(&plaintext)))
        });
        group.bench_function("floor-aws-lc-into", |b| {
            b.iter(|| floors.lc_encrypt_into(black_box(&plaintext), &mut buf))
        });
        group.bench_function("floor-rustcrypto", |b| {
            b.iter(|| floors.rc_encrypt(black_box(&plaintext)))
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
        group.bench_function("envelope-into", |b| {
            b.iter_custom(|iters| {
                setup.rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let n = envelope.encrypt_into(black_box(&plaintext), AAD, &mut buf);
                        black_box(n.await.expect("encrypt"));
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_function("blocking-into", |b| {
            b.iter(|| {
                blocking
                    .encrypt_into(black_box(&plaintext), AAD, &mut buf)
                    .expect("encrypt")
            })
        });
        setup
            .rt
            .block_on(compact.encrypt(&plaintext, AAD))
            .expect("warm");
        group.bench_function("compact-into", |b| {
            b.iter_custom(|iters| {
                setup.rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let n = compact.encrypt_into(black_box(&plaintext), AAD, &mut buf);
                        black_box(n.await.expect("encrypt"));
                    }
                    start.elapsed()
                })
            })
        });
        group.finish();

        let mut group = sized_group(c, format!("decrypt/{size}"), size);
        let (lc_ct, lc_nonce) = floors.lc_encrypt(&plaintext);
        let rc_nonce = fresh_nonce();
        let rc_ct = floors
            .rc
            .encrypt(
                aes_gcm::Nonce::from_slice(&rc_nonce),
                Payload {
                    msg: &plaintext,
                    aad: AAD,
                },
            )
            .expect("encrypt");
        group.bench_function("floor-aws-lc", |b| {
            b.iter(|| floors.lc_decrypt(black_box(&lc_ct), lc_nonce))
        });
        group.bench_function("floor-aws-lc-into", |b| {
            b.iter(|| floors.lc_decrypt_into(black_box(&lc_ct), lc_nonce, &mut buf))
        });
        group.bench_function("floor-rustcrypto", |b| {
            b.iter(|| floors.rc_decrypt(black_box(&rc_ct), rc_nonce))
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
        group.bench_function("envelope-into", |b| {
            b.iter_custom(|iters| {
                setup.rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let n = envelope.decrypt_into(black_box(&ct), AAD, &mut buf);
                        black_box(n.await.expect("decrypt"));
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_function("blocking-into", |b| {
            b.iter(|| {
                blocking
                    .decrypt_into(black_box(&ct), AAD, &mut buf)
                    .expect("decrypt")
            })
        });
        let compact_ct = setup
            .rt
            .block_on(compact.encrypt(&plaintext, AAD))
            .expect("encrypt");
        group.bench_function("compact-into", |b| {
            b.iter_custom(|iters| {
                setup.rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let n = compact.decrypt_into(black_box(&compact_ct), AAD, &mut buf);
                        black_box(n.await.expect("decrypt"));
                    }
                    start.elapsed()
                })
            })
        });
        group.finish();
    }
}

/// The blocking facade's allocating forms and decryption across many DEKs.
fn blocking_and_many_deks(c: &mut Criterion) {
    let setup = Setup::new();
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

/// Blind-index values of an 11-byte and a 64-byte input against HMAC-SHA256 of the same
/// input under a prepared key (aws-lc-rs and RustCrypto `hmac`: the fastest is the floor).
fn blind_index(c: &mut Criterion) {
    use envelope::blind_index::{BlindIndexes, IndexSettings, Normalizer};
    use hmac::Mac;
    let setup = Setup::new();
    let envelope = setup.envelope(CachePolicy::default());
    let store = envelope_dekstore::SqliteDekStore::open(setup._dir.path().join("index.sqlite"))
        .expect("index store");
    let indexes = BlindIndexes::new(&envelope, std::sync::Arc::new(store));
    let exact = IndexSettings::unique(Normalizer::exact());
    let folded =
        IndexSettings::unique(Normalizer::parse("nfkc_casefold+trim_collapse").expect("spec"));
    setup.rt.block_on(async {
        indexes.create("bench.exact", &exact).await.expect("create");
        indexes
            .create("bench.folded", &folded)
            .await
            .expect("create");
        indexes.compute("bench.exact", b"x").await.expect("load");
        indexes.compute("bench.folded", b"x").await.expect("load");
    });
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let lc = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let rc = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).expect("key");
    for (size, value) in [(11, &b"a@b.example"[..]), (64, &[b'x'; 64][..])] {
        let mut group = c.benchmark_group(format!("blind_index/{size}"));
        group.bench_function("floor-aws-lc-hmac", |b| {
            b.iter(|| aws_lc_rs::hmac::sign(&lc, black_box(value)))
        });
        group.bench_function("floor-rustcrypto-hmac", |b| {
            b.iter(|| {
                let mut mac = rc.clone();
                mac.update(black_box(value));
                mac.finalize().into_bytes()
            })
        });
        group.bench_function("blind-index", |b| {
            b.iter(|| {
                indexes
                    .try_compute("bench.exact", black_box(value))
                    .expect("loaded")
                    .expect("compute")
            })
        });
        group.bench_function("blind-index-nfkc-casefold", |b| {
            b.iter(|| {
                indexes
                    .try_compute("bench.folded", black_box(value))
                    .expect("loaded")
                    .expect("compute")
            })
        });
        group.finish();
    }
}

/// The key-use log's cost on the hot path: cached 64-byte encrypts and decrypts (the
/// blocking facade's in-place forms, the fastest) with the log off and on, beside the raw
/// AEAD floors. With the log on, each operation adds one atomic read (the fail-closed
/// check) and one relaxed atomic add (the DEK's cache-use counter).
fn key_use_log(c: &mut Criterion) {
    let setup = Setup::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let signer = envelope_audit::KeyFileSigner::generate("bench", &dir.path().join("key"))
        .expect("signing key");
    let log = envelope_audit::AuditLog::builder(
        envelope_audit::SinkConfig::file(dir.path().join("log")),
        std::sync::Arc::new(signer),
    )
    .open()
    .expect("log");
    let build = |logged: bool| {
        let builder = Envelope::builder(LocalKms::new(setup.keyring.clone()), "default");
        let builder = if logged {
            builder.key_use_log(std::sync::Arc::new(log.clone()))
        } else {
            builder
        };
        BlockingEnvelope::new(builder.build().expect("envelope")).expect("blocking")
    };
    let (off, on) = (build(false), build(true));
    let floors = Floors::new();
    let plaintext = [0x5a; 64];
    let mut buf = vec![0u8; 64 + 4096];
    let mut out = vec![0u8; 64];
    let ct_off = off.encrypt(&plaintext, AAD).expect("warm");
    let ct_on = on.encrypt(&plaintext, AAD).expect("warm");
    let (floor_ct, nonce) = floors.lc_encrypt(&plaintext);

    let mut group = sized_group(c, "audit-encrypt/64".into(), 64);
    group.bench_function("floor-aws-lc", |b| {
        b.iter(|| floors.lc_encrypt(black_box(&plaintext)))
    });
    group.bench_function("floor-aws-lc-into", |b| {
        b.iter(|| floors.lc_encrypt_into(black_box(&plaintext), &mut buf))
    });
    group.bench_function("floor-rustcrypto", |b| {
        b.iter(|| floors.rc_encrypt(black_box(&plaintext)))
    });
    group.bench_function("log-off", |b| {
        b.iter(|| {
            off.encrypt_into(black_box(&plaintext), AAD, &mut buf)
                .expect("encrypt")
        })
    });
    group.bench_function("log-on", |b| {
        b.iter(|| {
            on.encrypt_into(black_box(&plaintext), AAD, &mut buf)
                .expect("encrypt")
        })
    });
    group.finish();

    let mut group = sized_group(c, "audit-decrypt/64".into(), 64);
    group.bench_function("floor-aws-lc", |b| {
        b.iter(|| floors.lc_decrypt(black_box(&floor_ct), nonce))
    });
    group.bench_function("floor-aws-lc-into", |b| {
        b.iter(|| floors.lc_decrypt_into(black_box(&floor_ct), nonce, &mut out))
    });
    group.bench_function("floor-rustcrypto", |b| {
        b.iter(|| floors.rc_decrypt(black_box(&floor_ct), nonce))
    });
    group.bench_function("log-off", |b| {
        b.iter(|| {
            off.decrypt_into(black_box(&ct_off), AAD, &mut out)
                .expect("decrypt")
        })
    });
    group.bench_function("log-on", |b| {
        b.iter(|| {
            on.decrypt_into(black_box(&ct_on), AAD, &mut out)
                .expect("decrypt")
        })
    });
    group.finish();
    drop((off, on));
    log.close().expect("close");
}

criterion_group!(
    benches,
    encrypt_decrypt,
    blocking_and_many_deks,
    kms_bound,
    blind_index,
    key_use_log
);
criterion_main!(benches);
