//! Typed errors of the SquashFS reader.
//!
//! Every variant names where in the image the problem was found (byte offset relative to the
//! start of the filesystem, inode number or reference, table) so that a corrupt or hostile image
//! can be diagnosed from the message alone. This module only describes failures; it must not
//! do I/O or decide policy.

use std::io;
use std::path::PathBuf;

/// Result alias of the reader.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while reading or extracting a SquashFS image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the underlying file failed.
    #[error("cannot read {len} bytes at offset {offset} of the image")]
    Io {
        offset: u64,
        len: usize,
        #[source]
        source: io::Error,
    },
    /// The image ends before a structure that it claims to contain.
    #[error("image truncated: {what} at offset {offset} needs {len} bytes, image has {size}")]
    Truncated {
        what: &'static str,
        offset: u64,
        len: u64,
        size: u64,
    },
    /// The first four bytes are not `hsqs`.
    #[error("not a squashfs image: bad magic {found:#010x} (want `hsqs`)")]
    BadMagic { found: u32 },
    /// Only SquashFS 4.0 is understood.
    #[error("unsupported squashfs version {major}.{minor} (want 4.0)")]
    UnsupportedVersion { major: u16, minor: u16 },
    /// The compressor id is unknown or not built in.
    #[error("unsupported compressor `{name}` (id {id})")]
    UnsupportedCompressor { id: u16, name: &'static str },
    /// A superblock field is out of range or inconsistent with the others.
    #[error("bad superblock: {what}")]
    BadSuperblock { what: String },
    /// A compressed block did not decompress.
    #[error("{compressor} decompression failed for the {what} at offset {offset}: {reason}")]
    Decompress {
        compressor: &'static str,
        what: &'static str,
        offset: u64,
        reason: String,
    },
    /// A metadata block header or body is invalid.
    #[error("bad metadata block at offset {offset}: {what}")]
    BadMetadata { offset: u64, what: String },
    /// An inode could not be decoded.
    #[error("bad inode {inode}: {what}")]
    BadInode { inode: String, what: String },
    /// A directory listing could not be decoded.
    #[error("bad directory (inode {inode}): {what}")]
    BadDirectory { inode: u32, what: String },
    /// A lookup table (fragments, ids, export, xattr ids) is invalid or an index is out of range.
    #[error("bad {table} table: {what}")]
    BadTable { table: &'static str, what: String },
    /// A data block or fragment of a file is invalid.
    #[error("bad file data (inode {inode}): {what}")]
    BadData { inode: u32, what: String },
    /// An extended attribute entry is invalid.
    #[error("bad xattr entry (xattr index {index}): {what}")]
    BadXattr { index: u32, what: String },
    /// The inode is not of the kind the operation needs.
    #[error("inode {inode} is not a {want}")]
    WrongType { inode: u32, want: &'static str },
    /// A directory contains itself (directly or through its descendants).
    #[error("directory cycle at inode {inode} (`{path}`)")]
    DirectoryCycle { inode: u32, path: String },
    /// The image has no export table (made with `-no-exports`).
    #[error("image has no export table; cannot map inode number {inode} to an inode")]
    NoExportTable { inode: u32 },
    /// An entry name in the image would escape the extraction directory.
    #[error(
        "refused entry name `{name}` in directory `{dir}` (empty, `.`, `..`, or containing `/` or NUL)"
    )]
    UnsafeName { dir: String, name: String },
    /// Creating something in the extraction directory failed.
    #[error("cannot {op} `{path}`")]
    Extract {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn inode_at(r: u64, what: impl Into<String>) -> Self {
        Error::BadInode {
            inode: format!("ref {:#x} (block {}, offset {})", r, r >> 16, r & 0xffff),
            what: what.into(),
        }
    }
    pub(crate) fn table(table: &'static str, what: impl Into<String>) -> Self {
        Error::BadTable {
            table,
            what: what.into(),
        }
    }
    pub(crate) fn meta(offset: u64, what: impl Into<String>) -> Self {
        Error::BadMetadata {
            offset,
            what: what.into(),
        }
    }
}
