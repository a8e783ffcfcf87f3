//! Which architecture an image is for, from the ELF files inside its root filesystem.
//!
//! Order of evidence: `/bin/sh` (what `%post`/`run` execute first), resolved inside the root
//! with `sifr_sys::fs::open_in_root` so an absolute symlink such as `/bin/sh -> /usr/bin/dash`
//! never reaches the host; then the first executable ELF file in a sorted walk; then the host's
//! architecture. Only reads ELF identifications (first 20 bytes); never follows a path out of
//! the root.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode};
use sifr_arch::ElfIdent;
use sifr_sif::Arch;
use sifr_sys::fs::{OFlags, open_in_root, open_root, path_in_root};

/// How the architecture was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchSource {
    /// From `/bin/sh` (the image path after resolving symlinks inside the root).
    Shell(PathBuf),
    /// From the first executable ELF file found (image path).
    FirstElf(PathBuf),
    /// No usable ELF file: the host's architecture.
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchGuess {
    pub arch: Arch,
    pub source: ArchSource,
}

/// Files examined in the fallback walk before giving up: keeps a huge tree without ELF files
/// (a data-only image) from costing a full scan.
const MAX_WALK_FILES: usize = 20_000;

/// Opening a candidate file: reading only, and never blocking on a FIFO an image planted.
const READ: OFlags = OFlags::RDONLY.union(OFlags::NONBLOCK);

/// Decide the architecture of the root filesystem at `root`.
pub fn detect(root: &Path) -> ArchGuess {
    let host = ArchGuess {
        arch: Arch::host(),
        source: ArchSource::Host,
    };
    let Ok(root) = open_root(root) else {
        return host;
    };
    let shell = Path::new("/bin/sh");
    if let Ok(fd) = open_in_root(root.as_fd(), shell, READ)
        && let Some(arch) = elf_arch(&fd)
    {
        let p = path_in_root(root.as_fd(), fd.as_fd()).unwrap_or_else(|| shell.to_path_buf());
        return ArchGuess {
            arch,
            source: ArchSource::Shell(p),
        };
    }
    if let Some((p, arch)) = first_executable_elf(root.as_fd()) {
        return ArchGuess {
            arch,
            source: ArchSource::FirstElf(p),
        };
    }
    host
}

/// Resolve `path` as if `root` were `/` (symlinks followed with absolute targets taken
/// relative to `root`, `..` stopping at `root`, by the kernel's `RESOLVE_IN_ROOT`). Returns the
/// image path (starting with `/`); `None` when it is missing or a symlink loop.
pub fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    let root = open_root(root).ok()?;
    let fd = open_in_root(root.as_fd(), path, OFlags::PATH).ok()?;
    path_in_root(root.as_fd(), fd.as_fd())
}

/// The architecture named by the ELF identification of the open file `fd`, if it is a
/// regular ELF file of an architecture we know.
fn elf_arch(fd: &OwnedFd) -> Option<Arch> {
    let f = File::from(fd.try_clone().ok()?);
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    match ElfIdent::read(f)?.arch() {
        Arch::Unknown => None,
        known => Some(known),
    }
}

/// Sorted depth-first walk for an executable regular file with a known ELF header. Every
/// directory is opened through the root fd and every file relative to its directory's fd, with
/// symlinks left alone.
fn first_executable_elf(root: BorrowedFd<'_>) -> Option<(PathBuf, Arch)> {
    let mut stack = vec![PathBuf::new()];
    let mut seen = 0;
    while let Some(rel) = stack.pop() {
        let Ok(dir) = open_in_root(root, &rel, OFlags::RDONLY | OFlags::DIRECTORY) else {
            continue;
        };
        let Ok(entries) = rustix::fs::Dir::read_from(&dir) else {
            continue;
        };
        let mut names: Vec<OsString> = entries
            .filter_map(|e| e.ok())
            .map(|e| std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut dirs = Vec::new();
        for name in names {
            let Ok(st) = rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => dirs.push(rel.join(&name)),
                FileType::RegularFile if st.st_mode & 0o111 != 0 => {
                    seen += 1;
                    let file = rustix::fs::openat(
                        &dir,
                        &name,
                        READ | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    );
                    if let Some(a) = file.ok().and_then(|f| elf_arch(&f)) {
                        return Some((Path::new("/").join(rel.join(&name)), a));
                    }
                    if seen >= MAX_WALK_FILES {
                        return None;
                    }
                }
                _ => {}
            }
        }
        stack.extend(dirs.into_iter().rev());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn elf(machine: u16, class64: bool) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = if class64 { 2 } else { 1 };
        h[5] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    fn exe(p: &Path, data: &[u8]) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn shell_symlink_is_resolved_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        exe(&root.join("usr/bin/dash"), &elf(183, true));
        fs::create_dir_all(root.join("bin")).unwrap();
        // Absolute target: must land in the image's /usr/bin/dash, not the host's.
        symlink("/usr/bin/dash", root.join("bin/sh")).unwrap();
        let g = detect(root);
        assert_eq!(g.arch, Arch::Arm64);
        assert_eq!(g.source, ArchSource::Shell(PathBuf::from("/usr/bin/dash")));
    }

    #[test]
    fn dotdot_cannot_escape_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        exe(&root.join("x/sh"), &elf(62, true));
        fs::create_dir_all(root.join("bin")).unwrap();
        symlink("../../../../x/sh", root.join("bin/sh")).unwrap();
        assert_eq!(
            resolve_in_root(&root, Path::new("/bin/sh")),
            Some(PathBuf::from("/x/sh"))
        );
        assert_eq!(detect(&root).arch, Arch::Amd64);
    }

    #[test]
    fn falls_back_to_first_elf_then_host() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("bin")).unwrap();
        symlink("/nowhere", root.join("bin/sh")).unwrap();
        exe(&root.join("opt/a_script"), b"#!/bin/sh\n");
        exe(&root.join("opt/b_tool"), &elf(3, false));
        let g = detect(root);
        assert_eq!(
            (g.arch, g.source),
            (Arch::I386, ArchSource::FirstElf("/opt/b_tool".into()))
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(detect(empty.path()).source, ArchSource::Host);
    }

    #[test]
    fn symlink_loops_give_up() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("bin")).unwrap();
        symlink("sh", t.path().join("bin/sh")).unwrap();
        assert_eq!(resolve_in_root(t.path(), Path::new("/bin/sh")), None);
    }
}
