//! Deterministic generation of the format test vectors in `testvectors/v1.json`,
//! `testvectors/compact.json` ([`compact`]) and `testvectors/stream.json` ([`stream`]).
//!
//! Every key, DEK and nonce is derived from a label with SHA-256, so regenerating gives the
//! same file byte for byte; a test checks that the committed file is current. Regenerate
//! with `cargo run -p envelope-core --features testing --example generate_testvectors`.

pub mod compact;
pub mod index;
pub mod stream;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::format::{self, TEXT_PREFIX};
use crate::kms::{EncryptionContext, Provider, WrappedDek};
use crate::local::wrap_with_nonce;
use crate::secret::{Dek, KEY_LEN};
use crate::suite::{DataKey, Suite};

/// The key id of the vectors' keyring key.
pub const KEY_ID: &str = "vectors";
const AAD: &[u8] = b"table=patients;column=ssn;row=42";
const LARGE_LEN: usize = 100 * 1024;

fn derive(label: &str) -> [u8; 32] {
    Sha256::digest(format!("envelope test vector {label}")).into()
}

fn kek(version: u32) -> [u8; KEY_LEN] {
    derive(&format!("kek v{version}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn large_pattern() -> Vec<u8> {
    (0..251u8).collect()
}

struct Sealed {
    dek: [u8; KEY_LEN],
    wrapped: WrappedDek,
    ciphertext: Vec<u8>,
}

/// The non-empty encryption context of the context vectors.
fn encryption_context() -> EncryptionContext {
    [("purpose", "pci"), ("tenant", "acme")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Text-form vectors: each breaks one rule of the strict base64url of `docs/FORMAT.md`;
/// `base` is a valid text form (a 149-byte ciphertext: 199 base64url characters, whose last
/// character carries 2 unused bits).
fn text_vectors(base: &str) -> Vec<Value> {
    let payload = &base[TEXT_PREFIX.len()..];
    let last = payload.chars().last().expect("non-empty");
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).expect("base64url character");
    // The same 6-bit value with an unused low bit set: decodes to the same bytes if
    // trailing bits were ignored.
    let noncanonical = alphabet.as_bytes()[index | 1] as char;
    let with_last = |c: char| format!("{}{}", &base[..base.len() - 1], c);
    let insert = |at: usize, s: &str| format!("{}{}{}", &base[..at], s, &base[at..]);
    let t = |name: &str, text: String, expected: &str, why: &str| json!({ "name": format!("text/{name}"), "text": text, "expected": expected, "why": why });
    vec![
        t(
            "unknown prefix",
            "xx1:RVYB".into(),
            "malformed",
            "no ev1: prefix",
        ),
        t(
            "upper-case prefix",
            format!("EV1:{payload}"),
            "malformed",
            "the prefix is lower-case ev1:",
        ),
        t(
            "format version 5",
            "ev5:RVYF".into(),
            "unsupported_format_version",
            "evN: names the format version",
        ),
        t(
            "standard alphabet",
            "ev1:RV+B".into(),
            "malformed",
            "'+' and '/' are not base64url",
        ),
        t(
            "padding",
            format!("{base}="),
            "malformed",
            "base64url without padding: '=' is refused",
        ),
        t(
            "space",
            insert(24, " "),
            "malformed",
            "no whitespace anywhere",
        ),
        t(
            "line break",
            insert(80, "\n"),
            "malformed",
            "no whitespace anywhere (no MIME line wrapping)",
        ),
        t(
            "non-canonical trailing bits",
            with_last(noncanonical),
            "malformed",
            "the unused low bits of the last character must be zero",
        ),
        t(
            "impossible length",
            base[..base.len() - 2].to_owned(),
            "malformed",
            "a base64url length of 4k+1 characters encodes no whole byte",
        ),
        t(
            "empty",
            TEXT_PREFIX.to_owned(),
            "malformed",
            "decodes to no bytes: the magic is missing",
        ),
    ]
}

fn seal(label: &str, suite: Suite, version: u32, plaintext: &[u8], aad: &[u8]) -> Sealed {
    seal_with(
        label,
        suite,
        version,
        plaintext,
        aad,
        &EncryptionContext::new(),
    )
}

/// Like [`seal`], with the DEK wrapped under an encryption context.
fn seal_with(
    label: &str,
    suite: Suite,
    version: u32,
    plaintext: &[u8],
    aad: &[u8],
    context: &EncryptionContext,
) -> Sealed {
    let dek_bytes = derive(&format!("{label} dek"));
    let dek = Dek::from_array(dek_bytes);
    let wrap_nonce: [u8; 12] = derive(&format!("{label} wrap nonce"))[..12]
        .try_into()
        .expect("12 of 32 bytes");
    let wrapped = WrappedDek {
        provider: Provider::Local,
        key_id: KEY_ID.to_owned(),
        key_version: version.to_string(),
        ciphertext: wrap_with_nonce(&kek(version), KEY_ID, version, &dek, context, &wrap_nonce)
            .expect("local wrap"),
    };
    let nonce_full = derive(&format!("{label} nonce"));
    let nonce = &nonce_full[..suite.nonce_len()];
    let key = DataKey::new(crate::CryptoProvider::default(), suite, &dek);
    let kek_ref = format::encode_kek_ref(&wrapped).expect("valid KEK reference");
    let ciphertext = format::seal(&key, &kek_ref, nonce, plaintext, aad).expect("seal");
    Sealed {
        dek: dek_bytes,
        wrapped,
        ciphertext,
    }
}

fn positive(name: &str, suite: Suite, plaintext: &[u8], aad: &[u8], s: &Sealed) -> Value {
    let mut v = json!({
        "name": name,
        "suite": suite.name(),
        "key_version": s.wrapped.key_version,
        "dek": hex(&s.dek),
        "aad": hex(aad),
        "ciphertext": hex(&s.ciphertext),
        "expected": "ok",
    });
    if plaintext.len() == LARGE_LEN {
        v["plaintext_repeat"] = json!({ "hex": hex(&large_pattern()), "len": LARGE_LEN });
    } else {
        v["plaintext"] = json!(hex(plaintext));
    }
    v
}

fn negative(name: &str, ciphertext: &[u8], aad: &[u8], expected: &str, why: &str) -> Value {
    json!({
        "name": name,
        "aad": hex(aad),
        "ciphertext": hex(ciphertext),
        "expected": expected,
        "why": why,
    })
}

/// Offsets of the field boundaries of a local-KMS AES-256-GCM ciphertext.
fn boundaries(ct: &[u8]) -> Vec<(&'static str, usize)> {
    let nonce_end = 4 + 12;
    let commit_end = nonce_end + 32;
    let id_len = u16::from_be_bytes([ct[commit_end + 1], ct[commit_end + 2]]) as usize;
    let id_end = commit_end + 3 + id_len;
    let version_end = id_end + 1 + ct[id_end] as usize;
    let wrapped_len = u16::from_be_bytes([ct[version_end], ct[version_end + 1]]) as usize;
    let wrapped_end = version_end + 2 + wrapped_len;
    vec![
        ("empty", 0),
        ("magic", 2),
        ("format version", 3),
        ("suite", 4),
        ("nonce", nonce_end),
        ("commitment", commit_end),
        ("provider", commit_end + 1),
        ("key id length", commit_end + 3),
        ("key id", id_end),
        ("key version length", id_end + 1),
        ("key version", version_end),
        ("wrapped DEK length", version_end + 2),
        ("wrapped DEK", wrapped_end),
        ("15 body bytes (fewer than a tag)", wrapped_end + 15),
    ]
}

/// The whole vectors file.
pub fn generate() -> Value {
    let mut vectors = Vec::new();
    let pattern = large_pattern();
    let large: Vec<u8> = pattern.iter().copied().cycle().take(LARGE_LEN).collect();
    let sixty_four: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(7)).collect();
    let sizes: [(&str, &[u8]); 4] = [
        ("empty", b""),
        ("1-byte", b"\x42"),
        ("64-byte", &sixty_four),
        ("100KiB", &large),
    ];
    for suite in [Suite::Aes256Gcm, Suite::XChaCha20Poly1305] {
        for (size, plaintext) in sizes {
            for (aad_name, aad) in [("no-aad", &b""[..]), ("aad", AAD)] {
                let name = format!("{}/{size}/{aad_name}", suite.name());
                let sealed = seal(&name, suite, 1, plaintext, aad);
                vectors.push(positive(&name, suite, plaintext, aad, &sealed));
            }
        }
    }

    // Rewrap: the same message moved to KEK version 2; body and stable header unchanged.
    let base_name = "AES-256-GCM/64-byte/aad";
    let base = seal(base_name, Suite::Aes256Gcm, 1, &sixty_four, AAD);
    let moved = seal(base_name, Suite::Aes256Gcm, 2, &sixty_four, AAD);
    let mut rewrapped = positive(
        "AES-256-GCM/64-byte/aad/rewrapped-to-v2",
        Suite::Aes256Gcm,
        &sixty_four,
        AAD,
        &moved,
    );
    rewrapped["rewrap_of"] = json!(base_name);
    vectors.push(rewrapped);

    // The text form of a small message.
    let text = seal(
        "AES-256-GCM/text-form",
        Suite::Aes256Gcm,
        1,
        b"123-45-6789",
        AAD,
    );
    let mut text_vector = positive(
        "AES-256-GCM/text-form",
        Suite::Aes256Gcm,
        b"123-45-6789",
        AAD,
        &text,
    );
    text_vector["ciphertext_text"] = json!(format::to_text(&text.ciphertext));
    vectors.push(text_vector);

    let ct = &base.ciphertext;
    let flip = |offset: usize| {
        let mut c = ct.clone();
        c[offset] ^= 0x01;
        c
    };
    let set = |offset: usize, value: u8| {
        let mut c = ct.clone();
        c[offset] = value;
        c
    };
    let b = boundaries(ct);
    let offset = |field: &str| {
        b.iter()
            .find(|(n, _)| *n == field)
            .map(|(_, o)| *o)
            .unwrap_or(0)
    };
    let commit_end = offset("commitment");
    let key_id_start = offset("key id length");
    let version_start = offset("key version length");
    let wrapped_start = offset("wrapped DEK length");
    let last = ct.len() - 1;

    let mut neg = |name: &str, c: Vec<u8>, aad: &[u8], expected: &str, why: &str| {
        vectors.push(negative(
            &format!("negative/{name}"),
            &c,
            aad,
            expected,
            why,
        ));
    };
    neg(
        "tampered tag",
        flip(last),
        AAD,
        "decryption_failed",
        "last tag byte flipped",
    );
    neg(
        "tampered body",
        flip(offset("wrapped DEK") + 3),
        AAD,
        "decryption_failed",
        "a ciphertext byte flipped",
    );
    neg(
        "wrong aad",
        ct.clone(),
        b"table=patients;column=ssn;row=43",
        "decryption_failed",
        "AAD names another row",
    );
    neg(
        "missing aad",
        ct.clone(),
        b"",
        "decryption_failed",
        "AAD omitted",
    );
    neg(
        "tampered magic",
        flip(0),
        AAD,
        "malformed",
        "first magic byte flipped",
    );
    neg(
        "unknown format version 5",
        set(2, 5),
        AAD,
        "unsupported_format_version",
        "version byte set to 5 (2 and 3 are the compact form: testvectors/compact.json; 4 the streaming form: testvectors/stream.json)",
    );
    neg(
        "unknown format version 0",
        set(2, 0),
        AAD,
        "unsupported_format_version",
        "version byte set to 0",
    );
    neg(
        "unknown suite",
        set(3, 0x7f),
        AAD,
        "unsupported_suite",
        "suite id 0x7f",
    );
    neg(
        "suite swapped",
        set(3, Suite::XChaCha20Poly1305.id()),
        AAD,
        "unsupported_provider",
        "suite set to XChaCha20-Poly1305: the header is then read with a 24-byte nonce, which shifts every later field; the byte read as the provider is 0x00",
    );
    neg(
        "tampered nonce",
        flip(4),
        AAD,
        "decryption_failed",
        "first nonce byte flipped",
    );
    neg(
        "tampered commitment",
        flip(commit_end - 1),
        AAD,
        "decryption_failed",
        "last commitment byte flipped",
    );
    neg(
        "unknown provider",
        set(commit_end, 0x7f),
        AAD,
        "unsupported_provider",
        "provider id 0x7f",
    );
    neg(
        "foreign provider",
        set(commit_end, Provider::VaultTransit.id()),
        AAD,
        "key_not_owned",
        "provider set to vault",
    );
    neg(
        "tampered key id",
        flip(key_id_start + 2),
        AAD,
        "key_not_found",
        "third key id byte flipped (\"vectors\" -> \"vebtors\"): no such key in the keyring",
    );
    neg(
        "tampered key version to a missing one",
        set(version_start, b'7'),
        AAD,
        "key_version_not_found",
        "key version 1 -> 7",
    );
    neg(
        "tampered key version to another existing one",
        set(version_start, b'2'),
        AAD,
        "decryption_failed",
        "key version 1 -> 2: the KEK v2 cannot authenticate a DEK wrapped by v1",
    );
    neg(
        "tampered wrapped DEK",
        flip(wrapped_start + 5),
        AAD,
        "decryption_failed",
        "a wrapped DEK byte flipped",
    );

    let other = seal("swap source", Suite::Aes256Gcm, 1, &sixty_four, AAD);
    let other_ref = format::encode_kek_ref(&other.wrapped).expect("valid KEK reference");
    let mut swapped = ct[..commit_end].to_vec();
    swapped.extend_from_slice(&other_ref);
    swapped.extend_from_slice(&ct[offset("wrapped DEK")..]);
    neg(
        "swapped wrapped DEK",
        swapped,
        AAD,
        "decryption_failed",
        "the KEK reference of another message (a valid wrap of a different DEK): the key commitment does not match",
    );

    let destroyed = seal("destroyed", Suite::Aes256Gcm, 3, &sixty_four, AAD);
    neg(
        "destroyed key version",
        destroyed.ciphertext.clone(),
        AAD,
        "key_version_destroyed",
        "wrapped by version 3, which the keyring lists as destroyed",
    );

    // Key versions are matched as exact strings: "01" and "+1" are not version "1".
    for (label, version) in [("leading zero", "01"), ("plus sign", "+1"), ("space", " 1")] {
        let relabeled = WrappedDek {
            key_version: version.to_owned(),
            ..base.wrapped.clone()
        };
        let kek_ref = format::encode_kek_ref(&relabeled).expect("valid KEK reference");
        let mut c = ct[..commit_end].to_vec();
        c.extend_from_slice(&kek_ref);
        c.extend_from_slice(&ct[offset("wrapped DEK")..]);
        neg(
            &format!("key version with a {label}"),
            c,
            AAD,
            "key_version_not_found",
            &format!(
                "key version \"{version}\": versions are compared as exact strings, never as numbers"
            ),
        );
    }

    // An empty key version names no keyring version; a local wrapped DEK is 60 bytes.
    let empty_version = WrappedDek {
        key_version: String::new(),
        ..base.wrapped.clone()
    };
    let mut short_wrap = base.wrapped.clone();
    short_wrap.ciphertext.pop();
    for (name, wrapped, expected, why) in [
        (
            "empty key version",
            empty_version,
            "key_version_not_found",
            "key version \"\" (length 0): the local keyring has no such version",
        ),
        (
            "local wrapped DEK of 59 bytes",
            short_wrap,
            "decryption_failed",
            "a local wrapped DEK is exactly 60 bytes (nonce, DEK, tag): any other length cannot be authentic",
        ),
    ] {
        let kek_ref = format::encode_kek_ref(&wrapped).expect("valid KEK reference");
        let mut c = ct[..commit_end].to_vec();
        c.extend_from_slice(&kek_ref);
        c.extend_from_slice(&ct[offset("wrapped DEK")..]);
        neg(name, c, AAD, expected, why);
    }

    let mut trailing = ct.clone();
    trailing.push(0);
    neg(
        "trailing byte",
        trailing,
        AAD,
        "decryption_failed",
        "one byte appended",
    );
    for (field, end) in boundaries(ct) {
        neg(
            &format!("truncated after {field}"),
            ct[..end].to_vec(),
            AAD,
            "malformed",
            "cut at a field boundary (the last one 15 bytes into the 80-byte body: shorter than a tag)",
        );
    }
    neg(
        "truncated by one byte",
        ct[..last].to_vec(),
        AAD,
        "decryption_failed",
        "the last tag byte removed: parses, fails authentication",
    );

    // A non-empty encryption context: bound to the local wrap's associated data.
    let context_name = "AES-256-GCM/64-byte/aad/encryption-context";
    let context = encryption_context();
    let with_context = seal_with(
        context_name,
        Suite::Aes256Gcm,
        1,
        &sixty_four,
        AAD,
        &context,
    );
    let mut v = positive(
        context_name,
        Suite::Aes256Gcm,
        &sixty_four,
        AAD,
        &with_context,
    );
    v["encryption_context"] = json!(context);
    vectors.push(v);
    let mut other = context.clone();
    other.insert("tenant".into(), "globex".into());
    for (name, ctx, why) in [
        (
            "negative/wrong encryption context",
            other,
            "the reader's context names another tenant: the local unwrap fails",
        ),
        (
            "negative/missing encryption context",
            EncryptionContext::new(),
            "the reader has no context: the local unwrap fails",
        ),
    ] {
        let mut v = negative(
            name,
            &with_context.ciphertext,
            AAD,
            "decryption_failed",
            why,
        );
        v["encryption_context"] = json!(ctx);
        vectors.push(v);
    }

    let text_base = format::to_text(&text.ciphertext);
    let text_vectors = text_vectors(&text_base);

    json!({
        "description": "envelope format v1 test vectors: see docs/FORMAT.md. Keys are derived from labels and public: never use them.",
        "format_version": 1,
        "text_prefix": TEXT_PREFIX,
        "keyring": keyring(),
        "text_vectors": text_vectors,
        "vectors": vectors,
    })
}

/// The vectors' local keyring: KEK versions 1 and 2, version 3 destroyed.
fn keyring() -> Value {
    json!({
        "provider": "local",
        "key_id": KEY_ID,
        "encryption_context": {},
        "versions": {
            "1": { "state": "enabled", "kek": hex(&kek(1)) },
            "2": { "state": "enabled", "kek": hex(&kek(2)) },
            "3": { "state": "destroyed" },
        },
        "primary_version": 2,
    })
}

/// The vectors file as committed: pretty JSON with a final newline.
pub fn generate_file() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).expect("JSON values serialize");
    text.push('\n');
    text
}
