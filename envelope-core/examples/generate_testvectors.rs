//! Writes `testvectors/v1.json` (deterministic: the same bytes on every run).
//!
//! `cargo run -p envelope-core --features testing --example generate_testvectors`

fn main() -> std::io::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testvectors/v1.json");
    std::fs::write(&path, envelope_core::vectors::generate_file())?;
    println!("wrote {}", path.canonicalize()?.display());
    Ok(())
}
