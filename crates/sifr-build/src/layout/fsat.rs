//! Confined file operations inside a root directory that may be hostile.
//!
//! Every path handed to [`Root`] is relative to the root directory and is walked one component
//! at a time with `openat(O_NOFOLLOW | O_DIRECTORY)` from a directory descriptor, so a symlink
//! anywhere in the walk (for example an image whose `/.singularity.d` or `/etc` points at the
//! host) is refused with [`LayoutError::Symlink`] instead of being followed. Leaves are opened
//! with `O_NOFOLLOW` too; callers decide what an existing symlink leaf means.
//!
//! Why this walk and not `sifr_sys::fs::open_in_root`: that one follows symlinks inside the
//! root (chroot semantics), right for `%files` destinations and `/bin/sh`. The metadata written
//! here must not land wherever an image's symlink points, even inside the image, and the error
//! must name the component that is a symlink, so each component is opened on its own.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::LayoutError;

/// What is found at a path, without following a symlink leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// What a walk to a directory does with a missing component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Stop: the directory is reported missing.
    Existing,
    /// Create it with mode 0755 and go on.
    Creating,
}

/// An open root directory; all operations stay beneath it.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

fn io_err(path: &Path, e: Errno) -> LayoutError {
    LayoutError::Io {
        path: path.to_owned(),
        source: e.into(),
    }
}

/// Split `rel` into its parent components and leaf name. `rel` uses `/` separators, must be
/// relative and must not contain `..` (these are our own constant paths, or app names that the
/// caller has checked).
fn split(rel: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let leaf = parts.pop().unwrap_or(".");
    (parts, leaf)
}

