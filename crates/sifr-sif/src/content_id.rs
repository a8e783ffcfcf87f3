//! Image IDs derived from an image's bytes, for reproducible builds.
//!
//! Apptainer gives a build with `SOURCE_DATE_EPOCH` the nil UUID, so every reproducible image
//! has the same ID. Here the ID is a hash of the image itself: two builds of the same inputs
//! get the same ID, and two different images different ones. The hash covers every byte of the
//! file with the header's ID field read as zeros, so stamping an image twice gives the same ID.
//! The UUID is the first 16 bytes of that SHA-256, marked as RFC 9562 version 8 (a
//! vendor-defined layout) with the RFC variant bits.

use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::load::Image;
use crate::storage::{ReadAt, WriteAt};

/// Where the UUID sits in the header.
const ID_AT: std::ops::Range<u64> = 48..64;

/// The content ID of the image stored in `store` (see the module documentation).
pub fn content_id(store: &impl ReadAt) -> Result<[u8; 16], Error> {
    let len = store.size().map_err(Error::Size)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        let chunk = &mut buf[..n];
        store
            .read_exact_at(chunk, off)
            .map_err(|source| Error::Read {
                offset: off,
                len: n as u64,
                source,
            })?;
        // Zero the part of the ID field this chunk holds.
        let from = ID_AT.start.max(off);
        let to = ID_AT.end.min(off + n as u64);
        if from < to {
            chunk[(from - off) as usize..(to - off) as usize].fill(0);
        }
        hash.update(&*chunk);
        off += n as u64;
    }
    let digest = hash.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id[6] = (id[6] & 0x0f) | 0x80;
    id[8] = (id[8] & 0x3f) | 0x80;
    Ok(id)
}

impl<S: WriteAt> Image<S> {
    /// Gives the image its content ID (see the module documentation) and returns it. Call it
    /// last: any later edit changes the bytes the ID was derived from.
    pub fn set_content_id(&mut self) -> Result<[u8; 16], Error> {
        let id = content_id(&self.store)?;
        self.header.id = id;
        let h = self.header.encode();
        self.store
            .write_all_at(&h, 0)
            .map_err(|source| Error::Write { offset: 0, source })?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CreateOptions, Creator, ObjectInput};

    /// A small image with one JSON object, a random UUID and the given time.
    fn image(json: &[u8], time: i64) -> Vec<u8> {
        let opts = CreateOptions {
            time: Some(time),
            ..CreateOptions::apptainer()
        };
        let mut c = Creator::new(std::io::Cursor::new(Vec::new()), opts).unwrap();
        c.add(ObjectInput::generic_json("a.json", json.to_vec()))
            .unwrap();
        c.finish().unwrap().into_inner()
    }

    fn stamped(bytes: Vec<u8>) -> ([u8; 16], Vec<u8>) {
        let mut img = Image::from_store(bytes).unwrap();
        let id = img.set_content_id().unwrap();
        (id, img.store().clone())
    }

    #[test]
    fn the_same_bytes_get_the_same_id_whatever_random_id_they_had() {
        let (a, ia) = stamped(image(b"{}", 1_700_000_000));
        let (b, ib) = stamped(image(b"{}", 1_700_000_000));
        assert_eq!(a, b);
        assert_eq!(ia, ib, "the images are byte-identical once stamped");
        let h = Image::from_store(ia.clone()).unwrap();
        assert_eq!(h.header().id, a);
        assert!(!h.header().id_is_nil());
        let text = h.header().id_text();
        assert_eq!(&text[14..15], "8", "version 8: {text}");
        assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"), "{text}");
        // Stamping again changes nothing.
        let (again, ia2) = stamped(ia.clone());
        assert_eq!((again, ia2), (a, ia));
    }

    #[test]
    fn different_contents_or_times_get_different_ids() {
        let (a, _) = stamped(image(b"{}", 1_700_000_000));
        let (b, _) = stamped(image(b"{\"x\":1}", 1_700_000_000));
        let (c, _) = stamped(image(b"{}", 1_700_000_001));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
    }
}
