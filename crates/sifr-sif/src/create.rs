//! Creating a new image by streaming objects, in order, into any `Write + Seek` (a fresh
//! `File`, a `Cursor<Vec<u8>>`): [`CreateOptions`], [`Creator`] and [`PartitionSink`], which lets
//! a partition (the squashfs root filesystem) be written in place without a temporary file.
//! The descriptor table and header are written by [`Creator::finish`]. Nothing is read back and
//! memory does not grow with object sizes or the descriptor capacity.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::descriptor::PartitionMeta;
use crate::descriptor::{DESCRIPTOR_LEN, Descriptor, Extra};
use crate::error::Error;
use crate::header::{
    APPTAINER_LAUNCH_SCRIPT, DEFAULT_DESCRIPTORS, DESCRIPTORS_OFFSET, GO_ZERO_TIME, HEADER_LEN,
    Header, LAUNCH_SCRIPT_LEN, MAGIC, VERSION,
};
use crate::input::{ObjectInput, Placement, next_aligned, now, write_object};
use crate::types::{Arch, DataType, PartType};

/// How a new image is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// Launch script (< 32 bytes); empty by default.
    pub launch_script: Vec<u8>,
    /// Image UUID; `None` = random v4 (nil when `deterministic`).
    pub id: Option<[u8; 16]>,
    /// Creation time in Unix seconds; `None` = now (Go's zero time when `deterministic`).
    pub time: Option<i64>,
    /// Nil UUID and Go's zero time everywhere, unless `id`/`time` say otherwise (as Go's
    /// `OptCreateDeterministic` followed by explicit options).
    pub deterministic: bool,
    /// Descriptor capacity (default 48).
    pub descriptors: u32,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            launch_script: Vec::new(),
            id: None,
            time: None,
            deterministic: false,
            descriptors: DEFAULT_DESCRIPTORS,
        }
    }
}

impl CreateOptions {
    /// What `apptainer build` uses: its launch script, a random UUID, the current time, 48
    /// descriptors.
    pub fn apptainer() -> Self {
        CreateOptions {
            launch_script: APPTAINER_LAUNCH_SCRIPT.to_vec(),
            ..Default::default()
        }
    }

    /// Deterministic output as the upstream test images: nil UUID, Go zero time.
    pub fn deterministic() -> Self {
        CreateOptions {
            deterministic: true,
            ..Default::default()
        }
    }

    pub(crate) fn resolve(&self) -> Result<(Header, i64), Error> {
        if self.launch_script.len() >= LAUNCH_SCRIPT_LEN {
            return Err(Error::LaunchScriptTooLong {
                len: self.launch_script.len(),
            });
        }
        if self.descriptors == u32::MAX {
            return Err(Error::CapacityTooLarge {
                value: u64::from(self.descriptors),
            });
        }
        let id = match (self.id, self.deterministic) {
            (Some(id), _) => id,
            (None, true) => [0; 16],
            (None, false) => *uuid::Uuid::new_v4().as_bytes(),
        };
        let time = match (self.time, self.deterministic) {
            (Some(t), _) => t,
            (None, true) => GO_ZERO_TIME,
            (None, false) => now(),
        };
        let mut launch_script = [0u8; LAUNCH_SCRIPT_LEN];
        launch_script[..self.launch_script.len()].copy_from_slice(&self.launch_script);
        let total = i64::from(self.descriptors);
        let size = total * DESCRIPTOR_LEN as i64;
        let header = Header {
            launch_script,
            magic: MAGIC,
            version: VERSION,
            arch: Arch::Unknown.sif_code(),
            id,
            created_at: time,
            modified_at: time,
            descriptors_free: total,
            descriptors_total: total,
            descriptors_offset: DESCRIPTORS_OFFSET as i64,
            descriptors_size: size,
            data_offset: DESCRIPTORS_OFFSET as i64 + size,
            data_size: 0,
        };
        Ok((header, time))
    }
}

