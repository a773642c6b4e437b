//! End-to-end behaviour of `Envelope` over the local KMS.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use common::Fixture;
use envelope_core::{
    BlockingEnvelope, CachePolicy, Envelope, Error, ErrorKind, Provider, Suite, format,
};
use proptest::prelude::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn header_split(ct: &[u8]) -> (usize, usize) {
    // (end of the stable part, start of the body) for a local-KMS ciphertext
    let info = Envelope::inspect(ct).unwrap();
    let stable = 4 + info.suite.nonce_len() + 32;
    (stable, info.header_len)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn round_trip_any_plaintext_and_aad(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        aad in proptest::collection::vec(any::<u8>(), 0..600),
        xchacha in any::<bool>(),
    ) {
        let fx = Fixture::new();
        let suite = if xchacha { Suite::XChaCha20Poly1305 } else { Suite::Aes256Gcm };
        let env = Envelope::builder(fx.kms.clone(), "default").suite(suite).build().unwrap();
        let rt = runtime();
        let ct = rt.block_on(env.encrypt(&plaintext, &aad)).unwrap();
        prop_assert_eq!(ct.len(), plaintext.len() + Envelope::inspect(&ct).unwrap().overhead);
        prop_assert_eq!(rt.block_on(env.decrypt(&ct, &aad)).unwrap(), plaintext.clone());
        let text = format::to_text(&ct);
        prop_assert_eq!(rt.block_on(env.decrypt_text(&text, &aad)).unwrap(), plaintext);
        let mut other_aad = aad.clone();
        other_aad.push(0);
        prop_assert!(matches!(rt.block_on(env.decrypt(&ct, &other_aad)), Err(Error::DecryptionFailed)));
    }
}

#[test]
fn every_single_bit_flip_is_rejected_without_panic() {
    let fx = Fixture::new();
    let rt = runtime();
    for suite in [Suite::Aes256Gcm, Suite::XChaCha20Poly1305] {
        let env = Envelope::builder(fx.kms.clone(), "default")
            .suite(suite)
            .build()
            .unwrap();
        let aad = b"table=t;column=c;row=1";
        let ct = rt.block_on(env.encrypt(b"secret field", aad)).unwrap();
        // A reader that has never seen this DEK, so flips in the KEK reference reach the KMS.
        let (reader, _) = fx.other_process(CachePolicy::default());
        let mut kinds = std::collections::HashMap::<ErrorKind, usize>::new();
        for byte in 0..ct.len() {
            for bit in 0..8 {
                let mut flipped = ct.clone();
                flipped[byte] ^= 1 << bit;
                let result = rt.block_on(reader.decrypt(&flipped, aad));
                let err = result.expect_err(&format!("flip of byte {byte} bit {bit} decrypted"));
                *kinds.entry(err.kind()).or_default() += 1;
            }
        }
        assert_eq!(
            rt.block_on(reader.decrypt(&ct, aad)).unwrap(),
            b"secret field"
        );
        // Flips of the body, tag, nonce and commitment are opaque authentication failures.
        assert!(
            kinds[&ErrorKind::DecryptionFailed] >= (16 + 12 + 12 + 32) * 8,
            "{kinds:?}"
        );
    }
}

#[test]
fn inspect_reports_header_facts_and_exact_local_overhead() {
    let fx = Fixture::new();
    let env = fx.envelope(CachePolicy::default());
    let ct = runtime()
        .block_on(env.encrypt(b"12345678901", b""))
        .unwrap();
    let info = Envelope::inspect(&ct).unwrap();
    assert_eq!(info.format_version, 1);
    assert_eq!(info.suite, Suite::Aes256Gcm);
    assert_eq!(info.provider, Provider::Local);
    assert_eq!(info.key_id, "default");
    assert_eq!(info.key_version, "1");
    assert_eq!(info.wrapped_dek_len, 60);
    assert_eq!(info.plaintext_len, 11);
    // docs/FORMAT.md: 130 + len(key id) + len(key version) for AES-256-GCM and the local KMS.
    assert_eq!(info.overhead, 130 + "default".len() + "1".len());
    assert_eq!(ct.len(), 11 + info.overhead);
    let text = format::to_text(&ct);
    assert!(text.starts_with("ev1:"));
    assert_eq!(Envelope::inspect_text(&text).unwrap(), info);
}

