//! `manifest.json`: the SHA-256 of every file of the pack, and a signed note over them
//! (the same C2SP signed-note format and keys as the log's checkpoints), so that a verifier
//! holding the public key knows the pack is whole and unaltered.
//!
//! The note's text is `envelope-evidence/1\n<generated_at>\n<base64 SHA-256 of the files
//! member's canonical JSON>\n`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use envelope::audit::CheckpointSigner;
use envelope_audit::note::sign_text;
use envelope_audit::{VerifierKey, canonical::to_canonical, rfc3339_millis};
use serde_json::{Value, json};

use crate::exit::CliError;

/// Hex SHA-256 (the log's SHA-256, on aws-lc-rs).
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(envelope_audit::merkle::line_hash(bytes))
}

fn note_body(generated_at: &str, files: &Value) -> Result<String, CliError> {
    let canonical = to_canonical(files).map_err(CliError::new)?;
    let digest = envelope_audit::merkle::line_hash(canonical.as_bytes());
    Ok(format!(
        "envelope-evidence/1\n{generated_at}\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

/// Writes `manifest.json` for `names` in `dir`, signed when a signer is given.
pub fn write(
    dir: &Path,
    names: &[&str],
    generated_at: u64,
    signer: Option<&dyn CheckpointSigner>,
) -> Result<(), CliError> {
    let mut files = BTreeMap::new();
    for name in names {
        let path = dir.join(name);
        let bytes =
            std::fs::read(&path).map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
        files.insert(
            (*name).to_owned(),
            json!({"sha256": sha256_hex(&bytes), "bytes": bytes.len()}),
        );
    }
    let files = json!(files);
    let generated_at = rfc3339_millis(generated_at);
    let signature = match signer {
        Some(s) => {
            let body = note_body(&generated_at, &files)?;
            let checkpoint_like = sign_text(&body, s).map_err(|e| CliError::new(e.to_string()))?;
            Some(json!({
                "note": checkpoint_like,
                "verifier_key": VerifierKey::of(s).map_err(|e| CliError::new(e.to_string()))?.to_string(),
            }))
        }
        None => None,
    };
    let manifest = json!({
        "schema": "envelope-evidence-manifest/1",
        "generated_at": generated_at,
        "files": files,
        "signature": signature,
    });
    let path = dir.join("manifest.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n",
    )
    .map_err(|e| CliError::new(format!("{}: {e}", path.display())))
}

/// Checks a pack: every file's hash, and the signature with `key`. Returns the files
/// checked, or what is wrong.
pub fn verify(dir: &Path, key: &VerifierKey) -> Result<usize, String> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest: Value = serde_json::from_str(&text).map_err(|e| format!("manifest.json: {e}"))?;
    let files = &manifest["files"];
    let Some(map) = files.as_object() else {
        return Err("manifest.json has no files".into());
    };
    for (name, entry) in map {
        let bytes = std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        if entry["sha256"].as_str() != Some(sha256_hex(&bytes).as_str()) {
            return Err(format!("{name} was changed after the manifest was written"));
        }
    }
    let note = manifest["signature"]["note"]
        .as_str()
        .ok_or("the manifest is not signed")?;
    let expected = note_body(manifest["generated_at"].as_str().unwrap_or(""), files)
        .map_err(|e| e.to_string())?;
    if !note.starts_with(&expected) {
        return Err("the signed note does not cover these files".into());
    }
    key.verify_text(note)
        .map_err(|p| format!("manifest signature: {p}"))?;
    Ok(map.len())
}
