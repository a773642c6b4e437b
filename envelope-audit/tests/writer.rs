//! The writer against real files: the chain continues across restarts; an envelope's KMS
//! calls and cache use arrive as lines with no secret in them; a full disk (a small tmpfs)
//! blocks or counts per the policy, and nothing is lost silently.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use envelope_audit::{AuditLog, FailurePolicy, KeyFileSigner, SinkConfig, VerifierKey, verify_dir};
use envelope_core::{BlockingEnvelope, CachePolicy, Envelope, KeyUseLog, LocalKeyring, LocalKms};
use serde_json::{Map, Value, json};

fn signer(dir: &Path) -> Arc<KeyFileSigner> {
    Arc::new(KeyFileSigner::generate("writer-test", &dir.join("signing.key")).unwrap())
}

fn event(i: u64) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("op".into(), json!("finish"));
    body.insert("job".into(), json!(format!("job-{i:06}")));
    body
}

fn all_lines(dir: &Path) -> Vec<Value> {
    envelope_audit::segments::list(dir)
        .unwrap()
        .iter()
        .flat_map(|p| envelope_audit::segments::read(p).unwrap().lines)
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect()
}

#[test]
fn the_chain_continues_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(dir.path());
    let key = VerifierKey::of(&*signer).unwrap();
    let log_dir = dir.path().join("log");
    let mut name = None;
    for run in 0..3u64 {
        let log = AuditLog::builder(SinkConfig::file(&log_dir), signer.clone())
            .checkpoint_every(4)
            .open()
            .unwrap();
        if let Some(n) = &name {
            assert_eq!(log.name(), n, "a restarted writer keeps the log's name");
        }
        name = Some(log.name().to_owned());
        for i in 0..10 {
            log.record("job", event(run * 10 + i)).unwrap();
        }
        log.close().unwrap();
    }
    let report = verify_dir(&log_dir, &key, None).unwrap();
    assert_eq!(report.status(), "verified", "{}", report.render());
    assert_eq!(report.segments, 3);
    assert_eq!(report.starts.len(), 3);
    assert_eq!(report.starts[0].previous_clean, None);
    assert_eq!(report.starts[1].previous_clean, Some(true));
    assert_eq!(report.jobs.len(), 30);
}

#[test]
fn size_rotation_closes_each_segment_with_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(dir.path());
    let key = VerifierKey::of(&*signer).unwrap();
    let log_dir = dir.path().join("log");
    let sink = SinkConfig::File {
        dir: log_dir.clone(),
        max_bytes: 4096,
        max_age: Duration::from_secs(3600),
    };
    let log = AuditLog::builder(sink, signer).open().unwrap();
    for i in 0..200 {
        log.record("job", event(i)).unwrap();
    }
    log.close().unwrap();
    let segments = envelope_audit::segments::list(&log_dir).unwrap();
    assert!(segments.len() > 5, "{} segments", segments.len());
    for path in &segments {
        let last = envelope_audit::segments::read(path)
            .unwrap()
            .lines
            .pop()
            .unwrap();
        assert!(
            last.contains(r#""type":"checkpoint""#),
            "{path:?} ends with {last}"
        );
    }
    let report = verify_dir(&log_dir, &key, None).unwrap();
    assert_eq!(report.status(), "verified", "{}", report.render());
}

const KEK: &[u8; 32] = b"KEK-CANARY-0123456789abcdefghij!";
const PLAINTEXT: &[u8] = b"PLAINTEXT-CANARY-4111111111111111";
const AAD: &[u8] = b"AAD-CANARY-patients.card#7";

