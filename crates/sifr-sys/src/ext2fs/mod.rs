//! ext2/ext3 filesystem images through libext2fs (`libext2fs.so.2`, loaded at run time): the
//! safe API the in-tree ext3 FUSE server (`sifr-extfs`) is built on.
//!
//! A [`Fs`] is one open image (a whole file, or one starting at a byte offset, as a SIF's
//! overlay partition does), read-only or read-write. Its methods are thin: they do what the
//! libext2fs call of the same name does and report its error code; the policy (link counts,
//! times, ownership, when to free an inode) is the caller's. libext2fs is not thread-safe: a
//! `Fs` is `Send`, not `Sync`; serialise its use (a `Mutex`).
//!
//! Changes are written through libext2fs's own block cache without journaling (as `fuse2fs`
//! does); [`Fs::flush`] writes the superblock, group descriptors and bitmaps, and [`Fs::close`]
//! does that and releases the handle. Dropping an `Fs` closes it too, ignoring errors.

mod dir;
mod file;
mod inode;
mod lib;
mod xattr;

use std::ffi::{CStr, CString, c_int, c_void};
use std::os::fd::{BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

pub use file::File;
pub use inode::{
    Inode, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, Time,
};
pub use lib::SONAME;
use lib::{Errcode, FsPtr, Lib};
pub use xattr::Xattrs;

/// An inode number.
pub type Ino = u32;

/// The root directory's inode number.
pub const ROOT: Ino = 2;

/// Directory entry file types (`EXT2_FT_*`), as [`Fs::link`] stores them.
pub mod ft {
    pub const UNKNOWN: u8 = 0;
    pub const REG: u8 = 1;
    pub const DIR: u8 = 2;
    pub const CHR: u8 = 3;
    pub const BLK: u8 = 4;
    pub const FIFO: u8 = 5;
    pub const SOCK: u8 = 6;
    pub const SYMLINK: u8 = 7;

    /// The entry type of an inode mode.
    pub fn of_mode(mode: u16) -> u8 {
        match mode & super::S_IFMT {
            super::S_IFREG => REG,
            super::S_IFDIR => DIR,
            super::S_IFCHR => CHR,
            super::S_IFBLK => BLK,
            super::S_IFIFO => FIFO,
            super::S_IFSOCK => SOCK,
            super::S_IFLNK => SYMLINK,
            _ => UNKNOWN,
        }
    }
}

// libext2fs error codes (ext2_err.h; com_err table base 2133571328).
const ET_BASE: Errcode = 2133571328;
const ET_RO_FILSYS: Errcode = ET_BASE + 21;
const ET_DIR_CORRUPTED: Errcode = ET_BASE + 35;
const ET_DIR_NO_SPACE: Errcode = ET_BASE + 38;
const ET_TOOSMALL: Errcode = ET_BASE + 44;
const ET_NO_MEMORY: Errcode = ET_BASE + 70;
const ET_BLOCK_ALLOC_FAIL: Errcode = ET_BASE + 72;
const ET_INODE_ALLOC_FAIL: Errcode = ET_BASE + 73;
const ET_NO_DIRECTORY: Errcode = ET_BASE + 74;
const ET_FILE_NOT_FOUND: Errcode = ET_BASE + 76;
const ET_DIR_EXISTS: Errcode = ET_BASE + 79;
const ET_FILE_TOO_BIG: Errcode = ET_BASE + 82;
const ET_EA_BAD_NAME_LEN: Errcode = ET_BASE + 158;
const ET_EA_KEY_NOT_FOUND: Errcode = ET_BASE + 162;
const ET_EA_NO_SPACE: Errcode = ET_BASE + 163;

// Open flags (ext2fs.h).
const FLAG_RW: c_int = 0x01;
const FLAG_CHANGED: c_int = 0x02;
const FLAG_DIRTY: c_int = 0x04;
const FLAG_64BITS: c_int = 0x20000;
const FLAG_IGNORE_CSUM_ERRORS: c_int = 0x200000;
const FILE_WRITE: c_int = 0x0001;
const DIRENT_CHANGED: c_int = 1;
const DIRENT_ABORT: c_int = 2;
const DIRENT_FLAG_INCLUDE_EMPTY: c_int = 1;

// Offsets into `struct struct_ext2_filsys` (flags, super, blocksize), checked with `offsetof`
// against ext2fs.h of e2fsprogs 1.47; the leading members have not moved since 1.0.
const FS_FLAGS: usize = 16;
const FS_SUPER: usize = 32;
const FS_BLOCKSIZE: usize = 40;

// Offsets into the on-disk superblock (`struct ext2_super_block`).
const SB_INODES_COUNT: usize = 0;
const SB_FREE_INODES: usize = 16;
const SB_MTIME: usize = 44;
const SB_MNT_COUNT: usize = 52;
const SB_STATE: usize = 58;
const SB_FEATURE_COMPAT: usize = 92;
const SB_FEATURE_INCOMPAT: usize = 96;
const SB_FEATURE_RO_COMPAT: usize = 100;
/// `s_state`: cleanly unmounted.
const STATE_VALID: u16 = 1;
/// `s_state`: errors detected.
const STATE_ERROR: u16 = 2;
const COMPAT_HAS_JOURNAL: u32 = 0x4;
const INCOMPAT_RECOVER: u32 = 0x4;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

/// A libext2fs failure: the operation, its subject and the library's code and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op} `{subject}`: {message}")]
pub struct Error {
    pub op: &'static str,
    pub subject: String,
    /// The library's error code (an `errno` below 256, a com_err code above).
    pub code: libc::c_long,
    pub message: String,
}

impl Error {
    fn new(op: &'static str, subject: impl Into<String>, code: Errcode) -> Error {
        let message = message(code);
        Error {
            op,
            subject: subject.into(),
            code,
            message,
        }
    }

    /// The `errno` that best describes the failure to a caller of a file operation.
    pub fn errno(&self) -> i32 {
        errno_of(self.code)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn errno_of(code: Errcode) -> i32 {
    match code {
        c if (1..4096).contains(&c) => c as i32,
        ET_RO_FILSYS => libc::EROFS,
        ET_DIR_NO_SPACE | ET_BLOCK_ALLOC_FAIL | ET_INODE_ALLOC_FAIL | ET_EA_NO_SPACE => {
            libc::ENOSPC
        }
        ET_NO_MEMORY => libc::ENOMEM,
        ET_NO_DIRECTORY => libc::ENOTDIR,
        ET_FILE_NOT_FOUND => libc::ENOENT,
        ET_DIR_EXISTS => libc::EEXIST,
        ET_FILE_TOO_BIG => libc::EFBIG,
        ET_EA_KEY_NOT_FOUND => libc::ENODATA,
        ET_EA_BAD_NAME_LEN => libc::ERANGE,
        ET_TOOSMALL => libc::ERANGE,
        ET_DIR_CORRUPTED => libc::EUCLEAN,
        _ => libc::EIO,
    }
}

fn message(code: Errcode) -> String {
    if (1..4096).contains(&code) {
        return std::io::Error::from_raw_os_error(code as i32).to_string();
    }
    if let Ok(Some(f)) = lib::get().map(|l| l.error_message) {
        // SAFETY: com_err's error_message returns a pointer to a NUL-terminated string, static
        // or in a per-thread buffer, valid until the next call on this thread; copied at once.
        let s = unsafe { f(code) };
        if !s.is_null() {
            // SAFETY: non-null, NUL-terminated (above).
            return unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
        }
    }
    format!("libext2fs error {code}")
}

/// A listing of the process's open descriptors: one handle on `/proc/self/fd` kept open, so
/// that its own descriptor is in every listing and drops out of a difference.
struct FdLister(Option<rustix::fs::Dir>);

impl FdLister {
    fn new() -> FdLister {
        use rustix::fs::{Mode, OFlags};
        let dir = rustix::fs::open(
            "/proc/self/fd",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .and_then(|fd| rustix::fs::Dir::new(fd).ok());
        FdLister(dir)
    }

    /// The open descriptors (empty without `/proc`).
    fn list(&mut self) -> Vec<RawFd> {
        let Some(dir) = self.0.as_mut() else {
            return Vec::new();
        };
        dir.rewind();
        let mut out = Vec::new();
        while let Some(Ok(e)) = dir.read() {
            if let Some(fd) = e.file_name().to_str().ok().and_then(|n| n.parse().ok()) {
                out.push(fd);
            }
        }
        out
    }
}

fn cstring(op: &'static str, s: &[u8]) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(op, String::from_utf8_lossy(s), libc::EINVAL as _))
}

/// Numbers for `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub block_size: u32,
    pub blocks: u64,
    pub free_blocks: u64,
    /// Free blocks an unprivileged user may use (the reserved blocks excluded).
    pub avail_blocks: u64,
    pub inodes: u64,
    pub free_inodes: u64,
}

/// An open ext2/ext3 filesystem. See the module docs.
pub struct Fs {
    lib: &'static Lib,
    fs: FsPtr,
    image: PathBuf,
    /// The descriptors the library opened for the image (see [`Fs::fds`]).
    fds: Vec<RawFd>,
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs").field("image", &self.image).finish()
    }
}

// SAFETY: the handle is owned by this value alone and libext2fs keeps no thread-affine state,
// so it may move between threads; `Fs` is not `Sync`, so it is never used from two at once.
unsafe impl Send for Fs {}

/// What [`Fs::open`] found wrong before opening for writing.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot use libext2fs: {0}")]
    Library(String),
    #[error(transparent)]
    Ext2(#[from] Error),
    #[error(
        "the ext3 image `{}` has a journal that needs recovery (it was not unmounted cleanly); \
         run `e2fsck -fy {}` on it first",
        image.display(), image.display()
    )]
    NeedsRecovery { image: PathBuf },
}

