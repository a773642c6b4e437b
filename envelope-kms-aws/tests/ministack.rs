//! The AWS backend against MiniStack (started by scripts/test.sh), the emulator that returns
//! `KeyMaterialId` and enforces key states: what moto (tests/kms.rs) cannot show. These
//! tests fail, never skip, when the server is missing.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

use std::time::Duration;

use aws_sdk_kms::Client;
use envelope_core::{CachePolicy, EncryptionContext, Envelope, ErrorKind, Kms};
use envelope_kms_aws::{AwsKms, AwsKmsBuilder};

fn kms() -> AwsKms {
    let endpoint = std::env::var("ENVELOPE_TEST_MINISTACK_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "ENVELOPE_TEST_MINISTACK_ENDPOINT is not set: run scripts/test.sh, which starts MiniStack"
        )
    });
    AwsKmsBuilder::new()
        .with_region("us-east-1")
        .with_endpoint(&endpoint)
        .with_allow_http_loopback(true)
        .with_static_credentials("testing", "testing")
        .with_timeouts(
            Duration::from_secs(5),
            Duration::from_secs(2),
            Duration::from_secs(1),
        )
        .build()
        .unwrap()
}

async fn create_key(client: &Client) -> (String, String) {
    let meta = client
        .create_key()
        .description("envelope test")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let material = meta
        .current_key_material_id()
        .expect("MiniStack reports CurrentKeyMaterialId")
        .to_owned();
    (meta.arn.unwrap(), material)
}

fn cold(kms: AwsKms, key: &str) -> Envelope {
    Envelope::builder(kms, key)
        .cache_policy(CachePolicy::disabled())
        .build()
        .unwrap()
}

/// The header records the key material that really wrapped the DEK, and describe_key
/// reports the same material as current.
#[tokio::test]
async fn header_records_the_key_material_id() {
    let kms = kms();
    let client = kms.client().await;
    let (key, material) = create_key(&client).await;
    let description = kms.describe_key(&key).await.unwrap();
    assert_eq!(
        description.current_version.as_deref(),
        Some(material.as_str())
    );

    let env = Envelope::builder(kms, &key).build().unwrap();
    let ct = env.encrypt(b"pii", b"row-1").await.unwrap();
    let info = Envelope::inspect(&ct).unwrap();
    assert_eq!(
        info.key_version, material,
        "the header names the KeyMaterialId"
    );
    let reader = cold(self::kms(), &key);
    assert_eq!(reader.decrypt(&ct, b"row-1").await.unwrap(), b"pii");
    assert_eq!(
        reader.decrypt(&ct, b"row-2").await.unwrap_err().kind(),
        ErrorKind::DecryptionFailed
    );
}

/// A disabled key refuses new data keys and unwraps with KeyVersionDisabled; re-enabled it
/// works again.
#[tokio::test]
async fn disabled_key_is_refused_by_the_server() {
    let kms = kms();
    let client = kms.client().await;
    let (key, _) = create_key(&client).await;
    let ct = cold(self::kms(), &key).encrypt(b"pii", b"").await.unwrap();
    client.disable_key().key_id(&key).send().await.unwrap();

    let err = cold(self::kms(), &key).decrypt(&ct, b"").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyVersionDisabled, "{err}");
    assert!(!err.is_retryable());
    let err = cold(self::kms(), &key)
        .encrypt(b"x", b"")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyVersionDisabled, "{err}");
    let ctx = EncryptionContext::new();
    assert_eq!(
        kms.generate_dek(&key, &ctx).await.unwrap_err().kind(),
        ErrorKind::KeyVersionDisabled
    );

    client.enable_key().key_id(&key).send().await.unwrap();
    assert_eq!(
        cold(self::kms(), &key).decrypt(&ct, b"").await.unwrap(),
        b"pii"
    );
}

/// A key pending deletion is refused as disabled (recoverable by cancelling the deletion),
/// not as missing or as a generic KMS failure.
#[tokio::test]
async fn key_pending_deletion_is_refused_by_the_server() {
    let kms = kms();
    let client = kms.client().await;
    let (key, _) = create_key(&client).await;
    let ct = cold(self::kms(), &key).encrypt(b"pii", b"").await.unwrap();
    client
        .schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();

    let err = cold(self::kms(), &key).decrypt(&ct, b"").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyVersionDisabled, "{err}");
    let err = cold(self::kms(), &key)
        .encrypt(b"x", b"")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyVersionDisabled, "{err}");

    client
        .cancel_key_deletion()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    client.enable_key().key_id(&key).send().await.unwrap();
    assert_eq!(
        cold(self::kms(), &key).decrypt(&ct, b"").await.unwrap(),
        b"pii"
    );
}
