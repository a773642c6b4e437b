//! Encrypts or decrypts one value with the Rust SDK, for the cross-language test:
//! `interop encrypt URI AAD_HEX PLAINTEXT_HEX` prints the ciphertext in hex;
//! `interop decrypt URI AAD_HEX CIPHERTEXT_HEX` prints the plaintext in hex. A fifth
//! argument names a DEK store: encryption then writes the compact form.
//! `interop stream-encrypt|stream-decrypt URI AAD_HEX IN_FILE OUT_FILE` encrypts a file into
//! a stream (format version 4) or decrypts one.

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
    if let Some(direction) = op.strip_prefix("stream-") {
        let out = store.ok_or("stream-encrypt|stream-decrypt URI AAD_HEX IN_FILE OUT_FILE")?;
        return stream(direction, uri, &unhex(aad)?, data, out);
    }
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

/// A file through the streaming form, in constant memory.
fn stream(
    direction: &str,
    uri: &str,
    aad: &[u8],
    input: &str,
    output: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    use envelope::stream::{self, EncryptingWriter, SeekableDecryptingReader};
    let envelope = BlockingEnvelope::new(envelope::builder_from_uri(uri)?.build()?)?;
    let mut source = std::fs::File::open(input)?;
    let mut sink = std::fs::File::create(output)?;
    match direction {
        "encrypt" => {
            let sealer = envelope.stream_sealer(aad, stream::DEFAULT_SEGMENT_SIZE)?;
            let mut writer = EncryptingWriter::new(&mut sink, sealer, 2)?;
            std::io::copy(&mut source, &mut writer)?;
            writer.finish()?;
        }
        "decrypt" => {
            let header = stream::read_header(&mut source)?;
            let opener = envelope.stream_opener(&header, aad)?;
            let mut reader = SeekableDecryptingReader::new(source, opener, 2)?;
            std::io::copy(&mut reader, &mut sink)?;
        }
        other => return Err(format!("unknown operation stream-{other}").into()),
    }
    sink.sync_all()?;
    Ok(())
}
