//! The 585-byte object descriptor: decoding, encoding, and the typed views of its fields (group,
//! link, per-type `Extra` metadata). Raw bytes are kept so that a descriptor round-trips exactly,
//! including bytes this crate does not interpret. No I/O here.

use crate::header::{arr, le_i32, le_i64, le_u32, trim_nul};
use crate::types::{
    Arch, DataType, FormatType, FsType, HashType, MessageType, PartType, SbomFormat,
};

/// Size of one descriptor.
pub const DESCRIPTOR_LEN: usize = 585;
/// Group IDs are stored OR'ed with this mask; links to groups carry it too.
pub const GROUP_MASK: u32 = 0xF000_0000;
/// Size of the name field.
pub const NAME_LEN: usize = 128;
/// Size of the type-specific extra field.
pub const EXTRA_LEN: usize = 384;

/// What an object links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    None,
    /// Another object, by ID (legacy signatures, Apptainer's crypto message).
    Object(u32),
    /// A group, by group ID (current signatures).
    Group(u32),
}

impl Link {
    /// The stored `LinkedID` field.
    pub fn raw(self) -> u32 {
        match self {
            Link::None => 0,
            Link::Object(id) => id,
            Link::Group(g) => g | GROUP_MASK,
        }
    }

    /// Decodes a stored `LinkedID` field (as Go: the mask decides, the rest is the ID).
    pub fn from_raw(raw: u32) -> Link {
        let id = raw & !GROUP_MASK;
        if raw & GROUP_MASK == GROUP_MASK {
            if id == 0 { Link::None } else { Link::Group(id) }
        } else if id == 0 {
            Link::None
        } else {
            Link::Object(id)
        }
    }
}

/// Partition metadata: filesystem, role and architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartitionMeta {
    pub fs: FsType,
    pub part: PartType,
    pub arch: Arch,
}

/// Signature metadata: hash and the signer's 20-byte fingerprint (OpenPGP v4), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignatureMeta {
    pub hash: HashType,
    pub fingerprint: Option<[u8; 20]>,
}

/// Typed contents of the 384-byte extra field, by data type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Extra {
    /// Deffile, EnvVar, Labels, GenericJSON, Generic: all zero.
    None,
    Partition(PartitionMeta),
    Signature(SignatureMeta),
    CryptoMessage {
        format: FormatType,
        message: MessageType,
    },
    Sbom(SbomFormat),
    /// OCI root index / blob: `sha256:<hex>` of the data.
    OciDigest(String),
}

impl Extra {
    /// Encodes into the 384 extra bytes (zero padded).
    pub fn encode(&self) -> [u8; EXTRA_LEN] {
        let mut b = [0u8; EXTRA_LEN];
        match self {
            Extra::None => {}
            Extra::Partition(p) => {
                b[0..4].copy_from_slice(&p.fs.code().to_le_bytes());
                b[4..8].copy_from_slice(&p.part.code().to_le_bytes());
                b[8..11].copy_from_slice(&p.arch.sif_code());
            }
            Extra::Signature(s) => {
                b[0..4].copy_from_slice(&s.hash.code().to_le_bytes());
                if let Some(fp) = s.fingerprint {
                    b[4..24].copy_from_slice(&fp);
                }
            }
            Extra::CryptoMessage { format, message } => {
                b[0..4].copy_from_slice(&format.code().to_le_bytes());
                b[4..8].copy_from_slice(&message.code().to_le_bytes());
            }
            Extra::Sbom(f) => b[0..4].copy_from_slice(&f.code().to_le_bytes()),
            Extra::OciDigest(d) => {
                let n = d.len().min(EXTRA_LEN - 1);
                b[..n].copy_from_slice(&d.as_bytes()[..n]);
            }
        }
        b
    }

    /// Decodes extra bytes according to the data type.
    pub fn decode(dt: DataType, b: &[u8; EXTRA_LEN]) -> Extra {
        match dt {
            DataType::Partition => Extra::Partition(PartitionMeta {
                fs: FsType::from_code(le_i32(b, 0)),
                part: PartType::from_code(le_i32(b, 4)),
                arch: Arch::from_sif_code(arr(b, 8)),
            }),
            DataType::Signature => {
                let fp: [u8; 20] = arr(b, 4);
                Extra::Signature(SignatureMeta {
                    hash: HashType::from_code(le_i32(b, 0)),
                    fingerprint: (fp != [0; 20]).then_some(fp),
                })
            }
            DataType::CryptoMessage => Extra::CryptoMessage {
                format: FormatType::from_code(le_i32(b, 0)),
                message: MessageType::from_code(le_i32(b, 4)),
            },
            DataType::Sbom => Extra::Sbom(SbomFormat::from_code(le_i32(b, 0))),
            DataType::OciRootIndex | DataType::OciBlob => {
                let end = b.iter().position(|&c| c == 0).unwrap_or(EXTRA_LEN);
                Extra::OciDigest(String::from_utf8_lossy(&b[..end]).into_owned())
            }
            _ => Extra::None,
        }
    }
}

