//! A SIF's ext3 overlay partition applied over its extracted root file system, as overlayfs
//! would show the two merged: what `build --sandbox DIR IMAGE.sif` and `build NEW.sif
//! IMAGE.sif` (a `localimage` bootstrap) do after extracting the primary SquashFS, so that the
//! changes a user made with `exec --writable IMAGE.sif` are in the new image. Apptainer's
//! packer extracts only the primary partition and drops them (docs/compat.md).
//!
//! The partition is read without mounting anything, through libext2fs (`sifr_sys::ext2fs`,
//! read-only, at the partition's offset). Its `upper/` directory is walked and applied over
//! the destination with overlayfs's rules:
//! - a whiteout (a character device 0/0, or an aufs-style `.wh.NAME` file) removes `NAME`;
//! - an opaque directory (`trusted.overlay.opaque=y`, `user.overlay.opaque=y`, or one holding
//!   `.wh..wh..opq`) replaces the lower directory's contents; a directory over a lower
//!   non-directory replaces it too;
//! - every other entry replaces the lower one of the same name (a directory is merged);
//!   owners (when running as root, as the extraction does), modes, times and extended
//!   attributes come from the upper inode, overlay's own `*.overlay.*` attributes excepted;
//!   hard links inside the partition stay hard links.
//!
//! `work/` and the root's own attributes are ignored (the sandbox's root keeps the image's).
//! Every destination is reached from a directory fd one plain name at a time (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, `*at` calls with `AT_SYMLINK_NOFOLLOW`), so neither
//! a name in the partition nor a symlink in the lower image can lead a write outside the
//! destination (docs/architecture.md, "Untrusted roots"). A name that cannot be a directory
//! entry, a directory reached twice, or a read libext2fs fails is a damaged partition: an
//! error naming the image, and the caller removes the half-built tree.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use sifr_sys::ext2fs::{self, Fs, Ino, Inode, Time};

#[cfg(test)]
mod tests;

