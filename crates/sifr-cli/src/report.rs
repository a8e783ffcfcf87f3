//! Error rendering: `error: <top>`, one `caused by: <link>` per source, and `hint: <fix>` when
//! some link knows one. Library errors expose hints through a `hint()` method; [`hint_of`]
//! is the one place that asks them.

use std::error::Error as StdError;
use std::fmt::Write as _;

use crate::exit;

/// An error raised by the CLI itself that carries a hint for the user.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl Hinted {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Hinted {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// An error that has already been reported in full (for example a list of per-file
/// diagnostics); only its exit code matters.
#[derive(Debug, thiserror::Error)]
#[error("{summary}")]
pub struct AlreadyReported {
    pub summary: String,
    pub code: u8,
}

/// An error rendered elsewhere (in a forked child that did the work), printed as it came.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct Prerendered {
    pub text: String,
}

/// A command line that parsed but makes no sense (an unknown flag where the image should be):
/// rendered as any error, with the usage exit status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Usage {
    pub message: String,
    pub hint: String,
}

/// The hint a link of the chain offers, if any.
pub fn hint_of(err: &(dyn StdError + 'static)) -> Option<String> {
    if let Some(e) = err.downcast_ref::<Hinted>() {
        return Some(e.hint.clone());
    }
    if let Some(e) = err.downcast_ref::<Usage>() {
        return Some(e.hint.clone());
    }
    if let Some(e) = err.downcast_ref::<crate::settings::SettingsError>() {
        return e.hint();
    }
    if let Some(e) = err.downcast_ref::<sifr_deffile::Error>() {
        return e.hint();
    }
    if let Some(e) = err.downcast_ref::<sifr_build::defbuild::DefBuildError>() {
        return e.hint();
    }
    if let Some(e) = err.downcast_ref::<sifr_build::overlay::OverlayError>() {
        return e.hint();
    }
    if let Some(e) = err.downcast_ref::<sifr_build::pull::PullError>() {
        return e.hint();
    }
    if let Some(e) = err.downcast_ref::<sifr_oci::client::ClientError>() {
        return e.hint();
    }
    if let Some(e) = err.downcast_ref::<sifr_oci::oras::OrasError>() {
        return e.hint();
    }
    if let Some(e) = err.downcast_ref::<sifr_oci::net::NetError>() {
        return e.hint();
    }
    if let Some(e) = err.downcast_ref::<sifr_oci::library::LibraryError>() {
        return e.hint();
    }
    if let Some(e) = err.downcast_ref::<sifr_launch::fakeroot::FakerootError>() {
        return e.hint();
    }
    None
}

/// Whether rendered text carries terminal colour codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Plain text.
    Plain,
    /// ANSI colour: the `error:` label red, the `hint:` label yellow.
    Ansi,
}

impl Colour {
    /// [`Colour::Ansi`] when `on` (the `color` setting, and stderr a terminal where it matters).
    pub fn when(on: bool) -> Self {
        if on { Self::Ansi } else { Self::Plain }
    }
}

/// The prefix of an error that ends the command, as Apptainer prints its fatal errors.
pub const FATAL: &str = "FATAL:   ";
/// The prefix of a command line that makes no sense (exit status 1).
pub const USAGE_ERROR: &str = "ERROR:   ";
/// Where the causes and the hint of an error start: under its message.
pub const INDENT: &str = "         ";

/// Render an error for stderr: `FATAL:   message` (`ERROR:   ` for a usage error), then each
/// cause and the hint aligned under the message.
pub fn render(err: &anyhow::Error, colour: Colour) -> String {
    let (red, yellow, reset) = if colour == Colour::Ansi {
        ("\x1b[31m", "\x1b[33m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let prefix = if err.downcast_ref::<Usage>().is_some() {
        USAGE_ERROR
    } else {
        FATAL
    };
    let mut out = String::new();
    if let Some(r) = err.downcast_ref::<AlreadyReported>() {
        let _ = write!(out, "{red}{FATAL}{reset}{}", r.summary);
        return out;
    }
    if let Some(r) = err.downcast_ref::<Prerendered>() {
        return r.text.clone();
    }
    // Errors used as anyhow context are not chain links of their own type, so ask anyhow first.
    let mut hint = err.downcast_ref::<Hinted>().map(|h| h.hint.clone());
    for (i, link) in err.chain().enumerate() {
        if i == 0 {
            let _ = write!(out, "{red}{prefix}{reset}{link}");
        } else {
            let _ = write!(out, "\n{INDENT}caused by: {link}");
        }
        if hint.is_none() {
            hint = hint_of(link);
        }
    }
    if let Some(h) = hint {
        let _ = write!(out, "\n{INDENT}{yellow}hint:{reset} {h}");
    }
    out
}

/// The colouring `main` uses for errors on this process's stderr.
pub fn render_colour(settings: &crate::settings::Settings) -> Colour {
    use std::io::IsTerminal as _;
    Colour::when(settings.color && std::io::stderr().is_terminal())
}

/// The exit code for an error that reached the top.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(r) = err.downcast_ref::<AlreadyReported>() {
        return r.code;
    }
    if err.downcast_ref::<Usage>().is_some() {
        return exit::USAGE;
    }
    exit::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_chain_and_hint_without_colour() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(inner)
            .context(Hinted::new("cannot open `x.def`", "check the path"))
            .context("cannot check definition files");
        let text = render(&err, Colour::Plain);
        assert_eq!(
            text,
            "FATAL:   cannot check definition files\n         caused by: cannot open `x.def`\n         caused by: no such file\n         hint: check the path"
        );
    }
}
