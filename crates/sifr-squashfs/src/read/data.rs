//! File contents: data blocks (compressed, stored, or sparse) and fragment tail ends.
//!
//! `read_at` decompresses only the blocks a read touches; decoded data blocks, fragment blocks
//! and files' block lists (decoded on first read, with a position every 256 blocks so finding
//! block `i` costs at most 255 additions) are kept in small shared caches, so many small reads
//! of one block (FUSE, `cat`) decompress it once. Every block's decoded length is checked against what the file size says
//! it must be. This module must not decode inodes or directories.

use std::cell::RefCell;
use std::sync::Arc;

use super::Archive;
use super::error::{Error, Result};
use super::inode::{FileInfo, Inode, InodeKind, NO_FRAGMENT};

const UNCOMPRESSED: u32 = 1 << 24;
/// Group size of [`BlockIndex::group_starts`].
const GROUP: usize = 256;

/// A file's decoded block list.
#[derive(Debug)]
pub(crate) struct BlockIndex {
    /// On-disk size words of the full blocks (bit 24: stored uncompressed; 0: sparse).
    words: Vec<u32>,
    /// Position of every 256th block, so block `i` is found with at most 255 additions.
    group_starts: Vec<u64>,
}

thread_local! {
    /// The compressed bytes of the block being decoded ([`Archive::block_into`]), reused.
    static RAW: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl BlockIndex {
    /// Where full block `index` starts in the image.
    fn position(&self, index: usize) -> u64 {
        let group = index / GROUP;
        let mut pos = self.group_starts[group];
        for &w in &self.words[group * GROUP..index] {
            pos += u64::from(w & 0xff_ffff);
        }
        pos
    }
}

/// A decoded block must have exactly the length its file's size says.
fn check_len(inode: u32, index: usize, pos: u64, got: usize, want: usize) -> Result<()> {
    if got == want {
        return Ok(());
    }
    Err(Error::BadData {
        inode,
        what: format!("block {index} at {pos} decodes to {got} bytes, want {want}"),
    })
}

impl Archive {
    /// Reads up to `buf.len()` bytes of file `inode` from `offset`; returns the count read,
    /// 0 at or past the end of the file.
    pub fn read_at(&self, inode: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let InodeKind::File(f) = &inode.kind else {
            return Err(Error::WrongType {
                inode: inode.number,
                want: "regular file",
            });
        };
        if offset >= f.size {
            return Ok(0);
        }
        let n = buf
            .len()
            .min((f.size - offset).min(usize::MAX as u64) as usize);
        let bs = u64::from(self.sb.block_size);
        let mut done = 0;
        let mut blocks = None;
        while done < n {
            let pos = offset + done as u64;
            let index = pos / bs;
            let within = (pos % bs) as usize;
            let data = if index < f.count {
                let b = match &blocks {
                    Some(b) => b,
                    None => blocks.insert(self.block_index(inode.number, f)?),
                };
                self.data_block(inode.number, f, b, index as usize)?
            } else {
                self.tail(inode.number, f)?
            };
            let want = (n - done).min(data.len().saturating_sub(within));
            if want == 0 {
                return Err(Error::BadData {
                    inode: inode.number,
                    what: format!("block {index} is too short"),
                });
            }
            buf[done..done + want].copy_from_slice(&data[within..within + want]);
            done += want;
        }
        Ok(n)
    }

    /// Reads block `index` of file `inode` whole into `out` (its contents replaced, its
    /// allocation reused) and returns where the block starts in the file; `index` equal to
    /// the file's block count reads its tail (nothing when it has none). A block already
    /// cached is copied; any other is decoded without entering the cache. For a reader that
    /// hands each block on once (the FUSE server filling the kernel's page cache ahead of
    /// time): it would otherwise evict blocks that real reads are using, and pay for fresh
    /// memory on every block.
    pub fn read_block_into(&self, inode: &Inode, index: u64, out: &mut Vec<u8>) -> Result<u64> {
        let InodeKind::File(f) = &inode.kind else {
            return Err(Error::WrongType {
                inode: inode.number,
                want: "regular file",
            });
        };
        let bs = u64::from(self.sb.block_size);
        let past = || Error::BadData {
            inode: inode.number,
            what: format!("block {index} is past the file's {} blocks", f.count),
        };
        let start = index.checked_mul(bs).ok_or_else(past)?;
        out.clear();
        if index >= f.count {
            if index > f.count {
                return Err(past());
            }
            if start < f.size {
                out.extend_from_slice(&self.tail(inode.number, f)?);
            }
            return Ok(start);
        }
        let b = self.block_index(inode.number, f)?;
        let i = index as usize;
        let (word, len) = (b.words[i], self.block_len(f, i));
        if word == 0 {
            out.resize(len, 0);
            return Ok(start);
        }
        let pos = b.position(i);
        if let Some(c) = self.data_cache.get(pos).filter(|c| c.len() == len) {
            out.extend_from_slice(&c);
            return Ok(start);
        }
        self.block_into(pos, word, "data block", out)?;
        check_len(inode.number, i, pos, out.len(), len)?;
        Ok(start)
    }

    /// Length that full block `index` of `f` must decode to.
    fn block_len(&self, f: &FileInfo, index: usize) -> usize {
        let bs = u64::from(self.sb.block_size);
        let start = index as u64 * bs;
        (f.size - start).min(bs) as usize
    }

    /// Decodes (or takes from the cache) the block list of `f`.
    fn block_index(&self, inode: u32, f: &FileInfo) -> Result<Arc<BlockIndex>> {
        let key = (f.list.0 << 16) | u64::from(f.list.1);
        if let Some(b) = self.index_cache.get(key) {
            return Ok(b);
        }
        let bad = |what: String| Error::BadData { inode, what };
        let bs = u64::from(self.sb.block_size);
        let mut c = self.cursor(f.list.0, f.list.1, self.sb.directory_table)?;
        // The list is pushed as it is read, never preallocated from `count`: a hostile size
        // fails when the inode table runs out instead of reserving memory for it.
        let mut words = Vec::with_capacity(f.count.min(4096) as usize);
        let mut group_starts = Vec::new();
        let mut pos = f.start;
        for i in 0..f.count {
            if (i as usize).is_multiple_of(GROUP) {
                group_starts.push(pos);
            }
            let w = c.u32()?;
            if w & !(UNCOMPRESSED | 0xff_ffff) != 0 || u64::from(w & 0xff_ffff) > bs {
                return Err(bad(format!("block {i} has bad size word {w:#x}")));
            }
            pos += u64::from(w & 0xff_ffff);
            if pos > self.sb.bytes_used {
                return Err(bad(format!("block {i} ends at {pos}, past the image end")));
            }
            words.push(w);
        }
        let index = Arc::new(BlockIndex {
            words,
            group_starts,
        });
        self.index_cache.insert(key, Arc::clone(&index));
        Ok(index)
    }

    fn data_block(
        &self,
        inode: u32,
        f: &FileInfo,
        b: &BlockIndex,
        index: usize,
    ) -> Result<Arc<Vec<u8>>> {
        let word = b.words[index];
        let len = self.block_len(f, index);
        if word == 0 {
            // Sparse block: zeros, shared and never cached per position.
            return Ok(Arc::new(vec![0u8; len]));
        }
        let pos = b.position(index);
        // A hit must also have the length this file expects (a hostile image may describe the
        // same position differently in two inodes).
        if let Some(b) = self.data_cache.get(pos).filter(|b| b.len() == len) {
            return Ok(b);
        }
        let data = self.block_at(pos, word, "data block")?;
        check_len(inode, index, pos, data.len(), len)?;
        let data = Arc::new(data);
        self.data_cache.insert(pos, Arc::clone(&data));
        Ok(data)
    }

    /// Reads and decodes one block described by a size word (bit 24: stored uncompressed).
    fn block_at(&self, pos: u64, word: u32, what: &'static str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.block_into(pos, word, what, &mut out)?;
        Ok(out)
    }

    /// [`Archive::block_at`] into `out` (its contents replaced, its allocation reused); the
    /// compressed bytes go through a buffer kept per thread.
    fn block_into(&self, pos: u64, word: u32, what: &'static str, out: &mut Vec<u8>) -> Result<()> {
        let size = (word & 0xff_ffff) as usize;
        if word & UNCOMPRESSED != 0 {
            return self.src.read_into(what, pos, size, out);
        }
        RAW.with(|raw| {
            let mut raw = raw.borrow_mut();
            self.src.read_into(what, pos, size, &mut raw)?;
            let cap = self.sb.block_size as usize;
            self.sb
                .compressor
                .decompress_into(&raw, cap, what, pos, out)
        })
    }

    /// The fragment block with index `index`, decoded.
    fn fragment_block(&self, index: u32) -> Result<(u64, Arc<Vec<u8>>)> {
        let table = self.fragments.as_ref().ok_or_else(|| {
            Error::table(
                "fragment",
                format!("fragment {index} used but image has no fragment table"),
            )
        })?;
        let mut e = [0u8; 16];
        table.entry(self, u64::from(index), &mut e)?;
        let start = u64::from_le_bytes(e[0..8].try_into().unwrap_or_default());
        let word = u32::from_le_bytes(e[8..12].try_into().unwrap_or_default());
        if word & !(UNCOMPRESSED | 0xff_ffff) != 0
            || (word & 0xff_ffff) > self.sb.block_size
            || word & 0xff_ffff == 0
        {
            return Err(Error::table(
                "fragment",
                format!("entry {index} has bad size word {word:#x}"),
            ));
        }
        if let Some(b) = self.frag_cache.get(start) {
            return Ok((start, b));
        }
        let data = Arc::new(self.block_at(start, word, "fragment block")?);
        self.frag_cache.insert(start, Arc::clone(&data));
        Ok((start, data))
    }

    /// The tail end of `f` (the part after its full blocks), from its fragment.
    fn tail(&self, inode: u32, f: &FileInfo) -> Result<Arc<Vec<u8>>> {
        if f.fragment == NO_FRAGMENT {
            return Err(Error::BadData {
                inode,
                what: "read past the last block and no fragment".into(),
            });
        }
        let bs = u64::from(self.sb.block_size);
        let len = (f.size % bs) as usize;
        let (start, block) = self.fragment_block(f.fragment)?;
        let off = f.fragment_offset as usize;
        let end = off
            .checked_add(len)
            .filter(|&e| e <= block.len())
            .ok_or_else(|| Error::BadData {
                inode,
                what: format!(
                    "tail of {len} bytes at offset {off} exceeds fragment {} at {start} ({} bytes)",
                    f.fragment,
                    block.len()
                ),
            })?;
        // Copying the tail keeps `read_at` uniform; tails are below one block.
        Ok(Arc::new(block[off..end].to_vec()))
    }
}
