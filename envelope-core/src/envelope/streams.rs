//! The streaming form's keys: a sealer for a new stream (the active DEK, a fresh salt), an
//! opener for a stream's header (the cached or unwrapped DEK), and the header-only rewrap.

use std::io::Cursor;
use std::sync::Arc;

use super::{Envelope, Inner};
use crate::audit::CacheOperation::{Decrypt, Encrypt};
use crate::cache::CachedKey;
use crate::clock;
use crate::crypto;
use crate::error::{Error, Result};
use crate::stream::{self, SeekableDecryptingReader, StreamHeader, StreamOpener, StreamSealer};
use crate::suite::SegmentKey;

/// What a rewrap of a stream's header does: write `slot` at `offset` (the slot that is not
/// current, with the next generation). Until those bytes are complete the old slot stays
/// current, so a crash at any instant leaves a stream that decrypts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotWrite {
    /// Offset of the slot from the start of the stream.
    pub offset: u64,
    /// The slot's new bytes.
    pub bytes: Vec<u8>,
}

/// The result of [`Envelope::rewrap_stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRewrap {
    /// The slot to write, or `None` when the DEK is already under the current version.
    pub write: Option<SlotWrite>,
    /// The KEK version before.
    pub from_version: String,
    /// The KEK version after.
    pub to_version: String,
}

impl Envelope {
    /// A sealer for a new stream bound to `aad`, with segments of `segment_size` plaintext
    /// bytes ([`stream::DEFAULT_SEGMENT_SIZE`] unless there is a reason). Uses the active
    /// DEK (one KMS call per DEK, shared with value encryption) and a fresh 32-byte salt, from
    /// which the stream's own segment key is derived.
    ///
    /// An envelope with a DEK store writes compact values, whose DEKs are bound to store
    /// rows; a stream carries its wrapped DEK in its header instead, so each of its streams
    /// gets a DEK of its own from the KMS (one call per stream).
    pub async fn stream_sealer(&self, aad: &[u8], segment_size: u32) -> Result<StreamSealer> {
        let inner = &self.inner;
        inner.admit_log()?;
        let active = if inner.store.is_some() {
            inner.stream_only_dek().await?
        } else {
            match inner.active.with_reserved(&inner.policy, 0, clone_active) {
                Some(active) if inner.policy.is_enabled() => active,
                _ => clone_active(&*inner.refresh_active(0).await?),
            }
        };
        let salt = crypto::random_key(inner.provider);
        let sealer =
            stream::sealer_for(active.data_key(), &salt, &active.kek_ref, segment_size, aad)?;
        active.cached.count(Encrypt);
        Ok(sealer)
    }

    /// An opener for the stream whose header starts `header` (at least
    /// [`stream::header_len`] bytes; more are ignored), bound to `aad`. The DEK comes from
    /// the cache or one KMS unwrap of the current slot's KEK reference, and its key
    /// commitment is checked before any segment is opened.
    pub async fn stream_opener(&self, header: &[u8], aad: &[u8]) -> Result<StreamOpener> {
        let inner = &self.inner;
        inner.admit_log()?;
        let parsed_header = StreamHeader::parse(header)?;
        let source = parsed_header.key_source()?;
        let cached = match inner.cached_for(source.kek_ref) {
            Some(cached) => cached,
            None => inner.load_data_key(&source).await?,
        };
        if cached.key.suite() != parsed_header.suite
            || !cached.key.commitment_matches(parsed_header.commitment)
        {
            return Err(Error::DecryptionFailed);
        }
        let segment_key = SegmentKey::derive(&cached.key, parsed_header.salt);
        cached.count(Decrypt);
        let info = stream::info_of(&parsed_header, None)?;
        Ok(StreamOpener::new(
            segment_key,
            parsed_header.stable,
            aad,
            parsed_header.layout(),
            info,
        ))
    }