/// One descriptor, field for field as stored. For used descriptors of an opened
/// [`crate::Image`], offsets and sizes have been checked against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub data_type_raw: i32,
    pub used: bool,
    /// Raw used byte (anything non-zero means used); kept for exact round trips.
    pub(crate) used_raw: u8,
    pub id: u32,
    pub group_raw: u32,
    pub link_raw: u32,
    pub offset_raw: i64,
    pub size_raw: i64,
    pub size_with_padding: i64,
    pub created_at: i64,
    pub modified_at: i64,
    pub uid: i64,
    pub gid: i64,
    pub name_raw: [u8; NAME_LEN],
    pub extra_raw: [u8; EXTRA_LEN],
}

impl Descriptor {
    /// An all-zero (free) descriptor.
    pub fn free() -> Descriptor {
        Descriptor::decode(&[0; DESCRIPTOR_LEN])
    }

    /// Decodes 585 descriptor bytes.
    pub fn decode(b: &[u8; DESCRIPTOR_LEN]) -> Descriptor {
        Descriptor {
            data_type_raw: le_i32(b, 0),
            used: b[4] != 0,
            used_raw: b[4],
            id: le_u32(b, 5),
            group_raw: le_u32(b, 9),
            link_raw: le_u32(b, 13),
            offset_raw: le_i64(b, 17),
            size_raw: le_i64(b, 25),
            size_with_padding: le_i64(b, 33),
            created_at: le_i64(b, 41),
            modified_at: le_i64(b, 49),
            uid: le_i64(b, 57),
            gid: le_i64(b, 65),
            name_raw: arr(b, 73),
            extra_raw: arr(b, 201),
        }
    }

    /// Encodes into 585 bytes.
    pub fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut b = [0u8; DESCRIPTOR_LEN];
        b[0..4].copy_from_slice(&self.data_type_raw.to_le_bytes());
        b[4] = if self.used { self.used_raw.max(1) } else { 0 };
        b[5..9].copy_from_slice(&self.id.to_le_bytes());
        b[9..13].copy_from_slice(&self.group_raw.to_le_bytes());
        b[13..17].copy_from_slice(&self.link_raw.to_le_bytes());
        let ints = [
            self.offset_raw,
            self.size_raw,
            self.size_with_padding,
            self.created_at,
            self.modified_at,
            self.uid,
            self.gid,
        ];
        for (i, v) in ints.iter().enumerate() {
            b[17 + 8 * i..25 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        b[73..201].copy_from_slice(&self.name_raw);
        b[201..585].copy_from_slice(&self.extra_raw);
        b
    }

    /// The data type.
    pub fn data_type(&self) -> DataType {
        DataType::from_code(self.data_type_raw)
    }

    /// The object ID (1-based).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The group ID, `None` for "no group".
    pub fn group(&self) -> Option<u32> {
        match self.group_raw & !GROUP_MASK {
            0 => None,
            g => Some(g),
        }
    }

    /// What the object links to.
    pub fn link(&self) -> Link {
        Link::from_raw(self.link_raw)
    }

    /// Absolute file offset of the data (checked non-negative for used descriptors of an
    /// opened image).
    pub fn offset(&self) -> u64 {
        self.offset_raw.max(0) as u64
    }

    /// Data length in bytes.
    pub fn size(&self) -> u64 {
        self.size_raw.max(0) as u64
    }

    /// Offset one past the last data byte.
    pub fn end(&self) -> u64 {
        self.offset().saturating_add(self.size())
    }

    /// The name without NUL padding.
    pub fn name(&self) -> String {
        trim_nul(&self.name_raw)
    }

    /// The typed extra metadata.
    pub fn extra(&self) -> Extra {
        Extra::decode(self.data_type(), &self.extra_raw)
    }

    /// Partition metadata, for partitions.
    pub fn partition(&self) -> Option<PartitionMeta> {
        match self.extra() {
            Extra::Partition(p) => Some(p),
            _ => None,
        }
    }

    /// Signature metadata, for signatures.
    pub fn signature(&self) -> Option<SignatureMeta> {
        match self.extra() {
            Extra::Signature(s) => Some(s),
            _ => None,
        }
    }

    /// OCI digest text, for OCI root index / blob objects.
    pub fn oci_digest(&self) -> Option<String> {
        match self.extra() {
            Extra::OciDigest(d) => Some(d),
            _ => None,
        }
    }

    /// True for a used partition of the given role.
    pub fn is_partition_of(&self, part: PartType) -> bool {
        self.used && self.partition().is_some_and(|p| p.part == part)
    }
}
