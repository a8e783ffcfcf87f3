//! The FUSE requests, each under the state's lock (see [`crate::fs`]): what kernel overlayfs
//! and ordinary programs ask of an upper filesystem.
//!
//! Runs only in the server process, on fuser's worker thread. Must not print.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};
use sifr_sys::ext2fs::{Ino, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Time, ft};

use crate::fs::{self as f, State, errno, ino};
use crate::ids::Owners;

/// Largest read answered in one reply (the kernel asks for at most `max_pages`).
const MAX_READ: u32 = 16 << 20;
/// `setxattr` flags.
const XATTR_CREATE: i32 = 1;
const XATTR_REPLACE: i32 = 2;

/// The filesystem served to the kernel.
pub(crate) struct ExtFs {
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) ttl: Duration,
    pub(crate) writable: bool,
    pub(crate) writeback: bool,
    pub(crate) block_size: u32,
    /// The kernel accepts ENOSYS to `open` as "never send open or release again"
    /// (`FUSE_NO_OPEN_SUPPORT`): two round trips fewer per file. Set in `init`. Unlinked
    /// open files are kept by the kernel's references (`forget`), not by open counts.
    pub(crate) no_open: bool,
    /// Who is shown as owning inodes whose ids the mount's namespace cannot name.
    pub(crate) owners: Owners,
}

impl ExtFs {
    /// What the kernel is told about inode `n`.
    fn attr(&self, n: Ino, i: &sifr_sys::ext2fs::Inode) -> FileAttr {
        self.owners.shown(f::attr(n, i, self.block_size))
    }

    fn with<T>(&self, op: impl FnOnce(&mut State) -> Result<T, Errno>) -> Result<T, Errno> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        op(&mut st)
    }

    /// As [`ExtFs::with`], for a request that changes the filesystem.
    fn change<T>(&self, op: impl FnOnce(&mut State) -> Result<T, Errno>) -> Result<T, Errno> {
        if !self.writable {
            return Err(Errno::EROFS);
        }
        self.with(op)
    }

    fn entry(&self, reply: ReplyEntry, r: Result<(Ino, sifr_sys::ext2fs::Inode), Errno>) {
        match r {
            Ok((n, i)) => {
                self.with(|st| {
                    st.remember(n);
                    Ok(())
                })
                .ok();
                reply.entry(
                    &self.ttl,
                    &self.attr(n, &i),
                    Generation(u64::from(i.i_generation)),
                )
            }
            Err(e) => reply.error(e),
        }
    }

    /// Creates a non-directory, non-symlink node `name` in `parent`.
    fn make_node(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        rdev: u32,
    ) -> Result<(Ino, sifr_sys::ext2fs::Inode), Errno> {
        let parent = ino(parent)?;
        let name = name.as_bytes();
        let mode = mode as u16;
        let now = SystemTime::now();
        self.change(|st| {
            let (fs, ix) = st.parts()?;
            let p = f::dir_inode(fs, parent)?;
            f::absent(fs, ix, parent, name)?;
            let (uid, gid, _) = f::new_owner(&p, req.uid(), req.gid());
            let n = fs.new_inode(parent, mode).map_err(errno)?;
            fs.link(parent, name, n, ft::of_mode(mode)).map_err(errno)?;
            ix.added(parent, name, n);
            let generation = st.generation();
            let fs = st.fs()?;
            let mut i = f::fresh(mode, uid, gid, now, generation);
            if matches!(mode & S_IFMT, S_IFCHR | sifr_sys::ext2fs::S_IFBLK) {
                let major = (rdev & 0xfff00) >> 8;
                let minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
                i.set_device(major, minor);
            }
            let i = fs.write_new_inode(n, &i).map_err(errno)?;
            fs.inode_alloc_stats(n, 1, false);
            f::touch_dir(fs, parent, now)?;
            Ok((n, i))
        })
    }
}

