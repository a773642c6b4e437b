use super::*;
use crate::kms::KeyVersionState;

fn keyring() -> (tempfile::TempDir, LocalKeyring) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = LocalKeyring::create(dir.path().join("keyring.json"), "default").unwrap();
    (dir, keyring)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn created_keyring_is_private_and_never_overwritten() {
    let (dir, keyring) = keyring();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keyring.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = LocalKeyring::create(dir.path().join("keyring.json"), "other");
    assert!(matches!(again, Err(Error::Keyring { .. })));
}

#[cfg(unix)]
#[test]
fn group_readable_keyring_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, keyring) = keyring();
    std::fs::set_permissions(keyring.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = keyring.describe("default").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("group or others") && msg.contains("chmod 600"),
        "{msg}"
    );
}

#[test]
fn rotate_disable_destroy_lifecycle() {
    let (_dir, keyring) = keyring();
    let kms = LocalKms::new(keyring.clone());
    let ctx = EncryptionContext::new();
    let old = block_on(kms.generate_dek("default", &ctx)).unwrap();
    assert_eq!(old.wrapped.key_version, "1");
    assert_eq!(old.wrapped.ciphertext.len(), LOCAL_WRAPPED_DEK_LEN);

    assert_eq!(keyring.rotate("default").unwrap(), 2);
    let new = block_on(kms.generate_dek("default", &ctx)).unwrap();
    assert_eq!(new.wrapped.key_version, "2");
    // The old version still unwraps.
    let dek = block_on(kms.unwrap_dek(&old.wrapped, &ctx)).unwrap();
    assert_eq!(dek.expose_secret(), old.dek.expose_secret());

    // The primary cannot be disabled or destroyed.
    assert!(matches!(
        keyring.destroy_version("default", 2),
        Err(Error::InvalidConfig(_))
    ));

    keyring.disable_version("default", 1).unwrap();
    assert!(matches!(
        block_on(kms.unwrap_dek(&old.wrapped, &ctx)),
        Err(Error::KeyVersionDisabled { .. })
    ));
    keyring.enable_version("default", 1).unwrap();
    assert!(block_on(kms.unwrap_dek(&old.wrapped, &ctx)).is_ok());

    keyring.destroy_version("default", 1).unwrap();
    assert!(matches!(
        block_on(kms.unwrap_dek(&old.wrapped, &ctx)),
        Err(Error::KeyVersionDestroyed { .. })
    ));
    // Destroyed means the material is gone from the file, not merely flagged.
    let text = std::fs::read_to_string(keyring.path()).unwrap();
    assert_eq!(text.matches("\"material\"").count(), 1, "{text}");
    assert!(matches!(
        keyring.enable_version("default", 1),
        Err(Error::KeyVersionDestroyed { .. })
    ));

    let description = keyring.describe("default").unwrap();
    assert_eq!(description.current_version.as_deref(), Some("2"));
    assert_eq!(description.versions[0].state, KeyVersionState::Destroyed);
    assert_eq!(description.versions[1].state, KeyVersionState::Enabled);
}

#[test]
fn context_and_key_binding_are_enforced() {
    let (_dir, keyring) = keyring();
    keyring.add_key("other").unwrap();
    let kms = LocalKms::new(keyring);
    let mut ctx = EncryptionContext::new();
    ctx.insert("tenant".into(), "a".into());
    let generated = block_on(kms.generate_dek("default", &ctx)).unwrap();

    let mut wrong_ctx = ctx.clone();
    wrong_ctx.insert("tenant".into(), "b".into());
    assert!(matches!(
        block_on(kms.unwrap_dek(&generated.wrapped, &wrong_ctx)),
        Err(Error::DecryptionFailed)
    ));

    let mut moved = generated.wrapped.clone();
    moved.key_id = "other".into();
    assert!(matches!(
        block_on(kms.unwrap_dek(&moved, &ctx)),
        Err(Error::DecryptionFailed)
    ));

    let mut missing = generated.wrapped.clone();
    missing.key_id = "nope".into();
    assert!(matches!(
        block_on(kms.unwrap_dek(&missing, &ctx)),
        Err(Error::KeyNotFound { .. })
    ));

    let mut version = generated.wrapped.clone();
    version.key_version = "7".into();
    assert!(matches!(
        block_on(kms.unwrap_dek(&version, &ctx)),
        Err(Error::KeyVersionNotFound { .. })
    ));

    let mut foreign = generated.wrapped.clone();
    foreign.provider = Provider::VaultTransit;
    assert!(matches!(
        block_on(kms.unwrap_dek(&foreign, &ctx)),
        Err(Error::KeyNotOwned { .. })
    ));
}

#[test]
fn uri_parsing() {
    let (kms, key) = LocalKms::from_uri("local:///tmp/k.json#orders").unwrap();
    assert_eq!(kms.keyring().path(), std::path::Path::new("/tmp/k.json"));
    assert_eq!(key, "orders");
    let (kms, key) = LocalKms::from_uri("local://rel/k.json").unwrap();
    assert_eq!(kms.keyring().path(), std::path::Path::new("rel/k.json"));
    assert_eq!(key, "default");
    for bad in [
        "file:///k.json",
        "local://",
        "local:///k.json#",
        "local:///k.json#a b",
    ] {
        assert!(
            matches!(LocalKms::from_uri(bad), Err(Error::InvalidKeyUri { .. })),
            "{bad}"
        );
    }
}

#[test]
fn corrupt_keyring_errors_name_the_file_not_the_contents() {
    let (_dir, keyring) = keyring();
    let text = std::fs::read_to_string(keyring.path()).unwrap();
    std::fs::write(
        keyring.path(),
        text.replace("\"primary_version\"", "\"primary\""),
    )
    .unwrap();
    let err = keyring.describe("default").unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("not a valid keyring"), "{shown}");
    assert!(!shown.contains("material"), "{shown}");
}

#[test]
fn a_misplaced_key_in_the_keyring_is_not_echoed_by_the_parse_error() {
    let (_dir, keyring) = keyring();
    let text = std::fs::read_to_string(keyring.path()).unwrap();
    let material: String = text
        .split("\"material\": \"")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    // The material where a number belongs: serde_json would quote it in its message.
    let broken = text.replace("\"version\": 1", &format!("\"version\": \"{material}\""));
    assert_ne!(broken, text);
    std::fs::write(keyring.path(), broken).unwrap();
    let err = keyring.describe("default").unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("not a valid keyring") && shown.contains("line"),
        "{shown}"
    );
    assert!(!shown.contains(&material), "{shown}");
}
