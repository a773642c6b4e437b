//! The DEK cache: one active DEK per envelope for encryption, unwrapped DEKs for
//! decryption, and single-flight loading for both.

mod active;
mod hot;
mod policy;
mod single_flight;

pub(crate) use active::{ActiveDek, ActiveSlot};
pub(crate) use hot::{CachedKey, HotKeys};
pub use policy::CachePolicy;
pub(crate) use single_flight::SingleFlightCache;
