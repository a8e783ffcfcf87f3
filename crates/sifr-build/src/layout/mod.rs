//! The `/.singularity.d` metadata tree, laid out as Apptainer lays it out.
//!
//! A build uses this module in three steps on the root filesystem directory it is building:
//!
//! 1. [`base::write_base`] right after bootstrap: the skeleton (`/.singularity.d/{actions,env,
//!    libs}`, the env and action scripts, the default runscript and startscript, the `/singularity`
//!    and `/environment` links, `/dev /proc /sys ...` and empty `/etc/hosts` and
//!    `/etc/resolv.conf`).
//! 2. [`sections::insert_metadata`] after `%post`: `runscript.help`, `labels.json`, the stored
//!    definition `Singularity`, `%environment`, `startscript`, `runscript`, `test`, and the SCIF
//!    app files, in Apptainer's order.
//! 3. [`inspect::inspect`] last: the `inspect-metadata.json` object stored in the SIF, read back
//!    from the finished tree.
//!
//! All file system access goes through a directory descriptor of the root and refuses to follow
//! symlinks in the paths it writes, so an untrusted image whose `/.singularity.d` or `/etc` is a
//! symlink to the host cannot make the build write outside the root (see `fsat`).
//! Nothing here reads the clock: the build time and architecture are parameters.

pub mod base;
mod fsat;
mod gojson;
pub mod inspect;
mod labels;
pub mod scripts;
pub mod sections;

use std::path::PathBuf;

pub use base::{BaseOptions, write_base};
pub use inspect::{AppAttributes, Attributes, ImageTree, InspectMetadata, inspect, inspect_tree};
pub use labels::{BuildTime, parse_label_lines};
pub use sections::{MetadataOptions, insert_metadata};

/// The directory all metadata lives in, relative to the root.
pub const SINGULARITY_D: &str = ".singularity.d";

/// Errors from laying out the metadata tree; each names the host path involved.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: is a symbolic link; refusing to follow it out of the image root")]
    Symlink { path: PathBuf },
    #[error("{path}: exists and is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path}: exists and is not a regular file")]
    NotARegularFile { path: PathBuf },
    #[error("{path}: not a JSON object of string labels: {source}")]
    Labels {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("app name {name:?} is not a single path component")]
    BadAppName { name: String },
}

/// Write `data` at `rel` inside `root` (parents must exist), refusing symlinks on the way.
pub(crate) fn write_file(
    root: &std::path::Path,
    rel: &str,
    data: &[u8],
    mode: u32,
) -> Result<(), LayoutError> {
    fsat::Root::open(root)?.write(rel, data, mode)
}
