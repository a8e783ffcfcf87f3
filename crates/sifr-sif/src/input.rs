//! [`ObjectInput`]: one data object to be written (type, metadata, name, group, link,
//! alignment, time, and its bytes or a reader), with one builder per data type. Also the
//! shared placement rules (alignment, descriptor filling) used by both the streaming creator
//! and in-place edits. No file I/O here.

use std::fmt;
use std::io::Read;

use crate::descriptor::{
    Descriptor, Extra, GROUP_MASK, Link, NAME_LEN, PartitionMeta, SignatureMeta,
};
use crate::error::Error;
use crate::header::Header;
use crate::types::{Arch, DataType, FormatType, HashType, MessageType, PartType, SbomFormat};

/// Where an object's bytes come from.
pub enum ObjectData {
    Bytes(Vec<u8>),
    Reader(Box<dyn Read + Send>),
}

impl fmt::Debug for ObjectData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectData::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            ObjectData::Reader(_) => f.write_str("Reader(..)"),
        }
    }
}

/// One object to add. Defaults follow the Go library: group 1, no link, no name, alignment
/// 4096 for partitions and none otherwise, the image's time.
#[derive(Debug)]
pub struct ObjectInput {
    pub(crate) data_type: DataType,
    pub(crate) extra: Extra,
    pub(crate) name: String,
    pub(crate) group: Option<u32>,
    pub(crate) link: Link,
    pub(crate) alignment: Option<u64>,
    pub(crate) time: Option<i64>,
    pub(crate) data: ObjectData,
}

impl ObjectInput {
    /// Any data type with explicit extra metadata. For OCI types the digest is computed while
    /// writing and whatever `extra` says is replaced.
    pub fn new(data_type: DataType, extra: Extra, data: Vec<u8>) -> Self {
        ObjectInput {
            data_type,
            extra,
            name: String::new(),
            group: Some(1),
            link: Link::None,
            alignment: None,
            time: None,
            data: ObjectData::Bytes(data),
        }
    }

    /// The definition file (Apptainer writes it first, unnamed).
    pub fn deffile(bytes: Vec<u8>) -> Self {
        Self::new(DataType::Deffile, Extra::None, bytes)
    }

    /// Environment variables.
    pub fn env_var(bytes: Vec<u8>) -> Self {
        Self::new(DataType::EnvVar, Extra::None, bytes)
    }

    /// JSON labels.
    pub fn labels(bytes: Vec<u8>) -> Self {
        Self::new(DataType::Labels, Extra::None, bytes)
    }

    /// Generic JSON, named (`inspect-metadata.json`, `oci-config.json`, ...).
    pub fn generic_json(name: &str, bytes: Vec<u8>) -> Self {
        Self::new(DataType::GenericJson, Extra::None, bytes).name(name)
    }

    /// Generic raw data, named.
    pub fn generic(name: &str, bytes: Vec<u8>) -> Self {
        Self::new(DataType::Generic, Extra::None, bytes).name(name)
    }

    /// A partition held in memory (use [`crate::Creator::add_partition_with`] to stream one).
    pub fn partition(meta: PartitionMeta, bytes: Vec<u8>) -> Self {
        Self::new(DataType::Partition, Extra::Partition(meta), bytes)
    }

    /// A signature object (current scheme: call `.no_group().link_group(g)` on it).
    pub fn signature(hash: HashType, fingerprint: Option<[u8; 20]>, bytes: Vec<u8>) -> Self {
        Self::new(
            DataType::Signature,
            Extra::Signature(SignatureMeta { hash, fingerprint }),
            bytes,
        )
    }

    /// A cryptographic message.
    pub fn crypto_message(format: FormatType, message: MessageType, bytes: Vec<u8>) -> Self {
        Self::new(
            DataType::CryptoMessage,
            Extra::CryptoMessage { format, message },
            bytes,
        )
    }

