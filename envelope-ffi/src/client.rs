//! The client handle: options, creation, release and statistics.

use std::collections::BTreeMap;
use std::time::Duration;

use envelope::{BlockingEnvelope, CachePolicy, Suite};

use crate::boundary::{FfiError, boundary};
use crate::buffers::{give, input, non_null, utf8};
use crate::status::envelope_status;

/// An envelope client: a key URI, its KMS, its DEK cache and its runtime. Opaque.
pub struct envelope_client {
    _private: [u8; 0],
}

/// The state behind an `envelope_client` pointer (a `Box<Client>`).
pub(crate) struct Client {
    pub(crate) envelope: BlockingEnvelope,
    /// Blind indexes, when the options name an index key store (or a DEK store).
    pub(crate) indexes: Option<envelope::blind_index::BlindIndexes>,
    /// The key-use log this client holds open, if any.
    #[cfg(feature = "audit")]
    pub(crate) _audit: Option<crate::audit::Log>,
}

/// AES-256-GCM (the default suite).
pub const ENVELOPE_SUITE_AES_256_GCM: u32 = 1;

/// XChaCha20-Poly1305.
pub const ENVELOPE_SUITE_XCHACHA20_POLY1305: u32 = 2;

/// Client options. Start from `envelope_client_options_default` and change fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct envelope_client_options {
    /// `ENVELOPE_SUITE_AES_256_GCM` (default) or `ENVELOPE_SUITE_XCHACHA20_POLY1305`.
    pub suite: u32,
    /// `false` calls the KMS for every encrypt and decrypt.
    pub cache_enabled: bool,
    /// How long one DEK encrypts, in milliseconds (bounds KEK-rotation pickup).
    pub max_age_ms: u64,
    /// How many messages one DEK encrypts (at most 2^32 for AES-256-GCM).
    pub max_messages: u64,
    /// How many plaintext bytes one DEK encrypts.
    pub max_bytes: u64,
    /// How long an unwrapped DEK is kept for decryption, in milliseconds.
    pub decrypt_ttl_ms: u64,
    /// How many unwrapped DEKs are kept for decryption.
    pub decrypt_capacity: u64,
    /// The KMS encryption context as a JSON object of strings (may be NULL).
    pub encryption_context_json: *const u8,
    /// Length of `encryption_context_json`.
    pub encryption_context_json_len: usize,
    /// How long a KEK reference whose unwrap failed for a lasting reason is answered with
    /// the same error without a KMS call, in milliseconds (0: never remembered).
    pub negative_ttl_ms: u64,
    /// At most this many unwrap and rewrap KMS calls a second (0: no limit); calls past it
    /// fail at once with `ENVELOPE_THROTTLED`.
    pub max_unwraps_per_second: u32,
    /// A DEK store URI (`sqlite:///path/deks.sqlite`, `postgres://…[?table=NAME]`; may be
    /// NULL): new ciphertexts are written in the compact form (version 3: 72 bytes of
    /// overhead for AES-256-GCM, key-committing) with their DEK kept in the store; compact
    /// ciphertexts decrypt through it. Without one the client writes the self-contained v1
    /// form.
    pub dek_store_uri: *const u8,
    /// Length of `dek_store_uri`.
    pub dek_store_uri_len: usize,
    /// The compact version new values are written in: 0 or 3 (the default, key-committing)
    /// or 2 (40 bytes of overhead, NOT key-committing: someone who knows two DEKs and can
    /// write the store can make one v2 value decrypt to two plaintexts). Other values:
    /// `ENVELOPE_INVALID_ARGUMENT`.
    pub compact_version: u32,
    /// Refuse compact version 2 values when decrypting (they fail with
    /// `ENVELOPE_UNSUPPORTED_FORMAT_VERSION`), once none are left.
    pub refuse_compact_v2: bool,
    /// The index key store of blind indexes (a DEK store URI; may be NULL: then the DEK
    /// store's, if any). Index keys are wrapped by this client's KEK.
    pub index_store_uri: *const u8,
    /// Length of `index_store_uri`.
    pub index_store_uri_len: usize,
    /// The key-use log, as a JSON object (may be NULL: no log): `{"dir": "/var/log/app-keys",
    /// "signer": "/etc/app/audit.key" or "vault://HOST:PORT/transit/keys/NAME", "actor":
    /// "billing-api", "label": "patients.ssn", "policy": "block" | "block:SECONDS" |
    /// "count", "checkpoint_every": 1000}`; `dir` and `signer` are required. Clients of one
    /// process naming the same `dir` share one writer (the first one's signer, actor and
    /// policy); the log closes with a final checkpoint when the last of them is freed.
    pub audit_json: *const u8,
    /// Length of `audit_json`.
    pub audit_json_len: usize,
}

