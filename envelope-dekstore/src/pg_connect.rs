//! Connecting to PostgreSQL with libpq's TLS settings, over rustls.
//!
//! Every PostgreSQL connection of the envelope tools (the DEK store, the CLI's jobs and
//! census) goes through [`PgConnector`]. It reads libpq's TLS parameters from the
//! connection string (URI query or `key=value` form) and, where the string leaves them out,
//! from libpq's environment variables:
//!
//! | parameter | environment | meaning |
//! |---|---|---|
//! | `sslmode` | `PGSSLMODE` | `disable`, `prefer` (the default, as libpq), `require`, `verify-ca`, `verify-full` |
//! | `sslrootcert` | `PGSSLROOTCERT` | PEM file of the CA certificates to trust, or `system` (the Mozilla root program's CAs, compiled in) |
//! | `sslcert` | `PGSSLCERT` | PEM client certificate (chain), for `cert` authentication |
//! | `sslkey` | `PGSSLKEY` | PEM private key of `sslcert` (PKCS#8, PKCS#1 or SEC1) |
//!
//! As in libpq: `prefer` tries TLS and falls back to plaintext when the server has none;
//! `prefer` and `require` encrypt without checking who answers (unless `require` has an
//! `sslrootcert`, which makes it `verify-ca`); `verify-ca` checks the chain to a trusted CA;
//! `verify-full` also checks that the certificate names the host connected to. TLS 1.2 and
//! 1.3 only, on rustls with the aws-lc-rs provider (no OpenSSL). [`PgConnector::connect`]
//! reports what the connection ended up with ([`Transport`]), so that summaries and evidence
//! can say whether data crossed the network in plaintext.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use envelope_core::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::Client;
use tokio_postgres::config::SslMode as DriverSslMode;

use crate::uri::redact;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, without verifying the server; plaintext otherwise.
    #[default]
    Prefer,
    /// TLS or fail, without verifying the server.
    Require,
    /// TLS or fail; the server's chain must lead to a trusted CA.
    VerifyCa,
    /// TLS or fail; a trusted chain that names the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq name.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Parses a libpq name. `allow` (libpq's plaintext-first mode) is refused: it sends the
    /// startup in plaintext to a server that would have accepted TLS.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::InvalidConfig(format!(
                    "sslmode {other:?} is not supported: use disable, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }

    /// Whether the server's certificate is checked against trusted CAs.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// How a connection carries its data, as the server reports it (`pg_stat_ssl`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transport {
    /// The TLS version (`TLSv1.3`), or `None` for a plaintext connection.
    pub tls_version: Option<String>,
    /// The cipher suite, when encrypted.
    pub cipher: Option<String>,
    /// The `sslmode` the connection was made with.
    pub sslmode: SslMode,
}

impl Transport {
    /// Whether the connection is encrypted.
    pub fn encrypted(&self) -> bool {
        self.tls_version.is_some()
    }

    /// Whether the server was authenticated (a verified chain, and with `verify-full` the
    /// host name).
    pub fn server_verified(&self) -> bool {
        self.encrypted() && self.sslmode.verifies()
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tls_version {
            None => write!(f, "plaintext, sslmode={}", self.sslmode.as_str()),
            Some(version) => write!(
                f,
                "{version}, sslmode={}{}",
                self.sslmode.as_str(),
                if self.sslmode.verifies() {
                    ""
                } else {
                    ", server not verified"
                }
            ),
        }
    }
}

/// The TLS parameters of a connection string, before files are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TlsParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    sslcert: Option<String>,
    sslkey: Option<String>,
}

impl TlsParams {
    fn set(&mut self, key: &str, value: String) -> bool {
        let slot = match key {
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "sslcert" => &mut self.sslcert,
            "sslkey" => &mut self.sslkey,
            _ => return false,
        };
        *slot = Some(value);
        true
    }
}

