//! A key's description as JSON and text: what `keys describe` prints and what `retire`
//! records as evidence of the key after its action.

use std::time::{SystemTime, UNIX_EPOCH};

use envelope::{KeyDescription, KeyVersionState};

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

/// A key description as lines for a person.
pub fn render(d: &KeyDescription) -> String {
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
