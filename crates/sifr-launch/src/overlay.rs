//! `--overlay` (`APPTAINER_OVERLAY`), a SIF's own overlay partition and `--writable` on such a
//! SIF: which layers go over the image, opened and locked on the host before any namespace
//! change. [`crate::overlay_mount`] mounts them in the container's namespaces.
//!
//! A value is `PATH[:ro]`, split at its first `:` as Apptainer splits it (a path with a `:`
//! cannot be given, in either tool). `PATH` is:
//! - a directory: `DIR/upper` takes the writes and `DIR/work` is overlayfs's scratch (both
//!   created when missing); read-only, `DIR/upper` is the layer when it exists, `DIR` when not;
//! - an ext3 image file (`sifr overlay create`, `apptainer overlay create`): its `upper/` and
//!   `work/` as for a directory;
//! - a SquashFS image file: always read-only, its root is the layer;
//! - a SIF: its overlay partitions (ext3, or SquashFS) as for the files above.
//!
//! The layers stack as Apptainer stacks them: the image's own overlay partition lowest, then
//! each `--overlay` in the order given, each one above the ones before; the writable one (at
//! most one, or `--writable-tmpfs`'s tmpfs) takes the writes. A writable image is opened
//! read-write; if that is refused it is used read-only, with Apptainer's warning.
//!
//! Locks: Apptainer's, so the two tools exclude each other: an open-file-description byte-range
//! lock on the ext3 bytes (the file, or the SIF's partition), a write lock for a writable layer
//! and a read lock for a read-only one, held by the launcher until the container ends. A
//! second writer, or a writer while readers run, gets Apptainer's "currently in use" error.
//!
//! Must not: mount, or print (warnings go through `tracing`).

use std::fs::File;
use std::io::Read as _;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use crate::image::{Format, Image};

/// One `--overlay` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// As given, made absolute against the current directory by the request.
    pub path: PathBuf,
    /// `:ro`.
    pub ro: bool,
}

/// Parse `PATH[:ro]` as Apptainer does: split at the first `:`; `ro` after it makes the layer
/// read-only, anything else leaves it writable.
pub fn parse(value: &str) -> Spec {
    match value.split_once(':') {
        Some((path, rest)) => Spec {
            path: PathBuf::from(path),
            ro: rest == "ro",
        },
        None => Spec {
            path: PathBuf::from(value),
            ro: false,
        },
    }
}

/// What a layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Ext3,
    Squashfs,
}

/// One layer over the image, opened (and for an image file, locked).
#[derive(Debug)]
pub struct Layer {
    /// Canonical host path.
    pub path: PathBuf,
    pub kind: Kind,
    /// Where the filesystem starts in the file, and its length (0 for a directory).
    pub offset: u64,
    pub size: u64,
    /// Whether this layer takes the container's writes.
    pub writable: bool,
    /// The image file, open (read-write when writable) and locked while it is held.
    pub file: Option<File>,
    /// The launched SIF's own overlay partition, used read-only without being asked for: if
    /// it cannot be mounted (no FUSE for a user), the launch goes on without it, warned.
    pub implicit: bool,
    /// Left out of the root (an implicit layer that could not be mounted).
    pub skipped: bool,
}

impl Layer {
    /// The name messages give it: the path, and for a SIF's partition its offset.
    pub fn describe(&self) -> String {
        if self.offset > 0 {
            format!(
                "{} (overlay partition at byte {})",
                self.path.display(),
                self.offset
            )
        } else {
            self.path.display().to_string()
        }
    }
}

/// The layers, lowest first.
#[derive(Debug, Default)]
pub struct Layers {
    pub layers: Vec<Layer>,
}

