//! Verifying a log: every line canonical and chained, sequence numbers without gaps,
//! every checkpoint's root recomputed and its signature checked, the log's end compared
//! with a checkpoint held elsewhere. Names the first damaged line and the kind of damage;
//! gathers what the lines say (key use per day, jobs, key administration, gaps).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::AuditError;
use crate::canonical::is_canonical;
use crate::line::{GENESIS_PREV, Parsed};
use crate::merkle::{Frontier, Hash, leaf_hash, line_hash, root};
use crate::note::{Checkpoint, NoteProblem, VerifierKey};
use crate::resume::frontier_of;
use crate::segments;
use crate::time::{day, rfc3339_millis};

/// The kind of damage verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// A line's bytes changed (not canonical JSON any more, or no longer hashing to what the
    /// next line records, or lines re-chained under a checkpoint whose root they no longer
    /// match).
    Edited,
    /// Lines are missing (a gap in the sequence numbers).
    Deleted,
    /// A line that the writer did not write (a second line claims a sequence number).
    Inserted,
    /// Lines (or checkpoints) are out of order.
    Reordered,
    /// The log ends before a checkpoint held elsewhere says it did.
    Truncated,
    /// A checkpoint's signature does not verify, or no signature by the verifier key.
    BadSignature,
}

impl DamageKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DamageKind::Edited => "edited",
            DamageKind::Deleted => "deleted",
            DamageKind::Inserted => "inserted",
            DamageKind::Reordered => "reordered",
            DamageKind::Truncated => "truncated",
            DamageKind::BadSignature => "bad_signature",
        }
    }
}

/// The first damage found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// What kind.
    pub kind: DamageKind,
    /// The segment file.
    pub segment: String,
    /// The line in it (1-based, as an editor shows it).
    pub line: usize,
    /// The sequence number expected there.
    pub seq: u64,
    /// What exactly.
    pub detail: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} line {} (seq {}): {}",
            self.kind.as_str().to_uppercase(),
            self.segment,
            self.line,
            self.seq,
            self.detail
        )
    }
}

/// Events the writer could not write (a `lost` line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The `lost` line's sequence number.
    pub seq: u64,
    /// When it was written.
    pub time: String,
    /// Events lost before it.
    pub count: u64,
    /// Why.
    pub reason: String,
}

/// A writer (re)start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Start {
    /// The `start` line's sequence number.
    pub seq: u64,
    /// When.
    pub time: String,
    /// Whether the previous run stopped cleanly (`None` for the log's first start).
    pub previous_clean: Option<bool>,
    /// Whether the previous run left a torn line.
    pub torn: bool,
}

/// Key use of one key version on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayUse {
    /// KMS calls by operation (`generate`, `unwrap`, …), batch members counted.
    pub kms: BTreeMap<String, u64>,
    /// KMS calls that failed, by error kind.
    pub failures: BTreeMap<String, u64>,
    /// Encryptions served from the cache.
    pub cached_encrypts: u64,
    /// Decryptions served from the cache.
    pub cached_decrypts: u64,
}

/// `(provider, key, version, day)`.
pub type UseKey = (String, String, String, String);

/// What verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The log's name (its checkpoints' origin).
    pub log: Option<String>,
    /// Segment files read.
    pub segments: usize,
    /// Complete lines read.
    pub lines: u64,
    /// Checkpoints whose root and signature verified.
    pub checkpoints: u64,
    /// Lines covered by the last verified checkpoint.
    pub anchored: u64,
    /// Lines after it.
    pub unanchored: u64,
    /// The last line is the `stop` line's final checkpoint: the writer closed the log.
    pub closed: bool,
    /// The first damage, if any: nothing after it is trusted (and nothing after it was
    /// read into the figures below).
    pub damage: Option<Damage>,
    /// Torn lines (a writer killed mid-line, or a full disk): segment and bytes.
    pub torn: Vec<(String, usize)>,
    /// Events lost under the `count` policy.
    pub gaps: Vec<Gap>,
    /// Writer starts.
    pub starts: Vec<Start>,
    /// The first and last line's times.
    pub first_time: Option<String>,
    /// See `first_time`.
    pub last_time: Option<String>,
    /// Key use per key version and day.
    #[serde(skip)]
    pub usage: BTreeMap<UseKey, DayUse>,
    /// `job` lines.
    #[serde(skip)]
    pub jobs: Vec<Value>,
    /// `admin` lines.
    #[serde(skip)]
    pub admin: Vec<Value>,
    /// Every line's leaf hash (for consistency proofs and witnesses).
    #[serde(skip)]
    pub leaves: Vec<Hash>,
    /// The first line's sequence number (0 unless the log begins at a checkpoint).
    #[serde(skip)]
    pub base: u64,
    /// Verified checkpoints: (line index, checkpoint).
    #[serde(skip)]
    pub checkpoint_lines: Vec<(usize, Checkpoint)>,
    /// The lines themselves, when asked for ([`verify_segments_keeping_lines`]: export).
    #[serde(skip)]
    pub texts: Vec<String>,
}

