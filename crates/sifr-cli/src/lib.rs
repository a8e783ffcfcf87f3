//! The `sifr` command line: clap definitions, settings, logging, error rendering and exit codes.
//!
//! This is the only crate that prints to stdout/stderr or chooses the process exit status.
//! Library crates return typed errors; this crate renders them (`error:`, `caused by:`, `hint:`).
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod args;
pub mod cmd;
pub mod exit;
pub mod help;
pub mod identity;
pub mod json;
pub mod logging;
pub mod progress;
pub mod prompt;
pub mod report;
pub mod settings;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// Names under which sifr answers as a drop-in for existing job scripts.
pub const ALIASES: &[&str] = &["sifr", "apptainer", "singularity"];

/// Parse the command line, resolve settings, run the command, render any error.
pub fn main_entry() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let name = identity::Name::from_argv0(argv.first().map(OsString::as_os_str));
    let cli = match args::Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout and usage errors to stderr itself.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let command = match cli.command {
        _ if cli.global.version => {
            println!("{}", name.version_flag());
            return ExitCode::from(exit::OK);
        }
        Some(c) => c,
        None => {
            // Apptainer prints its usage and exits 1 when no command is given.
            use clap::CommandFactory as _;
            eprintln!("{}", args::Cli::command().render_usage());
            eprintln!("ERROR:   a command is required; see `--help`");
            return ExitCode::from(exit::USAGE);
        }
    };
    let env = settings::ProcessEnv;
    let settings = match settings::Settings::resolve(&cli.global, &env) {
        Ok(s) => s,
        Err(e) => {
            // A bad setting is one of sifr's own fatal errors, as in Apptainer.
            eprintln!("{}", report::render(&e.into(), report::Colour::Plain));
            return ExitCode::from(exit::FAILURE);
        }
    };
    logging::init(&settings);
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    tracing::debug!(settings = ?settings, "resolved settings");
    if let args::Command::Version = command {
        // After the settings, as Apptainer reads its variables before any command runs.
        println!("{}", name.version_command());
        return ExitCode::from(exit::OK);
    }
    match cmd::run(command, &settings) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = report::exit_code(&e);
            if !settings.silent {
                eprintln!(
                    "{}",
                    report::render(
                        &e,
                        report::Colour::when(settings.color && std::io::stderr().is_terminal()),
                    )
                );
            }
            ExitCode::from(code)
        }
    }
}
