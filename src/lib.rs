#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use envelope_core::*;

mod uri;

pub use uri::{builder_from_uri, kms_from_uri, open};
