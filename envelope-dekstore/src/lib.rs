#![doc = include_str!("../README.md")]

mod index_keys;
#[cfg(feature = "postgres")]
pub mod pg_connect;
#[cfg(feature = "postgres")]
mod postgres;
mod row;
#[cfg(feature = "sqlite")]
mod sqlite;
mod uri;

use std::sync::Arc;

use envelope_core::{DekStore, Result};

#[cfg(feature = "postgres")]
pub use pg_connect::{PgConnector, SslMode, Transport};
#[cfg(feature = "postgres")]
pub use postgres::PgDekStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteDekStore;
pub use uri::{DEFAULT_TABLE, DekStoreUri, redact};

/// A store a URI names, as whichever of its contracts the caller wants (the SQLite and
/// PostgreSQL stores keep DEKs and index keys, so both open the same way).
fn open_as<T: ?Sized>(
    uri: &str,
    #[cfg(feature = "sqlite")] sqlite: fn(SqliteDekStore) -> Arc<T>,
    #[cfg(feature = "postgres")] postgres: fn(PgDekStore) -> Arc<T>,
) -> Result<Arc<T>> {
    match DekStoreUri::parse(uri)? {
        #[cfg(feature = "sqlite")]
        DekStoreUri::Sqlite { path } => Ok(sqlite(SqliteDekStore::open(path)?)),
        #[cfg(feature = "postgres")]
        DekStoreUri::Postgres { config, table } => Ok(postgres(PgDekStore::new(&config, &table)?)),
        #[allow(unreachable_patterns)]
        other => Err(envelope_core::Error::FeatureNotEnabled {
            scheme: other.scheme().into(),
            feature: other.feature(),
        }),
    }
}

/// Opens the index key store of the DEK store a URI names: the same file or database, in
/// the table beside the DEKs (`envelope_index_keys` in SQLite, `<table>_index_keys` in
/// PostgreSQL), created on first use.
pub fn open_index_key_store(uri: &str) -> Result<Arc<dyn envelope_core::IndexKeyStore>> {
    open_as(
        uri,
        #[cfg(feature = "sqlite")]
        |s| Arc::new(s),
        #[cfg(feature = "postgres")]
        |s| Arc::new(s),
    )
}

/// Opens the DEK store a URI names: `sqlite:///path/deks.sqlite` (the file and its tables
/// are created if missing) or `postgres://user@host:port/db[?table=NAME]` (the table is
/// created on first use; connecting waits for the first call). Makes no connection and no
/// KMS call for PostgreSQL; opens (and creates) the file for SQLite.
pub fn open_dek_store(uri: &str) -> Result<Arc<dyn DekStore>> {
    open_as(
        uri,
        #[cfg(feature = "sqlite")]
        |s| Arc::new(s),
        #[cfg(feature = "postgres")]
        |s| Arc::new(s),
    )
}
