//! The findings: each a check of the facts against the policy, PASS, FAIL or N/A (nothing
//! to check), with the SOC 2 criteria and HIPAA safeguards it serves.

use std::time::{Duration, UNIX_EPOCH};

use envelope::KeyVersionState;
use serde::Serialize;

use super::{Facts, data_by_version, versions_in_order};

/// A finding's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    /// The check holds.
    #[serde(rename = "PASS")]
    Pass,
    /// The check fails.
    #[serde(rename = "FAIL")]
    Fail,
    /// Nothing to check (no such store, key or log was named).
    #[serde(rename = "N/A")]
    NotApplicable,
}

impl Status {
    /// `PASS`, `FAIL`, `N/A`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::NotApplicable => "N/A",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// A stable id (`data-follows-rotation`, …).
    pub id: &'static str,
    /// What is checked.
    pub title: &'static str,
    /// The outcome.
    pub status: Status,
    /// Why, in one line.
    pub detail: String,
    /// The facts behind it (locations, counts, versions).
    pub evidence: Vec<String>,
    /// SOC 2 trust services criteria served.
    pub soc2: &'static [&'static str],
    /// HIPAA Security Rule safeguards served.
    pub hipaa: &'static [&'static str],
}

fn finding(
    id: &'static str,
    title: &'static str,
    soc2: &'static [&'static str],
    hipaa: &'static [&'static str],
    outcome: (Status, String, Vec<String>),
) -> Finding {
    Finding {
        id,
        title,
        status: outcome.0,
        detail: outcome.1,
        evidence: outcome.2,
        soc2,
        hipaa,
    }
}

type Outcome = (Status, String, Vec<String>);

fn judged(failures: Vec<String>, checked: usize, what: &str, ok: String) -> Outcome {
    if checked == 0 {
        (
            Status::NotApplicable,
            format!("no {what} named"),
            Vec::new(),
        )
    } else if failures.is_empty() {
        (Status::Pass, ok, Vec::new())
    } else {
        let detail = match failures.len() {
            1 => failures[0].clone(),
            n => format!("{n} problems; the first: {}", failures[0]),
        };
        (Status::Fail, detail, failures)
    }
}

/// Every finding, in a fixed order.
pub fn evaluate(facts: &Facts) -> Vec<Finding> {
    vec![
        finding(
            "suites-allowed",
            "Data is encrypted with an allowed AES-256-class suite",
            &["CC6.1", "CC6.7"],
            &["164.312(a)(2)(iv)", "164.312(e)(2)(ii)"],
            suites(facts),
        ),
        finding(
            "keys-rotate",
            "Every key rotates within the policy's period",
            &["CC6.1"],
            &["164.312(a)(2)(iv)"],
            rotation(facts),
        ),
        finding(
            "data-follows-rotation",
            "No data is more versions behind its key's current version than the policy allows",
            &["CC6.1", "CC6.7"],
            &["164.312(a)(2)(iv)"],
            versions_behind(facts),
        ),
        finding(
            "no-data-under-retired-versions",
            "No data is under a disabled or destroyed key version",
            &["CC6.1", "A1.2"],
            &["164.312(a)(2)(iv)", "164.308(a)(7)(ii)(A)"],
            retired_versions(facts),
        ),
        finding(
            "data-readable-and-labeled",
            "Every stored value is a readable envelope ciphertext whose version label is true",
            &["CC6.1", "PI1.2"],
            &["164.312(c)(1)"],
            readable(facts),
        ),
        finding(
            "key-committing",
            "No value is in a non-key-committing form",
            &["CC6.1"],
            &["164.312(c)(1)", "164.312(c)(2)"],
            committing(facts),
        ),
        finding(
            "key-use-log-continuous",
            "The key-use log verifies, has no gaps and covers the window",
            &["CC7.2", "CC4.1"],
            &["164.312(b)", "164.316(b)(2)(i)"],
            log(facts),
        ),
        finding(
            "database-tls",
            "Database connections are encrypted",
            &["CC6.7"],
            &["164.312(e)(1)", "164.312(e)(2)(ii)"],
            tls(facts),
        ),
        finding(
            "keyring-file-mode",
            "Local keyring files are readable by their owner only",
            &["CC6.1"],
            &["164.312(a)(1)"],
            keyring_modes(facts),
        ),
    ]
}

