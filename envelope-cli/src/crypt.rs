//! `envelope encrypt`, `decrypt` and `inspect`.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use envelope::{Envelope, compact};
use zeroize::Zeroizing;

use crate::cli::{CryptArgs, FormChoice, InspectArgs};
use crate::exit::{CliError, CliResult, OK};
use crate::output::AtomicOutput;
use crate::value::Stored;
use crate::{crypt_s3, streaming};

fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<(), CliError> {
    match path {
        Some(p) => AtomicOutput::write(p, bytes),
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

fn threads_of(args: &CryptArgs) -> usize {
    args.threads
        .map_or_else(streaming::default_threads, usize::from)
}

/// The input: a file or stdin.
fn open_input(path: Option<&Path>) -> Result<Box<dyn Read>, CliError> {
    Ok(match path {
        Some(p) => Box::new(
            File::open(p)
                .map_err(|e| CliError::new(format!("cannot read {}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdin().lock()),
    })
}

/// Encrypts a file or stdin: a value form, or the streaming form from
/// [`streaming::STREAM_THRESHOLD`] bytes on (see `--form`).
pub async fn encrypt(args: CryptArgs) -> CliResult {
    if args.range.is_some() {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "--range selects plaintext bytes to decrypt; encrypt takes the whole input",
        ));
    }
    if args.text && args.form == FormChoice::Stream {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "the streaming form is binary: drop --text, or encrypt a value with --form value",
        ));
    }
    if crypt_s3::location(args.input.as_deref()).is_some() {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "encrypt reads plaintext from a file or stdin; -o may name s3://BUCKET/KEY",
        ));
    }
    let s3_output = crypt_s3::location(args.output.as_deref()).transpose()?;
    let envelope = envelope_of(&args)?;
    let mut input = open_input(args.input.as_deref())?;
    // Read up to the threshold: a shorter input is a value, a longer one a stream.
    let threshold = match args.form {
        FormChoice::Value => u64::MAX,
        FormChoice::Auto if args.text => u64::MAX,
        FormChoice::Auto => streaming::STREAM_THRESHOLD as u64,
        FormChoice::Stream => 0,
    };
    let mut head = Zeroizing::new(Vec::new());
    (&mut input).take(threshold).read_to_end(&mut head)?;
    if (head.len() as u64) < threshold {
        return encrypt_value(&args, &envelope, &head, s3_output.as_ref()).await;
    }
    let sealer = envelope
        .stream_sealer(args.aad.as_bytes(), args.segment_size)
        .await?;
    let threads = threads_of(&args);
    if let Some(url) = &s3_output {
        let endpoint = args.s3_endpoint.as_deref();
        crypt_s3::put_stream(endpoint, url, sealer, threads, &head, input).await?;
        return Ok(OK);
    }
    match args.output.as_deref() {
        Some(path) => {
            let mut output = AtomicOutput::create(path)?;
            streaming::encrypt_with(
                sealer,
                threads,
                &head,
                &mut input,
                BufWriter::with_capacity(1 << 20, output.file()),
            )?
            .into_inner()
            .map_err(|e| {
                CliError::new(format!("cannot write {}: {}", path.display(), e.error()))
            })?;
            output.commit()?;
        }
        None => {
            let stdout = std::io::stdout().lock();
            streaming::encrypt_with(
                sealer,
                threads,
                &head,
                &mut input,
                BufWriter::with_capacity(1 << 20, stdout),
            )?
            .flush()?;
        }
    }
    Ok(OK)
}

/// Encrypts a plaintext held in memory into a value form.
async fn encrypt_value(
    args: &CryptArgs,
    envelope: &Envelope,
    plaintext: &[u8],
    s3_output: Option<&crate::s3::S3Url>,
) -> CliResult {
    let ciphertext = if args.text {
        let mut text = envelope
            .encrypt_to_text(plaintext, args.aad.as_bytes())
            .await?
            .into_bytes();
        text.push(b'\n');
        text
    } else {
        envelope.encrypt(plaintext, args.aad.as_bytes()).await?
    };
    match s3_output {
        Some(url) => crypt_s3::put_value(args.s3_endpoint.as_deref(), url, ciphertext).await?,
        None => write_output(args.output.as_deref(), &ciphertext)?,
    }
    Ok(OK)
}

