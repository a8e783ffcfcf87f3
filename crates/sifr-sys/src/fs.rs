//! Paths inside an untrusted root filesystem, resolved relative to a directory fd with
//! `openat2(RESOLVE_IN_ROOT)`: a symlink such as `/home -> /etc` in the image resolves to the
//! image's own `/etc`, never to the host's.
//!
//! Runs on either side of the namespace change; it only opens, creates and reads files.
//! Must not: join an image path onto a host path as a string and open the result.

use std::ffi::OsString;
use std::io::Read as _;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Component, Path, PathBuf};

pub use rustix::fs::OFlags;
use rustix::fs::{Mode, ResolveFlags};
pub use rustix::io::Errno;

use crate::error::{Error, Result, err};

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// What to create at the end of a path that is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    Dir,
    File,
}

/// Open a host directory as an `O_PATH` fd to use as a root for the functions below.
pub fn open_root(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("open directory", path.display()))
}

/// Open `path` (absolute or relative, interpreted inside `root`) with `flags` (`O_CLOEXEC` is
/// added), resolving it as if `root` were `/`: absolute symlink targets and `..` stay inside
/// `root`, and `/proc/self/fd`-style magic links are refused. The one resolver of paths inside
/// an untrusted root for the whole workspace; the errno is returned as is, so that callers can
/// tell a missing path (`ENOENT`), a file in the way (`ENOTDIR`) or a symlink loop (`ELOOP`).
///
/// Opens only: `flags` must not hold `O_CREAT` (create relative to a parent's fd instead).
/// No fallback for kernels without `openat2` (before 5.6): there the call fails with `ENOSYS`.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
) -> std::result::Result<OwnedFd, Errno> {
    debug_assert!(
        !flags.contains(OFlags::CREATE),
        "open_in_root never creates"
    );
    rustix::fs::openat2(
        root,
        relative(path),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )
}

/// Where `fd` is as seen from `root`: `/usr/bin/dash` for a file opened through
/// [`open_in_root`] as `/bin/sh`. Read from `/proc/self/fd`; `None` when either link cannot be
/// read or `fd` is not beneath `root`.
pub fn path_in_root(root: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Option<PathBuf> {
    let host = |fd: BorrowedFd<'_>| {
        let link = rustix::fs::readlinkat(
            rustix::fs::CWD,
            format!("/proc/self/fd/{}", fd.as_raw_fd()),
            Vec::new(),
        )
        .ok()?;
        Some(PathBuf::from(OsString::from_vec(link.into_bytes())))
    };
    let (root, fd) = (host(root)?, host(fd)?);
    let inner = fd.strip_prefix(&root).ok()?;
    Some(Path::new("/").join(inner))
}

/// Resolve `path` (absolute or relative, interpreted inside `root`) to an `O_PATH` fd.
/// Returns `Ok(None)` when it does not exist.
pub fn resolve_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<Option<OwnedFd>> {
    match open_in_root(root, path, OFlags::PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::new(
            "resolve in container",
            path.display().to_string(),
            e,
        )),
    }
}

/// Read a whole file inside `root`; `Ok(None)` when it does not exist.
pub fn read_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<Option<Vec<u8>>> {
    let fd = match open_in_root(root, path, OFlags::RDONLY) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => {
            return Err(Error::new(
                "open in container",
                path.display().to_string(),
                e,
            ));
        }
    };
    let mut buf = Vec::new();
    std::fs::File::from(fd)
        .read_to_end(&mut buf)
        .map_err(err("read in container", path.display()))?;
    Ok(Some(buf))
}

/// Make sure `path` exists inside `root`, creating missing directories (mode 0755) and, when
/// `leaf` is [`Leaf::File`], an empty file (mode 0644) at the end. Every component is resolved
/// with `RESOLVE_IN_ROOT`, so symlinks in the image cannot lead the creation outside it.
/// Returns an `O_PATH` fd of the final object.
pub fn create_in_root(root: BorrowedFd<'_>, path: &Path, leaf: Leaf) -> Result<OwnedFd> {
    let comps: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    let mut cur = rustix::io::dup(root).map_err(err("dup", "root fd"))?;
    if comps.is_empty() {
        return Ok(cur);
    }
    for (i, name) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let next = match open_in_root(root, &join_comps(&comps[..=i]), OFlags::PATH) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                let made = if last && leaf == Leaf::File {
                    rustix::fs::openat(
                        cur.as_fd(),
                        *name,
                        OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::WRONLY
                            | OFlags::CLOEXEC
                            | OFlags::NOFOLLOW,
                        Mode::from_raw_mode(0o644),
                    )
                    .map(drop)
                } else {
                    rustix::fs::mkdirat(cur.as_fd(), *name, Mode::from_raw_mode(0o755))
                };
                match made {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => {
                        return Err(Error::new(
                            "create in container",
                            join_comps(&comps[..=i]).display().to_string(),
                            e,
                        ));
                    }
                }
                open_in_root(root, &join_comps(&comps[..=i]), OFlags::PATH).map_err(err(
                    "resolve in container",
                    join_comps(&comps[..=i]).display(),
                ))?
            }
            Err(e) => {
                return Err(Error::new(
                    "resolve in container",
                    join_comps(&comps[..=i]).display().to_string(),
                    e,
                ));
            }
        };
        cur = next;
    }
    Ok(cur)
}

/// Open the directory `name` of `parent` for reading (not following a symlink there): an fd
/// that `flock` works on, unlike [`open_root`]'s `O_PATH` ones.
pub fn open_dir_at(parent: BorrowedFd<'_>, name: &str) -> Result<OwnedFd> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("open directory", name))
}

/// Whether the filesystem at `path` answers: `statfs` always reaches a FUSE server (cached
/// attributes do not), so a mount whose server died fails with `ENOTCONN` here.
pub fn fs_answers(path: &Path) -> std::io::Result<()> {
    rustix::fs::statfs(path)
        .map(|_| ())
        .map_err(std::io::Error::from)
}

/// [`fs_answers`] for an open file or mount (an `open_tree` clone included).
pub fn fs_answers_fd(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    rustix::fs::fstatfs(fd)
        .map(|_| ())
        .map_err(std::io::Error::from)
}

/// Whether the object behind an fd is a directory.
pub fn is_dir(fd: BorrowedFd<'_>) -> Result<bool> {
    let st = rustix::fs::fstat(fd).map_err(err("stat", "fd"))?;
    Ok(rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory)
}

fn join_comps(c: &[&std::ffi::OsStr]) -> PathBuf {
    c.iter().collect()
}

/// `/a/b` -> `a/b`; `/` -> `.`.
fn relative(path: &Path) -> &Path {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// Whether the caller may write to `path` (`access(path, W_OK)` with the real ids): a
/// read-only filesystem or missing permission is the error.
pub fn access_writable(path: &Path) -> Result<()> {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK).map_err(err("write to", path.display()))
}

/// `syncfs(fd)`: write back the cached changes of the filesystem `fd` is on (a FUSE mount's
/// dirty pages reach its server).
pub fn syncfs(fd: BorrowedFd<'_>) -> Result<()> {
    rustix::fs::syncfs(fd).map_err(err("sync", "filesystem"))
}
