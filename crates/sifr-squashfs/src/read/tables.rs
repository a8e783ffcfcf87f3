//! Lookup tables: arrays of fixed-size entries stored in metadata blocks whose positions are
//! listed by an array of u64 pointers (fragment table, id table, export table, xattr id table).
//!
//! Opening a table reads only its pointer array, after checking that the array fits in the
//! image; entries are decoded on demand through the metadata cache. This module must not know
//! what the entries mean beyond their size.

use super::Archive;
use super::error::{Error, Result};
use super::metadata::METADATA_SIZE;

/// Pointer array of one lookup table.
#[derive(Debug, Default)]
pub(crate) struct Lookup {
    name: &'static str,
    entry_size: usize,
    count: u64,
    blocks: Vec<u64>,
}

impl Lookup {
    /// Reads the pointer array at `pos` for `count` entries of `entry_size` bytes.
    pub(crate) fn open(
        archive: &Archive,
        name: &'static str,
        pos: u64,
        count: u64,
        entry_size: usize,
    ) -> Result<Self> {
        let nblocks = (count * entry_size as u64).div_ceil(METADATA_SIZE as u64);
        let bytes = nblocks
            .checked_mul(8)
            .ok_or_else(|| Error::table(name, format!("{count} entries is too many")))?;
        // Every pointed-to block takes at least 3 bytes of the image too: refuse counts that
        // cannot fit before allocating anything for them.
        archive.src.check(name, pos, bytes)?;
        if nblocks.saturating_mul(3) > archive.src.size() {
            return Err(Error::table(
                name,
                format!("{count} entries cannot fit in the image"),
            ));
        }
        let raw = archive.src.read_vec(name, pos, bytes as usize)?;
        let blocks: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        for (i, &b) in blocks.iter().enumerate() {
            if b >= archive.sb.bytes_used {
                return Err(Error::table(
                    name,
                    format!("block pointer {i} ({b}) lies past the image"),
                ));
            }
        }
        Ok(Lookup {
            name,
            entry_size,
            count,
            blocks,
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    /// Bytes of entry `index`.
    pub(crate) fn entry(&self, archive: &Archive, index: u64, out: &mut [u8]) -> Result<()> {
        debug_assert_eq!(out.len(), self.entry_size);
        if index >= self.count {
            return Err(Error::table(
                self.name,
                format!("index {index} out of range (table has {})", self.count),
            ));
        }
        let byte = index * self.entry_size as u64;
        let block = (byte / METADATA_SIZE as u64) as usize;
        let offset = (byte % METADATA_SIZE as u64) as u16;
        let pos = self.blocks[block];
        // Entries never straddle blocks (sizes divide 8 KiB), so the cursor's end is just the
        // image end; the block must still be long enough.
        let mut c = archive.cursor(pos, offset, archive.sb.bytes_used)?;
        c.read(out)
            .map_err(|e| Error::table(self.name, format!("entry {index}: {e}")))
    }
}
