//! The read-only FUSE filesystem over a [`read::Archive`](crate::read::Archive).
//!
//! Runs only in the server process (the forked child of [`mount`](super::mount()), or a
//! process calling [`serve_blocking`](super::serve_blocking)), on fuser's worker threads; every
//! method takes `&self` and shares the archive's caches. It must not print, write anywhere or
//! touch namespaces.
//!
//! Inode numbers are the image's own, so hard links keep one number. FUSE requires the root to
//! be 1 while `mksquashfs` gives it the highest number, so the two numbers swap places
//! ([`to_fuse`]/[`from_fuse`]). The kernel only ever asks about numbers it learnt from `lookup`
//! or `readdirplus`, so a map number -> inode reference filled by those two replies resolves
//! every request even without an export table; with one, a miss falls back to it.
//!
//! Caching: the image is immutable, so entries, attributes and negative lookups get a long
//! TTL, opens keep the page cache (`FOPEN_KEEP_CACHE`, `FOPEN_CACHE_DIR`, or no open round trip
//! at all where the kernel supports `FUSE_NO_OPEN_SUPPORT`), and symlinks are cached.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType as FuseType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};

use crate::read::{Archive, DirEntry, FileType, Inode, InodeKind};

/// Largest read answered in one reply; the kernel never asks for more than `max_pages`
/// (256 pages by default), this only bounds a hostile request.
const MAX_READ: usize = 16 << 20;
/// Directory listings kept between `readdir` calls of one walk (a big directory is listed in
/// several 4-KiB-ish replies; re-decoding it for each would be quadratic).
const DIR_CACHE: usize = 128;

/// What the filesystem shows; built from [`Options`](super::Options) in the server process.
#[derive(Debug, Clone)]
pub(crate) struct Presentation {
    /// Present every object as owned by this uid/gid instead of the image's owners.
    pub(crate) owner: Option<(u32, u32)>,
    /// Entry, attribute and negative-entry TTL.
    pub(crate) ttl: Duration,
}

/// The filesystem served to the kernel.
pub(crate) struct SquashFs {
    archive: Arc<Archive>,
    show: Presentation,
    /// The image's root inode number (FUSE calls it 1).
    root: u32,
    /// Inode number -> inode reference, for every inode the kernel has been told about.
    refs: RwLock<HashMap<u32, u64>>,
    /// Recently listed directories, by inode number.
    dirs: Mutex<HashMap<u32, Arc<Vec<DirEntry>>>>,
    /// The kernel accepts ENOSYS to `open`/`opendir` as "never send them again" and then
    /// keeps caches as if `FOPEN_KEEP_CACHE`/`FOPEN_CACHE_DIR` had been answered: two round
    /// trips (open, release) fewer per file. Set in `init` when the kernel offers it.
    no_open: bool,
    no_opendir: bool,
}

/// FUSE number of image inode `n`: the root and inode 1 swap places.
pub(crate) fn to_fuse(root: u32, n: u32) -> u64 {
    if n == root {
        1
    } else if n == 1 {
        u64::from(root)
    } else {
        u64::from(n)
    }
}

/// Image inode number of FUSE number `ino` (the inverse of [`to_fuse`]).
pub(crate) fn from_fuse(root: u32, ino: u64) -> Option<u32> {
    let n = u32::try_from(ino).ok()?;
    Some(if n == 1 {
        root
    } else if n == root {
        1
    } else {
        n
    })
}

fn fuse_type(t: FileType) -> FuseType {
    match t {
        FileType::Directory => FuseType::Directory,
        FileType::File => FuseType::RegularFile,
        FileType::Symlink => FuseType::Symlink,
        FileType::BlockDevice => FuseType::BlockDevice,
        FileType::CharDevice => FuseType::CharDevice,
        FileType::Fifo => FuseType::NamedPipe,
        FileType::Socket => FuseType::Socket,
    }
}

/// Every image error is a corrupt or unreadable image from the kernel's point of view.
fn eio<E>(_: E) -> Errno {
    Errno::EIO
}

impl SquashFs {
    pub(crate) fn new(archive: Arc<Archive>, show: Presentation) -> crate::read::Result<Self> {
        let root = archive.root()?;
        let mut refs = HashMap::new();
        refs.insert(root.number, root.inode_ref);
        Ok(SquashFs {
            root: root.number,
            archive,
            show,
            refs: RwLock::new(refs),
            dirs: Mutex::new(HashMap::new()),
            no_open: false,
            no_opendir: false,
        })
    }

