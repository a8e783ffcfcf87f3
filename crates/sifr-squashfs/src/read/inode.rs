//! Inodes: decoding all basic and extended inode types from the inode table.
//!
//! An inode is addressed by its reference (metadata block offset << 16 | offset in block). The
//! decoded [`Inode`] is plain data that callers (listing, extraction, the FUSE server) may keep
//! and share; it is small and costs the same to decode for any file size, because a file's
//! block list is only located here and decoded on first read (`data.rs`). Sizes claimed by an
//! inode (symlink targets, directory indexes) are only read as far as the inode table really
//! holds them. This module must not read data blocks or directories.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use super::Archive;
use super::error::{Error, Result};
use super::metadata::Cursor;

/// No fragment (tail end stored in full blocks).
pub(crate) const NO_FRAGMENT: u32 = u32::MAX;
/// No xattrs.
pub(crate) const NO_XATTR: u32 = u32::MAX;
/// Longest symlink target accepted (the kernel's PATH_MAX).
const MAX_SYMLINK: u32 = 4096;
/// Longest name in a directory (SQUASHFS_NAME_LEN).
pub(crate) const MAX_NAME: usize = 256;

/// File type of an inode or a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Directory,
    File,
    Symlink,
    BlockDevice,
    CharDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// From an inode type number (basic 1..=7 or extended 8..=14).
    pub(crate) fn from_type(t: u16) -> Option<Self> {
        Some(match t {
            1 | 8 => FileType::Directory,
            2 | 9 => FileType::File,
            3 | 10 => FileType::Symlink,
            4 | 11 => FileType::BlockDevice,
            5 | 12 => FileType::CharDevice,
            6 | 13 => FileType::Fifo,
            7 | 14 => FileType::Socket,
            _ => return None,
        })
    }

    /// The `S_IFMT` bits of this type.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Directory => 0o040000,
            FileType::File => 0o100000,
            FileType::Symlink => 0o120000,
            FileType::BlockDevice => 0o060000,
            FileType::CharDevice => 0o020000,
            FileType::Fifo => 0o010000,
            FileType::Socket => 0o140000,
        }
    }
}

/// One entry of an extended directory's index: where a directory header starts.
#[derive(Debug, Clone)]
pub(crate) struct DirIndex {
    /// Byte offset of the header inside the directory listing.
    pub(crate) index: u32,
    /// Metadata block (relative to the directory table) holding that header.
    pub(crate) start: u32,
    /// First name of that header.
    pub(crate) name: Vec<u8>,
}

/// Where a directory's listing lives.
#[derive(Debug, Clone)]
pub struct DirInfo {
    pub(crate) block: u32,
    pub(crate) offset: u16,
    /// Listing size as stored (3 more than the bytes of the listing).
    pub(crate) size: u32,
    /// Inode number of the parent directory.
    pub parent: u32,
    pub(crate) index: Vec<DirIndex>,
}

/// Where a regular file's data lives.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// File size in bytes.
    pub size: u64,
    /// Bytes saved by sparse blocks (extended inodes only).
    pub sparse: u64,
    /// Position of the first data block.
    pub(crate) start: u64,
    /// Number of full blocks (the tail, if any, is in the fragment).
    pub(crate) count: u64,
    /// Where the block-size list starts in the inode table: metadata block position and
    /// offset. The list is decoded only when data is read (see `data.rs`), so decoding an
    /// inode costs the same for an empty file and a terabyte one.
    pub(crate) list: (u64, u16),
    pub(crate) fragment: u32,
    pub(crate) fragment_offset: u32,
}

/// What kind of object an inode is, with its type-specific data.
#[derive(Debug, Clone)]
pub enum InodeKind {
    Directory(DirInfo),
    File(FileInfo),
    Symlink(Vec<u8>),
    BlockDevice(u32),
    CharDevice(u32),
    Fifo,
    Socket,
}

/// A decoded inode.
#[derive(Debug, Clone)]
pub struct Inode {
    /// Reference it was read from (block << 16 | offset).
    pub inode_ref: u64,
    /// Inode number (1-based).
    pub number: u32,
    /// Permission bits (`0o7777`).
    pub permissions: u16,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
    pub nlink: u32,
    /// Index into the xattr id table, if the inode has xattrs.
    pub xattr: Option<u32>,
    pub kind: InodeKind,
}

