//! Signing a SIF image as the SIF library's `pkg/integrity` signer does: one signature object
//! per object group, no group of its own, linked to the group, holding the group's image
//! metadata clear-signed with OpenPGP (descriptor hash SHA-256 and the key's fingerprint) or
//! wrapped in a DSSE envelope (hash SHA-256, no fingerprint). `objects` signs only those
//! objects, one signature per group they fall in; `groups` signs whole groups; neither signs
//! every group.

use std::path::Path;

use pgp::composed::SignedSecretKey;
use sifr_sif::{HashType, Image, ObjectInput, WriteAt};

use crate::Error;
use crate::dsse;
use crate::metadata::{Algorithm, ImageMetadata};
use crate::openpgp;
use crate::verify::group_ids;

/// The key that signs.
pub enum SigningKey {
    /// An unlocked (or unprotected) OpenPGP secret key and its password.
    Pgp {
        key: Box<SignedSecretKey>,
        password: String,
    },
    /// PEM private keys: one DSSE envelope signed by each.
    Dsse(Vec<dsse::PrivateKey>),
}

/// Which objects to sign.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub groups: Vec<u32>,
    pub objects: Vec<u32>,
    /// Seconds since the epoch for the new descriptors (default: now).
    pub time: Option<i64>,
}

/// One signature object written.
#[derive(Debug, Clone)]
pub struct Signed {
    pub signature: u32,
    pub group: u32,
    pub objects: Vec<u32>,
    /// The image metadata JSON that was signed.
    pub payload: Vec<u8>,
    /// The signature object's data (clear-signed message or DSSE envelope).
    pub message: Vec<u8>,
}

/// Signs the image at `path` in place.
pub fn sign_path(path: &Path, key: &SigningKey, opts: &Options) -> Result<Vec<Signed>, Error> {
    let mut image = Image::open_rw(path)?;
    sign(&mut image, key, opts)
}

/// Plans which (group, objects) pairs get a signature, sorted by group.
fn plan<S: WriteAt>(image: &Image<S>, opts: &Options) -> Result<Vec<(u32, Vec<u32>)>, Error> {
    let mut out: Vec<(u32, Vec<u32>)> = Vec::new();
    for &g in &opts.groups {
        if g == 0 {
            return Err(Error::GroupNotFound { group: g });
        }
        let ids = group_members(image, g);
        if ids.is_empty() {
            return Err(Error::GroupNotFound { group: g });
        }
        out.push((g, ids));
    }
    if !opts.objects.is_empty() {
        let mut by_group: Vec<(u32, Vec<u32>)> = Vec::new();
        for &id in &opts.objects {
            let d = image
                .descriptor(id)
                .map_err(|_| Error::ObjectNotFound { id })?;
            let g = d.group().ok_or(Error::NotGrouped { id })?;
            match by_group.iter_mut().find(|(x, _)| *x == g) {
                Some((_, ids)) => ids.push(id),
                None => by_group.push((g, vec![id])),
            }
        }
        by_group.sort_by_key(|(g, _)| *g);
        for (_, ids) in &mut by_group {
            ids.sort_unstable();
            ids.dedup();
        }
        out.extend(by_group);
    }
    if out.is_empty() {
        for g in group_ids(image) {
            out.push((g, group_members(image, g)));
        }
        if out.is_empty() {
            return Err(Error::NoGroups);
        }
    }
    Ok(out)
}

fn group_members<S: WriteAt>(image: &Image<S>, g: u32) -> Vec<u32> {
    let mut ids: Vec<u32> = image
        .descriptors()
        .filter(|d| d.group() == Some(g))
        .map(|d| d.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Signs an opened image.
pub fn sign<S: WriteAt>(
    image: &mut Image<S>,
    key: &SigningKey,
    opts: &Options,
) -> Result<Vec<Signed>, Error> {
    // Every signature's metadata is computed before any is added: adding one changes no
    // protected field of the others, but the plan must not see the new objects.
    let mut pending = Vec::new();
    for (group, ids) in plan(image, opts)? {
        let descs: Vec<_> = ids
            .iter()
            .map(|&id| image.descriptor(id))
            .collect::<Result<_, _>>()?;
        let md = ImageMetadata::compute(image, group, &descs, Algorithm::Sha256)?;
        let payload = md.to_json();
        let message = match key {
            SigningKey::Pgp { key, password } => {
                let text = String::from_utf8(payload.clone()).expect("JSON is UTF-8");
                openpgp::clearsign(&text, key, password)?.into_bytes()
            }
            SigningKey::Dsse(keys) => dsse::sign(&payload, keys)?,
        };
        pending.push(Signed {
            signature: 0,
            group,
            objects: ids,
            payload,
            message,
        });
    }
    let fingerprint = match key {
        SigningKey::Pgp { key, .. } => openpgp::fingerprint20(&key.primary_key),
        SigningKey::Dsse(_) => None,
    };
    for s in &mut pending {
        let obj = ObjectInput::signature(HashType::Sha256, fingerprint, s.message.clone())
            .no_group()
            .link_group(s.group);
        s.signature = image.add_object(obj, opts.time)?;
    }
    Ok(pending)
}
