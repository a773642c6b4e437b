//! `envelope encrypt`, `decrypt` and `inspect`.

use std::io::{Read, Write};
use std::path::Path;

use envelope::{Envelope, compact};
use zeroize::Zeroizing;

use crate::cli::{CryptArgs, InspectArgs};
use crate::exit::{CliError, CliResult, OK};
use crate::stores::files::replace_atomically;
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

/// The envelope of `--key`, writing the compact form through `--dek-store` when named.
fn envelope_of(args: &CryptArgs) -> Result<Envelope, CliError> {
    let mut builder = crate::audit_log::attach(envelope::builder_from_uri(&args.key)?);
    if let Some(store) = &args.dek_store {
        let version = compact::CompactVersion::from_byte(args.compact_version)
            .ok_or_else(|| CliError::new("--compact-version is 2 or 3"))?;
        builder = builder
            .dek_store(crate::stores::dek_store::open(store)?)
            .compact_version(version);
    }
    Ok(builder.build()?)
}

/// Encrypts a file or stdin.
pub async fn encrypt(args: CryptArgs) -> CliResult {
    let envelope = envelope_of(&args)?;
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
    let envelope = envelope_of(&args)?;
    let stored = Stored::from_file_bytes(read_input(args.input.as_deref())?)?;
    if args.dek_store.is_none() && compact::inspect_compact(&stored.binary).is_ok() {
        return Err(CliError::new(
            "the ciphertext is in the compact form: name its DEK store with --dek-store",
        ));
    }
    let plaintext = Zeroizing::new(
        envelope
            .decrypt(&stored.binary, args.aad.as_bytes())
            .await?,
    );
    write_output(args.output.as_deref(), &plaintext)?;
    Ok(OK)
}

/// Prints a compact header without its store: the DEK id and sizes.
fn inspect_compact_alone(info: &compact::CompactInfo, form: &str, json: bool) {
    if json {
        let json = serde_json::json!({
            "format_version": info.format_version,
            "committing": info.committing,
            "form": form,
            "suite": info.suite.to_string(),
            "dek_id": info.dek_id.get(),
            "header_len": info.header_len,
            "plaintext_len": info.plaintext_len,
            "overhead": info.overhead,
        });
        println!("{json}");
    } else {
        println!(
            "format version  {} (compact, {})",
            info.format_version,
            if info.committing {
                "key-committing"
            } else {
                "NOT key-committing: re-encrypt it"
            }
        );
        println!("suite           {}", info.suite);
        println!(
            "DEK id          {} (its KEK: inspect with --dek-store)",
            info.dek_id
        );
        println!(
            "plaintext       {} bytes (overhead {} bytes)",
            info.plaintext_len, info.overhead
        );
    }
}

/// Prints a ciphertext's header (either form; a compact one's KEK facts through
/// `--dek-store`).
pub async fn inspect(args: InspectArgs) -> CliResult {
    let stored = Stored::from_file_bytes(read_input(args.input.as_deref())?)?;
    let form = if stored.form == crate::value::Form::Text {
        "text"
    } else {
        "binary"
    };
    let compact_info = compact::inspect_compact(&stored.binary).ok();
    let (info, wrapped) = match (&compact_info, &args.dek_store) {
        (Some(c), None) => {
            inspect_compact_alone(c, form, args.json);
            return Ok(OK);
        }
        (_, Some(uri)) => {
            let headers =
                crate::engine::headers::StoreHeaders::new(crate::stores::dek_store::open(uri)?);
            (
                headers.header(&stored.binary).await?,
                headers.wrapped(&stored.binary).await?,
            )
        }
        (None, None) => (
            Envelope::inspect(&stored.binary)?,
            envelope::format::wrapped_dek(&stored.binary)?,
        ),
    };
    let label = match &info.label {
        envelope::LabelCheck::Mislabeled { carried } => {
            format!("MISLABELED (the wrapped DEK carries version {carried:?})")
        }
        other => other.as_str().to_owned(),
    };
    if args.json {
        let json = serde_json::json!({
            "format_version": info.format_version,
            "committing": info.format_version != compact::CompactVersion::V2.byte(),
            "form": form,
            "dek_id": info.dek_id.map(|id| id.get()),
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
        if let Some(id) = info.dek_id {
            println!("DEK id          {id} (compact form; the KEK facts below are its row's)");
        }
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
