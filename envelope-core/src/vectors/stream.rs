//! Deterministic streaming-form vectors (`testvectors/stream.json`): streams of 4096-byte
//! segments under the v1 vectors' keyring, each with its DEK and salt, a rewrapped stream
//! (slot 1 current), a torn slot, and negatives for every way a stream can be broken.

use std::io::Write as _;

use serde_json::{Value, json};

use super::{KEY_ID, derive, hex, kek, keyring};
use crate::format;
use crate::kms::{EncryptionContext, Provider, WrappedDek};
use crate::local::wrap_with_nonce;
use crate::secret::Dek;
use crate::stream::{self, EncryptingWriter, MIN_SEGMENT_SIZE, STABLE_LEN};
use crate::suite::{DataKey, Suite};

const SEGMENT: u32 = MIN_SEGMENT_SIZE;
const AAD: &[u8] = b"backup=2026-12-01;host=db-7";

/// A stream and the facts a reader needs to check it.
struct Made {
    dek: [u8; 32],
    salt: [u8; 32],
    key_version: u32,
    plaintext: Vec<u8>,
    stream: Vec<u8>,
}

fn wrapped(label: &str, version: u32, dek: &Dek) -> WrappedDek {
    let nonce: [u8; 12] = derive(&format!("{label} wrap nonce"))[..12]
        .try_into()
        .expect("12 of 32 bytes");
    WrappedDek {
        provider: Provider::Local,
        key_id: KEY_ID.to_owned(),
        key_version: version.to_string(),
        ciphertext: wrap_with_nonce(
            &kek(version),
            KEY_ID,
            version,
            dek,
            &EncryptionContext::new(),
            &nonce,
        )
        .expect("local wrap"),
    }
}

fn plaintext(label: &str, len: usize) -> Vec<u8> {
    let seed = derive(&format!("{label} plaintext"));
    (0..len).map(|i| seed[i % 32] ^ (i / 32) as u8).collect()
}

fn make(label: &str, suite: Suite, len: usize) -> Made {
    let dek_bytes = derive(&format!("{label} dek"));
    let salt = derive(&format!("{label} salt"));
    let dek = Dek::from_array(dek_bytes);
    let key = DataKey::new(crate::CryptoProvider::default(), suite, &dek);
    let kek_ref = format::encode_kek_ref(&wrapped(label, 1, &dek)).expect("valid reference");
    let sealer = stream::sealer_for(&key, &salt, &kek_ref, SEGMENT, AAD).expect("sealer");
    let plaintext = plaintext(label, len);
    let mut writer = EncryptingWriter::new(Vec::new(), sealer, 1).expect("in memory");
    writer.write_all(&plaintext).expect("in memory");
    let stream = writer.finish().expect("in memory");
    Made {
        dek: dek_bytes,
        salt,
        key_version: 1,
        plaintext,
        stream,
    }
}

fn positive(name: &str, suite: Suite, m: &Made) -> Value {
    json!({
        "name": name,
        "suite": suite.name(),
        "key_version": m.key_version.to_string(),
        "dek": hex(&m.dek),
        "salt": hex(&m.salt),
        "segment_size": SEGMENT,
        "aad": hex(AAD),
        "plaintext": hex(&m.plaintext),
        "stream": hex(&m.stream),
        "expected": "ok",
    })
}

fn negative(name: &str, stream: &[u8], aad: &[u8], expected: &str, why: &str) -> Value {
    json!({
        "name": name,
        "aad": hex(aad),
        "stream": hex(stream),
        "expected": expected,
        "why": why,
    })
}

/// Header length of the vectors' streams.
fn header_len(stream: &[u8]) -> usize {
    stream::header_len(stream).expect("a stream")
}

