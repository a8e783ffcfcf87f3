//! Metadata blocks (2-byte header, at most 8 KiB of data, optionally compressed) and a cursor
//! that reads a byte stream across consecutive blocks.
//!
//! Decoded blocks are cached by position. A cursor only ever moves forward and stops at the end
//! of the table it was opened on, so a chain of blocks always ends (no loops) and a structure
//! that claims more bytes than the table holds fails instead of reading on into other tables.
//! This module must not interpret what the metadata stream contains.

use std::sync::Arc;

use super::Archive;
use super::error::{Error, Result};

/// Largest uncompressed metadata block.
pub const METADATA_SIZE: usize = 8192;

/// One decoded metadata block and where the next one starts.
#[derive(Debug)]
pub(crate) struct MetaBlock {
    pub(crate) data: Vec<u8>,
    pub(crate) next: u64,
}

impl Archive {
    /// Reads (or takes from the cache) the metadata block at `pos`.
    pub(crate) fn meta_block(&self, pos: u64) -> Result<Arc<MetaBlock>> {
        if let Some(b) = self.meta_cache.get(pos) {
            return Ok(b);
        }
        let mut h = [0u8; 2];
        self.src.read_exact("metadata block header", pos, &mut h)?;
        let header = u16::from_le_bytes(h);
        let size = usize::from(header & 0x7fff);
        let compressed = header & 0x8000 == 0;
        if size == 0 || size > METADATA_SIZE {
            return Err(Error::meta(
                pos,
                format!("stored size {size} not in 1..=8192"),
            ));
        }
        let raw = self.src.read_vec("metadata block", pos + 2, size)?;
        let data = if compressed {
            self.sb
                .compressor
                .decompress(&raw, METADATA_SIZE, "metadata block", pos)?
        } else {
            raw
        };
        if data.is_empty() {
            return Err(Error::meta(pos, "block decompresses to nothing"));
        }
        let block = Arc::new(MetaBlock {
            data,
            next: pos + 2 + size as u64,
        });
        self.meta_cache.insert(pos, Arc::clone(&block));
        Ok(block)
    }

    /// A cursor at `offset` inside the block at `block`, bounded by `end` (exclusive).
    pub(crate) fn cursor(&self, block: u64, offset: u16, end: u64) -> Result<Cursor<'_>> {
        if block >= end {
            return Err(Error::meta(
                block,
                format!("block lies past the end of its table ({end})"),
            ));
        }
        let data = self.meta_block(block)?;
        if usize::from(offset) > data.data.len() {
            return Err(Error::meta(
                block,
                format!("offset {offset} past block length {}", data.data.len()),
            ));
        }
        Ok(Cursor {
            archive: self,
            block,
            data,
            pos: usize::from(offset),
            end,
        })
    }
}

/// A forward-only reader over a chain of metadata blocks.
pub(crate) struct Cursor<'a> {
    archive: &'a Archive,
    block: u64,
    data: Arc<MetaBlock>,
    pos: usize,
    end: u64,
}

impl Cursor<'_> {
    /// Where the cursor stands: (block position, offset inside the decoded block).
    pub(crate) fn position(&self) -> (u64, usize) {
        (self.block, self.pos)
    }

    /// Fills `out`, moving into following blocks as needed.
    pub(crate) fn read(&mut self, mut out: &mut [u8]) -> Result<()> {
        while !out.is_empty() {
            if self.pos == self.data.data.len() {
                let next = self.data.next;
                if next >= self.end {
                    return Err(Error::meta(
                        next,
                        format!("structure runs past the end of its table ({})", self.end),
                    ));
                }
                self.data = self.archive.meta_block(next)?;
                self.block = next;
                self.pos = 0;
            }
            let n = out.len().min(self.data.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data.data[self.pos..self.pos + n]);
            self.pos += n;
            out = &mut out[n..];
        }
        Ok(())
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        // `n` is bounded by the callers (names <= 256, xattr values <= 64 KiB, symlinks
        // <= 4 KiB), so this allocation is never driven by an unchecked image field.
        let mut v = vec![0u8; n];
        self.read(&mut v)?;
        Ok(v)
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read(&mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}
