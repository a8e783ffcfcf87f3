//! SquashFS 4.0 on-disk constants and plain structs shared by the writer and the reader.
//!
//! Only layout facts live here: magic numbers, flag bits, inode type codes, fixed record
//! sizes and little-endian encoders for the fixed-size records. No I/O, no policy (which
//! inode variant to pick, where tables go) — that belongs to `write` and `read`.

/// `hsqs` read as a little-endian u32.
pub const MAGIC: u32 = 0x7371_7368;
pub const VERSION_MAJOR: u16 = 4;
pub const VERSION_MINOR: u16 = 0;
/// Size of the superblock at offset 0.
pub const SUPERBLOCK_SIZE: usize = 96;

/// Uncompressed payload of one metadata block.
pub const METADATA_SIZE: usize = 8192;
/// Bit in a metadata block's 2-byte header: the payload is stored uncompressed.
pub const METADATA_UNCOMPRESSED: u16 = 0x8000;
/// Bit in a data block or fragment size word: the block is stored uncompressed.
pub const DATA_UNCOMPRESSED: u32 = 1 << 24;

/// Smallest and largest block sizes the kernel accepts (powers of two).
pub const MIN_BLOCK_SIZE: u32 = 4096;
pub const MAX_BLOCK_SIZE: u32 = 1 << 20;
pub const DEFAULT_BLOCK_SIZE: u32 = 128 * 1024;

/// Marker for "no fragment", "no xattrs" and absent table offsets.
pub const INVALID_FRAG: u32 = 0xFFFF_FFFF;
pub const INVALID_XATTR: u32 = 0xFFFF_FFFF;
pub const INVALID_TABLE: u64 = 0xFFFF_FFFF_FFFF_FFFF;

/// Most entries one directory header may cover.
pub const DIR_HEADER_MAX_ENTRIES: usize = 256;
/// Longest file name stored (`name_size` holds length - 1 in a u16, the kernel caps at 256).
pub const MAX_NAME_LEN: usize = 256;

/// Entries per metadata block for the fixed-size lookup tables.
pub const FRAGMENT_ENTRY_SIZE: usize = 16;
pub const EXPORT_ENTRY_SIZE: usize = 8;
pub const ID_ENTRY_SIZE: usize = 4;
pub const XATTR_ID_ENTRY_SIZE: usize = 16;

// stays literal: on-disk constants of the SquashFS 4.0 format, one per line as the spec lists them.
/// Superblock flag bits.
pub mod flags {
    pub const UNCOMPRESSED_INODES: u16 = 0x0001;
    pub const UNCOMPRESSED_DATA: u16 = 0x0002;
    /// Unused by SquashFS 4.0 writers; kept so readers can name every bit.
    pub const CHECK: u16 = 0x0004;
    pub const UNCOMPRESSED_FRAGMENTS: u16 = 0x0008;
    pub const NO_FRAGMENTS: u16 = 0x0010;
    pub const ALWAYS_FRAGMENTS: u16 = 0x0020;
    pub const DUPLICATES: u16 = 0x0040;
    pub const EXPORTABLE: u16 = 0x0080;
    pub const UNCOMPRESSED_XATTRS: u16 = 0x0100;
    pub const NO_XATTRS: u16 = 0x0200;
    pub const COMPRESSOR_OPTIONS: u16 = 0x0400;
    pub const UNCOMPRESSED_IDS: u16 = 0x0800;
}

/// Compressor ids in the superblock.
pub mod compressor {
    pub const GZIP: u16 = 1;
    pub const LZMA: u16 = 2;
    pub const LZO: u16 = 3;
    pub const XZ: u16 = 4;
    pub const LZ4: u16 = 5;
    pub const ZSTD: u16 = 6;
}

