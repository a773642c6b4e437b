//! Building a [`GcpKms`]: from a `gcp-kms://` URI, the environment and explicit settings.

use std::time::Duration;

use envelope_core::{Error, Result};

use crate::kms::GcpKms;

/// The environment variable naming an endpoint override (an emulator, a private endpoint).
pub const ENDPOINT_ENV: &str = "ENVELOPE_GCP_KMS_ENDPOINT";

/// Configures and builds a [`GcpKms`].
///
/// Credentials are Google's Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`,
/// the gcloud user credentials, workload identity, the metadata server), loaded when the
/// client is built on the first KMS call. The endpoint can be overridden (`with_endpoint`, or
/// `ENVELOPE_GCP_KMS_ENDPOINT`); a plain `http://` endpoint is refused unless its host is
/// loopback and the caller opted in. Anonymous credentials (no token sent at all) are for
/// emulators only and must be asked for.
///
/// ```
/// use envelope_kms_gcp::GcpKmsBuilder;
/// let (builder, key) = GcpKmsBuilder::new()
///     .with_url("gcp-kms://projects/p/locations/europe-west1/keyRings/app/cryptoKeys/orders")
///     .expect("valid URI");
/// assert_eq!(key, "projects/p/locations/europe-west1/keyRings/app/cryptoKeys/orders");
/// let kms = builder.build().expect("valid configuration"); // no network until the first call
/// # drop(kms);
/// ```
#[derive(Debug, Clone)]
pub struct GcpKmsBuilder {
    pub(crate) endpoint: Option<String>,
    pub(crate) allow_http_loopback: bool,
    pub(crate) anonymous: bool,
    pub(crate) operation_timeout: Duration,
    pub(crate) attempt_timeout: Duration,
    pub(crate) max_attempts: u32,
}

impl Default for GcpKmsBuilder {
    fn default() -> Self {
        GcpKmsBuilder {
            endpoint: None,
            allow_http_loopback: false,
            anonymous: false,
            operation_timeout: Duration::from_secs(15),
            attempt_timeout: Duration::from_secs(5),
            max_attempts: 3,
        }
    }
}

impl GcpKmsBuilder {
    /// Defaults: Application Default Credentials, Google's endpoint, 3 attempts, explicit
    /// timeouts.
    pub fn new() -> Self {
        GcpKmsBuilder::default()
    }

    /// Like [`GcpKmsBuilder::new`], plus `ENVELOPE_GCP_KMS_ENDPOINT` as the endpoint when set.
    pub fn from_env() -> Self {
        GcpKmsBuilder {
            endpoint: std::env::var(ENDPOINT_ENV).ok().filter(|v| !v.is_empty()),
            ..GcpKmsBuilder::default()
        }
    }

