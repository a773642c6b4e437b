//! [`AuditLog`]: the handle applications and the envelope report to, and the background
//! thread that chains, checkpoints and writes the lines.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError};
use envelope_core::audit::{
    CacheOperation, CheckpointSigner, DekRef, DekUsage, KeyUseLog, KmsUse, TrackedDek,
};
use serde_json::{Map, Value, json};

use crate::AuditError;
use crate::line::{self, ChainHead, Origin};
use crate::merkle::{Frontier, leaf_hash};
use crate::note::Checkpoint;
use crate::resume;
use crate::sink::{FileSink, Sink, SinkConfig, StdoutSink};
use crate::time::{rfc3339_millis, unix_millis};

/// What happens when the queue is full or the sink fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Fail closed: an event waits up to `timeout` for room in the queue, then the
    /// operation fails with [`envelope_core::Error::AuditLog`]; while the writer cannot
    /// write, every encrypt and decrypt fails the same way. Nothing goes unlogged.
    Block {
        /// How long an operation waits for the queue.
        timeout: Duration,
    },
    /// Never block: events that find the queue full, or that the sink cannot take, are
    /// counted, and the count is written as a `lost` line as soon as the writer can write
    /// again (verification reports it as a gap).
    Count,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy::Block {
            timeout: Duration::from_secs(5),
        }
    }
}

