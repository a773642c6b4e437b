//! The value path: encrypt, decrypt (parse → key → open) and inspect, in every output
//! form (a new `Vec`, appended, into the caller's buffer, text).

use super::{Envelope, Inner};

use crate::audit::CacheOperation::{self, Decrypt, Encrypt};
use crate::cache::{ActiveDek, CachedKey};
use crate::clock;
use crate::compact::{self, CompactVersion, ParsedCompact};
use crate::error::{Error, Result};
use crate::format::{self, HeaderInfo, NonceSource, Output, Parsed};
use crate::stats::Counters;

impl Envelope {
    /// Encrypts `plaintext`, binding `aad` (for example table, column and row id), into
    /// the binary form.
    pub async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encrypt_append(plaintext, aad, &mut out).await?;
        Ok(out)
    }

    /// Appends the binary ciphertext of `plaintext` to `out` (the allocation-free form of
    /// [`Envelope::encrypt`], for batches). `out` is unchanged on error.
    pub async fn encrypt_append(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.encrypt_to(plaintext, aad, &mut Output::Append(out))
            .await
            .map(drop)
    }

    /// Encrypts `plaintext` into the start of the caller's buffer `out` and returns the
    /// ciphertext's length: the hot path with no allocation at all. A buffer shorter than
    /// the ciphertext gets [`Error::BufferTooSmall`] with the length needed, and nothing is
    /// written (that message's use of the active DEK is spent). The ciphertext is the
    /// plaintext plus [`HeaderInfo::overhead`] bytes.
    pub async fn encrypt_into(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut [u8],
    ) -> Result<usize> {
        self.encrypt_to(plaintext, aad, &mut Output::Slice(out))
            .await
    }

    /// Encrypts into an [`Output`] (the one implementation behind every encrypt form).
    pub(crate) async fn encrypt_to(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Result<usize> {
        if let Some(sealed) = self.try_encrypt_cached_to(plaintext, aad, out) {
            return sealed;
        }
        let active = self.inner.refresh_active(plaintext.len()).await?;
        self.inner.seal_to(&active, plaintext, aad, out)
    }

    /// Encrypts into the text form (`ev1:` + base64url), for text columns.
    pub async fn encrypt_to_text(&self, plaintext: &[u8], aad: &[u8]) -> Result<String> {
        Ok(format::to_text(&self.encrypt(plaintext, aad).await?))
    }

    /// Decrypts a binary ciphertext; `aad` must equal the encryption's. A stream (format
    /// version 4) held whole in memory decrypts too; large ones go through
    /// [`crate::stream::SeekableDecryptingReader`].
    pub async fn decrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.decrypt_append(ciphertext, aad, &mut out).await?;
        Ok(out)
    }

    /// Appends the plaintext of a binary ciphertext to `out` (the allocation-free form of
    /// [`Envelope::decrypt`]). `out` is unchanged on error.
    pub async fn decrypt_append(
        &self,
        ciphertext: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.decrypt_to(ciphertext, aad, &mut Output::Append(out))
            .await
            .map(drop)
    }

    /// Decrypts into the start of the caller's buffer `out` and returns the plaintext's
    /// length: the authenticated plaintext is written straight from the ciphertext into
    /// `out`, with no intermediate copy. A buffer shorter than the plaintext (the
    /// ciphertext's length always suffices) gets [`Error::BufferTooSmall`]; on any error no
    /// plaintext is left in `out`.
    pub async fn decrypt_into(
        &self,
        ciphertext: &[u8],
        aad: &[u8],
        out: &mut [u8],
    ) -> Result<usize> {
        self.decrypt_to(ciphertext, aad, &mut Output::Slice(out))
            .await
    }

    /// Decrypts into an [`Output`] (the one implementation behind every decrypt form).
    pub(crate) async fn decrypt_to(
        &self,
        ciphertext: &[u8],
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Result<usize> {
        self.inner.admit_log()?;
        if crate::stream::is_stream(ciphertext) {
            let plaintext =
                zeroize::Zeroizing::new(self.decrypt_stream_in_memory(ciphertext, aad).await?);
            return out.put(&plaintext);
        }
        if compact::is_compact(ciphertext) {
            let parsed = self.inner.parse_compact(ciphertext)?;
            if let Some(opened) = self.inner.open_compact_cached_to(&parsed, aad, out) {
                return opened;
            }
            let key = self.inner.load_stored_key(parsed.dek_id).await?;
            return counted(&key, Decrypt, out.open_compact(&key.key, &parsed, aad));
        }
        let parsed = format::parse(ciphertext)?;
        if let Some(opened) = self.inner.open_cached_to(&parsed, aad, out) {
            return opened;
        }
        let key = self.inner.load_data_key(&parsed).await?;
        counted(&key, Decrypt, out.open(&key.key, &parsed, aad))
    }

    /// Decrypts a text-form ciphertext.
    pub async fn decrypt_text(&self, ciphertext: &str, aad: &[u8]) -> Result<Vec<u8>> {
        self.decrypt(&format::from_text(ciphertext)?, aad).await
    }

    /// Reads the header of a binary v1 ciphertext without any key or KMS call. A compact
    /// ciphertext names a DEK store row instead of a KEK: it is refused with
    /// [`Error::InvalidConfig`] saying so; read it with [`compact::inspect_compact`] (no
    /// store) or [`compact::header_info`] (with its row).
    pub fn inspect(ciphertext: &[u8]) -> Result<HeaderInfo> {
        if compact::is_compact(ciphertext) {
            let id = compact::inspect_compact(ciphertext)?.dek_id;
            return Err(Error::InvalidConfig(format!(
                "the ciphertext is in the compact form: its header names DEK {id} of a DEK store, \
                 not a KEK (read it with compact::inspect_compact, or compact::header_info with its row)"
            )));
        }
        format::inspect(ciphertext)
    }

    /// Reads the header of a text-form v1 ciphertext (see [`Envelope::inspect`]).
    pub fn inspect_text(ciphertext: &str) -> Result<HeaderInfo> {
        Self::inspect(&format::from_text(ciphertext)?)
    }

    /// Encrypts with the active DEK if one is usable, without awaiting anything; `None`
    /// means a KMS call is needed. The blocking facade's fast path.
    pub(crate) fn try_encrypt_cached_to(
        &self,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Option<Result<usize>> {
        let inner = &self.inner;
        if !inner.policy.is_enabled() {
            return None;
        }
        let sealed = inner
            .active
            .with_reserved(&inner.policy, plaintext.len(), |active| {
                inner.seal_to(active, plaintext, aad, out)
            })?;
        Counters::bump(&inner.counters.encrypt_hits);
        Some(sealed)
    }

    /// Decrypts with a cached DEK if there is one, without awaiting anything; `None` means
    /// a KMS call is needed.
    pub(crate) fn try_decrypt_cached_to(
        &self,
        ciphertext: &[u8],
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Option<Result<usize>> {
        if let Err(e) = self.inner.admit_log() {
            return Some(Err(e));
        }
        if crate::stream::is_stream(ciphertext) {
            return None;
        }
        if compact::is_compact(ciphertext) {
            return match self.inner.parse_compact(ciphertext) {
                Ok(parsed) => self.inner.open_compact_cached_to(&parsed, aad, out),
                Err(e) => Some(Err(e)),
            };
        }
        let parsed = match format::parse(ciphertext) {
            Ok(parsed) => parsed,
            Err(e) => return Some(Err(e)),
        };
        self.inner.open_cached_to(&parsed, aad, out)
    }
}

impl Inner {
    /// Parses a compact value, refusing version 2 where this envelope does.
    #[inline]
    pub(super) fn parse_compact<'a>(&self, ciphertext: &'a [u8]) -> Result<ParsedCompact<'a>> {
        let parsed = compact::parse(ciphertext)?;
        if parsed.version == CompactVersion::V2 && !self.accept_compact_v2 {
            return Err(Error::UnsupportedFormatVersion(CompactVersion::V2.byte()));
        }
        Ok(parsed)
    }

    #[inline]
    pub(super) fn seal_to(
        &self,
        active: &ActiveDek,
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Result<usize> {
        self.admit_log()?;
        let sealed = match active.dek_id {
            Some(id) => out.seal_compact(
                active.data_key(),
                self.compact_version,
                id,
                NonceSource::Fresh,
                plaintext,
                aad,
            ),
            None => out.seal(
                active.data_key(),
                &active.kek_ref,
                NonceSource::Fresh,
                plaintext,
                aad,
            ),
        };
        counted(active.cached(), Encrypt, sealed)
    }

    /// Decrypts with a cached DEK (the lock-free front first, then moka) into `out`;
    /// `None` when the DEK must be unwrapped.
    #[inline]
    pub(super) fn open_cached_to(
        &self,
        parsed: &Parsed<'_>,
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Option<Result<usize>> {
        if !self.policy.is_enabled() {
            return None;
        }
        let opened = match self.hot.with(parsed.kek_ref, |key| {
            counted(key, Decrypt, out.open(&key.key, parsed, aad))
        }) {
            Some(opened) => opened,
            None => {
                let cached = self.unwrapped.get(parsed.kek_ref)?;
                if cached.expires <= clock::now() {
                    return None;
                }
                self.hot.insert(parsed.kek_ref, cached.clone());
                counted(&cached, Decrypt, out.open(&cached.key, parsed, aad))
            }
        };
        Counters::bump(&self.counters.decrypt_hits);
        Some(opened)
    }

    /// [`Inner::open_cached_to`] for the compact form, keyed by the DEK id.
    #[inline]
    pub(super) fn open_compact_cached_to(
        &self,
        parsed: &ParsedCompact<'_>,
        aad: &[u8],
        out: &mut Output<'_>,
    ) -> Option<Result<usize>> {
        if !self.policy.is_enabled() {
            return None;
        }
        let key = parsed.dek_id.cache_key();
        let opened = match self.hot.with(&key, |dk| {
            counted(dk, Decrypt, out.open_compact(&dk.key, parsed, aad))
        }) {
            Some(opened) => opened,
            None => {
                let cached = self.unwrapped.get(&key[..])?;
                if cached.expires <= clock::now() {
                    return None;
                }
                self.hot.insert(&key, cached.clone());
                counted(&cached, Decrypt, out.open_compact(&cached.key, parsed, aad))
            }
        };
        Counters::bump(&self.counters.decrypt_hits);
        Some(opened)
    }
}

/// Counts a successful use of a cached DEK for the key-use log.
#[inline]
fn counted(key: &CachedKey, operation: CacheOperation, result: Result<usize>) -> Result<usize> {
    if result.is_ok() {
        key.count(operation);
    }
    result
}
