//! Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) for the log's lines.
//!
//! The log writes only objects, arrays, strings, booleans, `null` and integers below 2^53,
//! a subset in which RFC 8785 comes down to: object members sorted by name (the names here
//! are ASCII, where UTF-16 code-unit order is byte order), no whitespace, integers in
//! plain decimal, and strings escaped exactly as `serde_json` escapes them (`\"`, `\\`, the
//! short forms `\b \f \n \r \t`, `\u00xx` in lower-case hex for the other control
//! characters, everything else literal). [`to_canonical`] refuses floats and larger
//! integers instead of canonicalizing them, so a line either is in that subset or is not
//! written; the verifier re-canonicalizes every line and compares bytes.

use serde_json::Value;

/// The largest integer a line may carry (2^53 - 1: exact in every JSON reader).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Serializes `value` canonically, or says which member is outside the canonical subset.
pub fn to_canonical(value: &Value) -> Result<String, String> {
    check(value, "$")?;
    // serde_json's map is a BTreeMap (the `preserve_order` feature is off): members come
    // out sorted by name.
    serde_json::to_string(value).map_err(|e| e.to_string())
}

fn check(value: &Value, path: &str) -> Result<(), String> {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
        Value::Number(n) => match n.as_u64() {
            Some(i) if i <= MAX_SAFE_INTEGER => Ok(()),
            _ => Err(format!(
                "{path}: {n} is not an integer in 0..=2^53-1 (the canonical subset)"
            )),
        },
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check(v, &format!("{path}[{i}]"))),
        Value::Object(members) => {
            for (name, v) in members {
                if !name.is_ascii() {
                    return Err(format!("{path}: member name {name:?} is not ASCII"));
                }
                check(v, &format!("{path}.{name}"))?;
            }
            Ok(())
        }
    }
}

/// Whether `line` is exactly the canonical form of the JSON it holds.
pub fn is_canonical(line: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(line).ok()?;
    match to_canonical(&value) {
        Ok(again) if again == line => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_sorted_no_whitespace_rfc8785_escapes() {
        let v = json!({"z": 1, "a": "x\u{1}\n\"\\é/", "m": [true, null, {"b": 2, "a": 3}]});
        assert_eq!(
            to_canonical(&v).unwrap(),
            r#"{"a":"x\u0001\n\"\\é/","m":[true,null,{"a":3,"b":2}],"z":1}"#
        );
    }

    #[test]
    fn refuses_floats_negative_and_unsafe_integers() {
        assert!(to_canonical(&json!({"a": 1.5})).is_err());
        assert!(to_canonical(&json!({"a": -1})).is_err());
        assert!(to_canonical(&json!({"a": MAX_SAFE_INTEGER + 1})).is_err());
        assert!(to_canonical(&json!({"a": MAX_SAFE_INTEGER})).is_ok());
    }

    #[test]
    fn detects_non_canonical_lines() {
        assert!(is_canonical(r#"{"a":1,"b":2}"#).is_some());
        assert!(is_canonical(r#"{"b":2,"a":1}"#).is_none());
        assert!(is_canonical(r#"{"a": 1}"#).is_none());
        assert!(is_canonical(r#"{"a":"\u0041"}"#).is_none());
    }
}