/// Most blocks accepted in one file's block list (16 Mi: 2 TiB at 128 KiB blocks, 64 GiB at
/// 4 KiB). Highly compressible metadata could otherwise make one inode decode to gigabytes of
/// block words; a per-file cap keeps one parse below ~64 MiB and well under a second.
pub(crate) const MAX_BLOCKS: u64 = 1 << 24;

impl Inode {
    pub fn file_type(&self) -> FileType {
        match self.kind {
            InodeKind::Directory(_) => FileType::Directory,
            InodeKind::File(_) => FileType::File,
            InodeKind::Symlink(_) => FileType::Symlink,
            InodeKind::BlockDevice(_) => FileType::BlockDevice,
            InodeKind::CharDevice(_) => FileType::CharDevice,
            InodeKind::Fifo => FileType::Fifo,
            InodeKind::Socket => FileType::Socket,
        }
    }

    /// Full `st_mode`: type bits and permissions.
    pub fn mode(&self) -> u32 {
        self.file_type().mode_bits() | u32::from(self.permissions & 0o7777)
    }

    /// Size as `stat` reports it: file length, symlink target length, directory listing size.
    pub fn size(&self) -> u64 {
        match &self.kind {
            InodeKind::File(f) => f.size,
            InodeKind::Symlink(t) => t.len() as u64,
            InodeKind::Directory(d) => u64::from(d.size),
            _ => 0,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, InodeKind::Directory(_))
    }

    /// Symlink target, if this is a symlink.
    pub fn symlink_target(&self) -> Option<&OsStr> {
        match &self.kind {
            InodeKind::Symlink(t) => Some(OsStr::from_bytes(t)),
            _ => None,
        }
    }

    /// Device number as (major, minor), for block and character devices.
    pub fn device(&self) -> Option<(u32, u32)> {
        match self.kind {
            InodeKind::BlockDevice(d) | InodeKind::CharDevice(d) => {
                Some(((d & 0xfff00) >> 8, (d & 0xff) | ((d >> 12) & 0xfff00)))
            }
            _ => None,
        }
    }
}

impl Archive {
    /// Reads the inode at reference `inode_ref`.
    pub fn inode_by_ref(&self, inode_ref: u64) -> Result<Inode> {
        let block = inode_ref >> 16;
        let offset = (inode_ref & 0xffff) as u16;
        let table_len = self.sb.directory_table - self.sb.inode_table;
        if block >= table_len {
            return Err(Error::inode_at(
                inode_ref,
                "block lies outside the inode table",
            ));
        }
        let mut c = self
            .cursor(self.sb.inode_table + block, offset, self.sb.directory_table)
            .map_err(|e| Error::inode_at(inode_ref, e.to_string()))?;
        self.parse_inode(&mut c, inode_ref).map_err(|e| match e {
            Error::BadInode { .. } => e,
            other => Error::inode_at(inode_ref, other.to_string()),
        })
    }

