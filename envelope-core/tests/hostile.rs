//! Hostile ciphertexts cannot turn into an unbounded stream of KMS calls: the negative
//! cache answers repeated junk headers, the rate limit bounds distinct ones, and neither
//! lets a forged header deny genuine data.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::Fixture;
use envelope_core::{
    CachePolicy, Dek, EncryptionContext, Envelope, Error, ErrorKind, GeneratedDek, KeyDescription,
    Kms, LocalKms, Provider, Result, WrappedDek,
};

const AAD: &[u8] = b"patients.ssn#42";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// `ct` with its 60-byte local wrapped DEK replaced by junk derived from `i`: a distinct KEK
/// reference per `i`, which parses and reaches the KMS.
fn junk_header(ct: &[u8], i: u32) -> Vec<u8> {
    let info = Envelope::inspect(ct).unwrap();
    let wrapped_end = info.header_len;
    let wrapped_start = wrapped_end - info.wrapped_dek_len;
    let mut junk = ct.to_vec();
    for (j, b) in junk[wrapped_start..wrapped_end].iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> (j % 4 * 8)) as u8 ^ j as u8;
    }
    junk
}

#[test]
fn ten_thousand_distinct_junk_headers_cost_at_most_the_rate_limit() {
    let fx = Fixture::new();
    let rt = runtime();
    let writer = fx.envelope(CachePolicy::default());
    let ct = rt.block_on(writer.encrypt(b"123-45-6789", AAD)).unwrap();
    let (reader, kms) =
        fx.other_process(CachePolicy::default().with_max_unwraps_per_second(Some(50)));

    let started = Instant::now();
    let mut throttled = 0;
    for i in 0..10_000 {
        let err = rt
            .block_on(reader.decrypt(&junk_header(&ct, i), AAD))
            .unwrap_err();
        match err.kind() {
            ErrorKind::DecryptionFailed => {}
            ErrorKind::Throttled => {
                assert!(err.is_retryable());
                throttled += 1;
            }
            other => panic!("junk header {i}: {other}: {err}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let calls = kms.calls().unwrap;
    // A burst of one second's worth, then the rate.
    let bound = 50 + (50.0 * elapsed).ceil() as u64;
    assert!(
        calls <= bound,
        "{calls} unwrap calls for 10,000 junk headers in {elapsed:.2} s (bound {bound})"
    );
    let stats = reader.stats();
    assert_eq!(stats.kms_unwrap_calls, calls);
    assert_eq!(stats.unwraps_refused_rate_limited, throttled);
    assert_eq!(calls + throttled, 10_000);

    // Genuine data still decrypts once the bucket has refilled.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        rt.block_on(reader.decrypt(&ct, AAD)).unwrap(),
        b"123-45-6789"
    );
}

#[test]
fn repeated_junk_headers_cost_one_call_each_within_the_negative_ttl() {
    let fx = Fixture::new();
    let rt = runtime();
    let writer = fx.envelope(CachePolicy::default());
    let ct = rt.block_on(writer.encrypt(b"123-45-6789", AAD)).unwrap();
    let (reader, kms) = fx.other_process(CachePolicy::default());
    let junk: Vec<Vec<u8>> = (0..100).map(|i| junk_header(&ct, i)).collect();
    for _ in 0..100 {
        for j in &junk {
            let err = rt.block_on(reader.decrypt(j, AAD)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{err}");
        }
    }
    assert_eq!(kms.calls().unwrap, 100, "one call per distinct junk header");
    let stats = reader.stats();
    assert_eq!(stats.unwraps_refused_remembered, 9_900);
    // clear_caches forgets remembered failures.
    reader.clear_caches();
    assert!(rt.block_on(reader.decrypt(&junk[0], AAD)).is_err());
    assert_eq!(kms.calls().unwrap, 101);
    // Rewrap of the same junk is answered from the same memory.
    reader.clear_caches();
    assert!(rt.block_on(reader.rewrap(&junk[1])).is_err());
    assert!(rt.block_on(reader.rewrap(&junk[1])).is_err());
    assert_eq!(kms.calls().rewrap, 1);
}

#[test]
fn the_negative_ttl_expires_and_zero_turns_it_off() {
    let fx = Fixture::new();
    let rt = runtime();
    let writer = fx.envelope(CachePolicy::default());
    let ct = rt.block_on(writer.encrypt(b"x", AAD)).unwrap();
    let junk = junk_header(&ct, 7);
    let (short, kms) =
        fx.other_process(CachePolicy::default().with_negative_ttl(Duration::from_millis(200)));
    for _ in 0..5 {
        assert!(rt.block_on(short.decrypt(&junk, AAD)).is_err());
    }
    assert_eq!(kms.calls().unwrap, 1);
    std::thread::sleep(Duration::from_millis(400));
    assert!(rt.block_on(short.decrypt(&junk, AAD)).is_err());
    assert_eq!(kms.calls().unwrap, 2, "remembered only for the TTL");

    let (off, kms) = fx.other_process(CachePolicy::default().with_negative_ttl(Duration::ZERO));
    for _ in 0..5 {
        assert!(rt.block_on(off.decrypt(&junk, AAD)).is_err());
    }
    assert_eq!(kms.calls().unwrap, 5);
}

/// A forged commitment on a genuine KEK reference must not deny the genuine rows: the
/// unwrap succeeded, so nothing is remembered against that reference.
#[test]
fn a_forged_header_does_not_deny_genuine_rows() {
    let fx = Fixture::new();
    let rt = runtime();
    let writer = fx.envelope(CachePolicy::default());
    let ct = rt.block_on(writer.encrypt(b"123-45-6789", AAD)).unwrap();
    let (reader, _) = fx.other_process(CachePolicy::default());
    let mut forged = ct.clone();
    forged[4 + 12] ^= 1; // first commitment byte
    assert_eq!(
        rt.block_on(reader.decrypt(&forged, AAD))
            .unwrap_err()
            .kind(),
        ErrorKind::DecryptionFailed
    );
    assert_eq!(
        rt.block_on(reader.decrypt(&ct, AAD)).unwrap(),
        b"123-45-6789"
    );
}

/// Fails its first `failures` unwraps with `Unavailable`, then delegates.
#[derive(Debug)]
struct FlakyKms {
    inner: LocalKms,
    failures: AtomicU64,
}

#[async_trait]
impl Kms for FlakyKms {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }
    async fn wrap_dek(&self, k: &str, d: &Dek, c: &EncryptionContext) -> Result<WrappedDek> {
        self.inner.wrap_dek(k, d, c).await
    }
    async fn unwrap_dek(&self, w: &WrappedDek, c: &EncryptionContext) -> Result<Dek> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::Unavailable {
                operation: "unwrap",
                source: None,
            });
        }
        self.inner.unwrap_dek(w, c).await
    }
    async fn describe_key(&self, k: &str) -> Result<KeyDescription> {
        self.inner.describe_key(k).await
    }
    async fn generate_dek(&self, k: &str, c: &EncryptionContext) -> Result<GeneratedDek> {
        self.inner.generate_dek(k, c).await
    }
}

