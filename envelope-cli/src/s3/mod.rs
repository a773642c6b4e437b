//! Objects in S3 or an S3-compatible service: `s3://bucket/key` locations, the client (the
//! standard AWS credential and region chain, an endpoint override with path-style
//! addressing), and the object operations the streaming form needs.
//!
//! | module | what it holds |
//! |---|---|
//! | this one | [`S3Url`], [`S3`]: head, ranged get, put, list, the server-side copy a rewrap makes |
//! | `upload` | a stream encrypted into a multipart upload, parts aligned to segments, sealed in parallel |
//! | `ranged` | a blocking `Read + Seek` over ranged GETs (random access to a stream object) |
//!
//! A stream object's body is a whole stream (header and segments, as in a file), so an
//! object copied out of S3 by any tool is a stream. S3 objects are immutable: a rewrap
//! cannot write a header slot in place, so it writes the new slot into the object's
//! metadata (`x-amz-meta-envelope-slot`, base64url) with a server-side `CopyObject` of the
//! object onto itself (`MetadataDirective=REPLACE`, `x-amz-copy-source-if-match` the ETag
//! read): no body byte leaves or enters S3, and the object is replaced whole or not at all.
//! Readers apply that slot to the body's header ([`envelope::stream::apply_slot`]).

pub mod ranged;
pub mod upload;

use aws_config::BehaviorVersion;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::exit::CliError;

/// The user-metadata key holding a rewrapped stream's newest header slot.
pub const SLOT_METADATA: &str = "envelope-slot";
/// The largest object one `CopyObject` copies; larger ones are copied in parts.
const MAX_COPY: u64 = 5 << 30;
/// The part size of a multipart server-side copy.
const COPY_PART: u64 = 1 << 30;

/// An `s3://bucket/key` (or `s3://bucket/prefix`) location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket.
    pub bucket: String,
    /// The key or prefix (may be empty).
    pub key: String,
}

impl S3Url {
    /// Parses `s3://bucket/key`; `None` for anything that does not start with `s3://`.
    pub fn parse(text: &str) -> Option<Result<Self, CliError>> {
        let rest = text.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Some(Err(CliError::with_code(
                crate::exit::USAGE,
                format!("{text}: an S3 location is s3://BUCKET/KEY"),
            )));
        }
        Some(Ok(S3Url {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }))
    }

    /// The same bucket, another key.
    pub fn with_key(&self, key: &str) -> Self {
        S3Url {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
        }
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// An object's facts from a `HEAD` or the first ranged `GET`.
#[derive(Debug, Clone)]
pub struct ObjectHead {
    /// The object's length.
    pub len: u64,
    /// Its ETag, for conditional copies.
    pub etag: Option<String>,
    /// The header slot a rewrap wrote into its metadata, decoded.
    pub slot: Option<Vec<u8>>,
}

/// Byte counts of the S3 traffic of this process (every client), for the job summaries and
/// the benchmarks.
pub static TRAFFIC: Traffic = Traffic {
    downloaded: std::sync::atomic::AtomicU64::new(0),
    uploaded: std::sync::atomic::AtomicU64::new(0),
};

/// Byte counts of S3 object bodies moved.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Body bytes downloaded.
    pub downloaded: std::sync::atomic::AtomicU64,
    /// Body bytes uploaded.
    pub uploaded: std::sync::atomic::AtomicU64,
}

/// An S3 client.
#[derive(Debug, Clone)]
pub struct S3 {
    client: Client,
}

fn failed(what: &str, url: &S3Url, e: impl std::fmt::Display) -> CliError {
    CliError::new(format!("S3 {what} {url}: {e}"))
}

/// The message of an SDK error, with the service's own message when there is one.
fn sdk_message<E: std::fmt::Display + std::error::Error + 'static>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => s.err().to_string(),
        other => aws_sdk_s3::error::DisplayErrorContext(other).to_string(),
    }
}

impl Traffic {
    /// Bytes downloaded and uploaded so far.
    pub fn totals(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.downloaded.load(Relaxed), self.uploaded.load(Relaxed))
    }
}

