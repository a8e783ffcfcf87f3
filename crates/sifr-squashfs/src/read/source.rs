//! Positional, bounds-checked reads of the filesystem bytes inside a file.
//!
//! The filesystem may live at an offset inside a bigger file (a SIF partition), so every read is
//! `base + offset` through `FileExt::read_at`, which needs no seek and is safe to share between
//! threads. Reads are checked against the filesystem size before any buffer is allocated, so a
//! size claimed by the image can never make us allocate more than the image holds. This module
//! must not interpret the bytes it reads.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::error::{Error, Result};

/// The bytes of one filesystem: a file, where it starts, and how many bytes are usable.
#[derive(Debug)]
pub(crate) struct Source {
    file: File,
    base: u64,
    /// Bytes available from `base` to the end of the file (or the filesystem's claimed size,
    /// whichever is smaller, once the superblock is known).
    size: u64,
}

impl Source {
    /// The image file's descriptor.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.file)
    }

    pub(crate) fn new(file: File, base: u64) -> Result<Self> {
        let len = file
            .metadata()
            .map_err(|source| Error::Io {
                offset: 0,
                len: 0,
                source,
            })?
            .len();
        let size = len.checked_sub(base).ok_or(Error::Truncated {
            what: "filesystem start",
            offset: base,
            len: 0,
            size: len,
        })?;
        Ok(Source { file, base, size })
    }

    /// Bytes readable from the start of the filesystem.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Narrows the readable range to `size` bytes (never widens it).
    pub(crate) fn limit(&mut self, size: u64) {
        self.size = self.size.min(size);
    }

    /// Checks that `[offset, offset + len)` lies inside the filesystem.
    pub(crate) fn check(&self, what: &'static str, offset: u64, len: u64) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Error::Truncated {
                what,
                offset,
                len,
                size: self.size,
            }),
        }
    }

    /// Fills `buf` from `offset`, failing if the range is outside the filesystem.
    pub(crate) fn read_exact(&self, what: &'static str, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check(what, offset, buf.len() as u64)?;
        self.file
            .read_exact_at(buf, self.base + offset)
            .map_err(|source| Error::Io {
                offset,
                len: buf.len(),
                source,
            })
    }

    /// Reads `len` bytes at `offset` into `buf`, replacing its contents and reusing its
    /// allocation (after the bounds check).
    pub(crate) fn read_into(
        &self,
        what: &'static str,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.check(what, offset, len as u64)?;
        buf.resize(len, 0);
        self.read_exact(what, offset, buf)
    }

    /// Reads `len` bytes at `offset` into a new vector (after the bounds check).
    pub(crate) fn read_vec(&self, what: &'static str, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.check(what, offset, len as u64)?;
        let mut v = vec![0u8; len];
        self.read_exact(what, offset, &mut v)?;
        Ok(v)
    }
}
