//! Opening an image: [`Image`] reads the 128-byte header and the descriptor table with
//! positional reads and validates them against the file size (never a whole-file read, never an
//! allocation sized by a number in the file that the file's length does not back). Lookup of
//! objects and the primary partition, and reading object data. Editing lives in `edit.rs`.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::descriptor::{DESCRIPTOR_LEN, Descriptor};
use crate::error::Error;
use crate::header::{HEADER_LEN, Header, MAGIC, VERSION};
use crate::storage::ReadAt;
use crate::types::{DataType, PartType};

/// An opened image: header and every descriptor slot, plus the backing store for data reads
/// (and, with a [`crate::WriteAt`] store, in-place edits).
#[derive(Debug)]
pub struct Image<S = File> {
    pub(crate) store: S,
    pub(crate) header: Header,
    /// Every slot, used or not, in table order.
    pub(crate) slots: Vec<Descriptor>,
}

impl Image<File> {
    /// Opens `path` read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let f = File::open(path).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        Image::from_store(f)
    }

    /// Opens `path` for reading and in-place editing.
    pub fn open_rw(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let f = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.to_owned(),
                source,
            })?;
        Image::from_store(f)
    }
}

/// A fixed text field for an error message: trailing NULs dropped, the rest escaped.
fn shown(b: &[u8]) -> String {
    let end = b.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
    b[..end].escape_ascii().to_string()
}

pub(crate) fn read_at<S: ReadAt>(s: &S, buf: &mut [u8], offset: u64) -> Result<(), Error> {
    s.read_exact_at(buf, offset).map_err(|source| Error::Read {
        offset,
        len: buf.len() as u64,
        source,
    })
}

impl<S: ReadAt> Image<S> {
    /// Loads an image from any positional store (a `File`, a `Vec<u8>`).
    pub fn from_store(store: S) -> Result<Self, Error> {
        let file_len = store.size().map_err(Error::Size)?;
        if file_len < HEADER_LEN as u64 {
            return Err(Error::TooSmall { len: file_len });
        }
        let mut hb = [0u8; HEADER_LEN];
        read_at(&store, &mut hb, 0)?;
        let header = Header::decode(&hb);
        if header.magic != MAGIC {
            return Err(Error::BadMagic {
                found: shown(&header.magic),
            });
        }
        if header.version != VERSION {
            return Err(Error::BadVersion {
                found: shown(&header.version),
            });
        }
        let total = header.descriptors_total;
        if !(0..i64::from(u32::MAX)).contains(&total) {
            return Err(Error::BadHeaderField {
                field: "descriptors total",
                value: total,
            });
        }
        if !(0..=total).contains(&header.descriptors_free) {
            return Err(Error::BadHeaderField {
                field: "descriptors free",
                value: header.descriptors_free,
            });
        }
        let table_off = header.descriptors_offset;
        let table_len = (total as u64) * DESCRIPTOR_LEN as u64;
        let table_end = u64::try_from(table_off)
            .ok()
            .and_then(|o| o.checked_add(table_len));
        match table_end {
            Some(end) if table_off >= HEADER_LEN as i64 && end <= file_len => {}
            _ => {
                return Err(Error::DescriptorTableOutOfRange {
                    offset: table_off,
                    total,
                    file_len,
                });
            }
        }
        // Go reads the table from a section of `descriptors size` bytes and fails when short.
        if header.descriptors_size < table_len as i64 {
            return Err(Error::BadHeaderField {
                field: "descriptors size",
                value: header.descriptors_size,
            });
        }
        if header.data_offset < 0 || header.data_offset as u64 > file_len {
            return Err(Error::BadHeaderField {
                field: "data offset",
                value: header.data_offset,
            });
        }
        // Backed by the file length checked above, so this allocation is bounded by real bytes.
        let mut table = vec![0u8; table_len as usize];
        read_at(&store, &mut table, table_off as u64)?;
        let slots: Vec<Descriptor> = table
            .chunks_exact(DESCRIPTOR_LEN)
            .map(|c| {
                let mut b = [0u8; DESCRIPTOR_LEN];
                b.copy_from_slice(c);
                Descriptor::decode(&b)
            })
            .collect();
        drop(table);
        validate_objects(&slots, table_off as u64 + table_len, file_len)?;
        Ok(Image {
            store,
            header,
            slots,
        })
    }

