//! The DEK cache, measured by the local KMS's own call counters.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::Fixture;
use envelope_core::{
    CachePolicy, Dek, EncryptionContext, Envelope, GeneratedDek, KeyDescription, Kms, LocalKms,
    Provider, Result, WrappedDek,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn hundred_thousand_encrypts_one_generate_and_decrypts_one_unwrap() {
    let fx = Fixture::new();
    let rt = runtime();
    let writer = fx.envelope(CachePolicy::default());
    let cts: Vec<Vec<u8>> = rt.block_on(async {
        let mut out = Vec::with_capacity(100_000);
        for i in 0..100_000u32 {
            out.push(writer.encrypt(&i.to_le_bytes(), b"t.c").await.unwrap());
        }
        out
    });
    assert_eq!(fx.kms.calls().generate, 1);
    let stats = writer.stats();
    assert_eq!(
        (stats.encrypt_cache_hits, stats.encrypt_cache_misses),
        (99_999, 1)
    );
    assert_eq!(stats.active_dek.as_ref().unwrap().messages, 100_000);
    assert_eq!(stats.active_dek.as_ref().unwrap().bytes, 400_000);

    // The writer decrypts its own ciphertexts without any unwrap.
    rt.block_on(writer.decrypt(&cts[0], b"t.c")).unwrap();
    assert_eq!(fx.kms.calls().unwrap, 0);

    // A reader process: one unwrap for 100,000 decrypts.
    let (reader, reader_kms) = fx.other_process(CachePolicy::default());
    rt.block_on(async {
        for (i, ct) in cts.iter().enumerate() {
            assert_eq!(
                reader.decrypt(ct, b"t.c").await.unwrap(),
                (i as u32).to_le_bytes()
            );
        }
    });
    assert_eq!(reader_kms.calls().unwrap, 1);
    let stats = reader.stats();
    assert_eq!(
        (stats.decrypt_cache_hits, stats.decrypt_cache_misses),
        (99_999, 1)
    );
    assert_eq!(stats.kms_unwrap_calls, 1);
}

/// A KMS that takes 100 ms per call, so that concurrent misses really overlap.
#[derive(Debug)]
struct Slow(Arc<LocalKms>);

#[async_trait]
impl Kms for Slow {
    fn provider(&self) -> Provider {
        self.0.provider()
    }
    async fn wrap_dek(&self, k: &str, d: &Dek, c: &EncryptionContext) -> Result<WrappedDek> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.0.wrap_dek(k, d, c).await
    }
    async fn unwrap_dek(&self, w: &WrappedDek, c: &EncryptionContext) -> Result<Dek> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.0.unwrap_dek(w, c).await
    }
    async fn describe_key(&self, k: &str) -> Result<KeyDescription> {
        self.0.describe_key(k).await
    }
    async fn generate_dek(&self, k: &str, c: &EncryptionContext) -> Result<GeneratedDek> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.0.generate_dek(k, c).await
    }
}

