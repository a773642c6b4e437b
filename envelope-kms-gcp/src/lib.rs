#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod errors;
mod integrity;
mod kms;
mod versions;

pub use config::{ENDPOINT_ENV, GcpKmsBuilder};
pub use kms::{GcpKms, GcpKmsCalls};
