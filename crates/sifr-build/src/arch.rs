//! Which architecture an image is for, from the ELF files inside its root filesystem.
//!
//! Order of evidence: `/bin/sh` (what `%post`/`run` execute first), resolved inside the root
//! so an absolute symlink such as `/bin/sh -> /usr/bin/dash` never reaches the host; then the
//! first executable ELF file in a sorted walk; then the host's architecture. Only reads ELF
//! headers (first 20 bytes); never follows a path out of the root.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sifr_sif::Arch;

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

/// Most symlinks followed while resolving one path (the kernel's limit).
const MAX_SYMLINKS: usize = 40;
/// Files examined in the fallback walk before giving up: keeps a huge tree without ELF files
/// (a data-only image) from costing a full scan.
const MAX_WALK_FILES: usize = 20_000;

/// Decide the architecture of the root filesystem at `root`.
pub fn detect(root: &Path) -> ArchGuess {
    if let Some(p) = resolve_in_root(root, Path::new("/bin/sh"))
        && let Some(arch) = elf_arch(&root.join(p.strip_prefix("/").unwrap_or(&p)))
    {
        return ArchGuess {
            arch,
            source: ArchSource::Shell(p),
        };
    }
    if let Some((p, arch)) = first_executable_elf(root) {
        return ArchGuess {
            arch,
            source: ArchSource::FirstElf(p),
        };
    }
    ArchGuess {
        arch: host_arch(),
        source: ArchSource::Host,
    }
}

/// Resolve `path` as if `root` were `/`: symlinks are followed with absolute targets taken
/// relative to `root`, and `..` stops at `root`. Returns the image path (starting with `/`).
pub fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut done: Vec<OsString> = Vec::new();
    let mut todo: Vec<OsString> = components_rev(path);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            done.pop();
            continue;
        }
        let mut here = root.to_path_buf();
        here.extend(&done);
        here.push(&name);
        let md = fs::symlink_metadata(&here).ok()?;
        if md.file_type().is_symlink() {
            links += 1;
            if links > MAX_SYMLINKS {
                return None;
            }
            let target = fs::read_link(&here).ok()?;
            if target.is_absolute() {
                done.clear();
            }
            todo.extend(components_rev(&target));
        } else {
            done.push(name);
        }
    }
    let mut out = PathBuf::from("/");
    out.extend(done);
    Some(out)
}

/// Normal and `..` components of `p`, reversed (so `pop` yields them in order).
fn components_rev(p: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    v.reverse();
    v
}

/// The architecture named by an ELF header, if `path` is a regular ELF file we know.
pub fn elf_arch(path: &Path) -> Option<Arch> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut h = [0u8; 20];
    f.read_exact(&mut h).ok()?;
    arch_from_header(&h)
}

/// Map `e_ident` class/data and `e_machine` to a Go architecture name.
pub fn arch_from_header(h: &[u8; 20]) -> Option<Arch> {
    if &h[..4] != b"\x7fELF" {
        return None;
    }
    let is64 = h[4] == 2;
    let le = h[5] == 1;
    let machine = if le {
        u16::from_le_bytes([h[18], h[19]])
    } else {
        u16::from_be_bytes([h[18], h[19]])
    };
    Some(match machine {
        3 => Arch::I386,
        62 => Arch::Amd64,
        40 => Arch::Arm,
        183 => Arch::Arm64,
        21 if le => Arch::Ppc64le,
        21 => Arch::Ppc64,
        8 => match (is64, le) {
            (false, false) => Arch::Mips,
            (false, true) => Arch::Mipsle,
            (true, false) => Arch::Mips64,
            (true, true) => Arch::Mips64le,
        },
        22 => Arch::S390x,
        243 if is64 => Arch::Riscv64,
        258 => Arch::Loong64,
        _ => return None,
    })
}

/// Sorted depth-first walk for an executable regular file with a known ELF header.
fn first_executable_elf(root: &Path) -> Option<(PathBuf, Arch)> {
    let mut stack = vec![PathBuf::new()];
    let mut seen = 0;
    while let Some(rel) = stack.pop() {
        let Ok(rd) = fs::read_dir(root.join(&rel)) else {
            continue;
        };
        let mut names: Vec<OsString> = rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut dirs = Vec::new();
        for name in names {
            let child = rel.join(&name);
            let Ok(md) = fs::symlink_metadata(root.join(&child)) else {
                continue;
            };
            if md.is_dir() {
                dirs.push(child);
            } else if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                seen += 1;
                if let Some(a) = elf_arch(&root.join(&child)) {
                    return Some((Path::new("/").join(child), a));
                }
                if seen >= MAX_WALK_FILES {
                    return None;
                }
            }
        }
        stack.extend(dirs.into_iter().rev());
    }
    None
}

/// The architecture this binary runs on.
pub fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "x86" => Arch::I386,
        "aarch64" => Arch::Arm64,
        "arm" => Arch::Arm,
        "powerpc64" if cfg!(target_endian = "little") => Arch::Ppc64le,
        "powerpc64" => Arch::Ppc64,
        "s390x" => Arch::S390x,
        "riscv64" => Arch::Riscv64,
        "loongarch64" => Arch::Loong64,
        "mips" if cfg!(target_endian = "little") => Arch::Mipsle,
        "mips" => Arch::Mips,
        "mips64" if cfg!(target_endian = "little") => Arch::Mips64le,
        "mips64" => Arch::Mips64,
        _ => Arch::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

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
