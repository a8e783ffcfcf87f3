//! The one error type of the crate. Every variant names what a user needs to find the problem
//! (path, offset, object ID, offending value). Messages are lower-case; values in backticks.
//! This module must not grow an `Other(String)` catch-all.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while reading, creating or editing a SIF image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot open `{path}`")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {len} bytes at offset `{offset}`")]
    Read {
        offset: u64,
        len: u64,
        #[source]
        source: io::Error,
    },
    #[error("cannot write at offset `{offset}`")]
    Write {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the object data source")]
    Source(#[source] io::Error),
    #[error("cannot query the image size")]
    Size(#[source] io::Error),
    #[error("image is `{len}` bytes, smaller than the 128-byte sif header")]
    TooSmall { len: u64 },
    #[error("not a sif image: bad magic `{found}` (want `SIF_MAGIC`)")]
    BadMagic { found: String },
    #[error("unsupported sif version `{found}` (want `01`)")]
    BadVersion { found: String },
    #[error("invalid header field `{field}` = `{value}`")]
    BadHeaderField { field: &'static str, value: i64 },
    #[error(
        "descriptor table of `{total}` entries at offset `{offset}` does not fit in the `{file_len}`-byte image"
    )]
    DescriptorTableOutOfRange {
        offset: i64,
        total: i64,
        file_len: u64,
    },
    #[error(
        "object `{id}` (offset `{offset}`, size `{size}`) lies outside the data area of the `{file_len}`-byte image"
    )]
    ObjectOutOfRange {
        id: u32,
        offset: i64,
        size: i64,
        file_len: u64,
    },
    #[error("object `{id}` overlaps object `{other}`")]
    ObjectsOverlap { id: u32, other: u32 },
    #[error("object id `{id}` is used by more than one descriptor")]
    DuplicateId { id: u32 },
    #[error("no object with id `{id}`")]
    ObjectNotFound { id: u32 },
    #[error("no free descriptor: all `{total}` are in use")]
    NoFreeDescriptor { total: u64 },
    #[error("image already has a primary partition (object `{id}`)")]
    PrimaryPartitionExists { id: u32 },
    #[error("object `{id}` is not a partition")]
    NotPartition { id: u32 },
    #[error("object `{id}` is not a system partition (partition type `{part}`)")]
    NotSystemPartition { id: u32, part: String },
    #[error("launch script is `{len}` bytes; at most 31 fit")]
    LaunchScriptTooLong { len: usize },
    #[error("object name is `{len}` bytes; at most 128 fit")]
    NameTooLong { len: usize },
    #[error("partition architecture `{arch}` is not one sif can record")]
    UnknownArch { arch: String },
    #[error("group id must be between 1 and 0x0fffffff, got `{value}`")]
    InvalidGroupId { value: u32 },
    #[error("linked object id must not be 0")]
    InvalidLinkId,
    #[error("descriptor capacity `{value}` is not supported")]
    CapacityTooLarge { value: u64 },
    #[error("alignment `{alignment}` overflows the offset `{offset}`")]
    AlignmentOverflow { offset: u64, alignment: u64 },
    #[error("object `{id}` has an unsupported signature hash type `{value}`")]
    UnknownHashType { id: u32, value: i32 },
    #[error(
        "a `{data_type}` object needs its digest computed while writing; add it from bytes or a reader"
    )]
    StreamedDigest { data_type: String },
    #[error("partition data seek to a negative position")]
    NegativeSeek,
}
