//! `envelope-policy.toml`: what the evidence pack's findings check (docs/EVIDENCE.md).
//!
//! ```toml
//! allowed_suites = ["AES-256-GCM", "XChaCha20-Poly1305"]
//! max_rotation_days = 365      # a key rotates at least this often
//! max_versions_behind = 0      # data at most this many versions behind the current one
//! require_log = true           # a verified, continuous key-use log over the window
//! require_tls = true           # database connections encrypted
//! require_verified_server = false  # … and the server's certificate verified
//! keyring_max_mode = "600"     # local keyring files readable by their owner only
//!
//! [owners]                     # key URI -> owner, shown in the key inventory
//! "local:///etc/app/keyring.json#default" = "payments-team@example.com"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::exit::CliError;

/// The policy the findings check; every member has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Suites data may be under.
    pub allowed_suites: Vec<String>,
    /// A key rotates at least this often (days).
    pub max_rotation_days: u64,
    /// Data may be at most this many versions behind its key's current version.
    pub max_versions_behind: u64,
    /// A verified key-use log, continuous over the window, is required.
    pub require_log: bool,
    /// Database connections must be encrypted.
    pub require_tls: bool,
    /// Database servers' certificates must be verified (`verify-ca`, `verify-full`).
    pub require_verified_server: bool,
    /// The loosest mode a local keyring file may have (octal).
    pub keyring_max_mode: String,
    /// Key owners by key URI.
    pub owners: BTreeMap<String, String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allowed_suites: vec!["AES-256-GCM".into(), "XChaCha20-Poly1305".into()],
            max_rotation_days: 365,
            max_versions_behind: 0,
            require_log: true,
            require_tls: true,
            require_verified_server: false,
            keyring_max_mode: "600".into(),
            owners: BTreeMap::new(),
        }
    }
}

impl Policy {
    /// Reads a policy file, or the defaults without one.
    pub fn load(path: Option<&Path>) -> Result<Self, CliError> {
        let Some(path) = path else {
            return Ok(Policy::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
        let policy: Policy = toml::from_str(&text).map_err(|e| {
            CliError::with_code(
                crate::exit::USAGE,
                format!("{}: {}", path.display(), e.message()),
            )
        })?;
        policy.keyring_mode()?;
        Ok(policy)
    }

    /// `keyring_max_mode` as bits.
    pub fn keyring_mode(&self) -> Result<u32, CliError> {
        u32::from_str_radix(&self.keyring_max_mode, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                CliError::with_code(
                    crate::exit::USAGE,
                    format!(
                        "keyring_max_mode {:?}: give an octal mode like \"600\"",
                        self.keyring_max_mode
                    ),
                )
            })
    }
}
