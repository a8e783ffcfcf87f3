//! The served filesystem's state and the operations the FUSE requests are made of: creating
//! and freeing inodes, link counts, times, directory listings, attributes for the kernel.
//!
//! libext2fs is not thread-safe, so one `Mutex` holds the open [`Fs`] and everything that
//! must change with it; every request takes it for its whole duration. The signal waiter takes
//! it too, to close the image between two requests. After the close the state holds no
//! filesystem and every request fails with `EIO`.
//!
//! Inode numbers: FUSE calls the root 1, ext2 calls it 2; inode 1 (bad blocks) is never shown,
//! so the two numbers swap places ([`to_fuse`], its own inverse).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use fuser::{Errno, FileAttr, FileType, INodeNo};
use sifr_sys::ext2fs::{self, Fs, Ino, Inode, Time, ft};

/// The FUSE number of ext2 inode `ino`, and the other way round.
pub(crate) fn to_fuse(ino: u64) -> u64 {
    match ino {
        1 => 2,
        2 => 1,
        n => n,
    }
}

/// The ext2 inode a FUSE number names.
pub(crate) fn ino(n: INodeNo) -> Result<Ino, Errno> {
    Ino::try_from(to_fuse(n.0)).map_err(|_| Errno::ENOENT)
}

pub(crate) fn errno(e: ext2fs::Error) -> Errno {
    Errno::from_i32(e.errno())
}

pub(crate) const S_ISGID: u16 = 0o2000;

/// A directory listing taken at `opendir`: name, inode, FUSE type.
pub(crate) type Listing = Vec<(Vec<u8>, Ino, FileType)>;

/// Everything that changes with the filesystem.
pub(crate) struct State {
    /// `None` once closed.
    pub(crate) fs: Option<Fs>,
    /// The kernel's references per inode: one per entry it was told of, dropped by `forget`.
    /// An open file holds one, so this is also what keeps an unlinked open file alive.
    lookups: HashMap<Ino, u64>,
    /// Inodes without a name the kernel still references: freed at their last `forget`.
    orphans: HashSet<Ino>,
    /// Listings of open directories, by handle.
    pub(crate) dirs: HashMap<u64, Listing>,
    next_dir: u64,
    /// How the close went, kept for whoever asks after `destroy` closed.
    close_error: Option<ext2fs::Error>,
    /// The generation of the next new inode (see [`State::generation`]).
    next_generation: u32,
    /// Names of large directories, in memory.
    pub(crate) index: Index,
}

/// Directory size from which [`Index`] keeps a directory's names: 32 blocks of 1 KiB hold
/// about 1 300 names of 16 bytes; below that a scan of the blocks is as quick.
const INDEX_FROM_BYTES: u64 = 32 << 10;
/// Directories indexed at once; past that the index starts again (bounds its memory).
const INDEX_DIRS: usize = 128;

/// The names of large directories, so that a lookup need not scan every block of one: ext3
/// directories are lists (the server writes no htree), and overlayfs looks each new name up
/// twice before it is made, so a directory of n files would cost O(n^2) block reads. The
/// server is the image's only writer, so its own changes keep the index true: every change of
/// an entry goes through [`Index::added`] / [`Index::removed`] / [`Index::forget_dir`].
#[derive(Default)]
pub(crate) struct Index {
    dirs: HashMap<Ino, HashMap<Box<[u8]>, Ino>>,
}

impl Index {
    /// The inode `name` names in `dir`, if any.
    pub(crate) fn lookup(&mut self, fs: &Fs, dir: Ino, name: &[u8]) -> Result<Option<Ino>, Errno> {
        if let Some(names) = self.dirs.get(&dir) {
            return Ok(names.get(name).copied());
        }
        if fs.read_inode(dir).map_err(errno)?.size() < INDEX_FROM_BYTES {
            return fs.lookup(dir, name).map_err(errno);
        }
        let mut names = HashMap::new();
        fs.dir_entries(dir, |n, i, _| {
            names.insert(Box::from(n), i);
            true
        })
        .map_err(errno)?;
        let found = names.get(name).copied();
        if self.dirs.len() >= INDEX_DIRS {
            self.dirs.clear();
        }
        self.dirs.insert(dir, names);
        Ok(found)
    }

