//! Errors of this crate; every variant names the path it concerns.

use std::io;
use std::path::PathBuf;

/// Why a file or an image could not be examined.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a file or a directory failed.
    #[error("cannot read `{path}`")]
    Read {
        /// The path on this machine.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file starts like an ELF file but its headers cannot be parsed.
    #[error("`{path}` is not a valid ELF file: {reason}")]
    Elf {
        /// The path on this machine (or the name given for a buffer).
        path: PathBuf,
        /// What `object` could not parse.
        reason: String,
    },
    /// The file is not an ELF file at all.
    #[error("`{path}` is not an ELF file")]
    NotElf {
        /// The path.
        path: PathBuf,
    },
}