/// The whole vectors file.
pub fn generate() -> Value {
    let mut vectors = Vec::new();
    let size = SEGMENT as usize;
    let cases: [(&str, Suite, usize); 7] = [
        ("AES-256-GCM/empty", Suite::Aes256Gcm, 0),
        ("AES-256-GCM/1 byte", Suite::Aes256Gcm, 1),
        ("AES-256-GCM/one full segment", Suite::Aes256Gcm, size),
        (
            "AES-256-GCM/one segment and 1 byte",
            Suite::Aes256Gcm,
            size + 1,
        ),
        (
            "AES-256-GCM/three segments and 100 bytes",
            Suite::Aes256Gcm,
            3 * size + 100,
        ),
        ("XChaCha20-Poly1305/1 byte", Suite::XChaCha20Poly1305, 1),
        (
            "XChaCha20-Poly1305/two segments",
            Suite::XChaCha20Poly1305,
            2 * size,
        ),
    ];
    for (name, suite, len) in cases {
        vectors.push(positive(name, suite, &make(name, suite, len)));
    }

    // Rewrapped to version 2: slot 1 holds generation 2 (the stream bytes are otherwise the
    // same), and a torn write of slot 1 (its check fails) falls back to slot 0.
    let base_name = "AES-256-GCM/three segments and 100 bytes";
    let base = make(base_name, Suite::Aes256Gcm, 3 * size + 100);
    let header = stream::StreamHeader::parse(&base.stream).expect("parses");
    let dek = Dek::from_array(base.dek);
    let v2_ref = format::encode_kek_ref(&wrapped("rewrap", 2, &dek)).expect("valid reference");
    let (offset, slot) = header.next_slot(&v2_ref).expect("fits");
    let mut rewrapped = base.stream.clone();
    rewrapped[offset as usize..offset as usize + slot.len()].copy_from_slice(&slot);
    vectors.push(positive(
        "rewrapped/slot 1 current (generation 2, key version 2)",
        Suite::Aes256Gcm,
        &Made {
            stream: rewrapped.clone(),
            key_version: 2,
            plaintext: base.plaintext.clone(),
            ..base
        },
    ));
    let mut torn = rewrapped.clone();
    torn[offset as usize + slot.len() / 2] ^= 0xff;
    let base = make(base_name, Suite::Aes256Gcm, 3 * size + 100);
    vectors.push(positive(
        "rewrapped/slot 1 torn (its check fails: slot 0 is current)",
        Suite::Aes256Gcm,
        &Made {
            stream: torn,
            plaintext: base.plaintext.clone(),
            ..base
        },
    ));

    // Negatives, from the three-segment stream.
    let s = make(base_name, Suite::Aes256Gcm, 3 * size + 100).stream;
    let h = header_len(&s);
    let sealed = size + 16;
    let seg = |i: usize| h + i * sealed..(h + (i + 1) * sealed).min(s.len());
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = s.clone();
        f(&mut v);
        v
    };
    let n = |name: &str, stream: Vec<u8>, expected: &str, why: &str| {
        negative(&format!("negative/{name}"), &stream, AAD, expected, why)
    };
    vectors.push(n(
        "cut after segment 2",
        s[..seg(3).start].to_vec(),
        "truncated",
        "the last segment present was sealed as non-final (flag 0x00)",
    ));
    vectors.push(n(
        "header only",
        s[..h].to_vec(),
        "truncated",
        "no segment at all: a stream always ends with a final segment",
    ));
    vectors.push(n(
        "cut 10 bytes into the final segment",
        s[..seg(3).start + 10].to_vec(),
        "malformed",
        "a final segment shorter than its 16-byte tag",
    ));
    vectors.push(n(
        "cut 20 bytes before the end",
        s[..s.len() - 20].to_vec(),
        "decryption_failed",
        "the final segment no longer authenticates",
    ));
    vectors.push(n(
        "segments 0 and 1 swapped",
        with(&|v| {
            v[seg(0)].copy_from_slice(&s[seg(1)]);
            v[seg(1)].copy_from_slice(&s[seg(0)]);
        }),
        "decryption_failed",
        "each segment's nonce carries its index",
    ));
    vectors.push(n(
        "segment 0 duplicated over segment 1",
        with(&|v| v[seg(1)].copy_from_slice(&s[seg(0)])),
        "decryption_failed",
        "segment 1 is read with index 1",
    ));
    vectors.push(n(
        "bit flip in segment 2",
        with(&|v| v[seg(2).start + 100] ^= 0x01),
        "decryption_failed",
        "AEAD tag",
    ));
    vectors.push(n(
        "bit flip in the salt",
        with(&|v| v[20] ^= 0x01),
        "decryption_failed",
        "another salt derives another segment key (and the stable part is associated data)",
    ));
    vectors.push(n(
        "bit flip in the commitment",
        with(&|v| v[STABLE_LEN - 1] ^= 0x01),
        "decryption_failed",
        "the DEK's commitment differs",
    ));
    vectors.push(n(
        "segment size 2048",
        with(&|v| v[4..8].copy_from_slice(&2048u32.to_be_bytes())),
        "malformed",
        "below the smallest segment size, 4096",
    ));
    vectors.push(n(
        "slot length 32",
        with(&|v| v[8..10].copy_from_slice(&32u16.to_be_bytes())),
        "malformed",
        "below the smallest slot length, 64",
    ));
    vectors.push(n(
        "slot 0 torn, slot 1 empty",
        with(&|v| v[STABLE_LEN + 10] ^= 0x01),
        "malformed",
        "no slot holds a complete KEK reference",
    ));
    vectors.push(n(
        "suite 0x09",
        with(&|v| v[3] = 9),
        "unsupported_suite",
        "unknown suite id",
    ));
    negatives_of_full_final(&mut vectors);
    vectors.push(negative(
        "negative/wrong AAD",
        &s,
        b"backup=2026-12-02;host=db-7",
        "decryption_failed",
        "every segment binds the caller's AAD",
    ));
    json!({
        "description": "envelope streaming form (format version 4) test vectors: see docs/FORMAT.md, \"Streaming form\". Keys are derived from labels and public: never use them.",
        "format_version": stream::STREAM_FORMAT_VERSION,
        "keyring": keyring(),
        "vectors": vectors,
    })
}

/// Data appended after a full final segment (a stream of exactly two segments).
fn negatives_of_full_final(vectors: &mut Vec<Value>) {
    let size = SEGMENT as usize;
    let s = make("AES-256-GCM/two full segments", Suite::Aes256Gcm, 2 * size).stream;
    let h = header_len(&s);
    let mut extended = s.clone();
    extended.extend_from_slice(&s[h..h + size + 16]);
    vectors.push(negative(
        "negative/a segment appended after the final one",
        &extended,
        AAD,
        "malformed",
        "segment 1 authenticates as final (flag 0x01) but more data follows",
    ));
}

/// The vectors file as committed: pretty JSON with a final newline.
pub fn generate_file() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).expect("JSON values serialize");
    text.push('\n');
    text
}
