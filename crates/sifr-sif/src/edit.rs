//! In-place edits of an opened image, with Go's semantics: add an object into the first free
//! slot (ID = slot + 1) after the furthest-ending object; delete (zero the descriptor, optionally
//! the data, optionally compact = truncate after the last live object); set the primary
//! partition. Each edit rewrites the descriptor table and the header. Times: the given one,
//! else Go's zero time for deterministic images, else now.

use crate::descriptor::{DESCRIPTOR_LEN, Descriptor, Extra};
use crate::error::Error;
use crate::header::GO_ZERO_TIME;
use crate::input::{ObjectInput, Placement, next_aligned, now, write_object};
use crate::load::Image;
use crate::storage::WriteAt;
use crate::types::{Arch, DataType, PartType};

/// Options of [`Image::delete_object`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Overwrite the object's bytes with zeros.
    pub zero: bool,
    /// Recompute the data size and truncate the file after the last live object.
    pub compact: bool,
    /// Modification time; `None` = now (zero time for deterministic images).
    pub time: Option<i64>,
}

impl<S: WriteAt> Image<S> {
    fn edit_time(&self, t: Option<i64>) -> i64 {
        t.unwrap_or_else(|| {
            if self.header.is_deterministic() {
                GO_ZERO_TIME
            } else {
                now()
            }
        })
    }

    fn calculated_data_end(&self) -> u64 {
        let start = self.header.data_offset as u64;
        self.descriptors()
            .map(Descriptor::end)
            .fold(start, u64::max)
    }

    fn write_back(&mut self) -> Result<(), Error> {
        let off = self.header.descriptors_offset as u64;
        // One buffer per write, bounded by the table size already read when opening.
        let mut table = Vec::with_capacity(self.slots.len() * DESCRIPTOR_LEN);
        for d in &self.slots {
            table.extend_from_slice(&d.encode());
        }
        self.store
            .write_all_at(&table, off)
            .map_err(|source| Error::Write {
                offset: off,
                source,
            })?;
        let h = self.header.encode();
        self.store
            .write_all_at(&h, 0)
            .map_err(|source| Error::Write { offset: 0, source })
    }

    /// Adds an object (Go's `AddObject`); returns its ID. `time` overrides the modification
    /// time (and the object's time unless it has its own).
    pub fn add_object(&mut self, mut obj: ObjectInput, time: Option<i64>) -> Result<u32, Error> {
        obj.validate()?;
        let t = self.edit_time(time);
        let slot = self
            .slots
            .iter()
            .position(|d| !d.used)
            .ok_or(Error::NoFreeDescriptor {
                total: self.slots.len() as u64,
            })?;
        let id = u32::try_from(slot + 1).map_err(|_| Error::CapacityTooLarge {
            value: slot as u64 + 1,
        })?;
        if obj.primary_arch().is_some()
            && let Some(d) = self.primary_partition()
        {
            return Err(Error::PrimaryPartitionExists { id: d.id });
        }
        let start = self.calculated_data_end();
        let offset = next_aligned(start, obj.effective_alignment())?;
        let store = &mut self.store;
        let (size, digest) =
            write_object(&mut obj, offset, |chunk, at| store.write_all_at(chunk, at))?;
        let place = Placement {
            id,
            start,
            offset,
            size,
        };
        self.slots[slot] = obj.record(&mut self.header, place, t, digest);
        self.header.modified_at = t;
        self.write_back()?;
        Ok(id)
    }

    /// Deletes an object (Go's `DeleteObject`).
    pub fn delete_object(&mut self, id: u32, opts: DeleteOptions) -> Result<(), Error> {
        let t = self.edit_time(opts.time);
        let slot = self
            .slots
            .iter()
            .position(|d| d.used && d.id == id)
            .ok_or(Error::ObjectNotFound { id })?;
        let d = self.slots[slot].clone();
        if opts.zero {
            let zeros = [0u8; 8192];
            let (mut off, end) = (d.offset(), d.end());
            while off < end {
                let n = (end - off).min(zeros.len() as u64) as usize;
                self.store
                    .write_all_at(&zeros[..n], off)
                    .map_err(|source| Error::Write {
                        offset: off,
                        source,
                    })?;
                off += n as u64;
            }
        }
        self.header.descriptors_free += 1;
        if d.is_partition_of(PartType::PrimSys) {
            self.header.arch = Arch::Unknown.sif_code();
        }
        self.slots[slot] = Descriptor::free();
        self.header.modified_at = t;
        if opts.compact {
            let end = self.calculated_data_end();
            self.header.data_size = end as i64 - self.header.data_offset;
            self.store.set_len(end).map_err(|source| Error::Write {
                offset: end,
                source,
            })?;
        }
        self.write_back()
    }

    /// Makes a system partition the primary one (Go's `SetPrimPart`); the old primary becomes
    /// a plain system partition and the header takes the new one's architecture.
    pub fn set_primary(&mut self, id: u32, time: Option<i64>) -> Result<(), Error> {
        let t = self.edit_time(time);
        let slot = self
            .slots
            .iter()
            .position(|d| d.used && d.id == id)
            .ok_or(Error::ObjectNotFound { id })?;
        let mut p = match (self.slots[slot].data_type(), self.slots[slot].extra()) {
            (DataType::Partition, Extra::Partition(p)) => p,
            _ => return Err(Error::NotPartition { id }),
        };
        if p.part == PartType::PrimSys {
            return Ok(());
        }
        if p.part != PartType::System {
            return Err(Error::NotSystemPartition {
                id,
                part: p.part.to_string(),
            });
        }
        if let Some(old) = self
            .slots
            .iter()
            .position(|d| d.is_partition_of(PartType::PrimSys))
        {
            let d = &mut self.slots[old];
            if let Extra::Partition(mut op) = d.extra() {
                op.part = PartType::System;
                d.extra_raw = Extra::Partition(op).encode();
            }
            d.modified_at = t;
        }
        p.part = PartType::PrimSys;
        let d = &mut self.slots[slot];
        d.extra_raw = Extra::Partition(p).encode();
        d.modified_at = t;
        self.header.arch = p.arch.sif_code();
        self.header.modified_at = t;
        self.write_back()
    }
}
