//! Windows of a log for off-host storage: the lines of a time window, widened to the
//! checkpoints around it, with every checkpoint's note and the RFC 6962 consistency
//! proofs between successive ones. The export is itself a log that `verify_dir` checks
//! (it begins at a signed checkpoint), and [`verify_proofs`] checks its proofs.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::AuditError;
use crate::merkle::{Hash, consistency_proof, verify_consistency};
use crate::note::VerifierKey;
use crate::segments::OpenSegment;
use crate::time::{parse_rfc3339, rfc3339_millis};
use crate::verify::Report;

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportSummary {
    /// The first and last sequence numbers written.
    pub first_seq: u64,
    /// See `first_seq`.
    pub last_seq: u64,
    /// Lines written.
    pub lines: u64,
    /// Checkpoints in the export.
    pub checkpoints: usize,
}

/// Exports the lines of `dir` whose time is in `from..=to` (Unix milliseconds), widened
/// back to the checkpoint before `from` and forward to the first checkpoint at or after
/// `to`, into `out` (a new or empty directory): one segment, `export.json` (checkpoints
/// and consistency proofs) and `checkpoint` (the last checkpoint's note, a witness for
/// later verifications of the source log). Refuses a log that does not verify.
pub fn export(
    dir: &Path,
    key: &VerifierKey,
    from: u64,
    to: u64,
    out: &Path,
) -> Result<ExportSummary, AuditError> {
    let report = crate::verify::verify_segments_keeping_lines(&crate::verify::read_all(dir)?, key);
    if let Some(damage) = &report.damage {
        return Err(AuditError::Corrupt(format!(
            "the log does not verify, nothing exported: {damage}"
        )));
    }
    let times: Vec<u64> = report
        .texts
        .iter()
        .map(|t| {
            serde_json::from_str::<Value>(t)
                .ok()
                .and_then(|v| {
                    v.get("time")
                        .and_then(Value::as_str)
                        .and_then(parse_rfc3339)
                })
                .unwrap_or(0)
        })
        .collect();
    let cps: Vec<usize> = report.checkpoint_lines.iter().map(|(i, _)| *i).collect();
    let Some(&last_cp) = cps.last() else {
        return Err(AuditError::Config(
            "the log has no checkpoint yet: nothing can be exported with proofs".into(),
        ));
    };
    let first = cps
        .iter()
        .rev()
        .find(|&&i| times[i] <= from)
        .copied()
        .unwrap_or(0);
    let last = cps
        .iter()
        .find(|&&i| times[i] >= to && i >= first)
        .copied()
        .unwrap_or(last_cp);
    if last < first {
        return Err(AuditError::Config(
            "the window holds no anchored lines".into(),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| AuditError::io(out, e))?;
    if std::fs::read_dir(out)
        .map_err(|e| AuditError::io(out, e))?
        .next()
        .is_some()
    {
        return Err(AuditError::Config(format!(
            "{}: give a new or empty directory",
            out.display()
        )));
    }
    let first_seq = report.base + first as u64;
    let mut segment =
        OpenSegment::create(out, first_seq, times[first]).map_err(|e| AuditError::io(out, e))?;
    for text in &report.texts[first..=last] {
        segment.append(text).map_err(|e| AuditError::io(out, e))?;
    }
    segment.sync().map_err(|e| AuditError::io(out, e))?;
    let in_export: Vec<&(usize, crate::note::Checkpoint)> = report
        .checkpoint_lines
        .iter()
        .filter(|(i, _)| (first..=last).contains(i))
        .collect();
    let notes: Vec<String> = in_export
        .iter()
        .map(|(i, _)| note_of(&report, *i))
        .collect();
    let mut proofs = Vec::new();
    for pair in in_export.windows(2) {
        let (a, b) = (&pair[0].1, &pair[1].1);
        proofs.push(json!({
            "from_size": a.size,
            "to_size": b.size,
            "proof": proof(&report, a.size, b.size),
        }));
    }
    let manifest = json!({
        "log": report.log,
        "window": {"from": rfc3339_millis(from), "to": rfc3339_millis(to)},
        "first_seq": first_seq,
        "last_seq": report.base + last as u64,
        "verifier_key": key.to_string(),
        "checkpoints": notes,
        "consistency": proofs,
    });
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| AuditError::io(&path, e))
    };
    write(
        "export.json",
        serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n",
    )?;
    write("checkpoint", note_of(&report, last_cp))?;
    Ok(ExportSummary {
        first_seq,
        last_seq: report.base + last as u64,
        lines: (last - first + 1) as u64,
        checkpoints: in_export.len(),
    })
}

fn note_of(report: &Report, index: usize) -> String {
    serde_json::from_str::<Value>(&report.texts[index])
        .ok()
        .and_then(|v| v.get("note").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn proof(report: &Report, from: u64, to: u64) -> Vec<String> {
    // Leaves are indexed from the report's base; proofs need the log from line 0.
    if report.base != 0 {
        return Vec::new();
    }
    consistency_proof(from as usize, &report.leaves[..to as usize])
        .iter()
        .map(|h| B64.encode(h))
        .collect()
}

/// Checks the consistency proofs of an export directory's `export.json` against its
/// checkpoints (each signed by `key`): returns how many proofs verified.
pub fn verify_proofs(dir: &Path, key: &VerifierKey) -> Result<usize, String> {
    let path = dir.join("export.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest: Value = serde_json::from_str(&text).map_err(|e| format!("export.json: {e}"))?;
    let mut roots = std::collections::HashMap::new();
    for note in manifest["checkpoints"].as_array().into_iter().flatten() {
        let c = key
            .verify(note.as_str().unwrap_or(""))
            .map_err(|p| format!("export.json checkpoint: {p}"))?;
        roots.insert(c.size, c.root);
    }
    let mut verified = 0;
    for p in manifest["consistency"].as_array().into_iter().flatten() {
        let (a, b) = (p["from_size"].as_u64(), p["to_size"].as_u64());
        let (Some(a), Some(b)) = (a, b) else {
            return Err("export.json: a proof without sizes".into());
        };
        let (Some(ra), Some(rb)) = (roots.get(&a), roots.get(&b)) else {
            return Err(format!(
                "export.json: no signed checkpoint for a proof {a} -> {b}"
            ));
        };
        let hashes: Option<Vec<Hash>> = p["proof"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                h.as_str()
                    .and_then(|s| B64.decode(s).ok())
                    .and_then(|b| <Hash>::try_from(b.as_slice()).ok())
            })
            .collect();
        let hashes = hashes.ok_or("export.json: a proof is not base64 hashes")?;
        if !verify_consistency(a, b, ra, rb, &hashes) {
            return Err(format!(
                "the tree of {b} lines does not extend the tree of {a} lines (consistency proof fails)"
            ));
        }
        verified += 1;
    }
    Ok(verified)
}
