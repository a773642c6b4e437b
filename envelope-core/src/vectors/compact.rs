//! Deterministic generation of `testvectors/compact.json`: the compact form (format
//! version 3, and the non-committing version 2 that stays readable), the DEK store rows its
//! vectors resolve through, and store edits that an attacker with write access to the store
//! could make.

use serde_json::{Value, json};

use super::{AAD, KEY_ID, derive, hex, kek, keyring};
use crate::compact::{
    COMPACT_FORMAT_VERSION, COMPACT_TEXT_PREFIX, CompactVersion, DekId, binding_context,
    seal_with_nonce,
};
use crate::format;
use crate::kms::EncryptionContext;
use crate::local::wrap_with_nonce;
use crate::secret::{Dek, KEY_LEN};
use crate::suite::{DataKey, Suite};

/// One DEK store row of the vectors.
struct Row {
    id: u64,
    suite: Suite,
    version: u32,
    state: &'static str,
    /// Whether the wrap binds the row's id, suite and commitment (every row written now;
    /// `false`: a row written before rows were bound).
    bound: bool,
    dek: [u8; KEY_LEN],
    wrapped: Vec<u8>,
    commitment: [u8; 32],
}

impl Row {
    fn new(id: u64, suite: Suite, version: u32, state: &'static str) -> Self {
        Self::with_binding(id, suite, version, state, true)
    }

    fn with_binding(id: u64, suite: Suite, version: u32, state: &'static str, bound: bool) -> Self {
        let dek = derive(&format!("compact row {id} dek"));
        let mut row = Row {
            id,
            suite,
            version,
            state,
            bound,
            dek,
            wrapped: Vec::new(),
            commitment: *DataKey::new(
                crate::CryptoProvider::default(),
                suite,
                &Dek::from_array(dek),
            )
            .commitment(),
        };
        row.wrapped = row.wrap(version);
        row
    }

    /// The row's DEK wrapped under KEK `version` (a rotation rewraps it to another).
    fn wrap(&self, version: u32) -> Vec<u8> {
        let nonce: [u8; 12] = derive(&format!("compact row {} wrap v{version}", self.id))[..12]
            .try_into()
            .expect("12 of 32 bytes");
        wrap_with_nonce(
            &kek(version),
            KEY_ID,
            version,
            &Dek::from_array(self.dek),
            &self.context(),
            &nonce,
        )
        .expect("local wrap")
    }

    /// The encryption context of the row's wrap: its binding, or none (an unbound row).
    fn context(&self) -> EncryptionContext {
        if self.bound {
            binding_context(
                &EncryptionContext::new(),
                DekId::new(self.id).expect("non-zero id"),
                self.suite,
                &self.commitment,
            )
        } else {
            EncryptionContext::new()
        }
    }

    fn key(&self) -> DataKey {
        DataKey::new(
            crate::CryptoProvider::default(),
            self.suite,
            &Dek::from_array(self.dek),
        )
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "suite": self.suite.name(),
            "provider": "local",
            "key_id": KEY_ID,
            "key_version": self.version.to_string(),
            "wrapped_dek": hex(&self.wrapped),
            "commitment": hex(&self.commitment),
            "state": self.state,
            "bound": self.bound,
            "dek": hex(&self.dek),
        })
    }

    fn seal(&self, label: &str, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        self.seal_version(CompactVersion::V3, label, plaintext, aad)
    }

    fn seal_version(
        &self,
        version: CompactVersion,
        label: &str,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Vec<u8> {
        let nonce = derive(&format!("compact {label} nonce"));
        seal_with_nonce(
            &self.key(),
            version,
            DekId::new(self.id).expect("non-zero id"),
            &nonce[..self.suite.nonce_len()],
            plaintext,
            aad,
        )
        .expect("seal")
    }
}

/// A social security number: the 11-byte field the compact form is sized for.
const SSN: &[u8] = b"123-45-6789";

fn sixty_four() -> Vec<u8> {
    (0..64u8).map(|i| i.wrapping_mul(7)).collect()
}

