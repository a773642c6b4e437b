//! `encrypt -o s3://…`, `decrypt -i s3://…` and `inspect s3://…`: the crypt commands on
//! objects. A stream object is read through ranged GETs (only the segments a `--range`
//! needs) and written as a multipart upload; a small value is one GET or PUT.

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use envelope::Envelope;
use envelope::stream::{self, SeekableDecryptingReader};

use crate::exit::CliError;
use crate::s3::ranged::RangeReader;
use crate::s3::{self, S3, S3Url};
use crate::streaming::{self, ByteRange};

/// The S3 location a path names, if it is `s3://…`.
pub fn location(path: Option<&Path>) -> Option<Result<S3Url, CliError>> {
    S3Url::parse(path?.to_str()?)
}

/// Writes a value ciphertext to an object (one PUT).
pub async fn put_value(
    endpoint: Option<&str>,
    url: &S3Url,
    bytes: Vec<u8>,
) -> Result<(), CliError> {
    S3::connect(endpoint).await.put(url, bytes).await
}

/// Encrypts into a stream object (a multipart upload).
pub async fn put_stream<R: Read>(
    endpoint: Option<&str>,
    url: &S3Url,
    sealer: stream::StreamSealer,
    threads: usize,
    already: &[u8],
    source: R,
) -> Result<(), CliError> {
    let s3 = S3::connect(endpoint).await;
    s3::upload::encrypt_to_object(&s3, url, sealer, threads, already, source).await?;
    Ok(())
}

/// Where `decrypt` writes: a file (renamed into place when complete) or stdout.
fn sink_for(
    output: Option<&Path>,
) -> Result<(Box<dyn Write>, Option<crate::output::AtomicOutput>), CliError> {
    match output {
        Some(path) => {
            let mut atomic = crate::output::AtomicOutput::create(path)?;
            let file = atomic.file().try_clone()?;
            Ok((
                Box::new(BufWriter::with_capacity(1 << 20, file)),
                Some(atomic),
            ))
        }
        None => Ok((
            Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout())),
            None,
        )),
    }
}

/// Decrypts an object (either form) into a file or stdout.
pub async fn decrypt(
    envelope: &Envelope,
    endpoint: Option<&str>,
    url: &S3Url,
    aad: &[u8],
    threads: usize,
    range: Option<ByteRange>,
    output: Option<&Path>,
) -> Result<(), CliError> {
    let s3 = S3::connect(endpoint).await;
    let head = s3.head(url).await?;
    let first = s3::first_bytes(&s3, url, &head).await?;
    if !stream::is_stream(&first) {
        let bytes = s3.get(url).await?;
        let stored = crate::value::Stored::from_file_bytes(bytes)?;
        let plaintext = zeroize::Zeroizing::new(envelope.decrypt(&stored.binary, aad).await?);
        let len = plaintext.len() as u64;
        let range = range.unwrap_or(ByteRange {
            start: 0,
            end: None,
        });
        let (start, end) = (
            range.start.min(len) as usize,
            range.end.map_or(len, |e| e.min(len)) as usize,
        );
        let (mut sink, atomic) = sink_for(output)?;
        sink.write_all(&plaintext[start..end])?;
        sink.flush()?;
        drop(sink);
        return atomic.map_or(Ok(()), crate::output::AtomicOutput::commit);
    }
    let header = s3::read_stream_header(&s3, url, &head, Some(first)).await?;
    let opener = envelope.stream_opener(&header, aad).await?;
    let range = range.unwrap_or(ByteRange {
        start: 0,
        end: None,
    });
    let handle = tokio::runtime::Handle::current();
    let (url, output) = (url.clone(), output.map(Path::to_path_buf));
    tokio::task::spawn_blocking(move || -> Result<(), CliError> {
        let source = RangeReader::new(s3, url, head.len, handle);
        let mut reader = SeekableDecryptingReader::new(source, opener, threads)
            .map_err(streaming::stream_error)?;
        reader
            .seek(SeekFrom::Start(range.start))
            .map_err(streaming::stream_error)?;
        let (mut sink, atomic) = sink_for(output.as_deref())?;
        let copied = streaming::copy_range(&mut reader, range, &mut sink);
        sink.flush()?;
        drop(sink);
        copied?;
        atomic.map_or(Ok(()), crate::output::AtomicOutput::commit)
    })
    .await
    .map_err(|e| CliError::new(format!("the decryption task failed: {e}")))?
}

/// The header facts of an object: a stream's from its header and length (its metadata
/// slot applied), a value's from the whole object.
pub async fn inspect(
    endpoint: Option<&str>,
    url: &S3Url,
) -> Result<(envelope::HeaderInfo, bool), CliError> {
    let s3 = S3::connect(endpoint).await;
    let head = s3.head(url).await?;
    let first = s3::first_bytes(&s3, url, &head).await?;
    if stream::is_stream(&first) {
        let header = s3::read_stream_header(&s3, url, &head, Some(first)).await?;
        return Ok((stream::inspect(&header, Some(head.len))?, false));
    }
    let stored = crate::value::Stored::from_file_bytes(s3.get(url).await?)?;
    let text = stored.form == crate::value::Form::Text;
    Ok((Envelope::inspect(&stored.binary)?, text))
}
