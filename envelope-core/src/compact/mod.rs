//! The compact column form: 72 bytes of overhead for AES-256-GCM (40 in the
//! non-committing version 2), with the wrapped DEK kept once in a [`DekStore`] instead of in
//! every value.
//!
//! A compact ciphertext is `"EV" | 0x03 | suite | DEK id | key commitment | nonce |
//! ciphertext | tag` (version 2: without the commitment; `docs/FORMAT.md`, "Compact form"). An [`crate::Envelope`] built with
//! [`crate::EnvelopeBuilder::dek_store`] writes it and reads both forms; a KEK rotation
//! rewraps the store's rows ([`crate::Envelope::rewrap_wrapped`], driven by
//! `envelope rewrap --dek-store`) and no value changes.

mod form;
mod rows_json;
mod store;

#[cfg(any(test, feature = "testing"))]
pub(crate) use form::seal_with_nonce;
pub use form::{
    COMPACT_FORMAT_VERSION, COMPACT_TEXT_PREFIX, CompactInfo, CompactVersion, DEK_ID_LEN, DekId,
    MAX_DEK_ID, compact_overhead, header_info, inspect_compact, is_compact,
};
pub(crate) use form::{ParsedCompact, parse};
pub use rows_json::{stored_deks_from_json, stored_deks_to_json};
pub(crate) use store::check_user_context;
pub use store::{
    BINDING_KEYS, DekState, DekStore, NewDek, RESERVED_CONTEXT_PREFIX, StoreCheckpoint, StoredDek,
    WrappedDekChange, binding_context,
};
