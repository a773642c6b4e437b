//! The backend conformance suite: async checks every [`Kms`] implementation must pass.
//!
//! Backend crates call [`run_conformance`] from their integration tests against a real
//! server (or emulator); the local KMS runs it in every build. Each check returns a
//! [`Result`] with a message naming what broke, so a failing backend fails loudly.

mod dek_store;

pub use dek_store::{MemoryDekStore, check_dek_store};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::envelope::Envelope;
use crate::error::Error;
use crate::kms::{EncryptionContext, Kms, Provider, WrappedDek};
use crate::secret::Dek;

/// A boxed future, for the rotation hook.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a backend reports, so that the suite checks what the service really promises.
#[derive(Debug, Clone)]
pub struct ConformanceOptions {
    /// Whether wraps report a KEK version (`false` for services that do not say).
    pub reports_versions: bool,
    /// Whether the service authenticates the encryption context on unwrap.
    pub enforces_context: bool,
    /// Whether the service authenticates a DEK store row's binding
    /// ([`crate::compact::binding_context`]) on unwrap. True for every backend of this
    /// project, also where `enforces_context` is not (Vault binds the row as
    /// `associated_data` on any key type).
    pub enforces_binding: bool,
    /// Whether the service authenticates wrapped DEKs (`false` only for an emulator that
    /// does not really encrypt: a tampered wrap then cannot be told from a genuine one, and
    /// the envelope's key commitment is what refuses it).
    pub authenticates_wraps: bool,
    /// A key id that does not exist in the service.
    pub missing_key_id: String,
}

impl Default for ConformanceOptions {
    fn default() -> Self {
        ConformanceOptions {
            reports_versions: true,
            enforces_context: true,
            enforces_binding: true,
            authenticates_wraps: true,
            missing_key_id: "envelope-conformance-missing-key".into(),
        }
    }
}

/// A conformance failure: which check, and what it saw.
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// Result of one conformance check.
pub type CheckResult = Result<(), Failure>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Failure(format!($($msg)+)));
        }
    };
}

fn context() -> EncryptionContext {
    let mut ctx = EncryptionContext::new();
    ctx.insert("purpose".into(), "envelope-conformance".into());
    ctx
}

fn failed(what: &str, e: Error) -> Failure {
    Failure(format!("{what}: unexpected error {:?}: {e}", e.kind()))
}

/// Generate, then unwrap: the same DEK comes back, the wrap names this provider, the key
/// and (when the service reports them) the current version.
pub async fn generate_and_unwrap(
    kms: &dyn Kms,
    key_id: &str,
    opts: &ConformanceOptions,
) -> CheckResult {
    let ctx = context();
    let generated = kms
        .generate_dek(key_id, &ctx)
        .await
        .map_err(|e| failed("generate_dek", e))?;
    ensure!(
        generated.wrapped.provider == kms.provider(),
        "wrap names provider {}",
        generated.wrapped.provider
    );
    ensure!(
        !generated.wrapped.ciphertext.is_empty(),
        "empty wrapped DEK"
    );
    if opts.reports_versions {
        ensure!(
            !generated.wrapped.key_version.is_empty(),
            "wrap reports no key version"
        );
        let description = kms
            .describe_key(key_id)
            .await
            .map_err(|e| failed("describe_key", e))?;
        ensure!(
            description.current_version.as_deref() == Some(generated.wrapped.key_version.as_str()),
            "describe says current version {:?}, the wrap used {:?}",
            description.current_version,
            generated.wrapped.key_version
        );
    }
    let dek = kms
        .unwrap_dek(&generated.wrapped, &ctx)
        .await
        .map_err(|e| failed("unwrap_dek", e))?;
    ensure!(
        dek.expose_secret() == generated.dek.expose_secret(),
        "unwrap returned a different DEK"
    );
    Ok(())
}

/// Wrap a caller's DEK, then unwrap it.
pub async fn wrap_and_unwrap(
    kms: &dyn Kms,
    key_id: &str,
    _opts: &ConformanceOptions,
) -> CheckResult {
    let ctx = context();
    let dek = Dek::generate();
    let wrapped = kms
        .wrap_dek(key_id, &dek, &ctx)
        .await
        .map_err(|e| failed("wrap_dek", e))?;
    let back = kms
        .unwrap_dek(&wrapped, &ctx)
        .await
        .map_err(|e| failed("unwrap_dek", e))?;
    ensure!(
        back.expose_secret() == dek.expose_secret(),
        "unwrap returned a different DEK"
    );
    Ok(())
}

