//! The keyring JSON loader: any file content loads or fails with a typed error, never a
//! panic, and no error message quotes the file's content (key material could sit in any
//! field).
#![no_main]

use std::sync::OnceLock;

use envelope::LocalKeyring;
use libfuzzer_sys::fuzz_target;

fn path() -> &'static std::path::PathBuf {
    static P: OnceLock<std::path::PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("envelope-fuzz-keyring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("keyring.json")
    })
}

fuzz_target!(|data: &[u8]| {
    use std::os::unix::fs::PermissionsExt;
    let path = path();
    std::fs::write(path, data).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let keyring = LocalKeyring::new(path);
    for key in ["default", "k"] {
        if let Err(e) = keyring.describe(key) {
            let shown = format!("{e} {e:?}");
            // A key-material-like run of the input (16 base64 characters with a digit, an
            // upper- and a lower-case letter: no English word of a message) must not
            // appear in the error.
            for window in data.windows(16) {
                let Ok(w) = std::str::from_utf8(window) else { continue };
                let base64 = w.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
                let mixed = w.chars().any(|c| c.is_ascii_digit())
                    && w.chars().any(|c| c.is_ascii_uppercase())
                    && w.chars().any(|c| c.is_ascii_lowercase());
                if base64 && mixed {
                    assert!(!shown.contains(w), "error quotes the keyring: {shown}");
                }
            }
        }
    }
});
