//! No key material, DEK or plaintext reaches a log event, an error message or a `Debug`
//! string. The test plants recognisable canaries (a KEK, a DEK and a plaintext), runs the
//! success and error paths of the core and the local KMS with `tracing` recording every
//! event at TRACE level, and scans every event, every error's `Display` and `Debug`, and the
//! `Debug` of every public value for the canaries in any common encoding.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use envelope_core::{
    BlockingEnvelope, CachePolicy, Dek, EncryptionContext, Envelope, GeneratedDek, KeyDescription,
    Kms, LocalKeyring, LocalKms, Provider, Result, WrappedDek,
};

const KEK: &[u8; 32] = b"KEK-CANARY-0123456789abcdefghij!";
const DEK: &[u8; 32] = b"DEK-CANARY-0123456789abcdefghij!";
const PLAINTEXT: &[u8] = b"PLAINTEXT-CANARY-4111111111111111";
const AAD: &[u8] = b"AAD-CANARY-patients.card#7";

/// Every encoding of a canary a careless message might carry.
fn forms(secret: &[u8]) -> Vec<String> {
    let head = &secret[..12];
    let b64 = |engine: &base64::engine::GeneralPurpose| engine.encode(head)[..16].to_owned();
    vec![
        String::from_utf8_lossy(&secret[..10]).into_owned(),
        hex::encode(head),
        hex::encode_upper(head),
        b64(&base64::engine::general_purpose::STANDARD),
        b64(&base64::engine::general_purpose::URL_SAFE_NO_PAD),
        format!("{:?}", &head[..6]).trim_end_matches(']').to_owned(),
        format!("{:x?}", &head[..6])
            .trim_end_matches(']')
            .to_owned(),
    ]
}

/// Records every event and span field, formatted, at every level.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut line = format!("span {}", attrs.metadata().name());
        attrs.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut line = String::from("record");
        values.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = format!("{} {}", event.metadata().level(), event.metadata().target());
        event.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A local KMS whose new DEKs are the canary DEK.
#[derive(Debug)]
struct CanaryDekKms(LocalKms);

#[async_trait]
impl Kms for CanaryDekKms {
    fn provider(&self) -> Provider {
        self.0.provider()
    }
    async fn wrap_dek(&self, k: &str, d: &Dek, c: &EncryptionContext) -> Result<WrappedDek> {
        self.0.wrap_dek(k, d, c).await
    }
    async fn unwrap_dek(&self, w: &WrappedDek, c: &EncryptionContext) -> Result<Dek> {
        self.0.unwrap_dek(w, c).await
    }
    async fn describe_key(&self, k: &str) -> Result<KeyDescription> {
        self.0.describe_key(k).await
    }
    async fn generate_dek(&self, k: &str, c: &EncryptionContext) -> Result<GeneratedDek> {
        let dek = Dek::from_array(*DEK);
        let wrapped = self.0.wrap_dek(k, &dek, c).await?;
        Ok(GeneratedDek { dek, wrapped })
    }
}

/// A key-use log that keeps the `Debug` form of everything an envelope reports to it.
#[derive(Debug, Default)]
struct RecordingLog(Mutex<Vec<String>>);

impl envelope_core::KeyUseLog for RecordingLog {
    fn admit(&self) -> Result<()> {
        Ok(())
    }
    fn record_kms(&self, call: envelope_core::audit::KmsUse) -> Result<()> {
        self.0.lock().unwrap().push(format!("{call:?}"));
        Ok(())
    }
    fn track(
        &self,
        dek: envelope_core::audit::TrackedDek,
        usage: Arc<envelope_core::audit::DekUsage>,
    ) {
        self.0.lock().unwrap().push(format!("{dek:?} {usage:?}"));
    }
}

/// A keyring file whose key `default` has the canary KEK as version 1 and version 2 fresh.
fn canary_keyring(dir: &std::path::Path) -> LocalKeyring {
    let path = dir.join("keyring.json");
    let file = serde_json::json!({
        "envelope_keyring": 1,
        "keys": { "default": { "primary_version": 1, "versions": [
            { "version": 1, "state": "enabled", "created_at": 0,
              "material": base64::engine::general_purpose::STANDARD.encode(KEK) } ] } }
    });
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    LocalKeyring::new(path)
}

