//! The evidence pack over a seeded scenario on real PostgreSQL and OpenBao: the key-use log
//! signed by an OpenBao Transit ed25519 key; a rotation and a partial rewrap give a FAIL for
//! data left under the old version; finishing the rewrap and retiring the version give a
//! PASS; both runs' facts are on the page; the OSCAL document validates.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn finding<'a>(evidence: &'a Value, id: &str) -> &'a Value {
    evidence["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn evidence_fails_on_a_partial_rewrap_and_passes_after_retire() {
    let bao = Bao::start().await;
    bao.cli(&["write", "-f", "transit/keys/orders"]);
    bao.cli(&["write", "transit/keys/audit", "type=ed25519"]);
    let key = format!("vault://{}/transit/keys/orders?http=loopback", bao.host);
    let signer = format!("vault://{}/transit/keys/audit?http=loopback", bao.host);
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("log");
    let url = pg_url();
    let client = db().await;
    let (old, new) = (unique("ev_old"), unique("ev_new"));
    let with_log = |args: &[&str]| {
        let mut c = command(args);
        c.env("VAULT_TOKEN", "private-root")
            .env("ENVELOPE_AUDIT_LOG", &log)
            .env("ENVELOPE_AUDIT_SIGNER", &signer)
            .env("ENVELOPE_AUDIT_ACTOR", "evidence-test");
        c.output().unwrap()
    };
    // The verifier key comes from OpenBao: the private key never left it.
    let public = command(&["audit", "public-key", "--signer", &signer])
        .env("VAULT_TOKEN", "private-root")
        .output()
        .unwrap();
    assert!(public.status.success(), "{public:?}");
    let public = String::from_utf8(public.stdout).unwrap().trim().to_owned();
    assert!(public.starts_with("audit+"), "{public}");

    // Two tables under version 1, written by an envelope that logs its key use.
    let env = {
        let (builder, key_id) = envelope::vault::VaultBuilder::from_env()
            .with_url(&key)
            .unwrap();
        let kms = builder.with_token("private-root").build().unwrap();
        envelope::Envelope::builder(kms, key_id)
            .cache_policy(envelope::CachePolicy::default().with_max_messages(50))
            .build()
            .unwrap()
    };
    fill_table(&client, &env, &old, 300).await;
    fill_table(&client, &env, &new, 200).await;
    let out = with_log(&["census", "--db", &url, "--table", &old, "--column", "ssn"]);
    assert!(out.status.success(), "{out:?}");

    // Rotate; rewrap one table only.
    bao.cli(&["write", "-f", "transit/keys/orders/rotate"]);
    let out = with_log(&[
        "rewrap", "--key", &key, "--db", &url, "--table", &new, "--column", "ssn",
    ]);
    assert!(out.status.success(), "{out:?}");

    let evidence = |out_dir: &Path| {
        let mut c = command(&[
            "evidence",
            "--out",
            out_dir.to_str().unwrap(),
            "--key",
            &key,
            "--db",
            &url,
            "--column",
            &format!("{old}.ssn"),
            "--column",
            &format!("{new}.ssn"),
            "--log",
            log.to_str().unwrap(),
            "--public-key",
            &public,
            "--sign-with",
            &signer,
            "--from",
            "2020-01-01",
        ]);
        c.env("VAULT_TOKEN", "private-root")
            .env("ENVELOPE_AUDIT_LOG", &log)
            .env("ENVELOPE_AUDIT_SIGNER", &signer);
        c.output().unwrap()
    };

    // First run: data under version 1 remains.
    let first = work.path().join("first");
    let out = evidence(&first);
    assert_eq!(out.status.code(), Some(7), "findings failed: {out:?}");
    let json = read_json(&first.join("evidence.json"));
    assert_eq!(json["schema"], "envelope-evidence/1");
    let f = finding(&json, "data-follows-rotation");
    assert_eq!(f["status"], "FAIL", "{f}");
    assert!(f["detail"].as_str().unwrap().contains("version 1"), "{f}");
    // The log started after 2020: the window is not covered.
    assert_eq!(finding(&json, "key-use-log-continuous")["status"], "FAIL");
    // The test server has no TLS.
    assert_eq!(finding(&json, "database-tls")["status"], "FAIL");
    assert_eq!(finding(&json, "suites-allowed")["status"], "PASS");
    let page = std::fs::read_to_string(first.join("index.html")).unwrap();
    assert!(page.contains(r#"data-finding="data-follows-rotation""#));
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
    // The census counted both tables, the log the rewrap job and the KMS calls.
    let stores = json["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 2);
    assert_eq!(stores[0]["connection"]["encrypted"], false);
    let jobs = json["jobs"]["log"].as_array().unwrap();
    assert!(
        jobs.iter()
            .any(|j| j["op"] == "finish" && j["kind"] == "rewrap" && j["status"] == "finished"),
        "{jobs:?}"
    );
    let per_day = json["key_use"]["per_day"].as_array().unwrap();
    assert!(
        per_day
            .iter()
            .any(|d| d["kms_calls"]["rewrap"].as_u64() > Some(0)),
        "{per_day:?}"
    );
    assert_eq!(
        json["key_use"]["verification"]["log"],
        json["key_use"]["log"]
    );
    let ledger = json["jobs"]["ledger"].as_array().unwrap();
    assert!(
        ledger
            .iter()
            .any(|j| j["store"] == format!("{new}.ssn") && j["finished"] == true),
        "{ledger:?}"
    );
    // The manifest verifies with the OpenBao key, and fails once a file changes.
    let ok = envelope(&[
        "audit",
        "verify-pack",
        first.to_str().unwrap(),
        "--public-key",
        &public,
    ]);
    assert!(ok.status.success(), "{ok:?}");

    // Finish the rewrap, retire version 1 (OpenBao: min_decryption_version), rerun.
    let out = with_log(&[
        "rewrap", "--key", &key, "--db", &url, "--table", &old, "--column", "ssn",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = with_log(&[
        "retire",
        "--key",
        &key,
        "--version",
        "1",
        "--action",
        "check",
        "--db",
        &url,
        "--table",
        &old,
        "--column",
        "ssn",
    ]);
    assert!(out.status.success(), "{out:?}");
    bao.cli(&[
        "write",
        "transit/keys/orders/config",
        "min_decryption_version=2",
    ]);
    let second = work.path().join("second");
    let out = evidence(&second);
    let json = read_json(&second.join("evidence.json"));
    assert_eq!(
        finding(&json, "data-follows-rotation")["status"],
        "PASS",
        "{out:?}"
    );
    assert_eq!(
        finding(&json, "no-data-under-retired-versions")["status"],
        "PASS"
    );
    let keys = json["keys"].as_array().unwrap();
    let v1 = keys[0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == "1")
        .unwrap()
        .clone();
    assert_ne!(v1["state"], "enabled", "{v1}");
    let admin = json["administration"].as_array().unwrap();
    assert!(
        admin
            .iter()
            .any(|a| a["op"] == "retire" && a["outcome"] == "ok"),
        "{admin:?}"
    );
    let page = std::fs::read_to_string(second.join("index.html")).unwrap();
    assert!(page.contains("retire") && page.contains("rewrap"));
    assert!(page.contains(&format!("{old}.ssn")));

    // The log itself verifies, signed by OpenBao.
    let verified = envelope(&[
        "audit",
        "verify",
        log.to_str().unwrap(),
        "--public-key",
        &public,
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert!(report["damage"].is_null(), "{report}");
    assert!(report["checkpoints"].as_u64().unwrap() >= 5, "{report}");

    // Tampering with the pack is caught.
    let html = second.join("index.html");
    std::fs::write(
        &html,
        std::fs::read_to_string(&html)
            .unwrap()
            .replace("FAIL", "PASS"),
    )
    .unwrap();
    let bad = envelope(&[
        "audit",
        "verify-pack",
        second.to_str().unwrap(),
        "--public-key",
        &public,
    ]);
    assert_eq!(bad.status.code(), Some(6), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stdout).contains("index.html was changed"));

    // The OSCAL document is checked by compliance-trestle in scripts/test-evidence.sh; here,
    // its shape.
    let oscal = read_json(&second.join("assessment-results.json"));
    assert_eq!(
        oscal["assessment-results"]["metadata"]["oscal-version"],
        "1.1.2"
    );
    drop(bao);
}
