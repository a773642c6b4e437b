#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod audit;
pub mod blind_index;
mod blocking;
pub mod cache;
mod clock;
pub mod compact;
pub mod crypto;
mod endpoint;
mod envelope;
mod error;
pub mod format;
pub mod kms;
pub mod local;
mod per_process;
mod secret;
mod stats;
pub mod stream;
mod suite;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "testing")]
pub mod vectors;

pub use audit::KeyUseLog;
pub use blind_index::{BlindIndexes, IndexKeyStore, IndexValue, Normalizer};
pub use blocking::BlockingEnvelope;
pub use cache::CachePolicy;
pub use compact::{DekId, DekState, DekStore};
pub use crypto::{CryptoProvider, fips_mode};
pub use endpoint::check_kms_endpoint;
pub use envelope::{Envelope, EnvelopeBuilder, Rewrapped, SlotWrite, StreamRewrap};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use format::HeaderInfo;
pub use kms::{
    EncryptionContext, GeneratedDek, KeyDescription, KeyVersionInfo, KeyVersionState, Kms, KmsExt,
    LabelCheck, Provider, RotationState, WrappedDek, canonical_context,
};
pub use local::{LocalKeyring, LocalKms};
pub use per_process::PerProcess;
pub use secret::{Dek, KEY_LEN};
pub use stats::{ActiveDekStats, EnvelopeStats};
pub use suite::{COMMITMENT_LEN, Suite, TAG_LEN};
