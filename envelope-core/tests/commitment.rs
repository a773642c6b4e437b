//! Key commitment of the compact form, tested the way an attacker would break it.
//!
//! An insider who can unwrap two DEKs of a store and write the store builds one compact
//! value whose AES-GCM tag verifies under both DEKs (the multi-key GCM collision of
//! "Invisible Salamanders", Dodis et al. 2018 / Grubbs et al.: with both keys known, the
//! tag is an affine function of one free ciphertext block, so one block is solved for).
//! Read with the store as it is, the value says `pay alice $10.00`; after the insider swaps
//! the two rows' DEKs (re-wrapping each under the other row's binding, which KMS access
//! allows), the same value says `pay mallory $1M!`.
//!
//! Version 2 falls for it: this test shows both plaintexts coming out of `Envelope::decrypt`.
//! Version 3 carries the DEK's key commitment in the value: the same attack gets
//! `decryption_failed` after the swap, whichever commitment the insider puts in the value.
//!
//! The GF(2^128) arithmetic below is the attacker's (NIST SP 800-38D, section 6.3), written
//! for this test only; the library never computes GHASH itself.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use std::sync::Arc;

use aes_gcm::aes::Aes256;
use aes_gcm::aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use envelope_core::compact::{CompactVersion, DekStore, StoredDek, binding_context};
use envelope_core::testing::MemoryDekStore;
use envelope_core::{Dek, EncryptionContext, Envelope, Error, Kms, LocalKeyring, LocalKms};

use common::Fixture;

const ALICE: &[u8; 16] = b"pay alice $10.00";
const MALLORY: &[u8; 16] = b"pay mallory $1M!";
const AAD: &[u8] = b"envelope:payments.memo";
const NONCE: [u8; 12] = [0x5a; 12];

/// Multiplication in GF(2^128) with GCM's bit order (SP 800-38D, Algorithm 1).
fn gf_mul(x: u128, y: u128) -> u128 {
    const R: u128 = 0xE1 << 120;
    let (mut z, mut v) = (0u128, y);
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 1 { (v >> 1) ^ R } else { v >> 1 };
    }
    z
}

/// The inverse in GF(2^128): x^(2^128 - 2).
fn gf_inv(x: u128) -> u128 {
    let one = 1u128 << 127;
    let (mut result, mut base, mut e) = (one, x, u128::MAX - 1);
    while e != 0 {
        if e & 1 == 1 {
            result = gf_mul(result, base);
        }
        base = gf_mul(base, base);
        e >>= 1;
    }
    result
}

fn block(bytes: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    b[..bytes.len()].copy_from_slice(bytes);
    u128::from_be_bytes(b)
}

/// GHASH_H(A, C) with the length block.
fn ghash(h: u128, ad: &[u8], ct: &[u8]) -> u128 {
    let mut x = 0u128;
    for chunk in ad.chunks(16).chain(ct.chunks(16)) {
        x = gf_mul(x ^ block(chunk), h);
    }
    let lengths = (((ad.len() as u128) * 8) << 64) | ((ct.len() as u128) * 8);
    gf_mul(x ^ lengths, h)
}

/// One AES-GCM key as the attacker uses it: the raw block cipher.
struct GcmKey(Aes256);

impl GcmKey {
    fn encrypt_block(&self, input: u128) -> u128 {
        let mut b = GenericArray::clone_from_slice(&input.to_be_bytes());
        self.0.encrypt_block(&mut b);
        u128::from_be_bytes(b.into())
    }
    fn h(&self) -> u128 {
        self.encrypt_block(0)
    }
    /// E_K(nonce || counter).
    fn counter_block(&self, counter: u32) -> u128 {
        let mut b = [0u8; 16];
        b[..12].copy_from_slice(&NONCE);
        b[12..].copy_from_slice(&counter.to_be_bytes());
        self.encrypt_block(u128::from_be_bytes(b))
    }
    /// The keystream block that encrypts ciphertext block `i`.
    fn keystream(&self, i: usize) -> u128 {
        self.counter_block(2 + i as u32)
    }
    fn tag(&self, ad: &[u8], ct: &[u8]) -> u128 {
        self.counter_block(1) ^ ghash(self.h(), ad, ct)
    }
}

