//! Pack a root filesystem directory (a sandbox) into a SIF: the SquashFS image is streamed
//! straight into the SIF's primary partition, with no temporary squashfs file.
//!
//! The SIF is written to a temporary file next to the target and renamed over it only when
//! complete, so a failed or interrupted build never leaves a partial image under the target
//! name; the temporary file is removed on error. Overwriting needs `force`. This module does
//! not print; it logs through `tracing` and returns a report.
//!
//! The CPU features the image's programs need ([`sifr_isa::ImageFacts`]) are scanned from the
//! directory and stored as a generic JSON object named [`sifr_isa::SIF_OBJECT_NAME`], so that a
//! launch can warn before a program dies with "Illegal instruction" without scanning.
//!
//! With [`PackOptions::source_date_epoch`] the SIF is reproducible: dated by the epoch, file
//! times clamped to it, and its UUID derived from its bytes once everything is written.

use std::fs;
use std::io::BufWriter;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sifr_sif::{CreateOptions, Creator, FsType, ObjectInput, PartType, PartitionMeta};
use sifr_squashfs::{Compression, Options, Summary, WalkOptions, WriteError, Writer};

use crate::arch::{self, ArchGuess, ArchSource};

/// The definition file Apptainer keeps inside a built root filesystem.
const DEFFILE_IN_ROOT: &str = ".singularity.d/Singularity";

#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub compression: Compression,
    /// Store every file as owned by root (for rootless builds of system images).
    pub all_root: bool,
    /// Replace an existing target.
    pub force: bool,
    /// Compression threads, 0 = all cores (the output does not depend on it).
    pub threads: usize,
    /// Override the detected architecture.
    pub arch: Option<sifr_sif::Arch>,
    /// Generic JSON objects to store before the partition, `(name, bytes)`, in order (a
    /// definition build stores `inspect-metadata.json` and, for OCI bases, `oci-config.json`).
    pub metadata_json: Vec<(String, Vec<u8>)>,
    /// A reproducible build's `SOURCE_DATE_EPOCH` (see [`crate::reproducible`]): the SIF's
    /// times, the SquashFS superblock's, and every later file time are this; the UUID is
    /// derived from the finished file. `None`: now and a random UUID.
    pub source_date_epoch: Option<i64>,
    /// Told the files and bytes packed so far (for a progress line).
    pub progress: Option<sifr_squashfs::write::Progress>,
}