    /// A software bill of materials.
    pub fn sbom(format: SbomFormat, bytes: Vec<u8>) -> Self {
        Self::new(DataType::Sbom, Extra::Sbom(format), bytes)
    }

    /// An OCI root index; its `sha256:` digest is computed while writing.
    pub fn oci_root_index(bytes: Vec<u8>) -> Self {
        Self::new(
            DataType::OciRootIndex,
            Extra::OciDigest(String::new()),
            bytes,
        )
    }

    /// An OCI blob; its `sha256:` digest is computed while writing.
    pub fn oci_blob(bytes: Vec<u8>) -> Self {
        Self::new(DataType::OciBlob, Extra::OciDigest(String::new()), bytes)
    }

    /// Takes the data from a reader instead of the in-memory bytes (streamed, never buffered
    /// whole).
    pub fn reader(mut self, r: impl Read + Send + 'static) -> Self {
        self.data = ObjectData::Reader(Box::new(r));
        self
    }

    /// Sets the name (at most 128 bytes).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Puts the object in group `g` (≥ 1).
    pub fn group(mut self, g: u32) -> Self {
        self.group = Some(g);
        self
    }

    /// Puts the object in no group.
    pub fn no_group(mut self) -> Self {
        self.group = None;
        self
    }

    /// Links the object to another object.
    pub fn link_object(mut self, id: u32) -> Self {
        self.link = Link::Object(id);
        self
    }

    /// Links the object to a group.
    pub fn link_group(mut self, g: u32) -> Self {
        self.link = Link::Group(g);
        self
    }

    /// Sets the raw link field as `siftool add --link` does.
    pub fn link_raw(mut self, raw: u32) -> Self {
        self.link = Link::from_raw(raw);
        if raw != 0 && self.link.raw() != raw {
            // Keep odd values (e.g. the bare mask) exactly as given.
            self.link = Link::Object(raw);
        }
        self
    }

    /// Overrides the alignment (0 or 1 = none).
    pub fn alignment(mut self, n: u64) -> Self {
        self.alignment = Some(n);
        self
    }

    /// Gives the object its own creation time (Unix seconds) instead of the image's.
    pub fn time(mut self, t: i64) -> Self {
        self.time = Some(t);
        self
    }

    /// The data type.
    pub fn data_type(&self) -> DataType {
        self.data_type
    }

    pub(crate) fn effective_alignment(&self) -> u64 {
        self.alignment
            .unwrap_or(if self.data_type == DataType::Partition {
                crate::header::PARTITION_ALIGNMENT
            } else {
                0
            })
    }

    pub(crate) fn is_oci(&self) -> bool {
        matches!(self.data_type, DataType::OciRootIndex | DataType::OciBlob)
    }

    pub(crate) fn primary_arch(&self) -> Option<Arch> {
        match &self.extra {
            Extra::Partition(p)
                if self.data_type == DataType::Partition && p.part == PartType::PrimSys =>
            {
                Some(p.arch)
            }
            _ => None,
        }
    }

