//! Checking version labels that a header alone cannot (the local keyring binds the version
//! inside its wrap): unwrap once per distinct DEK, and when that fails, find the version
//! the DEK really opens under.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envelope::compact::StoredDek;
use envelope::{EncryptionContext, ErrorKind, Kms, KmsExt, WrappedDek, canonical_context};
use tokio::sync::Mutex;

/// What an unwrap said about a header's version label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The DEK unwraps under the labeled version.
    Verified,
    /// The DEK unwraps under another version than the label.
    Mislabeled {
        /// The version it unwraps under.
        carried: String,
    },
    /// The DEK unwraps under no version of the key (error kind of the labeled unwrap).
    Unopenable(&'static str),
}

/// Unwraps each distinct wrapped DEK once and remembers the verdict.
pub struct LabelVerifier {
    kms: Arc<dyn Kms>,
    context: EncryptionContext,
    memo: Mutex<HashMap<Vec<u8>, Verdict>>,
    /// KMS calls made (unwraps and describes), for the job summary's `kms_calls`.
    calls: AtomicU64,
}

impl LabelVerifier {
    /// A verifier over a KMS (the census's `--verify-with`, or a job's own KMS).
    pub fn new(kms: Arc<dyn Kms>) -> Self {
        LabelVerifier {
            kms,
            context: EncryptionContext::new(),
            memo: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
        }
    }

    /// The KMS calls this verifier has made.
    pub fn kms_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The verdict for a wrapped DEK of this verifier's provider (`None` for another
    /// provider's): a v1 header's, or (with `row`) a DEK store row's, unwrapped under the
    /// row's binding. Fails only on a retryable KMS error (the verdict is then unknown).
    pub async fn verdict(
        &self,
        wrapped: &WrappedDek,
        row: Option<&StoredDek>,
    ) -> envelope::Result<Option<Verdict>> {
        if self.kms.check_owned(wrapped).is_err() {
            return Ok(None);
        }
        let context = match row {
            Some(row) => row.unwrap_context(&self.context),
            None => self.context.clone(),
        };
        let memo_key = memo_key(wrapped, &context);
        if let Some(v) = self.memo.lock().await.get(&memo_key) {
            return Ok(Some(v.clone()));
        }
        self.count_call();
        let verdict = match self.kms.unwrap_dek(wrapped, &context).await {
            Ok(_) => Verdict::Verified,
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => self.diagnose(wrapped, &context, e.kind()).await?,
        };
        self.memo.lock().await.insert(memo_key, verdict.clone());
        Ok(Some(verdict))
    }

    /// Why a wrapped DEK does not open under its label: another version of the key opens
    /// it (mislabeled), or none does.
    pub async fn diagnose(
        &self,
        wrapped: &WrappedDek,
        context: &EncryptionContext,
        kind: ErrorKind,
    ) -> envelope::Result<Verdict> {
        if kind != ErrorKind::DecryptionFailed && kind != ErrorKind::KeyVersionNotFound {
            return Ok(Verdict::Unopenable(kind.as_str()));
        }
        self.count_call();
        let description = match self.kms.describe_key(&wrapped.key_id).await {
            Ok(d) => d,
            Err(e) if e.is_retryable() => return Err(e),
            Err(_) => return Ok(Verdict::Unopenable(kind.as_str())),
        };
        for version in description.versions {
            if version.version == wrapped.key_version {
                continue;
            }
            let candidate = WrappedDek {
                key_version: version.version.clone(),
                ..wrapped.clone()
            };
            self.count_call();
            match self.kms.unwrap_dek(&candidate, context).await {
                Ok(_) => {
                    return Ok(Verdict::Mislabeled {
                        carried: version.version,
                    });
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(_) => {}
            }
        }
        Ok(Verdict::Unopenable(kind.as_str()))
    }
}

fn memo_key(wrapped: &WrappedDek, context: &EncryptionContext) -> Vec<u8> {
    let mut key = Vec::with_capacity(wrapped.ciphertext.len() + wrapped.key_id.len() + 8);
    key.extend_from_slice(&canonical_context(context));
    key.extend_from_slice(wrapped.key_id.as_bytes());
    key.push(0);
    key.extend_from_slice(wrapped.key_version.as_bytes());
    key.push(0);
    key.extend_from_slice(&wrapped.ciphertext);
    key
}
