//! The objects under an `s3://bucket/prefix` as a store of the engine: positions are keys,
//! in key order. A stream object is read up to the end of its header only (two ranged
//! GETs, plus a HEAD for its metadata slot); its rewrap is a server-side copy of the object
//! onto itself with the new slot in its metadata, conditional on the ETag read (no body
//! byte moves); its re-encryption streams the old object through ranged GETs into a
//! multipart upload under the same key. A value object (format 1, compact) is read whole
//! and replaced by one PUT conditional on the ETag read.

use async_trait::async_trait;
use envelope::stream;

use crate::aad::AadTemplate;
use crate::engine::store::{
    Checkpoint, CommitError, Committed, Range, Record, Store, StoreInfo, Value, Write,
    WriteGuarantee,
};
use crate::exit::CliError;
use crate::s3::{self, ObjectHead, S3, S3Url};
use crate::value::Stored;

/// Objects larger than this that are not streams are not read (a value is small; a large
/// non-stream object is not an envelope ciphertext this store can handle).
const MAX_VALUE_OBJECT: u64 = 64 << 20;

/// The objects under a prefix.
pub struct Prefix {
    s3: S3,
    url: S3Url,
    /// Keys, sorted.
    keys: Vec<String>,
    template: Option<AadTemplate>,
    /// The envelope that re-encrypts stream objects (reencrypt jobs).
    streams: Option<envelope::Envelope>,
    /// The HEAD of every object as read, by key: a write is conditional on its ETag.
    heads: std::sync::Mutex<std::collections::HashMap<String, ObjectHead>>,
}

impl Prefix {
    /// Lists the objects under `url` (those present now are the job's).
    pub async fn open(
        url: S3Url,
        endpoint: Option<&str>,
        template: Option<AadTemplate>,
    ) -> Result<Self, CliError> {
        if let Some(t) = &template {
            for var in t.variables() {
                if var != "key" && var != "name" {
                    return Err(CliError::new(format!(
                        "--aad placeholder {{{var}}}: objects have {{key}} (the object key) and {{name}} (its last part)"
                    )));
                }
            }
        }
        let s3 = S3::connect(endpoint).await;
        let keys = s3
            .list(&url)
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        Ok(Prefix {
            s3,
            url,
            keys,
            template,
            streams: None,
            heads: Default::default(),
        })
    }

    /// Re-encrypts stream objects with `envelope` when a job asks.
    pub fn reencrypting_streams(mut self, envelope: envelope::Envelope) -> Self {
        self.streams = Some(envelope);
        self
    }

    async fn read_record(&self, key: &str) -> Result<Option<Record>, CliError> {
        let url = self.url.with_key(key);
        // Deleted since the listing: nothing left to move.
        let Some(head) = self.s3.head_if_present(&url).await? else {
            return Ok(None);
        };
        let first = s3::first_bytes(&self.s3, &url, &head).await?;
        let bytes = if stream::is_stream(&first) {
            s3::read_stream_header(&self.s3, &url, &head, Some(first)).await?
        } else if head.len > MAX_VALUE_OBJECT {
            return Err(CliError::new(format!(
                "{url}: {} bytes and not a stream: not an envelope value",
                head.len
            )));
        } else {
            self.s3.get(&url).await?
        };
        self.remember(key, head);
        let name = key.rsplit('/').next().unwrap_or(key).to_owned();
        let aad = match &self.template {
            None => Ok(Vec::new()),
            Some(t) => t.render(|var| match var {
                "key" => Some(key),
                "name" => Some(name.as_str()),
                _ => None,
            }),
        };
        Ok(Some(Record {
            position: key.to_owned(),
            location: url.to_string(),
            value: Value::Ciphertext {
                stored: Stored::from_file_bytes(bytes.clone()),
                aad,
            },
            read: bytes,
            index: None,
        }))
    }