    /// The global header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Used descriptors, in slot order.
    pub fn descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.slots.iter().filter(|d| d.used)
    }

    /// Every slot, used or free, in table order.
    pub fn slots(&self) -> &[Descriptor] {
        &self.slots
    }

    /// The used descriptor with this ID.
    pub fn descriptor(&self, id: u32) -> Result<&Descriptor, Error> {
        self.descriptors()
            .find(|d| d.id == id)
            .ok_or(Error::ObjectNotFound { id })
    }

    /// The primary system partition (the container's root filesystem), if any.
    pub fn primary_partition(&self) -> Option<&Descriptor> {
        self.descriptors()
            .find(|d| d.is_partition_of(PartType::PrimSys))
    }

    /// Used descriptors of a data type.
    pub fn descriptors_of(&self, dt: DataType) -> impl Iterator<Item = &Descriptor> {
        self.descriptors().filter(move |d| d.data_type() == dt)
    }

    /// An object's bytes (its size was checked against the file length when opening).
    pub fn read_object(&self, id: u32) -> Result<Vec<u8>, Error> {
        let d = self.descriptor(id)?;
        let mut buf = vec![0u8; d.size() as usize];
        read_at(&self.store, &mut buf, d.offset())?;
        Ok(buf)
    }

    /// Streams an object's bytes into `w` in 64 KiB chunks.
    pub fn copy_object(&self, id: u32, w: &mut dyn Write) -> Result<u64, Error> {
        let d = self.descriptor(id)?;
        let (mut off, end) = (d.offset(), d.end());
        let mut buf = vec![0u8; 64 * 1024];
        while off < end {
            let n = (end - off).min(buf.len() as u64) as usize;
            read_at(&self.store, &mut buf[..n], off)?;
            w.write_all(&buf[..n]).map_err(|source| Error::Write {
                offset: off,
                source,
            })?;
            off += n as u64;
        }
        Ok(d.size())
    }

    /// Reads `buf.len()` bytes at absolute `offset` (for callers that mount or probe a
    /// partition).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        read_at(&self.store, buf, offset)
    }

    /// The backing store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the backing store back.
    pub fn into_store(self) -> S {
        self.store
    }
}

/// Used objects must have unique IDs, lie within the file after the descriptor table, and not
/// overlap one another.
fn validate_objects(slots: &[Descriptor], table_end: u64, file_len: u64) -> Result<(), Error> {
    let mut used: Vec<&Descriptor> = slots.iter().filter(|d| d.used).collect();
    for d in &used {
        let end = d.offset_raw.checked_add(d.size_raw);
        // An empty object may sit past the end (Go seeks there and writes nothing).
        let ok = d.offset_raw >= 0
            && d.size_raw >= 0
            && end.is_some()
            && (d.size_raw == 0
                || (end.unwrap_or(i64::MAX) as u64 <= file_len
                    && d.offset_raw as u64 >= table_end));
        if !ok {
            return Err(Error::ObjectOutOfRange {
                id: d.id,
                offset: d.offset_raw,
                size: d.size_raw,
                file_len,
            });
        }
    }
    used.sort_by_key(|d| d.id);
    for w in used.windows(2) {
        if w[0].id == w[1].id {
            return Err(Error::DuplicateId { id: w[0].id });
        }
    }
    used.retain(|d| d.size_raw > 0);
    used.sort_by_key(|d| d.offset_raw);
    for w in used.windows(2) {
        if w[0].end() > w[1].offset() {
            return Err(Error::ObjectsOverlap {
                id: w[1].id,
                other: w[0].id,
            });
        }
    }
    Ok(())
}