#[test]
fn transient_failures_are_never_remembered() {
    let fx = Fixture::new();
    let rt = runtime();
    let writer = fx.envelope(CachePolicy::default());
    let ct = rt.block_on(writer.encrypt(b"123-45-6789", AAD)).unwrap();
    let flaky = Arc::new(FlakyKms {
        inner: LocalKms::new(fx.keyring.clone()),
        failures: AtomicU64::new(1),
    });
    let reader = Envelope::builder(flaky, "default").build().unwrap();
    let err = rt.block_on(reader.decrypt(&ct, AAD)).unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        rt.block_on(reader.decrypt(&ct, AAD)).unwrap(),
        b"123-45-6789",
        "the retry reaches the KMS"
    );
    assert_eq!(reader.stats().unwraps_refused_remembered, 0);
}

#[test]
fn a_zero_rate_limit_is_refused() {
    let fx = Fixture::new();
    let err = Envelope::builder(fx.kms.clone(), "default")
        .cache_policy(CachePolicy::default().with_max_unwraps_per_second(Some(0)))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

/// Unwraps, but may not rewrap (a Vault token without `transit/rewrap`).
#[derive(Debug)]
struct NoRewrapKms(LocalKms);

#[async_trait]
impl Kms for NoRewrapKms {
    fn provider(&self) -> Provider {
        self.0.provider()
    }
    async fn wrap_dek(&self, k: &str, d: &Dek, c: &EncryptionContext) -> Result<WrappedDek> {
        self.0.wrap_dek(k, d, c).await
    }
    async fn unwrap_dek(&self, w: &WrappedDek, c: &EncryptionContext) -> Result<Dek> {
        self.0.unwrap_dek(w, c).await
    }
    async fn describe_key(&self, k: &str) -> Result<KeyDescription> {
        self.0.describe_key(k).await
    }
    async fn rewrap_dek(
        &self,
        w: &WrappedDek,
        _target: &str,
        _c: &EncryptionContext,
    ) -> Result<WrappedDek> {
        Err(Error::PermissionDenied {
            operation: "rewrap",
            key_id: w.key_id.clone(),
            source: None,
        })
    }
}

/// A refused rewrap is remembered for rewraps only: decrypting the same rows still works.
#[test]
fn a_refused_rewrap_does_not_deny_decryption() {
    let fx = Fixture::new();
    let rt = runtime();
    let writer = fx.envelope(CachePolicy::default());
    let ct = rt.block_on(writer.encrypt(b"123-45-6789", AAD)).unwrap();
    let reader = Envelope::builder(NoRewrapKms(LocalKms::new(fx.keyring.clone())), "default")
        .build()
        .unwrap();
    for _ in 0..2 {
        let err = rt.block_on(reader.rewrap(&ct)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    }
    assert_eq!(
        reader.stats().unwraps_refused_remembered,
        1,
        "the second rewrap is remembered"
    );
    assert_eq!(
        rt.block_on(reader.decrypt(&ct, AAD)).unwrap(),
        b"123-45-6789",
        "decryption of the same DEK is not refused"
    );
}
