//! The panic boundary every `extern "C"` function runs in, and the per-thread last error.

use std::cell::RefCell;

use crate::status::envelope_status;

/// Why a call failed, before it becomes a status code.
#[derive(Debug)]
pub(crate) enum FfiError {
    /// A required pointer was NULL (the argument's name).
    Null(&'static str),
    /// An argument was invalid.
    Invalid(String),
    /// The caller's buffer is too small; the required length was reported.
    BufferTooSmall { needed: usize, capacity: usize },
    /// The SDK failed.
    Envelope(envelope::Error),
}

impl From<envelope::Error> for FfiError {
    fn from(e: envelope::Error) -> Self {
        FfiError::Envelope(e)
    }
}

impl FfiError {
    fn status(&self) -> envelope_status {
        match self {
            FfiError::Null(_) => envelope_status::ENVELOPE_NULL_ARGUMENT,
            FfiError::Invalid(_) => envelope_status::ENVELOPE_INVALID_ARGUMENT,
            FfiError::BufferTooSmall { .. } => envelope_status::ENVELOPE_BUFFER_TOO_SMALL,
            FfiError::Envelope(e) => envelope_status::of(e),
        }
    }

    fn describe(&self) -> String {
        match self {
            FfiError::Null(arg) => format!("argument `{arg}` must not be NULL"),
            FfiError::Invalid(why) => why.clone(),
            FfiError::BufferTooSmall { needed, capacity } => {
                format!("the output needs {needed} bytes, the buffer holds {capacity}")
            }
            FfiError::Envelope(e) => {
                // The SDK's messages never contain key material or plaintext.
                let mut text = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                text
            }
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_last_error(message: String) {
    LAST_ERROR.with(|cell| {
        if let Ok(mut last) = cell.try_borrow_mut() {
            *last = message;
        }
    });
}

pub(crate) fn with_last_error<R>(f: impl FnOnce(&str) -> R) -> R {
    LAST_ERROR.with(|cell| match cell.try_borrow() {
        Ok(last) => f(&last),
        Err(_) => f(""),
    })
}

/// Runs `body`, turning an error or a panic into a status code (and the thread's last error
/// message). Nothing unwinds across the C boundary.
pub(crate) fn boundary(body: impl FnOnce() -> Result<(), FfiError>) -> envelope_status {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => envelope_status::ENVELOPE_OK,
        Ok(Err(error)) => {
            set_last_error(error.describe());
            error.status()
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(format!("internal error (panic): {what}"));
            envelope_status::ENVELOPE_PANIC
        }
    }
}
