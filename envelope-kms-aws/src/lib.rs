#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod errors;
mod kms;

pub use config::AwsKmsBuilder;
pub use kms::{AwsKms, AwsKmsCalls};
