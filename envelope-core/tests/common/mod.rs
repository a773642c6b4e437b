//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use envelope_core::{CachePolicy, Envelope, LocalKeyring, LocalKms};

/// A temporary keyring with key `default` (version 1) and a KMS over it.
pub struct Fixture {
    /// The temporary directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The keyring file.
    pub keyring: LocalKeyring,
    /// The KMS whose call counters the tests read.
    pub kms: Arc<LocalKms>,
}

impl Fixture {
    /// A fresh keyring with key `default`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keyring = LocalKeyring::create(dir.path().join("keyring.json"), "default").unwrap();
        let kms = Arc::new(LocalKms::new(keyring.clone()));
        Fixture { dir, keyring, kms }
    }

    /// The keyring path.
    pub fn path(&self) -> PathBuf {
        self.keyring.path().to_path_buf()
    }

    /// An envelope over this fixture's KMS (shared call counters).
    pub fn envelope(&self, policy: CachePolicy) -> Envelope {
        Envelope::builder(self.kms.clone(), "default")
            .cache_policy(policy)
            .build()
            .unwrap()
    }

    /// An envelope over a new KMS instance on the same keyring: a "second process".
    pub fn other_process(&self, policy: CachePolicy) -> (Envelope, Arc<LocalKms>) {
        let kms = Arc::new(LocalKms::new(self.keyring.clone()));
        let envelope = Envelope::builder(kms.clone(), "default")
            .cache_policy(policy)
            .build()
            .unwrap();
        (envelope, kms)
    }
}

/// Writes a keyring file (the documented JSON format) holding a vectors file's KEKs
/// (`testvectors/v1.json` and `compact.json` share the `keyring` block).
pub fn vectors_keyring(doc: &serde_json::Value, dir: &std::path::Path) -> LocalKeyring {
    use base64::Engine;
    let ring = &doc["keyring"];
    let mut versions = Vec::new();
    for (version, entry) in ring["versions"].as_object().unwrap() {
        let mut v = serde_json::json!({
            "version": version.parse::<u32>().unwrap(),
            "state": entry["state"],
            "created_at": 0,
        });
        if let Some(kek) = entry["kek"].as_str() {
            v["material"] = base64::engine::general_purpose::STANDARD
                .encode(hex::decode(kek).unwrap())
                .into();
        }
        versions.push(v);
    }
    let file = serde_json::json!({
        "envelope_keyring": 1,
        "keys": { ring["key_id"].as_str().unwrap(): {
            "primary_version": ring["primary_version"], "versions": versions } }
    });
    let path = dir.join("keyring.json");
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    LocalKeyring::new(path)
}