/// Deepest nesting applied; a deeper tree is treated as damaged rather than exhausting the
/// stack.
const MAX_DEPTH: usize = 512;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const ONE_NAME: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// What went wrong applying an overlay partition.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot read the SIF `{image}`")]
    Sif {
        image: PathBuf,
        #[source]
        source: sifr_sif::Error,
    },
    #[error("cannot open the overlay partition of `{image}`")]
    Open {
        image: PathBuf,
        #[source]
        source: ext2fs::OpenError,
    },
    #[error(
        "the overlay partition of `{image}` was not cleanly unmounted (its journal needs \
         recovery); run a container with `--writable` on it once, or `e2fsck` the partition"
    )]
    NeedsRecovery { image: PathBuf },
    #[error("the overlay partition of `{image}` is damaged at `{path}`")]
    Damaged {
        image: PathBuf,
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot apply `{path}` from the overlay partition of `{image}`")]
    Write {
        image: PathBuf,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the partition changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub directories: u64,
    pub files: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    /// Devices, fifos and sockets.
    pub special: u64,
    /// Names removed by whiteouts.
    pub removed: u64,
    /// Directories made opaque (their lower contents dropped).
    pub opaque: u64,
    /// Devices not created (not root).
    pub skipped_devices: u64,
    /// Owners the kernel refused (no mapping in a user namespace).
    pub skipped_owners: u64,
    /// Attributes the kernel refused (`EPERM`, `ENOTSUP`).
    pub skipped_xattrs: u64,
}

/// The byte offset of the SIF `image`'s ext3 overlay partition, if it has one.
pub fn ext3_partition(image: &Path) -> Result<Option<u64>, ApplyError> {
    let sif = sifr_sif::Image::open(image).map_err(|source| ApplyError::Sif {
        image: image.to_path_buf(),
        source,
    })?;
    Ok(sif.descriptors().find_map(|d| {
        let meta = d.partition()?;
        (meta.part == sifr_sif::PartType::Overlay && meta.fs == sifr_sif::FsType::Ext3)
            .then(|| d.offset())
    }))
}

/// Applies `upper/` of the ext3 file system at `offset` in `image` over the directory `dest`.
/// Owners and devices are applied when running as root.
pub fn apply(image: &Path, offset: u64, dest: &Path) -> Result<ApplyReport, ApplyError> {
    let open_err = |source| ApplyError::Open {
        image: image.to_path_buf(),
        source,
    };
    let fs = Fs::open(image, offset, false).map_err(open_err)?;
    if fs.needs_recovery() {
        return Err(ApplyError::NeedsRecovery {
            image: image.to_path_buf(),
        });
    }
    let root = rustix::fs::open(dest, DIR_FLAGS, Mode::empty()).map_err(|e| ApplyError::Write {
        image: image.to_path_buf(),
        path: "/".into(),
        source: e.into(),
    })?;
    let privileged = rustix::process::geteuid().is_root();
    let mut a = Applier {
        fs,
        image: image.to_path_buf(),
        privileged,
        report: ApplyReport::default(),
        links: HashMap::new(),
        seen_dirs: HashSet::new(),
    };
    let upper =
        a.fs.lookup(ext2fs::ROOT, b"upper")
            .map_err(|e| a.damaged("/upper", e))?;
    let Some(upper) = upper else {
        // A partition that was never given `upper/` has changed nothing.
        return Ok(a.report);
    };
    if !a.read_inode(upper, "/upper")?.is_dir() {
        return Err(a.damaged("/upper", "not a directory"));
    }
    a.tree(upper, root.as_fd(), "", 0)?;
    Ok(a.report)
}

/// Extended attributes as (name, value) pairs.
type XattrList = Vec<(Vec<u8>, Vec<u8>)>;

/// One directory entry of the partition.
struct Entry {
    name: Vec<u8>,
    ino: Ino,
}

struct Applier {
    fs: Fs,
    image: PathBuf,
    privileged: bool,
    report: ApplyReport,
    /// Hard-linked inodes already created: the directory and name of the first.
    links: HashMap<Ino, (OwnedFd, Vec<u8>)>,
    /// Directory inodes walked, to refuse a cycle in a damaged partition.
    seen_dirs: HashSet<Ino>,
}

/// Whether `name` is an attribute overlayfs keeps for itself (`trusted.overlay.opaque`,
/// `user.overlay.redirect`, ...), not one of the file's.
fn is_overlay_xattr(name: &[u8]) -> bool {
    name.iter()
        .position(|&b| b == b'.')
        .is_some_and(|dot| name[dot + 1..].starts_with(b"overlay."))
}

fn timespec(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        },
        Err(e) => Timespec {
            tv_sec: -(e.duration().as_secs() as i64),
            tv_nsec: 0,
        },
    }
}

fn times(inode: &Inode) -> Timestamps {
    Timestamps {
        last_access: timespec(inode.time(Time::Access)),
        last_modification: timespec(inode.time(Time::Modify)),
    }
}

fn join(dir: &str, name: &[u8]) -> String {
    format!("{dir}/{}", String::from_utf8_lossy(name))
}

/// Opens the directory `name` of `dir`, one plain name, following no symlink.
fn open_dir(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        dir,
        OsStr::from_bytes(name),
        DIR_FLAGS,
        Mode::empty(),
        ONE_NAME,
    )
}

/// The type of `name` in `dir` (not following a symlink), or `None` if it does not exist.
fn lower_type(dir: BorrowedFd<'_>, name: &[u8]) -> Result<Option<FileType>, Errno> {
    match rustix::fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `name` of `dir`, a directory with everything in it; nothing if it is missing.
/// Directories are opened one plain name at a time without following symlinks, so this never
/// leaves `dir`.
fn remove_at(dir: BorrowedFd<'_>, name: &[u8], depth: usize) -> Result<bool, Errno> {
    match rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::empty()) {
        Ok(()) => return Ok(true),
        Err(Errno::NOENT) => return Ok(false),
        Err(Errno::ISDIR | Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    if depth >= MAX_DEPTH {
        return Err(Errno::LOOP);
    }
    let sub = open_dir(dir, name)?;
    let _ = rustix::fs::fchmod(&sub, Mode::RWXU);
    empty_dir(sub.as_fd(), depth + 1)?;
    rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::REMOVEDIR)?;
    Ok(true)
}

/// Removes everything in the directory `dir`.
fn empty_dir(dir: BorrowedFd<'_>, depth: usize) -> Result<(), Errno> {
    let mut names = Vec::new();
    for ent in rustix::fs::Dir::read_from(dir)? {
        let n = ent?.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            names.push(n);
        }
    }
    for n in names {
        remove_at(dir, &n, depth)?;
    }
    Ok(())
}