    fn parse_inode(&self, c: &mut Cursor<'_>, inode_ref: u64) -> Result<Inode> {
        let ty = c.u16()?;
        let permissions = c.u16()?;
        let uid = self.id(c.u16()?)?;
        let gid = self.id(c.u16()?)?;
        let mtime = c.u32()?;
        let number = c.u32()?;
        let bad = |what: String| Error::BadInode {
            inode: format!("{number} (ref {inode_ref:#x})"),
            what,
        };
        if number == 0 || number > self.sb.inode_count {
            return Err(bad(format!(
                "inode number out of range 1..={}",
                self.sb.inode_count
            )));
        }
        let xattr_of = |x: u32| if x == NO_XATTR { None } else { Some(x) };
        let (nlink, xattr, kind) = match ty {
            1 => {
                let block = c.u32()?;
                let nlink = c.u32()?;
                let size = u32::from(c.u16()?);
                let offset = c.u16()?;
                let parent = c.u32()?;
                let d = DirInfo {
                    block,
                    offset,
                    size,
                    parent,
                    index: Vec::new(),
                };
                (nlink, None, InodeKind::Directory(d))
            }
            8 => {
                let nlink = c.u32()?;
                let size = c.u32()?;
                let block = c.u32()?;
                let parent = c.u32()?;
                let count = c.u16()?;
                let offset = c.u16()?;
                let x = c.u32()?;
                let mut index = Vec::new();
                for _ in 0..count {
                    let idx = c.u32()?;
                    let start = c.u32()?;
                    let len = c.u32()? as usize + 1;
                    if len > MAX_NAME {
                        return Err(bad(format!("directory index name of {len} bytes")));
                    }
                    index.push(DirIndex {
                        index: idx,
                        start,
                        name: c.bytes(len)?,
                    });
                }
                (
                    nlink,
                    xattr_of(x),
                    InodeKind::Directory(DirInfo {
                        block,
                        offset,
                        size,
                        parent,
                        index,
                    }),
                )
            }
            2 => {
                let start = u64::from(c.u32()?);
                let fragment = c.u32()?;
                let frag_off = c.u32()?;
                let size = u64::from(c.u32()?);
                let f = self.parse_blocks(&*c, start, size, 0, fragment, frag_off, &bad)?;
                (1, None, InodeKind::File(f))
            }
            9 => {
                let start = c.u64()?;
                let size = c.u64()?;
                let sparse = c.u64()?;
                let nlink = c.u32()?;
                let fragment = c.u32()?;
                let frag_off = c.u32()?;
                let x = c.u32()?;
                let f = self.parse_blocks(&*c, start, size, sparse, fragment, frag_off, &bad)?;
                (nlink, xattr_of(x), InodeKind::File(f))
            }
            3 | 10 => {
                let nlink = c.u32()?;
                let len = c.u32()?;
                if len == 0 || len > MAX_SYMLINK {
                    return Err(bad(format!("symlink target of {len} bytes")));
                }
                let target = c.bytes(len as usize)?;
                let x = if ty == 10 { xattr_of(c.u32()?) } else { None };
                (nlink, x, InodeKind::Symlink(target))
            }
            4 | 5 | 11 | 12 => {
                let nlink = c.u32()?;
                let dev = c.u32()?;
                let x = if ty > 7 { xattr_of(c.u32()?) } else { None };
                let k = if ty == 4 || ty == 11 {
                    InodeKind::BlockDevice(dev)
                } else {
                    InodeKind::CharDevice(dev)
                };
                (nlink, x, k)
            }
            6 | 7 | 13 | 14 => {
                let nlink = c.u32()?;
                let x = if ty > 7 { xattr_of(c.u32()?) } else { None };
                (
                    nlink,
                    x,
                    if ty == 6 || ty == 13 {
                        InodeKind::Fifo
                    } else {
                        InodeKind::Socket
                    },
                )
            }
            _ => return Err(bad(format!("unknown inode type {ty}"))),
        };
        Ok(Inode {
            inode_ref,
            number,
            permissions,
            uid,
            gid,
            mtime,
            nlink,
            xattr,
            kind,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn parse_blocks(
        &self,
        c: &Cursor<'_>,
        start: u64,
        size: u64,
        sparse: u64,
        fragment: u32,
        fragment_offset: u32,
        bad: &dyn Fn(String) -> Error,
    ) -> Result<FileInfo> {
        let bs = u64::from(self.sb.block_size);
        let has_frag = fragment != NO_FRAGMENT;
        let count = if has_frag {
            size / bs
        } else {
            size.div_ceil(bs)
        };
        if has_frag
            && (size.is_multiple_of(bs) || u64::from(fragment) >= u64::from(self.sb.fragment_count))
        {
            return Err(bad(format!(
                "fragment {fragment} invalid (size {size}, {} fragments in image)",
                self.sb.fragment_count
            )));
        }
        if count > MAX_BLOCKS {
            return Err(bad(format!(
                "file of {size} bytes has {count} blocks (at most {MAX_BLOCKS})"
            )));
        }
        if start > self.sb.bytes_used {
            return Err(bad(format!("data starts at {start}, past the image end")));
        }
        let (block, offset) = c.position();
        let list = (
            block,
            u16::try_from(offset).map_err(|_| bad("block list offset".into()))?,
        );
        Ok(FileInfo {
            size,
            sparse,
            start,
            count,
            list,
            fragment,
            fragment_offset,
        })
    }
}
