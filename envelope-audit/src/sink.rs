//! Where lines go: rotated segment files in a directory, or standard output (JSON lines
//! for a SIEM).

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::segments::OpenSegment;

/// Where a log writes.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// Segment files in `dir`, a new one when the current one reaches `max_bytes` or
    /// `max_age`. The chain continues across segments and across restarts.
    File {
        /// The log directory (created if missing).
        dir: PathBuf,
        /// Rotate after this many bytes (default 64 MiB).
        max_bytes: u64,
        /// Rotate after this long (default one day).
        max_age: Duration,
    },
    /// JSON lines on standard output, for a SIEM's collector. A restart begins a new
    /// chain (nothing is read back).
    Stdout,
}

impl SinkConfig {
    /// A file sink with the default rotation (64 MiB or one day).
    pub fn file(dir: impl Into<PathBuf>) -> Self {
        SinkConfig::File {
            dir: dir.into(),
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(86_400),
        }
    }
}

/// An open sink.
pub(crate) trait Sink: Send {
    /// Writes one line and its newline, all or (on error) possibly part of it.
    fn append(&mut self, line: &str) -> io::Result<()>;
    /// Whether the current segment is full or old.
    fn wants_rotation(&self, now_millis: u64) -> bool;
    /// Starts a new segment whose first line is `seq` (rotation, or recovery after a failed
    /// write, so that nothing is appended after a partial line).
    fn restart(&mut self, seq: u64, now_millis: u64) -> io::Result<()>;
    /// Pushes written lines to the OS or the device.
    fn flush(&mut self) -> io::Result<()>;
}

pub(crate) struct FileSink {
    /// The directory's lock file, held (exclusively) while this sink is open.
    pub _lock: std::fs::File,
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub max_age_millis: u64,
    pub current: Option<OpenSegment>,
}

impl Sink for FileSink {
    fn append(&mut self, line: &str) -> io::Result<()> {
        match &mut self.current {
            Some(segment) => segment.append(line),
            None => Err(io::Error::other("no open segment (the last one failed)")),
        }
    }

    fn wants_rotation(&self, now_millis: u64) -> bool {
        self.current.as_ref().is_some_and(|s| {
            s.bytes >= self.max_bytes || now_millis.saturating_sub(s.opened) >= self.max_age_millis
        })
    }

    fn restart(&mut self, seq: u64, now_millis: u64) -> io::Result<()> {
        // A segment nothing reached (a failed first write on a full disk) is reused: a
        // writer retrying through a long outage does not leave a file per attempt.
        if let Some(current) = &self.current
            && current.is_empty()?
        {
            return Ok(());
        }
        if let Some(mut old) = self.current.take() {
            // Best effort: the old segment's lines were each written in one call already.
            let _ = old.sync();
        }
        self.current = Some(OpenSegment::create(&self.dir, seq, now_millis)?);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) struct StdoutSink;

impl Sink for StdoutSink {
    fn append(&mut self, line: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")
    }

    fn wants_rotation(&self, _now_millis: u64) -> bool {
        false
    }

    fn restart(&mut self, _seq: u64, _now_millis: u64) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}
