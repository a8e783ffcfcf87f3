//! Directory-walk front end: feeds a host directory tree into a `Writer`.
//!
//! Every entry is read with lstat (symlinks are stored, never followed) and llistxattr/
//! lgetxattr; names are visited in byte order so the image does not depend on readdir
//! order. Files sharing a (device, inode) pair become hard links to the first path seen.
//! A directory's own entries are added before its subdirectories are descended into, so
//! only one directory listing is held at a time per level. It must not change the source.
//!
//! Pipelining: one reader thread walks the tree (readdir, one lstat per entry, xattrs,
//! symlink targets) and reads and hashes small regular files, handing finished entries to
//! the calling thread in batches over a bounded channel. The calling thread only inserts
//! entries and feeds the compression pool, so reading overlaps compression without ever
//! waiting for a batch to be read. The entry order is the walk order, fixed by the names
//! alone, so the image does not depend on timing or thread count.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io::{self, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};

use super::data::{self, Loaded, Prefetched, Stamp};
use super::error::{Result, WriteError};
use super::{Entry, EntryKind, FileSource, Options, Summary, Writer, Xattr};

/// A batch is handed over once it holds this many bytes of file contents...
const BATCH_BYTES: usize = 2 << 20;
/// ...or this many entries (small enough that the compressor pool gets work early).
const BATCH_ENTRIES: usize = 256;
/// Batches queued between the reader and the caller. Read-ahead memory is bounded by
/// about (BATCHES + 2) x (BATCH_BYTES + one small file): a few MiB for typical trees.
const BATCHES: usize = 8;

/// What the walk reads besides names and contents.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Read extended attributes (errors other than "not supported" are fatal).
    pub xattrs: bool,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions { xattrs: true }
    }
}

/// Pack the directory `src` into a new image written to `out`.
pub fn from_dir<W: Write + Seek>(src: &Path, out: W, opts: Options) -> Result<Summary> {
    let walk = WalkOptions {
        xattrs: opts.xattrs,
    };
    let mut w = Writer::new(out, opts)?;
    w.add_tree(src, &walk)?;
    w.finish()
}

fn major(rdev: u64) -> u32 {
    (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32
}

fn minor(rdev: u64) -> u32 {
    ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32
}

fn read_xattrs(path: &Path) -> Result<Vec<Xattr>> {
    let err = |source| WriteError::Xattr {
        path: path.to_path_buf(),
        source,
    };
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(err(e)),
    };
    let mut out = Vec::new();
    for name in names {
        // A value removed between list and get is simply gone.
        if let Some(value) = xattr::get(path, &name).map_err(err)? {
            out.push(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            });
        }
    }
    Ok(out)
}

/// One host entry as the reader thread found it.
struct Found {
    host: PathBuf,
    image: PathBuf,
    /// The entry's single lstat, passed through instead of a second one.
    md: Metadata,
    xattrs: Vec<Xattr>,
    what: What,
}

enum What {
    /// A later path of a (device, inode) pair already seen: a link to that image path.
    Link(PathBuf),
    Symlink(PathBuf),
    /// A regular file with its contents read and hashed, or `None` when it is too large
    /// to hold (the caller streams it).
    File(Option<Loaded>),
    Other,
}

/// The reader thread: walks `src` depth-first in byte order of names and sends entries in
/// that order. Stops at the first error (sent last) or when the caller hangs up.
fn reader(src: &Path, walk: &WalkOptions, dedup: bool, tx: &Sender<Vec<Result<Found>>>) {
    let mut r = Reader {
        walk,
        dedup,
        tx,
        batch: Vec::new(),
        bytes: 0,
        links: HashMap::new(),
        sizes: HashSet::new(),
    };
    if let Err(e) = r.run(src) {
        r.batch.push(Err(e));
    }
    if !r.batch.is_empty() {
        let _ = tx.send(std::mem::take(&mut r.batch));
    }
}

struct Reader<'a> {
    walk: &'a WalkOptions,
    dedup: bool,
    tx: &'a Sender<Vec<Result<Found>>>,
    batch: Vec<Result<Found>>,
    bytes: usize,
    links: HashMap<(u64, u64), PathBuf>,
    /// Sizes of the files read so far: a file is hashed here only if its size was seen
    /// before (see `Pipeline::add_loaded`; most files have a size no other file has).
    sizes: HashSet<u64>,
}

/// The caller stopped receiving (it failed or is unwinding): stop walking quietly.
struct HungUp;

