//! `-S/--scratch DIR[,DIR]` (`APPTAINER_SCRATCH`): an empty writable directory at each `DIR` in
//! the container, as Apptainer's `addScratchMount`. It lives in the session tmpfs and goes with
//! the container, or, with `-W/--workdir WORK` (with or without `--contain`, as in Apptainer), in
//! `WORK/scratch/DIR` on the host, created with its parents (mode 0750) and kept.
//!
//! Pure: parsing and the plan's mounts; the directories are created by `assemble`.

use std::path::{Path, PathBuf};

use crate::bind::clean;
use crate::plan::types::{Mount, Tag};

/// A `--scratch` value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScratchError {
    #[error("invalid scratch directory `{dir}`: it is not an absolute path")]
    NotAbsolute { dir: String },
}

impl ScratchError {
    pub fn hint(&self) -> String {
        match self {
            ScratchError::NotAbsolute { dir } => format!(
                "scratch directories are container paths: `/{}`",
                dir.trim_start_matches("./")
            ),
        }
    }
}

/// The directories of one `--scratch` value: a comma-separated list (Apptainer splits the flag's
/// values on commas), each cleaned (`/a/../b/` is `/b`); empty items are dropped.
pub fn parse_list(value: &str) -> Result<Vec<PathBuf>, ScratchError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            if d.starts_with('/') {
                Ok(clean(Path::new(d)))
            } else {
                Err(ScratchError::NotAbsolute { dir: d.into() })
            }
        })
        .collect()
}

/// The plan's mounts for `dirs`: writable, `nosuid`, `nodev`, as Apptainer binds them.
pub fn mounts(dirs: &[PathBuf], workdir: Option<&Path>) -> Vec<Mount> {
    dirs.iter()
        .map(|dir| match workdir {
            Some(work) => Mount {
                nodev: true,
                required: true,
                create: Some(0o750),
                ..Mount::host(Tag::Scratch, source_in(work, dir), dir)
            },
            None => Mount::scratch(Tag::Scratch, dir),
        })
        .collect()
}

/// `WORK/scratch/DIR`, Apptainer's `filepath.Join(workdir, "/scratch", dir)`.
pub fn source_in(workdir: &Path, dir: &Path) -> PathBuf {
    workdir
        .join("scratch")
        .join(dir.strip_prefix("/").unwrap_or(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::types::Source;

    #[test]
    fn a_list_of_absolute_directories_is_split_and_cleaned() {
        assert_eq!(
            parse_list("/scratch, /a/../tmp2/,,/x").unwrap(),
            [
                PathBuf::from("/scratch"),
                PathBuf::from("/tmp2"),
                PathBuf::from("/x")
            ]
        );
    }

    #[test]
    fn a_relative_directory_is_refused_with_a_hint() {
        // Apptainer: "could not bind scratch directory ...: destination must be an absolute path".
        let e = parse_list("/a,data").unwrap_err();
        assert_eq!(e, ScratchError::NotAbsolute { dir: "data".into() });
        assert_eq!(e.hint(), "scratch directories are container paths: `/data`");
    }

    #[test]
    fn scratch_lives_in_the_session_or_under_the_workdir() {
        let dirs = [PathBuf::from("/scratch/a")];
        let m = &mounts(&dirs, None)[0];
        assert_eq!(
            (&m.source, m.dst.as_path(), m.nodev),
            (&Source::Scratch, Path::new("/scratch/a"), true)
        );
        let m = &mounts(&dirs, Some(Path::new("/jobs")))[0];
        assert_eq!(
            m.source,
            Source::Host(PathBuf::from("/jobs/scratch/scratch/a"))
        );
        assert_eq!(
            (m.create, m.required, m.readonly),
            (Some(0o750), true, false)
        );
    }
}