    /// `dir` has the entry `name` -> `ino` now (new, or repointed).
    pub(crate) fn added(&mut self, dir: Ino, name: &[u8], ino: Ino) {
        if let Some(names) = self.dirs.get_mut(&dir) {
            names.insert(Box::from(name), ino);
        }
    }

    /// `dir` lost the entry `name`.
    pub(crate) fn removed(&mut self, dir: Ino, name: &[u8]) {
        if let Some(names) = self.dirs.get_mut(&dir) {
            names.remove(name);
        }
    }

    /// Directory `dir` is gone (its number may come back as another directory).
    pub(crate) fn forget_dir(&mut self, dir: Ino) {
        self.dirs.remove(&dir);
    }
}

impl State {
    pub(crate) fn new(fs: Fs) -> State {
        State {
            fs: Some(fs),
            lookups: HashMap::new(),
            orphans: HashSet::new(),
            dirs: HashMap::new(),
            next_dir: 1,
            close_error: None,
            // Different in each server, so that a number freed and reused across two mounts
            // differs too.
            next_generation: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(1, |d| d.subsec_nanos() ^ d.as_secs() as u32),
            index: Index::default(),
        }
    }

    /// The filesystem and the name index, borrowed together.
    pub(crate) fn parts(&mut self) -> Result<(&mut Fs, &mut Index), Errno> {
        Ok((self.fs.as_mut().ok_or(Errno::EIO)?, &mut self.index))
    }

    /// A generation number for a new inode. The kernel tells a reused inode number from the
    /// inode it still caches by it (`fuse_iget` marks the old one stale); without one, a
    /// directory removed and made again (overlayfs's `work/work` at every mount) is taken for
    /// the dead one.
    pub(crate) fn generation(&mut self) -> u32 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }

    pub(crate) fn fs(&mut self) -> Result<&mut Fs, Errno> {
        self.fs.as_mut().ok_or(Errno::EIO)
    }

    /// Frees the orphans, records a clean unmount and closes the image (once; later calls
    /// repeat a failure once).
    pub(crate) fn close(&mut self) -> Result<(), ext2fs::Error> {
        let Some(mut fs) = self.fs.take() else {
            return self.close_error.take().map_or(Ok(()), Err);
        };
        for o in std::mem::take(&mut self.orphans) {
            if let Ok(inode) = fs.read_inode(o) {
                let _ = free_inode(&mut fs, o, inode);
            }
        }
        fs.mark_clean();
        let r = fs.close();
        if let Err(e) = &r {
            self.close_error = Some(e.clone());
        }
        r
    }

    /// The kernel was told of `ino` in an entry reply (one more reference).
    pub(crate) fn remember(&mut self, ino: Ino) {
        *self.lookups.entry(ino).or_default() += 1;
    }

    /// The kernel dropped `n` references to `ino`; frees it after the last if it has no name.
    pub(crate) fn forget(&mut self, ino: Ino, n: u64) -> Result<(), Errno> {
        match self.lookups.get_mut(&ino) {
            Some(left) if *left > n => {
                *left -= n;
                return Ok(());
            }
            _ => {
                self.lookups.remove(&ino);
            }
        }
        if self.orphans.remove(&ino) {
            let fs = self.fs()?;
            let inode = fs.read_inode(ino).map_err(errno)?;
            if inode.i_links_count == 0 {
                free_inode(fs, ino, inode).map_err(errno)?;
            }
        }
        Ok(())
    }

    /// `ino` lost a name: one link less, and freed (now, or at its last `forget`) at none.
    pub(crate) fn drop_link(&mut self, ino: Ino, now: SystemTime) -> Result<(), Errno> {
        let open = self.lookups.contains_key(&ino);
        let (fs, ix) = self.parts()?;
        let mut inode = fs.read_inode(ino).map_err(errno)?;
        // A directory's own `.` link goes with its name.
        let gone = inode.is_dir() || inode.i_links_count <= 1;
        if inode.is_dir() {
            ix.forget_dir(ino);
        }
        if gone {
            inode.i_links_count = 0;
        } else {
            inode.i_links_count -= 1;
        }
        inode.set_time(Time::Change, now);
        if !gone || open {
            fs.write_inode(ino, &inode).map_err(errno)?;
            if gone {
                self.orphans.insert(ino);
            }
            return Ok(());
        }
        free_inode(fs, ino, inode).map_err(errno)
    }

    /// `ino` got a name back (`link` of an orphan still referenced).
    pub(crate) fn relinked(&mut self, ino: Ino) {
        self.orphans.remove(&ino);
    }

    pub(crate) fn add_listing(&mut self, l: Listing) -> u64 {
        let fh = self.next_dir;
        self.next_dir += 1;
        self.dirs.insert(fh, l);
        fh
    }
}

