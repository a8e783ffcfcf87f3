//! The "image metadata" a current (non-legacy) SIF signature signs: a JSON document with a
//! digest of the header's integrity fields and, per signed object, digests of its descriptor's
//! integrity fields and of its data, as the SIF library's `pkg/integrity` writes it.
//!
//! Which fields are protected is the format's decision, not ours: the header's launch script,
//! magic, version and ID (not its times or counts, which change when a signature is added);
//! each descriptor's type, used flag, ID relative to its group's lowest ID, link, size,
//! creation time, uid, gid, name and extra field (not its offset or modification time).

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use sifr_sif::{Descriptor, HashType, Header, Image, ReadAt};

use crate::Error;

/// A digest as the metadata stores it: `"<algorithm>:<hex>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub algorithm: Algorithm,
    pub value: Vec<u8>,
}

/// The hash algorithms the metadata may name (the SIF library's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha512_224,
    Sha512_256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha224 => "sha224",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
            Algorithm::Sha512_224 => "sha512_224",
            Algorithm::Sha512_256 => "sha512_256",
        }
    }

    fn from_name(s: &str) -> Option<Algorithm> {
        [
            Algorithm::Sha224,
            Algorithm::Sha256,
            Algorithm::Sha384,
            Algorithm::Sha512,
            Algorithm::Sha512_224,
            Algorithm::Sha512_256,
        ]
        .into_iter()
        .find(|a| a.name() == s)
    }

    /// The algorithm a signature descriptor's hash type names (SHA-256/384/512 only).
    pub fn from_hash_type(h: HashType) -> Option<Algorithm> {
        match h {
            HashType::Sha256 => Some(Algorithm::Sha256),
            HashType::Sha384 => Some(Algorithm::Sha384),
            HashType::Sha512 => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// A fresh hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
            Algorithm::Sha512_224 => Hasher::Sha512_224(sha2::Sha512_224::new()),
            Algorithm::Sha512_256 => Hasher::Sha512_256(sha2::Sha512_256::new()),
        }
    }
}

/// One running hash of any supported algorithm.
pub enum Hasher {
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Sha512_224(sha2::Sha512_224),
    Sha512_256(sha2::Sha512_256),
}

impl Hasher {
    pub fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha224(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha384(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
            Hasher::Sha512_224(h) => h.update(b),
            Hasher::Sha512_256(h) => h.update(b),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
            Hasher::Sha512_224(h) => h.finalize().to_vec(),
            Hasher::Sha512_256(h) => h.finalize().to_vec(),
        }
    }
}

impl Digest {
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut h = algorithm.hasher();
        h.update(bytes);
        Digest {
            algorithm,
            value: h.finish(),
        }
    }

    /// The digest of an object's data, read in 1 MiB chunks with positional reads.
    pub fn of_object<S: ReadAt>(
        algorithm: Algorithm,
        image: &Image<S>,
        d: &Descriptor,
    ) -> Result<Digest, Error> {
        let mut h = algorithm.hasher();
        hash_range(image, d.offset(), d.size(), &mut h)?;
        Ok(Digest {
            algorithm,
            value: h.finish(),
        })
    }
}

/// Feeds `len` bytes of the image from `offset` into `h`.
pub(crate) fn hash_range<S: ReadAt>(
    image: &Image<S>,
    offset: u64,
    len: u64,
    h: &mut Hasher,
) -> Result<(), Error> {
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let mut done = 0u64;
    while done < len {
        let n = CHUNK.min((len - done) as usize);
        image.read_at(&mut buf[..n], offset + done)?;
        h.update(&buf[..n]);
        done += n as u64;
    }
    Ok(())
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!(
            "{}:{}",
            self.algorithm.name(),
            hex::encode(&self.value)
        ))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let s = String::deserialize(d)?;
        let (name, value) = s
            .split_once(':')
            .ok_or_else(|| D::Error::custom(format!("digest malformed: {s}")))?;
        let algorithm = Algorithm::from_name(name)
            .ok_or_else(|| D::Error::custom(format!("hash algorithm unsupported: {name}")))?;
        let value = hex::decode(value).map_err(D::Error::custom)?;
        if value.len() != algorithm.hasher().finish().len() {
            return Err(D::Error::custom(format!("digest malformed: {s}")));
        }
        Ok(Digest { algorithm, value })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeaderMetadata {
    pub digest: Digest,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetadata {
    #[serde(rename = "relativeId")]
    pub relative_id: u32,
    pub descriptor_digest: Digest,
    pub object_digest: Digest,
}

/// The signed document. Field order matters for byte-identical output with Go's encoder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageMetadata {
    pub version: u32,
    pub header: HeaderMetadata,
    pub objects: Vec<ObjectMetadata>,
}

/// The header fields a signature protects.
pub fn header_integrity_bytes(h: &Header) -> Vec<u8> {
    let mut b = Vec::with_capacity(61);
    b.extend_from_slice(&h.launch_script);
    b.extend_from_slice(&h.magic);
    b.extend_from_slice(&h.version);
    b.extend_from_slice(&h.id);
    b
}

/// The descriptor fields a signature protects, with the ID relative to its group's lowest ID.
pub fn descriptor_integrity_bytes(d: &Descriptor, relative_id: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + 1 + 4 + 4 + 8 * 4 + 128 + 384);
    b.extend_from_slice(&d.data_type_raw.to_le_bytes());
    b.push(u8::from(d.used));
    b.extend_from_slice(&relative_id.to_le_bytes());
    b.extend_from_slice(&d.link_raw.to_le_bytes());
    for v in [d.size_raw, d.created_at, d.uid, d.gid] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&d.name_raw);
    b.extend_from_slice(&d.extra_raw);
    b
}

/// The lowest object ID in a group (signature objects in it count, as upstream).
pub fn group_min_id<S: ReadAt>(image: &Image<S>, group: u32) -> Option<u32> {
    image
        .descriptors()
        .filter(|d| d.group() == Some(group))
        .map(|d| d.id)
        .min()
}

impl ImageMetadata {
    /// The metadata of `objects` (all in `group`, sorted by ID).
    pub fn compute<S: ReadAt>(
        image: &Image<S>,
        group: u32,
        objects: &[&Descriptor],
        algorithm: Algorithm,
    ) -> Result<ImageMetadata, Error> {
        let min = group_min_id(image, group).ok_or(Error::GroupNotFound { group })?;
        let mut out = Vec::with_capacity(objects.len());
        for d in objects {
            let rel = d.id - min;
            out.push(ObjectMetadata {
                relative_id: rel,
                descriptor_digest: Digest::of(algorithm, &descriptor_integrity_bytes(d, rel)),
                object_digest: Digest::of_object(algorithm, image, d)?,
            });
        }
        Ok(ImageMetadata {
            version: 1,
            header: HeaderMetadata {
                digest: Digest::of(algorithm, &header_integrity_bytes(image.header())),
            },
            objects: out,
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata always serializes")
    }
}
