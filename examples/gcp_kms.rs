//! Envelope encryption with a key in Google Cloud KMS.
//!
//! ```sh
//! # Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, workload identity)
//! cargo run --features gcp --example gcp_kms -- \
//!     gcp-kms://projects/P/locations/europe-west1/keyRings/app/cryptoKeys/orders
//! # an emulator on loopback (drongo): ENVELOPE_GCP_KMS_ENDPOINT=http://127.0.0.1:PORT and
//! # append ?http=loopback&credentials=anonymous
//! ```

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::args().nth(1).ok_or(
        "usage: gcp_kms gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K[?http=loopback&credentials=anonymous]",
    )?;
    let envelope = envelope::open(&uri)?;

    let key = envelope.describe_key().await?;
    println!(
        "key {}: primary version {}, automatic rotation: {}",
        key.key_id,
        key.current_version.as_deref().unwrap_or("(none enabled)"),
        key.rotation.automatic
    );

    let aad = b"orders.card_number#7";
    let ciphertext = envelope.encrypt(b"4111 1111 1111 1111", aad).await?;
    let header = envelope::Envelope::inspect(&ciphertext)?;
    println!(
        "encrypted under {} version {:?}, {} bytes of overhead",
        header.key_id, header.key_version, header.overhead
    );

    // After `gcloud kms keys versions create … --primary`, this moves the DEK to the new
    // primary version (Decrypt, then Encrypt; a DEK already under the primary costs one
    // Decrypt and comes back unchanged).
    let rewrapped = envelope.rewrap(&ciphertext).await?;
    println!("rewrap changed the header: {}", rewrapped.changed);

    let plaintext = envelope.decrypt(&rewrapped.ciphertext, aad).await?;
    println!("decrypted: {}", String::from_utf8_lossy(&plaintext));
    Ok(())
}
