//! Where merged entries go: the [`Sink`] trait, the SquashFS writer behind it, and an
//! in-memory sink for tests and inspection.
//!
//! A sink receives every visible entry exactly once, in an order where a directory's own
//! entry may come after its children (newest-first merging meets a child in an upper layer
//! before the directory's metadata in a lower one). A sink must therefore create missing
//! parents implicitly and let a later directory entry set the metadata of an implicit one,
//! as the SquashFS writer does. A hard link may name a path delivered later, or another hard
//! link (an upper layer linking to a lower layer's link): sinks resolve links at the end and
//! follow chains, as the SquashFS writer does. Sinks never touch the host filesystem on the
//! merger's behalf.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;

use super::RelPath;

/// Boxed error from a sink, kept as the `source` of [`super::MergeError::Sink`].
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    /// A regular file; its `size` bytes are read from the data reader.
    File {
        size: u64,
    },
    /// Target bytes exactly as stored; interpreted only inside the container.
    Symlink(Vec<u8>),
    /// Another entry of the image (already delivered, or delivered later in this merge).
    HardLink(RelPath),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// Ownership, permissions, time and extended attributes of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryMeta {
    /// Permission bits including setuid/setgid/sticky (`0o7777`); no file-type bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Full names (`user.x`, `security.capability`) from PAX `SCHILY.xattr.` records.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Consumer of merged entries. `data` yields a regular file's bytes and nothing otherwise.
pub trait Sink {
    fn entry(
        &mut self,
        path: &RelPath,
        kind: &EntryKind,
        meta: &EntryMeta,
        data: &mut dyn Read,
    ) -> Result<(), SinkError>;
}

// stays literal: every `Sink` implementation repeats the trait's method signatures.
impl<S: Sink + ?Sized> Sink for &mut S {
    fn entry(
        &mut self,
        path: &RelPath,
        kind: &EntryKind,
        meta: &EntryMeta,
        data: &mut dyn Read,
    ) -> Result<(), SinkError> {
        (**self).entry(path, kind, meta, data)
    }
}

/// Streams entries into a SquashFS image being written.
pub struct SquashfsSink<'w, W: Write + Seek> {
    writer: &'w mut sifr_squashfs::Writer<W>,
}

impl<'w, W: Write + Seek> SquashfsSink<'w, W> {
    pub fn new(writer: &'w mut sifr_squashfs::Writer<W>) -> Self {
        SquashfsSink { writer }
    }
}

impl<W: Write + Seek> Sink for SquashfsSink<'_, W> {
    fn entry(
        &mut self,
        path: &RelPath,
        kind: &EntryKind,
        meta: &EntryMeta,
        data: &mut dyn Read,
    ) -> Result<(), SinkError> {
        use sifr_squashfs::{EntryKind as K, FileSource};
        let os = |b: &[u8]| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b));
        let kind = match kind {
            EntryKind::Directory => K::Directory,
            EntryKind::File { size: 0 } => K::File(FileSource::Empty),
            EntryKind::File { .. } => K::File(FileSource::Reader(data)),
            EntryKind::Symlink(t) => K::Symlink(os(t)),
            EntryKind::HardLink(t) => K::HardLink(os(t.as_bytes())),
            EntryKind::CharDevice { major, minor } => K::CharDevice {
                major: *major,
                minor: *minor,
            },
            EntryKind::BlockDevice { major, minor } => K::BlockDevice {
                major: *major,
                minor: *minor,
            },
            EntryKind::Fifo => K::Fifo,
        };
        let entry = sifr_squashfs::Entry {
            kind,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
            xattrs: meta
                .xattrs
                .iter()
                .map(|(name, value)| sifr_squashfs::Xattr {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        };
        self.writer.add(path.as_path(), entry)?;
        Ok(())
    }
}

/// One entry kept by [`MemorySink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemEntry {
    pub kind: EntryKind,
    pub meta: EntryMeta,
    pub data: Vec<u8>,
}

/// Keeps everything in memory; refuses a path delivered twice unless it is a directory
/// (a lower layer's directory metadata over a parent implied by an upper layer's child).
#[derive(Debug, Default)]
pub struct MemorySink {
    pub entries: BTreeMap<RelPath, MemEntry>,
    /// Paths in delivery order.
    pub order: Vec<RelPath>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry at `path` (written like `a/b`), if delivered.
    pub fn get(&self, path: &str) -> Option<&MemEntry> {
        self.entries.get(&RelPath::new(path).ok()?)
    }

    /// Delivered paths as strings, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.entries
            .keys()
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .collect()
    }
}

/// A path delivered twice to [`MemorySink`].
#[derive(Debug, thiserror::Error)]
#[error("entry `{0}` delivered twice")]
pub struct Duplicate(pub RelPath);

impl Sink for MemorySink {
    fn entry(
        &mut self,
        path: &RelPath,
        kind: &EntryKind,
        meta: &EntryMeta,
        data: &mut dyn Read,
    ) -> Result<(), SinkError> {
        if let Some(old) = self.entries.get(path)
            && !(old.kind == EntryKind::Directory && *kind == EntryKind::Directory)
        {
            return Err(Box::new(Duplicate(path.clone())));
        }
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)?;
        self.order.push(path.clone());
        self.entries.insert(
            path.clone(),
            MemEntry {
                kind: kind.clone(),
                meta: meta.clone(),
                data: buf,
            },
        );
        Ok(())
    }
}