impl Fs {
    /// Opens the filesystem in `image` starting `offset` bytes into it (libext2fs's unix I/O
    /// manager takes `offset=N` as an I/O option), read-write when `writable`, and reads its
    /// allocation bitmaps. An image whose journal needs recovery is refused for writing (its
    /// metadata is not consistent until e2fsck replays the journal; we do not journal). The path
    /// may be `/proc/self/fd/N` to open an inherited descriptor's file.
    pub fn open(image: &Path, offset: u64, writable: bool) -> std::result::Result<Fs, OpenError> {
        let lib = lib::get().map_err(OpenError::Library)?;
        let subject = image.display().to_string();
        let name = cstring("open", image.as_os_str().as_encoded_bytes())?;
        let opts = CString::new(format!("offset={offset}")).unwrap_or_default();
        let flags = FLAG_64BITS | if writable { FLAG_RW } else { 0 };
        let mut fs: FsPtr = std::ptr::null_mut();
        let mut lister = FdLister::new();
        let before = lister.list();
        // SAFETY: name and options are NUL-terminated and live across the call; the I/O manager
        // is the library's own; `fs` receives an owned handle only on success.
        let rc = unsafe {
            (lib.open2)(
                name.as_ptr(),
                opts.as_ptr(),
                flags,
                0,
                0,
                lib.unix_io_manager,
                &mut fs,
            )
        };
        if rc != 0 {
            return Err(Error::new("open ext2/ext3 filesystem in", subject, rc).into());
        }
        let fds = lister
            .list()
            .into_iter()
            .filter(|fd| !before.contains(fd))
            .collect();
        let fs = Fs {
            lib,
            fs,
            image: image.to_path_buf(),
            fds,
        };
        if writable && fs.needs_recovery() {
            // SAFETY: a read-only view is enough to free the handle without writing anything.
            unsafe { fs.clear_flags(FLAG_RW | FLAG_DIRTY | FLAG_CHANGED) };
            return Err(OpenError::NeedsRecovery {
                image: image.to_path_buf(),
            });
        }
        // SAFETY: `fs.fs` is a live handle.
        let rc = unsafe { (lib.read_bitmaps)(fs.fs) };
        if rc != 0 {
            return Err(Error::new("read the bitmaps of", subject, rc).into());
        }
        Ok(fs)
    }

