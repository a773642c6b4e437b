//! The key-use log's seam: what an envelope reports about each use of a key, and the
//! [`KeyUseLog`] that receives it.
//!
//! Core only reports; it writes nothing. The `envelope-audit` crate implements
//! [`KeyUseLog`] (hash-chained canonical JSON lines with signed Merkle checkpoints, written
//! by a background thread). An envelope built with [`crate::EnvelopeBuilder::key_use_log`]
//! reports:
//!
//! - every KMS call (generate, wrap, unwrap, rewrap, describe) with its outcome, as a
//!   [`KmsUse`], when the call returns;
//! - the encryptions and decryptions each cached DEK served, as counters ([`DekUsage`]) the
//!   log reads once a minute: the hot path adds one relaxed atomic increment and reads one
//!   flag ([`KeyUseLog::admit`]).
//!
//! Nothing here ever holds plaintext, a key, a DEK or AAD: a DEK is named by its
//! fingerprint (the first 8 bytes of its key commitment, as `envelope inspect` prints it) and
//! its DEK store id.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{ErrorKind, Result};
use crate::kms::Provider;

/// A KMS operation as the key-use log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyOperation {
    /// A new DEK generated (or drawn locally and wrapped) for encryption.
    Generate,
    /// A DEK wrapped under a key (binding a DEK store row written before rows were bound).
    Wrap,
    /// A wrapped DEK unwrapped for decryption.
    Unwrap,
    /// A wrapped DEK moved to another key version.
    Rewrap,
    /// A key's versions and rotation read.
    Describe,
}

impl KeyOperation {
    /// The name written in the log (`generate`, `wrap`, `unwrap`, `rewrap`, `describe`).
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyOperation::Generate => "generate",
            KeyOperation::Wrap => "wrap",
            KeyOperation::Unwrap => "unwrap",
            KeyOperation::Rewrap => "rewrap",
            KeyOperation::Describe => "describe",
        }
    }
}

/// The DEK a KMS call or a cache counter concerns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DekRef {
    /// The DEK's fingerprint (`HeaderInfo::dek_fingerprint`): stable across rewraps.
    pub fingerprint: String,
    /// Its DEK store id, for the compact form.
    pub id: Option<u64>,
}

/// One KMS call, reported when it returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsUse {
    /// What was asked.
    pub operation: KeyOperation,
    /// The KMS.
    pub provider: Provider,
    /// The key the call named.
    pub key_id: String,
    /// The key version used: the version that wrapped (generate, wrap), the version
    /// unwrapped (unwrap), the version moved from (rewrap) or the current one (describe);
    /// `None` when the call failed before the KMS said.
    pub key_version: Option<String>,
    /// The version a rewrap moved to.
    pub to_version: Option<String>,
    /// The DEK, when the call concerned one.
    pub dek: Option<DekRef>,
    /// How many DEKs one call covered (a batch rewrap); 1 otherwise.
    pub count: u64,
    /// `Ok` or the error's kind.
    pub outcome: std::result::Result<(), ErrorKind>,
    /// The envelope's caller label ([`crate::EnvelopeBuilder::audit_label`]).
    pub label: Option<String>,
}

/// Which cached use a [`DekUsage`] counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheOperation {
    /// Encryptions served by a cached DEK.
    Encrypt,
    /// Decryptions served by a cached DEK.
    Decrypt,
}

impl CacheOperation {
    /// The name written in the log (`encrypt`, `decrypt`).
    pub const fn as_str(self) -> &'static str {
        match self {
            CacheOperation::Encrypt => "encrypt",
            CacheOperation::Decrypt => "decrypt",
        }
    }
}

/// What a cached DEK is, for the log's per-minute cache-use events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedDek {
    /// The DEK.
    pub dek: DekRef,
    /// The KMS that wrapped it.
    pub provider: Provider,
    /// The key that wrapped it.
    pub key_id: String,
    /// The key version that wrapped it.
    pub key_version: String,
    /// The envelope's caller label.
    pub label: Option<String>,
}

/// The encryptions and decryptions one cached DEK served, counted on the hot path (one
/// relaxed atomic add each) and read by the log.
#[derive(Debug, Default)]
pub struct DekUsage {
    encrypts: AtomicU64,
    decrypts: AtomicU64,
}

impl DekUsage {
    /// Counts one use.
    #[inline]
    pub fn count(&self, operation: CacheOperation) {
        self.counter(operation).fetch_add(1, Ordering::Relaxed);
    }

    /// The uses counted so far.
    pub fn total(&self, operation: CacheOperation) -> u64 {
        self.counter(operation).load(Ordering::Relaxed)
    }

    fn counter(&self, operation: CacheOperation) -> &AtomicU64 {
        match operation {
            CacheOperation::Encrypt => &self.encrypts,
            CacheOperation::Decrypt => &self.decrypts,
        }
    }
}

/// Where an envelope reports key use. Implemented by `envelope_audit::AuditLog`.
///
/// Calls come from the envelope's own tasks and must not block for long: an implementation
/// queues and writes elsewhere.
pub trait KeyUseLog: Send + Sync + fmt::Debug {
    /// Whether operations may go on: `Err(`[`crate::Error::AuditLog`]`)` when the log fails
    /// closed (it cannot record and its policy is to block). Called on every encrypt and
    /// decrypt, so it must be one atomic read.
    fn admit(&self) -> Result<()>;

    /// Records one KMS call. An `Err` fails the operation that made it (fail-closed
    /// policy); a log that never blocks counts what it could not record and returns `Ok`.
    fn record_kms(&self, call: KmsUse) -> Result<()>;

    /// Starts reading the cache-use counters of a DEK the envelope now holds in its cache.
    /// The log keeps `usage` until it has recorded its last count after the envelope drops
    /// the DEK.
    fn track(&self, dek: TrackedDek, usage: Arc<DekUsage>);
}

/// Signs the key-use log's checkpoints with Ed25519 (C2SP signed notes).
///
/// The writer holds something that can sign, never something a verifier needs: a verifier
/// holds only the public key, so a writer that is later compromised cannot re-sign a
/// rewritten history without the signature failing. Implemented by `envelope_audit`'s key
/// file signer, and by the Vault/OpenBao Transit backend (`transit/sign` with an ed25519
/// key, where the private key never leaves Vault).
pub trait CheckpointSigner: Send + Sync + fmt::Debug {
    /// The key name written in the note's signature line (no spaces, no `+`).
    fn name(&self) -> &str;

    /// The Ed25519 public key (32 bytes) that verifies the signatures.
    fn public_key(&self) -> [u8; 32];

    /// Signs `message` (the note's text) with Ed25519.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64]>;
}