/// What a pack produced.
#[derive(Debug, Clone)]
pub struct PackReport {
    pub arch: ArchGuess,
    pub squashfs: Summary,
    /// Final size of the SIF file.
    pub sif_size: u64,
    /// The ISA summary stored in the image (`None` when the scan failed; the build goes on).
    pub isa: Option<sifr_isa::Summary>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("source `{path}` is not a directory")]
    SourceNotDirectory { path: PathBuf },
    #[error("cannot read source `{path}`")]
    Source {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` already exists (use --force to overwrite)")]
    TargetExists { path: PathBuf },
    #[error("`{path}` is a directory, not an image file")]
    TargetIsDirectory { path: PathBuf },
    #[error("cannot create temporary image `{path}`")]
    Temp {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot merge the layers of `{image}` into the image")]
    Merge {
        image: String,
        #[source]
        source: Box<sifr_oci::merge::MergeError>,
    },
    #[error("cannot write the root filesystem into the image")]
    Squashfs(#[from] WriteError),
    #[error("cannot write the sif image")]
    Sif(#[from] sifr_sif::Error),
    #[error("cannot move the finished image to `{path}`")]
    Rename {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Removes the temporary file unless the build got as far as renaming it.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Pack the directory `src` into the SIF `target`.
pub fn pack_dir(src: &Path, target: &Path, opts: &PackOptions) -> Result<PackReport, PackError> {
    let md = fs::metadata(src).map_err(|source| PackError::Source {
        path: src.to_path_buf(),
        source,
    })?;
    if !md.is_dir() {
        return Err(PackError::SourceNotDirectory {
            path: src.to_path_buf(),
        });
    }
    check_target(target, opts.force)?;

    let guess = match opts.arch {
        Some(a) => ArchGuess {
            arch: a,
            source: ArchSource::Host,
        },
        None => arch::detect(src),
    };
    match &guess.source {
        ArchSource::Shell(p) | ArchSource::FirstElf(p) => {
            tracing::debug!(arch = guess.arch.go_name(), from = %p.display(), "image architecture")
        }
        ArchSource::Host if opts.arch.is_none() => tracing::info!(
            "no ELF executable found in `{}`: using the host architecture `{}`",
            src.display(),
            guess.arch.go_name()
        ),
        ArchSource::Host => {}
    }
    let def = match fs::read(src.join(DEFFILE_IN_ROOT)) {
        Ok(def) => Some(def),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(PackError::Source {
                path: src.join(DEFFILE_IN_ROOT),
                source,
            });
        }
    };
    let (squashfs, sif_size, isa) = write_sif(
        target,
        opts,
        guess.arch,
        def,
        IsaFacts::Directory(src),
        |w| {
            w.add_tree(src, &WalkOptions::default())?;
            Ok(())
        },
    )?;
    Ok(PackReport {
        arch: guess,
        squashfs,
        sif_size,
        isa,
    })
}

/// Refuse a directory target, and an existing file without `force`.
pub(crate) fn check_target(target: &Path, force: bool) -> Result<(), PackError> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Err(PackError::TargetIsDirectory {
            path: target.to_path_buf(),
        }),
        Ok(_) if !force => Err(PackError::TargetExists {
            path: target.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// The SquashFS writer a partition is streamed through.
pub(crate) type PartWriter<'a, 'b> =
    Writer<&'a mut sifr_sif::PartitionSink<'b, BufWriter<fs::File>>>;

/// Where the CPU-feature facts of a new SIF come from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IsaFacts<'a> {
    /// The source directory, scanned before the partition is written.
    Directory(&'a Path),
    /// The partition just written, read back before the SIF is renamed into place (a pull,
    /// whose files exist only inside the stream).
    Written,
}

/// Write a SIF at `target` through a temporary sibling renamed into place: the definition
/// (if any), `opts.metadata_json`, the ISA facts (from a directory: before the partition),
/// then the primary partition, whose SquashFS `fill` populates, then (for
/// [`IsaFacts::Written`]) the facts read back from it. Returns the SquashFS summary, the SIF
/// size and the ISA summary.
pub(crate) fn write_sif(
    target: &Path,
    opts: &PackOptions,
    arch: sifr_sif::Arch,
    def: Option<Vec<u8>>,
    isa_src: IsaFacts<'_>,
    fill: impl for<'a, 'b> FnOnce(&mut PartWriter<'a, 'b>) -> Result<(), PackError>,
) -> Result<(Summary, u64, Option<sifr_isa::Summary>), PackError> {
    // Same directory as the target so the final rename is atomic (same filesystem).
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    sweep_partials(&dir, &name);
    let tmp = dir.join(format!("{}{}", partial_prefix(&name), std::process::id()));
    let file = fs::OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|source| PackError::Temp {
            path: tmp.clone(),
            source,
        })?;
    let mut guard = TempGuard(Some(tmp.clone()));
    // Held until this function returns (a second descriptor of the same open file, so closing
    // the writer's does not release it): a later run's sweep leaves a file being written alone.
    let _held = file.try_clone().and_then(|f| f.lock().map(|()| f));

    let epoch = opts.source_date_epoch;
    let mut creator = Creator::new(
        BufWriter::with_capacity(1 << 20, file),
        CreateOptions {
            time: epoch,
            ..CreateOptions::apptainer()
        },
    )?;
    if let Some(def) = def {
        creator.add(ObjectInput::deffile(def))?;
    }
    for (name, bytes) in &opts.metadata_json {
        creator.add(ObjectInput::generic_json(name, bytes.clone()))?;
    }
    let mut isa = match isa_src {
        IsaFacts::Directory(src) => add_isa_facts(&mut creator, src)?,
        IsaFacts::Written => None,
    };
    let sq_opts = Options {
        compression: opts.compression,
        all_root: opts.all_root,
        threads: opts.threads,
        mtime_limit: epoch,
        progress: opts.progress.clone(),
        ..Options::default()
    };
    let meta = PartitionMeta {
        fs: FsType::Squash,
        part: PartType::PrimSys,
        arch,
    };
    let mut summary = None;
    creator.add_partition_with::<PackError>("", meta, |sink| {
        let mut w = Writer::new(&mut *sink, sq_opts)?;
        fill(&mut w)?;
        summary = Some(w.finish()?);
        Ok(())
    })?;
    let out = creator.finish()?;
    let file = out.into_inner().map_err(|e| PackError::Temp {
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    drop(file);
    if let IsaFacts::Written = isa_src {
        isa = add_written_isa_facts(&tmp, epoch)?;
    }
    if epoch.is_some() {
        // Last: the ID is derived from every other byte of the file.
        sifr_sif::Image::open_rw(&tmp)?.set_content_id()?;
    }
    let sif_size = fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
    // SIF images are executable (the header starts with a `#!` launch line).
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(|source| {
        PackError::Temp {
            path: tmp.clone(),
            source,
        }
    })?;
    fs::rename(&tmp, target).map_err(|source| PackError::Rename {
        path: target.to_path_buf(),
        source,
    })?;
    guard.0 = None;
    Ok((summary.unwrap_or_default(), sif_size, isa))
}