impl Report {
    /// `verified` (intact and closed), `open` (intact; lines after the last checkpoint or
    /// no stop line: a running writer, or one that was killed, or the end removed) or
    /// `damaged`.
    pub fn status(&self) -> &'static str {
        if self.damage.is_some() {
            "damaged"
        } else if self.closed && self.unanchored == 0 {
            "verified"
        } else {
            "open"
        }
    }

    /// Events lost in all.
    pub fn lost(&self) -> u64 {
        self.gaps.iter().map(|g| g.count).sum()
    }

    /// A short human summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out += &format!(
            "log {}: {} lines in {} segment(s), {} checkpoint(s) verified, {} lines anchored\n",
            self.log.as_deref().unwrap_or("(unnamed)"),
            self.lines,
            self.segments,
            self.checkpoints,
            self.anchored
        );
        if let (Some(a), Some(b)) = (&self.first_time, &self.last_time) {
            out += &format!("from {a} to {b}\n");
        }
        for s in &self.starts {
            if s.previous_clean == Some(false) {
                out += &format!(
                    "restart at seq {} ({}): the previous run did not stop cleanly{}\n",
                    s.seq,
                    s.time,
                    if s.torn { " and left a torn line" } else { "" }
                );
            }
        }
        for (segment, bytes) in &self.torn {
            out += &format!(
                "torn line: {bytes} bytes at the end of {segment} (not part of the chain)\n"
            );
        }
        for g in &self.gaps {
            out += &format!(
                "GAP: {} event(s) lost before seq {} ({}): {}\n",
                g.count, g.seq, g.time, g.reason
            );
        }
        match (&self.damage, self.status()) {
            (Some(d), _) => out += &format!("{d}\n"),
            (None, "open") => {
                out += &format!(
                    "OPEN: {} line(s) after the last checkpoint{}: a running writer, a writer that was killed, or the end removed (check against a checkpoint kept elsewhere with --checkpoint)\n",
                    self.unanchored,
                    if self.closed { "" } else { ", no stop line" }
                )
            }
            _ => {}
        }
        out += &format!("status: {}\n", self.status());
        out
    }
}

/// Verifies the log in `dir` (segment files) with `key`; `witness`, a signed checkpoint
/// kept elsewhere, is checked against the log (a log shorter than it was truncated).
pub fn verify_dir(
    dir: &Path,
    key: &VerifierKey,
    witness: Option<&str>,
) -> Result<Report, AuditError> {
    Ok(verify_segments(&read_all(dir)?, key, witness))
}

/// Every segment of `dir`, read, in log order (an error when there is none).
pub fn read_all(dir: &Path) -> Result<Vec<segments::Segment>, AuditError> {
    let paths = segments::list(dir)?;
    if paths.is_empty() {
        return Err(AuditError::Config(format!(
            "{}: no log segments (audit-*.jsonl)",
            dir.display()
        )));
    }
    paths.iter().map(|p| segments::read(p)).collect()
}

struct Entry<'a> {
    segment: &'a str,
    line: usize,
    text: &'a str,
    utf8: bool,
}

/// Verifies segments already read, in log order.
pub fn verify_segments(
    segments: &[segments::Segment],
    key: &VerifierKey,
    witness: Option<&str>,
) -> Report {
    verify(segments, key, witness, false)
}

/// [`verify_segments`], keeping every line's text in [`Report::texts`] (for an export).
pub fn verify_segments_keeping_lines(segments: &[segments::Segment], key: &VerifierKey) -> Report {
    verify(segments, key, None, true)
}