impl S3 {
    /// A client from the standard AWS chain (environment, profile, instance role), with
    /// `endpoint` overriding the service endpoint (path-style addressing, for MinIO, moto,
    /// LocalStack) and `us-east-1` when no region is configured.
    pub async fn connect(endpoint: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            config = config.region(aws_sdk_s3::config::Region::new("us-east-1"));
        }
        if endpoint.is_some() {
            config = config.force_path_style(true);
        }
        S3 {
            client: Client::from_conf(config.build()),
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn count_down(&self, n: u64) {
        TRAFFIC
            .downloaded
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn count_up(&self, n: u64) {
        TRAFFIC
            .uploaded
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The object's length, ETag and metadata slot.
    pub async fn head(&self, url: &S3Url) -> Result<ObjectHead, CliError> {
        self.head_if_present(url)
            .await?
            .ok_or_else(|| failed("HEAD", url, "no such object"))
    }

    /// [`S3::head`], or `None` when the object does not exist (deleted since a listing).
    pub async fn head_if_present(&self, url: &S3Url) -> Result<Option<ObjectHead>, CliError> {
        let out = match self
            .client
            .head_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => return Err(failed("HEAD", url, sdk_message(&e))),
        };
        Ok(Some(ObjectHead {
            len: out.content_length().unwrap_or(0).max(0) as u64,
            etag: out.e_tag().map(str::to_owned),
            slot: decode_slot(url, out.metadata())?,
        }))
    }

    /// Bytes `start .. end` of the object (`end` excluded, at most its length).
    pub async fn get_range(&self, url: &S3Url, start: u64, end: u64) -> Result<Vec<u8>, CliError> {
        if end <= start {
            return Ok(Vec::new());
        }
        self.get_bytes(url, Some(format!("bytes={start}-{}", end - 1)))
            .await
    }

    /// The whole object.
    pub async fn get(&self, url: &S3Url) -> Result<Vec<u8>, CliError> {
        self.get_bytes(url, None).await
    }

    /// One GET (of `range`, an HTTP `Range` value, or the whole object), counted.
    async fn get_bytes(&self, url: &S3Url, range: Option<String>) -> Result<Vec<u8>, CliError> {
        let out = self
            .client
            .get_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .set_range(range)
            .send()
            .await
            .map_err(|e| failed("GET", url, sdk_message(&e)))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| failed("GET", url, e))?
            .into_bytes()
            .to_vec();
        self.count_down(bytes.len() as u64);
        Ok(bytes)
    }

    /// Writes a whole object (a value, or a stream that fits one part).
    pub async fn put(&self, url: &S3Url, bytes: Vec<u8>) -> Result<(), CliError> {
        let len = bytes.len() as u64;
        self.client
            .put_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| failed("PUT", url, sdk_message(&e)))?;
        self.count_up(len);
        Ok(())
    }

    /// The whole object and its ETag, or `None` when it does not exist.
    pub async fn get_with_etag(
        &self,
        url: &S3Url,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, CliError> {
        let out = match self
            .client
            .get_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(failed("GET", url, sdk_message(&e))),
        };
        let etag = out.e_tag().map(str::to_owned);
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| failed("GET", url, e))?
            .into_bytes()
            .to_vec();
        self.count_down(bytes.len() as u64);
        Ok(Some((bytes, etag)))
    }

    /// Replaces a whole object only if it still has `etag` (S3 compares atomically):
    /// `Ok(false)` when it no longer does (a writer replaced it; nothing was written).
    pub async fn put_if_match(
        &self,
        url: &S3Url,
        bytes: Vec<u8>,
        etag: &str,
    ) -> Result<bool, CliError> {
        let len = bytes.len() as u64;
        match self
            .client
            .put_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .if_match(etag)
            .body(ByteStream::from(bytes))
            .send()
            .await
        {
            Ok(_) => {
                self.count_up(len);
                Ok(true)
            }
            Err(e) if precondition_failed(e.raw_response()) => Ok(false),
            Err(e) => Err(failed("PUT", url, sdk_message(&e))),
        }
    }

    /// The keys under a prefix with their lengths, in key order.
    pub async fn list(&self, url: &S3Url) -> Result<Vec<(String, u64)>, CliError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&url.bucket)
                .prefix(&url.key)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| failed("LIST", url, sdk_message(&e)))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    out.push((key.to_owned(), object.size().unwrap_or(0).max(0) as u64));
                }
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        out.sort();
        Ok(out)
    }

    /// Replaces the object's metadata slot by a server-side copy of the object onto itself,
    /// only if it still has `head`'s ETag (S3 compares, atomically): `Ok(false)` when it no
    /// longer does (a writer replaced it; nothing was copied). No body byte is transferred:
    /// `CopyObject` up to 5 GiB, a multipart copy (`UploadPartCopy`) above.
    pub async fn copy_with_slot(
        &self,
        url: &S3Url,
        head: &ObjectHead,
        slot: &[u8],
    ) -> Result<bool, CliError> {
        let source = format!("{}/{}", url.bucket, url.key);
        let value = URL_SAFE_NO_PAD.encode(slot);
        if head.len <= MAX_COPY {
            let mut copy = self
                .client
                .copy_object()
                .bucket(&url.bucket)
                .key(&url.key)
                .copy_source(&source)
                .metadata_directive(MetadataDirective::Replace)
                .metadata(SLOT_METADATA, &value);
            if let Some(etag) = &head.etag {
                copy = copy.copy_source_if_match(etag);
            }
            return match copy.send().await {
                Ok(_) => Ok(true),
                Err(e) if precondition_failed(e.raw_response()) => Ok(false),
                Err(e) => Err(failed("COPY (rewrap)", url, sdk_message(&e))),
            };
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&url.bucket)
            .key(&url.key)
            .metadata(SLOT_METADATA, &value)
            .send()
            .await
            .map_err(|e| failed("COPY (rewrap)", url, sdk_message(&e)))?;
        let id = upload.upload_id().unwrap_or_default().to_owned();
        let copied = async {
            let mut parts = Vec::new();
            let mut start = 0;
            let mut number = 1;
            while start < head.len {
                let end = (start + COPY_PART).min(head.len);
                let mut part = self
                    .client
                    .upload_part_copy()
                    .bucket(&url.bucket)
                    .key(&url.key)
                    .upload_id(&id)
                    .part_number(number)
                    .copy_source(&source)
                    .copy_source_range(format!("bytes={start}-{}", end - 1));
                if let Some(etag) = &head.etag {
                    part = part.copy_source_if_match(etag);
                }
                let out = match part.send().await {
                    Ok(out) => out,
                    Err(e) if precondition_failed(e.raw_response()) => return Ok(false),
                    Err(e) => return Err(failed("COPY (rewrap)", url, sdk_message(&e))),
                };
                let etag = out
                    .copy_part_result()
                    .and_then(|r| r.e_tag())
                    .unwrap_or_default();
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .e_tag(etag)
                        .build(),
                );
                start = end;
                number += 1;
            }
            self.complete(url, &id, parts).await.map(|()| true)
        }
        .await;
        if !matches!(copied, Ok(true)) {
            self.abort(url, &id).await;
        }
        copied
    }

    /// Completes a multipart upload.
    pub(crate) async fn complete(
        &self,
        url: &S3Url,
        id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), CliError> {
        self.client
            .complete_multipart_upload()
            .bucket(&url.bucket)
            .key(&url.key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| failed("complete the upload of", url, sdk_message(&e)))?;
        Ok(())
    }

    /// Aborts a multipart upload (best effort: its parts are dropped by S3).
    pub(crate) async fn abort(&self, url: &S3Url, id: &str) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&url.bucket)
            .key(&url.key)
            .upload_id(id)
            .send()
            .await;
    }
}

