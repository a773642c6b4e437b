//! `envelope encrypt`, `decrypt` and `inspect`.

use std::io::{Read, Write};
use std::path::Path;

use envelope::{Envelope, format};
use zeroize::Zeroizing;

use crate::cli::{CryptArgs, InspectArgs};
use crate::exit::{CliError, CliResult, OK};
use crate::files::replace_atomically;
use crate::value::Stored;

fn read_input(path: Option<&Path>) -> Result<Vec<u8>, CliError> {
    match path {
        Some(p) => {
            std::fs::read(p).map_err(|e| CliError::new(format!("cannot read {}: {e}", p.display())))
        }
        None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            Ok(buf)
        }
    }
}

fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<(), CliError> {
    match path {
        Some(p) => {
            if !p.exists() {
                std::fs::write(p, b"")
                    .map_err(|e| CliError::new(format!("cannot create {}: {e}", p.display())))?;
            }
            replace_atomically(p, bytes)
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(())
        }
    }
}

/// Encrypts a file or stdin.
pub async fn encrypt(args: CryptArgs) -> CliResult {
    let envelope = envelope::open(&args.key)?;
    let plaintext = Zeroizing::new(read_input(args.input.as_deref())?);
    let ciphertext = if args.text {
        let mut text = envelope
            .encrypt_to_text(&plaintext, args.aad.as_bytes())
            .await?
            .into_bytes();
        text.push(b'\n');
        text
    } else {
        envelope.encrypt(&plaintext, args.aad.as_bytes()).await?
    };
    write_output(args.output.as_deref(), &ciphertext)?;
    Ok(OK)
}

/// Decrypts a file or stdin (binary or text form).
pub async fn decrypt(args: CryptArgs) -> CliResult {
    let envelope = envelope::open(&args.key)?;
    let stored = Stored::from_file_bytes(read_input(args.input.as_deref())?)?;
    let plaintext = Zeroizing::new(
        envelope
            .decrypt(&stored.binary, args.aad.as_bytes())
            .await?,
    );
    write_output(args.output.as_deref(), &plaintext)?;
    Ok(OK)
}

/// Prints a ciphertext's header.
pub fn inspect(args: InspectArgs) -> CliResult {
    let stored = Stored::from_file_bytes(read_input(args.input.as_deref())?)?;
    let info = Envelope::inspect(&stored.binary)?;
    let wrapped = format::wrapped_dek(&stored.binary)?;
    let label = match &info.label {
        envelope::LabelCheck::Mislabeled { carried } => {
            format!("MISLABELED (the wrapped DEK carries version {carried:?})")
        }
        other => other.as_str().to_owned(),
    };
    if args.json {
        let json = serde_json::json!({
            "format_version": info.format_version,
            "form": if stored.form == crate::value::Form::Text { "text" } else { "binary" },
            "suite": info.suite.to_string(),
            "provider": info.provider.to_string(),
            "key_id": info.key_id,
            "key_version": info.key_version,
            "label": info.label.as_str(),
            "dek_fingerprint": info.dek_fingerprint,
            "wrapped_dek_len": wrapped.ciphertext.len(),
            "header_len": info.header_len,
            "plaintext_len": info.plaintext_len,
            "overhead": info.overhead,
        });
        println!("{json}");
    } else {
        println!("format version  {}", info.format_version);
        println!("suite           {}", info.suite);
        println!("provider        {}", info.provider);
        println!("key id          {}", info.key_id);
        println!(
            "key version     {}",
            if info.key_version.is_empty() {
                "-"
            } else {
                &info.key_version
            }
        );
        println!("version label   {label}");
        println!("DEK fingerprint {}", info.dek_fingerprint);
        println!("wrapped DEK     {} bytes", wrapped.ciphertext.len());
        println!(
            "plaintext       {} bytes (overhead {} bytes)",
            info.plaintext_len, info.overhead
        );
    }
    Ok(OK)
}
