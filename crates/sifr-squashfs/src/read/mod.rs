//! Random-access SquashFS 4.0 reader.
//!
//! [`Archive::open`] reads only the superblock, the compressor options and the pointer arrays
//! of the small lookup tables; everything else is decoded on demand through bounded caches.
//! All methods take `&self` and [`Archive`] is `Send + Sync`, so one archive can serve many
//! threads (the FUSE server) with positional reads at an offset inside a bigger file (SIF).
//!
//! The image is untrusted: every size and position read from it is checked against the image
//! size or a fixed bound before use, structure walks only move forward, and directory walks
//! refuse cycles, so a corrupt or hostile image ends in an [`Error`], never a panic, a hang or
//! an allocation driven by a claimed size. This module must not print, and must not write
//! anywhere except through [`Archive::extract_to`].

mod cache;
mod compress;
mod data;
mod dir;
mod error;
mod extract;
mod inode;
mod metadata;
mod source;
mod superblock;
mod tables;
mod xattr;

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use compress::Compressor;
pub use dir::{DirEntry, MAX_DIR_ENTRIES};
pub use error::{Error, Result};
pub use extract::{ExtractOptions, ExtractReport};
pub use inode::{DirInfo, FileInfo, FileType, Inode, InodeKind};
pub use superblock::{CompressorOptions, SUPERBLOCK_SIZE, Superblock, flags};
pub use xattr::Xattr;

use cache::Cache;
use metadata::MetaBlock;
use source::Source;
use superblock::NO_TABLE;
use tables::Lookup;
use xattr::XattrTable;

/// Deepest directory nesting walked by [`Archive::walk`] and extraction; deeper images are
/// refused rather than risking the stack (PATH_MAX allows at most ~2048 levels anyway).
pub const MAX_DEPTH: usize = 1024;

/// Cache sizes, in entries. Metadata blocks are 8 KiB, data blocks up to the block size.
const META_CACHE: usize = 256;
const FRAG_CACHE: usize = 32;
const DATA_CACHE: usize = 32;
/// What a path walk does with the symlinks it meets.
#[derive(Clone, Copy)]
enum Symlinks {
    /// Stop at them ([`Archive::lookup`]).
    Keep,
    /// Follow them as the kernel would ([`Archive::resolve`]).
    Follow,
}

/// Most symlinks one [`Archive::resolve`] follows (the kernel's limit).
const MAX_LINKS: usize = 40;
/// Decoded block lists of recently read files (4 bytes per block each).
const INDEX_CACHE: usize = 64;

/// An open SquashFS image.
#[derive(Debug)]
pub struct Archive {
    src: Source,
    sb: Superblock,
    options: Option<CompressorOptions>,
    meta_cache: Cache<MetaBlock>,
    frag_cache: Cache<Vec<u8>>,
    data_cache: Cache<Vec<u8>>,
    index_cache: Cache<data::BlockIndex>,
    ids: Vec<u32>,
    fragments: Option<Lookup>,
    export: Option<Lookup>,
    xattrs: Option<XattrTable>,
}