/// A tampered wrapped DEK never unwraps.
pub async fn tampered_wrap_is_rejected(
    kms: &dyn Kms,
    key_id: &str,
    opts: &ConformanceOptions,
) -> CheckResult {
    if !opts.authenticates_wraps {
        return Ok(());
    }
    let ctx = context();
    let generated = kms
        .generate_dek(key_id, &ctx)
        .await
        .map_err(|e| failed("generate_dek", e))?;
    let mut tampered = generated.wrapped.clone();
    let mid = tampered.ciphertext.len() / 2;
    tampered.ciphertext[mid] ^= 0x01;
    match kms.unwrap_dek(&tampered, &ctx).await {
        Ok(_) => Err(Failure("a tampered wrapped DEK unwrapped".into())),
        Err(e) if e.is_retryable() => Err(Failure(format!("tampering reported as retryable: {e}"))),
        Err(_) => Ok(()),
    }
}

/// An unwrap under another encryption context fails.
pub async fn wrong_context_is_rejected(
    kms: &dyn Kms,
    key_id: &str,
    opts: &ConformanceOptions,
) -> CheckResult {
    if !opts.enforces_context {
        return Ok(());
    }
    let generated = kms
        .generate_dek(key_id, &context())
        .await
        .map_err(|e| failed("generate_dek", e))?;
    let mut other = context();
    other.insert("purpose".into(), "something-else".into());
    ensure!(
        kms.unwrap_dek(&generated.wrapped, &other).await.is_err(),
        "unwrap succeeded under a different encryption context"
    );
    Ok(())
}

/// A wrapped DEK of another provider is answered with `KeyNotOwned`, not a failed call.
pub async fn foreign_provider_is_not_owned(
    kms: &dyn Kms,
    key_id: &str,
    _opts: &ConformanceOptions,
) -> CheckResult {
    let foreign = if kms.provider() == Provider::Local {
        Provider::VaultTransit
    } else {
        Provider::Local
    };
    let wrapped = WrappedDek {
        provider: foreign,
        key_id: key_id.to_owned(),
        key_version: "1".into(),
        ciphertext: vec![1; 60],
    };
    match kms.unwrap_dek(&wrapped, &context()).await {
        Err(Error::KeyNotOwned { .. }) => Ok(()),
        other => Err(Failure(format!(
            "expected KeyNotOwned, got {:?}",
            other.map(|_| "a DEK")
        ))),
    }
}

/// A key the service does not have is `KeyNotFound` (or `PermissionDenied`, which some
/// services answer to hide existence).
pub async fn missing_key_is_not_found(
    kms: &dyn Kms,
    _key_id: &str,
    opts: &ConformanceOptions,
) -> CheckResult {
    match kms.generate_dek(&opts.missing_key_id, &context()).await {
        Err(Error::KeyNotFound { .. } | Error::PermissionDenied { .. }) => Ok(()),
        Err(e) => Err(failed("generate_dek on a missing key", e)),
        Ok(_) => Err(Failure("generate_dek succeeded on a missing key".into())),
    }
}

/// `rewrap_dek` keeps the DEK.
pub async fn rewrap_keeps_the_dek(
    kms: &dyn Kms,
    key_id: &str,
    _opts: &ConformanceOptions,
) -> CheckResult {
    let ctx = context();
    let generated = kms
        .generate_dek(key_id, &ctx)
        .await
        .map_err(|e| failed("generate_dek", e))?;
    let rewrapped = kms
        .rewrap_dek(&generated.wrapped, key_id, &ctx)
        .await
        .map_err(|e| failed("rewrap_dek", e))?;
    let dek = kms
        .unwrap_dek(&rewrapped, &ctx)
        .await
        .map_err(|e| failed("unwrap_dek after rewrap", e))?;
    ensure!(
        dek.expose_secret() == generated.dek.expose_secret(),
        "rewrap changed the DEK"
    );
    Ok(())
}

