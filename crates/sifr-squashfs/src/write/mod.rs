//! SquashFS 4.0 writer: entries in any order in, a complete image out.
//!
//! ```text
//! Writer::new(out, Options)        reserve the superblock, start the compression pool
//!   .add(path, Entry)  (any order) file data is read, compressed and written right away;
//!                                  only small per-entry metadata stays in memory
//!   .add_tree(dir)                 the same, fed by a directory walk (see `walk`)
//!   .finish()                      inode + directory tables, fragment/export/id/xattr
//!                                  tables, superblock, 4 KiB padding
//! ```
//!
//! The output is any `Write + Seek` whose position 0 is the start of the filesystem, so an
//! image can be streamed straight into a SIF partition. Output bytes depend only on the
//! entries and their order, never on thread count or timing. This module does not decide
//! what goes into an image (no filtering, no whiteouts): callers do.

mod compress;
mod data;
mod error;
mod finish;
mod meta;
mod tree;
mod walk;
mod workers;

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

pub use compress::{Compression, CompressionParseError};
pub use data::{DataStats, FileSource};
pub use error::WriteError;
pub use walk::{WalkOptions, from_dir};

use crate::format::{
    DEFAULT_BLOCK_SIZE, INVALID_XATTR, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, SUPERBLOCK_SIZE, xattr_type,
};
use data::Pipeline;
use error::Result;
use tree::{Meta, NodeKind, Tree};

/// How the image is written.
#[derive(Debug, Clone)]
pub struct Options {
    pub compression: Compression,
    /// Data block size: a power of two from 4 KiB to 1 MiB.
    pub block_size: u32,
    /// Compression threads; 0 = one per available core. Does not change the output.
    pub threads: usize,
    /// Store every entry as owned by uid 0 / gid 0.
    pub all_root: bool,
    /// Store files with identical contents once.
    pub dedup: bool,
    /// Pack files smaller than a block into shared fragment blocks.
    pub fragments: bool,
    /// Also pack the tails of multi-block files into fragments.
    pub tail_packing: bool,
    /// Write the NFS export table (inode number -> inode).
    pub exportable: bool,
    /// Keep extended attributes (user., trusted., security.).
    pub xattrs: bool,
    /// Superblock modification time; `None` = the newest entry mtime (deterministic,
    /// unlike "now").
    pub mtime: Option<u32>,
    /// `SOURCE_DATE_EPOCH`: an entry dated later than this is stored with this time, as
    /// `mksquashfs` and `tar --clamp-mtime` do. Earlier times are kept: a base image's files
    /// keep their own dates, and only what the build itself wrote (dated "now") is moved.
    pub mtime_limit: Option<i64>,
    /// Told how far the data has got after each regular file (files and bytes so far), for a
    /// progress line. Called on the thread that adds entries.
    pub progress: Option<Progress>,
}

/// A progress callback: `(files, bytes)` of file content added so far.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            compression: Compression::default(),
            block_size: DEFAULT_BLOCK_SIZE,
            threads: 0,
            all_root: false,
            dedup: true,
            fragments: true,
            tail_packing: true,
            exportable: true,
            xattrs: true,
            mtime: None,
            mtime_limit: None,
            progress: None,
        }
    }
}

/// One extended attribute, full name (`user.foo`, `security.capability`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// What an entry is.
pub enum EntryKind<'a> {
    Directory,
    File(FileSource<'a>),
    Symlink(PathBuf),
    /// Another inode's path in the image; resolved at `finish`, so it may be added later.
    HardLink(PathBuf),
    BlockDevice {
        major: u32,
        minor: u32,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
    Socket,
}

/// One entry: kind plus metadata. `mode` holds permission bits (incl. setuid/setgid/
/// sticky); file-type bits, if present, are ignored. Hard links take their metadata from
/// their target.
pub struct Entry<'a> {
    pub kind: EntryKind<'a>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch; clamped to squashfs's unsigned 32-bit range.
    pub mtime: i64,
    pub xattrs: Vec<Xattr>,
}

impl<'a> Entry<'a> {
    /// An entry owned by root with mtime 0 and no xattrs.
    pub fn new(kind: EntryKind<'a>, mode: u32) -> Self {
        Entry {
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        }
    }
}