    /// The descriptors libext2fs opened for the image (found as those that appeared in
    /// `/proc/self/fd` while opening, which is exact in a single-threaded caller): a forked
    /// server that closes every other descriptor must keep these.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.fds
            .iter()
            // SAFETY: the library holds these open until the filesystem is closed, which needs
            // `self` by value or `&mut self` in drop, so they outlive the borrow.
            .map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) })
            .collect()
    }

    fn subject(&self, ino: Ino) -> String {
        format!("inode {ino} of {}", self.image.display())
    }

    fn check(&self, op: &'static str, ino: Ino, rc: Errcode) -> Result<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::new(op, self.subject(ino), rc))
        }
    }

    /// A pointer to the in-memory superblock.
    fn super_ptr(&self) -> *mut u8 {
        // SAFETY: `fs` points to a live `struct struct_ext2_filsys`, whose `super` member (at
        // FS_SUPER, see above) is an aligned pointer to its superblock for the handle's life.
        unsafe { *(self.fs.cast::<u8>().add(FS_SUPER) as *const *mut u8) }
    }

    fn super_u32(&self, off: usize) -> u32 {
        // SAFETY: `off` is a field offset inside the 1024-byte superblock; read unaligned.
        unsafe { std::ptr::read_unaligned(self.super_ptr().add(off) as *const u32) }
    }

    fn super_u16(&self, off: usize) -> u16 {
        // SAFETY: as `super_u32`.
        unsafe { std::ptr::read_unaligned(self.super_ptr().add(off) as *const u16) }
    }

    /// # Safety
    /// `off` must be the offset of a `u16` field of the superblock.
    unsafe fn set_super_u16(&mut self, off: usize, v: u16) {
        // SAFETY: per the contract, inside the superblock, which this handle owns.
        unsafe { std::ptr::write_unaligned(self.super_ptr().add(off) as *mut u16, v) }
    }

    /// # Safety
    /// Only flags the library defines for `fs->flags`.
    unsafe fn clear_flags(&self, flags: c_int) {
        // SAFETY: `flags` is the int member at FS_FLAGS of the live handle.
        unsafe {
            let p = self.fs.cast::<u8>().add(FS_FLAGS) as *mut c_int;
            *p &= !flags;
        }
    }

    /// `ext2fs_mark_super_dirty`: the superblock is written at the next flush.
    fn mark_super_dirty(&mut self) {
        // SAFETY: `flags` is the int member at FS_FLAGS of the live handle; the two flags are
        // what the library's inline `ext2fs_mark_super_dirty` sets.
        unsafe {
            let p = self.fs.cast::<u8>().add(FS_FLAGS) as *mut c_int;
            *p |= FLAG_DIRTY | FLAG_CHANGED;
        }
    }

    /// The filesystem block size in bytes.
    pub fn block_size(&self) -> u32 {
        // SAFETY: the unsigned int member at FS_BLOCKSIZE of the live handle.
        unsafe { *(self.fs.cast::<u8>().add(FS_BLOCKSIZE) as *const u32) }
    }

    /// Whether the filesystem has a journal (ext3).
    pub fn has_journal(&self) -> bool {
        self.super_u32(SB_FEATURE_COMPAT) & COMPAT_HAS_JOURNAL != 0
    }

    /// Whether metadata blocks carry checksums (`metadata_csum`, ext4): a directory block's
    /// is seeded with its inode's number and generation.
    pub fn has_metadata_csum(&self) -> bool {
        self.super_u32(SB_FEATURE_RO_COMPAT) & RO_COMPAT_METADATA_CSUM != 0
    }

    /// Whether the journal holds transactions not yet replayed.
    pub fn needs_recovery(&self) -> bool {
        self.super_u32(SB_FEATURE_INCOMPAT) & INCOMPAT_RECOVER != 0
    }

    /// Records a read-write mount in the superblock, as the kernel and fuse2fs do: the mount
    /// count and time, and the state "not cleanly unmounted" until [`Fs::mark_clean`], so that
    /// e2fsck checks an image whose server died. Written at once.
    pub fn mark_mounted(&mut self, now: u32) -> Result<()> {
        let state = self.super_u16(SB_STATE);
        let count = self.super_u16(SB_MNT_COUNT);
        // SAFETY: SB_STATE and SB_MNT_COUNT are u16 fields; SB_MTIME a u32 one.
        unsafe {
            self.set_super_u16(SB_STATE, state & !STATE_VALID);
            self.set_super_u16(SB_MNT_COUNT, count.wrapping_add(1));
            std::ptr::write_unaligned(self.super_ptr().add(SB_MTIME) as *mut u32, now);
        }
        self.mark_super_dirty();
        self.flush()
    }

    /// Whether the filesystem was opened for writing.
    pub fn writable(&self) -> bool {
        // SAFETY: the int member at FS_FLAGS of the live handle.
        unsafe { *(self.fs.cast::<u8>().add(FS_FLAGS) as *const c_int) & FLAG_RW != 0 }
    }

    /// Records a clean unmount (unless errors were recorded); written at the next flush/close.
    /// Nothing for a read-only filesystem.
    pub fn mark_clean(&mut self) {
        let state = self.super_u16(SB_STATE);
        if self.writable() && state & STATE_ERROR == 0 {
            // SAFETY: SB_STATE is a u16 field.
            unsafe { self.set_super_u16(SB_STATE, state | STATE_VALID) };
            self.mark_super_dirty();
        }
    }

    /// Block and inode counts for `statfs`.
    pub fn counts(&self) -> Counts {
        let sb = self.super_ptr().cast::<c_void>();
        // SAFETY: the three functions read the live superblock.
        let (blocks, free, reserved) = unsafe {
            (
                (self.lib.blocks_count)(sb),
                (self.lib.free_blocks_count)(sb),
                (self.lib.r_blocks_count)(sb),
            )
        };
        Counts {
            block_size: self.block_size(),
            blocks,
            free_blocks: free,
            avail_blocks: free.saturating_sub(reserved),
            inodes: u64::from(self.super_u32(SB_INODES_COUNT)),
            free_inodes: u64::from(self.super_u32(SB_FREE_INODES)),
        }
    }

    /// Reads inode `ino`.
    pub fn read_inode(&self, ino: Ino) -> Result<Inode> {
        let mut inode = Inode::default();
        // SAFETY: the buffer is a 160-byte `ext2_inode_large`; the library copies at most that.
        let rc = unsafe {
            (self.lib.read_inode_full)(self.fs, ino, &mut inode, size_of::<Inode>() as c_int)
        };
        self.check("read", ino, rc)?;
        Ok(inode)
    }

    /// Writes inode `ino` (the bytes of a larger on-disk inode beyond ours are kept).
    pub fn write_inode(&mut self, ino: Ino, inode: &Inode) -> Result<()> {
        let mut copy = *inode;
        // SAFETY: as read_inode; the library reads the rest of a larger inode first.
        let rc = unsafe {
            (self.lib.write_inode_full)(self.fs, ino, &mut copy, size_of::<Inode>() as c_int)
        };
        self.check("write", ino, rc)
    }

    /// Writes a freshly allocated inode: the on-disk inode is zeroed beyond the base fields
    /// and, on 256-byte inodes, given its extension (`i_extra_isize`). Returns it as written.
    pub fn write_new_inode(&mut self, ino: Ino, inode: &Inode) -> Result<Inode> {
        let mut copy = *inode;
        // SAFETY: the library reads the 128-byte base inode from the pointer.
        let rc = unsafe { (self.lib.write_new_inode)(self.fs, ino, &mut copy) };
        self.check("write new", ino, rc)?;
        self.read_inode(ino)
    }

    /// The inode `name` names in directory `dir`, if any.
    pub fn lookup(&self, dir: Ino, name: &[u8]) -> Result<Option<Ino>> {
        let mut found: Ino = 0;
        // SAFETY: `name` is passed with its length (no NUL needed); a null block buffer makes the
        // library allocate its own.
        let rc = unsafe {
            (self.lib.lookup)(
                self.fs,
                dir,
                name.as_ptr().cast(),
                name.len() as c_int,
                std::ptr::null_mut(),
                &mut found,
            )
        };
        match rc {
            0 => Ok(Some(found)),
            ET_FILE_NOT_FOUND => Ok(None),
            rc => Err(Error::new("look up in", self.subject(dir), rc)),
        }
    }

    /// Adds the entry `name` -> `ino` (entry type `ft`) to directory `dir`, growing the
    /// directory by a block when it is full. Link counts are the caller's.
    pub fn link(&mut self, dir: Ino, name: &[u8], ino: Ino, ft: u8) -> Result<()> {
        let c = cstring("link", name)?;
        loop {
            // SAFETY: `c` is NUL-terminated and lives across the call.
            let rc = unsafe { (self.lib.link)(self.fs, dir, c.as_ptr(), ino, c_int::from(ft)) };
            if rc == ET_DIR_NO_SPACE {
                self.expand_dir(dir)?;
                continue;
            }
            return self.check("link into", dir, rc);
        }
    }

    fn expand_dir(&mut self, dir: Ino) -> Result<()> {
        // SAFETY: a live handle and an inode number; the library checks it is a directory.
        let rc = unsafe { (self.lib.expand_dir)(self.fs, dir) };
        self.check("expand directory", dir, rc)
    }

    /// Removes the entry `name` (which must point at `ino`) from directory `dir`. Link counts
    /// are the caller's.
    pub fn unlink(&mut self, dir: Ino, name: &[u8], ino: Ino) -> Result<()> {
        let c = cstring("unlink", name)?;
        // SAFETY: `c` is NUL-terminated; the library matches both name and inode.
        let rc = unsafe { (self.lib.unlink)(self.fs, dir, c.as_ptr(), ino, 0) };
        self.check("unlink from", dir, rc)
    }

    /// Picks a free inode near directory `dir` for an object of type `mode`; it is not marked
    /// in use until [`Fs::inode_alloc_stats`] (or [`Fs::mkdir`]/[`Fs::symlink`], which do).
    pub fn new_inode(&mut self, dir: Ino, mode: u16) -> Result<Ino> {
        let mut ino: Ino = 0;
        // SAFETY: a null map means the filesystem's own inode bitmap (read at open).
        let rc = unsafe {
            (self.lib.new_inode)(
                self.fs,
                dir,
                c_int::from(mode),
                std::ptr::null_mut(),
                &mut ino,
            )
        };
        self.check("allocate an inode near", dir, rc)?;
        Ok(ino)
    }

    /// Marks inode `ino` in use (`delta` 1) or free (-1) in the bitmap and the group and
    /// superblock counts.
    pub fn inode_alloc_stats(&mut self, ino: Ino, delta: i32, is_dir: bool) {
        // SAFETY: a live handle; the library bounds-checks `ino` and reports it itself.
        unsafe { (self.lib.inode_alloc_stats2)(self.fs, ino, delta, c_int::from(is_dir)) }
    }

    /// Creates directory `name` in `parent` as inode `ino` (from [`Fs::new_inode`]): its block
    /// with `.` and `..`, the parent's link count, the allocation counts. Owner root, mode
    /// 0755; the caller sets them.
    pub fn mkdir(&mut self, parent: Ino, ino: Ino, name: &[u8]) -> Result<()> {
        let c = cstring("mkdir", name)?;
        loop {
            // SAFETY: `c` is NUL-terminated and lives across the call.
            let rc = unsafe { (self.lib.mkdir)(self.fs, parent, ino, c.as_ptr()) };
            if rc == ET_DIR_NO_SPACE {
                self.expand_dir(parent)?;
                continue;
            }
            return self.check("make a directory in", parent, rc);
        }
    }

    /// Creates symlink `name` -> `target` in `parent` as inode `ino` (fast symlink when short),
    /// counted in use. Owner root; the caller sets it.
    pub fn symlink(&mut self, parent: Ino, ino: Ino, name: &[u8], target: &[u8]) -> Result<()> {
        let c = cstring("symlink", name)?;
        let t = cstring("symlink", target)?;
        loop {
            // SAFETY: both strings are NUL-terminated and live across the call.
            let rc = unsafe { (self.lib.symlink)(self.fs, parent, ino, c.as_ptr(), t.as_ptr()) };
            if rc == ET_DIR_NO_SPACE {
                self.expand_dir(parent)?;
                continue;
            }
            return self.check("make a symlink in", parent, rc);
        }
    }

    /// The target of symlink `ino`.
    pub fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        let mut inode = self.read_inode(ino)?;
        let len = inode.size() as usize;
        // SAFETY: the function only inspects the inode it is given.
        let fast = unsafe { (self.lib.is_fast_symlink)(&mut inode) } != 0;
        if fast {
            // SAFETY: a fast symlink keeps its target in the 60 bytes of i_block.
            let bytes: [u8; 60] = unsafe { std::mem::transmute(inode.i_block) };
            return Ok(bytes[..len.min(60)].to_vec());
        }
        let mut buf = vec![0; len];
        let n = self.file(ino, false)?.read_at(0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Frees blocks `start..=end` (in filesystem blocks; `u64::MAX` for "to the end") of inode
    /// `ino`, updating and writing `inode`.
    pub fn punch(&mut self, ino: Ino, inode: &mut Inode, start: u64, end: u64) -> Result<()> {
        // SAFETY: `inode` is a valid ext2_inode_large the library updates in place; a null
        // block buffer makes it allocate one.
        let rc = unsafe { (self.lib.punch)(self.fs, ino, inode, std::ptr::null_mut(), start, end) };
        self.check("free blocks of", ino, rc)
    }

    /// Drops inode `ino`'s reference to its extended-attribute block (freeing the block with
    /// its last reference), updating `inode` in memory.
    pub fn free_ext_attr(&mut self, ino: Ino, inode: &mut Inode) -> Result<()> {
        // SAFETY: `inode` is a valid ext2_inode_large.
        let rc = unsafe { (self.lib.free_ext_attr)(self.fs, ino, inode) };
        self.check("free the attributes of", ino, rc)
    }

    /// Whether the inode's block map holds block numbers (not a fast symlink's target).
    pub fn has_valid_blocks(&self, inode: &Inode) -> bool {
        let mut copy = *inode;
        // SAFETY: only reads the inode.
        unsafe { (self.lib.inode_has_valid_blocks2)(self.fs, &mut copy) != 0 }
    }

    /// Writes the superblock, group descriptors and bitmaps, and flushes the I/O cache.
    pub fn flush(&mut self) -> Result<()> {
        // SAFETY: a live handle.
        let rc = unsafe { (self.lib.flush)(self.fs) };
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::new("flush", self.image.display().to_string(), rc))
        }
    }

    /// Releases the handle without writing anything: for the launcher's copy after `fork`, when
    /// the forked server owns the image. Blocks still dirty in the copy's cache (none after a
    /// [`Fs::flush`]) would be written by the library's I/O close.
    pub fn abandon(self) {
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: the handle is live and not used again; with the dirty flags cleared the library
        // writes no superblock, descriptors or bitmaps while freeing it.
        unsafe {
            me.clear_flags(FLAG_DIRTY | FLAG_CHANGED | FLAG_RW);
            (me.lib.free)(me.fs);
        }
    }

    /// Flushes and releases the filesystem.
    pub fn close(self) -> Result<()> {
        let me = std::mem::ManuallyDrop::new(self);
        me.close_inner()
    }

    fn close_inner(&self) -> Result<()> {
        // SAFETY: the handle is live and not used after this call (the value is consumed or
        // being dropped); on a failed flush the library keeps the handle, which we free.
        let rc = unsafe { (self.lib.close2)(self.fs, 0) };
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: close2 failed before freeing; free without writing anything more.
        unsafe { (self.lib.free)(self.fs) };
        Err(Error::new("close", self.image.display().to_string(), rc))
    }
}

impl Drop for Fs {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}

#[cfg(test)]
mod tests;
