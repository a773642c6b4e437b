//! The `envelope` binary: see `envelope --help` and the crate's README.

fn main() -> std::process::ExitCode {
    envelope_cli::run()
}
