//! The `envelope` command line, as a library so that its job engine can be tested and
//! benchmarked directly. The binary (`src/main.rs`) only calls [`run`].
//!
//! Layers, each importing only the ones below it:
//!
//! | layer | modules |
//! |---|---|
//! | commands | [`keys`], [`dek_store_admin`] (`dek-store`), [`crypt`] (encrypt/decrypt/inspect), [`jobs`] (census, rewrap, reencrypt, retire), [`index_admin`] (`index`), [`index_jobs`] (reindex, index census, `retire --index`), [`audit_cmd`] (`audit`), [`evidence`] (`evidence`) |
//! | stores | [`stores`]: PostgreSQL columns, directories, the DEK store |
//! | engine | [`engine`]: the store seam and the jobs written once against it |
//! | key-use log | [`audit_log`]: the process's log, attached to every envelope the commands build |
//! | values | [`key_description`] (a key's description as JSON and text), [`value`] (stored forms), [`aad`] (AAD templates), [`labels`] (version-label checks) |
//! | base | [`cli`] (arguments), [`exit`] (errors and exit codes) |
//!
//! A new store is one module in [`stores`] and one line of registration: see [`engine`].

pub mod aad;
pub mod audit_cmd;
pub mod audit_log;
pub mod cli;
pub mod crypt;
pub mod crypt_s3;
pub mod dek_store_admin;
pub mod engine;
pub mod evidence;
pub mod exit;
pub mod index_admin;
pub mod index_jobs;
pub mod jobs;
pub mod key_description;
pub mod keys;
pub mod labels;
pub mod output;
pub mod s3;
pub mod stores;
pub mod streaming;
pub mod value;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::CliResult;

/// Parses the command line, runs the subcommand and maps the outcome to an exit code,
/// printing errors as one line on stderr.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // `audit` reads logs; it does not write one (verifying a log while appending to it
    // would always find it open).
    let logs = !matches!(cli.command, Command::Audit(_));
    let opened = if logs {
        audit_log::open(&cli.audit, matches!(cli.command, Command::Evidence(_)))
    } else {
        Ok(())
    };
    if let Err(e) = opened {
        eprintln!("envelope: {e}");
        return e.exit_code();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("envelope: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let administration = audit_cmd::administration(&cli.command);
    let outcome = runtime.block_on(dispatch(cli.command));
    let logged = administration
        .map(|(op, target, details)| {
            let result = match &outcome {
                Ok(code) if *code == exit::OK => "ok".to_owned(),
                Ok(code) => format!("exit {code}"),
                Err(e) => format!("exit {}: {e}", e.code),
            };
            audit_log::admin(op, &target, details, &result)
        })
        .unwrap_or(Ok(()))
        .and_then(|()| audit_log::close());
    match (outcome, logged) {
        (Ok(code), Ok(())) => ExitCode::from(code),
        (Err(e), _) | (Ok(_), Err(e)) => {
            eprintln!("envelope: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(command: Command) -> CliResult {
    match command {
        Command::Keys(k) => keys::run(k).await,
        Command::DekStore(c) => dek_store_admin::run(c).await,
        Command::Encrypt(a) => crypt::encrypt(a).await,
        Command::Decrypt(a) => crypt::decrypt(a).await,
        Command::Inspect(a) => crypt::inspect(a).await,
        Command::Census(a) if a.index_column.is_some() => index_jobs::census(a).await,
        Command::Census(a) => jobs::census(a).await,
        Command::Rewrap(a) => jobs::rewrap(a).await,
        Command::Reencrypt(a) => jobs::reencrypt(a).await,
        Command::Retire(a) => match a.index.clone() {
            Some(index) => index_jobs::retire_index(a, index).await,
            None => jobs::retire(a).await,
        },
        Command::Index(c) => index_admin::run(c).await,
        Command::Reindex(a) => index_jobs::reindex(a).await,
        Command::Audit(c) => audit_cmd::run(c).await,
        Command::Evidence(a) => evidence::run(a).await,
    }
}
