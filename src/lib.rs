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

pub use uri::{builder_from_uri, kms_from_uri, open};
