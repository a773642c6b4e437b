//! Checkpoints as C2SP signed notes (`tlog-checkpoint`, `signed-note`) with Ed25519 keys,
//! and the key formats of Go's `golang.org/x/mod/sumdb/note`:
//!
//! - a checkpoint's text is `ORIGIN\nSIZE\nBASE64(ROOT)\n`;
//! - a signed note is the text, a blank line, and one line per signature:
//!   `— NAME BASE64(KEY_HASH(4) || SIGNATURE(64))`;
//! - `KEY_HASH = SHA-256(NAME || "\n" || 0x01 || PUBLIC_KEY)[..4]` (0x01: Ed25519);
//! - a verifier key is `NAME+HEX(KEY_HASH)+BASE64(0x01 || PUBLIC_KEY)`; a private key file
//!   holds `PRIVATE+KEY+NAME+HEX(KEY_HASH)+BASE64(0x01 || SEED)`.

use std::fmt;
use std::path::Path;

use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use envelope_core::audit::CheckpointSigner;
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

use crate::AuditError;
use crate::merkle::Hash;

/// The signature algorithm byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;

/// A checkpoint: the log's origin, its size and its Merkle root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (the first line of the note).
    pub origin: String,
    /// Lines in the tree.
    pub size: u64,
    /// The RFC 6962 root of those lines.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text the signatures cover.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Signs the checkpoint: the complete signed note.
    pub fn sign(&self, signer: &dyn CheckpointSigner) -> Result<String, AuditError> {
        sign_text(&self.body(), signer)
    }
}

/// Signs any note text (ending in a newline) with `signer`: the text, a blank line and the
/// signature line.
pub fn sign_text(body: &str, signer: &dyn CheckpointSigner) -> Result<String, AuditError> {
    let signature = signer
        .sign(body.as_bytes())
        .map_err(|e| AuditError::Sign(e.to_string()))?;
    let hash = key_hash(signer.name(), &signer.public_key());
    let mut blob = Vec::with_capacity(68);
    blob.extend_from_slice(&hash);
    blob.extend_from_slice(&signature);
    Ok(format!(
        "{body}\n\u{2014} {} {}\n",
        signer.name(),
        B64.encode(blob)
    ))
}

/// Why a signed note does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteProblem {
    /// Not a checkpoint note (the text or a signature line is malformed).
    Malformed(String),
    /// No signature by the verifier's key (name and key hash).
    NotSigned,
    /// A signature by the verifier's key that does not verify.
    BadSignature,
}

impl fmt::Display for NoteProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoteProblem::Malformed(why) => write!(f, "malformed checkpoint note: {why}"),
            NoteProblem::NotSigned => f.write_str("no signature by the verifier key"),
            NoteProblem::BadSignature => f.write_str("bad signature"),
        }
    }
}

fn key_hash(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[ALG_ED25519]);
    ctx.update(public_key);
    let digest = ctx.finish();
    let mut out = [0u8; 4];
    out.copy_from_slice(&digest.as_ref()[..4]);
    out
}

fn check_name(name: &str) -> Result<(), AuditError> {
    if name.is_empty() || name.contains(['+', ' ', '\n']) || !name.is_ascii() {
        return Err(AuditError::Key(format!(
            "key name {name:?}: give a non-empty ASCII name without spaces or '+'"
        )));
    }
    Ok(())
}

/// A verifier key (`NAME+HASH+BASE64`): what an auditor holds.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    hash: [u8; 4],
    key: [u8; 32],
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut blob = vec![ALG_ED25519];
        blob.extend_from_slice(&self.key);
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.hash),
            B64.encode(blob)
        )
    }
}

impl VerifierKey {
    /// The verifier key of a name and Ed25519 public key.
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<Self, AuditError> {
        check_name(name)?;
        Ok(VerifierKey {
            name: name.to_owned(),
            hash: key_hash(name, &public_key),
            key: public_key,
        })
    }

    /// The verifier key of a signer.
    pub fn of(signer: &dyn CheckpointSigner) -> Result<Self, AuditError> {
        Self::new(signer.name(), signer.public_key())
    }