/// Pushes the `/`-separated components of `path` onto `todo` so that the first is popped first.
fn push_components(todo: &mut Vec<Vec<u8>>, path: &[u8]) {
    todo.extend(path.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
}

/// One object found by [`Archive::walk`].
#[derive(Debug, Clone)]
pub struct WalkEntry {
    /// Path relative to the root (empty for the root itself).
    pub path: PathBuf,
    pub inode: Inode,
}

impl Archive {
    /// The descriptor of the image file this archive reads (a forked server that closes every
    /// other descriptor keeps it).
    pub fn image_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.src.fd()
    }

    /// Opens the filesystem that starts `offset` bytes into `file`.
    pub fn open(file: File, offset: u64) -> Result<Self> {
        let mut src = Source::new(file, offset)?;
        let mut b = [0u8; SUPERBLOCK_SIZE];
        src.read_exact("superblock", 0, &mut b)?;
        let sb = Superblock::parse(&b, src.size())?;
        src.limit(sb.bytes_used);
        let mut a = Archive {
            src,
            sb,
            options: None,
            meta_cache: Cache::new(META_CACHE),
            frag_cache: Cache::new(FRAG_CACHE),
            data_cache: Cache::new(DATA_CACHE),
            index_cache: Cache::new(INDEX_CACHE),
            ids: Vec::new(),
            fragments: None,
            export: None,
            xattrs: None,
        };
        if a.sb.has(flags::COMPRESSOR_OPTIONS) {
            let block = a.meta_block(SUPERBLOCK_SIZE as u64)?;
            a.options = Some(CompressorOptions::parse(a.sb.compressor, &block.data));
        }
        let ids = Lookup::open(&a, "id", a.sb.id_table, u64::from(a.sb.id_count), 4)?;
        let mut ids_out = Vec::with_capacity(usize::from(a.sb.id_count));
        for i in 0..ids.len() {
            let mut e = [0u8; 4];
            ids.entry(&a, i, &mut e)?;
            ids_out.push(u32::from_le_bytes(e));
        }
        a.ids = ids_out;
        if a.sb.fragment_table != NO_TABLE && a.sb.fragment_count > 0 {
            a.fragments = Some(Lookup::open(
                &a,
                "fragment",
                a.sb.fragment_table,
                u64::from(a.sb.fragment_count),
                16,
            )?);
        }
        if a.sb.export_table != NO_TABLE {
            a.export = Some(Lookup::open(
                &a,
                "export",
                a.sb.export_table,
                u64::from(a.sb.inode_count),
                8,
            )?);
        }
        a.xattrs = XattrTable::open(&a)?;
        Ok(a)
    }

    /// The decoded superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Compressor options, when the image stores them.
    pub fn compressor_options(&self) -> Option<&CompressorOptions> {
        self.options.as_ref()
    }

    pub(crate) fn id(&self, index: u16) -> Result<u32> {
        self.ids.get(usize::from(index)).copied().ok_or_else(|| {
            Error::table(
                "id",
                format!("index {index} out of range (table has {})", self.ids.len()),
            )
        })
    }

    /// The root directory.
    pub fn root(&self) -> Result<Inode> {
        let root = self.inode_by_ref(self.sb.root_inode)?;
        if !root.is_dir() {
            return Err(Error::WrongType {
                inode: root.number,
                want: "directory (root)",
            });
        }
        Ok(root)
    }

    /// The reference of inode number `number`, from the export table.
    pub fn inode_ref(&self, number: u32) -> Result<u64> {
        let t = self
            .export
            .as_ref()
            .ok_or(Error::NoExportTable { inode: number })?;
        if number == 0 {
            return Err(Error::table("export", "inode number 0"));
        }
        let mut e = [0u8; 8];
        t.entry(self, u64::from(number - 1), &mut e)?;
        Ok(u64::from_le_bytes(e))
    }

    /// Inode number `number` (needs the export table).
    pub fn inode(&self, number: u32) -> Result<Inode> {
        let inode = self.inode_by_ref(self.inode_ref(number)?)?;
        if inode.number != number {
            return Err(Error::table(
                "export",
                format!("entry for inode {number} points at inode {}", inode.number),
            ));
        }
        Ok(inode)
    }

    /// Resolves `path` (absolute or relative to the root) without following symlinks.
    /// `Ok(None)` when a component is missing or a non-final component is not a directory.
    pub fn lookup(&self, path: impl AsRef<Path>) -> Result<Option<Inode>> {
        self.walk_path(path.as_ref().as_os_str().as_bytes(), Symlinks::Keep)
    }

    /// Resolves `path` as the kernel would inside the image: symlinks are followed (an
    /// absolute target starts again at the image's root), and `..` never leaves the root.
    /// `Ok(None)` when a component is missing, a non-final component is not a directory, or
    /// more than 40 links are met (a loop).
    pub fn resolve(&self, path: impl AsRef<Path>) -> Result<Option<Inode>> {
        self.walk_path(path.as_ref().as_os_str().as_bytes(), Symlinks::Follow)
    }

    /// [`Archive::lookup`] and, with [`Symlinks::Follow`], [`Archive::resolve`]. Empty and
    /// `.` components are skipped, `..` stops at the root.
    fn walk_path(&self, path: &[u8], symlinks: Symlinks) -> Result<Option<Inode>> {
        let follow = matches!(symlinks, Symlinks::Follow);
        // Components still to walk, the next one last.
        let mut todo: Vec<Vec<u8>> = Vec::new();
        push_components(&mut todo, path);
        let mut stack = vec![self.root()?];
        let mut links = 0;
        while let Some(name) = todo.pop() {
            match name.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let Some(dir) = stack.last().filter(|d| d.is_dir()) else {
                return Ok(None);
            };
            let Some(e) = self.lookup_in(dir, &name)? else {
                return Ok(None);
            };
            let inode = self.inode_by_ref(e.inode_ref)?;
            match inode.symlink_target().filter(|_| follow) {
                Some(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Ok(None);
                    }
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        stack.truncate(1);
                    }
                    push_components(&mut todo, target);
                }
                None => stack.push(inode),
            }
        }
        Ok(stack.pop())
    }

    /// Symlink target of `inode`.
    pub fn read_link(&self, inode: &Inode) -> Result<PathBuf> {
        inode
            .symlink_target()
            .map(PathBuf::from)
            .ok_or(Error::WrongType {
                inode: inode.number,
                want: "symlink",
            })
    }

    /// Every object in the image, parents before children, entries in stored order.
    pub fn walk(&self) -> Result<Vec<WalkEntry>> {
        let mut out = Vec::new();
        self.walk_with(|path, inode| {
            out.push(WalkEntry {
                path: path.to_path_buf(),
                inode: inode.clone(),
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` for every object, parents before children, without collecting them.
    pub fn walk_with(&self, mut f: impl FnMut(&Path, &Inode) -> Result<()>) -> Result<()> {
        let root = self.root()?;
        f(Path::new(""), &root)?;
        let mut seen = HashSet::new();
        seen.insert(root.number);
        // Explicit stack of pending (path, directory) pairs: depth-first, no recursion.
        let mut pending = vec![(PathBuf::new(), root, 0usize)];
        while let Some((path, dir, depth)) = pending.pop() {
            let mut subdirs = Vec::new();
            for e in self.read_dir(&dir)? {
                let p = path.join(e.name_os());
                let inode = self.inode_by_ref(e.inode_ref)?;
                f(&p, &inode)?;
                if inode.is_dir() {
                    self.check_new_dir(&mut seen, &inode, &p, depth + 1)?;
                    subdirs.push((p, inode, depth + 1));
                }
            }
            pending.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    /// Refuses a directory already seen (a cycle or a hard-linked directory) or too deep.
    pub(crate) fn check_new_dir(
        &self,
        seen: &mut HashSet<u32>,
        dir: &Inode,
        path: &Path,
        depth: usize,
    ) -> Result<()> {
        if !seen.insert(dir.number) {
            return Err(Error::DirectoryCycle {
                inode: dir.number,
                path: path.display().to_string(),
            });
        }
        if depth > MAX_DEPTH {
            return Err(Error::BadDirectory {
                inode: dir.number,
                what: format!("nested deeper than {MAX_DEPTH}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Archive>();
    }
}
