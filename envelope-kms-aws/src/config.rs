//! Building an [`AwsKms`]: from an `aws-kms://` URI, the standard AWS environment and
//! explicit settings.

use std::time::Duration;

use envelope_core::{Error, Result};
use zeroize::Zeroizing;

use crate::kms::AwsKms;

/// Fixed credentials; the secret is zeroized on drop and never printed.
#[derive(Clone)]
pub(crate) struct StaticCredentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: Zeroizing<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticCredentials([REDACTED])")
    }
}

/// Configures and builds an [`AwsKms`].
///
/// Credentials and region come from the standard AWS chain (environment, shared config and
/// credentials files, SSO, web identity, container and instance metadata) through
/// `aws-config`, loaded on the first KMS call. An `aws-kms://` URI fixes the key and, from its
/// ARN, the region. The endpoint can be overridden for emulators (`with_endpoint`, or the
/// standard `AWS_ENDPOINT_URL_KMS`); a plain `http://` endpoint is refused unless its host is
/// loopback and the caller opted in.
///
/// ```
/// use envelope_kms_aws::AwsKmsBuilder;
/// let (builder, key) = AwsKmsBuilder::from_env()
///     .with_url("aws-kms://arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
///     .expect("valid URI");
/// assert!(key.starts_with("arn:aws:kms:eu-west-1:"));
/// let kms = builder.build().expect("valid configuration"); // no network until the first call
/// # drop(kms);
/// ```
#[derive(Debug, Clone)]
pub struct AwsKmsBuilder {
    pub(crate) region: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) allow_http_loopback: bool,
    pub(crate) static_credentials: Option<StaticCredentials>,
    pub(crate) operation_timeout: Duration,
    pub(crate) attempt_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_attempts: u32,
}

impl Default for AwsKmsBuilder {
    fn default() -> Self {
        AwsKmsBuilder {
            region: None,
            endpoint: None,
            allow_http_loopback: false,
            static_credentials: None,
            operation_timeout: Duration::from_secs(15),
            attempt_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            max_attempts: 3,
        }
    }
}

impl AwsKmsBuilder {
    /// Defaults: the standard AWS credential and region chain, 3 attempts, explicit timeouts.
    pub fn new() -> Self {
        AwsKmsBuilder::default()
    }

    /// Like [`AwsKmsBuilder::new`], plus `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL` as the
    /// endpoint when set (the SDK reads the rest of the environment itself).
    pub fn from_env() -> Self {
        let endpoint = ["AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()));
        AwsKmsBuilder {
            endpoint,
            ..AwsKmsBuilder::default()
        }
    }

    /// Applies an `aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID` (or `…:alias/NAME`) URI:
    /// the region comes from the ARN; returns the key id (the ARN). `?http=loopback` allows a
    /// plain-http loopback endpoint (an emulator).
    pub fn with_url(mut self, uri: &str) -> Result<(Self, String)> {
        let invalid = |reason: &str| Error::InvalidKeyUri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = uri
            .strip_prefix("aws-kms://")
            .ok_or_else(|| invalid("expected aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID"))?;
        let (arn, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [arn_prefix, partition, service, region, account, resource] = parts[..] else {
            return Err(invalid(
                "not an ARN: expected arn:PARTITION:kms:REGION:ACCOUNT:key/ID",
            ));
        };
        if arn_prefix != "arn" || !partition.starts_with("aws") || service != "kms" {
            return Err(invalid("not a KMS ARN (arn:aws:kms:…)"));
        }
        if region.is_empty() || account.is_empty() {
            return Err(invalid("the ARN must name a region and an account"));
        }
        let valid_resource = resource
            .strip_prefix("key/")
            .or_else(|| resource.strip_prefix("alias/"))
            .is_some_and(|id| !id.is_empty());
        if !valid_resource {
            return Err(invalid("the ARN's resource must be key/ID or alias/NAME"));
        }
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair {
                "http=loopback" => self.allow_http_loopback = true,
                other => return Err(invalid(&format!("unknown query parameter {other:?}"))),
            }
        }
        self.region = Some(region.to_owned());
        Ok((self, arn.to_owned()))
    }

    /// The region (otherwise from the URI's ARN or the AWS environment).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// An endpoint override, e.g. an emulator's `http://127.0.0.1:PORT`.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Allows a plain-http endpoint, only for a loopback host.
    pub fn with_allow_http_loopback(mut self, allow: bool) -> Self {
        self.allow_http_loopback = allow;
        self
    }

    /// Fixed credentials instead of the standard chain (for emulators and tests).
    pub fn with_static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.static_credentials = Some(StaticCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Zeroizing::new(secret_access_key.into()),
        });
        self
    }

    /// Timeouts: a whole operation with its retries (default 15 s), one attempt (5 s) and
    /// connecting (3 s).
    pub fn with_timeouts(
        mut self,
        operation: Duration,
        attempt: Duration,
        connect: Duration,
    ) -> Self {
        self.operation_timeout = operation;
        self.attempt_timeout = attempt;
        self.connect_timeout = connect;
        self
    }

    /// Attempts per operation for retryable failures (default 3: the SDK's standard retry
    /// with exponential back-off and jitter).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Checks the configuration and builds the client. Makes no network call: the AWS
    /// configuration is loaded on the first KMS call.
    pub fn build(self) -> Result<AwsKms> {
        if let Some(endpoint) = &self.endpoint {
            envelope_core::check_kms_endpoint(endpoint, self.allow_http_loopback)?;
        }
        Ok(AwsKms::from_builder(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parsing() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let (b, key) = AwsKmsBuilder::new()
            .with_url(&format!("aws-kms://{arn}"))
            .unwrap();
        assert_eq!(key, arn);
        assert_eq!(b.region.as_deref(), Some("eu-west-1"));
        let (b, key) = AwsKmsBuilder::new()
            .with_url("aws-kms://arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/orders?http=loopback")
            .unwrap();
        assert!(key.ends_with(":alias/orders"));
        assert!(b.allow_http_loopback);
        for bad in [
            "aws-kms://",
            "aws-kms://1234abcd",
            "aws-kms://arn:aws:s3:::bucket/key",
            "aws-kms://arn:aws:kms::111122223333:key/k",
            "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/",
            "aws-kms://arn:aws:kms:eu-west-1:111122223333:grant/x",
            "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/k?x=1",
            "gcp-kms://projects/p",
        ] {
            assert!(AwsKmsBuilder::new().with_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_endpoints_only_for_loopback_with_opt_in() {
        let b = || AwsKmsBuilder::new().with_endpoint("http://127.0.0.1:5000");
        assert!(b().build().is_err());
        assert!(b().with_allow_http_loopback(true).build().is_ok());
        assert!(
            AwsKmsBuilder::new()
                .with_endpoint("http://192.168.1.1:5000")
                .with_allow_http_loopback(true)
                .build()
                .is_err()
        );
    }

    #[test]
    fn debug_shows_no_credentials() {
        let b = AwsKmsBuilder::new().with_static_credentials("AKIDEXAMPLE", "wJalrXUtnFEMIsecret");
        let kms = b.build().unwrap();
        let shown = format!(
            "{kms:?} {:?}",
            AwsKmsBuilder::new().with_static_credentials("AKIDEXAMPLE", "wJalrXUtnFEMIsecret")
        );
        assert!(
            !shown.contains("wJalrXUtnFEMIsecret") && !shown.contains("AKIDEXAMPLE"),
            "{shown}"
        );
    }
}
