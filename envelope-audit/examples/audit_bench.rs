//! Helper of `scripts/bench-audit.sh` (not a benchmark by itself):
//!
//! ```text
//! audit_bench write DIR EVENTS   # a new log in DIR/log, signed by DIR/key: EVENTS kms-like
//!                                # events recorded as fast as the queue takes them
//! audit_bench verify DIR         # verifies DIR/log with DIR/key's verifier key
//! ```
//!
//! Prints one JSON object: events, seconds, events per second. `write` times from the first
//! event recorded to `close` returning (the writer sustained: every line written, checkpoints
//! signed every 1,000 lines).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use envelope_audit::{AuditLog, KeyFileSigner, SinkConfig, VerifierKey, verify_dir};
use serde_json::{Map, json};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(2).map(String::as_str).unwrap_or("."));
    match args.get(1).map(String::as_str) {
        Some("write") => {
            let events: u64 = args[3].parse().unwrap();
            let signer = KeyFileSigner::generate("bench", &dir.join("key")).unwrap();
            let log = AuditLog::builder(SinkConfig::file(dir.join("log")), Arc::new(signer))
                .open()
                .unwrap();
            let start = Instant::now();
            for i in 0..events {
                let mut body = Map::new();
                body.insert("op".into(), json!("unwrap"));
                body.insert("provider".into(), json!("local"));
                body.insert("key".into(), json!("default"));
                body.insert("version".into(), json!("3"));
                body.insert(
                    "dek".into(),
                    json!(format!("{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15))),
                );
                body.insert("count".into(), json!(1));
                body.insert("outcome".into(), json!("ok"));
                log.record("kms", body).unwrap();
            }
            log.close().unwrap();
            report(events, start);
        }
        Some("verify") => {
            let signer = KeyFileSigner::from_file(&dir.join("key")).unwrap();
            let key = VerifierKey::of(&signer).unwrap();
            let start = Instant::now();
            let r = verify_dir(&dir.join("log"), &key, None).unwrap();
            assert_eq!(r.status(), "verified", "{}", r.render());
            report(r.lines, start);
        }
        _ => eprintln!("usage: audit_bench write DIR EVENTS | verify DIR"),
    }
}

fn report(events: u64, start: Instant) {
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"events": events, "seconds": seconds, "events_per_second": events as f64 / seconds})
    );
}
