//! Shared by the fuzz targets: envelopes over a local keyring holding the test vectors'
//! KEKs, so that the seed corpus (made from `testvectors/v1.json` by scripts/fuzz.sh)
//! starts from ciphertexts that decrypt.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use base64::Engine;
use envelope::{
    BlockingEnvelope, CachePolicy, CryptoProvider, Envelope, EnvelopeBuilder, LocalKeyring, LocalKms,
};

/// The keyring file (in a directory kept for the process's life) and its key id.
pub fn vectors_keyring() -> &'static (PathBuf, String) {
    static KEYRING: OnceLock<(PathBuf, String)> = OnceLock::new();
    KEYRING.get_or_init(|| {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../testvectors/v1.json");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("test vectors"))
                .expect("vectors JSON");
        let ring = &doc["keyring"];
        let mut versions = Vec::new();
        for (version, entry) in ring["versions"].as_object().expect("versions") {
            let mut v = serde_json::json!({
                "version": version.parse::<u32>().expect("version"),
                "state": entry["state"],
                "created_at": 0,
            });
            if let Some(kek) = entry["kek"].as_str() {
                v["material"] = base64::engine::general_purpose::STANDARD
                    .encode(hex::decode(kek).expect("hex"))
                    .into();
            }
            versions.push(v);
        }
        let key_id = ring["key_id"].as_str().expect("key id").to_owned();
        let file = serde_json::json!({
            "envelope_keyring": 1,
            "keys": { &key_id: { "primary_version": ring["primary_version"], "versions": versions } }
        });
        let dir = std::env::temp_dir().join(format!("envelope-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("keyring.json");
        std::fs::write(&path, serde_json::to_string(&file).expect("json")).expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        (path, key_id)
    })
}

/// An envelope builder over the vectors' keyring on `provider`, with the default cache.
pub fn builder(provider: CryptoProvider) -> EnvelopeBuilder {
    let (path, key_id) = vectors_keyring();
    let kms = LocalKms::new(LocalKeyring::new(path))
        .with_crypto_provider(provider)
        .expect("provider compiled in");
    Envelope::builder(kms, key_id.as_str())
        .crypto_provider(provider)
        .cache_policy(CachePolicy::default())
}

/// A blocking envelope over the vectors' keyring on `provider`, with the default cache.
pub fn envelope(provider: CryptoProvider) -> BlockingEnvelope {
    BlockingEnvelope::new(builder(provider).build().expect("envelope")).expect("blocking envelope")
}

/// Asserts that two decryptions of one input agree: the same plaintext, or the same error
/// kind (`what` names the two sides).
pub fn same_outcome(a: &envelope::Result<Vec<u8>>, b: &envelope::Result<Vec<u8>>, what: &str) {
    match (a, b) {
        (Ok(x), Ok(y)) => assert_eq!(x, y, "{what}: different plaintexts"),
        (Err(x), Err(y)) => assert_eq!(x.kind(), y.kind(), "{what}: {x} / {y}"),
        _ => panic!(
            "{what} disagree: {:?} / {:?}",
            a.as_ref().map(Vec::len),
            b.as_ref().map(Vec::len)
        ),
    }
}

/// Splits a fuzz input into (AAD, ciphertext): the first byte is the AAD's length.
pub fn split_aad(data: &[u8]) -> (&[u8], &[u8]) {
    match data.split_first() {
        Some((&n, rest)) => rest.split_at((n as usize).min(rest.len())),
        None => (&[], &[]),
    }
}