    /// Parses `NAME+HASH+BASE64(0x01 || KEY)`, checking the hash.
    pub fn parse(text: &str) -> Result<Self, AuditError> {
        let bad = |why: &str| AuditError::Key(format!("verifier key {:?}: {why}", text.trim()));
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected NAME+HASH+KEY"));
        };
        let blob = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        if blob.len() != 33 || blob[0] != ALG_ED25519 {
            return Err(bad("not an Ed25519 key (algorithm byte 0x01, 32 bytes)"));
        }
        let mut public = [0u8; 32];
        public.copy_from_slice(&blob[1..]);
        let parsed = Self::new(name, public)?;
        if hex::encode(parsed.hash) != hash {
            return Err(bad("its key hash does not match its name and key"));
        }
        Ok(parsed)
    }

    /// Reads a verifier key from a file (its first non-empty line).
    pub fn from_file(path: &Path) -> Result<Self, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
        Self::parse(text.lines().find(|l| !l.trim().is_empty()).unwrap_or(""))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies a signed checkpoint note and returns the checkpoint it signs.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, NoteProblem> {
        let body = self.verify_text(note)?;
        parse_body(&body).map_err(NoteProblem::Malformed)
    }

    /// Verifies any signed note and returns its text (with its final newline).
    pub fn verify_text(&self, note: &str) -> Result<String, NoteProblem> {
        let malformed = |why: &str| NoteProblem::Malformed(why.to_owned());
        let (body, signatures) = note
            .split_once("\n\n")
            .ok_or_else(|| malformed("no blank line before the signatures"))?;
        let body = format!("{body}\n");
        let mut found = false;
        for line in signatures.lines() {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| malformed("a signature line does not start with '— '"))?;
            let (name, sig) = rest
                .split_once(' ')
                .ok_or_else(|| malformed("a signature line has no signature"))?;
            let blob = B64
                .decode(sig)
                .map_err(|_| malformed("a signature is not base64"))?;
            if blob.len() < 4 || name != self.name || blob[..4] != self.hash {
                continue;
            }
            found = true;
            UnparsedPublicKey::new(&ED25519, &self.key)
                .verify(body.as_bytes(), &blob[4..])
                .map_err(|_| NoteProblem::BadSignature)?;
        }
        if found {
            Ok(body)
        } else {
            Err(NoteProblem::NotSigned)
        }
    }
}

/// Parses a checkpoint's text (`ORIGIN\nSIZE\nBASE64(ROOT)\n`, extension lines allowed).
pub fn parse_body(body: &str) -> Result<Checkpoint, String> {
    let mut lines = body.split('\n');
    let origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or("no origin line")?;
    let size = lines
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("the second line is not a tree size")?;
    let root = lines
        .next()
        .and_then(|r| B64.decode(r).ok())
        .filter(|r| r.len() == 32)
        .ok_or("the third line is not a base64 SHA-256 root")?;
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&root);
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root: hash,
    })
}

/// An Ed25519 key kept in a local file (`PRIVATE+KEY+…`, mode 0600): the simplest signer.
/// Keep the file off the log's host where you can; a Vault/OpenBao Transit key
/// (`envelope_kms_vault::TransitSigner`) never leaves the server.
pub struct KeyFileSigner {
    name: String,
    pair: Ed25519KeyPair,
    public: [u8; 32],
}