impl Layers {
    /// The writable layer, if any.
    pub fn writable(&self) -> Option<&Layer> {
        self.layers.iter().find(|l| l.writable)
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("failed to open overlay image `{}`", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}`: overlay image with unknown format", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("cannot read the SIF `{}`", path.display())]
    Sif {
        path: PathBuf,
        #[source]
        source: sifr_sif::Error,
    },
    /// Apptainer's message.
    #[error(
        "you can't specify more than one writable overlay, `{}` contains a writable overlay, requires to use '--overlay {}:ro'",
        first.display(),
        second.display()
    )]
    TwoWritable { first: PathBuf, second: PathBuf },
    /// Apptainer's message.
    #[error("you can't specify --writable-tmpfs with another writable overlay image ({})", path.display())]
    WritableTmpfs { path: PathBuf },
    /// Apptainer's message.
    #[error("cannot use --overlay in conjunction with --writable")]
    WithWritable,
    /// Apptainer's message, for `--writable` on a SIF.
    #[error("no SIF writable overlay partition found in {}", path.display())]
    NoSifOverlay { path: PathBuf },
    /// Apptainer's messages, from its byte-range lock.
    #[error("can't open {} for writing, currently in use by another process", path.display())]
    InUseWriting { path: PathBuf },
    #[error("can't open {} for reading, currently in use for writing by another process", path.display())]
    InUseReading { path: PathBuf },
    #[error("cannot lock `{}`", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: sifr_sys::Error,
    },
}

impl OverlayError {
    pub fn hint(&self) -> Option<String> {
        match self {
            OverlayError::UnknownFormat { .. } => Some(
                "an overlay is a directory, an ext3 image (`sifr overlay create FILE`), a \
                 SquashFS image or a SIF with an overlay partition"
                    .into(),
            ),
            OverlayError::NoSifOverlay { path } => Some(format!(
                "add one with `sifr overlay create --size 1024 {}`, or use `--writable-tmpfs` \
                 or `--overlay DIR`",
                path.display()
            )),
            OverlayError::InUseWriting { .. } => Some(
                "an overlay image takes one writer at a time: wait for the other container, \
                 or add `:ro` to use it read-only"
                    .into(),
            ),
            OverlayError::InUseReading { .. } => {
                Some("wait for the container that writes to it to end".into())
            }
            OverlayError::WithWritable => {
                Some("`--writable` writes into the image itself; drop one of the two".into())
            }
            _ => None,
        }
    }
}

/// The errnos of a refused open for writing (same values on every Linux architecture).
const EPERM: i32 = 1;
const EACCES: i32 = 13;
const EROFS: i32 = 30;

/// The ext3 superblock's magic: 0xEF53 at byte 56 of the superblock, which starts at 1024.
const EXT_MAGIC_AT: u64 = 1024 + 56;
const EXT_MAGIC: [u8; 2] = [0x53, 0xEF];

/// Open the layers of a launch of `image`: the SIF's own overlay partitions, writable with
/// `writable` (`--writable`), then `specs` in order. Checks what Apptainer checks, in its order.
pub fn open(
    image: &Image,
    specs: &[Spec],
    writable: bool,
    writable_tmpfs: bool,
) -> Result<Layers, OverlayError> {
    let mut layers = Vec::new();
    if image.format == Format::Sif {
        let parts = sif_partitions(&image.path)?;
        if writable && !parts.iter().any(|p| p.0 == Kind::Ext3) {
            return Err(OverlayError::NoSifOverlay {
                path: image.path.clone(),
            });
        }
        if writable && !specs.is_empty() {
            return Err(OverlayError::WithWritable);
        }
        for (kind, offset, size) in parts {
            let rw = writable && kind == Kind::Ext3;
            let mut l = candidate(&image.path, kind, offset, size, rw);
            l.implicit = !rw;
            layers.push(l);
        }
    }
    for s in specs {
        let path = std::fs::canonicalize(&s.path).map_err(|source| OverlayError::Open {
            path: s.path.clone(),
            source,
        })?;
        let md = std::fs::metadata(&path).map_err(|source| OverlayError::Open {
            path: path.clone(),
            source,
        })?;
        if md.is_dir() {
            let mut l = candidate(&path, Kind::Dir, 0, 0, !s.ro);
            if l.writable && sifr_sys::fs::access_writable(&path).is_err() {
                tracing::warn!(
                    "Overlay image {} is not writable, proceeding with read-only",
                    path.display()
                );
                l.writable = false;
            }
            layers.push(l);
            continue;
        }
        match sniff(&path)? {
            Sniffed::Ext3 => layers.push(candidate(&path, Kind::Ext3, 0, md.len(), !s.ro)),
            Sniffed::Squashfs => {
                if !s.ro {
                    // Apptainer opens it for writing, is refused, and says so.
                    tracing::warn!(
                        "Overlay image {} is not writable, proceeding with read-only",
                        path.display()
                    );
                }
                layers.push(candidate(&path, Kind::Squashfs, 0, md.len(), false));
            }
            Sniffed::Sif => {
                let parts = sif_partitions(&path)?;
                if parts.is_empty() {
                    tracing::warn!(
                        "{} has no overlay partition: it adds nothing to the container",
                        path.display()
                    );
                }
                for (kind, offset, size) in parts {
                    layers.push(candidate(
                        &path,
                        kind,
                        offset,
                        size,
                        !s.ro && kind == Kind::Ext3,
                    ));
                }
            }
        }
    }
    let mut first_writable: Option<PathBuf> = None;
    for l in &mut layers {
        if l.kind != Kind::Dir {
            open_file(l)?;
        }
        if l.writable {
            if let Some(first) = &first_writable {
                return Err(OverlayError::TwoWritable {
                    first: first.clone(),
                    second: l.path.clone(),
                });
            }
            first_writable = Some(l.path.clone());
        }
    }
    if writable_tmpfs && let Some(path) = first_writable {
        return Err(OverlayError::WritableTmpfs { path });
    }
    Ok(Layers { layers })
}

fn candidate(path: &Path, kind: Kind, offset: u64, size: u64, writable: bool) -> Layer {
    Layer {
        path: path.to_path_buf(),
        kind,
        offset,
        size,
        writable,
        file: None,
        implicit: false,
        skipped: false,
    }
}

/// Open an image layer's file (read-write if it is to take writes, falling back to read-only
/// with Apptainer's warning when that is refused) and take its lock.
fn open_file(l: &mut Layer) -> Result<(), OverlayError> {
    let open_err = |source| OverlayError::Open {
        path: l.path.clone(),
        source,
    };
    let file = if l.writable {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&l.path)
        {
            Ok(f) => f,
            Err(e) if matches!(e.raw_os_error(), Some(EACCES | EROFS | EPERM)) => {
                tracing::warn!(
                    "Overlay image {} is not writable, proceeding with read-only",
                    l.path.display()
                );
                l.writable = false;
                File::open(&l.path).map_err(open_err)?
            }
            Err(e) => return Err(open_err(e)),
        }
    } else {
        File::open(&l.path).map_err(open_err)?
    };
    // SquashFS cannot change under the container: only ext3 bytes are locked, as Apptainer does.
    if l.kind == Kind::Ext3 {
        let ok = sifr_sys::ipc::lock_range(file.as_fd(), l.offset, l.size, l.writable).map_err(
            |source| OverlayError::Lock {
                path: l.path.clone(),
                source,
            },
        )?;
        if !ok {
            return Err(if l.writable {
                OverlayError::InUseWriting {
                    path: l.path.clone(),
                }
            } else {
                OverlayError::InUseReading {
                    path: l.path.clone(),
                }
            });
        }
    }
    l.file = Some(file);
    Ok(())
}

enum Sniffed {
    Ext3,
    Squashfs,
    Sif,
}

/// Which kind of image file `path` is, by its magic numbers.
fn sniff(path: &Path) -> Result<Sniffed, OverlayError> {
    let open_err = |source| OverlayError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut head = vec![0u8; (EXT_MAGIC_AT + 2) as usize];
    let mut f = File::open(path).map_err(open_err)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).map_err(open_err)? {
            0 => break,
            k => n += k,
        }
    }
    head.truncate(n);
    if head.starts_with(b"hsqs") {
        return Ok(Sniffed::Squashfs);
    }
    if head.len() >= 42 && &head[32..41] == b"SIF_MAGIC" {
        return Ok(Sniffed::Sif);
    }
    let at = EXT_MAGIC_AT as usize;
    if head.len() >= at + 2 && head[at..at + 2] == EXT_MAGIC {
        return Ok(Sniffed::Ext3);
    }
    Err(OverlayError::UnknownFormat {
        path: path.to_path_buf(),
    })
}

/// A SIF's overlay partitions (ext3 or SquashFS), in descriptor order.
fn sif_partitions(path: &Path) -> Result<Vec<(Kind, u64, u64)>, OverlayError> {
    let sif = sifr_sif::Image::open(path).map_err(|source| OverlayError::Sif {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(sif
        .descriptors()
        .filter_map(|d| {
            let meta = d.partition()?;
            if meta.part != sifr_sif::PartType::Overlay {
                return None;
            }
            let kind = match meta.fs {
                sifr_sif::FsType::Ext3 => Kind::Ext3,
                sifr_sif::FsType::Squash => Kind::Squashfs,
                _ => return None,
            };
            Some((kind, d.offset(), d.size()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_at_the_first_colon_as_apptainer_does() {
        assert_eq!(
            parse("/data/o.img:ro"),
            Spec {
                path: "/data/o.img".into(),
                ro: true
            }
        );
        assert_eq!(
            parse("/data/o.img"),
            Spec {
                path: "/data/o.img".into(),
                ro: false
            }
        );
        // Anything but `ro` after the colon leaves the layer writable.
        assert_eq!(
            parse("/data/o.img:rw"),
            Spec {
                path: "/data/o.img".into(),
                ro: false
            }
        );
    }

    fn sandbox(dir: &Path) -> Image {
        Image {
            path: dir.to_path_buf(),
            format: Format::Sandbox,
            offset: 0,
            size: 0,
        }
    }

    #[test]
    fn files_are_told_apart_by_their_magic() {
        let d = tempfile::tempdir().unwrap();
        let sq = d.path().join("a.sqfs");
        std::fs::write(&sq, b"hsqs and the rest").unwrap();
        let mut ext = vec![0u8; 4096];
        ext[1080] = 0x53;
        ext[1081] = 0xEF;
        let e3 = d.path().join("o.img");
        std::fs::write(&e3, &ext).unwrap();
        let junk = d.path().join("junk");
        std::fs::write(&junk, vec![1u8; 4096]).unwrap();
        let img = sandbox(d.path());
        let specs = [parse(sq.to_str().unwrap()), parse(e3.to_str().unwrap())];
        let l = open(&img, &specs, false, false).unwrap();
        let kinds: Vec<_> = l.layers.iter().map(|l| (l.kind, l.writable)).collect();
        assert_eq!(kinds, [(Kind::Squashfs, false), (Kind::Ext3, true)]);
        let e = open(&img, &[parse(junk.to_str().unwrap())], false, false).unwrap_err();
        assert!(matches!(e, OverlayError::UnknownFormat { .. }), "{e}");
        assert!(e.to_string().contains("junk"));
    }

    #[test]
    fn one_writable_layer_at_most_and_not_with_writable_tmpfs() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let img = sandbox(d.path());
        let (sa, sb) = (a.to_str().unwrap(), b.to_str().unwrap());
        let e = open(&img, &[parse(sa), parse(sb)], false, false).unwrap_err();
        assert!(matches!(e, OverlayError::TwoWritable { .. }), "{e}");
        assert!(e.to_string().contains(&format!("--overlay {sb}:ro")), "{e}");
        let ok = open(&img, &[parse(sa), parse(&format!("{sb}:ro"))], false, false).unwrap();
        assert_eq!(ok.writable().unwrap().path, a);
        let e = open(&img, &[parse(sa)], false, true).unwrap_err();
        assert!(matches!(e, OverlayError::WritableTmpfs { .. }), "{e}");
        // Read-only layers go with `--writable-tmpfs`, as in Apptainer.
        assert!(open(&img, &[parse(&format!("{sa}:ro"))], false, true).is_ok());
    }

    #[test]
    fn a_second_writer_of_an_image_is_refused_and_readers_share() {
        let d = tempfile::tempdir().unwrap();
        let mut ext = vec![0u8; 4096];
        ext[1080] = 0x53;
        ext[1081] = 0xEF;
        let p = d.path().join("o.img");
        std::fs::write(&p, &ext).unwrap();
        let img = sandbox(d.path());
        let s = p.to_str().unwrap();
        let writer = open(&img, &[parse(s)], false, false).unwrap();
        let e = open(&img, &[parse(s)], false, false).unwrap_err();
        assert!(matches!(e, OverlayError::InUseWriting { .. }), "{e}");
        let e = open(&img, &[parse(&format!("{s}:ro"))], false, false).unwrap_err();
        assert!(matches!(e, OverlayError::InUseReading { .. }), "{e}");
        drop(writer);
        let r1 = open(&img, &[parse(&format!("{s}:ro"))], false, false).unwrap();
        let r2 = open(&img, &[parse(&format!("{s}:ro"))], false, false).unwrap();
        assert!(open(&img, &[parse(s)], false, false).is_err());
        drop((r1, r2));
        assert!(open(&img, &[parse(s)], false, false).is_ok());
    }
}