/// Writes a new image object by object. Slot `i` gets ID `i + 1`; objects are appended in the
/// order given, partitions aligned to 4096.
///
/// See the crate documentation for an example.
#[derive(Debug)]
pub struct Creator<F: Write + Seek> {
    file: F,
    header: Header,
    time: i64,
    /// Used descriptors, in slot order (slot = index).
    descs: Vec<Descriptor>,
}

impl<F: Write + Seek> Creator<F> {
    /// Starts an image in `file`, which should be empty (anything beyond the written image is
    /// left as it is).
    pub fn new(file: F, opts: CreateOptions) -> Result<Self, Error> {
        let (header, time) = opts.resolve()?;
        Ok(Creator {
            file,
            header,
            time,
            descs: Vec::new(),
        })
    }

    /// The header as it stands.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The descriptors written so far.
    pub fn descriptors(&self) -> &[Descriptor] {
        &self.descs
    }

    fn data_end(&self) -> u64 {
        let start = self.header.data_offset as u64;
        self.descs.iter().map(Descriptor::end).fold(start, u64::max)
    }

    /// Checks capacity and the primary-partition rule; returns the next slot's ID.
    fn prepare(&self, obj: &ObjectInput) -> Result<u32, Error> {
        obj.validate()?;
        if self.descs.len() as i64 >= self.header.descriptors_total {
            return Err(Error::NoFreeDescriptor {
                total: self.header.descriptors_total as u64,
            });
        }
        if obj.primary_arch().is_some()
            && let Some(d) = self
                .descs
                .iter()
                .find(|d| d.is_partition_of(PartType::PrimSys))
        {
            return Err(Error::PrimaryPartitionExists { id: d.id });
        }
        Ok(self.descs.len() as u32 + 1)
    }

    /// Seeks to the aligned offset, zero-filling the padding; returns (start, offset).
    fn position(&mut self, alignment: u64) -> Result<(u64, u64), Error> {
        let start = self.data_end();
        let offset = next_aligned(start, alignment)?;
        seek(&mut self.file, start)?;
        write_zeros(&mut self.file, start, offset - start)?;
        Ok((start, offset))
    }

    /// Places `obj` after the data so far: checks it, pads to its alignment, lets `write` put
    /// its bytes at the offset it is given (returning their size and an OCI digest), and
    /// records its descriptor. Returns its ID.
    fn place<E: From<Error>>(
        &mut self,
        obj: &mut ObjectInput,
        write: impl FnOnce(&mut F, &mut ObjectInput, u64) -> Result<(u64, Option<String>), E>,
    ) -> Result<u32, E> {
        let id = self.prepare(obj)?;
        let (start, offset) = self.position(obj.effective_alignment())?;
        let (size, digest) = write(&mut self.file, obj, offset)?;
        let place = Placement {
            id,
            start,
            offset,
            size,
        };
        let d = obj.record(&mut self.header, place, self.time, digest);
        self.descs.push(d);
        Ok(id)
    }

    /// Appends an object; returns its ID.
    pub fn add(&mut self, mut obj: ObjectInput) -> Result<u32, Error> {
        self.place(&mut obj, |file, obj, offset| {
            write_object(obj, offset, |chunk, _| file.write_all(chunk))
        })
    }