    /// Checks everything that can be checked before any byte is written.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.name.len() > NAME_LEN {
            return Err(Error::NameTooLong {
                len: self.name.len(),
            });
        }
        if let Some(g) = self.group
            && (g == 0 || g & GROUP_MASK != 0)
        {
            return Err(Error::InvalidGroupId { value: g });
        }
        if let (DataType::Partition, Extra::Partition(p)) = (self.data_type, &self.extra)
            && p.arch == Arch::Unknown
        {
            return Err(Error::UnknownArch {
                arch: p.arch.go_name().to_owned(),
            });
        }
        Ok(())
    }

    /// The descriptor for this object once placed.
    pub(crate) fn descriptor(
        &self,
        place: Placement,
        image_time: i64,
        digest: Option<String>,
    ) -> Descriptor {
        let t = self.time.unwrap_or(image_time);
        let mut name_raw = [0u8; NAME_LEN];
        name_raw[..self.name.len()].copy_from_slice(self.name.as_bytes());
        let extra = match digest {
            Some(d) => Extra::OciDigest(d),
            None => self.extra.clone(),
        };
        Descriptor {
            data_type_raw: self.data_type.code(),
            used: true,
            used_raw: 1,
            id: place.id,
            group_raw: self.group.unwrap_or(0) | GROUP_MASK,
            link_raw: self.link.raw(),
            offset_raw: place.offset as i64,
            size_raw: place.size as i64,
            size_with_padding: (place.offset - place.start + place.size) as i64,
            created_at: t,
            modified_at: t,
            uid: 0,
            gid: 0,
            name_raw,
            extra_raw: extra.encode(),
        }
    }

    /// The descriptor for this object once placed (see [`ObjectInput::descriptor`]), with
    /// `header` counting it: one free slot fewer, data up to its end, and a primary partition's
    /// architecture.
    pub(crate) fn record(
        &self,
        header: &mut Header,
        place: Placement,
        image_time: i64,
        digest: Option<String>,
    ) -> Descriptor {
        if let Some(arch) = self.primary_arch() {
            header.arch = arch.sif_code();
        }
        header.descriptors_free -= 1;
        header.data_size = (place.offset + place.size) as i64 - header.data_offset;
        self.descriptor(place, image_time, digest)
    }
}

/// Where an object went.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    pub id: u32,
    /// End of the previous data (where the padding starts).
    pub start: u64,
    pub offset: u64,
    pub size: u64,
}

/// Next multiple of `alignment` at or after `offset` (Go's `nextAligned`).
pub(crate) fn next_aligned(offset: u64, alignment: u64) -> Result<u64, Error> {
    if alignment <= 1 || offset.is_multiple_of(alignment) {
        return Ok(offset);
    }
    offset
        .checked_add(alignment - offset % alignment)
        .filter(|&o| o <= i64::MAX as u64)
        .ok_or(Error::AlignmentOverflow { offset, alignment })
}

/// Current Unix time in seconds.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Streams `obj`'s data (taken out of it) to `write`, which gets each chunk and the
/// absolute offset it belongs at, the first at `offset`; returns the size written and, for
/// OCI types, the digest text.
pub(crate) fn write_object(
    obj: &mut ObjectInput,
    offset: u64,
    mut write: impl FnMut(&[u8], u64) -> std::io::Result<()>,
) -> Result<(u64, Option<String>), Error> {
    let mut hasher = obj.is_oci().then(<sha2::Sha256 as sha2::Digest>::new);
    let data = std::mem::replace(&mut obj.data, ObjectData::Bytes(Vec::new()));
    let mut pos = offset;
    let size = stream(data, hasher.as_mut(), |chunk| {
        write(chunk, pos).map_err(|source| Error::Write {
            offset: pos,
            source,
        })?;
        pos += chunk.len() as u64;
        Ok(())
    })?;
    Ok((size, hasher.map(digest_text)))
}

/// Copies `r` to `sink` in 64 KiB chunks, hashing when asked; returns the byte count.
pub(crate) fn stream(
    data: ObjectData,
    hasher: Option<&mut sha2::Sha256>,
    mut sink: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<u64, Error> {
    use sha2::Digest;
    let mut hasher = hasher;
    match data {
        ObjectData::Bytes(b) => {
            if let Some(h) = hasher.as_deref_mut() {
                h.update(&b);
            }
            sink(&b)?;
            Ok(b.len() as u64)
        }
        ObjectData::Reader(mut r) => {
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => return Ok(total),
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::Source(e)),
                };
                if let Some(h) = hasher.as_deref_mut() {
                    h.update(&buf[..n]);
                }
                sink(&buf[..n])?;
                total += n as u64;
            }
        }
    }
}

pub(crate) fn digest_text(h: sha2::Sha256) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(h.finalize()))
}
