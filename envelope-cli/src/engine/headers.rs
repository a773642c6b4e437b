//! Reading a stored ciphertext's header facts, a compact one's through its DEK store row
//! (one store read per DEK id, remembered).

use std::collections::HashMap;
use std::sync::Arc;

use envelope::compact::{self, DekId, DekStore, StoredDek};
use envelope::{HeaderInfo, WrappedDek, format};
use tokio::sync::Mutex;

use crate::labels::{LabelVerifier, Verdict};

/// Reads compact headers through a DEK store: one store read per DEK id, remembered.
pub struct StoreHeaders {
    store: Arc<dyn DekStore>,
    rows: Mutex<HashMap<DekId, Option<StoredDek>>>,
}

impl StoreHeaders {
    /// A reader over `store`.
    pub fn new(store: Arc<dyn DekStore>) -> Self {
        StoreHeaders {
            store,
            rows: Mutex::new(HashMap::new()),
        }
    }

    async fn row(&self, id: DekId) -> envelope::Result<StoredDek> {
        let mut rows = self.rows.lock().await;
        let row = match rows.get(&id) {
            Some(row) => row.clone(),
            None => {
                let row = self.store.get(id).await?;
                rows.insert(id, row.clone());
                row
            }
        };
        row.ok_or(envelope::Error::DekNotFound {
            id: id.get(),
            retired: false,
        })
    }

    /// The header facts of a binary ciphertext of either form (a compact one's KEK facts
    /// come from its store row).
    pub async fn header(&self, binary: &[u8]) -> envelope::Result<HeaderInfo> {
        match compact::inspect_compact(binary) {
            Ok(info) => compact::header_info(binary, &self.row(info.dek_id).await?),
            Err(envelope::Error::UnsupportedFormatVersion(_)) => format::inspect(binary),
            Err(e) => Err(e),
        }
    }

    /// The wrapped DEK a ciphertext of either form decrypts through.
    pub async fn wrapped(&self, binary: &[u8]) -> envelope::Result<WrappedDek> {
        Ok(self.source(binary).await?.0)
    }

    /// The wrapped DEK a ciphertext decrypts through, and for a compact one its store row
    /// (whose binding the unwrap needs).
    pub async fn source(&self, binary: &[u8]) -> envelope::Result<(WrappedDek, Option<StoredDek>)> {
        match compact::inspect_compact(binary) {
            Ok(info) => {
                let row = self.row(info.dek_id).await?;
                Ok((row.wrapped.clone(), Some(row)))
            }
            Err(envelope::Error::UnsupportedFormatVersion(_)) => {
                Ok((format::wrapped_dek(binary)?, None))
            }
            Err(e) => Err(e),
        }
    }
}

/// The header of a stored ciphertext: through the store when there is one; without one, a
/// compact value is an `UnsupportedFormatVersion(2)` error (the census says
/// `needs_dek_store`).
pub async fn header(binary: &[u8], store: Option<&StoreHeaders>) -> envelope::Result<HeaderInfo> {
    match store {
        Some(store) => store.header(binary).await,
        None => format::inspect(binary),
    }
}

/// Whether a stored value is one the jobs can read: a v1 header, or a well-formed compact
/// one (its store is consulted later).
pub fn parses(binary: &[u8]) -> bool {
    format::inspect(binary).is_ok() || compact::inspect_compact(binary).is_ok()
}

/// The verdict for a value's label through its wrapped DEK (either form).
pub async fn verdict(
    verifier: &LabelVerifier,
    binary: &[u8],
    store: Option<&StoreHeaders>,
) -> envelope::Result<Option<Verdict>> {
    let (wrapped, row) = match store {
        Some(store) => store.source(binary).await?,
        None => (format::wrapped_dek(binary)?, None),
    };
    verifier.verdict(&wrapped, row.as_ref()).await
}
