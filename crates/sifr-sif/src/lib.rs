//! The SIF container format, byte-compatible with Apptainer and SingularityCE (the Go
//! `github.com/sylabs/sif/v2` library and its `apptainer/sif` fork).
//!
//! Layout: a 128-byte [`Header`], a table of 585-byte [`Descriptor`]s at offset 4096 (48 by
//! default), then the data objects; partitions aligned to 4096, everything else unaligned. See
//! `../shared/reference/sif-format.md` in the project workspace for the byte-level notes.
//!
//! # Creating (streaming)
//!
//! [`Creator`] writes objects in order into any `Write + Seek` and writes the descriptor table
//! and header in [`Creator::finish`]. A partition is streamed in place with
//! [`Creator::add_partition_with`], whose [`PartitionSink`] is `Write + Seek` with position 0 at
//! the (4096-aligned) partition start, so a squashfs writer needs no temporary file.
//!
//! ```no_run
//! use sifr_sif::{Arch, CreateOptions, Creator, FsType, ObjectInput, PartType, PartitionMeta};
//! let file = std::fs::File::create("image.sif").map_err(sifr_sif::Error::Source)?;
//! let mut c = Creator::new(file, CreateOptions::apptainer())?;
//! c.add(ObjectInput::deffile(b"Bootstrap: localimage\n".to_vec()))?;
//! c.add(ObjectInput::generic_json("inspect-metadata.json", b"{}".to_vec()))?;
//! let meta = PartitionMeta { fs: FsType::Squash, part: PartType::PrimSys, arch: Arch::Amd64 };
//! c.add_partition_with::<sifr_sif::Error>("", meta, |sink| {
//!     use std::io::Write;
//!     sink.write_all(b"hsqs").map_err(sifr_sif::Error::Source)
//! })?;
//! c.finish()?;
//! # Ok::<(), sifr_sif::Error>(())
//! ```
//!
//! [`CreateOptions::deterministic`] reproduces the upstream test images byte for byte (nil UUID,
//! Go's zero time [`GO_ZERO_TIME`]). [`create_at_path`] is the one-call form (mode 0755).
//!
//! # Reading
//!
//! [`Image::open`] reads only the header and the descriptor table, with positional reads, and
//! validates them against the file length: a corrupt image gives an [`Error`], never a panic,
//! and nothing is allocated in proportion to a size the file cannot back.
//! [`Image::primary_partition`] locates the root filesystem (offset, size, fs, arch via
//! [`Descriptor::partition`]); [`Image::read_object`] / [`Image::copy_object`] read data.
//!
//! # Editing in place
//!
//! With [`Image::open_rw`]: [`Image::add_object`] (first free slot, ID = slot + 1),
//! [`Image::delete_object`] ([`DeleteOptions`]: zero, compact), [`Image::set_primary`];
//! [`Image::set_content_id`] gives a reproducible build's image an ID derived from its bytes.
//!
//! # siftool text
//!
//! [`render`] produces `sif header|list|info` output byte for byte; this crate never prints.

mod content_id;
mod create;
mod descriptor;
mod edit;
mod error;
mod header;
mod input;
mod load;
pub mod render;
mod storage;
mod types;

pub use content_id::content_id;
pub use create::{CreateOptions, Creator, PartitionSink, create_at_path};
pub use descriptor::{
    DESCRIPTOR_LEN, Descriptor, EXTRA_LEN, Extra, GROUP_MASK, Link, NAME_LEN, PartitionMeta,
    SignatureMeta,
};
pub use edit::DeleteOptions;
pub use error::Error;
pub use header::{
    APPTAINER_LAUNCH_SCRIPT, DEFAULT_DESCRIPTORS, DESCRIPTORS_OFFSET, GO_ZERO_TIME, HEADER_LEN,
    Header, MAGIC, PARTITION_ALIGNMENT, VERSION,
};
pub use input::{ObjectData, ObjectInput};
pub use load::Image;
pub use storage::{ReadAt, WriteAt};
pub use types::{Arch, DataType, FormatType, FsType, HashType, MessageType, PartType, SbomFormat};
