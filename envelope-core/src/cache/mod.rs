//! The DEK cache: one active DEK per envelope for encryption, unwrapped DEKs for
//! decryption, single-flight loading for both, and the bounds on KMS calls that hostile
//! ciphertexts can cause (a negative cache and a rate limit).

mod active;
mod guard;
mod hot;
mod policy;
mod single_flight;

pub(crate) use active::{ActiveDek, ActiveSlot};
pub(crate) use guard::{GuardedOp, Refusal, UnwrapGuard};
pub(crate) use hot::{CachedKey, HotKeys};
pub use policy::CachePolicy;
pub(crate) use single_flight::SingleFlightCache;