fn verify(
    segments: &[segments::Segment],
    key: &VerifierKey,
    witness: Option<&str>,
    keep_texts: bool,
) -> Report {
    let names: Vec<String> = segments
        .iter()
        .map(|s| {
            s.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let mut entries = Vec::new();
    let mut torn = Vec::new();
    for (s, name) in segments.iter().zip(&names) {
        for (i, text) in s.lines.iter().enumerate() {
            entries.push(Entry {
                segment: name,
                line: i + 1,
                text,
                utf8: !s.not_utf8.contains(&i),
            });
        }
        if let Some(bytes) = s.torn {
            torn.push((name.clone(), bytes));
        }
    }
    let mut v = Verifier {
        key,
        report: Report {
            log: None,
            segments: segments.len(),
            lines: 0,
            checkpoints: 0,
            anchored: 0,
            unanchored: 0,
            closed: false,
            damage: None,
            torn,
            gaps: Vec::new(),
            starts: Vec::new(),
            first_time: None,
            last_time: None,
            usage: BTreeMap::new(),
            jobs: Vec::new(),
            admin: Vec::new(),
            leaves: Vec::new(),
            base: 0,
            checkpoint_lines: Vec::new(),
            texts: Vec::new(),
        },
        tree: Frontier::default(),
        keep_texts,
    };
    v.run(&entries);
    if v.report.damage.is_none()
        && let Some(note) = witness
    {
        v.witness(note, entries.last());
    }
    v.report
}

struct Verifier<'k> {
    key: &'k VerifierKey,
    report: Report,
    tree: Frontier,
    keep_texts: bool,
}

impl Verifier<'_> {
    fn damage(&mut self, kind: DamageKind, entry: &Entry<'_>, seq: u64, detail: String) {
        self.report.damage = Some(Damage {
            kind,
            segment: entry.segment.to_owned(),
            line: entry.line,
            seq,
            detail,
        });
    }

    fn run(&mut self, entries: &[Entry<'_>]) {
        // Sequence numbers as written, read only once a line is out of place: for telling
        // deletions, insertions and reorderings apart.
        let seqs = || -> Vec<Option<u64>> {
            entries
                .iter()
                .map(|e| {
                    serde_json::from_str::<Value>(e.text)
                        .ok()
                        .and_then(|v| v.get("seq").and_then(Value::as_u64))
                })
                .collect()
        };
        let mut prev_hash: Option<Hash> = None;
        let mut base = None;
        let mut last_stop = false;
        for (i, entry) in entries.iter().enumerate() {
            let expected = base.map_or(0, |b| b + i as u64);
            let Some(value) = entry.utf8.then(|| is_canonical(entry.text)).flatten() else {
                let why = if serde_json::from_str::<Value>(entry.text).is_ok() {
                    "the line is JSON but not canonical (RFC 8785): its bytes were changed"
                } else {
                    "the line is not JSON: its bytes were changed"
                };
                return self.damage(DamageKind::Edited, entry, expected, why.into());
            };
            let parsed = match Parsed::from_value(value) {
                Ok(p) => p,
                Err(why) => return self.damage(DamageKind::Edited, entry, expected, why),
            };
            if i == 0 {
                if parsed.seq == 0 {
                    if parsed.prev != GENESIS_PREV {
                        return self.damage(
                            DamageKind::Deleted,
                            entry,
                            0,
                            "the first line does not begin a log (its prev is not the genesis value)".into(),
                        );
                    }
                } else if parsed.kind == "checkpoint" {
                    // A log that begins at a checkpoint (an export, or older segments
                    // removed by retention): start from its signed frontier.
                    if let Err(kind_detail) = self.start_at(&parsed) {
                        return self.damage(kind_detail.0, entry, parsed.seq, kind_detail.1);
                    }
                } else {
                    return self.damage(
                        DamageKind::Deleted,
                        entry,
                        0,
                        format!(
                            "the log begins at seq {} without a checkpoint to start from: lines before it are missing",
                            parsed.seq
                        ),
                    );
                }
                base = Some(parsed.seq);
                self.report.base = parsed.seq;
            }
            let expected = base.map_or(0, |b| b + i as u64);
            if parsed.seq != expected {
                let (kind, detail) = classify(&seqs(), i, expected, parsed.seq);
                return self.damage(kind, entry, expected, detail);
            }
            if let Some(prev) = prev_hash
                && parsed.prev != hex::encode(prev)
            {
                let before = &entries[i - 1];
                return self.damage(
                    DamageKind::Edited,
                    before,
                    expected - 1,
                    format!(
                        "its bytes no longer hash to the prev recorded by the next line ({} line {})",
                        entry.segment, entry.line
                    ),
                );
            }
            if parsed.kind == "checkpoint"
                && let Err((kind, detail)) = self.checkpoint(&parsed, i)
            {
                return self.damage(kind, entry, expected, detail);
            }
            self.observe(&parsed);
            last_stop = match parsed.kind.as_str() {
                "checkpoint" => last_stop,
                kind => kind == "stop",
            };
            let leaf = leaf_hash(entry.text.as_bytes());
            self.tree.push(leaf);
            self.report.leaves.push(leaf);
            if self.keep_texts {
                self.report.texts.push(entry.text.to_owned());
            }
            prev_hash = Some(line_hash(entry.text.as_bytes()));
            self.report.lines += 1;
            if parsed.kind == "checkpoint" {
                self.report.anchored = self.report.lines;
            }
            self.report.closed = parsed.kind == "checkpoint" && last_stop;
        }
        self.report.unanchored = self.report.lines - self.report.anchored;
    }

    /// Starts from a checkpoint line that is not the log's first: its signature, then its
    /// frontier against its signed root.
    fn start_at(&mut self, parsed: &Parsed) -> Result<(), (DamageKind, String)> {
        let note = parsed.str("note").unwrap_or("");
        let checkpoint = self.key.verify(note).map_err(note_damage)?;
        let tree = frontier_of(parsed).map_err(|why| (DamageKind::Edited, why))?;
        if tree.root() != checkpoint.root || tree.size() != parsed.seq {
            return Err((
                DamageKind::Edited,
                "the checkpoint's frontier does not match its signed root".into(),
            ));
        }
        self.tree = tree;
        Ok(())
    }

    fn checkpoint(&mut self, parsed: &Parsed, index: usize) -> Result<(), (DamageKind, String)> {
        let note = parsed.str("note").unwrap_or("");
        let checkpoint = self.key.verify(note).map_err(note_damage)?;
        if checkpoint.size != parsed.seq {
            return Err((
                DamageKind::Reordered,
                format!(
                    "a checkpoint of {} lines stands at seq {}: checkpoints were swapped or moved",
                    checkpoint.size, parsed.seq
                ),
            ));
        }
        if checkpoint.root != self.tree.root() {
            return Err((
                DamageKind::Edited,
                format!(
                    "the lines before this checkpoint do not match its signed root: lines before seq {} were edited, inserted or deleted and the chain recomputed",
                    parsed.seq
                ),
            ));
        }
        match &self.report.log {
            Some(name) if *name != checkpoint.origin => {
                return Err((
                    DamageKind::Inserted,
                    format!(
                        "a checkpoint of another log ({:?}, not {name:?})",
                        checkpoint.origin
                    ),
                ));
            }
            Some(_) => {}
            None => self.report.log = Some(checkpoint.origin.clone()),
        }
        self.report.checkpoints += 1;
        self.report.checkpoint_lines.push((index, checkpoint));
        Ok(())
    }

    fn witness(&mut self, note: &str, last: Option<&Entry<'_>>) {
        let Some(last) = last else { return };
        let damage = |kind, detail| Damage {
            kind,
            segment: last.segment.to_owned(),
            line: last.line,
            seq: self.report.base + self.report.lines,
            detail,
        };
        let checkpoint = match self.key.verify(note) {
            Ok(c) => c,
            Err(problem) => {
                self.report.damage = Some(damage(
                    DamageKind::BadSignature,
                    format!("the checkpoint given with --checkpoint: {problem}"),
                ));
                return;
            }
        };
        let end = self.report.base + self.report.lines;
        if checkpoint.size > end {
            let after = self
                .report
                .checkpoint_lines
                .last()
                .map(|(_, c)| format!("after checkpoint {}", c.size))
                .unwrap_or_else(|| "before any checkpoint".into());
            self.report.damage = Some(damage(
                DamageKind::Truncated,
                format!(
                    "the log ends at {end} lines ({after}), but a checkpoint kept elsewhere signs {} lines: {} line(s) were removed",
                    checkpoint.size,
                    checkpoint.size - end
                ),
            ));
        } else if checkpoint.size >= self.report.base
            && self.report.base == 0
            && root(&self.report.leaves[..checkpoint.size as usize]) != checkpoint.root
        {
            self.report.damage = Some(damage(
                DamageKind::Edited,
                format!(
                    "the first {} lines do not match the checkpoint kept elsewhere",
                    checkpoint.size
                ),
            ));
        }
    }

    fn observe(&mut self, p: &Parsed) {
        let time = rfc3339_millis(p.time);
        if self.report.first_time.is_none() {
            self.report.first_time = Some(time.clone());
        }
        self.report.last_time = Some(time.clone());
        match p.kind.as_str() {
            "start" => {
                if self.report.log.is_none() {
                    self.report.log = p.str("log").map(str::to_owned);
                }
                let resumed = p.value.get("resumed").filter(|r| !r.is_null());
                self.report.starts.push(Start {
                    seq: p.seq,
                    time,
                    previous_clean: resumed
                        .map(|r| r.get("clean_stop").and_then(Value::as_bool) == Some(true)),
                    torn: resumed
                        .and_then(|r| r.get("torn_line"))
                        .and_then(Value::as_bool)
                        == Some(true),
                });
            }
            "lost" => self.report.gaps.push(Gap {
                seq: p.seq,
                time,
                count: p.u64("count").unwrap_or(0),
                reason: p.str("reason").unwrap_or("").to_owned(),
            }),
            "kms" | "cache" => {
                let key = (
                    p.str("provider").unwrap_or("").to_owned(),
                    p.str("key").unwrap_or("").to_owned(),
                    p.str("version").unwrap_or("").to_owned(),
                    day(p.time),
                );
                let use_ = self.report.usage.entry(key).or_default();
                let op = p.str("op").unwrap_or("");
                let count = p.u64("count").unwrap_or(1);
                if p.kind == "cache" {
                    match op {
                        "encrypt" => use_.cached_encrypts += count,
                        _ => use_.cached_decrypts += count,
                    }
                } else {
                    *use_.kms.entry(op.to_owned()).or_default() += count;
                    match p.str("outcome") {
                        Some("ok") | None => {}
                        Some(kind) => *use_.failures.entry(kind.to_owned()).or_default() += 1,
                    }
                }
            }
            "job" => self.report.jobs.push(p.value.clone()),
            "admin" => self.report.admin.push(p.value.clone()),
            _ => {}
        }
    }
}

fn note_damage(problem: NoteProblem) -> (DamageKind, String) {
    match problem {
        NoteProblem::Malformed(why) => (DamageKind::Edited, format!("checkpoint note: {why}")),
        NoteProblem::NotSigned | NoteProblem::BadSignature => (
            DamageKind::BadSignature,
            format!("checkpoint: {problem} (with the verifier key given)"),
        ),
    }
}

/// Names the damage at the first line whose sequence number is not the one expected.
fn classify(seqs: &[Option<u64>], at: usize, expected: u64, found: u64) -> (DamageKind, String) {
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut duplicate = None;
    for (i, s) in seqs.iter().enumerate() {
        if let Some(s) = s
            && seen.insert(*s, i).is_some()
            && duplicate.is_none()
        {
            duplicate = Some(*s);
        }
    }
    if let Some(d) = duplicate {
        return (
            DamageKind::Inserted,
            format!(
                "two lines claim seq {d}: a line was inserted (expected seq {expected}, found {found})"
            ),
        );
    }
    if seen.contains_key(&expected) {
        return (
            DamageKind::Reordered,
            format!(
                "seq {found} stands where seq {expected} belongs, which comes later: lines were reordered"
            ),
        );
    }
    if found > expected {
        let missing = (expected..found)
            .take_while(|s| !seen.contains_key(s))
            .count();
        return (
            DamageKind::Deleted,
            format!(
                "{missing} line(s) missing: seq {expected}..{} (found {found} at line {})",
                found - 1,
                at + 1
            ),
        );
    }
    (
        DamageKind::Edited,
        format!("the line's seq is {found}, expected {expected}: its seq was edited"),
    )
}