/// Releases an inode with no links: its attribute block, its data blocks, its bitmap bit.
pub(crate) fn free_inode(fs: &mut Fs, ino: Ino, mut inode: Inode) -> Result<(), ext2fs::Error> {
    fs.free_ext_attr(ino, &mut inode)?;
    if fs.has_valid_blocks(&inode) {
        fs.punch(ino, &mut inode, 0, u64::MAX)?;
    }
    inode.i_links_count = 0;
    inode.i_dtime = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    fs.write_inode(ino, &inode)?;
    fs.inode_alloc_stats(ino, -1, inode.is_dir());
    Ok(())
}

/// Reads inode `ino`, lets `f` change it, writes it back; returns it as written.
pub(crate) fn update(
    fs: &mut Fs,
    ino: Ino,
    f: impl FnOnce(&mut Inode),
) -> Result<Inode, ext2fs::Error> {
    let mut inode = fs.read_inode(ino)?;
    f(&mut inode);
    fs.write_inode(ino, &inode)?;
    Ok(inode)
}

/// A directory's contents changed: its modification and change times are now.
pub(crate) fn touch_dir(fs: &mut Fs, dir: Ino, now: SystemTime) -> Result<(), Errno> {
    update(fs, dir, |i| {
        i.set_time(Time::Modify, now);
        i.set_time(Time::Change, now);
    })
    .map(drop)
    .map_err(errno)
}

/// The inode of directory `dir`, or `ENOTDIR`.
pub(crate) fn dir_inode(fs: &Fs, dir: Ino) -> Result<Inode, Errno> {
    let i = fs.read_inode(dir).map_err(errno)?;
    if i.is_dir() {
        Ok(i)
    } else {
        Err(Errno::ENOTDIR)
    }
}

/// The inode `name` names in `dir`, or `ENOENT`.
pub(crate) fn existing(fs: &Fs, ix: &mut Index, dir: Ino, name: &[u8]) -> Result<Ino, Errno> {
    ix.lookup(fs, dir, name)?.ok_or(Errno::ENOENT)
}

/// Fails with `EEXIST` if `name` exists in `dir`; `ENAMETOOLONG` past 255 bytes.
pub(crate) fn absent(fs: &Fs, ix: &mut Index, dir: Ino, name: &[u8]) -> Result<(), Errno> {
    if name.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    match ix.lookup(fs, dir, name)? {
        Some(_) => Err(Errno::EEXIST),
        None => Ok(()),
    }
}

/// Whether directory `dir` has entries other than `.` and `..`.
pub(crate) fn has_children(fs: &Fs, dir: Ino) -> Result<bool, Errno> {
    let mut any = false;
    fs.dir_entries(dir, |name, _, _| {
        any = name != b"." && name != b"..";
        !any
    })
    .map_err(errno)?;
    Ok(any)
}

/// The owner of a new inode in `parent` for a request by `uid`/`gid`, and whether a new
/// directory inherits the set-group-ID bit (System V semantics, as ext4 without `grpid`).
pub(crate) fn new_owner(parent: &Inode, uid: u32, gid: u32) -> (u32, u32, bool) {
    if parent.i_mode & S_ISGID != 0 {
        (uid, parent.gid(), true)
    } else {
        (uid, gid, false)
    }
}

