//! The `sifr` binary. Everything lives in the library so the tests can reach it.
// The CLI is the one crate allowed to print and exit (workspace lints deny it elsewhere).
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

fn main() -> std::process::ExitCode {
    sifr_cli::main_entry()
}