/// A PostgreSQL connection string with its TLS settings resolved: connects over rustls.
#[derive(Clone)]
pub struct PgConnector {
    config: tokio_postgres::Config,
    sslmode: SslMode,
    tls: Option<Arc<ClientConfig>>,
    /// The connection string without TLS parameters and password, for messages.
    display: String,
}

impl std::fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnector")
            .field("location", &self.display)
            .field("sslmode", &self.sslmode)
            .finish_non_exhaustive()
    }
}

impl PgConnector {
    /// Parses a libpq connection string (`postgres://…` URI or `key=value` form) with its
    /// TLS parameters, filling missing ones from `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`
    /// and `PGSSLKEY`, and reads the certificate files. Makes no connection.
    pub fn new(conninfo: &str) -> Result<Self> {
        Self::with_env(conninfo, |name| std::env::var(name).ok())
    }

    /// [`PgConnector::new`] with the environment given as a lookup function.
    pub fn with_env(conninfo: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let invalid = |reason: String| {
            Error::InvalidConfig(format!(
                "PostgreSQL connection {:?}: {reason}",
                redact(conninfo)
            ))
        };
        let (rest, mut params) = split_tls_params(conninfo).map_err(invalid)?;
        for (key, var) in [
            ("sslmode", "PGSSLMODE"),
            ("sslrootcert", "PGSSLROOTCERT"),
            ("sslcert", "PGSSLCERT"),
            ("sslkey", "PGSSLKEY"),
        ] {
            let missing = match key {
                "sslmode" => params.sslmode.is_none(),
                "sslrootcert" => params.sslrootcert.is_none(),
                "sslcert" => params.sslcert.is_none(),
                _ => params.sslkey.is_none(),
            };
            if missing && let Some(value) = env(var).filter(|v| !v.is_empty()) {
                params.set(key, value);
            }
        }
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| invalid(e.to_string()))?;
        let mut sslmode = match &params.sslmode {
            Some(mode) => SslMode::parse(mode)?,
            None => SslMode::default(),
        };
        // libpq: `require` with a root certificate verifies the chain, as verify-ca.
        if sslmode == SslMode::Require && params.sslrootcert.is_some() {
            sslmode = SslMode::VerifyCa;
        }
        config.ssl_mode(match sslmode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            _ => DriverSslMode::Require,
        });
        let tls = match sslmode {
            SslMode::Disable => None,
            _ => Some(Arc::new(client_config(sslmode, &params)?)),
        };
        Ok(PgConnector {
            config,
            sslmode,
            tls,
            display: redact(&rest),
        })
    }

    /// The `sslmode` in force.
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// Connects, drives the connection on the current tokio runtime, and asks the server
    /// how the connection is carried.
    pub async fn connect(&self) -> std::result::Result<(Client, Transport), ConnectError> {
        let (client, transport) = match &self.tls {
            None => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| ConnectError::new(e, self.sslmode))?;
                tokio::spawn(async move {
                    // A dropped connection shows as `is_closed` on the client.
                    let _ = connection.await;
                });
                (client, None)
            }
            Some(tls) => {
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                let (client, connection) = self
                    .config
                    .connect(connector)
                    .await
                    .map_err(|e| ConnectError::new(e, self.sslmode))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                (client, Some(()))
            }
        };
        let tls = match transport {
            None => None,
            Some(()) => client
                .query_opt(
                    "SELECT version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
                    &[],
                )
                .await
                .map_err(|e| ConnectError::new(e, self.sslmode))?
                .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1))),
        };
        let transport = Transport {
            tls_version: tls.as_ref().map(|(v, _)| v.clone()),
            cipher: tls.map(|(_, c)| c),
            sslmode: self.sslmode,
        };
        Ok((client, transport))
    }

    /// The connection string for messages: no password, no TLS parameters.
    pub fn location(&self) -> &str {
        &self.display
    }
}

/// A failed connection: the driver's error and one line saying why.
#[derive(Debug)]
pub struct ConnectError {
    /// What the driver said.
    pub source: tokio_postgres::Error,
    /// One line for people: the TLS reason when the handshake failed.
    pub message: String,
}

