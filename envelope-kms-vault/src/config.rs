//! Building a [`VaultKms`]: from a `vault://` URI, the environment and explicit settings.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use envelope_core::{Error, Result};
use zeroize::Zeroizing;

use crate::kms::VaultKms;

/// A Vault token: zeroized on drop, never printed.
#[derive(Clone)]
pub(crate) struct Token(pub(crate) Zeroizing<String>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([REDACTED])")
    }
}

/// Configures and builds a [`VaultKms`].
///
/// ```
/// use envelope_kms_vault::VaultBuilder;
/// let (builder, key) = VaultBuilder::from_env()
///     .with_url("vault://vault.internal:8200/transit/keys/orders")
///     .expect("valid URI");
/// assert_eq!(key, "orders");
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
pub struct VaultBuilder {
    pub(crate) address: Option<String>,
    pub(crate) token: Option<Token>,
    pub(crate) namespace: Option<String>,
    pub(crate) mount: String,
    pub(crate) allow_http_loopback: bool,
    pub(crate) ca_cert: Option<PathBuf>,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) retry_backoff: Duration,
}

/// The configuration keys [`VaultBuilder::with_config`] accepts (aliases in the docs of
/// each variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaultConfigKey {
    /// Server address, `https://host:port` (`address`, `vault_addr`, `bao_addr`).
    Address,
    /// Token (`token`, `vault_token`, `bao_token`).
    Token,
    /// Enterprise / OpenBao namespace (`namespace`, `vault_namespace`, `bao_namespace`).
    Namespace,
    /// Transit mount path (`mount`, `transit_mount`).
    Mount,
    /// PEM file of an extra trusted CA (`ca_cert`, `vault_cacert`, `bao_cacert`).
    CaCert,
    /// `true` to allow plain http to a loopback address (`allow_http_loopback`).
    AllowHttpLoopback,
}

impl std::str::FromStr for VaultConfigKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "address" | "vault_addr" | "bao_addr" => VaultConfigKey::Address,
            "token" | "vault_token" | "bao_token" => VaultConfigKey::Token,
            "namespace" | "vault_namespace" | "bao_namespace" => VaultConfigKey::Namespace,
            "mount" | "transit_mount" => VaultConfigKey::Mount,
            "ca_cert" | "vault_cacert" | "bao_cacert" => VaultConfigKey::CaCert,
            "allow_http_loopback" => VaultConfigKey::AllowHttpLoopback,
            other => {
                return Err(Error::InvalidConfig(format!(
                    "unknown Vault configuration key {other:?}"
                )));
            }
        })
    }
}

