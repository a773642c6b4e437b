//! Envelope encryption with a key in AWS KMS.
//!
//! ```sh
//! # credentials and profile from the standard AWS environment
//! cargo run --features aws --example aws_kms -- aws-kms://arn:aws:kms:eu-west-1:111122223333:key/…
//! # an emulator on loopback: AWS_ENDPOINT_URL_KMS=http://127.0.0.1:5000 and append ?http=loopback
//! ```

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::args()
        .nth(1)
        .ok_or("usage: aws_kms aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID[?http=loopback]")?;
    let envelope = envelope::open(&uri)?;

    let key = envelope.describe_key().await?;
    println!(
        "key {}: current key material {}, automatic rotation: {}",
        key.key_id,
        key.current_version.as_deref().unwrap_or("(not reported)"),
        key.rotation.automatic
    );

    let aad = b"orders.card_number#7";
    let ciphertext = envelope.encrypt(b"4111 1111 1111 1111", aad).await?;
    let header = envelope::Envelope::inspect(&ciphertext)?;
    println!(
        "encrypted under {} (key material {:?}), {} bytes of overhead",
        header.key_id, header.key_version, header.overhead
    );

    // After `aws kms rotate-key-on-demand --key-id …`, this moves the DEK to the new key
    // material with ReEncrypt (the DEK never leaves KMS).
    let rewrapped = envelope.rewrap(&ciphertext).await?;
    println!("rewrap changed the header: {}", rewrapped.changed);

    let plaintext = envelope.decrypt(&rewrapped.ciphertext, aad).await?;
    println!("decrypted: {}", String::from_utf8_lossy(&plaintext));
    Ok(())
}