#[test]
fn no_secret_reaches_an_event_an_error_or_a_debug_string() {
    let recorder = Recorder::default();
    let key_use = Arc::new(RecordingLog::default());
    let mut shown: Vec<String> = Vec::new();
    tracing::subscriber::with_default(recorder.clone(), || {
        let dir = tempfile::tempdir().unwrap();
        let keyring = canary_keyring(dir.path());
        let kms = Arc::new(CanaryDekKms(LocalKms::new(keyring.clone())));
        let envelope = Envelope::builder(kms.clone(), "default")
            .key_use_log(key_use.clone())
            .audit_label("patients.card")
            .build()
            .unwrap();
        let blocking = BlockingEnvelope::new(envelope.clone()).unwrap();
        let ct = blocking.encrypt(PLAINTEXT, AAD).unwrap();
        shown.push(format!("{envelope:?} {blocking:?} {kms:?} {keyring:?}"));
        shown.push(format!("{:?}", Envelope::inspect(&ct).unwrap()));
        shown.push(format!("{:?}", envelope.stats()));

        let mut errors: Vec<envelope_core::Error> = Vec::new();
        // Authentication failures through a cold reader (the KMS is called).
        let cold = || {
            BlockingEnvelope::new(
                Envelope::builder(LocalKms::new(keyring.clone()), "default")
                    .key_use_log(key_use.clone())
                    .cache_policy(CachePolicy::disabled())
                    .build()
                    .unwrap(),
            )
            .unwrap()
        };
        errors.push(cold().decrypt(&ct, b"another row").unwrap_err());
        for offset in [3usize, 4, 20, 48, 52, 60, ct.len() - 1] {
            let mut bad = ct.clone();
            bad[offset] ^= 0x55;
            errors.push(cold().decrypt(&bad, AAD).unwrap_err());
            errors.push(blocking.decrypt(&bad, AAD).unwrap_err());
            if let Err(e) = cold().rewrap(&bad) {
                errors.push(e);
            }
        }
        for len in [0, 2, 3, 10, 50, 60, 100, ct.len() - 17] {
            errors.push(blocking.decrypt(&ct[..len], AAD).unwrap_err());
        }
        errors.push(blocking.decrypt_text("ev1:not base64!", AAD).unwrap_err());
        errors.push(blocking.decrypt_text("ev7:AAAA", AAD).unwrap_err());
        let mut small = [0u8; 4];
        errors.push(blocking.decrypt_into(&ct, AAD, &mut small).unwrap_err());
        // Streams: the sealer, the opener, a writer holding unsealed plaintext, a reader
        // holding opened plaintext, and a stream that fails.
        {
            use envelope_core::stream::{
                EncryptingWriter, MIN_SEGMENT_SIZE, SeekableDecryptingReader,
            };
            use std::io::{Read, Write};
            let sealer = blocking.stream_sealer(AAD, MIN_SEGMENT_SIZE).unwrap();
            shown.push(format!("{sealer:?}"));
            let mut writer = EncryptingWriter::new(Vec::new(), sealer, 1).unwrap();
            writer.write_all(PLAINTEXT).unwrap();
            shown.push(format!("{writer:?}"));
            let sealed = writer.finish().unwrap();
            let opener = blocking.stream_opener(&sealed, AAD).unwrap();
            shown.push(format!("{opener:?}"));
            let mut reader = SeekableDecryptingReader::new(
                std::io::Cursor::new(sealed.clone()),
                opener.clone(),
                1,
            )
            .unwrap();
            let mut first = [0u8; 4];
            reader.read_exact(&mut first).unwrap();
            shown.push(format!("{reader:?}"));
            let mut bad = sealed.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            let mut failing =
                SeekableDecryptingReader::new(std::io::Cursor::new(bad.clone()), opener, 1)
                    .unwrap();
            let e = failing.read_to_end(&mut Vec::new()).unwrap_err();
            shown.push(format!("{e} | {e:?}"));
            errors.push(blocking.decrypt(&bad, AAD).unwrap_err());
            errors.push(
                blocking
                    .decrypt(&sealed[..sealed.len() - 20], AAD)
                    .unwrap_err(),
            );
        }
        // Key states: rotate, then disable and destroy the canary version.
        keyring.rotate("default").unwrap();
        keyring.disable_version("default", 1).unwrap();
        errors.push(cold().decrypt(&ct, AAD).unwrap_err());
        keyring.destroy_version("default", 1).unwrap();
        errors.push(cold().decrypt(&ct, AAD).unwrap_err());
        errors.push(cold().rewrap(&ct).unwrap_err());
        // A missing key and a foreign provider.
        let other = BlockingEnvelope::new(
            Envelope::builder(LocalKms::new(keyring.clone()), "missing")
                .build()
                .unwrap(),
        )
        .unwrap();
        errors.push(other.encrypt(PLAINTEXT, AAD).unwrap_err());
        let mut foreign = ct.clone();
        foreign[48] = Provider::AwsKms.id();
        errors.push(cold().decrypt(&foreign, AAD).unwrap_err());
        // A keyring readable by others, and one with the KEK where a number belongs.
        use std::os::unix::fs::PermissionsExt;
        let loose_dir = dir.path().join("loose");
        std::fs::create_dir(&loose_dir).unwrap();
        let loose = canary_keyring(&loose_dir);
        std::fs::set_permissions(loose.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        errors.push(loose.describe("default").unwrap_err());
        let wrong = dir.path().join("wrong.json");
        let text = format!(
            r#"{{"envelope_keyring": 1, "keys": {{"default": {{"primary_version": "{}", "versions": []}}}}}}"#,
            base64::engine::general_purpose::STANDARD.encode(KEK)
        );
        std::fs::write(&wrong, text).unwrap();
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
        errors.push(LocalKeyring::new(&wrong).describe("default").unwrap_err());

        assert!(errors.len() >= 30, "{} error paths ran", errors.len());
        for e in &errors {
            shown.push(format!("{e} | {e:?}"));
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                shown.push(format!("{s} | {s:?}"));
                source = s.source();
            }
        }
    });
    let reported = key_use.0.lock().unwrap().clone();
    assert!(
        reported.iter().any(|r| r.contains("Generate"))
            && reported.iter().any(|r| r.contains("KeyVersionDestroyed")),
        "the key-use log saw the generate and the failed unwraps: {reported:?}"
    );
    shown.extend(reported);
    let events = recorder.0.lock().unwrap().clone();
    assert!(
        events.iter().any(|e| e.contains("KMS call failed")),
        "the recorder saw the KMS failure events: {events:?}"
    );
    for (what, secret) in [
        ("KEK", &KEK[..]),
        ("DEK", &DEK[..]),
        ("plaintext", PLAINTEXT),
        ("AAD", AAD),
    ] {
        for form in forms(secret) {
            for line in events.iter().chain(&shown) {
                assert!(
                    !line.contains(&form),
                    "{what} ({form:?}) leaked into: {line}"
                );
            }
        }
    }
}
