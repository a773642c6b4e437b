//! Exit codes and the one error type every subcommand returns.

use std::fmt;
use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// An error: bad configuration, an unreachable database, a failed write. Nothing was
/// written, or only whole committed batches.
pub const ERROR: u8 = 1;
/// Bad arguments (clap's own code).
pub const USAGE: u8 = 2;
/// A job finished, but some values failed; they were left untouched and are counted by kind.
pub const FINISHED_WITH_FAILURES: u8 = 3;
/// `retire` refused: ciphertexts remain under the version.
pub const RETIRE_REFUSED: u8 = 4;
/// A job stopped early (e.g. the KMS became unreachable) with a checkpoint to resume from.
pub const STOPPED_RESUMABLE: u8 = 5;

/// A failure to report on one line, with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub code: u8,
    /// The message (one line, no key material).
    pub message: String,
}

impl CliError {
    /// An error with exit code [`ERROR`].
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            code: ERROR,
            message: message.into(),
        }
    }

    /// An error with a specific exit code.
    pub fn with_code(code: u8, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }

    /// The same error with `detail` added in parentheses.
    pub fn context(mut self, detail: impl fmt::Display) -> Self {
        self.message = format!("{} ({detail})", self.message);
        self
    }

    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<envelope::Error> for CliError {
    fn from(e: envelope::Error) -> Self {
        CliError::new(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(e.to_string())
    }
}

/// The result of a subcommand: the exit code on success paths (0 or 3), a [`CliError`]
/// otherwise.
pub type CliResult = Result<u8, CliError>;
