//! Every kind of damage to a log is detected and named: an edited byte, a deleted line, an
//! inserted line, two lines swapped, the end cut after a checkpoint, a replaced signature,
//! two checkpoints swapped. An untouched log verifies.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

use std::path::{Path, PathBuf};
use std::sync::Arc;

use envelope_audit::{AuditLog, DamageKind, KeyFileSigner, SinkConfig, VerifierKey, verify_dir};
use serde_json::{Map, json};

struct Log {
    _dir: tempfile::TempDir,
    path: PathBuf,
    key: VerifierKey,
}

/// A closed log of 40 events with a checkpoint every 8 lines.
fn written_log() -> Log {
    let dir = tempfile::tempdir().unwrap();
    let signer = KeyFileSigner::generate("test-log", &dir.path().join("key")).unwrap();
    let key = VerifierKey::of(&signer).unwrap();
    let path = dir.path().join("log");
    let log = AuditLog::builder(SinkConfig::file(&path), Arc::new(signer))
        .actor("tamper-test")
        .checkpoint_every(8)
        .open()
        .unwrap();
    for i in 0..40u64 {
        let mut body = Map::new();
        body.insert("op".into(), json!("start"));
        body.insert("job".into(), json!(format!("job-{i}")));
        log.record("job", body).unwrap();
        // Distinct times, for the export's window.
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    log.close().unwrap();
    Log {
        _dir: dir,
        path,
        key,
    }
}

fn segment(dir: &Path) -> PathBuf {
    let segments = envelope_audit::segments::list(dir).unwrap();
    assert_eq!(segments.len(), 1);
    segments[0].clone()
}

fn lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(segment(dir))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(dir: &Path, lines: &[String]) {
    std::fs::write(segment(dir), lines.join("\n") + "\n").unwrap();
}

fn damage(log: &Log, witness: Option<&str>) -> envelope_audit::Damage {
    let report = verify_dir(&log.path, &log.key, witness).unwrap();
    assert_eq!(report.status(), "damaged", "{}", report.render());
    report.damage.unwrap()
}

fn index_of(lines: &[String], kind: &str, nth: usize) -> usize {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains(&format!(r#""type":"{kind}""#)))
        .nth(nth)
        .unwrap()
        .0
}

#[test]
fn an_untouched_log_verifies_and_is_closed() {
    let log = written_log();
    let report = verify_dir(&log.path, &log.key, None).unwrap();
    assert_eq!(report.status(), "verified", "{}", report.render());
    // start + 40 events + stop, and a checkpoint after every 8 lines and at the end.
    assert_eq!(report.lines, 48);
    assert_eq!(report.checkpoints, 6);
    assert!(report.closed);
    assert_eq!(report.unanchored, 0);
}

#[test]
fn one_edited_byte_is_named_at_its_line() {
    let log = written_log();
    let mut l = lines(&log.path);
    assert!(l[10].contains("job-8"));
    l[10] = l[10].replace("job-8", "job-X");
    write_lines(&log.path, &l);
    let d = damage(&log, None);
    assert_eq!(d.kind, DamageKind::Edited);
    assert_eq!(d.line, 11);
    assert!(d.detail.contains("no longer hash"), "{d}");
}

#[test]
fn an_edit_that_breaks_canonical_form_is_named() {
    let log = written_log();
    let mut l = lines(&log.path);
    l[3] = l[3].replacen(':', ": ", 1);
    write_lines(&log.path, &l);
    let d = damage(&log, None);
    assert_eq!((d.kind, d.line), (DamageKind::Edited, 4));
    assert!(d.detail.contains("canonical"), "{d}");
}

#[test]
fn a_deleted_line_is_named() {
    let log = written_log();
    let mut l = lines(&log.path);
    l.remove(5);
    write_lines(&log.path, &l);
    let d = damage(&log, None);
    assert_eq!((d.kind, d.seq), (DamageKind::Deleted, 5), "{d}");
}

#[test]
fn an_inserted_line_is_named() {
    let log = written_log();
    let mut l = lines(&log.path);
    let copy = l[4].clone();
    l.insert(6, copy);
    write_lines(&log.path, &l);
    let d = damage(&log, None);
    assert_eq!(d.kind, DamageKind::Inserted, "{d}");
    assert_eq!(d.line, 7);
}

#[test]
fn two_swapped_lines_are_named() {
    let log = written_log();
    let mut l = lines(&log.path);
    l.swap(12, 13);
    write_lines(&log.path, &l);
    let d = damage(&log, None);
    assert_eq!((d.kind, d.line), (DamageKind::Reordered, 13), "{d}");
}

#[test]
fn a_log_cut_after_a_checkpoint_is_open_and_a_kept_checkpoint_names_the_truncation() {
    let log = written_log();
    let l = lines(&log.path);
    let witness: serde_json::Value = serde_json::from_str(l.last().unwrap()).unwrap();
    let witness = witness["note"].as_str().unwrap().to_owned();
    let cut = index_of(&l, "checkpoint", 2);
    write_lines(&log.path, &l[..=cut]);
    // Alone, the shortened log is a valid prefix that did not close: reported open.
    let report = verify_dir(&log.path, &log.key, None).unwrap();
    assert_eq!(report.status(), "open", "{}", report.render());
    assert!(report.render().contains("no stop line"));
    // With a checkpoint kept elsewhere, the truncation is named.
    let d = damage(&log, Some(&witness));
    assert_eq!(d.kind, DamageKind::Truncated, "{d}");
    assert!(d.detail.contains("after checkpoint 26"), "{d}");
}

#[test]
fn a_replaced_signature_is_named() {
    let log = written_log();
    let mut l = lines(&log.path);
    let at = index_of(&l, "checkpoint", 1);
    // Sign the same checkpoint with another key of the same name.
    let dir = tempfile::tempdir().unwrap();
    let other = KeyFileSigner::generate("test-log", &dir.path().join("k")).unwrap();
    let mut line: serde_json::Value = serde_json::from_str(&l[at]).unwrap();
    let note = line["note"].as_str().unwrap();
    let body = &note[..note.find("\n\n").unwrap() + 1];
    let checkpoint = envelope_audit::note::parse_body(body).unwrap();
    line["note"] = json!(checkpoint.sign(&other).unwrap());
    l[at] = envelope_audit::canonical::to_canonical(&line).unwrap();
    write_lines(&log.path, &l);
    let d = damage(&log, None);
    assert_eq!((d.kind, d.line), (DamageKind::BadSignature, at + 1), "{d}");
}

#[test]
fn two_swapped_checkpoints_are_named() {
    let log = written_log();
    let mut l = lines(&log.path);
    let (a, b) = (index_of(&l, "checkpoint", 1), index_of(&l, "checkpoint", 3));
    l.swap(a, b);
    write_lines(&log.path, &l);
    let d = damage(&log, None);
    assert_eq!((d.kind, d.line), (DamageKind::Reordered, a + 1), "{d}");
}

#[test]
fn a_rewritten_and_rechained_history_fails_at_the_next_checkpoint() {
    // Someone with write access edits a line and recomputes every later prev and seq:
    // the chain is whole again, but the signed root no longer matches.
    let log = written_log();
    let l = lines(&log.path);
    let mut values: Vec<serde_json::Value> =
        l.iter().map(|s| serde_json::from_str(s).unwrap()).collect();
    values[3]["job"] = json!("forged");
    let mut out = Vec::new();
    let mut prev = values[0]["prev"].as_str().unwrap().to_owned();
    for v in &mut values {
        v["prev"] = json!(prev);
        let text = envelope_audit::canonical::to_canonical(v).unwrap();
        prev = hex::encode(envelope_audit::merkle::line_hash(text.as_bytes()));
        out.push(text);
    }
    write_lines(&log.path, &out);
    let d = damage(&log, None);
    assert_eq!(d.kind, DamageKind::Edited, "{d}");
    assert!(d.detail.contains("signed root"), "{d}");
    assert_eq!(d.line, index_of(&l, "checkpoint", 0) + 1);
}

#[test]
fn a_verifier_key_of_another_signer_fails_every_checkpoint() {
    let log = written_log();
    let dir = tempfile::tempdir().unwrap();
    let other = KeyFileSigner::generate("test-log", &dir.path().join("k")).unwrap();
    let report = verify_dir(&log.path, &VerifierKey::of(&other).unwrap(), None).unwrap();
    assert_eq!(report.damage.unwrap().kind, DamageKind::BadSignature);
}

#[test]
fn an_export_verifies_on_its_own_with_its_consistency_proofs() {
    let log = written_log();
    let report = verify_dir(&log.path, &log.key, None).unwrap();
    let l = lines(&log.path);
    let time = |i: usize| {
        let v: serde_json::Value = serde_json::from_str(&l[i]).unwrap();
        envelope_audit::parse_rfc3339(v["time"].as_str().unwrap()).unwrap()
    };
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("export");
    let summary = envelope_audit::export(&log.path, &log.key, time(20), time(30), &target).unwrap();
    assert!(
        summary.first_seq <= 20 && summary.last_seq >= 30,
        "{summary:?}"
    );
    assert!(summary.checkpoints >= 2);
    let exported = verify_dir(&target, &log.key, None).unwrap();
    assert!(exported.damage.is_none(), "{}", exported.render());
    assert_eq!(exported.lines, summary.lines);
    let proofs = envelope_audit::export::verify_proofs(&target, &log.key).unwrap();
    assert_eq!(proofs, summary.checkpoints - 1);
    // The kept checkpoint is a witness for the whole log.
    let witness = std::fs::read_to_string(target.join("checkpoint")).unwrap();
    assert!(
        verify_dir(&log.path, &log.key, Some(&witness))
            .unwrap()
            .damage
            .is_none()
    );
    assert_eq!(report.checkpoints, 6);

    // A proof that does not hold is refused.
    let manifest_path = target.join("export.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["consistency"][0]["proof"][0] = json!(base64_of_zeros());
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    assert!(
        envelope_audit::export::verify_proofs(&target, &log.key)
            .unwrap_err()
            .contains("does not extend")
    );
}

fn base64_of_zeros() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([0u8; 32])
}