fn suites(facts: &Facts) -> Outcome {
    let mut failures = Vec::new();
    let mut checked = 0;
    for store in &facts.stores {
        for (g, c) in &store.census.groups {
            checked += 1;
            if !facts.policy.allowed_suites.contains(&g.suite) {
                failures.push(format!(
                    "{} values in {} under {}",
                    c.count, store.name, g.suite
                ));
            }
        }
    }
    judged(
        failures,
        checked,
        "stores",
        format!(
            "all data under {}",
            facts.policy.allowed_suites.join(" or ")
        ),
    )
}

fn rotation(facts: &Facts) -> Outcome {
    let limit = Duration::from_secs(facts.policy.max_rotation_days * 86_400);
    let now = UNIX_EPOCH + Duration::from_millis(facts.generated_at);
    let mut failures = Vec::new();
    for k in &facts.keys {
        let d = match &k.description {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{}: cannot describe: {e}", k.uri));
                continue;
            }
        };
        let scheduled = d.rotation.automatic && d.rotation.period.is_some_and(|p| p <= limit);
        let last = d.rotation.last_rotated.or_else(|| {
            let current = d.current_version.as_deref()?;
            d.versions
                .iter()
                .find(|v| v.version == current)
                .and_then(|v| v.created_at)
        });
        let recent = last.is_some_and(|t| now.duration_since(t).unwrap_or_default() <= limit);
        if !(scheduled || recent) {
            failures.push(format!(
                "{}: {}",
                k.uri,
                match last {
                    Some(t) => format!(
                        "no rotation schedule within {} days, and the current version is {} days old",
                        facts.policy.max_rotation_days,
                        now.duration_since(t).unwrap_or_default().as_secs() / 86_400
                    ),
                    None => "no rotation schedule and no rotation date reported".into(),
                }
            ));
        }
    }
    judged(
        failures,
        facts.keys.len(),
        "keys",
        format!(
            "every key rotates within {} days",
            facts.policy.max_rotation_days
        ),
    )
}

fn versions_behind(facts: &Facts) -> Outcome {
    let data = data_by_version(facts);
    let mut failures = Vec::new();
    let mut checked = 0;
    for k in &facts.keys {
        let Ok(d) = &k.description else { continue };
        let Some(current) = &d.current_version else {
            continue;
        };
        let order = versions_in_order(d);
        let Some(at) = order.iter().position(|v| v == current) else {
            continue;
        };
        checked += 1;
        for ((provider, key_id, version), count) in &data {
            if *provider != k.provider || *key_id != k.key_id || *count == 0 {
                continue;
            }
            let behind = order
                .iter()
                .position(|v| v == version)
                .map_or(u64::MAX, |i| at.saturating_sub(i) as u64);
            if behind > facts.policy.max_versions_behind {
                failures.push(format!(
                    "{count} value(s) under {} version {version}, {} behind the current version {current} (rewrap them)",
                    k.key_id,
                    if behind == u64::MAX { "unknown versions".to_owned() } else { format!("{behind} version(s)") }
                ));
            }
        }
    }
    judged(
        failures,
        if data.is_empty() { 0 } else { checked },
        "keys with data",
        format!(
            "all data within {} version(s) of its key's current version",
            facts.policy.max_versions_behind
        ),
    )
}

fn retired_versions(facts: &Facts) -> Outcome {
    let data = data_by_version(facts);
    let mut failures = Vec::new();
    let mut checked = 0;
    for k in &facts.keys {
        let Ok(d) = &k.description else { continue };
        checked += 1;
        for v in &d.versions {
            let retired = matches!(
                v.state,
                KeyVersionState::Disabled
                    | KeyVersionState::Destroyed
                    | KeyVersionState::PendingDestruction
            );
            let count = data
                .get(&(k.provider.clone(), k.key_id.clone(), v.version.clone()))
                .copied()
                .unwrap_or(0);
            if retired && count > 0 {
                failures.push(format!(
                    "{count} value(s) under {} version {} ({})",
                    k.key_id,
                    v.version,
                    crate::key_description::state_name(&v.state)
                ));
            }
        }
    }
    for store in &facts.stores {
        for kind in ["key_version_destroyed", "key_version_disabled"] {
            if let Some((n, samples)) = store.census.unreadable.get(kind) {
                failures.push(format!(
                    "{n} value(s) in {} fail with {kind}: {}",
                    store.name,
                    samples.join(", ")
                ));
            }
        }
    }
    judged(
        failures,
        checked,
        "keys",
        "no data under a disabled or destroyed version".into(),
    )
}