/// What `finish` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Filesystem size without padding (the superblock's `bytes_used`).
    pub bytes_used: u64,
    /// Bytes written including the 4 KiB padding.
    pub image_size: u64,
    pub inodes: u32,
    pub fragments: u32,
    pub data: DataStats,
    /// Extended attributes dropped because squashfs cannot store their namespace.
    pub skipped_xattrs: u64,
}

/// The image being written. See the module docs for the call sequence.
pub struct Writer<W: Write + Seek> {
    opts: Options,
    data: Pipeline<W>,
    tree: Tree,
    xattr_sets: std::collections::HashMap<Vec<Xattr>, u32>,
    xattr_list: Vec<Vec<(u16, Xattr)>>,
    skipped_xattrs: u64,
    max_mtime: u32,
}

/// An entry's stored time: at most `limit` (see [`Options::mtime_limit`]), then within
/// squashfs's unsigned 32-bit range.
fn clamp_mtime(t: i64, limit: Option<i64>) -> u32 {
    let t = limit.map_or(t, |l| t.min(l));
    t.clamp(0, i64::from(u32::MAX)) as u32
}

impl<W: Write + Seek> Writer<W> {
    pub fn new(out: W, opts: Options) -> Result<Self> {
        let bs = opts.block_size;
        if !bs.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bs) {
            return Err(WriteError::BlockSize { size: bs });
        }
        let header = SUPERBLOCK_SIZE as u64
            + opts
                .compression
                .options_record()
                .map_or(0, |r| r.len() as u64 + 2);
        let data = Pipeline::new(out, &opts, header)?;
        Ok(Writer {
            opts,
            data,
            tree: Tree::new(Meta::implicit_dir(0)),
            xattr_sets: Default::default(),
            xattr_list: Vec::new(),
            skipped_xattrs: 0,
            max_mtime: 0,
        })
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Add (or replace) the entry at `path` (relative or absolute inside the image; `/`
    /// or empty is the root directory). A regular file's contents are consumed now.
    pub fn add(&mut self, path: impl AsRef<Path>, entry: Entry<'_>) -> Result<()> {
        self.add_impl(path.as_ref(), entry, None)
    }

    /// `add`, with a regular file's contents already read (and maybe hashed) by `walk`'s
    /// reader thread; `loaded` is ignored for other kinds.
    pub(crate) fn add_impl(
        &mut self,
        path: &Path,
        entry: Entry<'_>,
        loaded: Option<data::Prefetched<'_>>,
    ) -> Result<()> {
        tree::components(path)?;
        let mtime = clamp_mtime(entry.mtime, self.opts.mtime_limit);
        self.max_mtime = self.max_mtime.max(mtime);
        let xattr = if self.opts.xattrs {
            self.xattr_id(entry.xattrs)
        } else {
            INVALID_XATTR
        };
        let (uid, gid) = if self.opts.all_root {
            (0, 0)
        } else {
            (entry.uid, entry.gid)
        };
        let meta = Meta {
            mode: (entry.mode & 0o7777) as u16,
            uid,
            gid,
            mtime,
            xattr,
        };
        let os = |p: PathBuf| -> Box<[u8]> {
            use std::os::unix::ffi::OsStringExt;
            p.into_os_string().into_vec().into_boxed_slice()
        };
        let kind = match entry.kind {
            EntryKind::Directory => NodeKind::Dir(Vec::new()),
            EntryKind::File(src) => {
                let id = match loaded {
                    Some(f) => self.data.add_loaded(f)?,
                    None => self.data.add_file(src, path)?,
                };
                if let Some(p) = &self.opts.progress {
                    let s = self.data.stats();
                    (p.0)(s.files, s.bytes_in);
                }
                NodeKind::File(id)
            }
            EntryKind::Symlink(t) => NodeKind::Symlink(os(t)),
            EntryKind::HardLink(t) => NodeKind::HardLink(os(t)),
            EntryKind::BlockDevice { major, minor } => {
                NodeKind::BlockDev(crate::format::encode_dev(major, minor))
            }
            EntryKind::CharDevice { major, minor } => {
                NodeKind::CharDev(crate::format::encode_dev(major, minor))
            }
            EntryKind::Fifo => NodeKind::Fifo,
            EntryKind::Socket => NodeKind::Socket,
        };
        let implicit = Meta::implicit_dir(mtime);
        self.tree.insert(path, kind, meta, &implicit)?;
        Ok(())
    }

    /// Deduplicate an xattr set into an id; squashfs can only store the user., trusted.
    /// and security. namespaces, others are counted and dropped.
    fn xattr_id(&mut self, mut xattrs: Vec<Xattr>) -> u32 {
        if xattrs.is_empty() {
            return INVALID_XATTR;
        }
        xattrs.sort();
        xattrs.dedup_by(|a, b| a.name == b.name);
        if let Some(&id) = self.xattr_sets.get(&xattrs) {
            return id;
        }
        let mut typed = Vec::new();
        for x in &xattrs {
            let (t, prefix): (u16, &[u8]) = if x.name.starts_with(b"user.") {
                (xattr_type::USER, b"user.")
            } else if x.name.starts_with(b"trusted.") {
                (xattr_type::TRUSTED, b"trusted.")
            } else if x.name.starts_with(b"security.") {
                (xattr_type::SECURITY, b"security.")
            } else {
                self.skipped_xattrs += 1;
                continue;
            };
            typed.push((
                t,
                Xattr {
                    name: x.name[prefix.len()..].to_vec(),
                    value: x.value.clone(),
                },
            ));
        }
        if typed.is_empty() {
            return INVALID_XATTR;
        }
        let id = self.xattr_list.len() as u32;
        self.xattr_list.push(typed);
        self.xattr_sets.insert(xattrs, id);
        id
    }

    /// Write the metadata tables and the superblock; returns what was written.
    pub fn finish(self) -> Result<Summary> {
        finish::finish(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_moves_later_times_to_it_and_keeps_earlier_ones() {
        assert_eq!(clamp_mtime(1_000, Some(2_000)), 1_000);
        assert_eq!(clamp_mtime(2_000, Some(2_000)), 2_000);
        assert_eq!(clamp_mtime(3_000, Some(2_000)), 2_000);
        assert_eq!(clamp_mtime(3_000, None), 3_000);
        // Out of squashfs's range either way.
        assert_eq!(clamp_mtime(-5, Some(2_000)), 0);
        assert_eq!(clamp_mtime(i64::MAX, None), u32::MAX);
    }

    /// Every inode's time and the superblock's, written with `limit`.
    fn stored_times(limit: Option<i64>) -> (Vec<(PathBuf, u32)>, u32) {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("img");
        let opts = Options {
            mtime_limit: limit,
            ..Options::default()
        };
        let mut w = Writer::new(std::fs::File::create(&img).unwrap(), opts).unwrap();
        for (path, mtime) in [("old", 1_000), ("new", 3_000), ("dir/new", 4_000)] {
            let mut e = Entry::new(EntryKind::File(FileSource::Bytes(b"x")), 0o644);
            e.mtime = mtime;
            w.add(path, e).unwrap();
        }
        let mut root = Entry::new(EntryKind::Directory, 0o755);
        root.mtime = 5_000;
        w.add("/", root).unwrap();
        w.finish().unwrap();
        let a = crate::read::Archive::open(std::fs::File::open(&img).unwrap(), 0).unwrap();
        let times = a
            .walk()
            .unwrap()
            .into_iter()
            .map(|e| (e.path, e.inode.mtime))
            .collect();
        (times, a.superblock().mod_time)
    }

    #[test]
    fn an_image_written_with_a_limit_holds_no_later_time() {
        let (times, sb) = stored_times(Some(2_000));
        let want: Vec<(PathBuf, u32)> = [("", 2_000), ("dir", 2_000), ("dir/new", 2_000)]
            .into_iter()
            .chain([("new", 2_000), ("old", 1_000)])
            .map(|(p, t)| (PathBuf::from(p), t))
            .collect();
        let mut got = times.clone();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(sb, 2_000, "the filesystem is dated by the limit");
        // Without one the same entries keep their times (the test can tell the difference).
        let (times, sb) = stored_times(None);
        assert!(times.iter().any(|(_, t)| *t == 4_000), "{times:?}");
        assert_eq!(sb, 5_000);
    }
}
