//! Who sifr says it is. Under the names `apptainer` and `singularity` it answers as the Apptainer
//! release it matches ([`APPTAINER_VERSION`]), because tools decide from that text whether they
//! can run at all (snakemake wants `apptainer version X.Y.Z` >= 1.0, or a Singularity >= 2.4.1);
//! under its own name it says both what it is and which release it matches.

use std::ffi::OsStr;
use std::path::Path;

pub use sifr_build::layout::sections::APPTAINER_VERSION;

/// sifr's own version.
pub const SIFR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The name the program was started under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// `sifr`, or any name that is not Apptainer's.
    Sifr,
    /// `apptainer` or `singularity` (Apptainer installs the second as a link to the first and
    /// answers the same under both).
    Apptainer,
}

impl Name {
    /// From `argv[0]`: its file name decides.
    pub fn from_argv0(argv0: Option<&OsStr>) -> Name {
        let base = argv0
            .map(Path::new)
            .and_then(Path::file_name)
            .and_then(OsStr::to_str)
            .unwrap_or("sifr");
        match base {
            "apptainer" | "singularity" => Name::Apptainer,
            _ => Name::Sifr,
        }
    }

    /// What `--version` prints (Apptainer: `apptainer version 1.5.3`).
    pub fn version_flag(self) -> String {
        match self {
            Name::Apptainer => format!("apptainer version {APPTAINER_VERSION}"),
            Name::Sifr => Self::sifr_line(),
        }
    }

    /// What the `version` command prints (Apptainer: the bare version).
    pub fn version_command(self) -> String {
        match self {
            Name::Apptainer => APPTAINER_VERSION.to_owned(),
            Name::Sifr => Self::sifr_line(),
        }
    }

    fn sifr_line() -> String {
        format!("sifr version {SIFR_VERSION} (behaves as apptainer version {APPTAINER_VERSION})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apptainer_names_print_apptainers_formats() {
        // e2e/version: `--version` is "apptainer version " + a semantic version, `version` the
        // bare version, and the two agree.
        for argv0 in ["apptainer", "/usr/bin/singularity", "./apptainer"] {
            let n = Name::from_argv0(Some(OsStr::new(argv0)));
            assert_eq!(n, Name::Apptainer);
            let flag = n.version_flag();
            let bare = flag.strip_prefix("apptainer version ").unwrap();
            assert_eq!(bare, n.version_command());
            let parts: Vec<u32> = bare.split('.').map(|p| p.parse().unwrap()).collect();
            assert_eq!(parts.len(), 3, "{bare}");
        }
    }

    #[test]
    fn sifr_names_both_itself_and_the_release_it_matches() {
        let n = Name::from_argv0(Some(OsStr::new("/opt/sifr/bin/sifr")));
        assert_eq!(n, Name::Sifr);
        let line = n.version_command();
        assert!(line.starts_with("sifr version "), "{line}");
        assert!(line.contains(&format!("apptainer version {APPTAINER_VERSION}")));
        assert_eq!(Name::from_argv0(None), Name::Sifr);
    }
}
