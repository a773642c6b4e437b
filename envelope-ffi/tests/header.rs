//! The committed `include/envelope.h` must equal what cbindgen generates from the source.
//! Regenerate with `ENVELOPE_BLESS=1 cargo test -p envelope-ffi --test header`.

use std::path::PathBuf;

#[test]
fn header_matches_the_source() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cbindgen.toml: {e}"));
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen: {e}"))
        .write(&mut generated);
    let path = crate_dir.join("include/envelope.h");
    if std::env::var_os("ENVELOPE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/envelope.h is out of date with the Rust source: run \
         `ENVELOPE_BLESS=1 cargo test -p envelope-ffi --test header` and commit the result"
    );
}
