//! `evidence.json`, schema `envelope-evidence/1` (documented in docs/EVIDENCE.md). Members
//! are only ever added within a schema version; a removal or change of meaning is a new
//! version.

use envelope_audit::rfc3339_millis;
use serde_json::{Value, json};

use super::Facts;
use super::findings::{Finding, Status};
use crate::key_description::description_json;

/// The schema name and version written in `schema`.
pub const SCHEMA: &str = "envelope-evidence/1";

/// The whole document.
pub fn evidence_json(facts: &Facts, findings: &[Finding]) -> Value {
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    json!({
        "schema": SCHEMA,
        "generated_at": rfc3339_millis(facts.generated_at),
        "generator": {"name": "envelope", "version": env!("CARGO_PKG_VERSION")},
        "window": {"from": rfc3339_millis(facts.window.0), "to": rfc3339_millis(facts.window.1)},
        "policy": {
            "file": facts.policy_file.as_ref().map(|p| p.display().to_string()),
            "effective": facts.policy,
        },
        "summary": {
            "pass": count(Status::Pass),
            "fail": count(Status::Fail),
            "not_applicable": count(Status::NotApplicable),
        },
        "findings": findings,
        "keys": facts.keys.iter().map(|k| {
            let mut v = match &k.description {
                Ok(d) => description_json(d),
                Err(e) => json!({"error": e}),
            };
            v["uri"] = json!(k.uri);
            v["provider"] = json!(k.provider);
            v["key_id"] = json!(k.key_id);
            v["owner"] = json!(k.owner);
            v
        }).collect::<Vec<_>>(),
        "stores": facts.stores.iter().map(|s| json!({
            "kind": s.kind,
            "name": s.name,
            "connection": s.connection,
            "census": s.census.to_json(),
        })).collect::<Vec<_>>(),
        "jobs": {
            "ledger": facts.ledger_jobs,
            "log": facts.log_lines("job"),
        },
        "administration": facts.log_lines("admin"),
        "key_use": facts.log.as_ref().map(|log| {
            let r = &log.report;
            let mut verification = serde_json::to_value(r).unwrap_or_default();
            verification["status"] = json!(r.status());
            verification["lost"] = json!(r.lost());
            json!({
                "directory": log.dir.display().to_string(),
                "log": r.log,
                "verification": verification,
                "per_day": facts.key_use().iter().map(|((provider, key, version, day), u)| json!({
                    "provider": provider, "key_id": key, "key_version": version, "day": day,
                    "kms_calls": u.kms, "kms_failures": u.failures,
                    "cached_encrypts": u.cached_encrypts, "cached_decrypts": u.cached_decrypts,
                })).collect::<Vec<_>>(),
            })
        }),
    })
}
