//! Output files written whole or not at all: a temporary file beside the target, fsynced and
//! renamed over it (then the directory fsynced); devices and FIFOs are written directly.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::exit::CliError;

/// Prefix of the temporary files an output or a replacement is written to before it is
/// renamed into place (skipped by the file jobs' walks).
pub const TEMP_PREFIX: &str = ".envelope-tmp-";

/// An output file written under a temporary name beside it and renamed over it once
/// complete and fsynced: a crash or a failure leaves no partial file under the name. An
/// output that exists and is not a regular file (`/dev/null`, a FIFO, a terminal) is
/// written directly: it is never replaced.
pub struct AtomicOutput {
    target: Target,
    path: std::path::PathBuf,
}

enum Target {
    Temporary(tempfile::NamedTempFile),
    Special(File),
}

/// Whether `path` names something other than a regular file (a device, a FIFO, a socket).
pub fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file() && !m.is_dir())
}

impl AtomicOutput {
    /// A temporary file beside `path` (or `path` itself when it is a device or a FIFO). An
    /// existing file's permissions are kept; a new file is readable by its owner only.
    pub fn create(path: &Path) -> Result<Self, CliError> {
        if is_special(path) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| CliError::new(format!("cannot open {}: {e}", path.display())))?;
            return Ok(AtomicOutput {
                target: Target::Special(file),
                path: path.to_path_buf(),
            });
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(parent)
            .map_err(|e| {
                CliError::new(format!(
                    "cannot create a temporary file beside {}: {e}",
                    path.display()
                ))
            })?;
        if let Ok(existing) = std::fs::metadata(path) {
            temp.as_file()
                .set_permissions(existing.permissions())
                .map_err(|e| {
                    CliError::new(format!(
                        "cannot set permissions on the replacement of {}: {e}",
                        path.display()
                    ))
                })?;
        }
        Ok(AtomicOutput {
            target: Target::Temporary(temp),
            path: path.to_path_buf(),
        })
    }

    /// Writes `bytes` to `path` this way in one go.
    pub fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
        let mut output = Self::create(path)?;
        output.file().write_all(bytes).map_err(|e| {
            CliError::new(format!("cannot write the output {}: {e}", path.display()))
        })?;
        output.commit()
    }

    /// The file to write.
    pub fn file(&mut self) -> &mut File {
        match &mut self.target {
            Target::Temporary(temp) => temp.as_file_mut(),
            Target::Special(file) => file,
        }
    }

    /// Fsyncs the file, renames it over the final name and fsyncs the directory (a device
    /// or FIFO: nothing more to do).
    pub fn commit(self) -> Result<(), CliError> {
        let Target::Temporary(temp) = self.target else {
            return Ok(());
        };
        let fail = |what: &str, e: io::Error| {
            CliError::new(format!("cannot {what} {}: {e}", self.path.display()))
        };
        temp.as_file()
            .sync_all()
            .map_err(|e| fail("fsync the output", e))?;
        let parent = temp.path().parent().map(Path::to_path_buf);
        temp.persist(&self.path).map_err(|e| {
            CliError::new(format!("cannot rename the output into place: {}", e.error))
        })?;
        if let Some(dir) = parent {
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| CliError::new(format!("cannot fsync {}: {e}", dir.display())))?;
        }
        Ok(())
    }
}