    /// Applies a `gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K` URI and returns
    /// the key id (the CryptoKey's resource name). Query parameters, for emulators only:
    /// `http=loopback` allows a plain-http loopback endpoint, `credentials=anonymous` sends
    /// no credentials.
    pub fn with_url(mut self, uri: &str) -> Result<(Self, String)> {
        let invalid = |reason: &str| Error::InvalidKeyUri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = uri.strip_prefix("gcp-kms://").ok_or_else(|| {
            invalid("expected gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K")
        })?;
        let (name, query) = match rest.split_once('?') {
            Some((n, q)) => (n, Some(q)),
            None => (rest, None),
        };
        parse_crypto_key_name(name).map_err(|reason| invalid(&reason))?;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair {
                "http=loopback" => self.allow_http_loopback = true,
                "credentials=anonymous" => self.anonymous = true,
                other => return Err(invalid(&format!("unknown query parameter {other:?}"))),
            }
        }
        Ok((self, name.to_owned()))
    }

    /// An endpoint override, e.g. an emulator's `http://127.0.0.1:PORT` or a private
    /// Service Connect endpoint.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Allows a plain-http endpoint, only for a loopback host.
    pub fn with_allow_http_loopback(mut self, allow: bool) -> Self {
        self.allow_http_loopback = allow;
        self
    }

    /// Sends no credentials at all (for an emulator). Refused by [`GcpKmsBuilder::build`]
    /// unless an endpoint override is set: Google's endpoint never accepts anonymous calls.
    pub fn with_anonymous_credentials(mut self, anonymous: bool) -> Self {
        self.anonymous = anonymous;
        self
    }

    /// Timeouts: a whole operation with its retries (default 15 s) and one attempt (5 s).
    pub fn with_timeouts(mut self, operation: Duration, attempt: Duration) -> Self {
        self.operation_timeout = operation;
        self.attempt_timeout = attempt;
        self
    }

    /// Attempts per operation for transient failures (default 3, with exponential back-off
    /// and jitter).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Checks the configuration and builds the backend. Makes no network call: the client
    /// and the credentials are set up on the first KMS call.
    pub fn build(self) -> Result<GcpKms> {
        match &self.endpoint {
            Some(endpoint) => {
                envelope_core::check_kms_endpoint(endpoint, self.allow_http_loopback)?
            }
            None if self.anonymous => {
                return Err(Error::InvalidConfig(
                    "anonymous credentials are for an emulator: set its endpoint too".into(),
                ));
            }
            None => {}
        }
        Ok(GcpKms::from_builder(self))
    }
}

/// Checks a CryptoKey resource name `projects/P/locations/L/keyRings/R/cryptoKeys/K`.
pub(crate) fn parse_crypto_key_name(name: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = name.split('/').collect();
    let [
        "projects",
        project,
        "locations",
        location,
        "keyRings",
        ring,
        "cryptoKeys",
        key,
    ] = parts[..]
    else {
        return Err(
            "expected projects/P/locations/L/keyRings/R/cryptoKeys/K (a CryptoKey, not a version)"
                .into(),
        );
    };
    for (what, id) in [
        ("project", project),
        ("location", location),
        ("key ring", ring),
        ("crypto key", key),
    ] {
        let valid = !id.is_empty()
            && id.len() <= 63
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if !valid {
            return Err(format!(
                "the {what} id {id:?} is empty, too long or has characters outside [A-Za-z0-9_.:-]"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "projects/p-1/locations/europe-west1/keyRings/app/cryptoKeys/orders";

    #[test]
    fn uri_parsing() {
        let (b, key) = GcpKmsBuilder::new()
            .with_url(&format!("gcp-kms://{NAME}"))
            .unwrap();
        assert_eq!(key, NAME);
        assert!(!b.allow_http_loopback && !b.anonymous);
        let (b, _) = GcpKmsBuilder::new()
            .with_url(&format!(
                "gcp-kms://{NAME}?http=loopback&credentials=anonymous"
            ))
            .unwrap();
        assert!(b.allow_http_loopback && b.anonymous);
        for bad in [
            "gcp-kms://",
            "gcp-kms://projects/p",
            "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/",
            "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k%2F",
            "gcp-kms://projects/p/locations/l/keyRing/r/cryptoKeys/k",
            "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k?x=1",
            "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/k",
        ] {
            assert!(GcpKmsBuilder::new().with_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_for_loopback_with_opt_in_and_anonymous_only_with_an_endpoint() {
        let b = || GcpKmsBuilder::new().with_endpoint("http://127.0.0.1:8080");
        assert!(b().build().is_err());
        assert!(b().with_allow_http_loopback(true).build().is_ok());
        assert!(
            GcpKmsBuilder::new()
                .with_endpoint("http://10.1.2.3:8080")
                .with_allow_http_loopback(true)
                .build()
                .is_err()
        );
        let err = GcpKmsBuilder::new()
            .with_anonymous_credentials(true)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("emulator"), "{err}");
        assert!(GcpKmsBuilder::new().build().is_ok());
    }
}