fn readable(facts: &Facts) -> Outcome {
    let mut failures = Vec::new();
    for store in &facts.stores {
        for (kind, (n, samples)) in &store.census.unreadable {
            failures.push(format!(
                "{n} unreadable value(s) in {} ({kind}): {}",
                store.name,
                samples.join(", ")
            ));
        }
        for (k, (n, samples)) in &store.census.mislabeled {
            failures.push(format!(
                "{n} value(s) in {} labeled version {} but wrapped under {}: {}",
                store.name,
                k.labeled,
                k.actual,
                samples.join(", ")
            ));
        }
    }
    let scanned: u64 = facts.stores.iter().map(|s| s.census.scanned).sum();
    judged(
        failures,
        facts.stores.len(),
        "stores",
        format!("{scanned} values read, all readable and truly labeled"),
    )
}

fn committing(facts: &Facts) -> Outcome {
    let mut failures = Vec::new();
    for store in &facts.stores {
        if let Some((n, samples)) = store.census.weaker.get("not_key_committing") {
            failures.push(format!(
                "{n} compact version 2 value(s) in {}: {} (re-encrypt them)",
                store.name,
                samples.join(", ")
            ));
        }
    }
    judged(
        failures,
        facts.stores.len(),
        "stores",
        "every value is key-committing".into(),
    )
}

fn log(facts: &Facts) -> Outcome {
    let Some(log) = &facts.log else {
        return if facts.policy.require_log {
            (
                Status::Fail,
                "no key-use log was given (--log), and the policy requires one".into(),
                Vec::new(),
            )
        } else {
            (
                Status::NotApplicable,
                "no key-use log named".into(),
                Vec::new(),
            )
        };
    };
    let r = &log.report;
    let mut failures = Vec::new();
    if let Some(d) = &r.damage {
        failures.push(format!("the log is damaged: {d}"));
    }
    for g in &r.gaps {
        failures.push(format!(
            "{} event(s) lost before seq {} ({}): {}",
            g.count, g.seq, g.time, g.reason
        ));
    }
    let first = r
        .first_time
        .as_deref()
        .and_then(envelope_audit::parse_rfc3339);
    match first {
        Some(t) if t > facts.window.0 => failures.push(format!(
            "the log begins at {}, after the window's start {}",
            envelope_audit::rfc3339_millis(t),
            envelope_audit::rfc3339_millis(facts.window.0)
        )),
        None => failures.push("the log is empty".into()),
        _ => {}
    }
    if failures.is_empty() {
        (
            Status::Pass,
            format!(
                "{} lines, {} signed checkpoints verified ({}), no gaps",
                r.lines,
                r.checkpoints,
                r.status()
            ),
            Vec::new(),
        )
    } else {
        (Status::Fail, failures[0].clone(), failures)
    }
}

fn tls(facts: &Facts) -> Outcome {
    let mut failures = Vec::new();
    let mut checked = 0;
    for store in &facts.stores {
        let Some(c) = &store.connection else { continue };
        checked += 1;
        let plaintext = facts.policy.require_tls && !c.encrypted;
        let unverified = facts.policy.require_verified_server && !c.server_verified;
        if plaintext || unverified {
            failures.push(format!("{}: {c}", store.name));
        }
    }
    judged(
        failures,
        checked,
        "database connections",
        "every database connection is encrypted".into(),
    )
}

fn keyring_modes(facts: &Facts) -> Outcome {
    let allowed = facts.policy.keyring_mode().unwrap_or(0o600);
    let mut failures = Vec::new();
    for (path, mode) in &facts.keyring_files {
        match mode {
            Ok(m) if m & !allowed == 0 => {}
            Ok(m) => failures.push(format!(
                "{}: mode {m:o}, more than {allowed:o}",
                path.display()
            )),
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    judged(
        failures,
        facts.keyring_files.len(),
        "keyring files",
        format!("every keyring file is mode {allowed:o} or tighter"),
    )
}