#[test]
fn unknown_versions_and_suites_are_named() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = fx.envelope(CachePolicy::default());
    let ct = rt.block_on(env.encrypt(b"x", b"")).unwrap();
    let mut v5 = ct.clone();
    v5[2] = 5;
    let err = rt.block_on(env.decrypt(&v5, b"")).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormatVersion(5)));
    assert!(err.to_string().contains("format version 5"), "{err}");
    // Version 4 is the streaming form: a v1 body under a version 4 byte is not a stream.
    let mut v4 = ct.clone();
    v4[2] = 4;
    let err = rt.block_on(env.decrypt(&v4, b"")).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err}");
    let mut suite = ct.clone();
    suite[3] = 0x33;
    let err = Envelope::inspect(&suite).unwrap_err();
    assert!(matches!(err, Error::UnsupportedSuite(0x33)), "{err}");
    let err = Envelope::inspect(b"hello world, not a ciphertext").unwrap_err();
    assert!(err.to_string().contains("magic"), "{err}");
}

#[test]
fn rotate_rewrap_destroy_walkthrough() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = fx.envelope(CachePolicy::default());
    let aad_a = b"row=a";
    let aad_b = b"row=b";
    let a = rt.block_on(env.encrypt(b"alpha", aad_a)).unwrap();
    let b = rt.block_on(env.encrypt(b"bravo", aad_b)).unwrap();

    // Already current: a no-op that returns the same bytes.
    let same = rt.block_on(env.rewrap(&a)).unwrap();
    assert!(!same.changed);
    assert_eq!(same.ciphertext, a);

    assert_eq!(fx.keyring.rotate("default").unwrap(), 2);
    env.refresh_kek();
    let rewrapped = rt.block_on(env.rewrap(&a)).unwrap();
    assert!(rewrapped.changed);
    assert_eq!(
        (
            rewrapped.from_version.as_str(),
            rewrapped.to_version.as_str()
        ),
        ("1", "2")
    );
    let new = rewrapped.ciphertext;
    assert_eq!(Envelope::inspect(&new).unwrap().key_version, "2");
    let (stable_old, body_old) = header_split(&a);
    let (stable_new, body_new) = header_split(&new);
    assert_eq!(stable_old, stable_new);
    assert_eq!(
        a[..stable_old],
        new[..stable_new],
        "nonce and commitment unchanged"
    );
    assert_eq!(a[body_old..], new[body_new..], "body bytes unchanged");
    assert_eq!(rt.block_on(env.decrypt(&new, aad_a)).unwrap(), b"alpha");

    fx.keyring.destroy_version("default", 1).unwrap();
    // A process without cached DEKs (or this one after clearing its caches).
    env.clear_caches();
    for reader in [env.clone(), fx.other_process(CachePolicy::default()).0] {
        let err = rt.block_on(reader.decrypt(&b, aad_b)).unwrap_err();
        assert!(
            matches!(err, Error::KeyVersionDestroyed { ref version, .. } if version == "1"),
            "{err}"
        );
        assert!(err.to_string().contains("destroyed"), "{err}");
        assert_eq!(rt.block_on(reader.decrypt(&new, aad_a)).unwrap(), b"alpha");
        // Rewrapping what was not rewrapped in time is no longer possible either.
        assert!(matches!(
            rt.block_on(reader.rewrap(&b)),
            Err(Error::KeyVersionDestroyed { .. })
        ));
    }
}

#[test]
fn rewrap_costs_one_kms_call_per_distinct_dek() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = fx.envelope(CachePolicy::default().with_max_messages(10));
    let cts: Vec<Vec<u8>> = (0..30u8)
        .map(|i| rt.block_on(env.encrypt(&[i], &[i])).unwrap())
        .collect();
    assert_eq!(fx.kms.calls().generate, 3);
    fx.keyring.rotate("default").unwrap();
    env.refresh_kek();
    for (i, ct) in cts.iter().enumerate() {
        let r = rt.block_on(env.rewrap(ct)).unwrap();
        assert!(r.changed);
        assert_eq!(
            rt.block_on(env.decrypt(&r.ciphertext, &[i as u8])).unwrap(),
            [i as u8]
        );
    }
    assert_eq!(fx.kms.calls().rewrap, 3);
    assert_eq!(env.stats().rewrap_cache_hits, 27);
}

