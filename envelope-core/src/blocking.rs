//! A blocking facade over [`Envelope`] for callers without an async runtime (and the C ABI).

use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::envelope::{Envelope, Rewrapped};
use crate::error::{Error, Result};
use crate::format::{HeaderInfo, Output};

/// [`Envelope`] for synchronous code.
///
/// Cached encrypts and decrypts run on the caller's thread without touching any runtime.
/// KMS calls run on a private one-worker tokio runtime. Called from a thread that is itself
/// inside an async runtime (where `block_on` would panic), the KMS call runs on a scoped
/// helper thread instead: it works, it only costs a thread spawn per KMS call.
///
/// Fork-safe: a child process (a Python worker forked after the client was made, say) has
/// no runtime thread, so the first KMS call in the child starts a new runtime. Nonces stay
/// unique across the fork because the thread-local CSPRNG reseeds in the child.
pub struct BlockingEnvelope {
    envelope: Envelope,
    runtime: Mutex<Option<ProcessRuntime>>,
}

/// A runtime and the process that started it.
struct ProcessRuntime {
    pid: u32,
    runtime: Arc<tokio::runtime::Runtime>,
}

fn new_runtime() -> Result<ProcessRuntime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("envelope-kms")
        .enable_all()
        .build()
        .map_err(|e| Error::InvalidConfig(format!("cannot start the KMS runtime: {e}")))?;
    Ok(ProcessRuntime {
        pid: std::process::id(),
        runtime: Arc::new(runtime),
    })
}

impl std::fmt::Debug for BlockingEnvelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingEnvelope")
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

impl BlockingEnvelope {
    /// Wraps an envelope, starting its private runtime.
    pub fn new(envelope: Envelope) -> Result<Self> {
        Ok(BlockingEnvelope {
            envelope,
            runtime: Mutex::new(Some(new_runtime()?)),
        })
    }

    /// This process's runtime; after a fork, a new one (the parent's worker thread does not
    /// exist in the child, so its runtime is leaked rather than shut down).
    fn runtime(&self) -> Result<Arc<tokio::runtime::Runtime>> {
        let mut slot = self
            .runtime
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let pid = std::process::id();
        match slot.as_ref() {
            Some(current) if current.pid == pid => Ok(current.runtime.clone()),
            _ => {
                let fresh = new_runtime()?;
                let runtime = fresh.runtime.clone();
                if let Some(stale) = slot.replace(fresh) {
                    std::mem::forget(stale);
                }
                Ok(runtime)
            }
        }
    }