    /// Moves a stream's DEK to the current version of this envelope's KEK by writing one
    /// header slot (`header`: at least the stream's header). Nothing else of the stream
    /// changes. One KMS call per distinct DEK, memoized like [`Envelope::rewrap`].
    pub async fn rewrap_stream(&self, header: &[u8]) -> Result<StreamRewrap> {
        let parsed_header = StreamHeader::parse(header)?;
        let source = parsed_header.key_source()?;
        let outcome = self.inner.rewrap_outcome_of(&source).await?;
        let write = match &outcome.new_ref {
            None => None,
            Some(new_ref) => {
                let (offset, bytes) = parsed_header.next_slot(new_ref)?;
                Some(SlotWrite { offset, bytes })
            }
        };
        Ok(StreamRewrap {
            write,
            from_version: source.key_version()?.to_owned(),
            to_version: outcome.key_version.clone(),
        })
    }

    /// Decrypts a whole stream held in memory (the value paths' view of a stream; large
    /// streams go through [`SeekableDecryptingReader`] or [`stream::DecryptingReader`]).
    pub(crate) async fn decrypt_stream_in_memory(
        &self,
        bytes: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        let opener = self.stream_opener(bytes, aad).await?;
        let mut reader =
            SeekableDecryptingReader::new(Cursor::new(bytes), opener, 1).map_err(stream_failure)?;
        let mut out = Vec::with_capacity(reader.plaintext_len() as usize);
        let read = std::io::Read::read_to_end(&mut reader, &mut out);
        // The reader's copy of a failure goes with it: the error is then moved, not rebuilt.
        drop(reader);
        read.map_err(|e| {
            zeroize::Zeroize::zeroize(&mut out);
            stream_failure(e)
        })?;
        Ok(out)
    }
}

impl Envelope {
    /// Encrypts a plaintext held in memory into a stream (the value paths' view of a
    /// stream).
    pub(crate) async fn encrypt_stream_in_memory(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        segment_size: u32,
    ) -> Result<Vec<u8>> {
        let sealer = self.stream_sealer(aad, segment_size).await?;
        let capacity = sealer.layout().stream_len(plaintext.len() as u64) as usize;
        let mut writer = stream::EncryptingWriter::new(Vec::with_capacity(capacity), sealer, 1)
            .map_err(stream_failure)?;
        std::io::Write::write_all(&mut writer, plaintext).map_err(stream_failure)?;
        writer.finish().map_err(stream_failure)
    }
}

/// The SDK error of an in-memory adapter's `io::Error` (a memory source or sink has no I/O
/// error of its own).
fn stream_failure(e: std::io::Error) -> Error {
    let shown = e.to_string();
    stream::StreamError::sdk_error(e).unwrap_or_else(|| Error::malformed("stream", shown))
}

/// What a stream needs of the active DEK: its cached key and KEK reference.
struct ActiveParts {
    cached: Arc<CachedKey>,
    kek_ref: Arc<[u8]>,
}

impl ActiveParts {
    fn data_key(&self) -> &crate::suite::DataKey {
        &self.cached.key
    }
}

fn clone_active(active: &crate::cache::ActiveDek) -> ActiveParts {
    ActiveParts {
        cached: active.cached_arc(),
        kek_ref: active.kek_ref.clone(),
    }
}

impl Inner {
    /// A DEK for one stream of an envelope with a DEK store: generated by the KMS, wrapped
    /// under the envelope's plain context (not bound to a store row), and cached for
    /// decryption like any unwrapped DEK.
    async fn stream_only_dek(&self) -> Result<ActiveParts> {
        let (generated, key) = self.new_kms_dek().await?;
        let cached = self.cached_key(key, None, &generated.wrapped);
        drop(generated.dek);
        let kek_ref: Arc<[u8]> = crate::format::encode_kek_ref(&generated.wrapped)?.into();
        if self.policy.is_enabled() {
            self.unwrapped
                .insert(Box::from(&kek_ref[..]), cached.clone());
        }
        Ok(ActiveParts { cached, kek_ref })
    }

    /// The cached DEK of a KEK reference, if cached and fresh (no KMS call).
    fn cached_for(&self, kek_ref: &[u8]) -> Option<Arc<CachedKey>> {
        if !self.policy.is_enabled() {
            return None;
        }
        let cached = self.unwrapped.get(kek_ref)?;
        (cached.expires > clock::now()).then_some(cached)
    }
}
