//! `--isa-check` and the `isa_check` setting, and the warning a launch prints when the program
//! needs CPU features this host lacks. The judgement itself is `sifr_launch::isa_check`'s,
//! made on the launch path by `sifr_launch::prepare`; this module only names the mode and
//! renders what it found (`-q` silences the warning).

use std::path::Path;
use std::str::FromStr;

use crate::settings::Settings;

/// What to do when the program needs CPU features the host lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IsaCheck {
    /// Print one warning and start the program anyway.
    #[default]
    Warn,
    /// Refuse to start the program.
    Error,
    /// Do not check.
    Off,
}

impl IsaCheck {
    /// The accepted values, for the settings catalogue.
    pub const NAMES: &'static [&'static str] = &["warn", "error", "off"];

    /// The mode chosen by `flag` (`--isa-check`), which beats the `isa_check` setting.
    pub fn policy(flag: Option<IsaCheck>, settings: &Settings) -> sifr_launch::isa_check::Policy {
        match flag.unwrap_or(settings.isa_check) {
            IsaCheck::Warn => sifr_launch::isa_check::Policy::Warn,
            IsaCheck::Error => sifr_launch::isa_check::Policy::Error,
            IsaCheck::Off => sifr_launch::isa_check::Policy::Off,
        }
    }
}

impl FromStr for IsaCheck {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "warn" => Ok(IsaCheck::Warn),
            "error" => Ok(IsaCheck::Error),
            "off" => Ok(IsaCheck::Off),
            _ => Err(format!("`{s}` is not one of warn, error, off")),
        }
    }
}

/// The warning for `finding` in `image`, on stderr unless quiet.
pub fn warn(finding: &sifr_launch::isa_check::Finding, image: &Path, settings: &Settings) {
    if settings.quiet || settings.silent {
        return;
    }
    eprintln!("WARNING: {}", finding.headline(image));
    for d in finding.details() {
        eprintln!("         {d}");
    }
}