impl FailurePolicy {
    /// Parses `block`, `block:SECONDS` or `count`.
    pub fn parse(text: &str) -> Result<Self, AuditError> {
        match text.split_once(':') {
            None if text == "count" => Ok(FailurePolicy::Count),
            None if text == "block" => Ok(FailurePolicy::default()),
            Some(("block", secs)) => secs
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| FailurePolicy::Block {
                    timeout: Duration::from_secs_f64(s),
                })
                .ok_or_else(|| AuditError::Config(format!("--audit-policy {text}: block:SECONDS"))),
            _ => Err(AuditError::Config(format!(
                "audit policy {text:?}: give block, block:SECONDS or count"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            FailurePolicy::Block { .. } => "block",
            FailurePolicy::Count => "count",
        }
    }
}

/// Takes the directory's writer lock (`DIR/.writer.lock`, an advisory exclusive lock): one
/// chain has one writer. Another process or handle writing the same directory is refused.
fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File, AuditError> {
    let path = dir.join(".writer.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| AuditError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AuditError::Config(format!(
            "{}: another writer (process or handle) is writing this log; one chain has one writer: give each process its own directory, or share one AuditLog handle",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(AuditError::io(&path, e)),
    }
}

/// Builds an [`AuditLog`].
#[derive(Debug)]
pub struct AuditLogBuilder {
    sink: SinkConfig,
    signer: Arc<dyn CheckpointSigner>,
    actor: String,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    queue: usize,
    policy: FailurePolicy,
}

impl AuditLogBuilder {
    /// The service name every line carries (default `envelope`).
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// A signed checkpoint after this many lines (default 1,000) …
    pub fn checkpoint_every(mut self, lines: u64) -> Self {
        self.checkpoint_every = lines.max(1);
        self
    }

    /// … or after this long with lines not yet covered (default 60 s), whichever first.
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Events the queue holds before the policy applies (default 65,536).
    pub fn queue(mut self, events: usize) -> Self {
        self.queue = events.max(1);
        self
    }

    /// What happens when the queue is full or the sink fails (default
    /// [`FailurePolicy::Block`] with 5 s).
    pub fn policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Opens the sink (continuing the chain of a file log already in its directory) and
    /// starts the writer thread, which writes a `start` line first.
    pub fn open(self) -> Result<AuditLog, AuditError> {
        let now = unix_millis(SystemTime::now());
        let (sink, state): (Box<dyn Sink>, resume::State) = match &self.sink {
            SinkConfig::File {
                dir,
                max_bytes,
                max_age,
            } => {
                std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
                let lock = lock_dir(dir)?;
                let state = resume::read_state(dir)?;
                let mut sink = FileSink {
                    _lock: lock,
                    dir: dir.clone(),
                    max_bytes: *max_bytes,
                    max_age_millis: max_age.as_millis() as u64,
                    current: None,
                };
                sink.restart(state.head.seq, now)
                    .map_err(|e| AuditError::io(dir, e))?;
                (Box::new(sink), state)
            }
            SinkConfig::Stdout => (Box::new(StdoutSink), resume::State::fresh()),
        };
        let (tx, rx) = crossbeam_channel::bounded(self.queue);
        let shared = Arc::new(Shared {
            tx,
            policy: self.policy,
            stalled: AtomicBool::new(false),
            stall_reason: Mutex::new(String::new()),
            lost_in_queue: AtomicU64::new(0),
            tracked: Mutex::new(Vec::new()),
            closing: AtomicBool::new(false),
        });
        let log_name = state.log_name.clone().unwrap_or_else(|| {
            let mut id = [0u8; 4];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
            format!("envelope-audit/{}/{}", line::host_name(), hex::encode(id))
        });
        let mut writer = Writer {
            sink,
            origin: Origin::this_process(&self.actor),
            log_name: log_name.clone(),
            signer: self.signer.clone(),
            head: state.head.clone(),
            tree: state.tree.clone(),
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            every: self.checkpoint_every,
            interval: self.checkpoint_interval,
            lost: 0,
            lost_reason: String::new(),
            needs_restart: false,
            shared: shared.clone(),
            tracked: Vec::new(),
            minute: now / 60_000 * 60_000,
        };
        let mut start = Map::new();
        start.insert("log".into(), json!(log_name));
        start.insert("policy".into(), json!(self.policy.name()));
        start.insert("checkpoint_every".into(), json!(self.checkpoint_every));
        start.insert("signer".into(), json!(self.signer.name()));
        start.insert("resumed".into(), state.resumed_json());
        writer
            .append_now("start", start, now)
            .map_err(|e| AuditError::Config(format!("cannot write the start line: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("envelope-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::Config(format!("cannot start the writer thread: {e}")))?;
        Ok(AuditLog {
            handle: Arc::new(Handle {
                shared,
                thread: Mutex::new(Some(thread)),
                log_name,
            }),
        })
    }
}

/// A tamper-evident key-use log: hash-chained canonical JSON lines with signed RFC 6962
/// Merkle checkpoints, written by a background thread. Cheap to clone; the last clone
/// dropped (or [`AuditLog::close`]) writes a `stop` line and a final checkpoint.
///
/// Give it to an envelope with
/// `EnvelopeBuilder::key_use_log(Arc::new(log.clone()))`; record job and key
/// administration events with [`AuditLog::record`].
#[derive(Clone)]
pub struct AuditLog {
    handle: Arc<Handle>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("log", &self.handle.log_name)
            .field("policy", &self.handle.shared.policy)
            .finish_non_exhaustive()
    }
}

struct Handle {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    log_name: String,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Handle {
    fn close(&self) -> Result<(), AuditError> {
        let Some(thread) = self.thread.lock().map(|mut t| t.take()).unwrap_or(None) else {
            return Ok(());
        };
        self.shared.closing.store(true, Ordering::Release);
        // The writer drains what is queued before it reads the close.
        let _ = self.shared.tx.send(Msg::Close);
        thread
            .join()
            .map_err(|_| AuditError::Config("the audit writer thread panicked".into()))
    }
}

struct Shared {
    tx: Sender<Msg>,
    policy: FailurePolicy,
    stalled: AtomicBool,
    stall_reason: Mutex<String>,
    lost_in_queue: AtomicU64,
    tracked: Mutex<Vec<Tracked>>,
    closing: AtomicBool,
}

enum Msg {
    Line {
        time: u64,
        kind: &'static str,
        body: Map<String, Value>,
    },
    Sync(Sender<()>),
    Close,
}

struct Tracked {
    dek: TrackedDek,
    usage: Arc<DekUsage>,
    written: [u64; 2],
}

impl AuditLogBuilder {
    fn new(sink: SinkConfig, signer: Arc<dyn CheckpointSigner>) -> Self {
        AuditLogBuilder {
            sink,
            signer,
            actor: "envelope".into(),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            queue: 65_536,
            policy: FailurePolicy::default(),
        }
    }
}

/// A handle that does not keep an [`AuditLog`] open (see [`AuditLog::downgrade`]).
#[derive(Clone, Debug)]
pub struct WeakAuditLog(std::sync::Weak<Handle>);

impl WeakAuditLog {
    /// The log, if some [`AuditLog`] still holds it open.
    pub fn upgrade(&self) -> Option<AuditLog> {
        self.0.upgrade().map(|handle| AuditLog { handle })
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("log", &self.log_name)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// A handle to share the log without keeping it open (a registry of open logs).
    pub fn downgrade(&self) -> WeakAuditLog {
        WeakAuditLog(Arc::downgrade(&self.handle))
    }

    /// Starts building a log that writes to `sink` and signs checkpoints with `signer`.
    pub fn builder(sink: SinkConfig, signer: Arc<dyn CheckpointSigner>) -> AuditLogBuilder {
        AuditLogBuilder::new(sink, signer)
    }

    /// The log's name (the checkpoints' origin line).
    pub fn name(&self) -> &str {
        &self.handle.log_name
    }

    /// Records an event of `kind` (`job`, `admin`, or an application's own kind) with its
    /// members. Members must be strings, integers, booleans, or arrays and objects of
    /// them; the common members (`seq`, `time`, …) are the writer's. Never put a secret in
    /// an event.
    pub fn record(&self, kind: &'static str, body: Map<String, Value>) -> Result<(), AuditError> {
        self.handle
            .shared
            .send(kind, body)
            .map_err(|e| AuditError::Unavailable(e.to_string()))
    }

    /// Waits until every event recorded before this call is written.
    pub fn sync(&self) -> Result<(), AuditError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.handle
            .shared
            .tx
            .send(Msg::Sync(tx))
            .map_err(|_| AuditError::Unavailable("the writer has stopped".into()))?;
        rx.recv()
            .map_err(|_| AuditError::Unavailable("the writer has stopped".into()))
    }

    /// Writes the cache counters, a `stop` line and a final checkpoint, and stops the
    /// writer. Later events are refused. Dropping the last clone does the same.
    pub fn close(&self) -> Result<(), AuditError> {
        self.handle.close()
    }

    /// Events not written so far under [`FailurePolicy::Count`] because the queue was full
    /// (the writer logs each count as a `lost` line).
    pub fn lost_in_queue(&self) -> u64 {
        self.handle.shared.lost_in_queue.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn send(&self, kind: &'static str, body: Map<String, Value>) -> envelope_core::Result<()> {
        if self.closing.load(Ordering::Acquire) {
            return Err(envelope_core::Error::AuditLog {
                reason: "the log is closed".into(),
            });
        }
        let msg = Msg::Line {
            time: unix_millis(SystemTime::now()),
            kind,
            body,
        };
        match self.policy {
            FailurePolicy::Block { timeout } => {
                self.admit()?;
                self.tx
                    .send_timeout(msg, timeout)
                    .map_err(|e| envelope_core::Error::AuditLog {
                        reason: match e {
                            SendTimeoutError::Timeout(_) => {
                                format!("the queue stayed full for {timeout:?} ({})", self.reason())
                            }
                            SendTimeoutError::Disconnected(_) => "the writer has stopped".into(),
                        },
                    })
            }
            FailurePolicy::Count => {
                if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                    self.tx.try_send(msg)
                {
                    self.lost_in_queue.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        }
    }

    fn reason(&self) -> String {
        let reason = self
            .stall_reason
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        if reason.is_empty() {
            "the writer is behind".into()
        } else {
            reason
        }
    }

    fn admit(&self) -> envelope_core::Result<()> {
        if matches!(self.policy, FailurePolicy::Block { .. })
            && self.stalled.load(Ordering::Relaxed)
        {
            return Err(envelope_core::Error::AuditLog {
                reason: self.reason(),
            });
        }
        Ok(())
    }
}

impl KeyUseLog for AuditLog {
    fn admit(&self) -> envelope_core::Result<()> {
        self.handle.shared.admit()
    }

    fn record_kms(&self, call: KmsUse) -> envelope_core::Result<()> {
        let mut body = Map::new();
        body.insert("op".into(), json!(call.operation.as_str()));
        body.insert("provider".into(), json!(call.provider.scheme()));
        body.insert("key".into(), json!(call.key_id));
        if let Some(v) = call.key_version {
            body.insert("version".into(), json!(v));
        }
        if let Some(v) = call.to_version {
            body.insert("to_version".into(), json!(v));
        }
        if let Some(dek) = &call.dek {
            insert_dek(&mut body, dek);
        }
        body.insert("count".into(), json!(call.count));
        body.insert(
            "outcome".into(),
            json!(match call.outcome {
                Ok(()) => "ok",
                Err(kind) => kind.as_str(),
            }),
        );
        if let Some(label) = call.label {
            body.insert("label".into(), json!(label));
        }
        self.handle.shared.send("kms", body)
    }

    fn track(&self, dek: TrackedDek, usage: Arc<DekUsage>) {
        if let Ok(mut tracked) = self.handle.shared.tracked.lock() {
            tracked.push(Tracked {
                dek,
                usage,
                written: [0, 0],
            });
        }
    }
}

fn insert_dek(body: &mut Map<String, Value>, dek: &DekRef) {
    body.insert("dek".into(), json!(dek.fingerprint));
    if let Some(id) = dek.id {
        body.insert("dek_id".into(), json!(id));
    }
}

/// The writer thread's state.
struct Writer {
    sink: Box<dyn Sink>,
    origin: Origin,
    log_name: String,
    signer: Arc<dyn CheckpointSigner>,
    head: ChainHead,
    tree: Frontier,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    every: u64,
    interval: Duration,
    /// Events the sink could not take (count policy), not yet written as a `lost` line.
    lost: u64,
    lost_reason: String,
    /// A write failed: open a new segment before the next one.
    needs_restart: bool,
    shared: Arc<Shared>,
    tracked: Vec<Tracked>,
    /// The start of the minute whose cache use is being counted (Unix milliseconds).
    minute: u64,
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let wait = self.next_deadline();
            match rx.recv_timeout(wait) {
                Ok(Msg::Line { time, kind, body }) => self.event(time, kind, body),
                Ok(Msg::Sync(done)) => {
                    let _ = self.sink.flush();
                    let _ = done.send(());
                }
                Ok(Msg::Close) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.timers();
            if rx.is_empty() {
                let _ = self.sink.flush();
            }
        }
        self.flush_usage(unix_millis(SystemTime::now()));
        let mut stop = Map::new();
        stop.insert("reason".into(), json!("close"));
        self.event(unix_millis(SystemTime::now()), "stop", stop);
        self.checkpoint();
        let _ = self.sink.flush();
    }

    fn next_deadline(&self) -> Duration {
        let now = unix_millis(SystemTime::now());
        let minute = Duration::from_millis((self.minute + 60_000).saturating_sub(now));
        let checkpoint = if self.since_checkpoint > 0 {
            self.interval.saturating_sub(self.last_checkpoint.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        minute.min(checkpoint).max(Duration::from_millis(1))
    }

    fn timers(&mut self) {
        let now = unix_millis(SystemTime::now());
        if now >= self.minute + 60_000 {
            self.flush_usage(now);
        }
        if self.since_checkpoint > 0 && self.last_checkpoint.elapsed() >= self.interval {
            self.checkpoint();
        }
    }

    /// Writes one event under the policy: `lost` first if events were lost.
    fn event(&mut self, time: u64, kind: &'static str, body: Map<String, Value>) {
        let queued = self.shared.lost_in_queue.swap(0, Ordering::Relaxed);
        if queued > 0 {
            self.lost += queued;
            if self.lost_reason.is_empty() {
                self.lost_reason = "queue full".into();
            }
        }
        if self.lost > 0 {
            let mut lost = Map::new();
            lost.insert("count".into(), json!(self.lost));
            lost.insert("reason".into(), json!(self.lost_reason));
            if self.write(time, "lost", lost) {
                self.lost = 0;
                self.lost_reason.clear();
            } else {
                self.lost += 1;
                return;
            }
        }
        if !self.write(time, kind, body) {
            self.lost += 1;
        }
    }

    /// Writes a line, retrying under the block policy until it is written (or the log
    /// closes); returns whether it was written.
    fn write(&mut self, time: u64, kind: &str, body: Map<String, Value>) -> bool {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.append_now(kind, body.clone(), time) {
                Ok(()) => {
                    if self.shared.stalled.swap(false, Ordering::Relaxed) {
                        self.set_reason(String::new());
                    }
                    return true;
                }
                Err(e) => {
                    let reason = format!("cannot write the key-use log: {e}");
                    match self.shared.policy {
                        FailurePolicy::Count => {
                            self.lost_reason = reason;
                            return false;
                        }
                        FailurePolicy::Block { .. } => {
                            self.set_reason(reason);
                            self.shared.stalled.store(true, Ordering::Relaxed);
                            if self.shared.closing.load(Ordering::Acquire) {
                                return false;
                            }
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                        }
                    }
                }
            }
        }
    }

    fn set_reason(&self, reason: String) {
        if let Ok(mut r) = self.shared.stall_reason.lock() {
            *r = reason;
        }
    }

    /// Builds and writes one line now, advancing the chain and the tree only once it is
    /// written; a checkpoint follows when one is due.
    /// `time` is when the event happened (recorded by the caller, not when it was dequeued).
    fn append_now(
        &mut self,
        kind: &str,
        body: Map<String, Value>,
        time: u64,
    ) -> Result<(), String> {
        let now = unix_millis(SystemTime::now());
        if self.needs_restart {
            self.sink
                .restart(self.head.seq, now)
                .map_err(|e| e.to_string())?;
            self.needs_restart = false;
        } else if kind != "checkpoint" && self.sink.wants_rotation(now) {
            // Close the segment with a checkpoint, then begin the next one.
            if self.since_checkpoint > 0 {
                self.write_checkpoint()?;
            }
            self.sink
                .restart(self.head.seq, now)
                .map_err(|e| e.to_string())?;
        }
        let line = line::build(&self.head, &self.origin, time, kind, body)?;
        if let Err(e) = self.sink.append(&line) {
            self.needs_restart = true;
            return Err(e.to_string());
        }
        self.tree.push(leaf_hash(line.as_bytes()));
        self.head = line::advance(&self.head, &line);
        self.since_checkpoint += 1;
        if kind != "checkpoint" && self.since_checkpoint >= self.every {
            self.write_checkpoint()?;
        }
        Ok(())
    }

    fn checkpoint(&mut self) {
        if self.since_checkpoint == 0 {
            return;
        }
        if let Err(e) = self.write_checkpoint() {
            self.set_reason(format!("cannot write a checkpoint: {e}"));
        }
    }

    /// Signs the tree of every line so far and writes it as a `checkpoint` line.
    fn write_checkpoint(&mut self) -> Result<(), String> {
        let checkpoint = Checkpoint {
            origin: self.log_name.clone(),
            size: self.head.seq,
            root: self.tree.root(),
        };
        let note = checkpoint
            .sign(&*self.signer)
            .map_err(|e| format!("cannot sign a checkpoint: {e}"))?;
        let mut body = Map::new();
        body.insert("size".into(), json!(checkpoint.size));
        body.insert("root".into(), json!(B64.encode(checkpoint.root)));
        body.insert("note".into(), json!(note));
        body.insert(
            "frontier".into(),
            Value::Array(
                self.tree
                    .hashes()
                    .iter()
                    .map(|h| json!(B64.encode(h)))
                    .collect(),
            ),
        );
        self.append_now("checkpoint", body, unix_millis(SystemTime::now()))?;
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Writes one `cache` line per DEK and operation with uses since the last one, for
    /// the minute that began at `self.minute`; forgets DEKs the envelope has dropped.
    fn flush_usage(&mut self, now: u64) {
        if let Ok(mut new) = self.shared.tracked.lock() {
            self.tracked.append(&mut new);
        }
        let minute = rfc3339_millis(self.minute);
        let mut lines = Vec::new();
        for t in &mut self.tracked {
            for (i, op) in [CacheOperation::Encrypt, CacheOperation::Decrypt]
                .into_iter()
                .enumerate()
            {
                let total = t.usage.total(op);
                let delta = total - t.written[i];
                if delta == 0 {
                    continue;
                }
                t.written[i] = total;
                let mut body = Map::new();
                body.insert("op".into(), json!(op.as_str()));
                body.insert("provider".into(), json!(t.dek.provider.scheme()));
                body.insert("key".into(), json!(t.dek.key_id));
                body.insert("version".into(), json!(t.dek.key_version));
                insert_dek(&mut body, &t.dek.dek);
                body.insert("count".into(), json!(delta));
                body.insert("minute".into(), json!(minute));
                if let Some(label) = &t.dek.label {
                    body.insert("label".into(), json!(label));
                }
                lines.push(body);
            }
        }
        self.tracked.retain(|t| Arc::strong_count(&t.usage) > 1);
        for body in lines {
            self.event(now, "cache", body);
        }
        self.minute = now / 60_000 * 60_000;
    }
}
