//! The blind-index side of the jobs: `reindex` (on the job engine), the census of an index
//! column, and `retire --index`, which refuses while any row carries the version.

use envelope::blind_index::{IndexState, Normalizer};

use crate::aad::AadTemplate;
use crate::cli::{CensusArgs, ReindexArgs, RetireAction, RetireArgs, StoreArgs};
use crate::engine::process::{JobKind, Reindex};
use crate::exit::{CliError, CliResult, OK, RETIRE_REFUSED, USAGE};
use crate::index_admin::open_indexes;
use crate::stores::postgres::{self, IndexCensus, Target};

/// The index key store a command names: `--index-store`, else `--dek-store`.
fn index_store(explicit: Option<&str>, stores: &StoreArgs) -> Result<String, CliError> {
    explicit
        .or(stores.dek_store.as_deref())
        .map(str::to_owned)
        .ok_or_else(|| {
            CliError::with_code(
                USAGE,
                "name the index key store: --index-store URI (or --dek-store URI, which keeps index keys beside the DEKs)",
            )
        })
}

/// `envelope reindex`.
pub async fn reindex(args: ReindexArgs) -> CliResult {
    let stores = &args.job.stores;
    if stores.db.is_none()
        || !stores.dirs.is_empty()
        || !stores.s3.is_empty()
        || !stores.parquet.is_empty()
    {
        return Err(CliError::with_code(
            USAGE,
            "reindex works on a PostgreSQL column: --db URL --table T --column C --index-column I",
        ));
    }
    let store_uri = index_store(args.index_store.as_deref(), stores)?;
    let indexes = open_indexes(&args.job.key, &store_uri)?;
    // Unknown index, or no active version: one line, before any row is read.
    let rows = indexes.describe(&args.index).await?;
    let Some(active) = rows.iter().find(|r| r.state == IndexState::Active) else {
        return Err(envelope::Error::IndexRetired {
            index: args.index.clone(),
            version: rows.last().map_or(0, |r| r.version),
        }
        .into());
    };
    if let Some(name) = Normalizer::parse(&active.normalizer)?.custom_name() {
        return Err(CliError::new(format!(
            "blind index {:?} version {} normalizes with custom:{name}, a function of the application: \
             the CLI cannot compute it (recompute the column with the SDK's blind_index_batch)",
            args.index, active.version
        )));
    }
    let template = AadTemplate::parse(&args.aad)?;
    let kind = JobKind::Reindex(Reindex {
        indexes,
        index: args.index.clone(),
    });
    crate::jobs::run_index_job(args.job, kind, template, &args.index_column).await
}

/// `envelope census --index-column I`: values per index version.
pub async fn census(args: CensusArgs) -> CliResult {
    let column = args.index_column.clone().unwrap_or_default();
    let index = census_of_index(&args.stores, &column).await?;
    if args.json {
        println!("{}", serde_json::json!({ "blind_index": index }));
    } else {
        print!("{}", index.render());
    }
    Ok(OK)
}

/// The census of an index column beside `stores`' column.
pub async fn census_of_index(stores: &StoreArgs, column: &str) -> Result<IndexCensus, CliError> {
    let (Some(db), Some(table), Some(values)) = (&stores.db, &stores.table, &stores.column) else {
        return Err(CliError::with_code(
            USAGE,
            "--index-column needs --db, --table and --column (the ciphertexts it indexes)",
        ));
    };
    let (client, _) = postgres::connect(db).await?;
    let target = Target::resolve(&client, table, values, &[]).await?;
    postgres::index_census(&client, &target, column).await
}

/// `envelope retire --index NAME --version V`.
pub async fn retire_index(args: RetireArgs, index: String) -> CliResult {
    let version: u16 = args
        .version
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            CliError::with_code(
                USAGE,
                format!(
                    "--version {:?}: an index version is a number from 1",
                    args.version
                ),
            )
        })?;
    let column = args.index_column.clone().unwrap_or_default();
    let store_uri = index_store(args.index_store.as_deref(), &args.stores)?;
    let indexes = open_indexes(&args.key, &store_uri)?;
    let rows = indexes.describe(&index).await?;
    let Some(row) = rows.iter().find(|r| r.version == version) else {
        return Err(envelope::Error::IndexNotFound {
            index,
            version: Some(version),
        }
        .into());
    };
    if row.state == IndexState::Active {
        return Err(CliError::with_code(
            RETIRE_REFUSED,
            format!(
                "refusing to retire version {version} of blind index {index:?}: it is the active version (rotate the index, then reindex, first)"
            ),
        ));
    }
    let census = census_of_index(&args.stores, &column).await?;
    let remaining = census.under(version);
    if remaining > 0 {
        return Err(CliError::with_code(
            RETIRE_REFUSED,
            format!(
                "refusing to retire version {version} of blind index {index:?}: {remaining} row(s) of {} still carry it; run `envelope reindex` first",
                census.column
            ),
        ));
    }
    if args.action != RetireAction::Check {
        indexes
            .set_state(&index, version, IndexState::Retired)
            .await?;
    }
    let after = indexes.describe(&index).await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "index": index,
                "version": version,
                "action": if args.action == RetireAction::Check { "check" } else { "retire" },
                "census": census,
                "rows_under_version": 0,
                "index_after": after.iter().map(crate::index_admin::row_json).collect::<Vec<_>>(),
            })
        );
    } else {
        print!("{}", census.render());
        println!(
            "0 rows carry version {version} of blind index {index:?}; {}",
            if args.action == RetireAction::Check {
                "nothing changed (--action check)".to_owned()
            } else {
                format!("version {version} retired: lookups no longer compute it")
            }
        );
    }
    Ok(OK)
}