impl Reader<'_> {
    fn run(&mut self, src: &Path) -> Result<()> {
        if self.entry(src.to_path_buf(), PathBuf::from("/"))?.is_err() {
            return Ok(());
        }
        // Depth-first, each directory's entries in byte order.
        let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = src.join(&rel);
            let rd = fs::read_dir(&dir).map_err(|e| WriteError::read(&dir, e))?;
            let mut names: Vec<OsString> = Vec::new();
            for ent in rd {
                names.push(ent.map_err(|e| WriteError::read(&dir, e))?.file_name());
            }
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let mut subdirs = Vec::new();
            for name in names {
                let child = rel.join(&name);
                match self.entry(dir.join(&name), child.clone())? {
                    Ok(true) => subdirs.push(child),
                    Ok(false) => {}
                    Err(HungUp) => return Ok(()),
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    /// Read one entry and queue it; returns whether it is a directory to descend.
    fn entry(
        &mut self,
        host: PathBuf,
        image: PathBuf,
    ) -> Result<std::result::Result<bool, HungUp>> {
        let md = fs::symlink_metadata(&host).map_err(|e| WriteError::read(&host, e))?;
        let ft = md.file_type();
        let xattrs = if self.walk.xattrs {
            read_xattrs(&host)?
        } else {
            Vec::new()
        };
        let mut what = What::Other;
        if !ft.is_dir() && md.nlink() > 1 {
            match self.links.get(&(md.dev(), md.ino())) {
                Some(first) => what = What::Link(first.clone()),
                None => {
                    self.links.insert((md.dev(), md.ino()), image.clone());
                }
            }
        }
        if matches!(what, What::Other) {
            if ft.is_symlink() {
                let t = fs::read_link(&host).map_err(|e| WriteError::read(&host, e))?;
                what = What::Symlink(t);
            } else if ft.is_file() {
                // Hash only a size met before: a unique size cannot be a duplicate.
                let hashing = if self.dedup && !self.sizes.insert(md.len()) {
                    data::Hashing::Compute
                } else {
                    data::Hashing::Skip
                };
                let loaded = data::read_small(&host, md.len(), hashing)
                    .transpose()
                    .map_err(|e| WriteError::read(&host, e))?;
                self.bytes += loaded.as_ref().map_or(0, |(d, _)| d.len());
                what = What::File(loaded);
            }
        }
        self.batch.push(Ok(Found {
            host,
            image,
            md,
            xattrs,
            what,
        }));
        if self.bytes >= BATCH_BYTES || self.batch.len() >= BATCH_ENTRIES {
            self.bytes = 0;
            if self.tx.send(std::mem::take(&mut self.batch)).is_err() {
                return Ok(Err(HungUp));
            }
        }
        Ok(Ok(ft.is_dir()))
    }
}

impl<W: Write + Seek> Writer<W> {
    /// Add the contents of host directory `src` as the image root (`src`'s own metadata
    /// becomes the root directory's).
    pub fn add_tree(&mut self, src: &Path, walk: &WalkOptions) -> Result<()> {
        let dedup = self.opts.dedup;
        let (tx, rx): (Sender<_>, Receiver<_>) = crossbeam_channel::bounded(BATCHES);
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("sqfs-walk".into())
                .spawn_scoped(s, move || reader(src, walk, dedup, &tx))
                .map_err(|e| WriteError::read(src, e))?;
            // On an early return `rx` is dropped here, so the reader's next send fails
            // and it stops; the scope then joins it.
            let rx = rx;
            for batch in rx.iter() {
                for found in batch {
                    self.add_found(found?)?;
                }
            }
            Ok(())
        })
    }

    /// Add one entry the reader thread found.
    fn add_found(&mut self, f: Found) -> Result<()> {
        let Found {
            host,
            image,
            md,
            xattrs,
            what,
        } = f;
        let ft = md.file_type();
        let rdev = md.rdev();
        let (kind, loaded) = match what {
            What::Link(target) => (EntryKind::HardLink(target), None),
            What::Symlink(t) => (EntryKind::Symlink(t), None),
            What::File(loaded) => (EntryKind::File(FileSource::Path(&host)), loaded),
            What::Other if ft.is_dir() => (EntryKind::Directory, None),
            What::Other if ft.is_block_device() => (
                EntryKind::BlockDevice {
                    major: major(rdev),
                    minor: minor(rdev),
                },
                None,
            ),
            What::Other if ft.is_char_device() => (
                EntryKind::CharDevice {
                    major: major(rdev),
                    minor: minor(rdev),
                },
                None,
            ),
            What::Other if ft.is_fifo() => (EntryKind::Fifo, None),
            What::Other if ft.is_socket() => (EntryKind::Socket, None),
            What::Other => {
                return Err(WriteError::read(
                    &host,
                    io::Error::other("unknown file type"),
                ));
            }
        };
        let entry = Entry {
            kind,
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            xattrs,
        };
        let loaded = loaded.as_ref().map(|(d, h)| Prefetched {
            data: d,
            hash: *h,
            path: &host,
            stamp: Stamp::of(&md),
        });
        self.add_impl(&image, entry, loaded)
    }
}
