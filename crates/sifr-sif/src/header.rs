//! The 128-byte global header: constants, encoding and decoding (packed little-endian, exactly
//! as Go's `encoding/binary` writes the upstream struct). Decoding never fails on content; the
//! checks a loader needs live in `load.rs`. No I/O here.

use crate::types::Arch;

/// Size of the global header.
pub const HEADER_LEN: usize = 128;
/// `SIF_MAGIC` and its NUL.
pub const MAGIC: [u8; 10] = *b"SIF_MAGIC\0";
/// The only version Go loaders accept: `01` and a NUL.
pub const VERSION: [u8; 3] = *b"01\0";
/// Unix seconds of Go's zero `time.Time`, used for every time field of deterministic images and
/// treated as "unset" by the tools.
pub const GO_ZERO_TIME: i64 = -62_135_596_800;
/// Default descriptor capacity.
pub const DEFAULT_DESCRIPTORS: u32 = 48;
/// Where writers put the descriptor table.
pub const DESCRIPTORS_OFFSET: u64 = 4096;
/// Default alignment of partition objects; other objects are unaligned.
pub const PARTITION_ALIGNMENT: u64 = 4096;
/// The launch script Apptainer writes into every image it builds.
pub const APPTAINER_LAUNCH_SCRIPT: &[u8] = b"#!/usr/bin/env run-singularity\n";
/// Launch script field size (the script must leave at least one NUL).
pub const LAUNCH_SCRIPT_LEN: usize = 32;

/// The global header, field for field. Integers are kept as stored (signed, unchecked) so that
/// an image round-trips exactly; [`crate::Image`] validates them when opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub launch_script: [u8; 32],
    pub magic: [u8; 10],
    pub version: [u8; 3],
    pub arch: [u8; 3],
    pub id: [u8; 16],
    pub created_at: i64,
    pub modified_at: i64,
    pub descriptors_free: i64,
    pub descriptors_total: i64,
    pub descriptors_offset: i64,
    pub descriptors_size: i64,
    pub data_offset: i64,
    pub data_size: i64,
}

pub(crate) fn le_i64(b: &[u8], off: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    i64::from_le_bytes(a)
}

pub(crate) fn le_i32(b: &[u8], off: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    i32::from_le_bytes(a)
}

pub(crate) fn le_u32(b: &[u8], off: usize) -> u32 {
    le_i32(b, off) as u32
}

pub(crate) fn arr<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[off..off + N]);
    a
}

impl Header {
    /// Decodes the 128 header bytes.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            launch_script: arr(b, 0),
            magic: arr(b, 32),
            version: arr(b, 42),
            arch: arr(b, 45),
            id: arr(b, 48),
            created_at: le_i64(b, 64),
            modified_at: le_i64(b, 72),
            descriptors_free: le_i64(b, 80),
            descriptors_total: le_i64(b, 88),
            descriptors_offset: le_i64(b, 96),
            descriptors_size: le_i64(b, 104),
            data_offset: le_i64(b, 112),
            data_size: le_i64(b, 120),
        }
    }

    /// Encodes the header into its 128 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..32].copy_from_slice(&self.launch_script);
        b[32..42].copy_from_slice(&self.magic);
        b[42..45].copy_from_slice(&self.version);
        b[45..48].copy_from_slice(&self.arch);
        b[48..64].copy_from_slice(&self.id);
        let ints = [
            self.created_at,
            self.modified_at,
            self.descriptors_free,
            self.descriptors_total,
            self.descriptors_offset,
            self.descriptors_size,
            self.data_offset,
            self.data_size,
        ];
        for (i, v) in ints.iter().enumerate() {
            b[64 + 8 * i..72 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// The launch script without its NUL padding (as Go's `LaunchScript()`).
    pub fn launch_script(&self) -> &[u8] {
        let end = self
            .launch_script
            .iter()
            .rposition(|&c| c != 0)
            .map_or(0, |p| p + 1);
        &self.launch_script[..end]
    }

    /// The version text without NULs (`"01"`).
    pub fn version_text(&self) -> String {
        trim_nul(&self.version)
    }

    /// The primary architecture recorded in the header.
    pub fn arch(&self) -> Arch {
        Arch::from_sif_code(self.arch)
    }

    /// The image UUID in its canonical lower-case text form.
    pub fn id_text(&self) -> String {
        uuid::Uuid::from_bytes(self.id).hyphenated().to_string()
    }

    /// True for an all-zero UUID.
    pub fn id_is_nil(&self) -> bool {
        self.id == [0; 16]
    }

    /// Go's notion of a deterministic image: nil UUID and both times at Go's zero time. Edits of
    /// such an image keep using the zero time.
    pub fn is_deterministic(&self) -> bool {
        self.id_is_nil() && self.created_at == GO_ZERO_TIME && self.modified_at == GO_ZERO_TIME
    }
}

pub(crate) fn trim_nul(b: &[u8]) -> String {
    let end = b.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let mut h = Header::decode(&[0; HEADER_LEN]);
        h.magic = MAGIC;
        h.version = VERSION;
        h.created_at = GO_ZERO_TIME;
        h.data_size = 8784;
        let b = h.encode();
        assert_eq!(
            &b[64..72],
            &[0x00, 0x09, 0x6e, 0x88, 0xf1, 0xff, 0xff, 0xff]
        );
        assert_eq!(Header::decode(&b), h);
    }
}