impl ConnectError {
    fn new(source: tokio_postgres::Error, sslmode: SslMode) -> Self {
        let message = describe(&source, sslmode);
        ConnectError { source, message }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// One line for a connection failure, naming the TLS reason when there is one.
fn describe(e: &tokio_postgres::Error, sslmode: SslMode) -> String {
    let mode = sslmode.as_str();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        let tls = s.downcast_ref::<rustls::Error>().or_else(|| {
            s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return match tls {
                rustls::Error::InvalidCertificate(cert) => format!(
                    "TLS: the server's certificate was refused (sslmode={mode}): {}",
                    describe_certificate_error(cert)
                ),
                other => format!("TLS handshake failed (sslmode={mode}): {other}"),
            };
        }
        source = s.source();
    }
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    if chain.contains("server does not support TLS") {
        return format!(
            "the server does not offer TLS, and sslmode={mode} requires it (the server needs ssl=on)"
        );
    }
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("PostgreSQL: {} ({detail})", db.message()),
            None => format!("PostgreSQL: {}", db.message()),
        },
        None => format!("PostgreSQL: {chain}"),
    }
}

fn describe_certificate_error(e: &CertificateError) -> String {
    match e {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it does not name the host connected to (verify-full checks the host name; connect by a name the certificate lists)".into()
        }
        CertificateError::UnknownIssuer => {
            "it is not signed by a CA in sslrootcert (untrusted issuer)".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet".into()
        }
        CertificateError::Revoked => "it is revoked".into(),
        other => format!("{other:?}"),
    }
}

/// Splits the TLS parameters out of a connection string, returning the rest (which the
/// driver parses) and the parameters.
fn split_tls_params(conninfo: &str) -> std::result::Result<(String, TlsParams), String> {
    let mut params = TlsParams::default();
    if let Some((scheme, rest)) = conninfo.split_once("://") {
        let (base, query) = match rest.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (rest, None),
        };
        let mut kept = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !params.set(key, percent_decode(value)?) {
                kept.push(pair);
            }
        }
        let mut out = format!("{scheme}://{base}");
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
        return Ok((out, params));
    }
    // libpq key=value form: `key = value`, values optionally single-quoted with `\` escapes.
    let mut kept = String::new();
    let bytes = conninfo.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &conninfo[start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            return Err(format!("missing \"=\" after {key:?}"));
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(format!("unterminated quoted value of {key:?}")),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1]);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
        }
        let value = String::from_utf8(value).map_err(|_| format!("{key:?} is not UTF-8"))?;
        if !params.set(key, value) {
            if !kept.is_empty() {
                kept.push(' ');
            }
            kept.push_str(&conninfo[start..i]);
        }
    }
    Ok((kept, params))
}

fn percent_decode(value: &str) -> std::result::Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding in {value:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{value:?} is not UTF-8 once decoded"))
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::InvalidConfig(format!("cannot read {what} {}: {e}", path.display())))
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_pem(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::InvalidConfig(format!(
                "{what} {}: not PEM certificates: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::InvalidConfig(format!(
            "{what} {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The rustls configuration of a TLS `sslmode`.
fn client_config(sslmode: SslMode, params: &TlsParams) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::InvalidConfig(format!("TLS: {e}")))?;
    let webpki = if sslmode.verifies() {
        let roots = match params.sslrootcert.as_deref() {
            None => {
                return Err(Error::InvalidConfig(format!(
                    "sslmode={} needs sslrootcert (a PEM file of the CA certificates to trust, or \"system\")",
                    sslmode.as_str()
                )));
            }
            Some("system") => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(&PathBuf::from(path), "sslrootcert")? {
                    roots
                        .add(cert)
                        .map_err(|e| Error::InvalidConfig(format!("sslrootcert {path}: {e}")))?;
                }
                roots
            }
        };
        Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| Error::InvalidConfig(format!("TLS: {e}")))?,
        )
    } else {
        None
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerCheck {
            webpki,
            check_name: sslmode == SslMode::VerifyFull,
            provider,
        }));
    match (&params.sslcert, &params.sslkey) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = certificates(&PathBuf::from(cert), "sslcert")?;
            let key_pem = zeroize::Zeroizing::new(read_pem(Path::new(key), "sslkey")?);
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
                // The parser's message could quote key bytes: name the file only.
                Error::InvalidConfig(format!("sslkey {key}: no PEM private key found"))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::InvalidConfig(format!("sslcert/sslkey do not make a client identity: {e}"))
            })
        }
        _ => Err(Error::InvalidConfig(
            "sslcert and sslkey go together: name both or neither".into(),
        )),
    }
}

