//! The stores jobs run on, each one module implementing [`crate::engine::store::Store`],
//! and the one place the command line's store arguments open them.

pub mod dek_store;
pub mod files;
pub mod postgres;

use std::sync::Arc;

use crate::aad::AadTemplate;
use crate::cli::StoreArgs;
use crate::engine::store::Store;
use crate::exit::CliError;

/// Opens the stores of values the arguments name (the column, then each directory), with
/// the AAD template re-encryption renders for each value. A new store is registered here:
/// one line that opens it from its arguments.
pub async fn open_values(
    args: &StoreArgs,
    template: Option<&AadTemplate>,
) -> Result<Vec<Arc<dyn Store>>, CliError> {
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    if let (Some(db), Some(table), Some(column)) = (&args.db, &args.table, &args.column) {
        stores.push(Arc::new(
            postgres::Column::open(db, table, column, template.cloned()).await?,
        ));
    }
    for dir in &args.dirs {
        stores.push(Arc::new(files::Directory::open(dir, template.cloned())?));
    }
    Ok(stores)
}