/// The AES-256-GCM key and key commitment a DEK derives (docs/FORMAT.md, "Key derivation").
fn derive(dek: &[u8]) -> (GcmKey, [u8; 32]) {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"envelope.v1"), dek);
    let (mut key, mut commitment) = ([0u8; 32], [0u8; 32]);
    hk.expand(b"envelope.v1.aead-key\x01", &mut key).unwrap();
    hk.expand(b"envelope.v1.commitment\x01", &mut commitment)
        .unwrap();
    (GcmKey(Aes256::new_from_slice(&key).unwrap()), commitment)
}

/// Builds one compact value naming DEK `id` whose tag verifies under both keys: block 0
/// reads `ALICE` under the first key, block 1 reads `MALLORY` under the second, block 2 is
/// solved for so that both tags agree. `carried` is the commitment a version 3 value
/// carries (the field is absent in version 2); each key's associated data uses that key's
/// own commitment, as a reader derives it from the DEK the row holds.
fn colliding_value(
    version: CompactVersion,
    id: u64,
    carried: &[u8; 32],
    (k1, c1): &(GcmKey, [u8; 32]),
    (k2, c2): &(GcmKey, [u8; 32]),
) -> Vec<u8> {
    let mut prefix = b"EV".to_vec();
    prefix.extend_from_slice(&[version.byte(), 0x01]);
    prefix.extend_from_slice(&id.to_be_bytes());
    let ad = |commitment: &[u8; 32]| [&prefix[..], commitment, AAD].concat();
    let (ad1, ad2) = (ad(c1), ad(c2));

    let mut blocks = [
        block(ALICE) ^ k1.keystream(0),
        block(MALLORY) ^ k2.keystream(1),
        0u128,
    ];
    let ct = |blocks: &[u128; 3]| {
        blocks
            .iter()
            .flat_map(|b| b.to_be_bytes())
            .collect::<Vec<u8>>()
    };
    // tag_i = E_i(J0) ^ GHASH_i(with block 2 zero) ^ C2 * H_i^2: solve tag_1 = tag_2 for C2.
    let (t1, t2) = (k1.tag(&ad1, &ct(&blocks)), k2.tag(&ad2, &ct(&blocks)));
    let (h1, h2) = (k1.h(), k2.h());
    let coefficient = gf_mul(h1, h1) ^ gf_mul(h2, h2);
    blocks[2] = gf_mul(t1 ^ t2, gf_inv(coefficient));
    let body = ct(&blocks);
    let tag = k1.tag(&ad1, &body);
    assert_eq!(tag, k2.tag(&ad2, &body), "the tags collide");

    let mut value = prefix.clone();
    if version.is_committing() {
        value.extend_from_slice(carried);
    }
    value.extend_from_slice(&NONCE);
    value.extend_from_slice(&body);
    value.extend_from_slice(&tag.to_be_bytes());
    value
}

struct Setup {
    _fx: Fixture,
    ring: LocalKeyring,
    store: Arc<MemoryDekStore>,
    rows: [StoredDek; 2],
    deks: [Dek; 2],
    keys: [(GcmKey, [u8; 32]); 2],
}

/// A store with two DEK rows written by two processes, and the insider's view of them: both
/// DEKs unwrapped with the KMS.
fn setup(rt: &tokio::runtime::Runtime) -> Setup {
    let fx = Fixture::new();
    let ring = LocalKeyring::new(fx.path());
    let store = Arc::new(MemoryDekStore::new());
    for process in 0..2 {
        let env = Envelope::builder(LocalKms::new(ring.clone()), "default")
            .dek_store(store.clone())
            .build()
            .unwrap();
        rt.block_on(env.encrypt(format!("process {process}").as_bytes(), b""))
            .unwrap();
    }
    let rows = rt.block_on(store.list(None, 10)).unwrap();
    assert_eq!(rows.len(), 2);
    let kms = LocalKms::new(ring.clone());
    let deks = [0, 1].map(|i| {
        rt.block_on(kms.unwrap_dek(
            &rows[i].wrapped,
            &rows[i].unwrap_context(&EncryptionContext::new()),
        ))
        .unwrap()
    });
    let keys = [0, 1].map(|i| {
        let derived = derive(deks[i].expose_secret());
        assert_eq!(derived.1, rows[i].commitment);
        derived
    });
    Setup {
        _fx: fx,
        ring,
        store,
        rows: [rows[0].clone(), rows[1].clone()],
        deks,
        keys,
    }
}

