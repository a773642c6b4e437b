//! The backend conformance suite, run against the local KMS (every build runs this).

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use std::sync::Arc;

use common::Fixture;
use envelope_core::Kms;
use envelope_core::testing::{ConformanceOptions, rotation_then_rewrap, run_conformance};

#[tokio::test]
async fn local_kms_passes_the_conformance_suite() {
    let fx = Fixture::new();
    let kms: Arc<dyn Kms> = fx.kms.clone();
    let failures = run_conformance(kms, "default", &ConformanceOptions::default()).await;
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn local_kms_rotation_then_rewrap() {
    let fx = Fixture::new();
    let keyring = fx.keyring.clone();
    let rotate = Box::pin(async move { keyring.rotate("default").map(|_| ()) });
    rotation_then_rewrap(&*fx.kms, "default", rotate)
        .await
        .unwrap();
}
