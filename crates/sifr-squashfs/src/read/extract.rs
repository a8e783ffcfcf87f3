//! Extraction of a whole image into a directory.
//!
//! Everything is created relative to directory file descriptors (`mkdirat`, `openat` with
//! `O_NOFOLLOW | O_EXCL`, `symlinkat`, `mknodat`, `linkat`), entry names are checked to be plain
//! names, and no symlink is ever followed, so a hostile image cannot write outside the
//! destination. Hard links are recreated for inodes seen twice. Owners and device nodes are
//! applied only when asked (by default: when running as root). Directory permissions and times
//! are applied after their contents, so read-only directories still extract. This module must
//! not overwrite existing files: the destination must be empty or missing.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType as RFileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};

use super::Archive;
use super::dir::is_plain_name;
use super::error::{Error, Result};
use super::inode::{Inode, InodeKind};

/// What extraction applies besides names and contents.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Set uid/gid from the image (needs privilege). Default: when the effective uid is 0.
    pub owners: bool,
    /// Create block and character devices (needs privilege). Default: when the effective uid is
    /// 0. Skipped devices are counted in the report.
    pub devices: bool,
    /// Apply extended attributes. Those the kernel refuses with EPERM/ENOTSUP (e.g. `trusted.*`
    /// when unprivileged) are counted in the report, not fatal.
    pub xattrs: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        ExtractOptions {
            owners: root,
            devices: root,
            xattrs: true,
        }
    }
}

/// What an extraction created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractReport {
    pub directories: u64,
    pub files: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    /// Devices, fifos and sockets created.
    pub special: u64,
    /// Devices not created because `devices` was off.
    pub skipped_devices: u64,
    /// Xattrs the destination refused.
    pub skipped_xattrs: u64,
    /// Owners that have no mapping in the extracting process's user namespace.
    pub skipped_owners: u64,
    /// File bytes written (holes excluded).
    pub bytes: u64,
}