impl Filesystem for ExtFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        let mut wanted = vec![
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_MAX_PAGES,
            InitFlags::FUSE_NO_OPEN_SUPPORT,
        ];
        if self.writable && self.writeback {
            wanted.push(InitFlags::FUSE_WRITEBACK_CACHE);
        }
        for cap in wanted {
            if config.capabilities().contains(cap) {
                let _ = config.add_capabilities(cap);
            }
        }
        self.no_open = config
            .capabilities()
            .contains(InitFlags::FUSE_NO_OPEN_SUPPORT);
        Ok(())
    }

    fn destroy(&mut self) {
        // A failure is kept in the state and reported by `serve`.
        let _ = self.with(|st| st.close().map_err(errno));
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self.with(|st| {
            let (fs, ix) = st.parts()?;
            let parent = ino(parent)?;
            match ix.lookup(fs, parent, name.as_bytes())? {
                Some(n) => Ok(Some((n, fs.read_inode(n).map_err(errno)?))),
                None => Ok(None),
            }
        });
        match r {
            Ok(Some(found)) => self.entry(reply, Ok(found)),
            Ok(None) => reply.entry(&self.ttl, &f::negative(), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, n: INodeNo, nlookup: u64) {
        let _ = self.with(|st| st.forget(ino(n)?, nlookup));
    }

    fn getattr(&self, _req: &Request, n: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self.with(|st| {
            let n = ino(n)?;
            Ok((n, st.fs()?.read_inode(n).map_err(errno)?))
        });
        match r {
            Ok((n, i)) => reply.attr(&self.ttl, &self.attr(n, &i)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        n: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let now = SystemTime::now();
        let at = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => now,
        };
        let r = self.change(|st| {
            let n = ino(n)?;
            let fs = st.fs()?;
            if let Some(size) = size {
                if fs.read_inode(n).map_err(errno)?.kind() != S_IFREG {
                    return Err(Errno::EINVAL);
                }
                let mut file = fs.file(n, true).map_err(errno)?;
                file.set_size(size).map_err(errno)?;
                file.close().map_err(errno)?;
            }
            let i = f::update(fs, n, |i| {
                if let Some(m) = mode {
                    i.i_mode = (i.i_mode & S_IFMT) | (m as u16 & 0o7777);
                }
                if let Some(u) = uid {
                    i.set_uid(u);
                }
                if let Some(g) = gid {
                    i.set_gid(g);
                }
                if let Some(t) = atime {
                    i.set_time(Time::Access, at(t));
                }
                if let Some(t) = mtime {
                    i.set_time(Time::Modify, at(t));
                } else if size.is_some() {
                    i.set_time(Time::Modify, now);
                }
                i.set_time(Time::Change, ctime.unwrap_or(now));
            })
            .map_err(errno)?;
            Ok((n, i))
        });
        match r {
            Ok((n, i)) => reply.attr(&self.ttl, &self.attr(n, &i)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, n: INodeNo, reply: ReplyData) {
        match self.with(|st| st.fs()?.read_link(ino(n)?).map_err(errno)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.entry(reply, self.make_node(req, parent, name, mode, rdev));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let now = SystemTime::now();
        let r = self.change(|st| {
            let parent = ino(parent)?;
            let name = name.as_bytes();
            let (fs, ix) = st.parts()?;
            let p = f::dir_inode(fs, parent)?;
            f::absent(fs, ix, parent, name)?;
            let (uid, gid, sgid) = f::new_owner(&p, req.uid(), req.gid());
            let n = fs.new_inode(parent, S_IFDIR).map_err(errno)?;
            fs.mkdir(parent, n, name).map_err(errno)?;
            ix.added(parent, name, n);
            let generation = st.generation();
            let fs = st.fs()?;
            let i = f::update(fs, n, |i| {
                i.i_generation = generation;
                i.i_mode = S_IFDIR | (mode as u16 & 0o7777) | if sgid { f::S_ISGID } else { 0 };
                i.set_uid(uid);
                i.set_gid(gid);
                i.touch_all(now);
            })
            .map_err(errno)?;
            if fs.has_metadata_csum() {
                // The block `mkdir` wrote is checksummed with generation 0: rewrite it.
                fs.rechecksum_dir(n).map_err(errno)?;
            }
            f::touch_dir(fs, parent, now)?;
            Ok((n, i))
        });
        self.entry(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let now = SystemTime::now();
        let r = self.change(|st| {
            let parent = ino(parent)?;
            let name = name.as_bytes();
            let (fs, ix) = st.parts()?;
            let n = f::existing(fs, ix, parent, name)?;
            if fs.read_inode(n).map_err(errno)?.is_dir() {
                return Err(Errno::EISDIR);
            }
            fs.unlink(parent, name, n).map_err(errno)?;
            ix.removed(parent, name);
            f::touch_dir(fs, parent, now)?;
            st.drop_link(n, now)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let now = SystemTime::now();
        let r = self.change(|st| {
            let parent = ino(parent)?;
            let name = name.as_bytes();
            let (fs, ix) = st.parts()?;
            let n = f::existing(fs, ix, parent, name)?;
            f::dir_inode(fs, n)?;
            if f::has_children(fs, n)? {
                return Err(Errno::ENOTEMPTY);
            }
            fs.unlink(parent, name, n).map_err(errno)?;
            ix.removed(parent, name);
            f::update(fs, parent, |i| {
                i.i_links_count = i.i_links_count.saturating_sub(1);
                i.set_time(Time::Modify, now);
                i.set_time(Time::Change, now);
            })
            .map_err(errno)?;
            st.drop_link(n, now)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let now = SystemTime::now();
        let r = self.change(|st| {
            let parent = ino(parent)?;
            let name = link_name.as_bytes();
            let (fs, ix) = st.parts()?;
            let p = f::dir_inode(fs, parent)?;
            f::absent(fs, ix, parent, name)?;
            let (uid, gid, _) = f::new_owner(&p, req.uid(), req.gid());
            let n = fs.new_inode(parent, S_IFLNK).map_err(errno)?;
            fs.symlink(parent, n, name, target.as_os_str().as_bytes())
                .map_err(errno)?;
            ix.added(parent, name, n);
            let generation = st.generation();
            let fs = st.fs()?;
            let i = f::update(fs, n, |i| {
                i.i_generation = generation;
                i.set_uid(uid);
                i.set_gid(gid);
                i.touch_all(now);
            })
            .map_err(errno)?;
            f::touch_dir(fs, parent, now)?;
            Ok((n, i))
        });
        self.entry(reply, r);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = self.change(|st| {
            let (from, to) = (ino(parent)?, ino(newparent)?);
            let owner = (req.uid(), req.gid());
            crate::rename::rename(
                st,
                owner,
                from,
                name.as_bytes(),
                to,
                newname.as_bytes(),
                flags,
            )
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        n: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let now = SystemTime::now();
        let r = self.change(|st| {
            let (n, to) = (ino(n)?, ino(newparent)?);
            let newname = newname.as_bytes();
            let (fs, ix) = st.parts()?;
            let i = fs.read_inode(n).map_err(errno)?;
            if i.is_dir() {
                return Err(Errno::EPERM);
            }
            if i.i_links_count == u16::MAX {
                return Err(Errno::EMLINK);
            }
            f::dir_inode(fs, to)?;
            f::absent(fs, ix, to, newname)?;
            fs.link(to, newname, n, ft::of_mode(i.i_mode))
                .map_err(errno)?;
            ix.added(to, newname, n);
            let i = f::update(fs, n, |i| {
                i.i_links_count += 1;
                i.i_dtime = 0;
                i.set_time(Time::Change, now);
            })
            .map_err(errno)?;
            f::touch_dir(fs, to, now)?;
            st.relinked(n);
            Ok((n, i))
        });
        self.entry(reply, r);
    }

    fn open(&self, _req: &Request, _n: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        if write && !self.writable {
            return reply.error(Errno::EROFS);
        }
        if self.no_open {
            return reply.error(Errno::ENOSYS);
        }
        reply.opened(FileHandle(0), FopenFlags::empty())
    }

    fn read(
        &self,
        _req: &Request,
        n: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.with(|st| {
            let fs = st.fs()?;
            let mut buf = vec![0; size.min(MAX_READ) as usize];
            let got = fs
                .file(ino(n)?, false)
                .and_then(|mut file| file.read_at(offset, &mut buf))
                .map_err(errno)?;
            buf.truncate(got);
            Ok(buf)
        });
        match r {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        n: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let now = SystemTime::now();
        let r = self.change(|st| {
            let n = ino(n)?;
            let fs = st.fs()?;
            let mut file = fs.file(n, true).map_err(errno)?;
            file.write_at(offset, data).map_err(errno)?;
            file.close().map_err(errno)?;
            // With the writeback cache the kernel keeps the times and sends them.
            if !self.writeback {
                f::update(fs, n, |i| {
                    i.set_time(Time::Modify, now);
                    i.set_time(Time::Change, now);
                })
                .map_err(errno)?;
            }
            Ok(data.len() as u32)
        });
        match r {
            Ok(w) => reply.written(w),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _n: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes go straight to the image: nothing to do at close. ENOSYS makes the kernel
        // stop sending flush (one round trip fewer per file); it still writes its cached
        // pages back at close first.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _n: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _n: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.with(|st| {
            if self.writable {
                st.fs()?.flush().map_err(errno)?;
            }
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, n: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let r = self.with(|st| {
            let dir = ino(n)?;
            let fs = st.fs()?;
            f::dir_inode(fs, dir)?;
            let mut raw = Vec::new();
            fs.dir_entries(dir, |name, n, t| {
                raw.push((name.to_vec(), n, t));
                true
            })
            .map_err(errno)?;
            let mut list = Vec::with_capacity(raw.len());
            for (name, n, t) in raw {
                let kind = match f::fuse_kind_of_ft(t) {
                    Some(k) => k,
                    // No `filetype` feature: ask the inode.
                    None => f::fuse_kind(fs.read_inode(n).map_err(errno)?.i_mode),
                };
                list.push((name, n, kind));
            }
            Ok(st.add_listing(list))
        });
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _n: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(list) = st.dirs.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        // Offset i + 1 follows entry i.
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (name, n, kind)) in list.iter().enumerate().skip(start) {
            let full = reply.add(
                INodeNo(f::to_fuse(u64::from(*n))),
                i as u64 + 1,
                *kind,
                OsStr::from_bytes(name),
            );
            if full {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _n: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dirs
            .remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _n: INodeNo, reply: ReplyStatfs) {
        match self.with(|st| Ok(st.fs()?.counts())) {
            Ok(c) => reply.statfs(
                c.blocks,
                c.free_blocks,
                c.avail_blocks,
                c.inodes,
                c.free_inodes,
                c.block_size,
                255,
                c.block_size,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        n: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let now = SystemTime::now();
        let r = self.change(|st| {
            let n = ino(n)?;
            let fs = st.fs()?;
            {
                let mut x = fs.xattrs(n).map_err(errno)?;
                let exists = x.get(name.as_bytes()).map_err(errno)?.is_some();
                if exists && flags & XATTR_CREATE != 0 {
                    return Err(Errno::EEXIST);
                }
                if !exists && flags & XATTR_REPLACE != 0 {
                    return Err(Errno::NO_XATTR);
                }
                x.set(name.as_bytes(), value).map_err(errno)?;
            }
            f::update(fs, n, |i| i.set_time(Time::Change, now)).map_err(errno)?;
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, n: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let r = self.with(|st| {
            let n = ino(n)?;
            let x = st.fs()?.xattrs(n).map_err(errno)?;
            x.get(name.as_bytes())
                .map_err(errno)?
                .ok_or(Errno::NO_XATTR)
        });
        xattr_reply(reply, size, r);
    }

    fn listxattr(&self, _req: &Request, n: INodeNo, size: u32, reply: ReplyXattr) {
        let r = self.with(|st| {
            let n = ino(n)?;
            let x = st.fs()?.xattrs(n).map_err(errno)?;
            let mut out = Vec::new();
            for name in x.names().map_err(errno)? {
                out.extend_from_slice(&name);
                out.push(0);
            }
            Ok(out)
        });
        xattr_reply(reply, size, r);
    }

    fn removexattr(&self, _req: &Request, n: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let now = SystemTime::now();
        let r = self.change(|st| {
            let n = ino(n)?;
            let fs = st.fs()?;
            let removed = fs
                .xattrs(n)
                .and_then(|mut x| x.remove(name.as_bytes()))
                .map_err(errno)?;
            if !removed {
                return Err(Errno::NO_XATTR);
            }
            f::update(fs, n, |i| i.set_time(Time::Change, now)).map_err(errno)?;
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, _n: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // `default_permissions`: the kernel has checked already.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mode = (mode & !u32::from(S_IFMT)) | u32::from(S_IFREG);
        let r = self
            .make_node(req, parent, name, mode, 0)
            .and_then(|(n, i)| {
                self.with(|st| {
                    st.remember(n);
                    Ok((n, i))
                })
            });
        match r {
            Ok((n, i)) => reply.created(
                &self.ttl,
                &self.attr(n, &i),
                Generation(u64::from(i.i_generation)),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }
}

fn xattr_reply(reply: ReplyXattr, size: u32, r: Result<Vec<u8>, Errno>) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(e),
    }
}