#[test]
fn reencrypt_uses_a_new_dek_and_body() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = fx.envelope(CachePolicy::default());
    let ct = rt.block_on(env.encrypt(b"field", b"aad")).unwrap();
    let again = rt.block_on(env.reencrypt(&ct, b"aad")).unwrap();
    let (s1, b1) = header_split(&ct);
    let (s2, b2) = header_split(&again);
    assert_ne!(ct[b1..], again[b2..], "body changed");
    assert_ne!(
        ct[4 + 12..s1],
        again[4 + 12..s2],
        "commitment (so the DEK) changed"
    );
    assert_eq!(rt.block_on(env.decrypt(&again, b"aad")).unwrap(), b"field");
    assert_eq!(fx.kms.calls().generate, 2);
    assert!(rt.block_on(env.reencrypt(&ct, b"other")).is_err());
}

#[test]
fn foreign_provider_is_key_not_owned() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = fx.envelope(CachePolicy::default());
    let mut ct = rt.block_on(env.encrypt(b"x", b"")).unwrap();
    let provider_offset = 4 + 12 + 32;
    ct[provider_offset] = Provider::AwsKms.id();
    let err = rt.block_on(env.decrypt(&ct, b"")).unwrap_err();
    assert!(matches!(err, Error::KeyNotOwned { .. }), "{err}");
}

#[test]
fn blocking_facade_works_outside_and_inside_a_runtime() {
    let fx = Fixture::new();
    let blocking = BlockingEnvelope::new(fx.envelope(CachePolicy::default())).unwrap();
    let ct = blocking.encrypt(b"plain thread", b"a").unwrap();
    assert_eq!(blocking.decrypt(&ct, b"a").unwrap(), b"plain thread");

    // Inside a multi-threaded runtime, from an async task, with a cold cache (KMS call).
    let cold = BlockingEnvelope::new(fx.other_process(CachePolicy::disabled()).0).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (ct2, pt) = rt.block_on(async {
        let ct2 = cold.encrypt(b"inside", b"b").unwrap();
        let pt = cold.decrypt(&ct, b"a").unwrap();
        (ct2, pt)
    });
    assert_eq!(pt, b"plain thread");
    // Inside a current-thread runtime, and dropped there.
    let rt1 = runtime();
    rt1.block_on(async move {
        assert_eq!(cold.decrypt(&ct2, b"b").unwrap(), b"inside");
        let r = cold.rewrap(&ct2).unwrap();
        assert!(!r.changed);
        drop(cold);
    });
}

#[test]
fn debug_output_never_contains_key_material() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = fx.envelope(CachePolicy::default());
    let ct = rt.block_on(env.encrypt(b"x", b"")).unwrap();
    rt.block_on(env.decrypt(&ct, b"")).unwrap();
    let keyring_text = std::fs::read_to_string(fx.path()).unwrap();
    let material: String = keyring_text
        .split("\"material\": \"")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&material)
        .unwrap();
    let blocking = BlockingEnvelope::new(env.clone()).unwrap();
    let shown = format!(
        "{env:?} {env:#?} {:?} {blocking:?} {:?}",
        fx.kms,
        env.stats()
    );
    assert!(!shown.contains(&material));
    assert!(!shown.contains(&hex::encode(&raw)));
    assert!(!shown.contains(&format!("{:?}", &raw[..8]).trim_end_matches(']').to_string()));
}

#[test]
fn cache_policy_is_validated_against_the_suite() {
    let fx = Fixture::new();
    let too_many = CachePolicy::default().with_max_messages((1 << 32) + 1);
    let err = Envelope::builder(fx.kms.clone(), "default")
        .cache_policy(too_many.clone())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    assert!(
        Envelope::builder(fx.kms.clone(), "default")
            .suite(Suite::XChaCha20Poly1305)
            .cache_policy(too_many)
            .build()
            .is_ok()
    );
}

