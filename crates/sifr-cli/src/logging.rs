//! Log output on stderr, at the level the settings chose. Never starts a thread: the launch path
//! must stay single-threaded until namespaces are set up (see docs/architecture.md).

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;

use crate::settings::Settings;

/// Install the global subscriber. Quiet shows errors only, the default shows warnings,
/// verbose shows info and debug shows everything.
pub fn init(settings: &Settings) {
    let level = if settings.silent {
        LevelFilter::OFF
    } else if settings.debug {
        LevelFilter::DEBUG
    } else if settings.verbose {
        LevelFilter::INFO
    } else if settings.quiet {
        LevelFilter::ERROR
    } else {
        LevelFilter::WARN
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(settings.color && std::io::stderr().is_terminal())
        .with_target(settings.debug)
        .without_time()
        .try_init();
}
