#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod errors;
mod kms;
mod signer;

pub use config::{VaultBuilder, VaultConfigKey};
pub use kms::{BatchItem, VaultKms};
pub use signer::TransitSigner;
