//! The Cloud KMS backend against drongo, a Cloud KMS REST v1 emulator started by
//! scripts/test.sh (ENVELOPE_TEST_GCP_ENDPOINT, ENVELOPE_TEST_DRONGO_BIN). These tests fail,
//! never skip, when the server is missing. What drongo cannot serve (more than one version,
//! version states, real encryption) is tested on the client crate's own types in the unit
//! tests; the crate README lists the gaps.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use envelope_core::testing::{ConformanceOptions, run_conformance};
use envelope_core::{
    CachePolicy, EncryptionContext, Envelope, Error, ErrorKind, Kms, KmsExt, Provider,
};
use envelope_kms_gcp::{GcpKms, GcpKmsBuilder};
use google_cloud_kms_v1::model::CryptoKey;
use google_cloud_kms_v1::model::crypto_key::CryptoKeyPurpose;

fn endpoint() -> String {
    std::env::var("ENVELOPE_TEST_GCP_ENDPOINT").unwrap_or_else(|_| {
        panic!("ENVELOPE_TEST_GCP_ENDPOINT is not set: run scripts/test.sh, which starts drongo")
    })
}

fn kms_at(endpoint: &str) -> GcpKms {
    GcpKmsBuilder::new()
        .with_endpoint(endpoint)
        .with_allow_http_loopback(true)
        .with_anonymous_credentials(true)
        .with_timeouts(Duration::from_secs(4), Duration::from_secs(1))
        .build()
        .unwrap()
}

fn kms() -> GcpKms {
    kms_at(&endpoint())
}

/// Creates a key ring and an ENCRYPT_DECRYPT key no other test uses; returns the key name.
async fn create_key(kms: &GcpKms) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let id = format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let client = kms.client().await.unwrap();
    let ring = client
        .create_key_ring()
        .set_parent("projects/envelope-test/locations/global")
        .set_key_ring_id(&id)
        .send()
        .await
        .unwrap();
    client
        .create_crypto_key()
        .set_parent(&ring.name)
        .set_crypto_key_id("k")
        .set_crypto_key(CryptoKey::new().set_purpose(CryptoKeyPurpose::EncryptDecrypt))
        .send()
        .await
        .unwrap()
        .name
}