/// The name every partial file of `target`'s name starts with (the writer's pid follows).
fn partial_prefix(name: &str) -> String {
    format!(".{name}.sifr-build-")
}

/// Partial files this old, unlocked, are a dead writer's: a live one locks its file right
/// after creating it, so only that instant is unlocked, and it is never this old.
const PARTIAL_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Remove the partial files of `name` in `dir` that a killed writer left (`kill -9` of a pull
/// or build): those whose lock nobody holds and that are older than [`PARTIAL_GRACE`]. Best
/// effort: what cannot be removed stays.
fn sweep_partials(dir: &Path, name: &str) {
    let prefix = partial_prefix(name);
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let file_name = e.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = e.path();
        let Ok(f) = fs::File::open(&path) else {
            continue;
        };
        let old = f
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= PARTIAL_GRACE));
        if old && f.try_lock().is_ok() && fs::remove_file(&path).is_ok() {
            tracing::info!("removed `{}`, left by an interrupted run", path.display());
        }
    }
}

/// Scans the primary partition of the SIF at `path` and adds the facts as a JSON object (an
/// in-place edit of the not yet renamed file, dated `time`, else now). As for a directory, a
/// failed scan costs the image its facts, not the pull.
fn add_written_isa_facts(
    path: &Path,
    time: Option<i64>,
) -> Result<Option<sifr_isa::Summary>, PackError> {
    let offset = {
        let img = sifr_sif::Image::open(path)?;
        img.primary_partition().map(|p| p.offset())
    };
    let Some(offset) = offset else {
        return Ok(None);
    };
    let facts = match crate::isatree::scan_squashfs(path, offset, &|_| {}) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("cannot record the CPU features the image needs: {e}");
            return Ok(None);
        }
    };
    let mut img = sifr_sif::Image::open_rw(path)?;
    img.add_object(
        ObjectInput::generic_json(sifr_isa::SIF_OBJECT_NAME, facts.to_json().into_bytes()),
        time,
    )?;
    Ok(Some(facts.summary))
}

/// Scans `src` and adds the facts as a JSON object. A scan that fails (the root went away)
/// costs the image its facts, not the build: launches then skip the check.
fn add_isa_facts<W: std::io::Write + std::io::Seek>(
    creator: &mut Creator<W>,
    src: &Path,
) -> Result<Option<sifr_isa::Summary>, PackError> {
    let facts = match sifr_isa::ImageFacts::scan(src) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("cannot record the CPU features the image needs: {e}");
            return Ok(None);
        }
    };
    tracing::debug!(
        max_level = ?facts.summary.max_level,
        elf_files = facts.summary.elf_files,
        "isa facts"
    );
    creator.add(ObjectInput::generic_json(
        sifr_isa::SIF_OBJECT_NAME,
        facts.to_json().into_bytes(),
    ))?;
    Ok(Some(facts.summary))
}
