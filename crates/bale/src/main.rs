//! The `bale` binary: everything lives in the crates; this only starts the CLI.

fn main() -> std::process::ExitCode {
    bale_cli::main()
}
