//! The key material sidecar of Parquet modular encryption (`_KEY_MATERIAL_FOR_<file>.json`,
//! parquet-java's and pyarrow's layout): names, parsing, rendering, and the envelope
//! ciphertext each wrapped key is.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::value::Stored;

/// How a sidecar's name begins.
pub const SIDECAR_PREFIX: &str = "_KEY_MATERIAL_FOR_";
/// How a sidecar's name ends.
pub const SIDECAR_SUFFIX: &str = ".json";
/// The AAD of a wrapped key: this prefix, then the key material's master key id.
pub const AAD_PREFIX: &[u8] = b"envelope.parquet.v1:";
/// The key material type this store reads (PME's version 1).
const KEY_MATERIAL_TYPE: &str = "PKMT1";

/// A sidecar's entries: key reference → key material (a JSON object).
pub type Sidecar = BTreeMap<String, Map<String, Json>>;

/// The sidecar of a data file (relative, `/`-separated).
pub fn sidecar_of(data: &str) -> String {
    match data.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{SIDECAR_PREFIX}{name}{SIDECAR_SUFFIX}"),
        None => format!("{SIDECAR_PREFIX}{data}{SIDECAR_SUFFIX}"),
    }
}

/// The data file a sidecar belongs to, when `rel` names a sidecar.
pub fn data_of(rel: &str) -> Option<String> {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((dir, name)) => (Some(dir), name),
        None => (None, rel),
    };
    let data = name
        .strip_prefix(SIDECAR_PREFIX)?
        .strip_suffix(SIDECAR_SUFFIX)?;
    if data.is_empty() {
        return None;
    }
    Some(match dir {
        Some(dir) => format!("{dir}/{data}"),
        None => data.to_owned(),
    })
}

/// A sidecar's JSON: an object of key references, each holding its key material as a JSON
/// string.
pub fn parse(bytes: &[u8]) -> Result<Sidecar, String> {
    let top: Map<String, Json> = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a key material sidecar (a JSON object): {e}"))?;
    top.into_iter()
        .map(|(reference, material)| {
            let Json::String(text) = material else {
                return Err(format!(
                    "key {reference:?}: its key material is not a JSON string"
                ));
            };
            let material: Map<String, Json> = serde_json::from_str(&text)
                .map_err(|e| format!("key {reference:?}: key material that is not JSON: {e}"))?;
            Ok((reference, material))
        })
        .collect()
}

/// The sidecar's JSON again, with each key material as a JSON string.
pub fn render(sidecar: &Sidecar) -> Vec<u8> {
    let top: Map<String, Json> = sidecar
        .iter()
        .map(|(reference, material)| {
            let text = Json::Object(material.clone()).to_string();
            (reference.clone(), Json::String(text))
        })
        .collect();
    Json::Object(top).to_string().into_bytes()
}

/// The wrapped key of a key material, as read (the bytes a rewrite compares against).
pub fn wrapped_text(material: &Map<String, Json>) -> &str {
    material
        .get("wrappedDEK")
        .and_then(Json::as_str)
        .unwrap_or_default()
}

fn malformed(reason: impl Into<String>) -> envelope::Error {
    envelope::Error::Malformed {
        field: "parquet key material",
        reason: reason.into(),
    }
}

