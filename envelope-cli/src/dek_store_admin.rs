//! `envelope dek-store`: the compact form's DEK store rows, listed, retired, re-activated
//! and copied between stores (ids, states and bindings kept).

use std::time::SystemTime;

use envelope::compact::{DekId, DekState, DekStore, StoredDek, stored_deks_to_json};

use crate::cli::DekStoreCommand;
use crate::exit::{CliError, CliResult, OK, USAGE};
use crate::stores::dek_store;

/// Rows read per page.
const PAGE: usize = 1000;

/// Runs a `dek-store` subcommand.
pub async fn run(command: DekStoreCommand) -> CliResult {
    match command {
        DekStoreCommand::List { uri, state, json } => list(&uri, state.as_deref(), json).await,
        DekStoreCommand::Retire { uri, ids } => set_state(&uri, &ids, DekState::Retired).await,
        DekStoreCommand::Activate { uri, ids } => set_state(&uri, &ids, DekState::Active).await,
        DekStoreCommand::Copy { from, to } => copy(&from, &to).await,
    }
}

/// Every row of a store, page by page.
async fn all_rows(store: &dyn DekStore) -> Result<Vec<StoredDek>, CliError> {
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        rows.extend(page);
    }
    Ok(rows)
}

async fn list(uri: &str, state: Option<&str>, json: bool) -> CliResult {
    let wanted = match state {
        None => None,
        Some(name) => Some(DekState::parse(name).ok_or_else(|| {
            CliError::with_code(USAGE, format!("--state {name:?}: active or retired"))
        })?),
    };
    let store = dek_store::open(uri)?;
    let rows: Vec<StoredDek> = all_rows(&*store)
        .await?
        .into_iter()
        .filter(|r| wanted.is_none_or(|w| r.state == w))
        .collect();
    if json {
        // Public facts only: the wrapped DEK is the KMS's ciphertext, never a key.
        println!("{}", stored_deks_to_json(&rows));
        return Ok(OK);
    }
    println!(
        "{:>8}  {:<8} {:<20} {:<7} {:<6} KEK",
        "id", "state", "suite", "bound", "age"
    );
    for row in &rows {
        let age = SystemTime::now()
            .duration_since(row.created)
            .map(|d| format!("{}d", d.as_secs() / 86_400))
            .unwrap_or_else(|_| "-".into());
        println!(
            "{:>8}  {:<8} {:<20} {:<7} {:<6} {}:{} version {}",
            row.id,
            row.state.as_str(),
            row.suite.to_string(),
            row.bound,
            age,
            row.wrapped.provider,
            row.wrapped.key_id,
            row.wrapped.key_version
        );
    }
    println!("{} row(s) in {}", rows.len(), store.location());
    Ok(OK)
}

async fn set_state(uri: &str, ids: &[u64], state: DekState) -> CliResult {
    let ids: Vec<DekId> = ids
        .iter()
        .map(|&n| DekId::new(n).ok_or_else(|| CliError::with_code(USAGE, "DEK ids start at 1")))
        .collect::<Result<_, _>>()?;
    let store = dek_store::open(uri)?;
    // Check every id before changing any.
    for &id in &ids {
        if store.get(id).await?.is_none() {
            return Err(CliError::new(format!(
                "no DEK {id} in {}: nothing changed",
                store.location()
            )));
        }
    }
    for &id in &ids {
        store.set_state(id, state).await?;
    }
    let what = match state {
        DekState::Retired => {
            "retired: compact values under them no longer decrypt (`envelope dek-store activate` restores them)"
        }
        DekState::Active => "active: compact values under them decrypt again",
    };
    eprintln!("{} DEK(s) in {} now {what}", ids.len(), store.location());
    Ok(OK)
}

async fn copy(from: &str, to: &str) -> CliResult {
    let source = dek_store::open(from)?;
    let target = dek_store::open(to)?;
    let (mut copied, mut present) = (0u64, 0u64);
    for row in all_rows(&*source).await? {
        match target.get(row.id).await? {
            Some(theirs) if same_row(&theirs, &row) => present += 1,
            Some(_) => {
                return Err(CliError::new(format!(
                    "DEK {} differs in {}: copied {copied} row(s) before it; nothing overwritten",
                    row.id,
                    target.location()
                )));
            }
            None => {
                target.import(&row).await?;
                copied += 1;
            }
        }
    }
    eprintln!(
        "copied {copied} DEK row(s) from {} to {} ({present} already there)",
        source.location(),
        target.location()
    );
    Ok(OK)
}

/// Whether two rows are the same DEK under the same wrap and state.
fn same_row(a: &StoredDek, b: &StoredDek) -> bool {
    (a.id, a.suite, &a.wrapped, a.commitment, a.state, a.bound)
        == (b.id, b.suite, &b.wrapped, b.commitment, b.state, b.bound)
}