    /// The async envelope (shares its caches with this facade).
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Runs `future` to completion on the private runtime (the C ABI's blind indexes and
    /// other async work beside the envelope's own).
    pub fn run<F, T>(&self, future: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send,
        T: Send,
    {
        self.block_on(future)
    }

    fn block_on<F, T>(&self, future: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send,
        T: Send,
    {
        let runtime = self.runtime()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(future);
        }
        std::thread::scope(
            |scope| match scope.spawn(|| runtime.block_on(future)).join() {
                Ok(output) => output,
                Err(panic) => std::panic::resume_unwind(panic),
            },
        )
    }

    /// Encrypts into `out` on the caller's thread when the active DEK is cached, else on
    /// the private runtime (one implementation behind every encrypt form).
    fn encrypt_to(&self, plaintext: &[u8], aad: &[u8], out: &mut Output<'_>) -> Result<usize> {
        if let Some(sealed) = self.envelope.try_encrypt_cached_to(plaintext, aad, out) {
            return sealed;
        }
        self.block_on(self.envelope.encrypt_to(plaintext, aad, out))
    }

    /// Decrypts into `out` on the caller's thread when the DEK is cached, else on the
    /// private runtime.
    fn decrypt_to(&self, ciphertext: &[u8], aad: &[u8], out: &mut Output<'_>) -> Result<usize> {
        if let Some(opened) = self.envelope.try_decrypt_cached_to(ciphertext, aad, out) {
            return opened;
        }
        self.block_on(self.envelope.decrypt_to(ciphertext, aad, out))
    }

    /// See [`Envelope::encrypt`].
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encrypt_append(plaintext, aad, &mut out)?;
        Ok(out)
    }

    /// See [`Envelope::encrypt_append`].
    pub fn encrypt_append(&self, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.encrypt_to(plaintext, aad, &mut Output::Append(out))
            .map(drop)
    }

    /// See [`Envelope::encrypt_into`].
    pub fn encrypt_into(&self, plaintext: &[u8], aad: &[u8], out: &mut [u8]) -> Result<usize> {
        self.encrypt_to(plaintext, aad, &mut Output::Slice(out))
    }

    /// See [`Envelope::decrypt_append`].
    pub fn decrypt_append(&self, ciphertext: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.decrypt_to(ciphertext, aad, &mut Output::Append(out))
            .map(drop)
    }

    /// See [`Envelope::decrypt_into`].
    pub fn decrypt_into(&self, ciphertext: &[u8], aad: &[u8], out: &mut [u8]) -> Result<usize> {
        self.decrypt_to(ciphertext, aad, &mut Output::Slice(out))
    }

    /// See [`Envelope::encrypt_to_text`].
    pub fn encrypt_to_text(&self, plaintext: &[u8], aad: &[u8]) -> Result<String> {
        self.encrypt(plaintext, aad)
            .map(|ct| crate::format::to_text(&ct))
    }

    /// See [`Envelope::decrypt`].
    pub fn decrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.decrypt_append(ciphertext, aad, &mut out)?;
        Ok(out)
    }

    /// See [`Envelope::decrypt_text`].
    pub fn decrypt_text(&self, ciphertext: &str, aad: &[u8]) -> Result<Vec<u8>> {
        self.decrypt(&crate::format::from_text(ciphertext)?, aad)
    }

    /// See [`Envelope::rewrap`].
    pub fn rewrap(&self, ciphertext: &[u8]) -> Result<Rewrapped> {
        self.block_on(self.envelope.rewrap(ciphertext))
    }

    /// See [`Envelope::rewrap_text`].
    pub fn rewrap_text(&self, ciphertext: &str) -> Result<(String, bool)> {
        self.block_on(self.envelope.rewrap_text(ciphertext))
    }

    /// See [`Envelope::reencrypt`].
    pub fn reencrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.block_on(self.envelope.reencrypt(ciphertext, aad))
    }

    /// See [`Envelope::inspect`].
    pub fn inspect(ciphertext: &[u8]) -> Result<HeaderInfo> {
        Envelope::inspect(ciphertext)
    }

    /// See [`Envelope::stream_sealer`].
    pub fn stream_sealer(
        &self,
        aad: &[u8],
        segment_size: u32,
    ) -> Result<crate::stream::StreamSealer> {
        self.block_on(self.envelope.stream_sealer(aad, segment_size))
    }

    /// See [`Envelope::stream_opener`].
    pub fn stream_opener(&self, header: &[u8], aad: &[u8]) -> Result<crate::stream::StreamOpener> {
        self.block_on(self.envelope.stream_opener(header, aad))
    }

    /// See [`Envelope::rewrap_stream`].
    pub fn rewrap_stream(&self, header: &[u8]) -> Result<crate::StreamRewrap> {
        self.block_on(self.envelope.rewrap_stream(header))
    }
}

impl Drop for BlockingEnvelope {
    fn drop(&mut self) {
        let slot = self
            .runtime
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(current) = slot else { return };
        if current.pid != std::process::id() {
            // Inherited through fork: its worker thread is not in this process.
            std::mem::forget(current);
            return;
        }
        // Dropping a runtime inside an async context panics; shutting it down in the
        // background never does.
        if let Ok(runtime) = Arc::try_unwrap(current.runtime) {
            runtime.shutdown_background();
        }
    }
}