/// A wrapped key's envelope ciphertext and its AAD, or why the material is not envelope's.
pub fn wrapped_key(material: &Map<String, Json>) -> (Result<Stored, envelope::Error>, Vec<u8>) {
    let master = material
        .get("masterKeyID")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let mut aad = AAD_PREFIX.to_vec();
    aad.extend_from_slice(master.as_bytes());
    let stored = match (
        material.get("keyMaterialType").and_then(Json::as_str),
        material.get("doubleWrapping").and_then(Json::as_bool),
        material.get("wrappedDEK").and_then(Json::as_str),
    ) {
        (Some(KEY_MATERIAL_TYPE), _, _) if master.is_empty() => Err(malformed("no master key id")),
        (Some(KEY_MATERIAL_TYPE), Some(true), _) => Err(malformed(format!(
            "master key {master:?}: double-wrapped (another KMS client wrote it; envelope wraps each data key itself)"
        ))),
        (Some(KEY_MATERIAL_TYPE), _, Some(wrapped)) if wrapped.starts_with("ev") => {
            Stored::from_text(wrapped)
        }
        (Some(KEY_MATERIAL_TYPE), _, Some(_)) => Err(malformed(format!(
            "master key {master:?}: the wrapped key is not an envelope ciphertext (another KMS client wrote it)"
        ))),
        (Some(KEY_MATERIAL_TYPE), _, None) => Err(malformed("no wrapped key")),
        (other, _, _) => Err(malformed(format!(
            "key material type {other:?}, expected {KEY_MATERIAL_TYPE:?}"
        ))),
    };
    (stored, aad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names_map_both_ways() {
        assert_eq!(
            sidecar_of("a/b/part-0.parquet"),
            "a/b/_KEY_MATERIAL_FOR_part-0.parquet.json"
        );
        assert_eq!(sidecar_of("x.parquet"), "_KEY_MATERIAL_FOR_x.parquet.json");
        assert_eq!(
            data_of("a/_KEY_MATERIAL_FOR_p.parquet.json").as_deref(),
            Some("a/p.parquet")
        );
        assert_eq!(data_of("_KEY_MATERIAL_FOR_.json"), None);
        assert_eq!(data_of("a/p.parquet"), None);
        for data in ["p.parquet", "d/e/p.parquet"] {
            assert_eq!(data_of(&sidecar_of(data)).as_deref(), Some(data));
        }
    }

    #[test]
    fn foreign_and_broken_key_material_is_named() {
        let parse = |json: &str| serde_json::from_str::<Map<String, Json>>(json).unwrap();
        let reason = |json: &str| match wrapped_key(&parse(json)).0 {
            Err(envelope::Error::Malformed { reason, .. }) => reason,
            other => panic!("expected malformed, got {other:?}"),
        };
        assert!(
            reason(r#"{"keyMaterialType":"PKMT1","masterKeyID":"k","wrappedDEK":"AAAA","doubleWrapping":false}"#)
                .contains("another KMS client")
        );
        assert!(
            reason(r#"{"keyMaterialType":"PKMT1","masterKeyID":"k","wrappedDEK":"ev1:x","doubleWrapping":true,"wrappedKEK":"y"}"#)
                .contains("double-wrapped")
        );
        assert!(reason(r#"{"keyMaterialType":"PKMT9","masterKeyID":"k"}"#).contains("PKMT9"));
        assert!(
            reason(r#"{"keyMaterialType":"PKMT1","wrappedDEK":"ev1:x"}"#).contains("master key id")
        );
        assert!(
            reason(r#"{"keyMaterialType":"PKMT1","masterKeyID":"k"}"#).contains("no wrapped key")
        );
        let (_, aad) = wrapped_key(&parse(r#"{"masterKeyID":"pii"}"#));
        assert_eq!(aad, b"envelope.parquet.v1:pii");
    }

    #[test]
    fn sidecars_parse_and_render_as_json_strings() {
        let raw = br#"{"footerKey":"{\"keyMaterialType\":\"PKMT1\",\"masterKeyID\":\"f\",\"wrappedDEK\":\"ev1:a\"}"}"#;
        let parsed = parse(raw).unwrap();
        assert_eq!(parsed["footerKey"]["masterKeyID"], "f");
        assert_eq!(wrapped_text(&parsed["footerKey"]), "ev1:a");
        assert_eq!(parse(&render(&parsed)).unwrap(), parsed);
        assert!(parse(b"[1]").unwrap_err().contains("JSON object"));
        assert!(
            parse(br#"{"k":{"a":1}}"#)
                .unwrap_err()
                .contains("not a JSON string")
        );
        assert!(parse(br#"{"k":"{oops"}"#).unwrap_err().contains("not JSON"));
    }
}