impl Default for VaultBuilder {
    fn default() -> Self {
        VaultBuilder {
            address: None,
            token: None,
            namespace: None,
            mount: "transit".into(),
            allow_http_loopback: false,
            ca_cert: None,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl VaultBuilder {
    /// Defaults only: no address, no token, mount `transit`.
    pub fn new() -> Self {
        VaultBuilder::default()
    }

    /// Defaults plus the standard environment: `VAULT_ADDR`/`BAO_ADDR`,
    /// `VAULT_TOKEN`/`BAO_TOKEN`, `VAULT_NAMESPACE`/`BAO_NAMESPACE`,
    /// `VAULT_CACERT`/`BAO_CACERT`.
    pub fn from_env() -> Self {
        VaultBuilder {
            address: env(&["VAULT_ADDR", "BAO_ADDR"]),
            token: env(&["VAULT_TOKEN", "BAO_TOKEN"]).map(|t| Token(Zeroizing::new(t))),
            namespace: env(&["VAULT_NAMESPACE", "BAO_NAMESPACE"]),
            ca_cert: env(&["VAULT_CACERT", "BAO_CACERT"]).map(PathBuf::from),
            ..VaultBuilder::default()
        }
    }

    /// Applies a `vault://HOST:PORT/MOUNT/keys/NAME[?http=loopback]` URI: the address
    /// (`https://HOST:PORT`, or `http://` with `?http=loopback`, which also allows it for a
    /// loopback host), the mount (which may contain `/`) and the key name, returned.
    pub fn with_url(mut self, uri: &str) -> Result<(Self, String)> {
        let invalid = |reason: &str| Error::InvalidKeyUri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = uri
            .strip_prefix("vault://")
            .ok_or_else(|| invalid("expected vault://HOST:PORT/MOUNT/keys/NAME"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid("missing /MOUNT/keys/NAME"))?;
        if authority.is_empty() {
            return Err(invalid("missing host"));
        }
        let (mount, name) = path
            .rsplit_once("/keys/")
            .ok_or_else(|| invalid("the path must be MOUNT/keys/NAME"))?;
        if mount.is_empty() || name.is_empty() || name.contains('/') {
            return Err(invalid("the path must be MOUNT/keys/NAME"));
        }
        let mut scheme = "https";
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair {
                "http=loopback" => {
                    scheme = "http";
                    self.allow_http_loopback = true;
                }
                other => return Err(invalid(&format!("unknown query parameter {other:?}"))),
            }
        }
        self.address = Some(format!("{scheme}://{authority}"));
        self.mount = mount.to_owned();
        Ok((self, name.to_owned()))
    }

    /// Sets a configuration value by key (see [`VaultConfigKey`] for the names).
    pub fn with_config(self, key: VaultConfigKey, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        Ok(match key {
            VaultConfigKey::Address => self.with_address(value),
            VaultConfigKey::Token => self.with_token(value),
            VaultConfigKey::Namespace => self.with_namespace(value),
            VaultConfigKey::Mount => self.with_mount(value),
            VaultConfigKey::CaCert => self.with_ca_cert(value),
            VaultConfigKey::AllowHttpLoopback => match value.as_str() {
                "true" | "1" | "yes" => self.with_allow_http_loopback(true),
                "false" | "0" | "no" => self.with_allow_http_loopback(false),
                _ => {
                    return Err(Error::InvalidConfig(format!(
                        "allow_http_loopback must be true or false, got {value:?}"
                    )));
                }
            },
        })
    }

    /// The server address, e.g. `https://vault.internal:8200`.
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// The token (overrides the environment).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Token(Zeroizing::new(token.into())));
        self
    }

    /// The namespace sent as `X-Vault-Namespace`.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The Transit mount path (default `transit`).
    pub fn with_mount(mut self, mount: impl Into<String>) -> Self {
        self.mount = mount.into().trim_matches('/').to_owned();
        self
    }

    /// A PEM file with an extra CA to trust.
    pub fn with_ca_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_cert = Some(path.into());
        self
    }

    /// Allows `http://` addresses, only for loopback hosts (for a local dev server).
    pub fn with_allow_http_loopback(mut self, allow: bool) -> Self {
        self.allow_http_loopback = allow;
        self
    }

    /// Timeout of one HTTP request (default 10 s) and of connecting (default 3 s).
    pub fn with_timeouts(mut self, request: Duration, connect: Duration) -> Self {
        self.request_timeout = request;
        self.connect_timeout = connect;
        self
    }

    /// Attempts for a retryable failure (default 3) and the first back-off (default
    /// 100 ms, doubled each time).
    pub fn with_retries(mut self, max_attempts: u32, backoff: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.retry_backoff = backoff;
        self
    }

    /// Checks the configuration and builds the client. Makes no request.
    pub fn build(self) -> Result<VaultKms> {
        let address = self.address.clone().ok_or_else(|| {
            Error::InvalidConfig("no Vault address: set VAULT_ADDR or use a vault:// URI".into())
        })?;
        let address = address.trim_end_matches('/').to_owned();
        envelope_core::check_kms_endpoint(&address, self.allow_http_loopback)?;
        if self.token.is_none() {
            return Err(Error::InvalidConfig(
                "no Vault token: set VAULT_TOKEN (or BAO_TOKEN) or call with_token".into(),
            ));
        }
        if self.mount.is_empty() {
            return Err(Error::InvalidConfig(
                "the Transit mount path is empty".into(),
            ));
        }
        VaultKms::from_builder(self, address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parsing() {
        let (b, key) = VaultBuilder::new()
            .with_url("vault://vault.example:8200/secret/transit/keys/orders")
            .unwrap();
        assert_eq!(key, "orders");
        assert_eq!(b.mount, "secret/transit");
        assert_eq!(b.address.as_deref(), Some("https://vault.example:8200"));
        let (b, _) = VaultBuilder::new()
            .with_url("vault://127.0.0.1:8200/transit/keys/k?http=loopback")
            .unwrap();
        assert_eq!(b.address.as_deref(), Some("http://127.0.0.1:8200"));
        for bad in [
            "vault://",
            "vault://host",
            "vault://host/transit/k",
            "vault://host/keys/k",
            "vault://host/transit/keys/",
            "vault://host/transit/keys/k?tls=off",
            "https://host/transit/keys/k",
        ] {
            assert!(VaultBuilder::new().with_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_needs_loopback_and_opt_in() {
        let b = || VaultBuilder::new().with_token("t");
        assert!(b().with_address("http://127.0.0.1:8200").build().is_err());
        assert!(
            b().with_address("http://127.0.0.1:8200")
                .with_allow_http_loopback(true)
                .build()
                .is_ok()
        );
        assert!(
            b().with_address("http://10.0.0.5:8200")
                .with_allow_http_loopback(true)
                .build()
                .is_err()
        );
        assert!(b().with_address("https://vault.example").build().is_ok());
    }

    #[test]
    fn token_is_redacted_and_keys_have_aliases() {
        let b = VaultBuilder::new().with_token("s.supersecrettoken");
        assert!(!format!("{b:?}").contains("supersecret"));
        for alias in ["VAULT_TOKEN", "bao_token", "token"] {
            assert_eq!(
                alias.parse::<VaultConfigKey>().unwrap(),
                VaultConfigKey::Token
            );
        }
        assert!("nope".parse::<VaultConfigKey>().is_err());
    }
}
