//! SquashFS 4.0: a parallel writer and a random-access reader.

pub mod read;

pub mod fuse;

pub mod format;
pub mod write;

pub use write::{
    Compression, Entry, EntryKind, FileSource, Options, Summary, WalkOptions, WriteError, Writer,
    Xattr, from_dir,
};
