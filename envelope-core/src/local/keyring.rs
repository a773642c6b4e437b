//! The keyring file: versioned AES-256 KEKs in JSON, written atomically.
//!
//! ```json
//! { "envelope_keyring": 1,
//!   "keys": { "default": { "primary_version": 2, "versions": [
//!       { "version": 1, "state": "enabled",   "created_at": 1763800000, "material": "<base64>" },
//!       { "version": 2, "state": "destroyed", "created_at": 1763900000 } ] } } }
//! ```
//!
//! Every write goes to a temporary file in the same directory, is fsynced, renamed over the
//! keyring and the directory is fsynced: a crash leaves either the old or the new keyring,
//! never a torn one. Writers serialize on an exclusive lock of `<keyring>.lock`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::kms::{KeyDescription, KeyVersionInfo, KeyVersionState, RotationState};
use crate::secret::KEY_LEN;

/// The keyring file format this build reads and writes.
const KEYRING_FORMAT: u32 = 1;

/// The state of a keyring key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalVersionState {
    /// Wraps (when primary) and unwraps.
    Enabled,
    /// Neither wraps nor unwraps until enabled again.
    Disabled,
    /// Key material erased: data under it is unrecoverable.
    Destroyed,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionEntry {
    pub version: u32,
    pub state: LocalVersionState,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroyed_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<Zeroizing<String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyEntry {
    pub primary_version: u32,
    pub versions: Vec<VersionEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyringData {
    pub envelope_keyring: u32,
    pub keys: BTreeMap<String, KeyEntry>,
}

/// A usable KEK version looked up in a loaded keyring.
pub(crate) struct Kek {
    pub version: u32,
    pub material: Zeroizing<[u8; KEY_LEN]>,
}

impl KeyringData {
    pub(crate) fn key(&self, key_id: &str) -> Result<&KeyEntry> {
        self.keys.get(key_id).ok_or_else(|| Error::KeyNotFound {
            key_id: key_id.to_owned(),
        })
    }

    fn key_mut(&mut self, key_id: &str) -> Result<&mut KeyEntry> {
        self.keys.get_mut(key_id).ok_or_else(|| Error::KeyNotFound {
            key_id: key_id.to_owned(),
        })
    }

    /// The KEK of `version` (the primary when `None`), if it is usable.
    pub(crate) fn kek(&self, key_id: &str, version: Option<u32>) -> Result<Kek> {
        let key = self.key(key_id)?;
        let version = version.unwrap_or(key.primary_version);
        let entry = key
            .versions
            .iter()
            .find(|v| v.version == version)
            .ok_or_else(|| Error::KeyVersionNotFound {
                key_id: key_id.to_owned(),
                version: version.to_string(),
            })?;
        match entry.state {
            LocalVersionState::Enabled => {}
            LocalVersionState::Disabled => {
                return Err(Error::KeyVersionDisabled {
                    key_id: key_id.to_owned(),
                    version: version.to_string(),
                });
            }
            LocalVersionState::Destroyed => {
                return Err(Error::KeyVersionDestroyed {
                    key_id: key_id.to_owned(),
                    version: version.to_string(),
                });
            }
        }
        let corrupt = |reason: &str| Error::Keyring {
            path: String::new(),
            reason: format!("key {key_id:?} version {version}: {reason}"),
            source: None,
        };
        let encoded = entry
            .material
            .as_ref()
            .ok_or_else(|| corrupt("enabled but has no key material"))?;
        let decoded = Zeroizing::new(
            STANDARD
                .decode(encoded.as_bytes())
                .map_err(|_| corrupt("key material is not valid base64"))?,
        );
        let mut material = Zeroizing::new([0u8; KEY_LEN]);
        if decoded.len() != KEY_LEN {
            return Err(corrupt("key material is not 32 bytes"));
        }
        material.copy_from_slice(&decoded);
        Ok(Kek { version, material })
    }
}

/// A handle on a keyring file. Every operation reads the file afresh, so a rotation made by
/// another process (the CLI, say) is seen by the next KMS call.
#[derive(Debug, Clone)]
pub struct LocalKeyring {
    path: PathBuf,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_material() -> Zeroizing<String> {
    let key = crate::crypto::random_key(crate::crypto::CryptoProvider::default());
    Zeroizing::new(STANDARD.encode(key.as_ref()))
}

/// Checks a key id: 1 to 128 characters of `A-Z a-z 0-9 . _ -`.
pub(crate) fn validate_key_id(key_id: &str) -> Result<()> {
    let ok = !key_id.is_empty()
        && key_id.len() <= 128
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "local key id {key_id:?} must be 1 to 128 characters of A-Z a-z 0-9 . _ -"
        )))
    }
}