    /// Appends an object whose bytes `fill` writes into the sink (position 0 = the object's
    /// first byte; seeking within what was written is allowed). The object's size is the
    /// furthest byte written. `obj`'s own data is ignored. For OCI types use [`Creator::add`]
    /// (digests need the bytes in order).
    pub fn add_with<E: From<Error>>(
        &mut self,
        mut obj: ObjectInput,
        fill: impl FnOnce(&mut PartitionSink<'_, F>) -> Result<(), E>,
    ) -> Result<u32, E> {
        if obj.is_oci() {
            return Err(E::from(Error::StreamedDigest {
                data_type: obj.data_type().to_string(),
            }));
        }
        self.place(&mut obj, |file, _, offset| {
            let mut sink = PartitionSink {
                file,
                base: offset,
                pos: 0,
                len: 0,
            };
            fill(&mut sink)?;
            Ok((sink.len, None))
        })
    }

    /// Streams a partition (group 1, aligned to 4096); see [`Creator::add_with`]. A `PrimSys`
    /// partition sets the header architecture.
    pub fn add_partition_with<E: From<Error>>(
        &mut self,
        name: &str,
        meta: PartitionMeta,
        fill: impl FnOnce(&mut PartitionSink<'_, F>) -> Result<(), E>,
    ) -> Result<u32, E> {
        let obj =
            ObjectInput::new(DataType::Partition, Extra::Partition(meta), Vec::new()).name(name);
        self.add_with(obj, fill)
    }

    /// Writes the descriptor table and the header, and hands the file back. The file ends at
    /// the end of the last object.
    pub fn finish(mut self) -> Result<F, Error> {
        let table = self.header.descriptors_offset as u64;
        // Header gap and the descriptor table, zero slots included.
        seek(&mut self.file, HEADER_LEN as u64)?;
        write_zeros(&mut self.file, HEADER_LEN as u64, table - HEADER_LEN as u64)?;
        for d in &self.descs {
            let off = table + u64::from(d.id - 1) * DESCRIPTOR_LEN as u64;
            self.file
                .write_all(&d.encode())
                .map_err(|source| Error::Write {
                    offset: off,
                    source,
                })?;
        }
        let used_end = table + self.descs.len() as u64 * DESCRIPTOR_LEN as u64;
        let table_end = table + self.header.descriptors_size as u64;
        write_zeros(&mut self.file, used_end, table_end - used_end)?;
        seek(&mut self.file, 0)?;
        self.file
            .write_all(&self.header.encode())
            .map_err(|source| Error::Write { offset: 0, source })?;
        self.file
            .flush()
            .map_err(|source| Error::Write { offset: 0, source })?;
        Ok(self.file)
    }
}

/// Write + Seek (+ Read when `F` is) view of one object being streamed; position 0 is the
/// object's first byte. Each call goes straight to `F`: wrap a `File` in a `BufWriter` when
/// the filler writes small pieces.
#[derive(Debug)]
pub struct PartitionSink<'a, F: Write + Seek> {
    file: &'a mut F,
    base: u64,
    pos: u64,
    len: u64,
}

impl<F: Write + Seek> PartitionSink<'_, F> {
    /// Bytes written so far (furthest extent).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True while nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Absolute offset of the object in the image.
    pub fn image_offset(&self) -> u64 {
        self.base
    }
}

impl<F: Write + Seek> Write for PartitionSink<'_, F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pos += n as u64;
        self.len = self.len.max(self.pos);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Reading back what was written (e.g. to patch a superblock), when the file is readable;
/// reads stop at the furthest byte written.
impl<F: Read + Write + Seek> Read for PartitionSink<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<F: Write + Seek> Seek for PartitionSink<'_, F> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, Error::NegativeSeek))?;
        let abs = self
            .base
            .checked_add(target)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.file.seek(SeekFrom::Start(abs))?;
        self.pos = target;
        Ok(target)
    }
}

fn seek<F: Seek>(f: &mut F, to: u64) -> Result<(), Error> {
    f.seek(SeekFrom::Start(to))
        .map(|_| ())
        .map_err(|source| Error::Write { offset: to, source })
}

pub(crate) fn write_zeros<W: Write>(w: &mut W, offset: u64, mut n: u64) -> Result<(), Error> {
    const ZEROS: [u8; 8192] = [0; 8192];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        w.write_all(&ZEROS[..k])
            .map_err(|source| Error::Write { offset, source })?;
        n -= k as u64;
    }
    Ok(())
}

/// Creates `path` (mode 0755, truncated) holding the given objects, as Go's
/// `CreateContainerAtPath`. The file is removed again if creation fails.
pub fn create_at_path(
    path: &Path,
    opts: CreateOptions,
    objects: Vec<ObjectInput>,
) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(path)
        .map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
    let result = (|| {
        let mut c = Creator::new(io::BufWriter::with_capacity(1 << 20, file), opts)?;
        for o in objects {
            c.add(o)?;
        }
        c.finish()?
            .into_inner()
            .map_err(|e| Error::Write {
                offset: 0,
                source: e.into_error(),
            })?
            .sync_all()
            .map_err(|source| Error::Write { offset: 0, source })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}
