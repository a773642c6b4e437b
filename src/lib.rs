#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use envelope_core::*;

mod uri;

/// The AWS KMS backend (feature `aws`).
#[cfg(feature = "aws")]
pub use envelope_kms_aws as aws;

/// The Google Cloud KMS backend (feature `gcp`).
#[cfg(feature = "gcp")]
pub use envelope_kms_gcp as gcp;

/// The Vault / OpenBao Transit backend (feature `vault`).
#[cfg(feature = "vault")]
pub use envelope_kms_vault as vault;

/// DEK stores for the compact column form: SQLite and PostgreSQL (feature `dekstore`).
#[cfg(feature = "dekstore")]
pub use envelope_dekstore as dekstore;

pub use uri::{builder_from_uri, kms_from_uri, open};

/// Opens the index key store of a DEK store URI (the same file or database, in a table
/// beside the DEKs), for [`envelope_core::blind_index::BlindIndexes`]. Without the
/// `dekstore` feature every such URI is [`Error::FeatureNotEnabled`].
pub fn open_index_key_store(
    uri: &str,
) -> Result<std::sync::Arc<dyn envelope_core::blind_index::IndexKeyStore>> {
    #[cfg(feature = "dekstore")]
    {
        envelope_dekstore::open_index_key_store(uri)
    }
    #[cfg(not(feature = "dekstore"))]
    {
        let scheme = uri.split_once("://").map_or(uri, |(scheme, _)| scheme);
        Err(Error::FeatureNotEnabled {
            scheme: scheme.to_owned(),
            feature: "dekstore",
        })
    }
}

/// Opens the DEK store a URI names (`sqlite:///path/deks.sqlite`,
/// `postgres://user@host:port/db[?table=NAME]`), for [`EnvelopeBuilder::dek_store`]: the
/// envelope then writes the compact form (`docs/FORMAT.md`, "Compact form"). Without the
/// `dekstore` feature every such URI is [`Error::FeatureNotEnabled`].
pub fn open_dek_store(uri: &str) -> Result<std::sync::Arc<dyn DekStore>> {
    #[cfg(feature = "dekstore")]
    {
        envelope_dekstore::open_dek_store(uri)
    }
    #[cfg(not(feature = "dekstore"))]
    {
        let scheme = uri.split_once("://").map_or(uri, |(scheme, _)| scheme);
        Err(Error::FeatureNotEnabled {
            scheme: scheme.to_owned(),
            feature: "dekstore",
        })
    }
}
