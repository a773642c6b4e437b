//! Envelope encryption with a key in Vault / OpenBao Transit.
//!
//! ```sh
//! export VAULT_TOKEN=...                                  # or BAO_TOKEN
//! cargo run --features vault --example vault_transit -- vault://vault.internal:8200/transit/keys/orders
//! # a local dev server: vault://127.0.0.1:8200/transit/keys/orders?http=loopback
//! ```

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::args()
        .nth(1)
        .ok_or("usage: vault_transit vault://HOST:PORT/MOUNT/keys/NAME[?http=loopback]")?;
    let envelope = envelope::open(&uri)?;

    let key = envelope.describe_key().await?;
    println!(
        "key {} at version {} ({} versions, automatic rotation: {})",
        key.key_id,
        key.current_version.as_deref().unwrap_or("?"),
        key.versions.len(),
        key.rotation.automatic
    );

    let aad = b"orders.card_number#7";
    let ciphertext = envelope
        .encrypt_to_text(b"4111 1111 1111 1111", aad)
        .await?;
    let header = envelope::Envelope::inspect_text(&ciphertext)?;
    println!(
        "encrypted under {}://{} version {} ({} bytes of overhead)",
        header.provider, header.key_id, header.key_version, header.overhead
    );

    // After `bao write -f transit/keys/NAME/rotate`, this moves the DEK to the new version
    // without the DEK leaving Vault; before it, it is a no-op.
    let (rewrapped, changed) = envelope.rewrap_text(&ciphertext).await?;
    println!("rewrap changed the header: {changed}");

    let plaintext = envelope.decrypt_text(&rewrapped, aad).await?;
    println!("decrypted: {}", String::from_utf8_lossy(&plaintext));
    let stats = envelope.stats();
    println!(
        "KMS calls: {} datakey, {} decrypt, {} rewrap, {} describe",
        stats.kms_generate_calls,
        stats.kms_unwrap_calls,
        stats.kms_rewrap_calls,
        stats.kms_describe_calls
    );
    Ok(())
}
