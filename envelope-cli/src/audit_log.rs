//! The process's key-use log (`--audit-log`): opened once before the subcommand runs,
//! attached to every envelope the CLI builds, fed with job and key-administration events,
//! closed (with a final signed checkpoint) when the subcommand ends.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use envelope::EnvelopeBuilder;
use envelope::audit::CheckpointSigner;
use envelope_audit::{AuditLog, FailurePolicy, KeyFileSigner, SinkConfig, VerifierKey};
use serde_json::{Map, Value, json};

use crate::cli::AuditLogArgs;
use crate::exit::CliError;

static LOG: OnceLock<AuditLog> = OnceLock::new();
static SIGNER: OnceLock<String> = OnceLock::new();

/// The `--audit-signer` given, if any (the evidence manifest's default signer).
pub fn signer_spec() -> Option<&'static str> {
    SIGNER.get().map(String::as_str)
}

/// Opens the log named by the arguments, if any, for the rest of the process. A signer
/// without a log is refused unless `signer_alone` (`evidence` signs its manifest with it).
pub fn open(args: &AuditLogArgs, signer_alone: bool) -> Result<(), CliError> {
    if let Some(spec) = &args.audit_signer {
        let _ = SIGNER.set(spec.clone());
    }
    let Some(target) = &args.audit_log else {
        if args.audit_signer.is_some() && !signer_alone {
            return Err(CliError::with_code(
                crate::exit::USAGE,
                "--audit-signer signs the log named by --audit-log: give both",
            ));
        }
        return Ok(());
    };
    let signer = signer(args.audit_signer.as_deref().ok_or_else(|| {
        CliError::with_code(
            crate::exit::USAGE,
            "--audit-log needs --audit-signer (a key file from `envelope audit keygen`, or vault://…/transit/keys/NAME)",
        )
    })?)?;
    let policy =
        FailurePolicy::parse(&args.audit_policy).map_err(|e| CliError::new(e.to_string()))?;
    let sink = if target == "-" {
        SinkConfig::Stdout
    } else {
        SinkConfig::file(target)
    };
    let log = AuditLog::builder(sink, signer)
        .actor(args.audit_actor.clone())
        .policy(policy)
        .checkpoint_every(args.audit_checkpoint_every)
        .open()
        .map_err(|e| CliError::new(format!("--audit-log {target}: {e}")))?;
    let _ = LOG.set(log);
    Ok(())
}

/// A checkpoint signer: an Ed25519 key file, or a Vault/OpenBao Transit key
/// (`vault://HOST:PORT/transit/keys/NAME`).
pub fn signer(spec: &str) -> Result<Arc<dyn CheckpointSigner>, CliError> {
    if spec.starts_with("vault://") {
        #[cfg(feature = "vault")]
        {
            let signer = envelope::vault::TransitSigner::from_uri(spec)?;
            return Ok(Arc::new(signer));
        }
        #[cfg(not(feature = "vault"))]
        return Err(CliError::new(
            "vault:// signers need the CLI built with the `vault` feature",
        ));
    }
    let signer =
        KeyFileSigner::from_file(Path::new(spec)).map_err(|e| CliError::new(e.to_string()))?;
    Ok(Arc::new(signer))
}

/// A verifier key given inline (`NAME+HASH+KEY`) or as a file holding one.
pub fn verifier_key(spec: &str) -> Result<VerifierKey, CliError> {
    let parsed = if Path::new(spec).is_file() {
        VerifierKey::from_file(Path::new(spec))
    } else {
        VerifierKey::parse(spec)
    };
    parsed.map_err(|e| CliError::with_code(crate::exit::USAGE, e.to_string()))
}

/// The log, when `--audit-log` was given.
pub fn log() -> Option<&'static AuditLog> {
    LOG.get()
}

/// Attaches the log to an envelope being built.
pub fn attach(builder: EnvelopeBuilder) -> EnvelopeBuilder {
    match log() {
        Some(log) => builder.key_use_log(Arc::new(log.clone())),
        None => builder,
    }
}

/// Records an event; a log that cannot take it (failing closed) fails the command.
pub fn record(kind: &'static str, body: Map<String, Value>) -> Result<(), CliError> {
    match log() {
        Some(log) => log
            .record(kind, body)
            .map_err(|e| CliError::new(e.to_string())),
        None => Ok(()),
    }
}

/// Records a job event (`start` or `finish`) with its members.
pub fn job(op: &str, members: Value) -> Result<(), CliError> {
    let mut body = Map::new();
    body.insert("op".into(), json!(op));
    if let Value::Object(m) = integers_only(members) {
        body.extend(m);
    }
    record("job", body)
}

/// Records a key administration and how it ended.
pub fn admin(op: &str, target: &str, details: Value, outcome: &str) -> Result<(), CliError> {
    let mut body = Map::new();
    body.insert("op".into(), json!(op));
    body.insert("target".into(), json!(target));
    body.insert("outcome".into(), json!(outcome));
    if let Value::Object(m) = integers_only(details) {
        body.extend(m);
    }
    record("admin", body)
}

/// Drops what canonical lines cannot carry (fractions, negative numbers).
fn integers_only(value: Value) -> Value {
    match value {
        Value::Number(n) if n.as_u64().is_none() => Value::Null,
        Value::Array(items) => Value::Array(items.into_iter().map(integers_only).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, integers_only(v)))
                .filter(|(_, v)| !v.is_null())
                .collect(),
        ),
        other => other,
    }
}

/// Writes the final checkpoint and stops the writer.
pub fn close() -> Result<(), CliError> {
    match log() {
        Some(log) => log.close().map_err(|e| CliError::new(e.to_string())),
        None => Ok(()),
    }
}

/// A window from `--from` and `--to` (RFC 3339, or a day: `--to` then covers it whole).
pub fn window(from: &str, to: &str) -> Result<(u64, u64), CliError> {
    let parse = |flag: &str, text: &str| {
        envelope_audit::parse_rfc3339(text).ok_or_else(|| {
            CliError::with_code(
                crate::exit::USAGE,
                format!("{flag} {text:?}: give a UTC time as 2026-12-01T05:30:00Z or a day as 2026-12-01"),
            )
        })
    };
    let from_millis = parse("--from", from)?;
    let mut to_millis = parse("--to", to)?;
    if to.len() == "YYYY-MM-DD".len() {
        // A day: the whole of it.
        to_millis += 86_400_000 - 1;
    }
    let (from, to) = (from_millis, to_millis);
    if to < from {
        return Err(CliError::with_code(
            crate::exit::USAGE,
            "--to is before --from",
        ));
    }
    Ok((from, to))
}
