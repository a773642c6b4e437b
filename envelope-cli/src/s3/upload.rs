//! A stream encrypted straight into an object: a multipart upload whose parts are runs of
//! whole segments (about 8 MiB each; the first also carries the header), each run sealed
//! on `threads` threads while earlier parts upload, up to four at a time. The object
//! appears only when the upload completes; a failure aborts it, so no partial object is
//! ever visible under the key.

use std::io::{self, Read};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedPart;
use envelope::stream::StreamSealer;
use tokio::task::JoinSet;

use super::{S3, S3Url, sdk_message};
use crate::exit::CliError;

/// The plaintext a part holds, about: S3's smallest part (but the last) is 5 MiB.
const PART_TARGET: usize = 8 << 20;
/// Parts uploading at once.
const IN_FLIGHT: usize = 4;

/// The input, with the bytes read before the form was decided in front of it, and one
/// byte of look-ahead to find the final segment.
struct Input<'a, R> {
    already: &'a [u8],
    inner: R,
    peeked: Option<u8>,
}

impl<R: Read> Input<'_, R> {
    /// Fills `buf` completely unless the input ends; the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        if let (Some(b), Some(slot)) = (self.peeked, buf.first_mut()) {
            *slot = b;
            self.peeked = None;
            n = 1;
        }
        let take = self.already.len().min(buf.len() - n);
        buf[n..n + take].copy_from_slice(&self.already[..take]);
        self.already = &self.already[take..];
        n += take;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Whether the input has ended (reads one byte ahead).
    fn at_end(&mut self) -> io::Result<bool> {
        if self.peeked.is_some() || !self.already.is_empty() {
            return Ok(false);
        }
        let mut one = [0u8; 1];
        Ok(match self.fill(&mut one)? {
            0 => true,
            _ => {
                self.peeked = Some(one[0]);
                false
            }
        })
    }
}

/// Encrypts `already` then `source` into the object at `url`; returns the object's length.
pub async fn encrypt_to_object<R: Read>(
    s3: &S3,
    url: &S3Url,
    sealer: StreamSealer,
    threads: usize,
    already: &[u8],
    source: R,
) -> Result<u64, CliError> {
    let layout = sealer.layout();
    let size = layout.segment_size() as usize;
    let sealed_len = layout.sealed_segment_len() as usize;
    let per_part = (PART_TARGET / size).max(1);
    let mut input = Input {
        already,
        inner: source,
        peeked: None,
    };
    let mut next_index = 0u64;
    let mut number = 1i32;
    let mut total = 0u64;
    let mut upload: Option<String> = None;
    let mut uploads: JoinSet<Result<CompletedPart, CliError>> = JoinSet::new();
    let mut parts = Vec::new();
    let result: Result<(), CliError> = async {
        loop {
            let header = if number == 1 { sealer.header() } else { &[] };
            let mut buf = Vec::with_capacity(header.len() + per_part * sealed_len);
            buf.extend_from_slice(header);
            let start = buf.len();
            buf.resize(start + per_part * sealed_len, 0);
            let (count, final_len) = tokio::task::block_in_place(|| -> io::Result<_> {
                for k in 0..per_part {
                    let at = start + k * sealed_len;
                    let n = input.fill(&mut buf[at..at + size])?;
                    if n < size || input.at_end()? {
                        return Ok((k + 1, Some(n)));
                    }
                }
                Ok((per_part, None))
            })
            .map_err(|e| CliError::new(format!("cannot read the input: {e}")))?;
            let end = tokio::task::block_in_place(|| {
                sealer.seal_run(next_index, &mut buf[start..], count, final_len, threads)
            })?;
            buf.truncate(start + end);
            next_index += count as u64;
            total += buf.len() as u64;
            let last = final_len.is_some();
            if number == 1 && last {
                return s3.put(url, buf).await;
            }
            let id = match &upload {
                Some(id) => id.clone(),
                None => {
                    let created = s3
                        .client()
                        .create_multipart_upload()
                        .bucket(&url.bucket)
                        .key(&url.key)
                        .send()
                        .await
                        .map_err(|e| {
                            CliError::new(format!(
                                "S3 start an upload to {url}: {}",
                                sdk_message(&e)
                            ))
                        })?;
                    let id = created.upload_id().unwrap_or_default().to_owned();
                    upload = Some(id.clone());
                    id
                }
            };
            if uploads.len() >= IN_FLIGHT
                && let Some(done) = uploads.join_next().await
            {
                parts.push(joined(done)?);
            }
            uploads.spawn(upload_part(s3.clone(), url.clone(), id, number, buf));
            number += 1;
            if last {
                break;
            }
        }
        while let Some(done) = uploads.join_next().await {
            parts.push(joined(done)?);
        }
        parts.sort_by_key(|p| p.part_number());
        let id = upload.clone().unwrap_or_default();
        s3.complete(url, &id, std::mem::take(&mut parts)).await
    }
    .await;
    if let Err(e) = result {
        uploads.abort_all();
        if let Some(id) = &upload {
            s3.abort(url, id).await;
        }
        return Err(e);
    }
    Ok(total)
}

fn joined(
    done: Result<Result<CompletedPart, CliError>, tokio::task::JoinError>,
) -> Result<CompletedPart, CliError> {
    done.map_err(|e| CliError::new(format!("an upload task failed: {e}")))?
}

async fn upload_part(
    s3: S3,
    url: S3Url,
    id: String,
    number: i32,
    bytes: Vec<u8>,
) -> Result<CompletedPart, CliError> {
    let len = bytes.len() as u64;
    let out = s3
        .client()
        .upload_part()
        .bucket(&url.bucket)
        .key(&url.key)
        .upload_id(id)
        .part_number(number)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .map_err(|e| {
            CliError::new(format!(
                "S3 upload part {number} of {url}: {}",
                sdk_message(&e)
            ))
        })?;
    s3.count_up(len);
    Ok(CompletedPart::builder()
        .part_number(number)
        .set_e_tag(out.e_tag().map(str::to_owned))
        .build())
}
