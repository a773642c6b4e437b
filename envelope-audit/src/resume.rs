//! Continuing a file log after a restart: the chain head, the tree's frontier and the log's
//! name, read back from the last checkpoint and the lines after it.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::AuditError;
use crate::line::{ChainHead, Parsed};
use crate::merkle::{Frontier, Hash, leaf_hash, line_hash};
use crate::segments;

/// Where a log left off.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub head: ChainHead,
    pub tree: Frontier,
    pub log_name: Option<String>,
    /// What the previous run left: its last line, its last checkpoint, whether it stopped
    /// cleanly and whether its last line was torn.
    pub resumed: Option<Resumed>,
}

#[derive(Debug, Clone)]
pub(crate) struct Resumed {
    last_seq: u64,
    checkpoint: Option<u64>,
    clean: bool,
    torn: bool,
}

impl State {
    pub fn fresh() -> Self {
        State {
            head: ChainHead::genesis(),
            tree: Frontier::default(),
            log_name: None,
            resumed: None,
        }
    }

    /// The `resumed` member of the `start` line.
    pub fn resumed_json(&self) -> Value {
        match &self.resumed {
            None => Value::Null,
            Some(r) => json!({
                "after_seq": r.last_seq,
                "last_checkpoint": r.checkpoint,
                "clean_stop": r.clean,
                "torn_line": r.torn,
            }),
        }
    }
}

/// Reads where the log in `dir` left off (a fresh state for an empty directory).
///
/// Reads segments from the last backwards until one holds a checkpoint, restores the
/// tree's frontier from it (checked against the checkpoint's root) and folds in the lines
/// after it. Refuses to continue a log whose tail does not chain or whose checkpoint does
/// not match its frontier: run `envelope audit verify` on it and start a new directory.
pub(crate) fn read_state(dir: &Path) -> Result<State, AuditError> {
    let paths = segments::list(dir)?;
    if paths.is_empty() {
        return Ok(State::fresh());
    }
    // Segments from the newest back to the one with the last checkpoint.
    let mut tail: Vec<segments::Segment> = Vec::new();
    let mut found: Option<(usize, usize)> = None; // (index in tail, line)
    let mut torn = false;
    for (k, path) in paths.iter().rev().enumerate() {
        let segment = segments::read(path)?;
        if k == 0 || tail.iter().all(|s| s.lines.is_empty()) {
            torn |= segment.torn.is_some();
        }
        let at = segment
            .lines
            .iter()
            .rposition(|l| l.contains(r#""type":"checkpoint""#));
        tail.push(segment);
        if let Some(line) = at {
            found = Some((tail.len() - 1, line));
            break;
        }
    }
    tail.reverse();
    let corrupt = |why: String| {
        AuditError::Corrupt(format!(
            "cannot continue the log in {}: {why}; run `envelope audit verify` on it and log to a new directory",
            dir.display()
        ))
    };
    let (mut tree, mut head, mut log_name, start) = match found {
        Some((index, line)) => {
            let index = tail.len() - 1 - index;
            let text = &tail[index].lines[line];
            let parsed = parse(text).map_err(&corrupt)?;
            let tree = frontier_of(&parsed).map_err(&corrupt)?;
            let mut tree = tree;
            tree.push(leaf_hash(text.as_bytes()));
            let head = ChainHead {
                seq: parsed.seq + 1,
                prev: line_hash(text.as_bytes()),
            };
            let name = parsed
                .str("note")
                .and_then(|n| n.split('\n').next())
                .map(str::to_owned);
            (tree, head, name, (index, line + 1))
        }
        None => (Frontier::default(), ChainHead::genesis(), None, (0, 0)),
    };
    let checkpoint = found.map(|_| head.seq - 1);
    for (i, segment) in tail.iter().enumerate().skip(start.0) {
        let from = if i == start.0 { start.1 } else { 0 };
        for text in &segment.lines[from..] {
            let parsed = parse(text).map_err(&corrupt)?;
            if parsed.seq != head.seq || parsed.prev != hex::encode(head.prev) {
                return Err(corrupt(format!(
                    "line {} of {} does not continue the chain",
                    parsed.seq,
                    segment.path.display()
                )));
            }
            if log_name.is_none() {
                log_name = parsed.str("log").map(str::to_owned);
            }
            tree.push(leaf_hash(text.as_bytes()));
            head = ChainHead {
                seq: head.seq + 1,
                prev: line_hash(text.as_bytes()),
            };
        }
    }
    if head.seq == 0 {
        return Ok(State::fresh());
    }
    // A clean stop is the last line, or the last but its final checkpoint.
    let mut last = tail.iter().flat_map(|s| s.lines.iter()).rev();
    let is = |line: Option<&String>, kind: &str| {
        line.is_some_and(|l| l.contains(&format!(r#""type":"{kind}""#)))
    };
    let (a, b) = (last.next(), last.next());
    let clean = is(a, "stop") || (is(a, "checkpoint") && is(b, "stop"));
    Ok(State {
        resumed: Some(Resumed {
            last_seq: head.seq - 1,
            checkpoint,
            clean,
            torn,
        }),
        head,
        tree,
        log_name,
    })
}

fn parse(text: &str) -> Result<Parsed, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("a line is not JSON ({e})"))?;
    Parsed::from_value(value)
}

/// The frontier a checkpoint line records (of the lines before it), checked against its
/// root.
pub(crate) fn frontier_of(checkpoint: &Parsed) -> Result<Frontier, String> {
    let hashes: Vec<Hash> = checkpoint
        .value
        .get("frontier")
        .and_then(Value::as_array)
        .ok_or("a checkpoint has no frontier")?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|s| B64.decode(s).ok())
                .and_then(|b| <Hash>::try_from(b.as_slice()).ok())
        })
        .collect::<Option<_>>()
        .ok_or("a checkpoint's frontier is not base64 hashes")?;
    let size = checkpoint.u64("size").ok_or("a checkpoint has no size")?;
    let tree = Frontier::from_parts(size, hashes)
        .ok_or("a checkpoint's frontier does not fit its size")?;
    let root = checkpoint
        .str("root")
        .and_then(|r| B64.decode(r).ok())
        .ok_or("a checkpoint has no root")?;
    if tree.root()[..] != root[..] {
        return Err(format!(
            "the checkpoint at line {} does not match its frontier",
            checkpoint.seq
        ));
    }
    Ok(tree)
}