impl Root {
    /// Open `path` (which the caller trusts) as the root directory.
    pub(crate) fn open(path: &Path) -> Result<Root, LayoutError> {
        let fd = rustix::fs::openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(path, e))?;
        Ok(Root {
            fd,
            path: path.to_owned(),
        })
    }

    /// The host path of `rel`, for error messages.
    pub(crate) fn host_path(&self, rel: &str) -> PathBuf {
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    /// Add owner write permission to the root directory if it lacks it (as Apptainer does).
    pub(crate) fn ensure_owner_writable(&self) -> Result<(), LayoutError> {
        let st = rustix::fs::fstat(&self.fd).map_err(|e| io_err(&self.path, e))?;
        let mode = Mode::from_raw_mode(st.st_mode);
        if !mode.contains(Mode::WUSR) {
            rustix::fs::fchmod(&self.fd, mode | Mode::WUSR).map_err(|e| io_err(&self.path, e))?;
        }
        Ok(())
    }

    /// Open directory `rel` (the root for `""`), creating missing components with mode 0755
    /// under [`Walk::Creating`]. Returns `Ok(None)` when it is missing under [`Walk::Existing`].
    pub(crate) fn dir(&self, rel: &str, walk: Walk) -> Result<Option<OwnedFd>, LayoutError> {
        let mut cur = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(&self.path, e))?;
        let mut walked = String::new();
        for comp in rel.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(comp);
            match self.open_child_dir(&cur, comp, &walked, walk)? {
                Some(fd) => cur = fd,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    fn open_child_dir(
        &self,
        parent: &OwnedFd,
        name: &str,
        walked: &str,
        walk: Walk,
    ) -> Result<Option<OwnedFd>, LayoutError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) if walk == Walk::Creating => {
                let made = match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) => true,
                    Err(Errno::EXIST) => false,
                    Err(e) => return Err(io_err(&self.host_path(walked), e)),
                };
                let fd = rustix::fs::openat(parent, name, flags, Mode::empty())
                    .map_err(|e| self.classify(parent, name, walked, e))?;
                if made {
                    // 0755 whatever the process umask (Apptainer builds under umask 0002).
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))
                        .map_err(|e| io_err(&self.host_path(walked), e))?;
                }
                Ok(Some(fd))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.classify(parent, name, walked, e)),
        }
    }

    /// Turn a failed directory open into a precise error: symlink, not a directory, or I/O.
    fn classify(&self, parent: &OwnedFd, name: &str, walked: &str, e: Errno) -> LayoutError {
        let path = self.host_path(walked);
        match kind_at(parent, name) {
            Ok(Some(Kind::Symlink)) => LayoutError::Symlink { path },
            Ok(Some(Kind::Dir)) | Ok(None) | Err(_) => io_err(&path, e),
            Ok(Some(_)) => LayoutError::NotADirectory { path },
        }
    }

    /// The parent directory of `rel` and the leaf name.
    fn parent<'a>(
        &self,
        rel: &'a str,
        walk: Walk,
    ) -> Result<Option<(OwnedFd, &'a str)>, LayoutError> {
        let (parents, leaf) = split(rel);
        Ok(self.dir(&parents.join("/"), walk)?.map(|fd| (fd, leaf)))
    }

    /// What is at `rel` (a symlink leaf is reported as such), or `None` when missing.
    pub(crate) fn kind(&self, rel: &str) -> Result<Option<Kind>, LayoutError> {
        let Some((dir, leaf)) = self.parent(rel, Walk::Existing)? else {
            return Ok(None);
        };
        kind_at(&dir, leaf).map_err(|e| io_err(&self.host_path(rel), e))
    }

    /// The parent directory and leaf name of `rel` when what is there is of `kind`.
    fn leaf_of_kind<'a>(
        &self,
        rel: &'a str,
        kind: Kind,
    ) -> Result<Option<(OwnedFd, &'a str)>, LayoutError> {
        if self.kind(rel)? != Some(kind) {
            return Ok(None);
        }
        self.parent(rel, Walk::Existing)
    }

    /// Create directory `rel` and its parents, leaving an existing leaf of any kind alone
    /// (an image may have `var/tmp` as a symlink to `/tmp`; that is kept, not followed).
    pub(crate) fn mkdir_all(&self, rel: &str) -> Result<(), LayoutError> {
        let (dir, leaf) = self
            .parent(rel, Walk::Creating)?
            .expect("parent() under Walk::Creating returns a directory");
        if kind_at(&dir, leaf)
            .map_err(|e| io_err(&self.host_path(rel), e))?
            .is_some()
        {
            return Ok(());
        }
        match rustix::fs::mkdirat(&dir, leaf, Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Ok(()),
            Err(e) => return Err(io_err(&self.host_path(rel), e)),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&dir, leaf, flags, Mode::empty())
            .map_err(|e| io_err(&self.host_path(rel), e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))
            .map_err(|e| io_err(&self.host_path(rel), e))
    }

    /// Write `data` to file `rel` with exactly `mode`, replacing its contents. A symlink leaf
    /// is removed first (never written through). Parents are created.
    pub(crate) fn write(&self, rel: &str, data: &[u8], mode: u32) -> Result<(), LayoutError> {
        let (dir, leaf) = self
            .parent(rel, Walk::Creating)?
            .expect("parent() under Walk::Creating returns a directory");
        let path = self.host_path(rel);
        match kind_at(&dir, leaf).map_err(|e| io_err(&path, e))? {
            Some(Kind::Symlink) => {
                rustix::fs::unlinkat(&dir, leaf, AtFlags::empty()).map_err(|e| io_err(&path, e))?
            }
            Some(Kind::Dir | Kind::Other) => return Err(LayoutError::NotARegularFile { path }),
            Some(Kind::File) | None => {}
        }
        let fd = rustix::fs::openat(
            &dir,
            leaf,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| io_err(&path, e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| io_err(&path, e))?;
        let mut f = File::from(fd);
        f.write_all(data)
            .map_err(|source| LayoutError::Io { path, source })
    }

    /// Append `data` to the existing regular file `rel`.
    pub(crate) fn append(&self, rel: &str, data: &[u8]) -> Result<(), LayoutError> {
        let (dir, leaf) = self
            .parent(rel, Walk::Creating)?
            .expect("parent() under Walk::Creating returns a directory");
        let path = self.host_path(rel);
        let fd = rustix::fs::openat(
            &dir,
            leaf,
            OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP => LayoutError::Symlink { path: path.clone() },
            e => io_err(&path, e),
        })?;
        let mut f = File::from(fd);
        f.write_all(data)
            .map_err(|source| LayoutError::Io { path, source })
    }

    /// Set the mode of regular file `rel` (not through a symlink).
    pub(crate) fn chmod(&self, rel: &str, mode: u32) -> Result<(), LayoutError> {
        let Some((dir, leaf)) = self.parent(rel, Walk::Existing)? else {
            return Ok(());
        };
        let path = self.host_path(rel);
        let fd = open_leaf(&dir, leaf).map_err(|e| io_err(&path, e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| io_err(&path, e))
    }

    /// The contents of regular file `rel`; `None` when it is missing or is not a regular file
    /// (a symlink leaf counts as not a regular file).
    pub(crate) fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, LayoutError> {
        let Some((dir, leaf)) = self.leaf_of_kind(rel, Kind::File)? else {
            return Ok(None);
        };
        let path = self.host_path(rel);
        let fd = open_leaf(&dir, leaf).map_err(|e| io_err(&path, e))?;
        let mut buf = Vec::new();
        File::from(fd)
            .read_to_end(&mut buf)
            .map_err(|source| LayoutError::Io { path, source })?;
        Ok(Some(buf))
    }

    /// The target of symlink `rel`, if it is one.
    pub(crate) fn readlink(&self, rel: &str) -> Result<Option<String>, LayoutError> {
        let Some((dir, leaf)) = self.leaf_of_kind(rel, Kind::Symlink)? else {
            return Ok(None);
        };
        let t = rustix::fs::readlinkat(&dir, leaf, Vec::new())
            .map_err(|e| io_err(&self.host_path(rel), e))?;
        Ok(Some(t.to_string_lossy().into_owned()))
    }

    /// Create symlink `rel` pointing at `target`.
    pub(crate) fn symlink(&self, target: &str, rel: &str) -> Result<(), LayoutError> {
        let (dir, leaf) = self
            .parent(rel, Walk::Creating)?
            .expect("parent() under Walk::Creating returns a directory");
        rustix::fs::symlinkat(target, &dir, leaf).map_err(|e| io_err(&self.host_path(rel), e))
    }

    /// Remove the file or symlink `rel`.
    pub(crate) fn remove(&self, rel: &str) -> Result<(), LayoutError> {
        let Some((dir, leaf)) = self.parent(rel, Walk::Existing)? else {
            return Ok(());
        };
        match rustix::fs::unlinkat(&dir, leaf, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err(&self.host_path(rel), e)),
        }
    }

    /// Rename `from` to `to`, both inside the root (parents of `to` are created).
    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<(), LayoutError> {
        let (fdir, fleaf) = self
            .parent(from, Walk::Existing)?
            .ok_or_else(|| LayoutError::Io {
                path: self.host_path(from),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
        let (tdir, tleaf) = self
            .parent(to, Walk::Creating)?
            .expect("parent() under Walk::Creating returns a directory");
        rustix::fs::renameat(&fdir, fleaf, &tdir, tleaf)
            .map_err(|e| io_err(&self.host_path(from), e))
    }

    /// The names in directory `rel`, sorted, without `.` and `..`; empty when it is missing.
    pub(crate) fn list(&self, rel: &str) -> Result<Vec<String>, LayoutError> {
        let Some(fd) = self.dir(rel, Walk::Existing)? else {
            return Ok(Vec::new());
        };
        let path = self.host_path(rel);
        let dir = rustix::fs::Dir::read_from(fd.as_fd()).map_err(|e| io_err(&path, e))?;
        let mut out = Vec::new();
        for ent in dir {
            let ent = ent.map_err(|e| io_err(&path, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Open `name` in `dir` for reading, never through a symlink.
fn open_leaf(dir: &OwnedFd, name: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// What `name` in `dir` is, without following a symlink.
fn kind_at(dir: &OwnedFd, name: &str) -> Result<Option<Kind>, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        })),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}
