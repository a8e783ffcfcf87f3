//! The 96-byte SquashFS 4.0 superblock and the optional compressor-options block after it.
//!
//! Parsing checks every field that later code trusts: magic, version, block size and its log,
//! table positions inside `bytes_used`. It must not read any table beyond the superblock and
//! the compressor options (opening an archive stays cheap).

use super::compress::Compressor;
use super::error::{Error, Result};

// The layout constants are the writer's too (`crate::format`).
pub use crate::format::{INVALID_TABLE as NO_TABLE, MAGIC, SUPERBLOCK_SIZE, flags};

/// Decoded superblock.
#[derive(Debug, Clone)]
pub struct Superblock {
    pub inode_count: u32,
    pub mod_time: u32,
    pub block_size: u32,
    pub block_log: u16,
    pub fragment_count: u32,
    pub compressor: Compressor,
    pub flags: u16,
    pub id_count: u16,
    pub root_inode: u64,
    pub bytes_used: u64,
    pub id_table: u64,
    pub xattr_id_table: u64,
    pub inode_table: u64,
    pub directory_table: u64,
    pub fragment_table: u64,
    pub export_table: u64,
}

/// Compressor options stored after the superblock when `COMPRESSOR_OPTIONS` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompressorOptions {
    Gzip {
        level: u32,
        window_size: u16,
        strategies: u16,
    },
    Xz {
        dictionary_size: u32,
        filters: u32,
    },
    Lz4 {
        version: u32,
        flags: u32,
    },
    Zstd {
        level: u32,
    },
    /// Options of a compressor whose layout we do not decode (raw bytes).
    Other(Vec<u8>),
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Superblock {
    /// Decodes and validates the superblock; `available` is how many bytes the file holds from
    /// the filesystem start.
    pub fn parse(b: &[u8; SUPERBLOCK_SIZE], available: u64) -> Result<Self> {
        let magic = le32(b, 0);
        if magic != MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let (major, minor) = (le16(b, 28), le16(b, 30));
        if (major, minor) != (4, 0) {
            return Err(Error::UnsupportedVersion { major, minor });
        }
        let sb = Superblock {
            inode_count: le32(b, 4),
            mod_time: le32(b, 8),
            block_size: le32(b, 12),
            fragment_count: le32(b, 16),
            compressor: Compressor::from_id(le16(b, 20))?,
            block_log: le16(b, 22),
            flags: le16(b, 24),
            id_count: le16(b, 26),
            root_inode: le64(b, 32),
            bytes_used: le64(b, 40),
            id_table: le64(b, 48),
            xattr_id_table: le64(b, 56),
            inode_table: le64(b, 64),
            directory_table: le64(b, 72),
            fragment_table: le64(b, 80),
            export_table: le64(b, 88),
        };
        let bad = |what: String| Err(Error::BadSuperblock { what });
        if !(4096..=1 << 20).contains(&sb.block_size) || !sb.block_size.is_power_of_two() {
            return bad(format!(
                "block size {} is not a power of two in 4 KiB..1 MiB",
                sb.block_size
            ));
        }
        if 1u32.checked_shl(sb.block_log.into()) != Some(sb.block_size) {
            return bad(format!(
                "block log {} does not match block size {}",
                sb.block_log, sb.block_size
            ));
        }
        if sb.bytes_used > available {
            return Err(Error::Truncated {
                what: "filesystem (bytes_used)",
                offset: 0,
                len: sb.bytes_used,
                size: available,
            });
        }
        if sb.inode_count == 0 {
            return bad("inode count is 0".into());
        }
        let start = SUPERBLOCK_SIZE as u64;
        let tables = [
            ("inode table", sb.inode_table),
            ("directory table", sb.directory_table),
            ("id table", sb.id_table),
        ];
        for (name, pos) in tables {
            if pos < start || pos >= sb.bytes_used {
                return bad(format!(
                    "{name} at {pos} lies outside {start}..{}",
                    sb.bytes_used
                ));
            }
        }
        if sb.inode_table >= sb.directory_table {
            return bad(format!(
                "inode table ({}) does not precede directory table ({})",
                sb.inode_table, sb.directory_table
            ));
        }
        for (name, pos) in [
            ("fragment table", sb.fragment_table),
            ("export table", sb.export_table),
            ("xattr id table", sb.xattr_id_table),
        ] {
            if pos != NO_TABLE && (pos < start || pos >= sb.bytes_used) {
                return bad(format!(
                    "{name} at {pos} lies outside {start}..{}",
                    sb.bytes_used
                ));
            }
        }
        if (sb.root_inode >> 16) >= sb.directory_table - sb.inode_table {
            return bad(format!(
                "root inode reference {:#x} lies outside the inode table",
                sb.root_inode
            ));
        }
        Ok(sb)
    }

    /// Whether a flag bit (see [`flags`]) is set.
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    /// Where the directory table ends: the first table that follows it.
    pub(crate) fn directory_table_end(&self) -> u64 {
        [
            self.fragment_table,
            self.export_table,
            self.id_table,
            self.xattr_id_table,
        ]
        .into_iter()
        .filter(|&p| p != NO_TABLE && p > self.directory_table)
        .min()
        .unwrap_or(self.bytes_used)
    }
}