    fn remember(&self, key: &str, head: ObjectHead) {
        self.heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), head);
    }

    /// The HEAD recorded when `key` was read.
    fn head_read(&self, key: &str) -> Result<ObjectHead, CliError> {
        self.heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
            .ok_or_else(|| CliError::new(format!("{key}: written before it was read")))
    }

    /// Whether the object still is the version read: the same ETag (one HEAD; without
    /// ETags, the same bytes where a job reads them).
    async fn unchanged(&self, key: &str, read: &[u8], head: &ObjectHead) -> Result<bool, CliError> {
        let url = self.url.with_key(key);
        let Some(now) = self.s3.head_if_present(&url).await? else {
            return Ok(false);
        };
        if head.etag.is_some() {
            return Ok(now.etag == head.etag);
        }
        let bytes = if stream::is_stream(read) {
            s3::read_stream_header(&self.s3, &url, &now, None).await?
        } else {
            self.s3.get(&url).await?
        };
        Ok(bytes == read)
    }

    /// Re-encrypts a stream object under a new DEK, through ranged GETs into a multipart
    /// upload under the same key.
    async fn reencrypt_stream(
        &self,
        url: &S3Url,
        header: &[u8],
        head: &ObjectHead,
        aad: &[u8],
    ) -> Result<(), CliError> {
        let Some(envelope) = &self.streams else {
            return Err(CliError::new(format!(
                "{url}: this prefix was not opened to re-encrypt streams"
            )));
        };
        let threads = crate::streaming::default_threads();
        let opener = envelope.stream_opener(header, aad).await?;
        let segment_size = opener.layout().segment_size();
        let source = s3::ranged::RangeReader::new(
            self.s3.clone(),
            url.clone(),
            head.len,
            tokio::runtime::Handle::current(),
        );
        let reader = tokio::task::block_in_place(|| {
            stream::SeekableDecryptingReader::new(source, opener, threads)
        })
        .map_err(crate::streaming::stream_error)?;
        let sealer = envelope.stream_sealer(aad, segment_size).await?;
        s3::upload::encrypt_to_object(&self.s3, url, sealer, threads, &[], reader).await?;
        Ok(())
    }
}

#[async_trait]
impl Store for Prefix {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: "s3",
            name: self.url.to_string(),
            connection: None,
            writes: WriteGuarantee::CompareThenReplace,
        }
    }

    async fn page(
        &self,
        range: &Range,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, CliError> {
        let mut out = Vec::new();
        for key in range.positions(&self.keys, after) {
            if out.len() == limit {
                break;
            }
            if let Some(record) = self.read_record(key).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    async fn reread(&self, positions: &[String]) -> Result<Vec<Record>, CliError> {
        let mut out = Vec::new();
        for key in positions {
            if let Some(record) = self.read_record(key).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Every object is first checked to be the version read (its ETag): if any is not,
    /// nothing is written and the engine reads those again. Then a rewrap's copy is
    /// conditional on the ETag read (S3 compares atomically: a writer that wins the race
    /// in between keeps its object, counted as superseded, never overwritten), and so is a
    /// value's PUT (`If-Match`); a stream's re-encryption upload is not (a writer in between
    /// loses its write).
    async fn commit(
        &self,
        writes: &[Write<'_>],
        _checkpoint: Option<&Checkpoint<'_>>,
    ) -> Result<Committed, CommitError> {
        let mut heads = Vec::with_capacity(writes.len());
        let mut conflicts = Vec::new();
        for w in writes {
            let key = &w.record.position;
            let head = self.head_read(key)?;
            if !self.unchanged(key, &w.record.read, &head).await? {
                conflicts.push(key.clone());
            }
            heads.push(head);
        }
        if !conflicts.is_empty() {
            return Ok(Committed {
                conflicts,
                superseded: 0,
            });
        }
        let mut superseded = 0;
        for (w, head) in writes.iter().zip(&heads) {
            let url = self.url.with_key(&w.record.position);
            if let Some(aad) = w.reencrypt_stream() {
                self.reencrypt_stream(&url, &w.record.read, head, aad)
                    .await?;
            } else if stream::is_stream(&w.record.read) {
                let new = w.ciphertext()?;
                let slot = changed_slot(&w.record.read, new).ok_or_else(|| {
                    CliError::new(format!("{url}: a rewrap changed more than one header slot"))
                })?;
                if !self.s3.copy_with_slot(&url, head, slot).await? {
                    superseded += 1;
                }
            } else {
                let bytes = w.ciphertext()?.to_vec();
                match &head.etag {
                    Some(etag) => {
                        if !self.s3.put_if_match(&url, bytes, etag).await? {
                            superseded += 1;
                        }
                    }
                    None => self.s3.put(&url, bytes).await?,
                }
            }
        }
        Ok(Committed {
            conflicts: Vec::new(),
            superseded,
        })
    }

    async fn count(&self) -> Option<u64> {
        Some(self.keys.len() as u64)
    }
}

/// The one slot a rewrap changed in a stream header: the bytes of the slot that differs
/// between `read` and `new`.
fn changed_slot<'a>(read: &'a [u8], new: &'a [u8]) -> Option<&'a [u8]> {
    if read.len() != new.len() || read.len() < stream::STABLE_LEN {
        return None;
    }
    let slot_len = (read.len() - stream::STABLE_LEN) / 2;
    let slot = |bytes: &'a [u8], i: usize| {
        &bytes[stream::STABLE_LEN + i * slot_len..stream::STABLE_LEN + (i + 1) * slot_len]
    };
    let differs: Vec<usize> = (0..2).filter(|&i| slot(read, i) != slot(new, i)).collect();
    match (
        differs.as_slice(),
        read[..stream::STABLE_LEN] == new[..stream::STABLE_LEN],
    ) {
        ([i], true) => Some(slot(new, *i)),
        _ => None,
    }
}