/// The server certificate check of a TLS `sslmode`. `webpki: None` (`prefer`, `require`):
/// any certificate (encryption without authenticating the server, libpq's semantics; the
/// transport reports it). `Some` with `check_name` (`verify-full`): a chain to a trusted CA
/// naming the host; without it (`verify-ca`): the chain only. Handshake signatures are
/// checked in every mode, so the key exchange is bound to the certificate's key.
#[derive(Debug)]
struct ServerCheck {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn tls_parameters_are_split_from_both_forms() {
        let (rest, p) = split_tls_params(
            "postgres://u:pw@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:pw@h:5/db?application_name=x");
        assert_eq!(p.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/tmp/ca.pem"));

        let (rest, p) = split_tls_params(
            "host=h  sslmode = require dbname='my db' sslcert='/a b/c.pem' sslkey=/k\\ ey",
        )
        .unwrap();
        assert_eq!(rest, "host=h dbname='my db'");
        assert_eq!(p.sslmode.as_deref(), Some("require"));
        assert_eq!(p.sslcert.as_deref(), Some("/a b/c.pem"));
        assert_eq!(p.sslkey.as_deref(), Some("/k ey"));
        assert!(split_tls_params("host=h sslmode='x").is_err());
        assert!(split_tls_params("host").is_err());
    }

    #[test]
    fn modes_follow_libpq() {
        let c = PgConnector::with_env("postgres://h/db", no_env).unwrap();
        assert_eq!(c.sslmode(), SslMode::Prefer);
        let c = PgConnector::with_env("postgres://h/db?sslmode=disable", no_env).unwrap();
        assert!(c.tls.is_none());
        let env = |name: &str| (name == "PGSSLMODE").then(|| "require".to_owned());
        assert_eq!(
            PgConnector::with_env("postgres://h/db", env)
                .unwrap()
                .sslmode(),
            SslMode::Require
        );
        // The string wins over the environment.
        assert_eq!(
            PgConnector::with_env("postgres://h/db?sslmode=disable", env)
                .unwrap()
                .sslmode(),
            SslMode::Disable
        );
        let err = PgConnector::with_env("postgres://h/db?sslmode=verify-full", no_env).unwrap_err();
        assert!(err.to_string().contains("needs sslrootcert"), "{err}");
        let err = PgConnector::with_env("postgres://h/db?sslmode=allow", no_env).unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
        let err = PgConnector::with_env(
            "postgres://h/db?sslmode=verify-ca&sslrootcert=/nonexistent.pem",
            no_env,
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent.pem"), "{err}");
        let err = PgConnector::with_env("postgres://h/db?sslcert=/a.pem", no_env).unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
        // `require` with a root certificate verifies the chain (libpq).
        let c = PgConnector::with_env("postgres://h/db?sslmode=require&sslrootcert=system", no_env)
            .unwrap();
        assert_eq!(c.sslmode(), SslMode::VerifyCa);
        // No password in messages or Debug.
        let c = PgConnector::with_env("postgres://u:secret@h/db?sslmode=disable", no_env).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
        assert!(!c.location().contains("secret"));
    }
}