impl fmt::Debug for KeyFileSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFileSigner")
            .field("name", &self.name)
            .field("public_key", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

impl KeyFileSigner {
    /// Draws a new key and writes it to `path` (created with mode 0600; an existing file is
    /// refused). Returns the signer; its [`VerifierKey`] is what verifiers need.
    pub fn generate(name: &str, path: &Path) -> Result<Self, AuditError> {
        check_name(name)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *seed);
        let signer = Self::from_seed(name, &seed[..])?;
        let hash = key_hash(name, &signer.public);
        let mut blob = Zeroizing::new(vec![ALG_ED25519]);
        blob.extend_from_slice(&*seed);
        let text = Zeroizing::new(format!(
            "PRIVATE+KEY+{name}+{}+{}\n",
            hex::encode(hash),
            B64.encode(&*blob)
        ));
        write_private(path, text.as_bytes())?;
        Ok(signer)
    }

    /// Reads a key file written by [`KeyFileSigner::generate`] (or Go's `note.GenerateKey`).
    /// Refuses a file other users can read.
    pub fn from_file(path: &Path) -> Result<Self, AuditError> {
        check_private_mode(path)?;
        let mut text = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
        let parsed = Self::parse(text.trim(), path);
        text.zeroize();
        parsed
    }

    fn parse(text: &str, path: &Path) -> Result<Self, AuditError> {
        let bad = |why: &str| AuditError::Key(format!("{}: {why}", path.display()));
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("not a signing key file (PRIVATE+KEY+NAME+HASH+KEY)"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected PRIVATE+KEY+NAME+HASH+KEY"));
        };
        let blob = Zeroizing::new(B64.decode(key).map_err(|_| bad("the key is not base64"))?);
        if blob.len() != 33 || blob[0] != ALG_ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let signer = Self::from_seed(name, &blob[1..])?;
        if hex::encode(key_hash(name, &signer.public)) != hash {
            return Err(bad("its key hash does not match its name and key"));
        }
        Ok(signer)
    }

    fn from_seed(name: &str, seed: &[u8]) -> Result<Self, AuditError> {
        check_name(name)?;
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| AuditError::Key("not an Ed25519 seed".into()))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(KeyFileSigner {
            name: name.to_owned(),
            pair,
            public,
        })
    }
}

impl CheckpointSigner for KeyFileSigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn public_key(&self) -> [u8; 32] {
        self.public
    }

    fn sign(&self, message: &[u8]) -> envelope_core::Result<[u8; 64]> {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        Ok(out)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| AuditError::io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| AuditError::io(path, e))
}

fn check_private_mode(path: &Path) -> Result<(), AuditError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| AuditError::io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(AuditError::Key(format!(
                "{}: mode {:o} lets other users read the signing key; chmod 600 it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_key_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let signer = KeyFileSigner::generate("acme-audit", &path).unwrap();
        let again = KeyFileSigner::from_file(&path).unwrap();
        assert_eq!(again.public_key(), signer.public_key());
        let vkey = VerifierKey::of(&signer).unwrap();
        assert_eq!(VerifierKey::parse(&vkey.to_string()).unwrap(), vkey);

        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 12,
            root: [7; 32],
        };
        let note = cp.sign(&signer).unwrap();
        assert!(note.starts_with("example.com/log\n12\n"));
        assert_eq!(vkey.verify(&note).unwrap(), cp);

        let forged = note.replace("\n12\n", "\n13\n");
        assert_eq!(vkey.verify(&forged), Err(NoteProblem::BadSignature));
        let other = KeyFileSigner::generate("acme-audit", &dir.path().join("other.key")).unwrap();
        assert_eq!(
            VerifierKey::of(&other).unwrap().verify(&note),
            Err(NoteProblem::NotSigned)
        );
        assert!(format!("{signer:?}").contains("public_key"));
        assert!(!format!("{signer:?}").contains(&std::fs::read_to_string(&path).unwrap()[20..]));
    }

    #[test]
    fn refuses_readable_key_files_and_bad_verifier_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        KeyFileSigner::generate("k", &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            KeyFileSigner::from_file(&path)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
        assert!(VerifierKey::parse("k+00000000+AQ==").is_err());
        assert!(VerifierKey::parse("nonsense").is_err());
    }

    #[test]
    fn known_note_key_hash_of_the_go_note_package() {
        // Go's x/mod/sumdb/note documents the verifier key
        // "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW" and this text
        // and signature line for it.
        let vkey = VerifierKey::parse(
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        )
        .unwrap();
        assert_eq!(vkey.name(), "PeterNeumann");
    }
}
