//! A walkthrough of envelope encryption on the local keyring: encrypt database fields,
//! rotate the KEK, rewrap, destroy the old KEK version, decrypt.
//!
//! `cargo run --example quickstart`

use envelope::{Envelope, Error, LocalKeyring};

const KEY_ID: &str = "default";

fn short(text: &str) -> String {
    format!("{}…", &text[..text.len().min(36)])
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("keyring.json");
    println!("envelope quickstart: the local keyring (development KMS), AES-256-GCM\n");

    let keyring = LocalKeyring::create(&path, KEY_ID)?;
    println!(
        "1. Created keyring {} with key {KEY_ID:?}, version 1 (file mode 0600).",
        path.display()
    );

    let envelope = envelope::open(&format!("local://{}#{KEY_ID}", path.display()))?;
    let fields: [(&str, &str, u32, &str); 3] = [
        ("patients", "ssn", 1, "123-45-6789"),
        ("patients", "ssn", 2, "987-65-4321"),
        ("patients", "email", 1, "ada@example.org"),
    ];
    let aad = |table: &str, column: &str, row: u32| format!("{table}.{column}#{row}");
    println!(
        "\n2. Encrypted {} database fields; the AAD binds table, column and row:",
        fields.len()
    );
    let mut stored = Vec::new();
    for (table, column, row, value) in fields {
        let text = envelope
            .encrypt_to_text(value.as_bytes(), aad(table, column, row).as_bytes())
            .await?;
        println!(
            "   {table}.{column:<6} row {row}  {value:<16} -> {} ({} chars)",
            short(&text),
            text.len()
        );
        stored.push(text);
    }
    let info = Envelope::inspect_text(&stored[0])?;
    println!(
        "   inspect (no key needed): {} under {}://{} version {}, {} bytes of overhead",
        info.suite, info.provider, info.key_id, info.key_version, info.overhead
    );
    let stats = envelope.stats();
    println!(
        "   KMS calls: {} generate for {} fields (the DEK cache served the rest)",
        stats.kms_generate_calls,
        fields.len()
    );

    let wrong = envelope
        .decrypt_text(&stored[0], aad("patients", "ssn", 2).as_bytes())
        .await;
    println!(
        "\n3. Row 1's ciphertext pasted into row 2 does not decrypt: {}",
        wrong.err().map(|e| e.to_string()).unwrap_or_default()
    );

    let new_version = keyring.rotate(KEY_ID)?;
    envelope.refresh_kek();
    println!(
        "\n4. Rotated the KEK: version {new_version} is now primary; version 1 still decrypts."
    );

    println!("\n5. Rewrapping (header only):");
    let before = envelope.stats().kms_rewrap_calls;
    let old_copy = stored[2].clone();
    for text in stored.iter_mut() {
        let (rewrapped, changed) = envelope.rewrap_text(text).await?;
        let (a, b) = (
            Envelope::inspect_text(text)?,
            Envelope::inspect_text(&rewrapped)?,
        );
        let body_same = envelope::format::from_text(text)?[a.header_len..]
            == envelope::format::from_text(&rewrapped)?[b.header_len..];
        println!(
            "   rewrap: version {} -> {} (changed: {changed}), body bytes identical: {body_same}",
            a.key_version, b.key_version
        );
        *text = rewrapped;
    }
    println!(
        "   {} fields, {} KMS rewrap call(s): one per distinct DEK.",
        stored.len(),
        envelope.stats().kms_rewrap_calls - before
    );

    keyring.destroy_version(KEY_ID, 1)?;
    envelope.clear_caches();
    println!("\n6. Destroyed KEK version 1 (crypto-shredding). Data still under it is gone:");
    match envelope
        .decrypt_text(&old_copy, aad("patients", "email", 1).as_bytes())
        .await
    {
        Err(e @ Error::KeyVersionDestroyed { .. }) => {
            println!("   a copy that was not rewrapped: {e}")
        }
        other => return Err(format!("expected a destroyed-version error, got {other:?}").into()),
    }

    println!("\n7. The rewrapped fields decrypt under version {new_version}:");
    for ((table, column, row, _), text) in fields.iter().zip(&stored) {
        let plain = envelope
            .decrypt_text(text, aad(table, column, *row).as_bytes())
            .await?;
        println!(
            "   {table}.{column:<6} row {row}  {}",
            String::from_utf8_lossy(&plain)
        );
    }
    let s = envelope.stats();
    println!(
        "\nKMS calls in all: {} generate, {} unwrap, {} rewrap. Cache: {} encrypt hits, {} decrypt hits.",
        s.kms_generate_calls,
        s.kms_unwrap_calls,
        s.kms_rewrap_calls,
        s.encrypt_cache_hits,
        s.decrypt_cache_hits
    );
    Ok(())
}