/// The compact vectors file.
pub fn generate() -> Value {
    let rows = [
        Row::new(1, Suite::Aes256Gcm, 1, "active"),
        Row::new(2, Suite::XChaCha20Poly1305, 1, "active"),
        Row::new(3, Suite::Aes256Gcm, 2, "active"),
        Row::new(4, Suite::Aes256Gcm, 1, "retired"),
        Row::with_binding(5, Suite::Aes256Gcm, 1, "active", false),
    ];
    let mut vectors = Vec::new();
    let positive = |name: &str, row: &Row, plaintext: &[u8], aad: &[u8], ct: &[u8]| {
        json!({
            "name": name,
            "suite": row.suite.name(),
            "dek_id": row.id,
            "aad": hex(aad),
            "plaintext": hex(plaintext),
            "ciphertext": hex(ct),
            "expected": "ok",
        })
    };
    let sixty_four = sixty_four();
    let sizes: [(&str, &[u8]); 3] = [("empty", b""), ("11-byte", SSN), ("64-byte", &sixty_four)];
    for row in &rows[..2] {
        for (size, plaintext) in sizes {
            for (aad_name, aad) in [("no-aad", &b""[..]), ("aad", AAD)] {
                let name = format!("{}/{size}/{aad_name}", row.suite.name());
                let ct = row.seal(&name, plaintext, aad);
                vectors.push(positive(&name, row, plaintext, aad, &ct));
            }
        }
    }
    let under_v2 = rows[2].seal("AES-256-GCM/kek-v2", SSN, AAD);
    vectors.push(positive(
        "AES-256-GCM/11-byte/aad/kek-v2",
        &rows[2],
        SSN,
        AAD,
        &under_v2,
    ));

    // A row written before rows were bound to their ids (its wrap binds no context) and a
    // version 2 value under it: both stay readable.
    let legacy = rows[4].seal_version(CompactVersion::V2, "v2/unbound-row", SSN, AAD);
    vectors.push(positive(
        "v2/AES-256-GCM/11-byte/aad/unbound-row",
        &rows[4],
        SSN,
        AAD,
        &legacy,
    ));

    // Version 2 (not key-committing) stays readable: its values as a v2 reader wrote them.
    for row in &rows[..2] {
        let name = format!("v2/{}/11-byte/aad", row.suite.name());
        let ct = row.seal_version(CompactVersion::V2, &name, SSN, AAD);
        vectors.push(positive(&name, row, SSN, AAD, &ct));
    }
    let v2_base = rows[0].seal_version(CompactVersion::V2, "v2/AES-256-GCM/11-byte/aad", SSN, AAD);
    let mut v2_text = positive(
        "v2/AES-256-GCM/11-byte/aad/text-form",
        &rows[0],
        SSN,
        AAD,
        &v2_base,
    );
    v2_text["ciphertext_text"] = json!(format::to_text(&v2_base));
    vectors.push(v2_text);

    // The base of the negative vectors: an SSN under row 1 (83 bytes).
    let base = rows[0].seal("AES-256-GCM/11-byte/aad", SSN, AAD);
    let mut text = positive(
        "AES-256-GCM/11-byte/aad/text-form",
        &rows[0],
        SSN,
        AAD,
        &base,
    );
    text["ciphertext_text"] = json!(format::to_text(&base));
    vectors.push(text);
    // After a rotation the row holds the same DEK wrapped by KEK v2: the value is unchanged.
    let mut rotated = positive(
        "AES-256-GCM/11-byte/aad/store-rotated-to-v2",
        &rows[0],
        SSN,
        AAD,
        &base,
    );
    rotated["store_edit"] = json!({
        "op": "set", "row": 1,
        "key_version": "2", "wrapped_dek": hex(&rows[0].wrap(2)),
    });
    vectors.push(rotated);
    // A store writer can re-activate a retired row: retiring is not crypto-shredding
    // (destroying the KEK version is).
    let under_retired = rows[3].seal("AES-256-GCM/retired-row", SSN, AAD);
    let mut reactivated = positive(
        "AES-256-GCM/11-byte/aad/retired-row-reactivated",
        &rows[3],
        SSN,
        AAD,
        &under_retired,
    );
    reactivated["store_edit"] = json!({ "op": "set", "row": 4, "state": "active" });
    vectors.push(reactivated);

    let flip = |offset: usize| {
        let mut c = base.clone();
        c[offset] ^= 0x01;
        c
    };
    let set = |offset: usize, value: u8| {
        let mut c = base.clone();
        c[offset] = value;
        c
    };
    let with_id = |id: u64| {
        let mut c = base.clone();
        c[4..12].copy_from_slice(&id.to_be_bytes());
        c
    };
    let last = base.len() - 1;
    let negative = |name: &str, ct: &[u8], aad: &[u8], expected: &str, why: &str| {
        json!({
            "name": format!("negative/{name}"),
            "aad": hex(aad),
            "ciphertext": hex(ct),
            "expected": expected,
            "why": why,
        })
    };
    let mut neg = |name: &str, ct: Vec<u8>, aad: &[u8], expected: &str, why: &str| {
        vectors.push(negative(name, &ct, aad, expected, why));
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
        flip(56),
        AAD,
        "decryption_failed",
        "first ciphertext byte flipped",
    );
    neg(
        "tampered nonce",
        flip(44),
        AAD,
        "decryption_failed",
        "first nonce byte flipped",
    );
    neg(
        "tampered commitment",
        flip(12),
        AAD,
        "decryption_failed",
        "first key commitment byte flipped: it no longer matches the DEK",
    );
    let mut other_commitment = base.clone();
    other_commitment[12..44].copy_from_slice(&rows[2].commitment);
    neg(
        "commitment of another DEK",
        other_commitment,
        AAD,
        "decryption_failed",
        "the value carries row 3's commitment but names row 1: the commitment check refuses it before the tag",
    );
    let mut v2_flipped = v2_base.clone();
    let v2_last = v2_flipped.len() - 1;
    v2_flipped[v2_last] ^= 1;
    neg(
        "v2 tampered tag",
        v2_flipped,
        AAD,
        "decryption_failed",
        "a version 2 value with its last tag byte flipped",
    );
    neg(
        "v3 relabelled as v2",
        set(2, 2),
        AAD,
        "decryption_failed",
        "version byte 3 replaced by 2: the commitment is read as nonce and body, and the version byte is in the associated data",
    );
    let mut v2_as_v3 = rows[0].seal_version(
        CompactVersion::V2,
        "v2/AES-256-GCM/64-byte",
        &sixty_four,
        AAD,
    );
    v2_as_v3[2] = 3;
    neg(
        "v2 relabelled as v3",
        v2_as_v3,
        AAD,
        "decryption_failed",
        "a 64-byte version 2 value with version byte 2 replaced by 3: nonce and body are read as a commitment that matches no DEK",
    );
    neg(
        "wrong aad",
        base.clone(),
        b"table=patients;column=ssn;row=43",
        "decryption_failed",
        "AAD names another row: a value copied to another row fails",
    );
    neg(
        "missing aad",
        base.clone(),
        b"",
        "decryption_failed",
        "AAD left out",
    );
    neg(
        "dek id of another row",
        with_id(3),
        AAD,
        "decryption_failed",
        "the id names row 3 (a real DEK of the same suite, under KEK v2): its key and commitment fail the tag",
    );
    neg(
        "dek id not in the store",
        with_id(6),
        AAD,
        "dek_not_found",
        "no row 6 (never assigned, or deleted)",
    );
    neg(
        "dek id of a retired row",
        with_id(4),
        AAD,
        "dek_not_found",
        "row 4 is retired",
    );
    neg(
        "dek id zero",
        with_id(0),
        AAD,
        "malformed",
        "ids start at 1",
    );
    neg(
        "dek id 2^63",
        with_id(1 << 63),
        AAD,
        "malformed",
        "ids end at 2^63 - 1 (the stores' signed 64-bit keys)",
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
        "version byte set to 5",
    );
    neg(
        "unknown suite",
        set(3, 0x33),
        AAD,
        "unsupported_suite",
        "suite byte 0x33",
    );
    let sixty_four_ct = rows[0].seal("AES-256-GCM/64-byte/suite", &sixty_four, AAD);
    let mut swapped_suite = sixty_four_ct.clone();
    swapped_suite[3] = Suite::XChaCha20Poly1305.id();
    neg(
        "suite swapped",
        swapped_suite,
        AAD,
        "decryption_failed",
        "XChaCha20-Poly1305 named for a DEK stored as AES-256-GCM (the 24-byte nonce shifts the body; the row's suite disagrees)",
    );
    let mut trailing = base.clone();
    trailing.push(0);
    neg(
        "trailing byte",
        trailing,
        AAD,
        "decryption_failed",
        "one byte appended: it becomes part of the body",
    );
    for (field, end) in [
        ("empty", 0),
        ("magic", 2),
        ("format version", 3),
        ("suite", 4),
        ("DEK id", 12),
        ("key commitment", 44),
        ("nonce", 56),
        ("15 body bytes (fewer than a tag)", 71),
    ] {
        neg(
            &format!("truncated after {field}"),
            base[..end].to_vec(),
            AAD,
            "malformed",
            "cut at a field boundary",
        );
    }

    // Store edits: what write access to the store (not to the values) can do.
    let mut store_neg = |name: &str, edit: Value, expected: &str, why: &str| {
        let mut v = negative(&format!("store/{name}"), &base, AAD, expected, why);
        v["store_edit"] = edit;
        vectors.push(v);
    };
    let mut flipped_commitment = rows[0].commitment;
    flipped_commitment[0] ^= 1;
    store_neg(
        "altered commitment",
        json!({ "op": "set", "row": 1, "commitment": hex(&flipped_commitment) }),
        "decryption_failed",
        "the unwrapped DEK does not match the row's commitment",
    );
    let mut flipped_wrap = rows[0].wrapped.clone();
    flipped_wrap[20] ^= 1;
    store_neg(
        "altered wrapped DEK",
        json!({ "op": "set", "row": 1, "wrapped_dek": hex(&flipped_wrap) }),
        "decryption_failed",
        "the KMS cannot authenticate the wrapped DEK",
    );
    store_neg(
        "swapped wrapped DEKs",
        json!({ "op": "swap_wrapped", "rows": [1, 3] }),
        "decryption_failed",
        "row 1 holds row 3's wrapped DEK (a genuine wrap, bound to row 3): it does not unwrap under row 1's binding",
    );
    store_neg(
        "swapped rows",
        json!({ "op": "swap", "rows": [1, 3] }),
        "decryption_failed",
        "row 1 holds all of row 3 (wrapped DEK and commitment agree): the wrap is bound to id 3, so it does not unwrap as row 1",
    );
    store_neg(
        "binding flag cleared",
        json!({ "op": "set", "row": 1, "bound": false }),
        "decryption_failed",
        "row 1 claims an unbound wrap: unwrapped without its binding, the wrap fails",
    );
    store_neg(
        "deleted row",
        json!({ "op": "delete", "row": 1 }),
        "dek_not_found",
        "the row is gone: the value is unrecoverable",
    );
    store_neg(
        "destroyed KEK version",
        json!({ "op": "set", "row": 1, "key_version": "3" }),
        "key_version_destroyed",
        "the row names KEK version 3, which the keyring destroyed",
    );

    let text_base = format::to_text(&base);
    let payload = &text_base[COMPACT_TEXT_PREFIX.len()..];
    let v2_text_base = format::to_text(&v2_base);
    let v2_payload = &v2_text_base["ev2:".len()..];
    let mut unknown_suite = v2_base.clone();
    unknown_suite[3] = 0x33;
    let unknown_suite_payload = &format::to_text(&unknown_suite)["ev2:".len()..];
    let text = |name: &str, text: String, expected: &str, why: &str| json!({ "name": format!("text/{name}"), "text": text, "expected": expected, "why": why });
    // 83 bytes make 111 characters: one '=' is exactly the padding base64 would add, so this
    // vector breaks the no-padding rule alone (the length rule holds).
    assert_eq!(
        payload.len() % 4,
        3,
        "the padding vector needs 4k+3 characters"
    );
    let text_vectors = vec![
        text(
            "v1 prefix on a compact binary",
            format!("ev1:{payload}"),
            "malformed",
            "the prefix names format version 1, the binary's version byte is 3",
        ),
        text(
            "v2 prefix on a version 3 binary",
            format!("ev2:{payload}"),
            "malformed",
            "the prefix names format version 2, the binary's version byte is 3",
        ),
        text(
            "v3 prefix on a version 2 binary",
            format!("ev3:{v2_payload}"),
            "malformed",
            "the prefix names format version 3, the binary's version byte is 2",
        ),
        text(
            "v2 prefix on a v2 binary with an unknown suite",
            format!("ev2:{unknown_suite_payload}"),
            "unsupported_suite",
            "prefix and version byte agree; the binary names suite 0x33",
        ),
        text(
            "padding",
            format!("{text_base}="),
            "malformed",
            "base64url without padding: the one '=' that standard base64 would add here is refused",
        ),
        text(
            "upper-case prefix",
            format!("EV3:{payload}"),
            "malformed",
            "the prefix is lower-case ev3:",
        ),
        text(
            "leading zero in the version",
            format!("ev03:{payload}"),
            "malformed",
            "N in evN: has no leading zero",
        ),
        text(
            "unknown version 5",
            format!("ev5:{payload}"),
            "unsupported_format_version",
            "a well-formed prefix of a version this reader does not know",
        ),
    ];

    json!({
        "description": "envelope compact form (format version 3, and version 2 values) test vectors: see docs/FORMAT.md, \"Compact form\". Import dek_store into a DEK store, apply a vector's store_edit to a fresh copy, decrypt with the keyring. Keys are derived from labels and public: never use them.",
        "format_version": COMPACT_FORMAT_VERSION,
        "text_prefix": COMPACT_TEXT_PREFIX,
        "keyring": keyring(),
        "dek_store": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "text_vectors": text_vectors,
        "vectors": vectors,
    })
}

/// The compact vectors file as committed: pretty JSON with a final newline.
pub fn generate_file() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).expect("JSON values serialize");
    text.push('\n');
    text
}