/// A DEK store row's wrap binds its id, suite and commitment
/// ([`crate::compact::binding_context`]): the wrap unwraps under its own row's binding, and
/// (where the service authenticates the binding) not as another row, another suite, or
/// without the binding; a rewrap, single or batched, keeps the binding.
pub async fn store_rows_are_bound(
    kms: &dyn Kms,
    key_id: &str,
    opts: &ConformanceOptions,
) -> CheckResult {
    use crate::compact::{DekId, binding_context};
    let base = context();
    let dek = crate::secret::Dek::generate();
    let id = |n| DekId::new(n).ok_or_else(|| Failure("id 0".into()));
    let commitment = [7u8; crate::COMMITMENT_LEN];
    let bound = |n, suite| Ok::<_, Failure>(binding_context(&base, id(n)?, suite, &commitment));
    let own = bound(41, crate::Suite::Aes256Gcm)?;
    let wrapped = kms
        .wrap_dek(key_id, &dek, &own)
        .await
        .map_err(|e| failed("wrap_dek (bound)", e))?;
    let back = kms
        .unwrap_dek(&wrapped, &own)
        .await
        .map_err(|e| failed("unwrap_dek (bound)", e))?;
    ensure!(
        back.expose_secret() == dek.expose_secret(),
        "a bound wrap unwrapped to another DEK"
    );
    if opts.enforces_binding {
        for (what, other) in [
            ("another row's id", bound(42, crate::Suite::Aes256Gcm)?),
            ("another suite", bound(41, crate::Suite::XChaCha20Poly1305)?),
            ("no binding", base.clone()),
        ] {
            ensure!(
                kms.unwrap_dek(&wrapped, &other).await.is_err(),
                "a bound wrap unwrapped under {what}"
            );
        }
    }
    let rewrapped = kms
        .rewrap_dek(&wrapped, key_id, &own)
        .await
        .map_err(|e| failed("rewrap_dek (bound)", e))?;
    let again = kms
        .unwrap_dek(&rewrapped, &own)
        .await
        .map_err(|e| failed("unwrap_dek after a bound rewrap", e))?;
    ensure!(
        again.expose_secret() == dek.expose_secret(),
        "a bound rewrap changed the DEK"
    );
    if opts.enforces_binding {
        ensure!(
            kms.unwrap_dek(&rewrapped, &base).await.is_err(),
            "a bound rewrap lost its binding"
        );
    }
    let second = kms
        .wrap_dek(key_id, &dek, &bound(43, crate::Suite::Aes256Gcm)?)
        .await
        .map_err(|e| failed("wrap_dek (bound)", e))?;
    let contexts = [own.clone(), bound(43, crate::Suite::Aes256Gcm)?];
    // Every KMS answers a batch (one request, or the default's one call per DEK).
    {
        let items = kms
            .rewrap_dek_batch(&[wrapped.clone(), second], key_id, &contexts)
            .await
            .map_err(|e| failed("rewrap_dek_batch (bound)", e))?;
        ensure!(
            items.len() == 2,
            "batch rewrap answered {} items",
            items.len()
        );
        for (item, context) in items.into_iter().zip(&contexts) {
            let new = item.map_err(|e| failed("rewrap_dek_batch item (bound)", e))?;
            let dek_back = kms
                .unwrap_dek(&new, context)
                .await
                .map_err(|e| failed("unwrap_dek after a bound batch rewrap", e))?;
            ensure!(
                dek_back.expose_secret() == dek.expose_secret(),
                "a bound batch rewrap changed the DEK"
            );
            if opts.enforces_binding {
                ensure!(
                    kms.unwrap_dek(&new, &base).await.is_err(),
                    "a bound batch rewrap lost its binding"
                );
            }
        }
    }
    Ok(())
}