impl Setup {
    /// A reader with nothing cached.
    fn reader(&self) -> Envelope {
        Envelope::builder(LocalKms::new(self.ring.clone()), "default")
            .dek_store(self.store.clone())
            .build()
            .unwrap()
    }

    /// The insider swaps the two rows' DEKs: row 1 now holds the second DEK (wrapped with the
    /// KMS under row 1's binding, with its commitment: a consistent row), row 2 the first.
    fn swap_rows(&self, rt: &tokio::runtime::Runtime) {
        let kms = LocalKms::new(self.ring.clone());
        for (target, source) in [(0, 1), (1, 0)] {
            let row = &self.rows[target];
            let commitment = self.keys[source].1;
            let context =
                binding_context(&EncryptionContext::new(), row.id, row.suite, &commitment);
            let wrapped = rt
                .block_on(kms.wrap_dek("default", &self.deks[source], &context))
                .unwrap();
            self.store.edit(|rows| {
                let stored = rows.get_mut(&row.id.get()).unwrap();
                stored.wrapped = wrapped;
                stored.commitment = commitment;
            });
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_version_2_value_opens_to_two_plaintexts_under_two_deks() {
    let rt = runtime();
    let s = setup(&rt);
    let id = s.rows[0].id.get();
    let value = colliding_value(CompactVersion::V2, id, &[0; 32], &s.keys[0], &s.keys[1]);

    let before = rt.block_on(s.reader().decrypt(&value, AAD)).unwrap();
    assert_eq!(&before[..16], ALICE);
    s.swap_rows(&rt);
    let after = rt.block_on(s.reader().decrypt(&value, AAD)).unwrap();
    assert_eq!(&after[16..32], MALLORY);
    assert_ne!(
        before, after,
        "one value, two plaintexts: version 2 does not commit"
    );
}

#[test]
fn a_version_3_value_refuses_the_second_dek() {
    let rt = runtime();
    let s = setup(&rt);
    let id = s.rows[0].id.get();
    let (c1, c2) = (s.keys[0].1, s.keys[1].1);

    // Carrying the first DEK's commitment: opens before the swap, refused after it.
    let value = colliding_value(CompactVersion::V3, id, &c1, &s.keys[0], &s.keys[1]);
    let before = rt.block_on(s.reader().decrypt(&value, AAD)).unwrap();
    assert_eq!(&before[..16], ALICE);
    // Carrying the second's: refused before the swap.
    let other = colliding_value(CompactVersion::V3, id, &c2, &s.keys[0], &s.keys[1]);
    assert!(matches!(
        rt.block_on(s.reader().decrypt(&other, AAD)),
        Err(Error::DecryptionFailed)
    ));

    s.swap_rows(&rt);
    let err = rt.block_on(s.reader().decrypt(&value, AAD)).unwrap_err();
    assert!(matches!(err, Error::DecryptionFailed), "{err}");
    assert_eq!(err.kind().as_str(), "decryption_failed");
    // And the other carried commitment now opens under the second DEK only: each value
    // opens under at most one DEK, whatever the store says.
    let after = rt.block_on(s.reader().decrypt(&other, AAD)).unwrap();
    assert_eq!(&after[16..32], MALLORY);
    assert!(rt.block_on(s.reader().decrypt(&value, AAD)).is_err());
}

#[test]
fn the_attacker_arithmetic_is_gcm() {
    // The GHASH and tag above reproduce a real AES-256-GCM tag (so the collision is one).
    use aes_gcm::aead::{Aead, Payload};
    let key = [3u8; 32];
    let gcm = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
    let msg = [7u8; 40];
    let sealed = gcm
        .encrypt(
            (&NONCE).into(),
            Payload {
                msg: &msg,
                aad: b"some associated data",
            },
        )
        .unwrap();
    let ours = GcmKey(Aes256::new_from_slice(&key).unwrap());
    let (ct, tag) = sealed.split_at(40);
    assert_eq!(ours.tag(b"some associated data", ct), block(tag));
    let x = 0x0123_4567_89ab_cdef_0011_2233_4455_6677u128;
    assert_eq!(gf_mul(x, gf_inv(x)), 1u128 << 127);
}
