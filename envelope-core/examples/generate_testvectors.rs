//! Writes `testvectors/v1.json`, `testvectors/compact.json`, `testvectors/index.json` and
//! `testvectors/stream.json`
//! (deterministic: the same
//! bytes on every run).
//!
//! `cargo run -p envelope-core --features testing --example generate_testvectors`

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testvectors");
    for (name, text) in [
        ("v1.json", envelope_core::vectors::generate_file()),
        (
            "compact.json",
            envelope_core::vectors::compact::generate_file(),
        ),
        ("index.json", envelope_core::vectors::index::generate_file()),
        (
            "stream.json",
            envelope_core::vectors::stream::generate_file(),
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        println!("wrote {}", path.canonicalize()?.display());
    }
    Ok(())
}
