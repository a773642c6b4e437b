//! The key-use log behind a client's `audit_json` option: parsed, opened once per
//! directory in the process (clients naming the same directory share one writer), and
//! attached to the client's envelope.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use envelope::EnvelopeBuilder;
use envelope::audit::CheckpointSigner;
use envelope_audit::{AuditLog, FailurePolicy, KeyFileSigner, SinkConfig, WeakAuditLog};
use serde::Deserialize;

use crate::boundary::FfiError;

/// A log a client holds open.
pub(crate) type Log = AuditLog;

/// `audit_json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    dir: PathBuf,
    signer: String,
    #[serde(default = "default_actor")]
    actor: String,
    label: Option<String>,
    #[serde(default = "default_policy")]
    policy: String,
    #[serde(default = "default_every")]
    checkpoint_every: u64,
}

fn default_actor() -> String {
    "envelope".into()
}

fn default_policy() -> String {
    "block".into()
}

fn default_every() -> u64 {
    1000
}

/// Open logs by directory, without keeping them open.
fn registry() -> &'static Mutex<HashMap<PathBuf, WeakAuditLog>> {
    static LOGS: OnceLock<Mutex<HashMap<PathBuf, WeakAuditLog>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Opens (or joins) the log `json` describes; returns it and the client's label.
pub(crate) fn open(json: &[u8]) -> Result<(AuditLog, Option<String>), FfiError> {
    let options: Options = serde_json::from_slice(json).map_err(|e| {
        FfiError::Invalid(format!(
            "audit_json must be an object with dir and signer (and actor, label, policy, checkpoint_every): {e}"
        ))
    })?;
    let policy =
        FailurePolicy::parse(&options.policy).map_err(|e| FfiError::Invalid(e.to_string()))?;
    std::fs::create_dir_all(&options.dir)
        .map_err(|e| FfiError::Invalid(format!("audit dir {}: {e}", options.dir.display())))?;
    let key = options
        .dir
        .canonicalize()
        .map_err(|e| FfiError::Invalid(format!("audit dir {}: {e}", options.dir.display())))?;
    let mut logs = registry()
        .lock()
        .map_err(|_| FfiError::Invalid("the audit log registry is poisoned".into()))?;
    if let Some(log) = logs.get(&key).and_then(WeakAuditLog::upgrade) {
        return Ok((log, options.label));
    }
    let log = AuditLog::builder(SinkConfig::file(&key), signer(&options.signer)?)
        .actor(options.actor)
        .policy(policy)
        .checkpoint_every(options.checkpoint_every)
        .open()
        .map_err(|e| FfiError::Invalid(format!("audit log: {e}")))?;
    logs.retain(|_, weak| weak.upgrade().is_some());
    logs.insert(key, log.downgrade());
    Ok((log, options.label))
}

fn signer(spec: &str) -> Result<Arc<dyn CheckpointSigner>, FfiError> {
    if spec.starts_with("vault://") {
        #[cfg(feature = "vault")]
        return Ok(Arc::new(envelope::vault::TransitSigner::from_uri(spec)?));
        #[cfg(not(feature = "vault"))]
        return Err(FfiError::Invalid(
            "vault:// signers need the library built with the `vault` feature".into(),
        ));
    }
    let signer = KeyFileSigner::from_file(std::path::Path::new(spec))
        .map_err(|e| FfiError::Invalid(format!("audit signer: {e}")))?;
    Ok(Arc::new(signer))
}

/// The builder with the log attached (and the client's label).
pub(crate) fn attach(
    builder: EnvelopeBuilder,
    log: &AuditLog,
    label: Option<String>,
) -> EnvelopeBuilder {
    let builder = builder.key_use_log(Arc::new(log.clone()));
    match label {
        Some(label) => builder.audit_label(label),
        None => builder,
    }
}
