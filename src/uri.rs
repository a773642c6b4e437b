//! One dispatcher from key URIs to backends.

use std::sync::Arc;

use envelope_core::{Envelope, EnvelopeBuilder, Error, Kms, LocalKms, Result};

/// A KMS and the key id within it for a key URI:
///
/// | scheme | example | backend |
/// |---|---|---|
/// | `local://` | `local:///etc/app/keyring.json#orders` | the local keyring file (key `default` when no `#KEY`) |
/// | `aws-kms://` | `aws-kms://arn:aws:kms:eu-west-1:111122223333:key/…` | AWS KMS (feature `aws`) |
/// | `gcp-kms://` | `gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k` | Google Cloud KMS (feature `gcp`) |
/// | `vault://` | `vault://vault.internal:8200/transit/keys/orders` | Vault / OpenBao Transit (feature `vault`) |
///
/// A scheme whose backend this build lacks fails with [`Error::FeatureNotEnabled`].
pub fn kms_from_uri(uri: &str) -> Result<(Arc<dyn Kms>, String)> {
    let scheme = uri.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "local" => {
            let (kms, key_id) = LocalKms::from_uri(uri)?;
            Ok((Arc::new(kms), key_id))
        }
        #[cfg(feature = "aws")]
        "aws-kms" => {
            let (builder, key_id) = envelope_kms_aws::AwsKmsBuilder::from_env().with_url(uri)?;
            Ok((Arc::new(builder.build()?), key_id))
        }
        #[cfg(not(feature = "aws"))]
        "aws-kms" => Err(not_enabled(scheme, "aws")),
        #[cfg(feature = "gcp")]
        "gcp-kms" => {
            let (builder, key_id) = envelope_kms_gcp::GcpKmsBuilder::from_env().with_url(uri)?;
            Ok((Arc::new(builder.build()?), key_id))
        }
        #[cfg(not(feature = "gcp"))]
        "gcp-kms" => Err(not_enabled(scheme, "gcp")),
        #[cfg(feature = "vault")]
        "vault" => {
            let (builder, key_id) = envelope_kms_vault::VaultBuilder::from_env().with_url(uri)?;
            Ok((Arc::new(builder.build()?), key_id))
        }
        #[cfg(not(feature = "vault"))]
        "vault" => Err(not_enabled(scheme, "vault")),
        _ => Err(Error::InvalidKeyUri {
            uri: uri.to_owned(),
            reason: "unknown scheme: expected local://, aws-kms://, gcp-kms:// or vault://".into(),
        }),
    }
}

#[cfg_attr(
    all(feature = "aws", feature = "gcp", feature = "vault"),
    allow(dead_code)
)]
fn not_enabled(scheme: &str, feature: &'static str) -> Error {
    Error::FeatureNotEnabled {
        scheme: scheme.to_owned(),
        feature,
    }
}

/// An [`EnvelopeBuilder`] for a key URI, to set the suite, cache policy or encryption
/// context before building.
pub fn builder_from_uri(uri: &str) -> Result<EnvelopeBuilder> {
    let (kms, key_id) = kms_from_uri(uri)?;
    Ok(Envelope::builder_dyn(kms, key_id))
}

/// An [`Envelope`] with the default suite and cache policy for a key URI.
pub fn open(uri: &str) -> Result<Envelope> {
    builder_from_uri(uri)?.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope_core::ErrorKind;

    #[test]
    fn dispatches_and_names_missing_features() {
        assert!(kms_from_uri("local:///tmp/x.json").is_ok());
        let mut missing = Vec::new();
        if cfg!(not(feature = "gcp")) {
            missing.push((
                "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
                "gcp",
            ));
        }
        if cfg!(not(feature = "aws")) {
            missing.push(("aws-kms://arn:aws:kms:us-east-1:111122223333:key/k", "aws"));
        }
        if cfg!(not(feature = "vault")) {
            missing.push(("vault://127.0.0.1:8200/transit/keys/k", "vault"));
        }
        for (uri, feature) in missing {
            let err = kms_from_uri(uri).expect_err("not enabled");
            assert_eq!(err.kind(), ErrorKind::FeatureNotEnabled);
            assert!(err.to_string().contains(&format!("`{feature}`")), "{err}");
        }
        #[cfg(feature = "vault")]
        {
            // Dispatched to the Vault backend, whose checks then apply.
            let err = kms_from_uri("vault://10.0.0.1:8200/transit/keys/k?http=loopback")
                .expect_err("plain http to a non-loopback host");
            assert_eq!(err.kind(), ErrorKind::InvalidConfig);
            assert!(err.to_string().contains("only loopback"), "{err}");
        }
        #[cfg(feature = "aws")]
        {
            let err = kms_from_uri("aws-kms://arn:aws:kms:us-east-1:111122223333:grant/x")
                .expect_err("not a key ARN");
            assert_eq!(err.kind(), ErrorKind::InvalidKeyUri);
            assert!(kms_from_uri("aws-kms://arn:aws:kms:us-east-1:111122223333:key/k").is_ok());
        }
        #[cfg(feature = "gcp")]
        {
            let err = kms_from_uri("gcp-kms://projects/p/locations/l/keyRings/r")
                .expect_err("not a CryptoKey name");
            assert_eq!(err.kind(), ErrorKind::InvalidKeyUri);
            let (kms, key) =
                kms_from_uri("gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k").unwrap();
            assert_eq!(kms.provider(), envelope_core::Provider::GcpKms);
            assert_eq!(key, "projects/p/locations/l/keyRings/r/cryptoKeys/k");
        }
        let err = kms_from_uri("s3://bucket/key").expect_err("unknown");
        assert_eq!(err.kind(), ErrorKind::InvalidKeyUri);
    }
}
