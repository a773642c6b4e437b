//! Encrypts or decrypts one value with the Rust SDK, for the cross-language test:
//! `interop encrypt URI AAD_HEX PLAINTEXT_HEX` prints the ciphertext in hex;
//! `interop decrypt URI AAD_HEX CIPHERTEXT_HEX` prints the plaintext in hex. A fifth
//! argument names a DEK store: encryption then writes the compact form.

use envelope::BlockingEnvelope;

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd-length hex".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (op, uri, aad, data, store) = match &args[..] {
        [_, op, uri, aad, data] => (op, uri, aad, data, None),
        [_, op, uri, aad, data, store] => (op, uri, aad, data, Some(store)),
        _ => {
            return Err(
                "usage: interop encrypt|decrypt URI AAD_HEX DATA_HEX [DEK_STORE_URI]".into(),
            );
        }
    };
    let (aad, data) = (unhex(aad)?, unhex(data)?);
    let mut builder = envelope::builder_from_uri(uri)?;
    if let Some(store) = store {
        builder = builder.dek_store(envelope::open_dek_store(store)?);
    }
    let envelope = BlockingEnvelope::new(builder.build()?)?;
    let out = match op.as_str() {
        "encrypt" => envelope.encrypt(&data, &aad)?,
        "decrypt" => envelope.decrypt(&data, &aad)?,
        other => return Err(format!("unknown operation {other:?}").into()),
    };
    println!(
        "{}",
        out.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    Ok(())
}
