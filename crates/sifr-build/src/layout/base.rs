//! The base skeleton every image gets right after bootstrap (Apptainer's "base environment").
//!
//! Directories are created only where nothing exists yet (an existing entry of any kind, a
//! symlink included, is left alone). The compatibility links (`/singularity`, `/environment`,
//! `/.run`, `/.exec`, `/.shell`, `/.test`) are created when missing, re-pointed when they are
//! symlinks to something else, and left alone when they are real files. Files are written with
//! exact modes; with [`BaseOptions::overwrite`] unset, existing files only get their mode fixed.

use std::path::Path;

use super::LayoutError;
use super::fsat::{Kind, Root};
use super::scripts;

/// How [`write_base`] treats files that already exist in the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseOptions {
    /// Replace existing files with the default contents. Apptainer sets this for every
    /// bootstrap agent except `localimage` (building on top of an existing image, whose
    /// runscript and environment must survive). Note that this also empties an existing
    /// `/etc/hosts` and `/etc/resolv.conf`, as Apptainer does; the runtime binds the host's
    /// over them anyway.
    pub overwrite: bool,
}

impl Default for BaseOptions {
    fn default() -> Self {
        BaseOptions { overwrite: true }
    }
}

/// Directories created (with parents) when absent, in Apptainer's order.
pub const BASE_DIRS: &[&str] = &[
    ".singularity.d/libs",
    ".singularity.d/actions",
    ".singularity.d/env",
    "dev",
    "proc",
    "root",
    "var/tmp",
    "tmp",
    "etc",
    "sys",
    "home",
];

/// `(target, link)` pairs for the compatibility symlinks, in Apptainer's order.
pub const BASE_SYMLINKS: &[(&str, &str)] = &[
    (".singularity.d/runscript", "singularity"),
    (".singularity.d/actions/run", ".run"),
    (".singularity.d/actions/exec", ".exec"),
    (".singularity.d/actions/test", ".test"),
    (".singularity.d/actions/shell", ".shell"),
    (".singularity.d/env/90-environment.sh", "environment"),
];

/// `(path, mode, contents)` of every file the skeleton writes, in Apptainer's order.
pub const BASE_FILES: &[(&str, u32, &str)] = &[
    ("etc/hosts", 0o644, ""),
    ("etc/resolv.conf", 0o644, ""),
    (".singularity.d/actions/exec", 0o755, scripts::ACTION_EXEC),
    (".singularity.d/actions/run", 0o755, scripts::ACTION_RUN),
    (".singularity.d/actions/shell", 0o755, scripts::ACTION_SHELL),
    (".singularity.d/actions/start", 0o755, scripts::ACTION_START),
    (".singularity.d/actions/test", 0o755, scripts::ACTION_TEST),
    (".singularity.d/env/01-base.sh", 0o755, scripts::ENV_01_BASE),
    (
        ".singularity.d/env/90-environment.sh",
        0o755,
        scripts::ENV_90_ENVIRONMENT,
    ),
    (".singularity.d/env/95-apps.sh", 0o755, scripts::ENV_95_APPS),
    (".singularity.d/env/99-base.sh", 0o755, scripts::ENV_99_BASE),
    (
        ".singularity.d/env/99-runtimevars.sh",
        0o755,
        scripts::ENV_99_RUNTIMEVARS,
    ),
    (
        ".singularity.d/runscript",
        0o755,
        scripts::DEFAULT_RUNSCRIPT,
    ),
    (
        ".singularity.d/startscript",
        0o755,
        scripts::DEFAULT_STARTSCRIPT,
    ),
];

/// Files that are never written through or replaced when they are symlinks: images commonly
/// link `/etc/resolv.conf` elsewhere, and the runtime binds over both.
const KEEP_IF_SYMLINK: &[&str] = &["etc/hosts", "etc/resolv.conf"];

/// Write the base skeleton into the root filesystem directory `root`.
pub fn write_base(root: &Path, opts: BaseOptions) -> Result<(), LayoutError> {
    let root = Root::open(root)?;
    root.ensure_owner_writable()?;
    for dir in BASE_DIRS {
        root.mkdir_all(dir)?;
    }
    for (target, link) in BASE_SYMLINKS {
        make_symlink(&root, target, link)?;
    }
    for (path, mode, contents) in BASE_FILES {
        make_file(&root, path, *mode, contents, opts.overwrite)?;
    }
    Ok(())
}

/// Create `link` -> `target` unless a non-symlink is there; re-point a symlink elsewhere.
fn make_symlink(root: &Root, target: &str, link: &str) -> Result<(), LayoutError> {
    match root.kind(link)? {
        None => root.symlink(target, link),
        Some(Kind::Symlink) => {
            if root.readlink(link)?.as_deref() == Some(target) {
                return Ok(());
            }
            root.remove(link)?;
            root.symlink(target, link)
        }
        Some(_) => Ok(()),
    }
}

/// Write one skeleton file: fix the mode of an existing regular file, and replace its contents
/// only when `overwrite` is set.
fn make_file(
    root: &Root,
    path: &str,
    mode: u32,
    contents: &str,
    overwrite: bool,
) -> Result<(), LayoutError> {
    match root.kind(path)? {
        Some(Kind::File) => {
            root.chmod(path, mode)?;
            if !overwrite {
                return Ok(());
            }
        }
        Some(Kind::Symlink) if !overwrite || KEEP_IF_SYMLINK.contains(&path) => return Ok(()),
        Some(Kind::Dir | Kind::Other) => {
            return Err(LayoutError::NotARegularFile {
                path: root.host_path(path),
            });
        }
        _ => {}
    }
    root.write(path, contents.as_bytes(), mode)
}