#[test]
fn an_envelope_reports_kms_calls_and_cache_use_and_no_secret_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(dir.path());
    let key = VerifierKey::of(&*signer).unwrap();
    let keyring_path = dir.path().join("keyring.json");
    let keyring_json = json!({
        "envelope_keyring": 1,
        "keys": { "default": { "primary_version": 1, "versions": [
            { "version": 1, "state": "enabled", "created_at": 0,
              "material": base64::engine::general_purpose::STANDARD.encode(KEK) } ] } }
    });
    std::fs::write(&keyring_path, keyring_json.to_string()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keyring_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let keyring = LocalKeyring::new(&keyring_path);

    let log_dir = dir.path().join("log");
    let log = AuditLog::builder(SinkConfig::file(&log_dir), signer)
        .actor("billing-api")
        .open()
        .unwrap();
    let build = |policy: CachePolicy| {
        BlockingEnvelope::new(
            Envelope::builder(LocalKms::new(keyring.clone()), "default")
                .cache_policy(policy)
                .key_use_log(Arc::new(log.clone()))
                .audit_label("patients.card")
                .build()
                .unwrap(),
        )
        .unwrap()
    };
    let writer = build(CachePolicy::default());
    let cts: Vec<Vec<u8>> = (0..100)
        .map(|_| writer.encrypt(PLAINTEXT, AAD).unwrap())
        .collect();
    let reader = build(CachePolicy::default());
    for ct in &cts {
        assert_eq!(reader.decrypt(ct, AAD).unwrap(), PLAINTEXT);
    }
    // A failure is logged with its kind.
    assert!(reader.decrypt(&cts[0][..40], AAD).is_err());
    keyring.rotate("default").unwrap();
    keyring.destroy_version("default", 1).unwrap();
    let cold = build(CachePolicy::disabled());
    assert!(cold.decrypt(&cts[0], AAD).is_err());
    let fingerprint = Envelope::inspect(&cts[0]).unwrap().dek_fingerprint;
    drop((writer, reader, cold));
    log.close().unwrap();

    let report = verify_dir(&log_dir, &key, None).unwrap();
    assert_eq!(report.status(), "verified", "{}", report.render());
    let lines = all_lines(&log_dir);
    let kms: Vec<&Value> = lines.iter().filter(|l| l["type"] == "kms").collect();
    let generate = kms.iter().find(|l| l["op"] == "generate").unwrap();
    assert_eq!(generate["version"], "1");
    assert_eq!(generate["dek"], fingerprint.as_str());
    assert_eq!(generate["provider"], "local");
    assert_eq!(generate["label"], "patients.card");
    assert_eq!(generate["actor"], "billing-api");
    assert!(
        kms.iter()
            .any(|l| l["op"] == "unwrap" && l["outcome"] == "ok")
    );
    assert!(
        kms.iter()
            .any(|l| l["op"] == "unwrap" && l["outcome"] == "key_version_destroyed"),
        "{kms:?}"
    );
    let cached = |op: &str| -> u64 {
        lines
            .iter()
            .filter(|l| l["type"] == "cache" && l["op"] == op && l["dek"] == fingerprint.as_str())
            .map(|l| l["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(cached("encrypt"), 100);
    assert_eq!(cached("decrypt"), 100);
    let day = report.usage.values().next().unwrap();
    assert_eq!(day.cached_encrypts, 100);

    // No plaintext, KEK, DEK or AAD in any encoding, anywhere in the files.
    let files: String = envelope_audit::segments::list(&log_dir)
        .unwrap()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    for secret in [&KEK[..], PLAINTEXT, AAD] {
        for form in [
            String::from_utf8_lossy(&secret[..10]).into_owned(),
            hex::encode(&secret[..12]),
            b64.encode(&secret[..12])[..16].to_owned(),
        ] {
            assert!(!files.contains(&form), "{form} reached the log");
        }
    }
}

/// A 96 KiB tmpfs mounted for the test (the real ENOSPC of a full disk), unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=96k", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount(8)");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (the test suite runs as root in CI)"
        );
        SmallDisk { dir }
    }

    /// Fills the disk but `room` bytes.
    fn fill(&self, room: u64) -> std::path::PathBuf {
        let filler = self.dir.path().join("filler");
        let stat = nix_free(self.dir.path());
        std::fs::write(&filler, vec![0u8; stat.saturating_sub(room) as usize]).unwrap();
        filler
    }
}