pub(crate) fn fuse_kind(mode: u16) -> FileType {
    match ft::of_mode(mode) {
        ft::DIR => FileType::Directory,
        ft::SYMLINK => FileType::Symlink,
        ft::CHR => FileType::CharDevice,
        ft::BLK => FileType::BlockDevice,
        ft::FIFO => FileType::NamedPipe,
        ft::SOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

pub(crate) fn fuse_kind_of_ft(t: u8) -> Option<FileType> {
    Some(match t {
        ft::REG => FileType::RegularFile,
        ft::DIR => FileType::Directory,
        ft::SYMLINK => FileType::Symlink,
        ft::CHR => FileType::CharDevice,
        ft::BLK => FileType::BlockDevice,
        ft::FIFO => FileType::NamedPipe,
        ft::SOCK => FileType::Socket,
        _ => return None,
    })
}

/// What the kernel is told about inode `ino`.
pub(crate) fn attr(ino: Ino, i: &Inode, block_size: u32) -> FileAttr {
    let kind = fuse_kind(i.i_mode);
    let rdev = match kind {
        FileType::CharDevice | FileType::BlockDevice => {
            let (major, minor) = i.device();
            (major << 8) | (minor & 0xff) | ((minor & !0xff) << 12)
        }
        _ => 0,
    };
    let mtime = i.time(Time::Modify);
    FileAttr {
        ino: INodeNo(to_fuse(u64::from(ino))),
        size: i.size(),
        blocks: i.sectors(),
        atime: i.time(Time::Access),
        mtime,
        ctime: i.time(Time::Change),
        crtime: mtime,
        kind,
        perm: i.i_mode & 0o7777,
        nlink: u32::from(i.i_links_count),
        uid: i.uid(),
        gid: i.gid(),
        rdev,
        blksize: block_size,
        flags: 0,
    }
}

/// A negative entry: node id 0, cached by the kernel for the entry TTL.
pub(crate) fn negative() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// A fresh inode of `mode` (type and permissions) owned by `uid`/`gid`, all times `now`.
pub(crate) fn fresh(mode: u16, uid: u32, gid: u32, now: SystemTime, generation: u32) -> Inode {
    let mut i = Inode {
        i_mode: mode,
        i_links_count: 1,
        i_generation: generation,
        ..Default::default()
    };
    i.set_uid(uid);
    i.set_gid(gid);
    i.touch_all(now);
    i
}

/// Seconds in a TTL the kernel accepts.
pub(crate) fn clamp_ttl(ttl: Duration) -> Duration {
    ttl.min(Duration::from_secs(u64::from(u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_inode_one_swap_and_the_rest_stay() {
        assert_eq!(to_fuse(2), 1);
        assert_eq!(to_fuse(1), 2);
        assert_eq!(to_fuse(12), 12);
        for n in [1, 2, 3, 4000] {
            assert_eq!(to_fuse(to_fuse(n)), n);
        }
        assert_eq!(ino(INodeNo(1)), Ok(ext2fs::ROOT));
        assert_eq!(ino(INodeNo(u64::MAX)), Err(Errno::ENOENT));
    }

    #[test]
    fn a_set_group_id_directory_gives_its_group_and_the_bit() {
        let mut parent = fresh(ext2fs::S_IFDIR | 0o2775, 0, 500, SystemTime::now(), 1);
        assert_eq!(new_owner(&parent, 1000, 1000), (1000, 500, true));
        parent.i_mode &= !S_ISGID;
        assert_eq!(new_owner(&parent, 1000, 1000), (1000, 1000, false));
    }

    #[test]
    fn the_kernel_sees_a_whiteout_as_a_character_device_0_0_and_big_numbers_whole() {
        let mut w = fresh(ext2fs::S_IFCHR, 7, 8, SystemTime::now(), 1);
        w.set_device(0, 0);
        let a = attr(21, &w, 1024);
        assert_eq!((a.kind, a.rdev, a.perm), (FileType::CharDevice, 0, 0));
        assert_eq!((a.uid, a.gid, a.ino), (7, 8, INodeNo(21)));
        w.set_device(259, 70000);
        // The kernel's new_encode_dev.
        let rdev = attr(21, &w, 1024).rdev;
        assert_eq!(rdev, (70000 & 0xff) | (259 << 8) | ((70000 & !0xff) << 12));
    }
}