/// The core conformance suite. drongo does not encrypt (its "ciphertext" is base64 JSON),
/// so it cannot authenticate a wrapped DEK: a tampered one that still parses decrypts, and
/// one that does not parse crashes it with HTTP 500, which the backend rightly calls
/// retryable. `authenticates_wraps: false` says so; the INVALID_ARGUMENT mapping of real
/// Cloud KMS is unit-tested, and a substituted wrapped DEK is refused by the key commitment
/// (`spliced_wrapped_dek_is_refused_by_the_key_commitment`).
#[tokio::test]
async fn conformance() {
    let kms = Arc::new(kms());
    let key = create_key(&kms).await;
    let opts = ConformanceOptions {
        authenticates_wraps: false,
        missing_key_id: key.replace("/cryptoKeys/k", "/cryptoKeys/missing"),
        ..ConformanceOptions::default()
    };
    let failures = run_conformance(kms.clone(), &key, &opts).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A header carrying another message's authentic wrapped DEK: Cloud KMS (or drongo)
/// unwraps it without complaint, and the key commitment refuses it.
#[tokio::test]
async fn spliced_wrapped_dek_is_refused_by_the_key_commitment() {
    let kms = Arc::new(kms());
    let key = create_key(&kms).await;
    let cold = || {
        Envelope::builder(self::kms(), key.clone())
            .cache_policy(CachePolicy::disabled())
            .build()
            .unwrap()
    };
    let a = cold().encrypt(b"message a", b"").await.unwrap();
    let b = cold().encrypt(b"message b", b"").await.unwrap();
    let wrapped_a = envelope_core::format::wrapped_dek(&a).unwrap().ciphertext;
    let wrapped_b = envelope_core::format::wrapped_dek(&b).unwrap().ciphertext;
    assert_ne!(wrapped_a, wrapped_b, "two messages, two DEKs");
    assert_eq!(wrapped_a.len(), wrapped_b.len());
    let at = b
        .windows(wrapped_b.len())
        .position(|w| w == wrapped_b.as_slice())
        .unwrap();
    let mut spliced = b.clone();
    spliced[at..at + wrapped_a.len()].copy_from_slice(&wrapped_a);
    let err = cold().decrypt(&spliced, b"").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{err}");
    assert_eq!(cold().decrypt(&b, b"").await.unwrap(), b"message b");
}

/// The DEK cache in front of Cloud KMS: 10,000 fields cost one Encrypt to write and one
/// Decrypt to read back with a cold reader.
#[tokio::test]
async fn ten_thousand_fields_one_encrypt_one_decrypt() {
    let writer_kms = Arc::new(kms());
    let key = create_key(&writer_kms).await;
    let writer = Envelope::builder_dyn(writer_kms.clone(), key.clone())
        .build()
        .unwrap();
    let mut cts = Vec::with_capacity(10_000);
    for i in 0..10_000u32 {
        cts.push(
            writer
                .encrypt(format!("ssn-{i:06}").as_bytes(), &i.to_be_bytes())
                .await
                .unwrap(),
        );
    }
    assert_eq!(writer_kms.calls().encrypt, 1);
    assert_eq!(writer_kms.calls().decrypt, 0);

    let info = Envelope::inspect(&cts[0]).unwrap();
    assert_eq!(info.provider, Provider::GcpKms);
    assert_eq!(info.key_id, key);
    assert_eq!(
        info.key_version, "1",
        "the header names the CryptoKeyVersion id"
    );

    let reader_kms = Arc::new(kms());
    let reader = Envelope::builder_dyn(reader_kms.clone(), key.clone())
        .build()
        .unwrap();
    for (i, ct) in cts.iter().enumerate() {
        let pt = reader.decrypt(ct, &(i as u32).to_be_bytes()).await.unwrap();
        assert_eq!(pt, format!("ssn-{i:06}").as_bytes());
    }
    assert_eq!(reader_kms.calls().decrypt, 1, "{:?}", reader_kms.calls());
    assert_eq!(reader_kms.calls().encrypt, 0);
}

#[tokio::test]
async fn wrong_aad_and_wrong_context_are_refused() {
    let kms = Arc::new(kms());
    let key = create_key(&kms).await;
    let mut context = EncryptionContext::new();
    context.insert("tenant".into(), "acme".into());
    let env = Envelope::builder_dyn(kms.clone(), key.clone())
        .encryption_context(context)
        .build()
        .unwrap();
    let ct = env.encrypt(b"4111 1111 1111 1111", b"row-1").await.unwrap();
    let cold = |context: Option<(&str, &str)>| {
        let mut b =
            Envelope::builder(self::kms(), key.clone()).cache_policy(CachePolicy::disabled());
        if let Some((k, v)) = context {
            let mut c = EncryptionContext::new();
            c.insert(k.into(), v.into());
            b = b.encryption_context(c);
        }
        b.build().unwrap()
    };
    let right = cold(Some(("tenant", "acme")));
    assert_eq!(
        right.decrypt(&ct, b"row-1").await.unwrap(),
        b"4111 1111 1111 1111"
    );
    // The per-message AAD is checked locally, by the body's tag.
    assert_eq!(
        right.decrypt(&ct, b"row-2").await.unwrap_err().kind(),
        ErrorKind::DecryptionFailed
    );
    // The encryption context is Cloud KMS's additional authenticated data: checked by the
    // server on Decrypt.
    for other in [cold(Some(("tenant", "other"))), cold(None)] {
        let err = other.decrypt(&ct, b"row-1").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{err}");
    }
}

#[tokio::test]
async fn missing_key_and_describe() {
    let kms = kms();
    let key = create_key(&kms).await;
    let missing = key.replace("/cryptoKeys/k", "/cryptoKeys/nope");
    let env = Envelope::builder(self::kms(), missing.clone())
        .build()
        .unwrap();
    let err = env.encrypt(b"x", b"").await.unwrap_err();
    assert!(
        matches!(&err, Error::KeyNotFound { key_id } if *key_id == missing),
        "{err}"
    );
    assert_eq!(
        kms.describe_key(&missing).await.unwrap_err().kind(),
        ErrorKind::KeyNotFound
    );

    // drongo has GetCryptoKey but not ListCryptoKeyVersions: the primary is still named.
    let d = kms.describe_key(&key).await.unwrap();
    assert_eq!(d.key_id, key);
    assert_eq!(d.current_version.as_deref(), Some("1"));
    assert_eq!(d.versions.len(), 1);
    assert_eq!(d.versions[0].version, "1");
    assert_eq!(d.versions[0].state, envelope_core::KeyVersionState::Enabled);
    let wrapped = kms
        .generate_dek(&key, &EncryptionContext::new())
        .await
        .unwrap();
    assert_eq!(kms.is_stale(&wrapped.wrapped).await.unwrap(), Some(false));
}

/// A DEK already under the primary version costs one Decrypt to rewrap and comes back
/// unchanged; rewrapping into another key moves it (Decrypt + Encrypt).
#[tokio::test]
async fn rewrap_under_the_primary_is_one_decrypt() {
    let kms = Arc::new(kms());
    let key = create_key(&kms).await;
    let other = create_key(&kms).await;
    let env = Envelope::builder_dyn(kms.clone(), key.clone())
        .build()
        .unwrap();
    let ct = env.encrypt(b"payload", b"aad").await.unwrap();
    let before = kms.calls();
    let rewrapper = Envelope::builder_dyn(kms.clone(), key.clone())
        .cache_policy(CachePolicy::disabled())
        .build()
        .unwrap();
    let out = rewrapper.rewrap(&ct).await.unwrap();
    assert!(!out.changed);
    assert_eq!(out.ciphertext, ct);
    let after = kms.calls();
    assert_eq!(after.decrypt - before.decrypt, 1);
    assert_eq!(after.encrypt, before.encrypt);

    let ctx = EncryptionContext::new();
    let wrapped = kms.generate_dek(&key, &ctx).await.unwrap();
    let moved = kms
        .rewrap_dek(&wrapped.wrapped, &other, &ctx)
        .await
        .unwrap();
    assert_eq!(moved.key_id, other);
    assert_eq!(
        kms.unwrap_dek(&moved, &ctx).await.unwrap().expose_secret(),
        wrapped.dek.expose_secret()
    );
}

/// A private drongo that this test stops in the middle of a run.
async fn private_drongo() -> (tokio::process::Child, String) {
    let bin = std::env::var("ENVELOPE_TEST_DRONGO_BIN")
        .expect("ENVELOPE_TEST_DRONGO_BIN is not set: run scripts/test.sh");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(&bin)
        .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "drongo did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, endpoint)
}

#[tokio::test]
async fn server_stopped_mid_run() {
    let (mut child, endpoint) = private_drongo().await;
    let kms = Arc::new(kms_at(&endpoint));
    let key = create_key(&kms).await;
    let env = Envelope::builder_dyn(kms.clone(), key.clone())
        .build()
        .unwrap();
    let mut before = Vec::new();
    for i in 0..10u8 {
        before.push(env.encrypt(&[i], b"").await.unwrap());
    }
    let cold_reader = Envelope::builder(kms_at(&endpoint), key.clone())
        .build()
        .unwrap();

    child.kill().await.unwrap();
    child.wait().await.unwrap();

    // Cached DEKs keep working.
    let after = env.encrypt(b"still", b"").await.unwrap();
    assert_eq!(env.decrypt(&after, b"").await.unwrap(), b"still");
    for (i, ct) in before.iter().enumerate() {
        assert_eq!(env.decrypt(ct, b"").await.unwrap(), [i as u8]);
    }
    // Anything that needs Cloud KMS fails with a clear, retryable error, within the
    // operation timeout (4 s) plus slack.
    let started = Instant::now();
    let err = cold_reader.decrypt(&before[0], b"").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let err = kms
        .wrap_dek(
            &key,
            &envelope_core::Dek::generate(),
            &EncryptionContext::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let err = env.describe_key().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
