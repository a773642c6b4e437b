//! The stores jobs run on, each one module implementing [`crate::engine::store::Store`],
//! and the one place the command line's store arguments open them.

pub mod dek_store;
pub mod files;
pub mod parquet;
pub mod postgres;
pub mod s3;

use std::sync::Arc;

use envelope::Envelope;

use crate::aad::AadTemplate;
use crate::cli::StoreArgs;
use crate::engine::store::Store;
use crate::exit::CliError;

/// Opens the stores of values the arguments name (the column, each directory, each Parquet
/// tree, each S3 prefix), with the AAD template re-encryption renders for each value and, for re-encryption, the
/// envelope that re-encrypts streams in place. A new store is registered here: one line
/// that opens it from its arguments.
pub async fn open_values(
    args: &StoreArgs,
    template: Option<&AadTemplate>,
    streams: Option<&Envelope>,
) -> Result<Vec<Arc<dyn Store>>, CliError> {
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    if let (Some(db), Some(table), Some(column)) = (&args.db, &args.table, &args.column) {
        stores.push(Arc::new(
            postgres::Column::open(db, table, column, template.cloned()).await?,
        ));
    }
    for dir in &args.dirs {
        let mut directory = files::Directory::open(dir, template.cloned())?;
        if let Some(envelope) = streams {
            directory = directory.reencrypting_streams(envelope.clone());
        }
        stores.push(Arc::new(directory));
    }
    for dir in &args.parquet {
        if template.is_some_and(|t| !t.is_empty()) {
            return Err(CliError::with_code(
                crate::exit::USAGE,
                "--aad does not apply to --parquet: each wrapped key is bound to its master key id",
            ));
        }
        stores.push(Arc::new(
            parquet::ParquetTree::open(dir, args.s3_endpoint.as_deref()).await?,
        ));
    }
    for url in &args.s3 {
        let Some(url) = crate::s3::S3Url::parse(url) else {
            return Err(CliError::with_code(
                crate::exit::USAGE,
                format!("--s3 {url}: an S3 prefix is s3://BUCKET/PREFIX"),
            ));
        };
        let mut prefix =
            s3::Prefix::open(url?, args.s3_endpoint.as_deref(), template.cloned()).await?;
        if let Some(envelope) = streams {
            prefix = prefix.reencrypting_streams(envelope.clone());
        }
        stores.push(Arc::new(prefix));
    }
    Ok(stores)
}

/// Opens the column with its blind-index column beside it (`reindex`).
pub async fn open_indexed(
    args: &StoreArgs,
    template: Option<&AadTemplate>,
    index_column: &str,
) -> Result<Arc<dyn Store>, CliError> {
    let (Some(db), Some(table), Some(column)) = (&args.db, &args.table, &args.column) else {
        return Err(CliError::new(
            "a blind-index column is beside a PostgreSQL column: --db, --table, --column",
        ));
    };
    let store = postgres::Column::open(db, table, column, template.cloned())
        .await?
        .with_index_column(index_column)
        .await?;
    Ok(Arc::new(store))
}
