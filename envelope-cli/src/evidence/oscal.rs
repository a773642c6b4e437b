//! The findings as an OSCAL 1.1 `assessment-results` document: one result over the window,
//! one observation per finding (its facts), one OSCAL finding per PASS or FAIL, targeting
//! each SOC 2 criterion and HIPAA safeguard it serves (`satisfied` / `not-satisfied`).
//! N/A findings are observations only.

use envelope_audit::rfc3339_millis;
use rand::RngCore;
use serde_json::{Value, json};

use super::Facts;
use super::findings::{Finding, Status};

/// The OSCAL version the document declares.
pub const OSCAL_VERSION: &str = "1.1.2";

fn uuid() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A reference as an OSCAL control id (an XML NCName token): SOC 2 `CC6.1` →
/// `soc2-cc6.1`, HIPAA `164.312(a)(2)(iv)` → `hipaa-164.312.a.2.iv`.
pub fn control_id(reference: &str) -> String {
    let lower = reference.to_ascii_lowercase();
    if lower.starts_with(|c: char| c.is_ascii_digit()) {
        let dotted: String = lower.replace(")(", ".").replace('(', ".").replace(')', "");
        format!("hipaa-{dotted}")
    } else {
        format!("soc2-{lower}")
    }
}

/// The document.
pub fn assessment_results(facts: &Facts, findings: &[Finding]) -> Value {
    let now = rfc3339_millis(facts.generated_at);
    let mut controls: Vec<String> = findings
        .iter()
        .flat_map(|f| f.soc2.iter().chain(f.hipaa))
        .map(|c| control_id(c))
        .collect();
    controls.sort();
    debug_assert!(controls.iter().all(|c| !c.contains(['(', ')', ' '])));
    controls.dedup();
    let mut observations = Vec::new();
    let mut oscal_findings = Vec::new();
    for f in findings {
        let observation = uuid();
        let mut description = format!("{}: {}", f.status.as_str(), f.detail);
        for e in f.evidence.iter().take(20) {
            description.push_str(&format!("\n- {e}"));
        }
        observations.push(json!({
            "uuid": observation,
            "title": f.title,
            "description": description,
            "methods": ["TEST"],
            "types": ["finding"],
            "props": [{"name": "envelope-finding-id", "ns": "https://envelope.invalid/ns/oscal", "value": f.id}],
            "collected": now,
        }));
        if f.status == Status::NotApplicable {
            continue;
        }
        for control in f.soc2.iter().chain(f.hipaa) {
            oscal_findings.push(json!({
                "uuid": uuid(),
                "title": format!("{} ({control})", f.title),
                "description": f.detail,
                "props": [
                    {"name": "envelope-finding-id", "ns": "https://envelope.invalid/ns/oscal", "value": f.id},
                    {"name": "reference", "ns": "https://envelope.invalid/ns/oscal", "value": control},
                ],
                "target": {
                    "type": "objective-id",
                    "target-id": control_id(control),
                    "status": {
                        "state": if f.status == Status::Pass { "satisfied" } else { "not-satisfied" },
                    },
                },
                "related-observations": [{"observation-uuid": observation}],
            }));
        }
    }
    json!({
        "assessment-results": {
            "uuid": uuid(),
            "metadata": {
                "title": "envelope encryption evidence",
                "last-modified": now,
                "version": "1",
                "oscal-version": OSCAL_VERSION,
            },
            "import-ap": {"href": "#envelope-encryption-assessment-plan"},
            "results": [{
                "uuid": uuid(),
                "title": "Encryption at rest, key management and key-use logging",
                "description": format!(
                    "Evidence produced by `envelope evidence` over {} to {}: key inventory from the KMS, a census of every store, job history and the verified key-use log, judged against the policy.",
                    rfc3339_millis(facts.window.0),
                    rfc3339_millis(facts.window.1)
                ),
                "start": rfc3339_millis(facts.window.0),
                "end": rfc3339_millis(facts.window.1),
                "reviewed-controls": {
                    "control-selections": [{
                        "include-controls": controls.iter().map(|c| json!({"control-id": c})).collect::<Vec<_>>(),
                    }],
                },
                "observations": observations,
                "findings": oscal_findings,
            }],
        }
    })
}
