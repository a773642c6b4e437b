//! `envelope keys`: the local keyring's keys, and `describe` for any backend.

use envelope::{LocalKeyring, LocalKms};

use crate::cli::{KeysCommand, VersionArgs};
use crate::exit::{CliError, CliResult, OK};
use crate::key_description::{description_json, render};

fn local(uri: &str) -> Result<(LocalKeyring, String), CliError> {
    if !uri.starts_with("local://") {
        return Err(CliError::new(format!(
            "{uri}: keys create/rotate/list/disable/enable/destroy manage the local keyring \
             (local:///path/keyring.json#KEY); manage other KMSes with their own tools"
        )));
    }
    let (kms, key_id) = LocalKms::from_uri(uri)?;
    Ok((kms.keyring().clone(), key_id))
}

/// Runs a `keys` subcommand.
pub async fn run(command: KeysCommand) -> CliResult {
    match command {
        KeysCommand::Create { uri } => {
            let (keyring, key_id) = local(&uri)?;
            if keyring.path().exists() {
                keyring.add_key(&key_id)?;
            } else {
                LocalKeyring::create(keyring.path(), &key_id)?;
            }
            println!(
                "created key {key_id:?} (version 1) in {}",
                keyring.path().display()
            );
        }
        KeysCommand::Rotate { uri } => {
            let (keyring, key_id) = local(&uri)?;
            let version = keyring.rotate(&key_id)?;
            println!("key {key_id:?}: version {version} is now current");
        }
        KeysCommand::List { uri, json } => {
            let (keyring, _) = local(&uri)?;
            let mut all = Vec::new();
            for key_id in keyring.key_ids()? {
                all.push(keyring.describe(&key_id)?);
            }
            if json {
                let list: Vec<_> = all.iter().map(description_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for d in &all {
                    print!("{}", render(d));
                }
            }
        }
        KeysCommand::Disable(v) => state(v, "disabled", LocalKeyring::disable_version)?,
        KeysCommand::Enable(v) => state(v, "enabled", LocalKeyring::enable_version)?,
        KeysCommand::Destroy(v) => state(v, "destroyed", LocalKeyring::destroy_version)?,
        KeysCommand::Describe { uri, json } => {
            let (kms, key_id) = envelope::kms_from_uri(&uri)?;
            let d = kms.describe_key(&key_id).await?;
            if json {
                println!("{}", description_json(&d));
            } else {
                print!("{}", render(&d));
            }
        }
    }
    Ok(OK)
}

fn state(
    v: VersionArgs,
    done: &str,
    apply: fn(&LocalKeyring, &str, u32) -> envelope::Result<()>,
) -> Result<(), CliError> {
    let (keyring, key_id) = local(&v.uri)?;
    apply(&keyring, &key_id, v.version)?;
    println!("key {key_id:?}: version {} {done}", v.version);
    Ok(())
}
