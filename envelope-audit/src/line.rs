//! The log's lines: what each kind of line holds, how a writer builds one (canonical JSON,
//! chained to the previous line) and how a reader takes one apart.
//!
//! Every line is one RFC 8785 canonical JSON object followed by `\n`, with these members:
//!
//! | member | in | meaning |
//! |---|---|---|
//! | `v` | all | line format version, `1` |
//! | `seq` | all | position in the log, from 0, no gaps |
//! | `prev` | all | hex SHA-256 of the previous line's bytes (without `\n`); 64 zeros first |
//! | `time` | all | UTC, RFC 3339 with milliseconds |
//! | `type` | all | `start`, `kms`, `cache`, `job`, `admin`, `lost`, `stop`, `checkpoint` |
//! | `actor`, `host`, `pid` | all | the configured service name, the host, the process |
//!
//! and per type the members documented in `docs/AUDIT.md`. Checkpoint lines also chain
//! and are leaves of the tree: a checkpoint at `seq` N signs the tree of lines 0..N.

use serde_json::{Map, Value, json};

use crate::canonical::to_canonical;
use crate::merkle::{Hash, line_hash};
use crate::time::rfc3339_millis;

/// The line format version this crate writes and reads.
pub const LINE_VERSION: u64 = 1;

/// The `prev` of the first line.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who writes: the members every line carries.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The configured service name.
    pub actor: String,
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u64,
}

impl Origin {
    /// This process on this host, as `actor`.
    pub fn this_process(actor: &str) -> Self {
        Origin {
            actor: actor.to_owned(),
            host: host_name(),
            pid: u64::from(std::process::id()),
        }
    }
}

/// The host name (`/proc/sys/kernel/hostname`, `$HOSTNAME`, or `unknown`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Where the chain stands: the next line's `seq` and `prev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The next line's sequence number.
    pub seq: u64,
    /// The hash of the last line written.
    pub prev: Hash,
}

impl ChainHead {
    /// The head of an empty log.
    pub fn genesis() -> Self {
        ChainHead {
            seq: 0,
            prev: [0; 32],
        }
    }
}

/// Builds the line that continues `head` with `body` (the type's own members): the
/// canonical text, without the newline. Refuses members outside the canonical subset.
pub fn build(
    head: &ChainHead,
    origin: &Origin,
    time_millis: u64,
    kind: &str,
    mut body: Map<String, Value>,
) -> Result<String, String> {
    body.insert("v".into(), json!(LINE_VERSION));
    body.insert("seq".into(), json!(head.seq));
    body.insert("prev".into(), json!(hex::encode(head.prev)));
    body.insert("time".into(), json!(rfc3339_millis(time_millis)));
    body.insert("type".into(), json!(kind));
    body.insert("actor".into(), json!(origin.actor));
    body.insert("host".into(), json!(origin.host));
    body.insert("pid".into(), json!(origin.pid));
    to_canonical(&Value::Object(body))
}

/// The head after `line` (its text without the newline) was written at `head`.
pub fn advance(head: &ChainHead, line: &str) -> ChainHead {
    ChainHead {
        seq: head.seq + 1,
        prev: line_hash(line.as_bytes()),
    }
}

/// A line taken apart (members the reader relies on).
#[derive(Debug, Clone)]
pub struct Parsed {
    /// `seq`.
    pub seq: u64,
    /// `prev`, as written.
    pub prev: String,
    /// `type`.
    pub kind: String,
    /// `time` in Unix milliseconds.
    pub time: u64,
    /// The whole object.
    pub value: Value,
}

impl Parsed {
    /// Reads the common members of a parsed line, or names the one missing.
    pub fn from_value(value: Value) -> Result<Self, String> {
        let get = |name: &str| value.get(name).ok_or_else(|| format!("no `{name}` member"));
        if get("v")?.as_u64() != Some(LINE_VERSION) {
            return Err(format!("line format version {} is not 1", get("v")?));
        }
        let seq = get("seq")?.as_u64().ok_or("`seq` is not an integer")?;
        let prev = get("prev")?
            .as_str()
            .ok_or("`prev` is not a string")?
            .to_owned();
        let kind = get("type")?
            .as_str()
            .ok_or("`type` is not a string")?
            .to_owned();
        let time = get("time")?
            .as_str()
            .and_then(crate::time::parse_rfc3339)
            .ok_or("`time` is not an RFC 3339 UTC time")?;
        Ok(Parsed {
            seq,
            prev,
            kind,
            time,
            value,
        })
    }

    /// A string member.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.value.get(name).and_then(Value::as_str)
    }

    /// An integer member.
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.value.get(name).and_then(Value::as_u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_chain_and_parse_back() {
        let origin = Origin {
            actor: "billing".into(),
            host: "h1".into(),
            pid: 7,
        };
        let head = ChainHead::genesis();
        let mut body = Map::new();
        body.insert("op".into(), json!("unwrap"));
        let line = build(&head, &origin, 1_796_103_000_123, "kms", body).unwrap();
        assert!(
            line.starts_with(
                r#"{"actor":"billing","host":"h1","op":"unwrap","pid":7,"prev":"0000"#
            )
        );
        assert!(line.contains(GENESIS_PREV));
        let next = advance(&head, &line);
        assert_eq!(next.seq, 1);
        assert_eq!(next.prev, line_hash(line.as_bytes()));
        let parsed = Parsed::from_value(serde_json::from_str(&line).unwrap()).unwrap();
        assert_eq!((parsed.seq, parsed.kind.as_str()), (0, "kms"));
        assert_eq!(parsed.str("op"), Some("unwrap"));
        assert_eq!(parsed.time, 1_796_103_000_123);
    }
}
