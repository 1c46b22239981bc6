//! The `codejail` command; everything but this entry point is the
//! library `codejail_cli` (so that `cargo xtask man` can read the clap
//! definitions).

fn main() -> std::process::ExitCode {
    codejail_cli::main()
}