impl Applier {
    fn damaged(
        &self,
        path: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ApplyError {
        ApplyError::Damaged {
            image: self.image.clone(),
            path: path.to_string(),
            source: source.into(),
        }
    }

    fn write_err(&self, path: &str) -> impl Fn(Errno) -> ApplyError + use<> {
        let (image, path) = (self.image.clone(), path.to_string());
        move |e| ApplyError::Write {
            image: image.clone(),
            path: path.clone(),
            source: e.into(),
        }
    }

    fn read_inode(&self, ino: Ino, path: &str) -> Result<Inode, ApplyError> {
        self.fs.read_inode(ino).map_err(|e| self.damaged(path, e))
    }

    /// The entries of directory `ino`, `.` and `..` left out; a name no directory can hold
    /// is damage.
    fn entries(&self, ino: Ino, path: &str) -> Result<Vec<Entry>, ApplyError> {
        let mut out = Vec::new();
        self.fs
            .dir_entries(ino, |name, ino, _| {
                if ino != 0 && name != b"." && name != b".." {
                    out.push(Entry {
                        name: name.to_vec(),
                        ino,
                    });
                }
                true
            })
            .map_err(|e| self.damaged(path, e))?;
        if let Some(bad) = out
            .iter()
            .find(|e| e.name.is_empty() || e.name.contains(&b'/') || e.name.contains(&0))
        {
            let what = format!(
                "invalid entry name {:?}",
                String::from_utf8_lossy(&bad.name)
            );
            return Err(self.damaged(path, what));
        }
        Ok(out)
    }

    /// The attributes of `ino` that are the file's own (overlay's left out).
    fn xattrs(&mut self, ino: Ino, path: &str) -> Result<XattrList, ApplyError> {
        let read = |fs: &mut Fs| -> ext2fs::Result<XattrList> {
            let x = fs.xattrs(ino)?;
            let mut out = Vec::new();
            for name in x.names()? {
                if is_overlay_xattr(&name) {
                    continue;
                }
                if let Some(v) = x.get(&name)? {
                    out.push((name, v));
                }
            }
            Ok(out)
        };
        read(&mut self.fs).map_err(|e| self.damaged(path, e))
    }

    /// Whether the upper directory `ino` hides the lower one's contents.
    fn is_opaque(&mut self, ino: Ino, entries: &[Entry], path: &str) -> Result<bool, ApplyError> {
        if entries.iter().any(|e| e.name == b".wh..wh..opq") {
            return Ok(true);
        }
        let get = |fs: &mut Fs, name: &[u8]| -> ext2fs::Result<Option<Vec<u8>>> {
            fs.xattrs(ino)?.get(name)
        };
        for name in [&b"trusted.overlay.opaque"[..], b"user.overlay.opaque"] {
            let v = get(&mut self.fs, name).map_err(|e| self.damaged(path, e))?;
            if v.as_deref() == Some(b"y") {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Applies the upper directory `ino` (at `path`, "" for the root) over `dest`.
    fn tree(
        &mut self,
        ino: Ino,
        dest: BorrowedFd<'_>,
        path: &str,
        depth: usize,
    ) -> Result<(), ApplyError> {
        if depth >= MAX_DEPTH || !self.seen_dirs.insert(ino) {
            return Err(self.damaged(path, "a directory cycle or a tree too deep"));
        }
        let entries = self.entries(ino, if path.is_empty() { "/" } else { path })?;
        // Whiteouts first: they name lower entries, never one of this directory's own.
        let mut rest = Vec::new();
        for e in entries {
            let p = join(path, &e.name);
            if let Some(target) = e.name.strip_prefix(b".wh.") {
                // `.wh..wh.*` are aufs's own bookkeeping (`.wh..wh..opq` is read above).
                if !target.starts_with(b".wh.") && !target.is_empty() {
                    self.remove(dest, target, &join(path, target))?;
                }
                continue;
            }
            let inode = self.read_inode(e.ino, &p)?;
            if inode.kind() == ext2fs::S_IFCHR && inode.device() == (0, 0) {
                self.remove(dest, &e.name, &p)?;
                continue;
            }
            rest.push((e, inode));
        }
        for (e, inode) in rest {
            let p = join(path, &e.name);
            match inode.kind() {
                ext2fs::S_IFDIR => self.dir(e.ino, &inode, dest, &e.name, &p, depth)?,
                ext2fs::S_IFREG => self.file(e.ino, &inode, dest, &e.name, &p)?,
                ext2fs::S_IFLNK => self.symlink(e.ino, &inode, dest, &e.name, &p)?,
                ext2fs::S_IFCHR | ext2fs::S_IFBLK | ext2fs::S_IFIFO | ext2fs::S_IFSOCK => {
                    self.special(e.ino, &inode, dest, &e.name, &p)?
                }
                other => return Err(self.damaged(&p, format!("unknown file type {other:o}"))),
            }
        }
        Ok(())
    }

    fn remove(&mut self, dest: BorrowedFd<'_>, name: &[u8], path: &str) -> Result<(), ApplyError> {
        if remove_at(dest, name, 0).map_err(self.write_err(path))? {
            self.report.removed += 1;
        }
        Ok(())
    }

    /// Makes room for a new non-directory `name`: whatever the lower image has there goes.
    fn clear(&mut self, dest: BorrowedFd<'_>, name: &[u8], path: &str) -> Result<(), ApplyError> {
        remove_at(dest, name, 0).map_err(self.write_err(path))?;
        Ok(())
    }

    fn dir(
        &mut self,
        ino: Ino,
        inode: &Inode,
        dest: BorrowedFd<'_>,
        name: &[u8],
        path: &str,
        depth: usize,
    ) -> Result<(), ApplyError> {
        let entries = self.entries(ino, path)?;
        let opaque = self.is_opaque(ino, &entries, path)?;
        let werr = self.write_err(path);
        let fd = match lower_type(dest, name).map_err(&werr)? {
            Some(FileType::Directory) => {
                let fd = open_dir(dest, name).map_err(&werr)?;
                if opaque {
                    // Owner-only access first, so that a read-only lower directory empties.
                    let _ = rustix::fs::fchmod(&fd, Mode::RWXU);
                    empty_dir(fd.as_fd(), depth + 1).map_err(&werr)?;
                    self.report.opaque += 1;
                }
                fd
            }
            lower => {
                if lower.is_some() {
                    remove_at(dest, name, 0).map_err(&werr)?;
                }
                rustix::fs::mkdirat(dest, OsStr::from_bytes(name), Mode::RWXU).map_err(&werr)?;
                self.report.directories += 1;
                open_dir(dest, name).map_err(&werr)?
            }
        };
        // Writable while its contents are applied; the upper mode is set after them.
        let _ = rustix::fs::fchmod(&fd, Mode::RWXU);
        self.tree(ino, fd.as_fd(), path, depth + 1)?;
        self.owner(dest, name, inode, path)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(u32::from(inode.i_mode & 0o7777)))
            .map_err(&werr)?;
        // The directory's attributes become the upper ones exactly (overlayfs shows only
        // those of the upper directory).
        let keep = self.xattrs(ino, path)?;
        let mut names = Vec::new();
        let list = rustix::fs::flistxattr(&fd, &mut names);
        if let Ok(n) = list {
            names.truncate(n);
        }
        for old in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            if !keep.iter().any(|(k, _)| k == old) {
                match rustix::fs::fremovexattr(&fd, OsStr::from_bytes(old)) {
                    Ok(()) | Err(Errno::NODATA) => {}
                    Err(Errno::PERM | Errno::NOTSUP) => self.report.skipped_xattrs += 1,
                    Err(e) => return Err(werr(e)),
                }
            }
        }
        self.set_xattrs(&keep, path, |n, v| {
            rustix::fs::fsetxattr(&fd, n, v, XattrFlags::empty())
        })?;
        rustix::fs::futimens(&fd, &times(inode)).map_err(&werr)
    }

    /// If `ino` is a hard link to an inode already created, links `name` to it.
    fn link_existing(
        &mut self,
        ino: Ino,
        inode: &Inode,
        dest: BorrowedFd<'_>,
        name: &[u8],
    ) -> bool {
        if inode.i_links_count < 2 {
            return false;
        }
        let Some((dir, first)) = self.links.get(&ino) else {
            return false;
        };
        // Where the kernel refuses (protected hard links in a user namespace), a copy.
        let ok = rustix::fs::linkat(
            dir,
            OsStr::from_bytes(first),
            dest,
            OsStr::from_bytes(name),
            AtFlags::empty(),
        )
        .is_ok();
        if ok {
            self.report.hard_links += 1;
        }
        ok
    }

    fn remember_link(&mut self, ino: Ino, inode: &Inode, dest: BorrowedFd<'_>, name: &[u8]) {
        if inode.i_links_count >= 2
            && !self.links.contains_key(&ino)
            && let Ok(dir) = rustix::io::fcntl_dupfd_cloexec(dest, 0)
        {
            self.links.insert(ino, (dir, name.to_vec()));
        }
    }

    fn file(
        &mut self,
        ino: Ino,
        inode: &Inode,
        dest: BorrowedFd<'_>,
        name: &[u8],
        path: &str,
    ) -> Result<(), ApplyError> {
        self.clear(dest, name, path)?;
        if self.link_existing(ino, inode, dest, name) {
            return Ok(());
        }
        let werr = self.write_err(path);
        let fd = rustix::fs::openat(
            dest,
            OsStr::from_bytes(name),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(&werr)?;
        let out = std::fs::File::from(fd);
        let size = inode.size();
        let mut buf = vec![0u8; 1 << 20];
        let mut src = self
            .fs
            .file(ino, false)
            .map_err(|e| self.damaged(path, e))?;
        let mut off = 0u64;
        let mut failed = None;
        while off < size {
            let n = match src.read_at(off, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            // All-zero blocks stay holes; `set_len` gives the file its size.
            if buf[..n].iter().any(|&b| b != 0) {
                out.write_all_at(&buf[..n], off)
                    .map_err(|e| ApplyError::Write {
                        image: self.image.clone(),
                        path: path.to_string(),
                        source: e,
                    })?;
            }
            off += n as u64;
        }
        drop(src);
        if let Some(e) = failed {
            return Err(self.damaged(path, e));
        }
        if off < size {
            return Err(self.damaged(path, format!("{off} of {size} bytes readable")));
        }
        out.set_len(size).map_err(|e| ApplyError::Write {
            image: self.image.clone(),
            path: path.to_string(),
            source: e,
        })?;
        self.owner(dest, name, inode, path)?;
        rustix::fs::fchmod(&out, Mode::from_raw_mode(u32::from(inode.i_mode & 0o7777)))
            .map_err(&werr)?;
        let x = self.xattrs(ino, path)?;
        self.set_xattrs(&x, path, |n, v| {
            rustix::fs::fsetxattr(&out, n, v, XattrFlags::empty())
        })?;
        rustix::fs::futimens(&out, &times(inode)).map_err(&werr)?;
        self.report.files += 1;
        self.remember_link(ino, inode, dest, name);
        Ok(())
    }

    fn symlink(
        &mut self,
        ino: Ino,
        inode: &Inode,
        dest: BorrowedFd<'_>,
        name: &[u8],
        path: &str,
    ) -> Result<(), ApplyError> {
        let target = self.fs.read_link(ino).map_err(|e| self.damaged(path, e))?;
        self.clear(dest, name, path)?;
        let werr = self.write_err(path);
        rustix::fs::symlinkat(OsStr::from_bytes(&target), dest, OsStr::from_bytes(name))
            .map_err(&werr)?;
        self.finish_at(ino, inode, dest, name, path, false)?;
        self.report.symlinks += 1;
        Ok(())
    }

    fn special(
        &mut self,
        ino: Ino,
        inode: &Inode,
        dest: BorrowedFd<'_>,
        name: &[u8],
        path: &str,
    ) -> Result<(), ApplyError> {
        let (ty, dev) = match inode.kind() {
            ext2fs::S_IFCHR => (FileType::CharacterDevice, Some(inode.device())),
            ext2fs::S_IFBLK => (FileType::BlockDevice, Some(inode.device())),
            ext2fs::S_IFIFO => (FileType::Fifo, None),
            _ => (FileType::Socket, None),
        };
        if dev.is_some() && !self.privileged {
            self.report.skipped_devices += 1;
            return Ok(());
        }
        self.clear(dest, name, path)?;
        if self.link_existing(ino, inode, dest, name) {
            return Ok(());
        }
        let dev = dev.map_or(0, |(ma, mi)| rustix::fs::makedev(ma, mi));
        rustix::fs::mknodat(
            dest,
            OsStr::from_bytes(name),
            ty,
            Mode::RUSR | Mode::WUSR,
            dev,
        )
        .map_err(self.write_err(path))?;
        self.finish_at(ino, inode, dest, name, path, true)?;
        self.report.special += 1;
        self.remember_link(ino, inode, dest, name);
        Ok(())
    }

    /// Owner, mode (not for symlinks), attributes and times of a node that cannot be opened.
    fn finish_at(
        &mut self,
        ino: Ino,
        inode: &Inode,
        dest: BorrowedFd<'_>,
        name: &[u8],
        path: &str,
        mode: bool,
    ) -> Result<(), ApplyError> {
        let werr = self.write_err(path);
        let n = OsStr::from_bytes(name);
        self.owner(dest, name, inode, path)?;
        if mode {
            // Just made by us and not a symlink; Linux refuses AT_SYMLINK_NOFOLLOW here.
            let m = Mode::from_raw_mode(u32::from(inode.i_mode & 0o7777));
            rustix::fs::chmodat(dest, n, m, AtFlags::empty()).map_err(&werr)?;
        }
        let x = self.xattrs(ino, path)?;
        if !x.is_empty() {
            // `lsetxattr` on the name under our own directory fd: the final name is not
            // followed and the directory is the one we hold.
            let mut via = PathBuf::from(format!("/proc/self/fd/{}", dest.as_raw_fd()));
            via.push(n);
            self.set_xattrs(&x, path, |k, v| {
                rustix::fs::lsetxattr(&via, k, v, XattrFlags::empty())
            })?;
        }
        rustix::fs::utimensat(dest, n, &times(inode), AtFlags::SYMLINK_NOFOLLOW).map_err(&werr)
    }

    fn owner(
        &mut self,
        dest: BorrowedFd<'_>,
        name: &[u8],
        inode: &Inode,
        path: &str,
    ) -> Result<(), ApplyError> {
        if !self.privileged {
            return Ok(());
        }
        let uid = rustix::fs::Uid::from_raw(inode.uid());
        let gid = rustix::fs::Gid::from_raw(inode.gid());
        let n = OsStr::from_bytes(name);
        match rustix::fs::chownat(dest, n, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW) {
            // No mapping for the owner in a user namespace: the builder keeps it, as the
            // extraction does.
            Err(Errno::INVAL) => {
                self.report.skipped_owners += 1;
                Ok(())
            }
            r => r.map_err(self.write_err(path)),
        }
    }

    fn set_xattrs(
        &mut self,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        path: &str,
        set: impl Fn(&OsStr, &[u8]) -> rustix::io::Result<()>,
    ) -> Result<(), ApplyError> {
        for (k, v) in xattrs {
            match set(OsStr::from_bytes(k), v) {
                Ok(()) => {}
                Err(Errno::PERM | Errno::NOTSUP) => self.report.skipped_xattrs += 1,
                Err(e) => return Err(self.write_err(path)(e)),
            }
        }
        Ok(())
    }
}