/// The client behind a handle.
///
/// # Safety
/// `client` must be NULL or a pointer returned by `envelope_client_new` and not yet freed.
pub(crate) unsafe fn client_ref<'a>(
    client: *const envelope_client,
) -> Result<&'a Client, FfiError> {
    if client.is_null() {
        return Err(FfiError::Null("client"));
    }
    // SAFETY: the pointer came from `Box::into_raw(Box<Client>)` in `envelope_client_new`.
    Ok(unsafe { &*(client as *const Client) })
}

/// Fills `*out` with the default options (AES-256-GCM, cache on with the SDK's defaults).
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_client_options_default(
    out: *mut envelope_client_options,
) -> envelope_status {
    boundary(|| {
        let out = non_null(out, "out")?;
        let policy = CachePolicy::default();
        let options = envelope_client_options {
            suite: ENVELOPE_SUITE_AES_256_GCM,
            cache_enabled: true,
            max_age_ms: policy.max_age().as_millis() as u64,
            max_messages: policy.max_messages(),
            max_bytes: policy.max_bytes(),
            decrypt_ttl_ms: policy.decrypt_ttl().as_millis() as u64,
            decrypt_capacity: policy.decrypt_capacity(),
            encryption_context_json: std::ptr::null(),
            encryption_context_json_len: 0,
            negative_ttl_ms: policy.negative_ttl().as_millis() as u64,
            max_unwraps_per_second: policy.max_unwraps_per_second().unwrap_or(0),
            dek_store_uri: std::ptr::null(),
            dek_store_uri_len: 0,
            compact_version: 0,
            refuse_compact_v2: false,
            index_store_uri: std::ptr::null(),
            index_store_uri_len: 0,
            audit_json: std::ptr::null(),
            audit_json_len: 0,
        };
        // SAFETY: checked non-null; the caller guarantees it is writable.
        unsafe { out.write(options) };
        Ok(())
    })
}

/// Creates a client for a key URI (`local://…`, `aws-kms://…`, `gcp-kms://…`, `vault://…`).
/// `options` may be NULL for the defaults. Makes no KMS call.
///
/// # Safety
/// `key_uri` must be valid for `key_uri_len` bytes; `options` NULL or valid; `out` valid for
/// a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_client_new(
    key_uri: *const u8,
    key_uri_len: usize,
    options: *const envelope_client_options,
    out: *mut *mut envelope_client,
) -> envelope_status {
    boundary(|| {
        let out = non_null(out, "out")?;
        // SAFETY: per this function's contract.
        let uri = utf8(
            unsafe { input(key_uri, key_uri_len, "key_uri")? },
            "key_uri",
        )?;
        let options = if options.is_null() {
            let mut defaults = std::mem::MaybeUninit::<envelope_client_options>::uninit();
            // SAFETY: a valid pointer to local storage.
            let status = unsafe { envelope_client_options_default(defaults.as_mut_ptr()) };
            if status != envelope_status::ENVELOPE_OK {
                return Err(FfiError::Invalid("cannot build default options".into()));
            }
            // SAFETY: initialized by the successful call above.
            unsafe { defaults.assume_init() }
        } else {
            // SAFETY: non-null and valid per the contract.
            unsafe { *options }
        };
        let suite = match options.suite {
            ENVELOPE_SUITE_AES_256_GCM => Suite::Aes256Gcm,
            ENVELOPE_SUITE_XCHACHA20_POLY1305 => Suite::XChaCha20Poly1305,
            other => return Err(FfiError::Invalid(format!("unknown suite {other}"))),
        };
        let policy = if options.cache_enabled {
            CachePolicy::default()
                .with_max_age(Duration::from_millis(options.max_age_ms))
                .with_max_messages(options.max_messages)
                .with_max_bytes(options.max_bytes)
                .with_decrypt_ttl(Duration::from_millis(options.decrypt_ttl_ms))
                .with_decrypt_capacity(options.decrypt_capacity)
                .with_negative_ttl(Duration::from_millis(options.negative_ttl_ms))
        } else {
            CachePolicy::disabled()
        }
        .with_max_unwraps_per_second(
            Some(options.max_unwraps_per_second).filter(|&limit| limit > 0),
        );
        // SAFETY: per this function's contract (the options' pointer and length).
        let context_json = unsafe {
            input(
                options.encryption_context_json,
                options.encryption_context_json_len,
                "encryption_context_json",
            )?
        };
        let context: BTreeMap<String, String> = if context_json.is_empty() {
            BTreeMap::new()
        } else {
            serde_json::from_slice(context_json).map_err(|e| {
                FfiError::Invalid(format!(
                    "encryption_context_json must be a JSON object of strings: {e}"
                ))
            })?
        };
        // SAFETY: per this function's contract (the options' pointer and length).
        let store_uri = unsafe {
            input(
                options.dek_store_uri,
                options.dek_store_uri_len,
                "dek_store_uri",
            )?
        };
        let compact_version = match options.compact_version {
            0 => envelope::compact::CompactVersion::default(),
            n => u8::try_from(n)
                .ok()
                .and_then(envelope::compact::CompactVersion::from_byte)
                .ok_or_else(|| {
                    FfiError::Invalid(format!("compact_version {n}: use 0 (default), 2 or 3"))
                })?,
        };
        let mut builder = envelope::builder_from_uri(uri)?
            .suite(suite)
            .cache_policy(policy)
            .encryption_context(context)
            .compact_version(compact_version)
            .accept_compact_v2(!options.refuse_compact_v2);
        if !store_uri.is_empty() {
            builder =
                builder.dek_store(envelope::open_dek_store(utf8(store_uri, "dek_store_uri")?)?);
        }
        // SAFETY: per this function's contract (the options' pointer and length).
        let audit_json =
            unsafe { input(options.audit_json, options.audit_json_len, "audit_json")? };
        #[cfg(feature = "audit")]
        let audit = if audit_json.is_empty() {
            None
        } else {
            let (log, label) = crate::audit::open(audit_json)?;
            builder = crate::audit::attach(builder, &log, label);
            Some(log)
        };
        #[cfg(not(feature = "audit"))]
        if !audit_json.is_empty() {
            return Err(FfiError::Invalid(
                "audit_json: this library was built without the `audit` feature".into(),
            ));
        }
        let envelope = builder.build()?;
        // SAFETY: per this function's contract (the options' pointer and length).
        let index_uri = unsafe {
            input(
                options.index_store_uri,
                options.index_store_uri_len,
                "index_store_uri",
            )?
        };
        let index_uri = match (index_uri.is_empty(), store_uri.is_empty()) {
            (false, _) => Some(utf8(index_uri, "index_store_uri")?),
            (true, false) => Some(utf8(store_uri, "dek_store_uri")?),
            (true, true) => None,
        };
        let indexes = index_uri
            .map(|uri| {
                envelope::open_index_key_store(uri)
                    .map(|store| envelope::blind_index::BlindIndexes::new(&envelope, store))
            })
            .transpose()?;
        let client = Box::new(Client {
            envelope: BlockingEnvelope::new(envelope)?,
            indexes,
            #[cfg(feature = "audit")]
            _audit: audit,
        });
        // SAFETY: checked non-null; the caller guarantees it is writable.
        unsafe { *out = Box::into_raw(client) as *mut envelope_client };
        Ok(())
    })
}