/// Every provider of the build reads every other provider's ciphertexts, in both suites,
/// through both the `Vec` and the caller-buffer paths (async and blocking).
#[test]
fn providers_interoperate_through_every_output_form() {
    let fx = Fixture::new();
    let rt = runtime();
    let aad = b"patients.ssn#7";
    let plaintext = vec![0x42u8; 1000];
    for &writer in envelope_core::CryptoProvider::available() {
        for &reader in envelope_core::CryptoProvider::available() {
            for suite in [Suite::Aes256Gcm, Suite::XChaCha20Poly1305] {
                let build = |p| {
                    Envelope::builder(fx.kms.clone(), "default")
                        .suite(suite)
                        .crypto_provider(p)
                        .build()
                        .unwrap()
                };
                let (w, r) = (build(writer), build(reader));
                let ct = rt.block_on(w.encrypt(&plaintext, aad)).unwrap();
                let mut buf = vec![0u8; ct.len() + 7];
                let n = rt
                    .block_on(w.encrypt_into(&plaintext, aad, &mut buf))
                    .unwrap();
                assert_eq!(n, ct.len(), "same DEK, same length");
                for c in [&ct[..], &buf[..n]] {
                    assert_eq!(rt.block_on(r.decrypt(c, aad)).unwrap(), plaintext);
                    let mut out = vec![0u8; plaintext.len()];
                    let m = rt.block_on(r.decrypt_into(c, aad, &mut out)).unwrap();
                    assert_eq!(
                        &out[..m],
                        plaintext.as_slice(),
                        "{writer}->{reader} {suite}"
                    );
                    let blocking = BlockingEnvelope::new(r.clone()).unwrap();
                    let mut out = vec![0u8; plaintext.len()];
                    let m = blocking.decrypt_into(c, aad, &mut out).unwrap();
                    assert_eq!(&out[..m], plaintext.as_slice());
                }
            }
        }
    }
}

/// A short buffer gets `BufferTooSmall` with the exact length needed and is left untouched;
/// a failed decryption leaves no plaintext in it.
#[test]
fn caller_buffers_too_small_or_failing_are_left_clean() {
    let fx = Fixture::new();
    let rt = runtime();
    let env = Envelope::builder(fx.kms.clone(), "default")
        .build()
        .unwrap();
    let blocking = BlockingEnvelope::new(env.clone()).unwrap();
    let ct = rt.block_on(env.encrypt(b"123-45-6789", b"aad")).unwrap();

    let mut short = [0xAAu8; 20];
    match rt.block_on(env.encrypt_into(b"123-45-6789", b"aad", &mut short)) {
        Err(Error::BufferTooSmall { needed, capacity }) => {
            assert_eq!((needed, capacity), (ct.len(), 20));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(short, [0xAA; 20], "nothing written");
    let mut short = [0xAAu8; 10];
    assert!(matches!(
        blocking.decrypt_into(&ct, b"aad", &mut short),
        Err(Error::BufferTooSmall {
            needed: 11,
            capacity: 10
        })
    ));
    assert_eq!(short, [0xAA; 10], "nothing written");

    let mut exact = [0u8; 11];
    assert_eq!(blocking.decrypt_into(&ct, b"aad", &mut exact).unwrap(), 11);
    assert_eq!(&exact, b"123-45-6789");
    let mut out = [0u8; 11];
    assert_eq!(
        blocking
            .decrypt_into(&ct, b"wrong", &mut out)
            .unwrap_err()
            .kind(),
        ErrorKind::DecryptionFailed
    );
    assert_eq!(out, [0u8; 11], "no plaintext after a failed tag check");
    let mut appended = b"prefix".to_vec();
    assert!(
        blocking
            .decrypt_append(&ct, b"wrong", &mut appended)
            .is_err()
    );
    assert_eq!(appended, b"prefix", "a Vec keeps its old contents on error");
}