    fn remember(&self, number: u32, inode_ref: u64) {
        let known = self
            .refs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&number)
            .copied();
        if known != Some(inode_ref) {
            self.refs
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(number, inode_ref);
        }
    }

    /// The inode behind FUSE number `ino`.
    fn inode(&self, ino: INodeNo) -> Result<Inode, Errno> {
        let n = from_fuse(self.root, ino.0).ok_or(Errno::ENOENT)?;
        let known = self
            .refs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&n)
            .copied();
        match known {
            Some(r) => self.archive.inode_by_ref(r).map_err(eio),
            // Not learnt from a reply (only possible after a server restart or with a kernel
            // that guesses): the export table, when the image has one.
            None => {
                let inode = self.archive.inode(n).map_err(|_| Errno::ENOENT)?;
                self.remember(n, inode.inode_ref);
                Ok(inode)
            }
        }
    }

    fn attr(&self, inode: &Inode) -> FileAttr {
        let (uid, gid) = self.show.owner.unwrap_or((inode.uid, inode.gid));
        let mtime = UNIX_EPOCH + Duration::from_secs(u64::from(inode.mtime));
        let size = inode.size();
        let rdev = inode.device().map_or(0, |(major, minor)| {
            (major << 8) | (minor & 0xff) | ((minor & !0xff) << 12)
        });
        FileAttr {
            ino: INodeNo(to_fuse(self.root, inode.number)),
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind: fuse_type(inode.file_type()),
            perm: inode.permissions & 0o7777,
            nlink: inode.nlink,
            uid,
            gid,
            rdev,
            blksize: self.archive.superblock().block_size,
            flags: 0,
        }
    }

    /// Attributes of a name that does not exist: node id 0 makes the reply a negative entry
    /// the kernel caches for the entry TTL (saves the repeated misses of PATH and
    /// `sys.path` searches).
    fn negative(&self) -> FileAttr {
        FileAttr {
            ino: INodeNo(0),
            size: 0,
            blocks: 0,
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            crtime: SystemTime::UNIX_EPOCH,
            kind: FuseType::RegularFile,
            perm: 0,
            nlink: 0,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 0,
            flags: 0,
        }
    }

    /// The listing of `dir`; `fresh` re-reads it (a walk starting at offset 0).
    fn listing(&self, dir: &Inode, fresh: bool) -> Result<Arc<Vec<DirEntry>>, Errno> {
        if !fresh {
            let cached = self
                .dirs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&dir.number)
                .cloned();
            if let Some(l) = cached {
                return Ok(l);
            }
        }
        let l = Arc::new(self.archive.read_dir(dir).map_err(eio)?);
        let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
        if dirs.len() >= DIR_CACHE {
            // Crude but bounded: listings are cheap to rebuild and the kernel caches the
            // replies itself (`FOPEN_CACHE_DIR`), so an LRU would buy little.
            dirs.clear();
        }
        dirs.insert(dir.number, Arc::clone(&l));
        Ok(l)
    }

    /// The directory `ino` and its listing for a `readdir` call at `offset` (a call at 0
    /// starts a new read of the directory and lists it afresh).
    fn open_listing(
        &self,
        ino: INodeNo,
        offset: u64,
    ) -> Result<(Inode, Arc<Vec<DirEntry>>), Errno> {
        let dir = self.dir(ino)?;
        let list = self.listing(&dir, offset == 0)?;
        Ok((dir, list))
    }

    fn dir(&self, ino: INodeNo) -> Result<Inode, Errno> {
        let dir = self.inode(ino)?;
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(Errno::ENOTDIR)
        }
    }

    /// FUSE number of the parent of `dir` (the root is its own parent).
    fn parent_of(&self, dir: &Inode) -> u64 {
        match &dir.kind {
            InodeKind::Directory(d) if dir.number != self.root => to_fuse(self.root, d.parent),
            _ => 1,
        }
    }
}