#[test]
fn sixty_four_concurrent_misses_make_one_call() {
    let fx = Fixture::new();
    let rt = runtime();
    let writer = Envelope::builder(Slow(fx.kms.clone()), "default")
        .build()
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let cts: Vec<Vec<u8>> = rt.block_on(async {
        let tasks: Vec<_> = (0..64u8)
            .map(|i| {
                let (w, b) = (writer.clone(), barrier.clone());
                tokio::spawn(async move {
                    b.wait().await;
                    w.encrypt(&[i], &[i]).await.unwrap()
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert_eq!(fx.kms.calls().generate, 1, "64 concurrent cold encrypts");
    assert_eq!(writer.stats().encrypt_cache_misses, 1);

    let reader_kms = Arc::new(LocalKms::new(fx.keyring.clone()));
    let reader = Envelope::builder(Slow(reader_kms.clone()), "default")
        .build()
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    rt.block_on(async {
        let tasks: Vec<_> = cts
            .into_iter()
            .enumerate()
            .map(|(i, ct)| {
                let (r, b) = (reader.clone(), barrier.clone());
                tokio::spawn(async move {
                    b.wait().await;
                    assert_eq!(r.decrypt(&ct, &[i as u8]).await.unwrap(), [i as u8]);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(reader_kms.calls().unwrap, 1, "64 concurrent cold decrypts");
}

#[test]
fn message_limit_triggers_a_new_dek_exactly_when_reached() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = fx.envelope(CachePolicy::default().with_max_messages(10));
    for i in 1..=25u32 {
        rt.block_on(env.encrypt(b"m", b"")).unwrap();
        let expected = (i as u64 - 1) / 10 + 1;
        assert_eq!(fx.kms.calls().generate, expected, "after message {i}");
    }
}

#[test]
fn byte_limit_triggers_a_new_dek_exactly_when_reached() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = fx.envelope(CachePolicy::default().with_max_bytes(1000));
    let hundred = [7u8; 100];
    for i in 1..=10 {
        rt.block_on(env.encrypt(&hundred, b"")).unwrap();
        assert_eq!(fx.kms.calls().generate, 1, "after {i} x 100 bytes");
    }
    rt.block_on(env.encrypt(b"x", b"")).unwrap();
    assert_eq!(
        fx.kms.calls().generate,
        2,
        "the 1001st byte needs a new DEK"
    );
    // A message larger than the limit gets a DEK of its own.
    rt.block_on(env.encrypt(&[0u8; 1500], b"")).unwrap();
    assert_eq!(fx.kms.calls().generate, 3);
    rt.block_on(env.encrypt(b"y", b"")).unwrap();
    assert_eq!(fx.kms.calls().generate, 4);
}

#[test]
fn age_limit_triggers_a_new_dek() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = fx.envelope(CachePolicy::default().with_max_age(Duration::from_millis(300)));
    rt.block_on(env.encrypt(b"a", b"")).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    rt.block_on(env.encrypt(b"b", b"")).unwrap();
    assert_eq!(fx.kms.calls().generate, 1, "younger than max_age");
    std::thread::sleep(Duration::from_millis(300));
    rt.block_on(env.encrypt(b"c", b"")).unwrap();
    assert_eq!(fx.kms.calls().generate, 2, "older than max_age");
}

#[test]
fn rotation_is_picked_up_within_max_age() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = fx.envelope(CachePolicy::default().with_max_age(Duration::from_millis(300)));
    let version = |ct: &[u8]| Envelope::inspect(ct).unwrap().key_version;
    assert_eq!(version(&rt.block_on(env.encrypt(b"a", b"")).unwrap()), "1");
    fx.keyring.rotate("default").unwrap();
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(version(&rt.block_on(env.encrypt(b"b", b"")).unwrap()), "2");
}

#[test]
fn decrypt_ttl_expires_unwrapped_deks() {
    let fx = Fixture::new();
    let rt = runtime();
    let ct = rt
        .block_on(fx.envelope(CachePolicy::default()).encrypt(b"a", b""))
        .unwrap();
    let (reader, kms) =
        fx.other_process(CachePolicy::default().with_decrypt_ttl(Duration::from_millis(200)));
    rt.block_on(reader.decrypt(&ct, b"")).unwrap();
    rt.block_on(reader.decrypt(&ct, b"")).unwrap();
    assert_eq!(kms.calls().unwrap, 1);
    std::thread::sleep(Duration::from_millis(300));
    rt.block_on(reader.decrypt(&ct, b"")).unwrap();
    assert_eq!(kms.calls().unwrap, 2);
}

#[test]
fn disabled_cache_calls_the_kms_every_time() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = fx.envelope(CachePolicy::disabled());
    let cts: Vec<_> = (0..20)
        .map(|_| rt.block_on(env.encrypt(b"x", b"")).unwrap())
        .collect();
    assert_eq!(fx.kms.calls().generate, 20);
    for ct in &cts {
        rt.block_on(env.decrypt(ct, b"")).unwrap();
    }
    assert_eq!(fx.kms.calls().unwrap, 20);
    let stats = env.stats();
    assert_eq!((stats.deks_created, stats.kms_unwrap_calls), (20, 20));
    assert_eq!(stats.encrypt_cache_hits + stats.decrypt_cache_hits, 0);
}

#[test]
fn a_failed_unwrap_is_not_cached_and_a_tampered_header_cannot_poison_the_cache() {
    let fx = Fixture::new();
    let rt = runtime();
    let ct = rt
        .block_on(fx.envelope(CachePolicy::default()).encrypt(b"ok", b""))
        .unwrap();
    let (reader, kms) = fx.other_process(CachePolicy::default());
    // Same KEK reference, forged commitment: the unwrap succeeds, the commitment check fails,
    // and nothing is cached; the genuine ciphertext then unwraps and is cached.
    let mut forged = ct.clone();
    forged[4 + 12] ^= 0xff;
    assert!(rt.block_on(reader.decrypt(&forged, b"")).is_err());
    assert_eq!(rt.block_on(reader.decrypt(&ct, b"")).unwrap(), b"ok");
    assert_eq!(kms.calls().unwrap, 2, "the forged attempt was not cached");
    assert!(rt.block_on(reader.decrypt(&forged, b"")).is_err());
    assert_eq!(kms.calls().unwrap, 2, "the verified key is cached");
}
