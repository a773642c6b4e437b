//! `envelope keys`: the local keyring's keys, and `describe` for any backend.

use std::time::{SystemTime, UNIX_EPOCH};

use envelope::{KeyDescription, KeyVersionState, LocalKeyring, LocalKms};

use crate::cli::{KeysCommand, VersionArgs};
use crate::exit::{CliError, CliResult, OK};

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

/// Seconds since the epoch, for JSON and text.
pub fn epoch(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

/// A version state's name.
pub fn state_name(state: &KeyVersionState) -> String {
    match state {
        KeyVersionState::Enabled => "enabled".into(),
        KeyVersionState::Disabled => "disabled".into(),
        KeyVersionState::PendingDestruction => "pending_destruction".into(),
        KeyVersionState::Destroyed => "destroyed".into(),
        KeyVersionState::Other(s) => s.clone(),
        _ => "unknown".into(),
    }
}

/// A key description as JSON.
pub fn description_json(d: &KeyDescription) -> serde_json::Value {
    serde_json::json!({
        "key_id": d.key_id,
        "current_version": d.current_version,
        "versions": d.versions.iter().map(|v| serde_json::json!({
            "version": v.version,
            "state": state_name(&v.state),
            "created_at": epoch(v.created_at),
        })).collect::<Vec<_>>(),
        "rotation": {
            "automatic": d.rotation.automatic,
            "period_seconds": d.rotation.period.map(|p| p.as_secs()),
            "next_rotation": epoch(d.rotation.next_rotation),
            "last_rotated": epoch(d.rotation.last_rotated),
        },
    })
}

fn render(d: &KeyDescription) -> String {
    let mut out = format!(
        "key {}: current version {}\n",
        d.key_id,
        d.current_version.as_deref().unwrap_or("(not reported)")
    );
    for v in &d.versions {
        out.push_str(&format!(
            "  version {:>4}  {:<20} created {}\n",
            v.version,
            state_name(&v.state),
            epoch(v.created_at).map_or("-".into(), |s| format!("{s} (unix)"))
        ));
    }
    if d.rotation.automatic {
        out.push_str(&format!(
            "  rotates every {} s; next at {}\n",
            d.rotation
                .period
                .map_or("?".into(), |p| p.as_secs().to_string()),
            epoch(d.rotation.next_rotation).map_or("-".into(), |s| format!("{s} (unix)"))
        ));
    } else {
        out.push_str("  rotation: manual\n");
    }
    out
}