impl LocalKeyring {
    /// A handle on the keyring at `path` (nothing is read until an operation runs).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LocalKeyring { path: path.into() }
    }

    /// Creates a new keyring file (mode 0600) holding `key_id` with a fresh version 1.
    /// Fails if the file exists.
    pub fn create(path: impl Into<PathBuf>, key_id: &str) -> Result<Self> {
        validate_key_id(key_id)?;
        let keyring = LocalKeyring::new(path);
        let _lock = keyring.lock()?;
        if keyring.path.exists() {
            return Err(Error::keyring(&keyring.path, "already exists", None));
        }
        let mut data = KeyringData {
            envelope_keyring: KEYRING_FORMAT,
            keys: BTreeMap::new(),
        };
        data.keys.insert(key_id.to_owned(), new_key_entry());
        keyring.store(&data)?;
        Ok(keyring)
    }

    /// The keyring's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ids of the keyring's keys, in order.
    pub fn key_ids(&self) -> Result<Vec<String>> {
        Ok(self.load()?.keys.keys().cloned().collect())
    }

    /// Adds a key with a fresh version 1.
    pub fn add_key(&self, key_id: &str) -> Result<()> {
        validate_key_id(key_id)?;
        self.modify(|data| {
            if data.keys.contains_key(key_id) {
                return Err(Error::InvalidConfig(format!(
                    "key {key_id:?} already exists"
                )));
            }
            data.keys.insert(key_id.to_owned(), new_key_entry());
            Ok(())
        })
    }

    /// Creates a new version of `key_id` and makes it primary; older versions stay for
    /// unwrapping. Returns the new version.
    pub fn rotate(&self, key_id: &str) -> Result<u32> {
        self.modify(|data| {
            let key = data.key_mut(key_id)?;
            let next = key.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
            key.versions.push(VersionEntry {
                version: next,
                state: LocalVersionState::Enabled,
                created_at: now_secs(),
                destroyed_at: None,
                material: Some(new_material()),
            });
            key.primary_version = next;
            Ok(next)
        })
    }

    /// Disables a non-primary version: it no longer unwraps until re-enabled.
    pub fn disable_version(&self, key_id: &str, version: u32) -> Result<()> {
        self.set_state(key_id, version, LocalVersionState::Disabled)
    }

    /// Re-enables a disabled version.
    pub fn enable_version(&self, key_id: &str, version: u32) -> Result<()> {
        self.set_state(key_id, version, LocalVersionState::Enabled)
    }

    /// Erases a non-primary version's key material for good (crypto-shredding): data whose
    /// DEK it wrapped becomes unrecoverable.
    pub fn destroy_version(&self, key_id: &str, version: u32) -> Result<()> {
        self.set_state(key_id, version, LocalVersionState::Destroyed)
    }

    fn set_state(&self, key_id: &str, version: u32, state: LocalVersionState) -> Result<()> {
        self.modify(|data| {
            let key = data.key_mut(key_id)?;
            if version == key.primary_version && state != LocalVersionState::Enabled {
                return Err(Error::InvalidConfig(format!(
                    "version {version} is the primary version of key {key_id:?}: rotate first"
                )));
            }
            let entry = key
                .versions
                .iter_mut()
                .find(|v| v.version == version)
                .ok_or_else(|| Error::KeyVersionNotFound {
                    key_id: key_id.to_owned(),
                    version: version.to_string(),
                })?;
            if entry.state == LocalVersionState::Destroyed {
                if state == LocalVersionState::Destroyed {
                    return Ok(());
                }
                return Err(Error::KeyVersionDestroyed {
                    key_id: key_id.to_owned(),
                    version: version.to_string(),
                });
            }
            entry.state = state;
            if state == LocalVersionState::Destroyed {
                entry.material = None;
                entry.destroyed_at = Some(now_secs());
            }
            Ok(())
        })
    }

    /// Describes a key: primary version, every version's state, manual rotation.
    pub fn describe(&self, key_id: &str) -> Result<KeyDescription> {
        let data = self.load()?;
        let key = data.key(key_id)?;
        let to_time = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        let versions = key
            .versions
            .iter()
            .map(|v| KeyVersionInfo {
                version: v.version.to_string(),
                state: match v.state {
                    LocalVersionState::Enabled => KeyVersionState::Enabled,
                    LocalVersionState::Disabled => KeyVersionState::Disabled,
                    LocalVersionState::Destroyed => KeyVersionState::Destroyed,
                },
                created_at: Some(to_time(v.created_at)),
            })
            .collect();
        let last_rotated = key
            .versions
            .iter()
            .find(|v| v.version == key.primary_version)
            .map(|v| to_time(v.created_at));
        Ok(KeyDescription {
            key_id: key_id.to_owned(),
            current_version: Some(key.primary_version.to_string()),
            versions,
            rotation: RotationState {
                automatic: false,
                period: None,
                next_rotation: None,
                last_rotated,
            },
        })
    }

    /// Reads and parses the keyring, refusing a file readable by group or others.
    pub(crate) fn load(&self) -> Result<KeyringData> {
        let mut file = File::open(&self.path)
            .map_err(|e| Error::keyring(&self.path, "cannot open", Some(Box::new(e))))?;
        check_permissions(&self.path, &file)?;
        let mut text = Zeroizing::new(String::new());
        std::io::Read::read_to_string(&mut file, &mut text)
            .map_err(|e| Error::keyring(&self.path, "cannot read", Some(Box::new(e))))?;
        // serde_json's messages can quote the offending value ("invalid type: string
        // \"…\""), which in a keyring may be key material: keep only where and what kind.
        let data: KeyringData = serde_json::from_str(&text).map_err(|e| {
            Error::keyring(
                &self.path,
                format!(
                    "not a valid keyring: {:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
                None,
            )
        })?;
        if data.envelope_keyring != KEYRING_FORMAT {
            return Err(Error::keyring(
                &self.path,
                format!(
                    "keyring format {} is not supported (this build reads {KEYRING_FORMAT})",
                    data.envelope_keyring
                ),
                None,
            ));
        }
        Ok(data)
    }

    fn lock(&self) -> Result<File> {
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::keyring(&self.path, "cannot open lock file", Some(Box::new(e))))?;
        file.lock()
            .map_err(|e| Error::keyring(&self.path, "cannot lock", Some(Box::new(e))))?;
        Ok(file)
    }

    fn modify<T>(&self, f: impl FnOnce(&mut KeyringData) -> Result<T>) -> Result<T> {
        let _lock = self.lock()?;
        let mut data = self.load()?;
        let out = f(&mut data)?;
        self.store(&data)?;
        Ok(out)
    }

    fn store(&self, data: &KeyringData) -> Result<()> {
        let io =
            |reason: &str, e: std::io::Error| Error::keyring(&self.path, reason, Some(Box::new(e)));
        let json = Zeroizing::new(
            serde_json::to_string_pretty(data)
                .map_err(|e| Error::keyring(&self.path, "cannot serialize", Some(Box::new(e))))?,
        );
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = self
            .path
            .file_name()
            .ok_or_else(|| Error::keyring(&self.path, "is not a file path", None))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&tmp)
            .map_err(|e| io("cannot create temporary file", e))?;
        let written = file
            .write_all(json.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io("cannot write temporary file", e));
        }
        drop(file);
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(io("cannot replace keyring", e));
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("cannot sync directory", e))
    }
}

fn new_key_entry() -> KeyEntry {
    KeyEntry {
        primary_version: 1,
        versions: vec![VersionEntry {
            version: 1,
            state: LocalVersionState::Enabled,
            created_at: now_secs(),
            destroyed_at: None,
            material: Some(new_material()),
        }],
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path, file: &File) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|e| Error::keyring(path, "cannot stat", Some(Box::new(e))))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::keyring(
            path,
            format!(
                "is accessible by group or others (mode {:04o}); run `chmod 600 {}`",
                mode & 0o7777,
                path.display()
            ),
            None,
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _file: &File) -> Result<()> {
    Ok(())
}
