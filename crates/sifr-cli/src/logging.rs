//! Log output on stderr, at the level the settings chose, in Apptainer's form: a prefix padded
//! to nine columns (`INFO:    `, `WARNING: `, `ERROR:   `, `DEBUG:   `), the prefix coloured
//! on a terminal, the message after it. Never starts a thread: the launch path must stay
//! single-threaded until namespaces are set up (see docs/architecture.md).

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::settings::Settings;

/// The prefix of a message of `level`, as Apptainer prints it.
pub fn prefix(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR:   ",
        Level::WARN => "WARNING: ",
        Level::INFO => "INFO:    ",
        Level::DEBUG => "DEBUG:   ",
        Level::TRACE => "TRACE:   ",
    }
}

/// Apptainer's colours for the prefixes: errors red, warnings yellow, information blue.
fn colour(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[34m",
        _ => "",
    }
}

/// The event formatter: prefix, then (with `--debug`) the module, then the fields.
struct Apptainer {
    ansi: bool,
    target: bool,
}

impl<S, N> FormatEvent<S, N> for Apptainer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        let c = if self.ansi { colour(level) } else { "" };
        if c.is_empty() {
            write!(writer, "{}", prefix(level))?;
        } else {
            write!(writer, "{c}{}\x1b[0m", prefix(level))?;
        }
        if self.target {
            write!(writer, "[{}] ", event.metadata().target())?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

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
    let ansi = settings.color && std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .event_format(Apptainer {
            ansi,
            target: settings.debug,
        })
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_apptainers_and_line_up() {
        for l in [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG] {
            assert_eq!(prefix(l).len(), 9, "{l}");
            assert!(prefix(l).ends_with(' '));
        }
        assert_eq!(prefix(Level::WARN), "WARNING: ");
    }
}