/// Inode type codes; the extended variant of a basic type `t` is `t + 7`.
pub mod inode_type {
    pub const DIR: u16 = 1;
    pub const FILE: u16 = 2;
    pub const SYMLINK: u16 = 3;
    pub const BLKDEV: u16 = 4;
    pub const CHRDEV: u16 = 5;
    pub const FIFO: u16 = 6;
    pub const SOCKET: u16 = 7;
    pub const EXT_DIR: u16 = 8;
    pub const EXT_FILE: u16 = 9;
    pub const EXT_SYMLINK: u16 = 10;
    pub const EXT_BLKDEV: u16 = 11;
    pub const EXT_CHRDEV: u16 = 12;
    pub const EXT_FIFO: u16 = 13;
    pub const EXT_SOCKET: u16 = 14;
    /// Offset from a basic type to its extended type.
    pub const EXTENDED_OFFSET: u16 = 7;
}

/// Xattr name-prefix types in the key/value table; `OOL` marks an out-of-line value.
pub mod xattr_type {
    pub const USER: u16 = 0;
    pub const TRUSTED: u16 = 1;
    pub const SECURITY: u16 = 2;
    pub const OOL: u16 = 0x0100;
}

/// The 96-byte superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Superblock {
    pub inode_count: u32,
    pub modification_time: u32,
    pub block_size: u32,
    pub fragment_entry_count: u32,
    pub compression_id: u16,
    pub block_log: u16,
    pub flags: u16,
    pub id_count: u16,
    pub root_inode_ref: u64,
    pub bytes_used: u64,
    pub id_table_start: u64,
    pub xattr_id_table_start: u64,
    pub inode_table_start: u64,
    pub directory_table_start: u64,
    pub fragment_table_start: u64,
    pub export_table_start: u64,
}

impl Superblock {
    /// Little-endian encoding, `SUPERBLOCK_SIZE` bytes.
    pub fn to_bytes(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        let mut w = Le::new(&mut b);
        w.u32(MAGIC);
        w.u32(self.inode_count);
        w.u32(self.modification_time);
        w.u32(self.block_size);
        w.u32(self.fragment_entry_count);
        w.u16(self.compression_id);
        w.u16(self.block_log);
        w.u16(self.flags);
        w.u16(self.id_count);
        w.u16(VERSION_MAJOR);
        w.u16(VERSION_MINOR);
        w.u64(self.root_inode_ref);
        w.u64(self.bytes_used);
        w.u64(self.id_table_start);
        w.u64(self.xattr_id_table_start);
        w.u64(self.inode_table_start);
        w.u64(self.directory_table_start);
        w.u64(self.fragment_table_start);
        w.u64(self.export_table_start);
        b
    }
}

/// Common 16-byte header of every inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InodeHeader {
    pub inode_type: u16,
    /// Permission bits only (`0o7777`); the file type is the inode type.
    pub permissions: u16,
    pub uid_idx: u16,
    pub gid_idx: u16,
    pub mtime: u32,
    pub inode_number: u32,
}

impl InodeHeader {
    pub fn write_to(&self, out: &mut Vec<u8>) {
        put_u16(out, self.inode_type);
        put_u16(out, self.permissions);
        put_u16(out, self.uid_idx);
        put_u16(out, self.gid_idx);
        put_u32(out, self.mtime);
        put_u32(out, self.inode_number);
    }
}

/// 12-byte header in front of a run of directory entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirHeader {
    /// Number of entries minus one.
    pub count: u32,
    /// Inode-table-relative start of the metadata block holding all of the run's inodes.
    pub start: u32,
    /// Base inode number; entries store a signed 16-bit difference to it.
    pub inode_number: u32,
}

/// A fragment-table entry: where one fragment block lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentEntry {
    pub start: u64,
    /// Size on disk, with `DATA_UNCOMPRESSED` set when stored raw.
    pub size: u32,
}

/// Encode a block/char device number the way the kernel's `new_decode_dev` reads it.
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Inode reference: metadata block start (relative to the inode table) and offset inside it.
pub fn inode_ref(block: u64, offset: u16) -> u64 {
    (block << 16) | u64::from(offset)
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Little-endian cursor over a fixed buffer (used for the superblock).
struct Le<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Le<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Le { buf, pos: 0 }
    }
    fn put(&mut self, b: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.pos..self.pos + b.len()) {
            dst.copy_from_slice(b);
        }
        self.pos += b.len();
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
}
