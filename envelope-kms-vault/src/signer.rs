//! Checkpoint signing with a Transit `ed25519` key: the key-use log's checkpoints and the
//! evidence manifest are signed by Vault/OpenBao (`transit/sign`), so the private key never
//! reaches the host that writes the log.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use envelope_core::audit::CheckpointSigner;
use envelope_core::{Error, Result};
use serde_json::{Value, json};

use crate::{VaultBuilder, VaultKms};

/// A [`CheckpointSigner`] over a Transit key of type `ed25519`, pinned to the key version
/// whose public key it read when built (a later rotation of the Transit key does not change
/// what verifies this log's signatures).
pub struct TransitSigner {
    kms: VaultKms,
    name: String,
    version: u64,
    public: [u8; 32],
}

impl fmt::Debug for TransitSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransitSigner")
            .field("vault", &self.kms)
            .field("key", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl TransitSigner {
    /// A signer for `vault://HOST:PORT/MOUNT/keys/NAME[?http=loopback]`, configured from
    /// the environment as [`VaultBuilder::from_env`] (`VAULT_TOKEN`, …). Reads the key's
    /// latest version and public key; refuses a key that is not `ed25519`.
    pub fn from_uri(uri: &str) -> Result<Self> {
        let (builder, name) = VaultBuilder::from_env().with_url(uri)?;
        let kms = builder.build()?;
        let read = run(kms.call(
            "read_key",
            &name,
            "",
            reqwest::Method::GET,
            &format!("keys/{name}"),
            None,
        ))?;
        let body: Value = serde_json::from_slice(&read)
            .map_err(|e| Error::InvalidConfig(format!("Transit key {name}: {e}")))?;
        let data = &body["data"];
        if data["type"] != "ed25519" {
            return Err(Error::InvalidConfig(format!(
                "Transit key {name} is of type {}, not ed25519: create it with type=ed25519",
                data["type"]
            )));
        }
        let version = data["latest_version"].as_u64().ok_or_else(|| {
            Error::InvalidConfig(format!("Transit key {name}: no latest_version"))
        })?;
        let public = data["keys"][version.to_string()]["public_key"]
            .as_str()
            .and_then(|k| B64.decode(k).ok())
            .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
            .ok_or_else(|| {
                Error::InvalidConfig(format!("Transit key {name}: no ed25519 public key"))
            })?;
        Ok(TransitSigner {
            kms,
            name,
            version,
            public,
        })
    }
}

impl CheckpointSigner for TransitSigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn public_key(&self) -> [u8; 32] {
        self.public
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        let body = json!({"input": B64.encode(message), "key_version": self.version});
        let version = self.version.to_string();
        let response = run(self.kms.call(
            "sign",
            &self.name,
            &version,
            reqwest::Method::POST,
            &format!("sign/{}", self.name),
            Some(&body),
        ))?;
        let parsed: Value = serde_json::from_slice(&response)
            .map_err(|e| Error::InvalidConfig(format!("Transit sign: {e}")))?;
        parsed["data"]["signature"]
            .as_str()
            .and_then(|s| s.rsplit(':').next())
            .and_then(|s| B64.decode(s).ok())
            .and_then(|s| <[u8; 64]>::try_from(s.as_slice()).ok())
            .ok_or_else(|| {
                Error::InvalidConfig("Transit sign returned no ed25519 signature".into())
            })
    }
}

/// Runs a request to completion from any thread, inside or outside an async runtime (on
/// a thread of its own with a private current-thread runtime).
fn run<T: Send>(future: impl Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::InvalidConfig(format!("cannot start a runtime: {e}")))?
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|_| Err(Error::InvalidConfig("the signing thread panicked".into())))
    })
}