impl CompressorOptions {
    pub(crate) fn parse(c: Compressor, b: &[u8]) -> Self {
        match (c, b.len()) {
            (Compressor::Gzip, 8) => CompressorOptions::Gzip {
                level: le32(b, 0),
                window_size: le16(b, 4),
                strategies: le16(b, 6),
            },
            (Compressor::Xz, 8) => CompressorOptions::Xz {
                dictionary_size: le32(b, 0),
                filters: le32(b, 4),
            },
            (Compressor::Lz4, 8) => CompressorOptions::Lz4 {
                version: le32(b, 0),
                flags: le32(b, 4),
            },
            (Compressor::Zstd, 4) => CompressorOptions::Zstd { level: le32(b, 0) },
            _ => CompressorOptions::Other(b.to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        let put16 =
            |b: &mut [u8], at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |b: &mut [u8], at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put64 =
            |b: &mut [u8], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put32(&mut b, 0, MAGIC);
        put32(&mut b, 4, 1);
        put32(&mut b, 12, 131072);
        put16(&mut b, 20, 1);
        put16(&mut b, 22, 17);
        put16(&mut b, 26, 1);
        put16(&mut b, 28, 4);
        put64(&mut b, 40, 4096);
        put64(&mut b, 48, 1000); // id table
        put64(&mut b, 56, NO_TABLE);
        put64(&mut b, 64, 100); // inodes
        put64(&mut b, 72, 500); // directories
        put64(&mut b, 80, NO_TABLE);
        put64(&mut b, 88, NO_TABLE);
        b
    }

    #[test]
    fn accepts_a_consistent_superblock() {
        let sb = Superblock::parse(&valid(), 4096).unwrap();
        assert_eq!(sb.block_size, 131072);
        assert_eq!(sb.compressor, Compressor::Gzip);
        assert_eq!(sb.directory_table_end(), 1000);
    }

    #[test]
    fn rejects_inconsistent_fields() {
        let cases: [(usize, &[u8], &str); 6] = [
            (0, b"hsqt", "magic"),
            (28, &[3, 0], "version"),
            (12, &[0, 0, 3, 0], "block size"),
            (22, &[16, 0], "block log"),
            (20, &[3, 0], "lzo"),
            (72, &[50, 0, 0, 0, 0, 0, 0, 0], "directory table"),
        ];
        for (at, bytes, what) in cases {
            let mut b = valid();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            let err = Superblock::parse(&b, 4096).unwrap_err();
            assert!(
                err.to_string().contains(what)
                    || what == "magic"
                    || what == "lzo"
                    || what == "version",
                "{what}: {err}"
            );
        }
        assert!(matches!(
            Superblock::parse(&valid(), 100),
            Err(Error::Truncated { .. })
        ));
    }
}
