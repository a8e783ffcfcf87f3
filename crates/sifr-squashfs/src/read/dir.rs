//! Directory listings: headers and entries in the directory table, and lookup by name that
//! uses an extended directory's index to skip ahead.
//!
//! Names are checked as they are decoded: empty names, `.`, `..` and names holding `/` or NUL
//! are errors, so nothing downstream (extraction, FUSE) ever sees them. Listings are bounded by
//! their stored size and by the end of the directory table. This module must not read inodes
//! beyond the directory inode it is given, nor follow entries.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use super::Archive;
use super::error::{Error, Result};
use super::inode::{DirInfo, FileType, Inode, InodeKind, MAX_NAME};
use super::metadata::{Cursor, METADATA_SIZE};

/// Most entries accepted in one directory. Metadata compresses up to ~1000:1, so without a cap
/// a small hostile image could make one listing decode to tens of millions of entries; 4 Mi
/// entries (a few hundred MiB decoded) is far beyond real images.
pub const MAX_DIR_ENTRIES: usize = 1 << 22;

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Entry name (raw bytes; never empty, `.`, `..`, and never holds `/` or NUL).
    pub name: Vec<u8>,
    /// Reference of the entry's inode.
    pub inode_ref: u64,
    /// Inode number of the entry's inode.
    pub inode_number: u32,
    /// Type recorded in the entry (matches the inode's).
    pub file_type: FileType,
}

impl DirEntry {
    pub fn name_os(&self) -> &OsStr {
        OsStr::from_bytes(&self.name)
    }
}

/// Whether `name` is a plain name that may appear in a directory.
pub(crate) fn is_plain_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// Walks one listing: headers then entries, until `remaining` bytes are used.
struct Listing<'a> {
    cursor: Cursor<'a>,
    remaining: u64,
    in_header: u32,
    start: u32,
    base: u32,
    dir: u32,
}

impl Archive {
    fn dir_info<'i>(&self, dir: &'i Inode) -> Result<&'i DirInfo> {
        match &dir.kind {
            InodeKind::Directory(d) => Ok(d),
            _ => Err(Error::WrongType {
                inode: dir.number,
                want: "directory",
            }),
        }
    }

    fn listing(&self, dir: &Inode, block: u32, offset: u16, consumed: u64) -> Result<Listing<'_>> {
        let d = self.dir_info(dir)?;
        let bad = |what: String| Error::BadDirectory {
            inode: dir.number,
            what,
        };
        let size = u64::from(d.size);
        if size < 3 {
            return Err(bad(format!("listing size {size} is below 3")));
        }
        let end = self.sb.directory_table_end();
        let pos = self.sb.directory_table + u64::from(block);
        let cursor = self
            .cursor(pos, offset, end)
            .map_err(|e| bad(e.to_string()))?;
        let remaining = (size - 3).saturating_sub(consumed);
        Ok(Listing {
            cursor,
            remaining,
            in_header: 0,
            start: 0,
            base: 0,
            dir: dir.number,
        })
    }

    /// All entries of directory `dir`, in stored (sorted) order.
    pub fn read_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>> {
        let d = self.dir_info(dir)?;
        let mut l = self.listing(dir, d.block, d.offset, 0)?;
        let mut out = Vec::new();
        while let Some(e) = self.next_entry(&mut l)? {
            if out.len() == MAX_DIR_ENTRIES {
                return Err(Error::BadDirectory {
                    inode: dir.number,
                    what: format!("more than {MAX_DIR_ENTRIES} entries"),
                });
            }
            out.push(e);
        }
        Ok(out)
    }

    /// The entry called `name` in directory `dir`, if any.
    pub fn lookup_in(&self, dir: &Inode, name: &[u8]) -> Result<Option<DirEntry>> {
        let d = self.dir_info(dir)?;
        if !is_plain_name(name) {
            return Ok(None);
        }
        // Start from the last index entry whose first name is <= `name` (names are sorted).
        let (mut block, mut offset, mut consumed) = (d.block, d.offset, 0u64);
        for ix in &d.index {
            if ix.name.as_slice() > name {
                break;
            }
            let off = (u64::from(ix.index) + u64::from(d.offset)) % METADATA_SIZE as u64;
            (block, offset, consumed) = (ix.start, off as u16, u64::from(ix.index));
        }
        let mut l = self.listing(dir, block, offset, consumed)?;
        while let Some(e) = self.next_entry(&mut l)? {
            match e.name.as_slice().cmp(name) {
                std::cmp::Ordering::Equal => return Ok(Some(e)),
                std::cmp::Ordering::Greater => return Ok(None),
                std::cmp::Ordering::Less => {}
            }
        }
        Ok(None)
    }

    fn next_entry(&self, l: &mut Listing<'_>) -> Result<Option<DirEntry>> {
        let dir = l.dir;
        let bad = |what: String| Error::BadDirectory { inode: dir, what };
        let take = |l: &mut Listing<'_>, n: u64| -> Result<()> {
            l.remaining = l.remaining.checked_sub(n).ok_or_else(|| {
                bad(format!(
                    "entry at {:?} runs past the listing size",
                    l.cursor.position()
                ))
            })?;
            Ok(())
        };
        if l.in_header == 0 {
            if l.remaining == 0 {
                return Ok(None);
            }
            take(l, 12)?;
            let count = l.cursor.u32()?;
            l.start = l.cursor.u32()?;
            l.base = l.cursor.u32()?;
            if count >= 256 {
                return Err(bad(format!(
                    "header claims {} entries (at most 256)",
                    u64::from(count) + 1
                )));
            }
            l.in_header = count + 1;
        }
        take(l, 8)?;
        let offset = l.cursor.u16()?;
        let delta = l.cursor.u16()? as i16;
        let ty = l.cursor.u16()?;
        let len = usize::from(l.cursor.u16()?) + 1;
        if len > MAX_NAME {
            return Err(bad(format!("name of {len} bytes")));
        }
        take(l, len as u64)?;
        let name = l.cursor.bytes(len)?;
        l.in_header -= 1;
        if !is_plain_name(&name) {
            return Err(bad(format!(
                "invalid entry name {:?}",
                String::from_utf8_lossy(&name)
            )));
        }
        let file_type = FileType::from_type(ty).ok_or_else(|| {
            bad(format!(
                "entry {:?} has unknown type {ty}",
                String::from_utf8_lossy(&name)
            ))
        })?;
        let number = i64::from(l.base) + i64::from(delta);
        if number < 1 || number > i64::from(self.sb.inode_count) {
            return Err(bad(format!(
                "entry {:?} has inode number {number}",
                String::from_utf8_lossy(&name)
            )));
        }
        if usize::from(offset) >= METADATA_SIZE {
            return Err(bad(format!(
                "entry {:?} has inode offset {offset}",
                String::from_utf8_lossy(&name)
            )));
        }
        Ok(Some(DirEntry {
            name,
            inode_ref: (u64::from(l.start) << 16) | u64::from(offset),
            inode_number: number as u32,
            file_type,
        }))
    }
}