/// Releases a client (NULL is a no-op). Its cached DEKs are zeroized.
///
/// # Safety
/// `client` must be NULL or a live pointer from `envelope_client_new`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_client_free(client: *mut envelope_client) {
    let _ = boundary(|| {
        if !client.is_null() {
            // SAFETY: the pointer came from `Box::into_raw(Box<Client>)` and is freed once.
            drop(unsafe { Box::from_raw(client as *mut Client) });
        }
        Ok(())
    });
}

/// The client's counters as JSON (KMS calls by operation, cache hits and misses, DEKs
/// created, the active DEK's usage).
///
/// # Safety
/// `client` live; `out`/`out_len` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envelope_client_stats_json(
    client_ptr: *const envelope_client,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> envelope_status {
    boundary(|| {
        let out = non_null(out, "out")?;
        let out_len = non_null(out_len, "out_len")?;
        // SAFETY: per this function's contract.
        let c = unsafe { client_ref(client_ptr)? };
        let s = c.envelope.envelope().stats();
        let json = serde_json::json!({
            "kms_generate_calls": s.kms_generate_calls,
            "kms_unwrap_calls": s.kms_unwrap_calls,
            "kms_rewrap_calls": s.kms_rewrap_calls,
            "kms_describe_calls": s.kms_describe_calls,
            "kms_failures": s.kms_failures,
            "unwraps_refused_remembered": s.unwraps_refused_remembered,
            "unwraps_refused_rate_limited": s.unwraps_refused_rate_limited,
            "dek_store_reads": s.dek_store_reads,
            "dek_store_writes": s.dek_store_writes,
            "encrypt_cache_hits": s.encrypt_cache_hits,
            "encrypt_cache_misses": s.encrypt_cache_misses,
            "decrypt_cache_hits": s.decrypt_cache_hits,
            "decrypt_cache_misses": s.decrypt_cache_misses,
            "deks_created": s.deks_created,
            "active_dek": s.active_dek.map(|a| serde_json::json!({
                "key_version": a.key_version,
                "messages": a.messages,
                "bytes": a.bytes,
                "age_ms": a.age.as_millis() as u64,
            })),
        });
        // SAFETY: checked non-null above.
        unsafe { give(out, out_len, json.to_string().into_bytes()) };
        Ok(())
    })
}