/// Round trips through an [`Envelope`] over this KMS, with the cache on.
pub async fn envelope_round_trip(
    kms: Arc<dyn Kms>,
    key_id: &str,
    _opts: &ConformanceOptions,
) -> CheckResult {
    let envelope = Envelope::builder_dyn(kms, key_id)
        .encryption_context(context())
        .build()
        .map_err(|e| failed("build", e))?;
    for i in 0..10u32 {
        let aad = format!("row={i}");
        let ct = envelope
            .encrypt(&i.to_be_bytes(), aad.as_bytes())
            .await
            .map_err(|e| failed("encrypt", e))?;
        let pt = envelope
            .decrypt(&ct, aad.as_bytes())
            .await
            .map_err(|e| failed("decrypt", e))?;
        ensure!(pt == i.to_be_bytes(), "round trip changed the plaintext");
        ensure!(
            envelope.decrypt(&ct, b"row=other").await.is_err(),
            "wrong AAD decrypted"
        );
    }
    let stats = envelope.stats();
    ensure!(
        stats.kms_generate_calls == 1,
        "10 encrypts made {} generate calls",
        stats.kms_generate_calls
    );
    ensure!(
        stats.kms_unwrap_calls == 0,
        "own ciphertexts needed {} unwraps",
        stats.kms_unwrap_calls
    );
    Ok(())
}

/// Rotates with `rotate`, then checks that new wraps use a new version, that old wraps still
/// unwrap and that a rewrap moves a DEK to the new version.
pub async fn rotation_then_rewrap(
    kms: &dyn Kms,
    key_id: &str,
    rotate: BoxFuture<'_, Result<(), Error>>,
) -> CheckResult {
    let ctx = context();
    let before = kms
        .generate_dek(key_id, &ctx)
        .await
        .map_err(|e| failed("generate_dek", e))?;
    rotate.await.map_err(|e| failed("rotate", e))?;
    let after = kms
        .generate_dek(key_id, &ctx)
        .await
        .map_err(|e| failed("generate_dek after rotation", e))?;
    ensure!(
        after.wrapped.key_version != before.wrapped.key_version,
        "rotation did not change the wrap's version ({:?})",
        after.wrapped.key_version
    );
    let old = kms
        .unwrap_dek(&before.wrapped, &ctx)
        .await
        .map_err(|e| failed("unwrap of a pre-rotation wrap", e))?;
    ensure!(
        old.expose_secret() == before.dek.expose_secret(),
        "pre-rotation DEK changed"
    );
    let moved = kms
        .rewrap_dek(&before.wrapped, key_id, &ctx)
        .await
        .map_err(|e| failed("rewrap_dek", e))?;
    ensure!(
        moved.key_version == after.wrapped.key_version,
        "rewrap went to version {:?}, current is {:?}",
        moved.key_version,
        after.wrapped.key_version
    );
    let dek = kms
        .unwrap_dek(&moved, &ctx)
        .await
        .map_err(|e| failed("unwrap after rewrap", e))?;
    ensure!(
        dek.expose_secret() == before.dek.expose_secret(),
        "rewrap changed the DEK"
    );
    Ok(())
}

/// Runs every check that needs no service-specific hook; returns all failures.
pub async fn run_conformance(
    kms: Arc<dyn Kms>,
    key_id: &str,
    opts: &ConformanceOptions,
) -> Vec<Failure> {
    let shared = kms.clone();
    let kms = &*shared;
    let mut failures = Vec::new();
    let checks: [(&str, CheckResult); 9] = [
        (
            "generate_and_unwrap",
            generate_and_unwrap(kms, key_id, opts).await,
        ),
        ("wrap_and_unwrap", wrap_and_unwrap(kms, key_id, opts).await),
        (
            "tampered_wrap_is_rejected",
            tampered_wrap_is_rejected(kms, key_id, opts).await,
        ),
        (
            "wrong_context_is_rejected",
            wrong_context_is_rejected(kms, key_id, opts).await,
        ),
        (
            "foreign_provider_is_not_owned",
            foreign_provider_is_not_owned(kms, key_id, opts).await,
        ),
        (
            "missing_key_is_not_found",
            missing_key_is_not_found(kms, key_id, opts).await,
        ),
        (
            "rewrap_keeps_the_dek",
            rewrap_keeps_the_dek(kms, key_id, opts).await,
        ),
        (
            "store_rows_are_bound",
            store_rows_are_bound(kms, key_id, opts).await,
        ),
        (
            "envelope_round_trip",
            envelope_round_trip(shared.clone(), key_id, opts).await,
        ),
    ];
    for (name, result) in checks {
        if let Err(Failure(msg)) = result {
            failures.push(Failure(format!("{name}: {msg}")));
        }
    }
    failures
}
