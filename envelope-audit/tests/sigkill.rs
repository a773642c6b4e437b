//! A writer killed with SIGKILL mid-stream: the prefix verifies, the tail after the last
//! checkpoint is reported open (not damaged), and a restarted writer continues the chain.
//!
//! One binary, two roles (`harness = false`): run plainly it is the test; with
//! `ENVELOPE_AUDIT_CHILD=DIR` it is the writer that gets killed.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envelope_audit::{AuditLog, KeyFileSigner, SinkConfig, VerifierKey, verify_dir};
use serde_json::{Map, json};

fn main() -> ExitCode {
    if let Ok(dir) = std::env::var("ENVELOPE_AUDIT_CHILD") {
        child(Path::new(&dir));
    }
    match std::panic::catch_unwind(parent) {
        Ok(()) => {
            println!(
                "test a_killed_writer_leaves_a_verifiable_prefix_and_the_chain_continues ... ok"
            );
            ExitCode::SUCCESS
        }
        Err(_) => ExitCode::FAILURE,
    }
}

/// Writes events as fast as it can until killed.
fn child(dir: &Path) -> ! {
    let signer = KeyFileSigner::from_file(&dir.join("signing.key")).expect("signing key");
    let log = AuditLog::builder(SinkConfig::file(dir.join("log")), Arc::new(signer))
        .checkpoint_every(50)
        .open()
        .expect("open the log");
    for i in 0u64.. {
        let mut body = Map::new();
        body.insert("op".into(), json!("finish"));
        body.insert("job".into(), json!(format!("job-{i}")));
        log.record("job", body).expect("record");
        if i % 64 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    unreachable!()
}

fn lines_written(dir: &Path) -> usize {
    envelope_audit::segments::list(dir)
        .map(|s| {
            s.iter()
                .map(|p| envelope_audit::segments::read(p).map_or(0, |s| s.lines.len()))
                .sum()
        })
        .unwrap_or(0)
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let signer = KeyFileSigner::generate("sigkill-test", &dir.path().join("signing.key")).unwrap();
    let key = VerifierKey::of(&signer).unwrap();
    let log_dir = dir.path().join("log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("ENVELOPE_AUDIT_CHILD", dir.path())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while lines_written(&log_dir) < 5_000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the child wrote too slowly"
        );
        assert!(child.try_wait().unwrap().is_none(), "the child exited");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL: no destructor, no final checkpoint.
    child.kill().unwrap();
    child.wait().unwrap();

    let report = verify_dir(&log_dir, &key, None).unwrap();
    assert!(report.damage.is_none(), "{}", report.render());
    assert_eq!(report.status(), "open", "{}", report.render());
    assert!(!report.closed);
    assert!(report.checkpoints >= 100, "{}", report.render());
    assert!(
        report.unanchored < 50 + 1,
        "at most one checkpoint interval is unanchored"
    );
    println!(
        "killed after {} lines: {}",
        report.lines,
        report.render().trim_end()
    );

    // A restarted writer continues the chain and says how the last run ended.
    let log = AuditLog::builder(SinkConfig::file(&log_dir), Arc::new(signer))
        .open()
        .unwrap();
    log.record("job", Map::new()).unwrap();
    log.close().unwrap();
    let after = verify_dir(&log_dir, &key, None).unwrap();
    assert_eq!(after.status(), "verified", "{}", after.render());
    assert_eq!(
        after.lines,
        report.lines + 4,
        "start, the event, stop, checkpoint"
    );
    let restart = after.starts.last().unwrap();
    assert_eq!(restart.previous_clean, Some(false));
    assert_eq!(restart.torn, !after.torn.is_empty());
    assert!(after.render().contains("did not stop cleanly"));
}
