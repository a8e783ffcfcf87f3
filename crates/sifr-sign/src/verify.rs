//! Verifying a SIF image's signatures as the SIF library's `pkg/integrity` does, one verdict
//! per signature object: which objects it covers and verified, and why it failed.
//!
//! Tasks: by default every object group; `groups` and `objects` narrow that (an object alone is
//! checked against its group's signatures, which may cover more). Legacy signatures (clear-signed
//! `SIFHASH:` digests of object data, before Apptainer 1.0/SingularityCE 3.6) are checked only
//! when asked: by default the primary partition's, with `all` every grouped object's.
//!
//! Unlike the Go library, which stops at the first failure, every task is checked and each
//! failure is reported; the verdict is the same (any failure fails the image).

use pgp::composed::SignedPublicKey;
use sifr_sif::{DataType, Descriptor, Image, Link, PartType, ReadAt};

use crate::Error;
use crate::dsse;
use crate::metadata::{
    Algorithm, Digest, ImageMetadata, descriptor_integrity_bytes, group_min_id,
    header_integrity_bytes,
};
use crate::openpgp::{self, ClearsignError, KeyInfo};

/// The keys signatures are checked against.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// OpenPGP public keys (the keyrings, or an imported file).
    pub pgp: Option<Vec<SignedPublicKey>>,
    /// PEM public keys for DSSE envelopes.
    pub dsse: Option<Vec<dsse::PublicKey>>,
}

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub groups: Vec<u32>,
    pub objects: Vec<u32>,
    pub legacy: bool,
    pub all: bool,
}

/// Who made a signature that checked out.
#[derive(Debug, Clone)]
pub enum Signer {
    Pgp(KeyInfo),
    /// The key IDs of the PEM keys that verified the envelope.
    Dsse(Vec<String>),
}

/// Why a signature, or a task without one, failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("signature not found for object group {0}")]
    NoGroupSignature(u32),
    #[error("signature not found for object {0}")]
    NoObjectSignature(u32),
    #[error("signature object {id} not valid: {reason}")]
    SignatureNotValid { id: u32, reason: String },
    #[error("key material not provided for DSSE envelope signature (hint: --key PEM)")]
    NoDsseKey,
    #[error("key material not provided for PGP clear-sign signature")]
    NoPgpKey,
    #[error("signature format not recognized")]
    UnknownFormat,
    #[error("fingerprint in descriptor does not correspond to signing entity")]
    FingerprintMismatch,
    #[error("header integrity compromised")]
    HeaderIntegrity,
    #[error("data object descriptor integrity compromised: {0}")]
    DescriptorIntegrity(u32),
    #[error("data object integrity compromised: {0}")]
    ObjectIntegrity(u32),
    #[error("data object integrity compromised (objects {0:?})")]
    GroupIntegrity(Vec<u32>),
    #[error("object {0}: object not signed")]
    ObjectNotSigned(u32),
    #[error("object {0}: signed object not found")]
    SignedObjectNotFound(u32),
}

impl Failure {
    /// The data object whose contents or descriptor changed, if one is named.
    pub fn object(&self) -> Option<u32> {
        match self {
            Failure::DescriptorIntegrity(id) | Failure::ObjectIntegrity(id) => Some(*id),
            _ => None,
        }
    }
}

/// The verdict on one signature object (or on a task that has none).
#[derive(Debug, Clone)]
pub struct SignatureResult {
    /// The signature object; `None` when none was found for the task.
    pub signature: Option<u32>,
    /// The group or object the signature is for.
    pub target: Link,
    pub signer: Option<Signer>,
    /// Objects verified, in order.
    pub verified: Vec<u32>,
    pub failure: Option<Failure>,
}