/// Whether S3 refused a conditional request because the object changed (HTTP 412).
fn precondition_failed(response: Option<&aws_sdk_s3::config::http::HttpResponse>) -> bool {
    response.is_some_and(|r| r.status().as_u16() == 412)
}

fn decode_slot(
    url: &S3Url,
    metadata: Option<&std::collections::HashMap<String, String>>,
) -> Result<Option<Vec<u8>>, CliError> {
    let Some(value) = metadata.and_then(|m| m.get(SLOT_METADATA)) else {
        return Ok(None);
    };
    URL_SAFE_NO_PAD.decode(value).map(Some).map_err(|_| {
        CliError::new(format!(
            "{url}: the {SLOT_METADATA} metadata is not base64url"
        ))
    })
}

/// The effective header of a stream object: its body's header with the metadata slot of
/// the last rewrap applied.
pub fn effective_header(
    url: &S3Url,
    mut header: Vec<u8>,
    head: &ObjectHead,
) -> Result<Vec<u8>, CliError> {
    if let Some(slot) = &head.slot {
        envelope::stream::apply_slot(&mut header, slot)
            .map_err(|e| CliError::from(e).context(format!("{url}, metadata {SLOT_METADATA}")))?;
    }
    Ok(header)
}

/// Reads a stream object's header (two ranged GETs: its fixed fields, then the rest; the
/// first is skipped when the caller already read them) and applies the metadata slot.
pub async fn read_stream_header(
    s3: &S3,
    url: &S3Url,
    head: &ObjectHead,
    prefix: Option<Vec<u8>>,
) -> Result<Vec<u8>, CliError> {
    let prefix = match prefix {
        Some(prefix) => prefix,
        None => {
            s3.get_range(url, 0, envelope::stream::PREFIX_LEN as u64)
                .await?
        }
    };
    let len = envelope::stream::header_len(&prefix)? as u64;
    let mut header = prefix;
    header.extend(
        s3.get_range(url, header.len() as u64, len.min(head.len))
            .await?,
    );
    effective_header(url, header, head)
}

/// The first bytes of an object: enough to tell a stream (and its header's length) from a
/// value.
pub async fn first_bytes(s3: &S3, url: &S3Url, head: &ObjectHead) -> Result<Vec<u8>, CliError> {
    s3.get_range(url, 0, (envelope::stream::PREFIX_LEN as u64).min(head.len))
        .await
}
