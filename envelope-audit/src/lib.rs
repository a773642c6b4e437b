//! The envelope SDK's tamper-evident key-use log.
//!
//! [`AuditLog`] receives what an envelope reports (every KMS call, the cache use of each DEK
//! per minute: see `envelope_core::audit`) and what applications and the `envelope` CLI
//! record (jobs, key administration), and writes it from a background thread as:
//!
//! - **canonical JSON lines** (RFC 8785), each carrying the SHA-256 of the line before it
//!   ([`line`](mod@line));
//! - **signed checkpoints** every N lines or T seconds: the RFC 6962 Merkle root of every
//!   line so far ([`merkle`]) in the C2SP `tlog-checkpoint` signed-note format, signed with
//!   Ed25519 by a [`envelope_core::audit::CheckpointSigner`] ([`note`]) whose public key
//!   alone verifies them.
//!
//! [`verify_dir`] checks a log and names the first damaged line and the kind of damage;
//! [`export()`] cuts a window with its checkpoints and consistency proofs for off-host
//! storage. The format is documented in `docs/AUDIT.md`.
//!
//! | module | what it holds |
//! |---|---|
//! | [`canonical`] | RFC 8785 canonical JSON for the log's subset |
//! | [`line`](mod@line) | the lines: common members, building, chaining, parsing |
//! | [`merkle`] | RFC 6962 hashes, the frontier, consistency proofs |
//! | [`note`] | checkpoints as signed notes, verifier keys, the key file signer |
//! | [`segments`] | segment files |
//! | `sink` | file and stdout sinks |
//! | `writer` | [`AuditLog`], its builder, the failure policy, the writer thread |
//! | `resume` | continuing a log after a restart |
//! | [`verify`] | verification and what the lines say |
//! | [`export`](mod@export) | windows of a log for off-host storage |

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod canonical;
pub mod export;
pub mod line;
pub mod merkle;
pub mod note;
mod resume;
pub mod segments;
mod sink;
mod time;
pub mod verify;
mod writer;

pub use export::export;
pub use note::{Checkpoint, KeyFileSigner, VerifierKey};
pub use sink::SinkConfig;
pub use time::{day, parse_rfc3339, rfc3339_millis};
pub use verify::{Damage, DamageKind, Report, verify_dir};
pub use writer::{AuditLog, AuditLogBuilder, FailurePolicy, WeakAuditLog};

use std::path::Path;

/// What can go wrong opening, writing, verifying or exporting a log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A signing or verifier key is malformed or unusable.
    #[error("{0}")]
    Key(String),
    /// A checkpoint could not be signed.
    #[error("cannot sign a checkpoint: {0}")]
    Sign(String),
    /// A configuration or argument is invalid.
    #[error("{0}")]
    Config(String),
    /// An existing log cannot be continued (its tail does not verify).
    #[error("{0}")]
    Corrupt(String),
    /// The log cannot take an event (closed, or failing closed).
    #[error("key-use log unavailable: {0}")]
    Unavailable(String),
}

impl AuditError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        AuditError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