impl Filesystem for SquashFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Each setter answers Err(nearest allowed value) when out of range: take that value.
        let mut readahead = 1 << 20;
        if let Err(max) = config.set_max_readahead(readahead) {
            readahead = max;
            let _ = config.set_max_readahead(readahead);
        }
        let _ = config.set_max_write(1 << 20);
        // Readahead of many files at once (python imports, `tar`): 64 background requests,
        // congested at 48, instead of the kernel's 12/9.
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        // Optional capabilities: ask for each one the kernel offers.
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_NO_OPEN_SUPPORT,
            InitFlags::FUSE_NO_OPENDIR_SUPPORT,
            InitFlags::FUSE_MAX_PAGES,
        ] {
            if config.capabilities().contains(cap) {
                let _ = config.add_capabilities(cap);
            }
        }
        self.no_open = config
            .capabilities()
            .contains(InitFlags::FUSE_NO_OPEN_SUPPORT);
        self.no_opendir = config
            .capabilities()
            .contains(InitFlags::FUSE_NO_OPENDIR_SUPPORT);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let ttl = self.show.ttl;
        let found = self
            .dir(parent)
            .and_then(|dir| self.archive.lookup_in(&dir, name.as_bytes()).map_err(eio));
        match found {
            Ok(Some(e)) => match self.archive.inode_by_ref(e.inode_ref) {
                Ok(inode) => {
                    self.remember(inode.number, inode.inode_ref);
                    reply.entry(&ttl, &self.attr(&inode), Generation(0));
                }
                Err(_) => reply.error(Errno::EIO),
            },
            Ok(None) => reply.entry(&ttl, &self.negative(), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inode(ino) {
            Ok(inode) => reply.attr(&self.show.ttl, &self.attr(&inode)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inode(ino) {
            Ok(inode) => match inode.symlink_target() {
                Some(t) => reply.data(t.as_bytes()),
                None => reply.error(Errno::EINVAL),
            },
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // Writes never get here: the mount is read-only, so the VFS answers EROFS first.
        if self.no_open {
            return reply.error(Errno::ENOSYS);
        }
        match self.inode(ino) {
            Ok(i) if i.is_dir() => reply.error(Errno::EISDIR),
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let inode = match self.inode(ino) {
            Ok(i) => i,
            Err(e) => return reply.error(e),
        };
        let InodeKind::File(f) = &inode.kind else {
            return reply.error(Errno::EISDIR);
        };
        let want = (size as usize)
            .min(MAX_READ)
            .min(usize::try_from(f.size.saturating_sub(offset)).unwrap_or(MAX_READ));
        let mut buf = vec![0u8; want];
        let mut done = 0;
        while done < want {
            match self
                .archive
                .read_at(&inode, offset + done as u64, &mut buf[done..])
            {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(_) => return reply.error(Errno::EIO),
            }
        }
        reply.data(&buf[..done]);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.no_opendir {
            return reply.error(Errno::ENOSYS);
        }
        match self.dir(ino) {
            Ok(_) => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let (dir, list) = match self.open_listing(ino, offset) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        // Offsets: 1 after ".", 2 after "..", 3 + i after entry i.
        let mut pos = offset;
        if pos == 0 {
            if reply.add(
                INodeNo(to_fuse(self.root, dir.number)),
                1,
                FuseType::Directory,
                ".",
            ) {
                return reply.ok();
            }
            pos = 1;
        }
        if pos == 1 {
            if reply.add(INodeNo(self.parent_of(&dir)), 2, FuseType::Directory, "..") {
                return reply.ok();
            }
            pos = 2;
        }
        let start = usize::try_from(pos - 2).unwrap_or(usize::MAX);
        for (i, e) in list.iter().enumerate().skip(start) {
            let ino = INodeNo(to_fuse(self.root, e.inode_number));
            if reply.add(ino, i as u64 + 3, fuse_type(e.file_type), e.name_os()) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ttl = self.show.ttl;
        let (dir, list) = match self.open_listing(ino, offset) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        // The kernel ignores the attributes of "." and ".." (it never links them), so both
        // carry the directory's own; their numbers are what `getdents` shows.
        let mut dot = self.attr(&dir);
        let mut pos = offset;
        if pos == 0 {
            if reply.add(dot.ino, 1, ".", &ttl, &dot, Generation(0)) {
                return reply.ok();
            }
            pos = 1;
        }
        if pos == 1 {
            dot.ino = INodeNo(self.parent_of(&dir));
            if reply.add(dot.ino, 2, "..", &ttl, &dot, Generation(0)) {
                return reply.ok();
            }
            pos = 2;
        }
        let start = usize::try_from(pos - 2).unwrap_or(usize::MAX);
        for (i, e) in list.iter().enumerate().skip(start) {
            let inode = match self.archive.inode_by_ref(e.inode_ref) {
                Ok(inode) => inode,
                Err(_) => return reply.error(Errno::EIO),
            };
            let attr = self.attr(&inode);
            // Remember before the kernel can ask: it may use the number as soon as this
            // entry is in the reply buffer.
            self.remember(inode.number, inode.inode_ref);
            if reply.add(
                attr.ino,
                i as u64 + 3,
                e.name_os(),
                &ttl,
                &attr,
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let sb = self.archive.superblock();
        let bsize = sb.block_size;
        reply.statfs(
            sb.bytes_used.div_ceil(u64::from(bsize)),
            0,
            0,
            u64::from(sb.inode_count),
            0,
            bsize,
            // SQUASHFS_NAME_LEN
            256,
            bsize,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let xattrs = match self
            .inode(ino)
            .and_then(|i| self.archive.xattrs(&i).map_err(eio))
        {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        match xattrs.iter().find(|x| x.name == name.as_bytes()) {
            None => reply.error(Errno::ENODATA),
            Some(x) => xattr_reply(reply, size, &x.value),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let xattrs = match self
            .inode(ino)
            .and_then(|i| self.archive.xattrs(&i).map_err(eio))
        {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        let mut names = Vec::new();
        for x in &xattrs {
            names.extend_from_slice(&x.name);
            names.push(0);
        }
        xattr_reply(reply, size, &names);
    }
}

/// The getxattr/listxattr size protocol: size 0 asks for the length, a short buffer is ERANGE.
fn xattr_reply(reply: ReplyXattr, size: u32, data: &[u8]) {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    if size == 0 {
        reply.size(len);
    } else if len > size {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_inode_one_swap_numbers_and_the_rest_keep_theirs() {
        let root = 42;
        for n in [1, 2, 41, 42, 43, u32::MAX] {
            assert_eq!(from_fuse(root, to_fuse(root, n)), Some(n));
        }
        assert_eq!(to_fuse(root, root), 1);
        assert_eq!(to_fuse(root, 1), 42);
        assert_eq!(to_fuse(1, 1), 1);
        assert_eq!(from_fuse(root, u64::from(u32::MAX) + 1), None);
    }
}