impl SignatureResult {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

enum Task {
    Group {
        group: u32,
        objects: Vec<u32>,
        subset: bool,
    },
    LegacyGroup {
        group: u32,
        objects: Vec<u32>,
    },
    LegacyObject {
        id: u32,
    },
}

fn group_objects<S: ReadAt>(image: &Image<S>, group: u32) -> Result<Vec<u32>, Error> {
    let ids: Vec<u32> = image
        .descriptors()
        .filter(|d| d.group() == Some(group))
        .map(|d| d.id)
        .collect();
    if ids.is_empty() {
        return Err(Error::GroupNotFound { group });
    }
    Ok(ids)
}

/// Every group ID in use, sorted.
pub fn group_ids<S: ReadAt>(image: &Image<S>) -> Vec<u32> {
    let mut g: Vec<u32> = image.descriptors().filter_map(|d| d.group()).collect();
    g.sort_unstable();
    g.dedup();
    g
}

fn tasks<S: ReadAt>(image: &Image<S>, opts: &Options) -> Result<Vec<Task>, Error> {
    let mut groups = opts.groups.clone();
    let mut objects = opts.objects.clone();
    if opts.legacy {
        if opts.all {
            objects.extend(
                image
                    .descriptors()
                    .filter(|d| d.data_type() != DataType::Signature && d.group().is_some())
                    .map(|d| d.id),
            );
        } else if groups.is_empty() && objects.is_empty() {
            let d = image
                .descriptors()
                .find(|d| d.is_partition_of(PartType::PrimSys))
                .ok_or(Error::NoPrimaryPartition)?;
            objects.push(d.id);
        }
    }
    groups.sort_unstable();
    groups.dedup();
    objects.sort_unstable();
    objects.dedup();
    if groups.is_empty() && objects.is_empty() {
        groups = group_ids(image);
        if groups.is_empty() {
            return Err(Error::NoGroups);
        }
    }
    let mut out = Vec::new();
    for g in groups {
        let ids = group_objects(image, g)?;
        out.push(if opts.legacy {
            Task::LegacyGroup {
                group: g,
                objects: ids,
            }
        } else {
            Task::Group {
                group: g,
                objects: ids,
                subset: false,
            }
        });
    }
    for id in objects {
        let d = image
            .descriptor(id)
            .map_err(|_| Error::ObjectNotFound { id })?;
        if opts.legacy {
            out.push(Task::LegacyObject { id });
        } else {
            let group = d.group().ok_or(Error::NotGrouped { id })?;
            out.push(Task::Group {
                group,
                objects: vec![id],
                subset: true,
            });
        }
    }
    Ok(out)
}

/// The largest signature object read: a signed message over a thousand objects' metadata is a
/// few hundred KiB, and a hostile image's huge "signature" must not be read into memory.
pub const MAX_SIGNATURE: u64 = 16 << 20;

/// True when any signature object of the image is a legacy one.
pub fn has_legacy_signatures<S: ReadAt>(image: &Image<S>) -> bool {
    image
        .descriptors()
        .filter(|d| d.data_type() == DataType::Signature && d.size() <= MAX_SIGNATURE)
        .any(|d| image.read_object(d.id).is_ok_and(|b| is_legacy(&b)))
}

/// True for a clear-signed `SIFHASH:` message.
fn is_legacy(data: &[u8]) -> bool {
    openpgp::parse_clearsigned(data)
        .is_some_and(|m| openpgp::clearsigned_plaintext(&m).starts_with(b"SIFHASH:\n"))
}

/// Verifies `image` against `keys`. An `Err` is a failure before any signature was looked at
/// (no such group or object, an ungrouped data object); signature verdicts are in the results.
pub fn verify<S: ReadAt>(
    image: &Image<S>,
    keys: &Keys,
    opts: &Options,
) -> Result<Vec<SignatureResult>, Error> {
    if let Some(d) = image
        .descriptors()
        .find(|d| d.group().is_none() && d.data_type() != DataType::Signature)
    {
        return Err(Error::NotGrouped { id: d.id });
    }
    let mut results = Vec::new();
    for task in tasks(image, opts)? {
        let (target, sigs): (Link, Vec<&Descriptor>) = match &task {
            Task::Group { group, .. } | Task::LegacyGroup { group, .. } => {
                let legacy = matches!(task, Task::LegacyGroup { .. });
                let mut sigs = Vec::new();
                for d in image.descriptors().filter(|d| {
                    d.data_type() == DataType::Signature && d.link() == Link::Group(*group)
                }) {
                    // An oversized one is judged (and refused) as a current signature.
                    let is_old = d.size() <= MAX_SIGNATURE && is_legacy(&image.read_object(d.id)?);
                    if is_old == legacy {
                        sigs.push(d);
                    }
                }
                (Link::Group(*group), sigs)
            }
            Task::LegacyObject { id } => (
                Link::Object(*id),
                image
                    .descriptors()
                    .filter(|d| {
                        d.data_type() == DataType::Signature && d.link() == Link::Object(*id)
                    })
                    .collect(),
            ),
        };
        if sigs.is_empty() {
            results.push(SignatureResult {
                signature: None,
                target,
                signer: None,
                verified: Vec::new(),
                failure: Some(match target {
                    Link::Object(id) => Failure::NoObjectSignature(id),
                    Link::Group(g) => Failure::NoGroupSignature(g),
                    Link::None => Failure::UnknownFormat,
                }),
            });
            continue;
        }
        for sig in sigs {
            let mut r = SignatureResult {
                signature: Some(sig.id),
                target,
                signer: None,
                verified: Vec::new(),
                failure: None,
            };
            if let Err(f) = check_signature(image, keys, &task, sig, &mut r) {
                r.failure = Some(f);
            }
            results.push(r);
        }
    }
    Ok(results)
}

/// Decodes the signature's message with the matching key material; returns the signed payload.
fn open_message(
    data: &[u8],
    sig: &Descriptor,
    keys: &Keys,
    r: &mut SignatureResult,
) -> Result<Vec<u8>, Failure> {
    if dsse::parse(data).is_some() {
        let Some(pem) = &keys.dsse else {
            return Err(Failure::NoDsseKey);
        };
        let (payload, ok) = dsse::verify(data, pem).map_err(|e| Failure::SignatureNotValid {
            id: sig.id,
            reason: e.to_string(),
        })?;
        r.signer = Some(Signer::Dsse(ok.iter().map(|k| k.key_id()).collect()));
        return Ok(payload);
    }
    if openpgp::parse_clearsigned(data).is_some() {
        let Some(ring) = &keys.pgp else {
            return Err(Failure::NoPgpKey);
        };
        let v = openpgp::verify_clearsigned(data, ring).map_err(|e: ClearsignError| {
            Failure::SignatureNotValid {
                id: sig.id,
                reason: e.to_string(),
            }
        })?;
        r.signer = Some(Signer::Pgp(KeyInfo::of(&v.signer)));
        let fp = openpgp::fingerprint20(&v.signer.primary_key);
        if sig.signature().and_then(|m| m.fingerprint) != fp {
            return Err(Failure::FingerprintMismatch);
        }
        return Ok(v.plaintext);
    }
    Err(Failure::UnknownFormat)
}

fn check_signature<S: ReadAt>(
    image: &Image<S>,
    keys: &Keys,
    task: &Task,
    sig: &Descriptor,
    r: &mut SignatureResult,
) -> Result<(), Failure> {
    if sig.size() > MAX_SIGNATURE {
        return Err(Failure::SignatureNotValid {
            id: sig.id,
            reason: format!(
                "the signature object is {} bytes, more than a signature can be ({MAX_SIGNATURE})",
                sig.size()
            ),
        });
    }
    let data = image
        .read_object(sig.id)
        .map_err(|e| Failure::SignatureNotValid {
            id: sig.id,
            reason: e.to_string(),
        })?;
    let payload = open_message(&data, sig, keys, r)?;
    match task {
        Task::Group {
            group,
            objects,
            subset,
        } => {
            let md: ImageMetadata =
                serde_json::from_slice(&payload).map_err(|e| Failure::SignatureNotValid {
                    id: sig.id,
                    reason: format!("image metadata: {e}"),
                })?;
            if md.version != 1 {
                return Err(Failure::SignatureNotValid {
                    id: sig.id,
                    reason: format!("image metadata version {} (only 1 is known)", md.version),
                });
            }
            let min = group_min_id(image, *group).unwrap_or(0);
            let too_far = || Failure::SignatureNotValid {
                id: sig.id,
                reason: "image metadata names an object id out of range".into(),
            };
            let signed: Vec<u32> = md
                .objects
                .iter()
                .map(|o| min.checked_add(o.relative_id).ok_or_else(too_far))
                .collect::<Result<_, _>>()?;
            if !subset {
                if let Some(id) = objects.iter().find(|id| !signed.contains(id)) {
                    return Err(Failure::ObjectNotSigned(*id));
                }
                if let Some(id) = signed.iter().find(|id| !objects.contains(id)) {
                    return Err(Failure::SignedObjectNotFound(*id));
                }
            }
            let h = &md.header.digest;
            if Digest::of(h.algorithm, &header_integrity_bytes(image.header())) != *h {
                return Err(Failure::HeaderIntegrity);
            }
            for id in objects {
                let Some(om) = md
                    .objects
                    .iter()
                    .find(|o| min.checked_add(o.relative_id) == Some(*id))
                else {
                    return Err(Failure::ObjectNotSigned(*id));
                };
                let d = image
                    .descriptor(*id)
                    .map_err(|_| Failure::SignedObjectNotFound(*id))?;
                let dd = &om.descriptor_digest;
                let want = descriptor_integrity_bytes(d, id - min);
                if Digest::of(dd.algorithm, &want) != *dd {
                    return Err(Failure::DescriptorIntegrity(*id));
                }
                let od = &om.object_digest;
                let got = Digest::of_object(od.algorithm, image, d)
                    .map_err(|_| Failure::ObjectIntegrity(*id))?;
                if got != *od {
                    return Err(Failure::ObjectIntegrity(*id));
                }
                r.verified.push(*id);
            }
            Ok(())
        }
        Task::LegacyGroup { objects, .. } => {
            let want = legacy_digest(sig, &payload)?;
            let mut h = want.algorithm.hasher();
            for id in objects {
                let d = image
                    .descriptor(*id)
                    .map_err(|_| Failure::SignedObjectNotFound(*id))?;
                crate::metadata::hash_range(image, d.offset(), d.size(), &mut h)
                    .map_err(|_| Failure::GroupIntegrity(objects.clone()))?;
            }
            if h.finish() != want.value {
                return Err(Failure::GroupIntegrity(objects.clone()));
            }
            r.verified.extend(objects);
            Ok(())
        }
        Task::LegacyObject { id } => {
            let want = legacy_digest(sig, &payload)?;
            let d = image
                .descriptor(*id)
                .map_err(|_| Failure::SignedObjectNotFound(*id))?;
            let got = Digest::of_object(want.algorithm, image, d)
                .map_err(|_| Failure::ObjectIntegrity(*id))?;
            if got != want {
                return Err(Failure::ObjectIntegrity(*id));
            }
            r.verified.push(*id);
            Ok(())
        }
    }
}

/// The digest a legacy `SIFHASH:` message names, in the descriptor's hash algorithm.
fn legacy_digest(sig: &Descriptor, plaintext: &[u8]) -> Result<Digest, Failure> {
    let bad = |reason: &str| Failure::SignatureNotValid {
        id: sig.id,
        reason: reason.into(),
    };
    let text = std::str::from_utf8(plaintext).map_err(|_| bad("legacy digest not text"))?;
    let hex_text = text
        .strip_prefix("SIFHASH:\n")
        .ok_or_else(|| bad("not a SIFHASH message"))?
        .trim_end_matches('\n');
    let value = hex::decode(hex_text).map_err(|_| bad("legacy digest malformed"))?;
    let algorithm = sig
        .signature()
        .and_then(|m| Algorithm::from_hash_type(m.hash))
        .ok_or_else(|| bad("hash algorithm unsupported"))?;
    if value.len() != algorithm.hasher().finish().len() {
        return Err(bad("legacy digest malformed"));
    }
    Ok(Digest { algorithm, value })
}
