//! `envelope audit`: make a checkpoint-signing key, print a signer's verifier key, verify a
//! log, export a window of it; and which subcommands are key administration (logged as
//! `admin` events when `--audit-log` is on).

use serde_json::{Value, json};

use crate::audit_log;
use crate::cli::{
    AuditCommand, AuditVerifyArgs, Command, DekStoreCommand, IndexCommand, KeysCommand,
};
use crate::exit::{CliError, CliResult, OK};
use envelope_audit::{KeyFileSigner, VerifierKey, export, verify_dir};

/// Exit code of `audit verify` for a damaged log.
pub const DAMAGED: u8 = 6;

/// Runs an `audit` subcommand.
pub async fn run(command: AuditCommand) -> CliResult {
    match command {
        AuditCommand::Keygen { name, out } => {
            let signer =
                KeyFileSigner::generate(&name, &out).map_err(|e| CliError::new(e.to_string()))?;
            let vkey = VerifierKey::of(&signer).map_err(|e| CliError::new(e.to_string()))?;
            let public = out.with_extension("pub");
            std::fs::write(&public, format!("{vkey}\n"))
                .map_err(|e| CliError::new(format!("{}: {e}", public.display())))?;
            println!("{vkey}");
            eprintln!(
                "wrote the signing key {} (mode 0600) and the verifier key {}",
                out.display(),
                public.display()
            );
            Ok(OK)
        }
        AuditCommand::PublicKey { signer } => {
            let signer = audit_log::signer(&signer)?;
            println!(
                "{}",
                VerifierKey::of(&*signer).map_err(|e| CliError::new(e.to_string()))?
            );
            Ok(OK)
        }
        AuditCommand::Verify(args) => verify(args),
        AuditCommand::VerifyPack { dir, public_key } => {
            let key = audit_log::verifier_key(&public_key)?;
            match crate::evidence::manifest::verify(&dir, &key) {
                Ok(n) => {
                    println!(
                        "{}: {n} files match manifest.json, signed by {}",
                        dir.display(),
                        key.name()
                    );
                    Ok(OK)
                }
                Err(why) => {
                    println!("{}: NOT INTACT: {why}", dir.display());
                    Ok(DAMAGED)
                }
            }
        }
        AuditCommand::Export {
            dir,
            public_key,
            from,
            to,
            out,
        } => {
            let key = audit_log::verifier_key(&public_key)?;
            let (from, to) = audit_log::window(&from, &to)?;
            let summary =
                export(&dir, &key, from, to, &out).map_err(|e| CliError::new(e.to_string()))?;
            println!(
                "exported seq {}..={} ({} lines, {} checkpoints) to {}",
                summary.first_seq,
                summary.last_seq,
                summary.lines,
                summary.checkpoints,
                out.display()
            );
            Ok(OK)
        }
    }
}

fn verify(args: AuditVerifyArgs) -> CliResult {
    let key = audit_log::verifier_key(&args.public_key)?;
    let witness = args
        .checkpoint
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p).map_err(|e| CliError::new(format!("{}: {e}", p.display())))
        })
        .transpose()?;
    let report = verify_dir(&args.dir, &key, witness.as_deref())
        .map_err(|e| CliError::new(e.to_string()))?;
    let proofs = if args.dir.join("export.json").is_file() {
        Some(
            envelope_audit::export::verify_proofs(&args.dir, &key)
                .map_err(|e| CliError::with_code(DAMAGED, format!("export: {e}")))?,
        )
    } else {
        None
    };
    if args.json {
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        value["status"] = json!(report.status());
        value["lost"] = json!(report.lost());
        if let Some(n) = proofs {
            value["consistency_proofs_verified"] = json!(n);
        }
        println!("{value}");
    } else {
        print!("{}", report.render());
        if let Some(n) = proofs {
            println!("{n} consistency proof(s) between the export's checkpoints verified");
        }
    }
    Ok(if report.damage.is_some() { DAMAGED } else { OK })
}

/// The key administration a command performs, for the log's `admin` event: its name, what
/// it acts on (connection strings without passwords) and its arguments.
pub fn administration(command: &Command) -> Option<(&'static str, String, Value)> {
    let redact = envelope_dekstore::redact;
    Some(match command {
        Command::Keys(k) => match k {
            KeysCommand::Create { uri } => ("keys.create", uri.clone(), json!({})),
            KeysCommand::Rotate { uri } => ("keys.rotate", uri.clone(), json!({})),
            KeysCommand::Disable(v) => {
                ("keys.disable", v.uri.clone(), json!({"version": v.version}))
            }
            KeysCommand::Enable(v) => ("keys.enable", v.uri.clone(), json!({"version": v.version})),
            KeysCommand::Destroy(v) => {
                ("keys.destroy", v.uri.clone(), json!({"version": v.version}))
            }
            KeysCommand::List { .. } | KeysCommand::Describe { .. } => return None,
        },
        Command::DekStore(c) => match c {
            DekStoreCommand::Retire { uri, ids } => {
                ("dek-store.retire", redact(uri), json!({"ids": ids}))
            }
            DekStoreCommand::Activate { uri, ids } => {
                ("dek-store.activate", redact(uri), json!({"ids": ids}))
            }
            DekStoreCommand::Copy { from, to } => {
                ("dek-store.copy", redact(to), json!({"from": redact(from)}))
            }
            DekStoreCommand::List { .. } => return None,
        },
        Command::Retire(a) => (
            if a.index.is_some() {
                "retire.index"
            } else {
                "retire"
            },
            a.key.clone(),
            json!({
                "version": a.version,
                "index": a.index,
                "action": format!("{:?}", a.action).to_lowercase(),
            }),
        ),
        Command::Index(c) => match c {
            IndexCommand::Create(a) => ("index.create", a.index.clone(), json!({"key": a.key})),
            IndexCommand::Rotate(a) => ("index.rotate", a.index.clone(), json!({"key": a.key})),
            IndexCommand::Rewrap { key, store } => {
                ("index.rewrap", redact(&store.uri), json!({"key": key}))
            }
            _ => return None,
        },
        _ => return None,
    })
}
