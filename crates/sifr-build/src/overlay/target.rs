//! The target of `overlay create` judged as Apptainer judges it (a SIF gets a partition, any
//! other existing file is refused), and the partition added to a SIF, undone on failure.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use sifr_sif::{Arch, DataType, Extra, FsType, Image, ObjectInput, PartType, PartitionMeta};

use super::OverlayError;

/// What the target is now.
pub(super) enum Target {
    New,
    Sif(Box<Image<File>>),
}

/// Judge an existing `path` as Apptainer does: a SIF gets a partition unless it is signed,
/// encrypted or already has an ext3 overlay; any other existing file is refused.
pub(super) fn classify(path: &Path) -> Result<Target, OverlayError> {
    let inspect = |source| OverlayError::Inspect {
        path: path.into(),
        source,
    };
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Target::New),
        Err(e) => return Err(inspect(e)),
    };
    if !md.is_file() {
        return Err(OverlayError::NotSif { path: path.into() });
    }
    let mut head = Vec::with_capacity(2048);
    File::open(path)
        .and_then(|f| f.take(2048).read_to_end(&mut head))
        .map_err(inspect)?;
    // Apptainer looks for the magic anywhere in the first bytes; sifr's reader checks it too.
    if head.windows(9).any(|w| w == b"SIF_MAGIC") {
        return sif_target(path).map(|img| Target::Sif(Box::new(img)));
    }
    // The ext2/3/4 superblock's magic, 0xEF53 at byte 56 of the superblock at 1024.
    if head.get(1080..1082) == Some(&[0x53, 0xEF][..]) {
        return Err(OverlayError::Ext3Exists { path: path.into() });
    }
    Err(OverlayError::NotSif { path: path.into() })
}

pub(super) fn sif_target(path: &Path) -> Result<Image<File>, OverlayError> {
    let img = Image::open_rw(path).map_err(|source| OverlayError::OpenSif {
        path: path.into(),
        source,
    })?;
    let Some(root) = img.primary_partition() else {
        return Err(OverlayError::NoRootPartition { path: path.into() });
    };
    let group = root.group();
    // Apptainer refuses only LUKS (`EncryptedSquashfs`); a gocryptfs root is encrypted too
    // and an overlay beside it would hold the changes in clear.
    if root
        .partition()
        .is_some_and(|p| matches!(p.fs, FsType::EncryptedSquashfs | FsType::GocryptfsSquashfs))
    {
        return Err(OverlayError::EncryptedRoot { path: path.into() });
    }
    if img.descriptors_of(DataType::Signature).next().is_some() {
        return Err(OverlayError::Signed { path: path.into() });
    }
    // The overlays Apptainer would use: ext3 overlay partitions of the root's group.
    if let Some(d) = img.descriptors().find(|d| {
        d.is_partition_of(PartType::Overlay)
            && d.partition().is_some_and(|p| p.fs == FsType::Ext3)
            && (group.is_none() || d.group() == group)
    }) {
        return Err(OverlayError::OverlayExists {
            path: path.into(),
            id: d.id(),
        });
    }
    Ok(img)
}

/// Add `ext3` as an overlay partition of `img` (at `path`), as Apptainer's
/// `addOverlayToImage`: the image's architecture (the host's when it names none), the default
/// group. On failure the header and descriptor table are written back and the file cut to its
/// old length, so the SIF is byte-identical to before.
pub(super) fn add_partition(
    mut img: Image<File>,
    path: &Path,
    data: impl std::io::Read + Send + 'static,
) -> Result<u32, OverlayError> {
    let arch = match img.header().arch() {
        Arch::Unknown => Arch::host(),
        a => a,
    };
    let h = img.header();
    let table_end =
        u64::try_from(h.descriptors_offset.saturating_add(h.descriptors_size)).unwrap_or(0);
    let restore_err = |source| OverlayError::Restore {
        path: path.into(),
        source,
    };
    let len = img.store().metadata().map_err(restore_err)?.len();
    let mut saved = vec![0u8; usize::try_from(table_end.min(len)).unwrap_or(0)];
    img.store()
        .read_exact_at(&mut saved, 0)
        .map_err(restore_err)?;
    let meta = PartitionMeta {
        fs: FsType::Ext3,
        part: PartType::Overlay,
        arch,
    };
    let obj =
        ObjectInput::new(DataType::Partition, Extra::Partition(meta), Vec::new()).reader(data);
    match img.add_object(obj, None) {
        Ok(id) => {
            img.store().sync_all().map_err(restore_err)?;
            Ok(id)
        }
        Err(source) => {
            let f = img.store();
            f.write_all_at(&saved, 0)
                .and_then(|()| f.set_len(len))
                .map_err(restore_err)?;
            Err(OverlayError::AddPartition {
                path: path.into(),
                source,
            })
        }
    }
}