fn nix_free(path: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_under_block_fails_operations_closed_and_loses_nothing() {
    let keys = tempfile::tempdir().unwrap();
    let signer = signer(keys.path());
    let key = VerifierKey::of(&*signer).unwrap();
    let disk = SmallDisk::mount();
    let log_dir = disk.dir.path().join("log");
    let log = AuditLog::builder(SinkConfig::file(&log_dir), signer)
        .policy(FailurePolicy::Block {
            timeout: Duration::from_millis(300),
        })
        .queue(16)
        .open()
        .unwrap();
    let filler = disk.fill(4096);
    let mut accepted = 0u64;
    let refused = loop {
        match log.record("job", event(accepted)) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 10_000, "the log never refused an event");
    };
    assert!(refused.to_string().contains("No space left"), "{refused}");
    // The hot path fails closed too.
    let err = KeyUseLog::admit(&log).unwrap_err();
    assert_eq!(err.kind(), envelope_core::ErrorKind::AuditLog);
    // Room again: the writer recovers and writes every accepted event.
    std::fs::remove_file(filler).unwrap();
    log.sync().unwrap();
    KeyUseLog::admit(&log).unwrap();
    log.record("job", event(99_999)).unwrap();
    log.close().unwrap();
    let report = verify_dir(&log_dir, &key, None).unwrap();
    assert!(report.damage.is_none(), "{}", report.render());
    assert!(report.gaps.is_empty(), "{}", report.render());
    assert_eq!(
        report.jobs.len() as u64,
        accepted + 1,
        "{}",
        report.render()
    );
    assert!(
        report.segments >= 2,
        "the writer began a new segment after the failed write"
    );
}

#[test]
fn a_full_disk_under_count_never_blocks_and_the_gap_is_counted_exactly() {
    let keys = tempfile::tempdir().unwrap();
    let signer = signer(keys.path());
    let key = VerifierKey::of(&*signer).unwrap();
    let disk = SmallDisk::mount();
    let log_dir = disk.dir.path().join("log");
    let log = AuditLog::builder(SinkConfig::file(&log_dir), signer)
        .policy(FailurePolicy::Count)
        .open()
        .unwrap();
    log.sync().unwrap();
    let filler = disk.fill(2048);
    let attempted = 2000u64;
    for i in 0..attempted {
        log.record("job", event(i)).unwrap();
    }
    log.sync().unwrap();
    std::fs::remove_file(filler).unwrap();
    log.record("job", event(attempted)).unwrap();
    log.close().unwrap();
    let report = verify_dir(&log_dir, &key, None).unwrap();
    assert!(report.damage.is_none(), "{}", report.render());
    let written = report.jobs.len() as u64;
    assert!(written < attempted, "the disk was full");
    assert_eq!(
        report.lost() + written,
        attempted + 1,
        "every event is either written or counted: {}",
        report.render()
    );
    assert!(
        report.gaps[0].reason.contains("No space left"),
        "{:?}",
        report.gaps
    );
    assert!(report.render().contains("GAP:"));
}

#[test]
fn one_directory_has_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(dir.path());
    let log_dir = dir.path().join("log");
    let first = AuditLog::builder(SinkConfig::file(&log_dir), signer.clone())
        .open()
        .unwrap();
    let second = AuditLog::builder(SinkConfig::file(&log_dir), signer.clone()).open();
    assert!(second.unwrap_err().to_string().contains("another writer"));
    let weak = first.downgrade();
    assert!(weak.upgrade().is_some());
    drop(first);
    assert!(
        weak.upgrade().is_none(),
        "the weak handle does not keep the log open"
    );
    // Closed: the directory takes a writer again.
    AuditLog::builder(SinkConfig::file(&log_dir), signer)
        .open()
        .unwrap()
        .close()
        .unwrap();
}
