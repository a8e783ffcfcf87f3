//! Metadata-block stream: packs bytes into 8 KiB blocks, compresses each as it fills and
//! tells callers where the next byte will land as a (block start, offset) reference.
//!
//! It holds the compressed blocks in memory (they are small next to the data) and never
//! touches the output; the caller copies `bytes()` to the image and records absolute block
//! positions with `block_starts()` when a lookup table needs them.

use super::compress::Compression;
use crate::format::{METADATA_SIZE, METADATA_UNCOMPRESSED};

pub(crate) struct MetaWriter {
    comp: Compression,
    block_size: u32,
    /// Uncompressed bytes of the block being filled (< METADATA_SIZE).
    raw: Vec<u8>,
    /// Finished blocks, each with its 2-byte header.
    out: Vec<u8>,
    /// Offset in `out` of every finished block.
    starts: Vec<u64>,
    /// Uncompressed bytes written in total.
    total: u64,
}

impl MetaWriter {
    pub(crate) fn new(comp: Compression, block_size: u32) -> Self {
        MetaWriter {
            comp,
            block_size,
            raw: Vec::with_capacity(METADATA_SIZE),
            out: Vec::new(),
            starts: Vec::new(),
            total: 0,
        }
    }

    /// Where the next byte goes: start of its block (relative to this table) and offset.
    pub(crate) fn position(&self) -> (u64, u16) {
        (self.out.len() as u64, self.raw.len() as u16)
    }

    /// Uncompressed bytes written so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    pub(crate) fn write(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = METADATA_SIZE - self.raw.len();
            let n = room.min(bytes.len());
            self.raw.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            // Flush eagerly on a full block so `position()` then names the next block at
            // offset 0, which is how the kernel expects a reference to a block boundary.
            if self.raw.len() == METADATA_SIZE {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if self.raw.is_empty() {
            return;
        }
        self.starts.push(self.out.len() as u64);
        match self.comp.compress(&self.raw, self.block_size) {
            Some(c) => {
                self.out.extend_from_slice(&(c.len() as u16).to_le_bytes());
                self.out.extend_from_slice(&c);
            }
            None => {
                let h = self.raw.len() as u16 | METADATA_UNCOMPRESSED;
                self.out.extend_from_slice(&h.to_le_bytes());
                self.out.extend_from_slice(&self.raw);
            }
        }
        self.raw.clear();
    }

    /// Flush the partial last block and return all blocks plus each block's start offset.
    pub(crate) fn finish(mut self) -> (Vec<u8>, Vec<u64>) {
        self.flush();
        (self.out, self.starts)
    }
}

/// Write a fixed-record table (fragments, export, ids, xattr ids) as metadata blocks at
/// `base` and return the blocks followed by the u64 lookup table pointing at each block.
/// The returned `usize` is the offset of the lookup table inside the returned bytes.
pub(crate) fn indexed_table(
    comp: Compression,
    block_size: u32,
    records: &[u8],
    base: u64,
) -> (Vec<u8>, usize) {
    let mut m = MetaWriter::new(comp, block_size);
    m.write(records);
    let (mut bytes, starts) = m.finish();
    let lookup_at = bytes.len();
    for s in starts {
        bytes.extend_from_slice(&(base + s).to_le_bytes());
    }
    (bytes, lookup_at)
}
