//! The Vault backend against a real OpenBao server (started by scripts/test.sh).
//!
//! These tests fail, never skip, when the server is missing: run them through
//! `scripts/test.sh`, which installs and starts OpenBao and exports
//! ENVELOPE_TEST_VAULT_ADDR, ENVELOPE_TEST_VAULT_TOKEN and ENVELOPE_TEST_BAO_BIN.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use envelope_core::testing::{ConformanceOptions, rotation_then_rewrap, run_conformance};
use envelope_core::{
    CachePolicy, EncryptionContext, Envelope, Error, ErrorKind, Kms, KmsExt, WrappedDek,
};
use envelope_kms_vault::{VaultBuilder, VaultKms};
use serde_json::{Value, json};

struct Server {
    addr: String,
    token: String,
}

fn server() -> Server {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run scripts/test.sh, which starts OpenBao for these tests")
        })
    };
    Server {
        addr: var("ENVELOPE_TEST_VAULT_ADDR"),
        token: var("ENVELOPE_TEST_VAULT_TOKEN"),
    }
}

/// A key name no other test uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Administrative calls the SDK does not make (create keys, rotate, policies, tokens).
struct Admin {
    http: reqwest::Client,
    addr: String,
    token: String,
}

impl Admin {
    fn new(server: &Server) -> Self {
        Admin {
            http: reqwest::Client::new(),
            addr: server.addr.clone(),
            token: server.token.clone(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: HTTP {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn create_key(&self, name: &str, derived: bool) {
        self.call(
            reqwest::Method::POST,
            &format!("transit/keys/{name}"),
            json!({ "derived": derived }),
        )
        .await;
    }

    async fn rotate(&self, name: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("transit/keys/{name}/rotate"),
            json!({}),
        )
        .await;
    }

    async fn set_min_decryption_version(&self, name: &str, version: u64) {
        self.call(
            reqwest::Method::POST,
            &format!("transit/keys/{name}/config"),
            json!({ "min_decryption_version": version }),
        )
        .await;
    }

    /// A token whose policy allows exactly `paths` with `update`.
    async fn token_for(&self, paths: &[String]) -> String {
        let policy_name = unique("policy");
        let policy: String = paths
            .iter()
            .map(|p| format!("path \"{p}\" {{ capabilities = [\"update\"] }}\n"))
            .collect();
        self.call(
            reqwest::Method::PUT,
            &format!("sys/policies/acl/{policy_name}"),
            json!({ "policy": policy }),
        )
        .await;
        let created = self
            .call(
                reqwest::Method::POST,
                "auth/token/create",
                json!({ "policies": [policy_name], "ttl": "10m" }),
            )
            .await;
        created["auth"]["client_token"].as_str().unwrap().to_owned()
    }
}

fn kms(server: &Server, token: &str) -> VaultKms {
    VaultBuilder::new()
        .with_address(&server.addr)
        .with_allow_http_loopback(true)
        .with_token(token)
        .with_retries(2, Duration::from_millis(50))
        .build()
        .unwrap()
}

fn context() -> EncryptionContext {
    let mut c = EncryptionContext::new();
    c.insert("app".into(), "billing".into());
    c
}

#[tokio::test]
async fn conformance_suite_plain_and_derived_keys() {
    let server = server();
    let admin = Admin::new(&server);
    let plain = unique("conf-plain");
    let derived = unique("conf-derived");
    admin.create_key(&plain, false).await;
    admin.create_key(&derived, true).await;
    let vault: Arc<dyn Kms> = Arc::new(kms(&server, &server.token));

    // A plain Transit key ignores the context (but binds a store row, as associated_data);
    // a derived key derives from it.
    let opts = ConformanceOptions {
        enforces_context: false,
        ..ConformanceOptions::default()
    };
    let failures = run_conformance(vault.clone(), &plain, &opts).await;
    assert!(failures.is_empty(), "plain key: {failures:#?}");
    let failures = run_conformance(vault.clone(), &derived, &ConformanceOptions::default()).await;
    assert!(failures.is_empty(), "derived key: {failures:#?}");

    let rotate = Box::pin(async {
        admin.rotate(&plain).await;
        Ok::<(), Error>(())
    });
    rotation_then_rewrap(&*vault, &plain, rotate).await.unwrap();
}

#[tokio::test]
async fn envelope_with_cache_makes_the_calls_the_policy_implies() {
    let server = server();
    let admin = Admin::new(&server);
    let key = unique("cache");
    admin.create_key(&key, true).await;
    let writer = Envelope::builder(kms(&server, &server.token), &key)
        .encryption_context(context())
        .build()
        .unwrap();
    let mut cts = Vec::new();
    for i in 0..2000u32 {
        cts.push(writer.encrypt(&i.to_be_bytes(), b"t.c").await.unwrap());
    }
    assert_eq!(writer.stats().kms_generate_calls, 1);
    let info = Envelope::inspect(&cts[0]).unwrap();
    assert_eq!(
        (info.key_id.as_str(), info.key_version.as_str()),
        (key.as_str(), "1")
    );
    assert!(String::from_utf8_lossy(&cts[0]).contains("vault:v1:"));

    let reader = Envelope::builder(kms(&server, &server.token), &key)
        .encryption_context(context())
        .build()
        .unwrap();
    for (i, ct) in cts.iter().enumerate() {
        assert_eq!(
            reader.decrypt(ct, b"t.c").await.unwrap(),
            (i as u32).to_be_bytes()
        );
    }
    assert_eq!(reader.stats().kms_unwrap_calls, 1);

    // Another context cannot unwrap a derived key's DEK.
    let mut other = context();
    other.insert("app".into(), "other".into());
    let stranger = Envelope::builder(kms(&server, &server.token), &key)
        .encryption_context(other)
        .build()
        .unwrap();
    assert!(stranger.decrypt(&cts[0], b"t.c").await.is_err());
}

#[tokio::test]
async fn rotate_rewrap_and_min_decryption_version() {
    let server = server();
    let admin = Admin::new(&server);
    let key = unique("rotate");
    admin.create_key(&key, false).await;
    let env = Envelope::builder(kms(&server, &server.token), &key)
        .build()
        .unwrap();
    let a = env.encrypt(b"alpha", b"row=a").await.unwrap();
    let b = env.encrypt(b"bravo", b"row=b").await.unwrap();
    assert!(!env.rewrap(&a).await.unwrap().changed, "already current");

    admin.rotate(&key).await;
    env.refresh_kek();
    let description = env.describe_key().await.unwrap();
    assert_eq!(description.current_version.as_deref(), Some("2"));
    let moved = env.rewrap(&a).await.unwrap();
    assert!(moved.changed);
    assert_eq!(
        (moved.from_version.as_str(), moved.to_version.as_str()),
        ("1", "2")
    );
    let (ia, ib) = (
        Envelope::inspect(&a).unwrap(),
        Envelope::inspect(&moved.ciphertext).unwrap(),
    );
    assert_eq!(
        a[..4 + 12 + 32],
        moved.ciphertext[..4 + 12 + 32],
        "stable header unchanged"
    );
    assert_eq!(
        a[ia.header_len..],
        moved.ciphertext[ib.header_len..],
        "body unchanged"
    );
    assert!(String::from_utf8_lossy(&moved.ciphertext).contains("vault:v2:"));

    admin.set_min_decryption_version(&key, 2).await;
    let fresh = Envelope::builder(kms(&server, &server.token), &key)
        .build()
        .unwrap();
    let err = fresh.decrypt(&b, b"row=b").await.unwrap_err();
    assert!(
        matches!(err, Error::KeyVersionTooOld { ref version, .. } if version == "1"),
        "{err}"
    );
    assert_eq!(
        fresh.decrypt(&moved.ciphertext, b"row=a").await.unwrap(),
        b"alpha"
    );
    let description = fresh.describe_key().await.unwrap();
    let v1 = description
        .versions
        .iter()
        .find(|v| v.version == "1")
        .unwrap();
    assert_eq!(v1.state, envelope_core::KeyVersionState::Disabled);
    // Too old to rewrap as well: data not moved in time is stuck until the policy is lowered.
    assert_eq!(
        fresh.rewrap(&b).await.unwrap_err().kind(),
        ErrorKind::KeyVersionTooOld
    );
}

#[tokio::test]
async fn rewrap_batch_reports_each_item() {
    let server = server();
    let admin = Admin::new(&server);
    let key = unique("batch");
    admin.create_key(&key, false).await;
    let vault = kms(&server, &server.token);
    let ctx = EncryptionContext::new();
    let mut items: Vec<WrappedDek> = Vec::new();
    for _ in 0..3 {
        items.push(vault.generate_dek(&key, &ctx).await.unwrap().wrapped);
    }
    admin.rotate(&key).await;
    let mut tampered = items[0].clone();
    tampered.key_version = "7".into(); // header disagrees with vault:v1:
    let mut garbage = items[1].clone();
    garbage.ciphertext = b"vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_vec();
    items.push(tampered);
    items.push(garbage);
    let results = vault
        .rewrap_batch(&items, &key, &vec![ctx.clone(); items.len()])
        .await
        .unwrap();
    assert_eq!(results.len(), 5);
    for r in &results[..3] {
        assert_eq!(r.as_ref().unwrap().key_version, "2");
    }
    assert_eq!(
        results[3].as_ref().unwrap_err().kind(),
        ErrorKind::DecryptionFailed
    );
    assert!(results[4].is_err(), "{:?}", results[4]);
    for (before, after) in items.iter().zip(&results).take(3) {
        let a = vault.unwrap_dek(before, &ctx).await.unwrap();
        let b = vault
            .unwrap_dek(after.as_ref().unwrap(), &ctx)
            .await
            .unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
    }
}

/// `Envelope::rewrap_many` sends the distinct DEKs of a batch in one `batch_input` request.
#[tokio::test]
async fn envelope_rewrap_many_uses_one_batch_request() {
    let server = server();
    let admin = Admin::new(&server);
    let key = unique("many");
    admin.create_key(&key, false).await;
    let writer = Envelope::builder(kms(&server, &server.token), key.clone())
        .cache_policy(CachePolicy::default().with_max_messages(2))
        .build()
        .unwrap();
    let mut cts = Vec::new();
    for i in 0..12u8 {
        cts.push(writer.encrypt(&[i], b"aad").await.unwrap());
    }
    admin.rotate(&key).await;
    let mut relabeled = cts[0].clone();
    let info = Envelope::inspect(&relabeled).unwrap();
    assert_eq!(info.label, envelope_core::LabelCheck::Matches);
    // The version label "1" sits right after the key id in the header.
    let at = relabeled
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap()
        + key.len();
    assert_eq!(&relabeled[at..at + 2], b"\x011");
    relabeled[at + 1] = b'2';
    assert!(matches!(
        Envelope::inspect(&relabeled).unwrap().label,
        envelope_core::LabelCheck::Mislabeled { ref carried } if carried == "1"
    ));
    let rewrapper = Envelope::builder(kms(&server, &server.token), key.clone())
        .build()
        .unwrap();
    let mut inputs: Vec<&[u8]> = cts.iter().map(Vec::as_slice).collect();
    inputs.push(&relabeled);
    let results = rewrapper.rewrap_many(&inputs).await;
    assert_eq!(
        rewrapper.stats().kms_rewrap_calls,
        1,
        "six distinct DEKs, one request"
    );
    for (i, r) in results[..12].iter().enumerate() {
        let r = r.as_ref().unwrap();
        assert!(r.changed);
        assert_eq!(r.to_version, "2");
        assert_eq!(
            writer.decrypt(&r.ciphertext, b"aad").await.unwrap(),
            [i as u8]
        );
    }
    assert_eq!(
        results[12].as_ref().unwrap_err().kind(),
        ErrorKind::DecryptionFailed
    );
}

/// A compact form's DEK store rotates a page of rows in one batch operation
/// (`Envelope::rewrap_wrapped`: rows bound by associated data go through one batch
/// `decrypt` and one batch `encrypt`, Transit's `rewrap` taking no associated data), the
/// new wraps stay bound to their rows, and a cold reader decrypts every value through the
/// rotated rows after version 1 becomes too old to decrypt.
#[tokio::test]
async fn a_dek_store_page_rotates_in_one_batch_request() {
    use envelope_core::DekStore;
    use envelope_core::compact::{StoreCheckpoint, WrappedDekChange};
    let server = server();
    let admin = Admin::new(&server);
    let key = unique("store");
    admin.create_key(&key, false).await;
    let store = Arc::new(envelope_core::testing::MemoryDekStore::new());
    let writer = Envelope::builder(kms(&server, &server.token), key.clone())
        .cache_policy(CachePolicy::default().with_max_messages(2))
        .dek_store(store.clone())
        .build()
        .unwrap();
    let mut values = Vec::new();
    for i in 0..12u8 {
        values.push(writer.encrypt(&[i], b"aad").await.unwrap());
    }
    assert!(values.iter().all(|v| v.len() == 1 + 72));
    admin.rotate(&key).await;
    let rows = store.list(None, 100).await.unwrap();
    assert_eq!(rows.len(), 6);
    let rotator = Envelope::builder(kms(&server, &server.token), key.clone())
        .build()
        .unwrap();
    assert!(rows.iter().all(|r| r.bound));
    let moved = rotator.rewrap_wrapped(&rows).await;
    assert_eq!(rotator.stats().kms_rewrap_calls, 1, "six DEKs, one batch");
    let changes: Vec<_> = rows
        .iter()
        .zip(moved)
        .map(|(row, new)| WrappedDekChange {
            id: row.id,
            old: row.wrapped.clone(),
            new: new.unwrap().expect("moved to version 2"),
        })
        .collect();
    assert!(changes.iter().all(|c| c.new.key_version == "2"));
    // Still bound: row 1's new wrap does not unwrap as row 2.
    let vault = kms(&server, &server.token);
    let mut moved_row = rows[0].clone();
    moved_row.wrapped = changes[0].new.clone();
    let base = EncryptionContext::new();
    assert!(
        vault
            .unwrap_dek(&moved_row.wrapped, &moved_row.unwrap_context(&base))
            .await
            .is_ok()
    );
    moved_row.id = rows[1].id;
    assert_eq!(
        vault
            .unwrap_dek(&moved_row.wrapped, &moved_row.unwrap_context(&base))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::DecryptionFailed
    );
    let checkpoint = StoreCheckpoint {
        job: "t".into(),
        last_id: rows[5].id,
        progress: "{}".into(),
    };
    assert_eq!(store.apply_rewraps(&changes, &checkpoint).await.unwrap(), 6);
    admin.set_min_decryption_version(&key, 2).await;
    let reader = Envelope::builder(kms(&server, &server.token), key.clone())
        .dek_store(store.clone())
        .build()
        .unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(reader.decrypt(v, b"aad").await.unwrap(), [i as u8]);
    }
}

#[tokio::test]
async fn least_privilege_token_cannot_decrypt() {
    let server = server();
    let admin = Admin::new(&server);
    let key = unique("lp");
    admin.create_key(&key, false).await;
    let token = admin
        .token_for(&[format!("transit/datakey/plaintext/{key}")])
        .await;
    let writer = Envelope::builder(kms(&server, &token), &key)
        .build()
        .unwrap();
    let ct = writer.encrypt(b"secret", b"").await.unwrap();
    // The writer decrypts its own ciphertexts from its cache; a reader with the same
    // token must ask Vault, which refuses.
    let reader = Envelope::builder(kms(&server, &token), &key)
        .build()
        .unwrap();
    let err = reader.decrypt(&ct, b"").await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(
        reader.describe_key().await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let bad = Envelope::builder(kms(&server, "not-a-token"), &key)
        .build()
        .unwrap();
    assert_eq!(
        bad.encrypt(b"x", b"").await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[tokio::test]
async fn missing_key_and_foreign_headers() {
    let server = server();
    let vault = kms(&server, &server.token);
    let err = vault
        .generate_dek(&unique("nope"), &EncryptionContext::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::KeyNotFound { .. }), "{err}");
    let foreign = WrappedDek {
        provider: envelope_core::Provider::Local,
        key_id: "k".into(),
        key_version: "1".into(),
        ciphertext: vec![1; 60],
    };
    assert!(matches!(
        vault.check_owned(&foreign),
        Err(Error::KeyNotOwned { .. })
    ));
}

/// A private OpenBao that this test can stop in the middle of a run.
struct PrivateBao {
    child: tokio::process::Child,
    addr: String,
}

async fn private_bao() -> PrivateBao {
    let bin = std::env::var("ENVELOPE_TEST_BAO_BIN")
        .expect("ENVELOPE_TEST_BAO_BIN is not set: run scripts/test.sh");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("http://127.0.0.1:{port}");
    let child = tokio::process::Command::new(&bin)
        .args(["server", "-dev", "-dev-root-token-id=private-root"])
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let admin = Admin {
        http: reqwest::Client::new(),
        addr: addr.clone(),
        token: "private-root".into(),
    };
    for _ in 0..150 {
        if admin
            .http
            .get(format!("{addr}/v1/sys/health"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin
        .call(
            reqwest::Method::POST,
            "sys/mounts/transit",
            json!({ "type": "transit" }),
        )
        .await;
    admin.create_key("k", false).await;
    PrivateBao { child, addr }
}

#[tokio::test]
async fn server_stopped_mid_run() {
    let mut bao = private_bao().await;
    let server = Server {
        addr: bao.addr.clone(),
        token: "private-root".into(),
    };
    let env = Envelope::builder(kms(&server, &server.token), "k")
        .cache_policy(CachePolicy::default())
        .build()
        .unwrap();
    let before: Vec<Vec<u8>> = {
        let mut v = Vec::new();
        for i in 0..10u8 {
            v.push(env.encrypt(&[i], b"").await.unwrap());
        }
        v
    };
    let cold_reader = Envelope::builder(kms(&server, &server.token), "k")
        .build()
        .unwrap();

    bao.child.kill().await.unwrap();
    bao.child.wait().await.unwrap();

    // Cached DEKs keep working: encrypt with the active DEK, decrypt what it wrote.
    let after = env.encrypt(b"still", b"").await.unwrap();
    assert_eq!(env.decrypt(&after, b"").await.unwrap(), b"still");
    for (i, ct) in before.iter().enumerate() {
        assert_eq!(env.decrypt(ct, b"").await.unwrap(), [i as u8]);
    }
    // Anything that needs Vault fails with a clear, retryable error.
    let err = cold_reader.decrypt(&before[0], b"").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.is_retryable());
    let err = env.describe_key().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