/// Decrypts a file or stdin (every form; a stream in constant memory, `--range` reading
/// only the segments that hold it).
pub async fn decrypt(args: CryptArgs) -> CliResult {
    if crypt_s3::location(args.output.as_deref()).is_some() {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "decrypt writes plaintext to a file or stdout; -i may name s3://BUCKET/KEY",
        ));
    }
    let envelope = envelope_of(&args)?;
    if let Some(url) = crypt_s3::location(args.input.as_deref()).transpose()? {
        crypt_s3::decrypt(
            &envelope,
            args.s3_endpoint.as_deref(),
            &url,
            args.aad.as_bytes(),
            threads_of(&args),
            args.range,
            args.output.as_deref(),
        )
        .await?;
        return Ok(OK);
    }
    let mut input = open_input(args.input.as_deref())?;
    let mut head = Vec::new();
    (&mut input).take(3).read_to_end(&mut head)?;
    if envelope::stream::is_stream(&head) {
        drop(input);
        let (aad, threads) = (args.aad.as_bytes(), threads_of(&args));
        let path = args.input.as_deref();
        match args.output.as_deref() {
            Some(out) => {
                let mut output = AtomicOutput::create(out)?;
                let mut sink = BufWriter::with_capacity(1 << 20, output.file());
                streaming::decrypt_to(&envelope, aad, threads, path, head, args.range, &mut sink)
                    .await?;
                sink.flush()?;
                drop(sink);
                output.commit()?;
            }
            None => {
                let mut sink = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                let written = streaming::decrypt_to(
                    &envelope, aad, threads, path, head, args.range, &mut sink,
                )
                .await;
                sink.flush()?;
                written?;
            }
        }
        return Ok(OK);
    }
    input.read_to_end(&mut head)?;
    let stored = Stored::from_file_bytes(head)?;
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
    let selected = match args.range {
        None => &plaintext[..],
        Some(range) => {
            let len = plaintext.len() as u64;
            let start = range.start.min(len) as usize;
            let end = range.end.map_or(len, |e| e.min(len)) as usize;
            &plaintext[start..end]
        }
    };
    write_output(args.output.as_deref(), selected)?;
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
    if let Some(url) = crypt_s3::location(args.input.as_deref()).transpose()? {
        let (info, text) = crypt_s3::inspect(args.s3_endpoint.as_deref(), &url).await?;
        print_header(&info, if text { "text" } else { "binary" }, args.json);
        return Ok(OK);
    }
    let mut input = open_input(args.input.as_deref())?;
    let mut head = Vec::new();
    (&mut input).take(3).read_to_end(&mut head)?;
    if envelope::stream::is_stream(&head) {
        let info = match args.input.as_deref() {
            Some(path) => streaming::inspect_file(path)?,
            None => {
                let mut source = std::io::Cursor::new(head).chain(input);
                let header = envelope::stream::read_header(&mut source)?;
                let rest = std::io::copy(&mut source, &mut std::io::sink())?;
                envelope::stream::inspect(&header, Some(header.len() as u64 + rest))?
            }
        };
        print_header(&info, "binary", args.json);
        return Ok(OK);
    }
    input.read_to_end(&mut head)?;
    let stored = Stored::from_file_bytes(head)?;
    let form = if stored.form == crate::value::Form::Text {
        "text"
    } else {
        "binary"
    };
    let compact_info = compact::inspect_compact(&stored.binary).ok();
    let info = match (&compact_info, &args.dek_store) {
        (Some(c), None) => {
            inspect_compact_alone(c, form, args.json);
            return Ok(OK);
        }
        (_, Some(uri)) => {
            let headers =
                crate::engine::headers::StoreHeaders::new(crate::stores::dek_store::open(uri)?);
            headers.header(&stored.binary).await?
        }
        (None, None) => Envelope::inspect(&stored.binary)?,
    };
    print_header(&info, form, args.json);
    Ok(OK)
}

/// Prints a header's facts (every form).
fn print_header(info: &envelope::HeaderInfo, form: &str, json: bool) {
    let label = match &info.label {
        envelope::LabelCheck::Mislabeled { carried } => {
            format!("MISLABELED (the wrapped DEK carries version {carried:?})")
        }
        other => other.as_str().to_owned(),
    };
    if json {
        let json = serde_json::json!({
            "format_version": info.format_version,
            "segment_size": info.segment_size,
            "committing": info.format_version != compact::CompactVersion::V2.byte(),
            "form": form,
            "dek_id": info.dek_id.map(|id| id.get()),
            "suite": info.suite.to_string(),
            "provider": info.provider.to_string(),
            "key_id": info.key_id,
            "key_version": info.key_version,
            "label": info.label.as_str(),
            "dek_fingerprint": info.dek_fingerprint,
            "wrapped_dek_len": info.wrapped_dek_len,
            "header_len": info.header_len,
            "plaintext_len": info.plaintext_len,
            "overhead": info.overhead,
        });
        println!("{json}");
    } else {
        match info.segment_size {
            Some(size) => println!(
                "format version  {} (stream, {size}-byte segments)",
                info.format_version
            ),
            None => println!("format version  {}", info.format_version),
        }
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
        println!("wrapped DEK     {} bytes", info.wrapped_dek_len);
        println!(
            "plaintext       {} bytes (overhead {} bytes)",
            info.plaintext_len, info.overhead
        );
    }
}