struct Ctx<'a> {
    archive: &'a Archive,
    opts: &'a ExtractOptions,
    root: OwnedFd,
    dest: PathBuf,
    /// Inode number -> path components (relative to dest) of its first extracted name.
    links: HashMap<u32, Vec<Vec<u8>>>,
    seen_dirs: HashSet<u32>,
    report: ExtractReport,
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> Error + 'p {
    move |source| Error::Extract {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn rx<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(rustix::io::Errno) -> Error + 'p {
    move |e| Error::Extract {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Archive {
    /// Extracts the whole image into `dest` (created if missing; must be empty otherwise).
    /// The root directory's permissions, owner (when `owners`) and time are applied to `dest`.
    pub fn extract_to(
        &self,
        dest: impl AsRef<Path>,
        opts: &ExtractOptions,
    ) -> Result<ExtractReport> {
        let dest = dest.as_ref();
        match std::fs::create_dir(dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create directory", dest)(e)),
        }
        let root_fd =
            rustix::fs::open(dest, DIR_FLAGS, Mode::empty()).map_err(rx("open directory", dest))?;
        let root = self.root()?;
        let mut ctx = Ctx {
            archive: self,
            opts,
            root: root_fd
                .try_clone()
                .map_err(io_err("open directory", dest))?,
            dest: dest.to_path_buf(),
            links: HashMap::new(),
            seen_dirs: HashSet::from([root.number]),
            report: ExtractReport::default(),
        };
        ctx.tree(root_fd, &root)?;
        Ok(ctx.report)
    }
}

impl Ctx<'_> {
    fn path_of(&self, comps: &[Vec<u8>]) -> PathBuf {
        let mut p = self.dest.clone();
        for c in comps {
            p.push(OsStr::from_bytes(c));
        }
        p
    }

    /// Extracts the tree below `root` with an explicit stack (no recursion, so deep images
    /// cannot overflow the stack). Only the innermost directory keeps an open fd; a parent is
    /// reopened through `..` of its child when the child is done, so deep trees do not exhaust
    /// the fd limit either.
    fn tree(&mut self, root_fd: OwnedFd, root: &Inode) -> Result<()> {
        struct Frame {
            fd: Option<OwnedFd>,
            inode: Inode,
            entries: std::vec::IntoIter<super::DirEntry>,
        }
        let mut comps: Vec<Vec<u8>> = Vec::new();
        let entries = self.archive.read_dir(root)?.into_iter();
        let mut stack = vec![Frame {
            fd: Some(root_fd),
            inode: root.clone(),
            entries,
        }];
        loop {
            let depth = stack.len();
            let Some(top) = stack.last_mut() else { break };
            let Some(e) = top.entries.next() else {
                let done = stack.pop().expect("stack is not empty");
                let fd = done.fd.expect("innermost directory holds its fd");
                let path = self.path_of(&comps);
                self.finish_dir(&fd, &done.inode, &path)?;
                if let Some(parent) = stack.last_mut() {
                    comps.pop();
                    self.report.directories += 1;
                    let up = rustix::fs::openat(&fd, "..", DIR_FLAGS, Mode::empty())
                        .map_err(rx("open directory", &path))?;
                    parent.fd = Some(up);
                }
                continue;
            };
            let parent = top.fd.as_ref().expect("innermost directory holds its fd");
            if !is_plain_name(&e.name) {
                return Err(Error::UnsafeName {
                    dir: self.path_of(&comps).display().to_string(),
                    name: String::from_utf8_lossy(&e.name).into_owned(),
                });
            }
            let inode = self.archive.inode_by_ref(e.inode_ref)?;
            comps.push(e.name.clone());
            let path = self.path_of(&comps);
            let name = OsStr::from_bytes(&e.name);
            if !inode.is_dir() {
                let r = self.entry(parent, name, &inode, &comps, &path);
                comps.pop();
                r?;
                continue;
            }
            self.archive
                .check_new_dir(&mut self.seen_dirs, &inode, &path, depth)?;
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                .map_err(rx("create directory", &path))?;
            let fd = rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())
                .map_err(rx("open directory", &path))?;
            top.fd = None;
            let entries = self.archive.read_dir(&inode)?.into_iter();
            stack.push(Frame {
                fd: Some(fd),
                inode,
                entries,
            });
        }
        Ok(())
    }

    fn entry(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        inode: &Inode,
        comps: &[Vec<u8>],
        path: &Path,
    ) -> Result<()> {
        if inode.nlink > 1 {
            if let Some(first) = self.links.get(&inode.number) {
                let (src_dir, src_name) = self.open_parent(first)?;
                rustix::fs::linkat(
                    &src_dir,
                    OsStr::from_bytes(&src_name),
                    parent,
                    name,
                    AtFlags::empty(),
                )
                .map_err(rx("hard link", path))?;
                self.report.hard_links += 1;
                return Ok(());
            }
            self.links.insert(inode.number, comps.to_vec());
        }
        let perm = Mode::from_raw_mode(u32::from(inode.permissions & 0o7777));
        match &inode.kind {
            InodeKind::File(_) => {
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(parent, name, flags, Mode::from_raw_mode(0o600))
                    .map_err(rx("create file", path))?;
                let file = File::from(fd);
                self.write_file(&file, inode, path)?;
                self.owner(parent, name, inode, path)?;
                rustix::fs::fchmod(&file, perm).map_err(rx("set mode of", path))?;
                self.set_xattrs(file.as_fd(), inode, path)?;
                rustix::fs::futimens(&file, &times(inode)).map_err(rx("set time of", path))?;
                self.report.files += 1;
            }
            InodeKind::Symlink(target) => {
                rustix::fs::symlinkat(OsStr::from_bytes(target), parent, name)
                    .map_err(rx("create symlink", path))?;
                self.owner(parent, name, inode, path)?;
                self.set_xattrs_at(parent, name, inode, path)?;
                rustix::fs::utimensat(parent, name, &times(inode), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(rx("set time of", path))?;
                self.report.symlinks += 1;
            }
            InodeKind::BlockDevice(_)
            | InodeKind::CharDevice(_)
            | InodeKind::Fifo
            | InodeKind::Socket => {
                let (ty, dev) = match inode.kind {
                    InodeKind::BlockDevice(_) => (RFileType::BlockDevice, inode.device()),
                    InodeKind::CharDevice(_) => (RFileType::CharacterDevice, inode.device()),
                    InodeKind::Fifo => (RFileType::Fifo, None),
                    _ => (RFileType::Socket, None),
                };
                if dev.is_some() && !self.opts.devices {
                    self.links.remove(&inode.number);
                    self.report.skipped_devices += 1;
                    return Ok(());
                }
                let dev = dev.map(|(ma, mi)| rustix::fs::makedev(ma, mi)).unwrap_or(0);
                rustix::fs::mknodat(parent, name, ty, Mode::from_raw_mode(0o600), dev)
                    .map_err(rx("create node", path))?;
                self.owner(parent, name, inode, path)?;
                // The node was just created by us and is not a symlink, so following is moot;
                // Linux refuses AT_SYMLINK_NOFOLLOW for fchmodat.
                rustix::fs::chmodat(parent, name, perm, AtFlags::empty())
                    .map_err(rx("set mode of", path))?;
                self.set_xattrs_at(parent, name, inode, path)?;
                rustix::fs::utimensat(parent, name, &times(inode), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(rx("set time of", path))?;
                self.report.special += 1;
            }
            // Directories are created by `tree`.
            InodeKind::Directory(_) => {}
        }
        Ok(())
    }

    /// Opens the directory holding `comps` (components of a path we created), without
    /// following symlinks, and returns it with the final name.
    fn open_parent(&self, comps: &[Vec<u8>]) -> Result<(OwnedFd, Vec<u8>)> {
        let path = self.path_of(comps);
        let (last, dirs) = comps
            .split_last()
            .ok_or_else(|| io_err("hard link", &path)(io::ErrorKind::NotFound.into()))?;
        let mut fd = self
            .root
            .try_clone()
            .map_err(io_err("open directory", &path))?;
        for c in dirs {
            fd = rustix::fs::openat(&fd, OsStr::from_bytes(c), DIR_FLAGS, Mode::empty())
                .map_err(rx("open directory", &path))?;
        }
        Ok((fd, last.clone()))
    }

    fn write_file(&mut self, file: &File, inode: &Inode, path: &Path) -> Result<()> {
        let size = inode.size();
        let bs = self.archive.sb.block_size as usize;
        let mut buf = vec![0u8; bs];
        let mut off = 0u64;
        while off < size {
            let n = self.archive.read_at(inode, off, &mut buf)?;
            if n == 0 {
                break;
            }
            // Leave holes where the data is all zeros; `set_len` below gives the file its size.
            if buf[..n].iter().any(|&b| b != 0) {
                file.write_all_at(&buf[..n], off)
                    .map_err(io_err("write", path))?;
                self.report.bytes += n as u64;
            }
            off += n as u64;
        }
        file.set_len(size).map_err(io_err("set size of", path))
    }

    fn owner(&mut self, dir: &OwnedFd, name: &OsStr, inode: &Inode, path: &Path) -> Result<()> {
        if !self.opts.owners {
            return Ok(());
        }
        let uid = rustix::fs::Uid::from_raw(inode.uid);
        let gid = rustix::fs::Gid::from_raw(inode.gid);
        match rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW) {
            // In a user namespace an owner with no mapping cannot be set; the extracting user
            // keeps it (counted, like skipped xattrs).
            Err(rustix::io::Errno::INVAL) => {
                self.report.skipped_owners += 1;
                Ok(())
            }
            r => r.map_err(rx("set owner of", path)),
        }
    }

    fn set_xattrs(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        inode: &Inode,
        path: &Path,
    ) -> Result<()> {
        if !self.opts.xattrs {
            return Ok(());
        }
        self.apply_xattrs(inode, path, |name, value| {
            rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty())
        })
    }

    /// Xattrs of a symlink or special file, which cannot be opened: `lsetxattr` on the name
    /// reached through `/proc/self/fd/<parent>`, so the parent is still the fd we hold and the
    /// final component is not followed.
    fn set_xattrs_at(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        inode: &Inode,
        path: &Path,
    ) -> Result<()> {
        if !self.opts.xattrs || inode.xattr.is_none() {
            return Ok(());
        }
        let mut via = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd()));
        via.push(name);
        self.apply_xattrs(inode, path, |name, value| {
            rustix::fs::lsetxattr(&via, name, value, XattrFlags::empty())
        })
    }

    /// Sets each of `inode`'s xattrs with `set`; one the kernel or filesystem refuses
    /// (`EPERM`, `ENOTSUP`) is counted as skipped, any other failure is an error.
    fn apply_xattrs(
        &mut self,
        inode: &Inode,
        path: &Path,
        set: impl Fn(&OsStr, &[u8]) -> rustix::io::Result<()>,
    ) -> Result<()> {
        for x in self.archive.xattrs(inode)? {
            match set(OsStr::from_bytes(&x.name), &x.value) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::PERM || e == rustix::io::Errno::NOTSUP => {
                    self.report.skipped_xattrs += 1;
                }
                Err(e) => return Err(rx("set xattr of", path)(e)),
            }
        }
        Ok(())
    }

    /// Applies a directory's owner, mode, xattrs and time once its contents exist.
    fn finish_dir(&mut self, fd: &OwnedFd, inode: &Inode, path: &Path) -> Result<()> {
        if self.opts.owners {
            let uid = rustix::fs::Uid::from_raw(inode.uid);
            let gid = rustix::fs::Gid::from_raw(inode.gid);
            match rustix::fs::fchown(fd, Some(uid), Some(gid)) {
                Err(rustix::io::Errno::INVAL) => self.report.skipped_owners += 1,
                r => r.map_err(rx("set owner of", path))?,
            }
        }
        rustix::fs::fchmod(
            fd,
            Mode::from_raw_mode(u32::from(inode.permissions & 0o7777)),
        )
        .map_err(rx("set mode of", path))?;
        self.set_xattrs(fd.as_fd(), inode, path)?;
        rustix::fs::futimens(fd, &times(inode)).map_err(rx("set time of", path))
    }
}

fn times(inode: &Inode) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::from(inode.mtime),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}
