//! Definition file → image: every stage built in order in its own work directory, only the
//! last one shipped (reference section 3.1):
//!
//! ```text
//! per stage: bootstrap ─► /.singularity.d skeleton ─► %files from <stage> ─► %setup (host)
//!            ─► %files (host) ─► %post (container) ─► metadata (labels, env, scripts, def)
//!            ─► %test (container, unless --notest)
//! last stage: SquashFS streamed into the SIF (or the directory moved to a sandbox target)
//! ```
//!
//! The steps up to the metadata go through the build cache (`steps`): the latest unchanged
//! checkpoint is restored instead of run.
//!
//! The work directory (`build-temp-*` under the tmpdir) is removed on success and on failure;
//! the target appears only when complete (the SIF is renamed into place by `pack`, a sandbox is
//! renamed from a sibling temporary directory). Script failures name the stage, the section,
//! its line in the definition file, the last command the shell traced, and its status.
//!
//! Sections that run in a container go through `sifr_launch::buildrun` (a forked child, so this
//! process must be single-threaded whenever a section starts: the SquashFS writer's compression
//! threads, used between sections for a registry base's layers and the build cache's entries,
//! have all ended when the writer is dropped (`sifr_squashfs`'s `workers`), and the fork checks).
//! Nothing here prints: progress goes to the caller's `log`, script output to `on_output`.

pub mod bootstrap;
pub mod cache;
mod cachekey;
pub mod files;
pub mod preflight;
mod script;
mod steps;

use std::path::{Path, PathBuf};

use sifr_deffile::{Definition, Stage};
use sifr_squashfs::Compression;

use crate::layout::{self, BuildTime, LayoutError, MetadataOptions};
use crate::pack::{PackError, PackOptions};
pub use bootstrap::BootstrapError;
pub use files::CopyError;
pub use script::Section;
pub use steps::{CacheOptions, Checkpoint};

/// Everything a definition build needs besides the definition.
#[derive(Debug, Clone)]
pub struct DefBuildOptions {
    /// The SIF file, or with `sandbox` the directory, to create.
    pub target: PathBuf,
    pub sandbox: bool,
    pub force: bool,
    /// `--notest`: skip `%test`.
    pub notest: bool,
    pub compression: Compression,
    pub threads: usize,
    /// Where `build-temp-*` work directories go.
    pub tmpdir: PathBuf,
    /// Relative `%files` sources and `From:` paths are taken from here (the build's cwd).
    pub context: PathBuf,
    /// Told the files and bytes packed so far while the SIF is written.
    pub progress: Option<sifr_squashfs::write::Progress>,
    /// Told what a long bootstrap step is doing (debootstrap's `I:` lines); an empty text
    /// ends the step.
    pub step_progress: Option<StepProgress>,
    /// `-B/--bind` for `%post` and `%test`.
    pub binds: Vec<sifr_launch::bind::Bind>,
    /// `--nv`/`--rocm`: the host GPU driver found for `%post` and `%test`.
    pub gpu: Vec<sifr_launch::gpu::Found>,
    /// The host environment (`%setup` gets it; containers get only `TERM` and proxies).
    pub host_env: Vec<(String, String)>,
    pub time: BuildTime,
    /// Extra variables for `%post` (e.g. compiler flags).
    pub post_env: Vec<(String, String)>,
    /// `--fix-perms`: owner `rwX` on everything before packing.
    pub fix_perms: bool,
    /// A hint added to a failing `%post` (the fakeroot mode's explanation).
    pub post_failure_hint: Option<String>,
    /// Client and blob cache for `Bootstrap: docker`; its platform also picks from local
    /// OCI indexes.
    pub registry: Option<std::sync::Arc<crate::pull::RegistryAccess>>,
    /// `--update`: the last stage starts from the existing sandbox `target` instead of its
    /// bootstrap (which is skipped), and its header labels are kept.
    pub update: bool,
    /// `--no-cleanup`: keep the work directory when the build fails.
    pub no_cleanup: bool,
    /// `--writable-tmpfs`: `%test` may write; its writes go to a layer dropped afterwards.
    pub writable_tmpfs: bool,
    /// The build cache; `None` with `--disable-cache`.
    pub cache: Option<CacheOptions>,
    /// `SOURCE_DATE_EPOCH` / `--reproducible`: what dates the image (`time` for its labels,
    /// unless `--reproducible` finds the base image's creation time) and makes it reproducible.
    pub source_date: crate::reproducible::SourceDate,
}

/// What the build produced.
#[derive(Debug, Clone)]
pub struct DefReport {
    pub stages: usize,
    pub arch: String,
    /// For SIF targets.
    pub pack: Option<crate::pack::PackReport>,
}

/// A build failure; stage-level variants name the stage as `stage` (its `Stage:` name, or
/// its number when unnamed).
#[derive(Debug, thiserror::Error)]
pub enum DefBuildError {
    #[error("`{}` already exists (use --force to overwrite)", path.display())]
    TargetExists { path: PathBuf },
    #[error("`{}` exists and does not look like a sandbox image; refusing to replace it", path.display())]
    TargetNotSandbox { path: PathBuf },
    #[error("the definition has no stage to build")]
    Empty,
    #[error("cannot prepare `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{stage}: bootstrap failed")]
    Bootstrap {
        stage: String,
        #[source]
        source: Box<BootstrapError>,
    },
    #[error("{stage}: %files at line {line}: cannot copy `{src}`")]
    Files {
        stage: String,
        line: usize,
        src: String,
        #[source]
        source: CopyError,
    },
    #[error("{stage}: %{section} (line {line}) failed with status {status}{}", command.as_ref().map(|c| format!(" at `{c}`")).unwrap_or_default())]
    Script {
        stage: String,
        section: Section,
        line: usize,
        status: i32,
        command: Option<String>,
        hint: Option<String>,
    },
    #[error("{stage}: cannot run %{section}")]
    Run {
        stage: String,
        section: Section,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{stage}: cannot lay out /.singularity.d")]
    Layout {
        stage: String,
        #[source]
        source: LayoutError,
    },
    #[error("cannot write the image")]
    Pack(#[from] PackError),
    #[error("interrupted by signal {signal}")]
    Interrupted { signal: i32 },
}

/// The error for a failed `%files` line.
fn files_error<'a>(
    label: &'a str,
    e: &'a sifr_deffile::FilesEntry,
) -> impl FnOnce(CopyError) -> DefBuildError + 'a {
    move |source| DefBuildError::Files {
        stage: label.to_string(),
        line: e.line,
        src: e.src.clone(),
        source,
    }
}

/// Stop between steps once a signal has arrived (the step it interrupted may have succeeded).
fn check_interrupt() -> Result<(), DefBuildError> {
    match sifr_launch::buildrun::interrupted() {
        Some(signal) => Err(DefBuildError::Interrupted { signal }),
        None => Ok(()),
    }
}

impl DefBuildError {
    pub fn hint(&self) -> Option<String> {
        match self {
            DefBuildError::Bootstrap { source, .. } => source.hint(),
            DefBuildError::Script { hint, .. } => hint.clone(),
            DefBuildError::Files {
                source: CopyError::NoMatch { .. },
                ..
            } => Some(
                "relative %files sources are taken from the directory `sifr build` runs in".into(),
            ),
            _ => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DefBuildError + '_ {
    move |source| DefBuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Removes the work directory however the build ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        remove_tree(&self.0);
    }
}

/// The name of every build's work directory starts with this (the builder's pid follows).
const WORK_PREFIX: &str = "build-temp-";

/// A file in a work directory that `--no-cleanup` kept for the user to look at.
const KEEP_MARK: &str = ".sifr-no-cleanup";

/// Work directories this old and unlocked are a dead build's: a live build locks its own right
/// after making it, so only that instant is unlocked, and it is never this old.
const WORK_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Remove what killed builds left in `tmpdir` (`kill -9` of `sifr build`): work directories
/// whose lock nobody holds and that are older than [`WORK_GRACE`], but not those `--no-cleanup`
/// kept. Best effort: another user's, or files a fakeroot build's subordinate ids own, may stay.
fn sweep_work_dirs(tmpdir: &Path, log: &mut dyn FnMut(&str)) {
    let Ok(rd) = std::fs::read_dir(tmpdir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(WORK_PREFIX)) {
            continue;
        }
        let path = e.path();
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let old = md
            .modified()
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= WORK_GRACE));
        if !md.is_dir() || !old || path.join(KEEP_MARK).exists() {
            continue;
        }
        let Ok(dir) = std::fs::File::open(&path) else {
            continue;
        };
        if dir.try_lock().is_ok() {
            remove_tree(&path);
            if !path.exists() {
                log(&format!(
                    "removed `{}`, left by an interrupted build",
                    path.display()
                ));
            }
        }
    }
}

/// Remove a tree that may hold read-only directories (a package's 0555 dirs), best effort.
pub fn remove_tree(path: &Path) {
    if std::fs::remove_dir_all(path).is_ok() || !path.exists() {
        return;
    }
    make_owner_writable(path);
    let _ = std::fs::remove_dir_all(path);
}

fn make_owner_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return;
    };
    if md.is_dir() {
        let mode = md.permissions().mode();
        if mode & 0o700 != 0o700 {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o700));
        }
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                make_owner_writable(&e.path());
            }
        }
    }
}

/// How a stage is named in messages.
fn stage_label(stage: &Stage, index: usize, count: usize) -> String {
    match stage.header.stage.as_ref() {
        Some(n) => format!("stage `{}`", n.value),
        None if count == 1 => "build".to_string(),
        None => format!("stage {}", index + 1),
    }
}

/// A callback for a long step's progress text.
#[derive(Clone)]
pub struct StepProgress(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for StepProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepProgress")
    }
}

/// Build `def` into `opts.target`.
pub fn build_definition(
    def: &Definition,
    opts: &DefBuildOptions,
    log: &mut dyn FnMut(&str),
    on_output: &mut dyn FnMut(&[u8]),
) -> Result<DefReport, DefBuildError> {
    if def.stages.is_empty() {
        return Err(DefBuildError::Empty);
    }
    check_target(opts)?;
    std::fs::create_dir_all(&opts.tmpdir).map_err(io_err(&opts.tmpdir))?;
    sweep_work_dirs(&opts.tmpdir, log);
    let work = make_temp_dir(&opts.tmpdir, WORK_PREFIX)?;
    // Locked for the build's life (the descriptor lives until this function returns), so a
    // concurrent build's sweep leaves this directory alone.
    let _held = std::fs::File::open(&work).and_then(|f| f.lock().map(|()| f));
    let result = build_in(def, opts, &work, log, on_output);
    if result.is_err() && opts.no_cleanup {
        // Kept on purpose: the next build's sweep leaves it alone.
        let _ = std::fs::write(work.join(KEEP_MARK), b"");
        log(&format!(
            "build performed with no clean up option, build files left in {}",
            work.display()
        ));
    } else {
        drop(WorkDir(work));
    }
    result
}

/// [`build_definition`]'s stages and packing, in the work directory `work`.
fn build_in(
    def: &Definition,
    opts: &DefBuildOptions,
    work: &Path,
    log: &mut dyn FnMut(&str),
    on_output: &mut dyn FnMut(&[u8]),
) -> Result<DefReport, DefBuildError> {
    let count = def.stages.len();
    if let Some(c) = &opts.cache {
        // What killed builds left in the build cache: partial entries, locks nobody holds.
        let _ = cache::BuildCache::new(&c.root, c.max_bytes, opts.threads).sweep();
    }
    let mut roots: Vec<steps::Earlier> = Vec::new();
    let mut shipped = None;
    for (i, stage) in def.stages.iter().enumerate() {
        let label = stage_label(stage, i, count);
        if count > 1 {
            log(&format!("{label} ({} of {count})", i + 1));
        }
        let stage_work = work.join(format!("stage-{i}"));
        std::fs::create_dir_all(&stage_work).map_err(io_err(&stage_work))?;
        let rootfs = stage_work.join("rootfs");
        let built = build_stage(
            def,
            stage,
            &label,
            &rootfs,
            &stage_work,
            &roots,
            opts,
            opts.update && i + 1 == count,
            log,
            on_output,
        )?;
        check_interrupt()?;
        if i + 1 < count {
            log(&format!(
                "{label}: {:.1} MiB root filesystem, kept for `%files from` and not shipped",
                tree_bytes(&rootfs) as f64 / 1048576.0
            ));
            roots.push(steps::Earlier {
                name: stage.header.stage.as_ref().map(|s| s.value.clone()),
                rootfs,
                key: built.key,
            });
        } else {
            shipped = Some((rootfs, built));
        }
    }
    // Stages are not empty (checked above), so the last one set `shipped`.
    let Some((rootfs, built)) = shipped else {
        return Err(DefBuildError::Empty);
    };
    for earlier in roots.drain(..) {
        remove_tree(&earlier.rootfs);
    }
    if opts.fix_perms {
        make_owner_writable_all(&rootfs);
    }
    finish(&rootfs, opts, count, built, log)
}

/// Bytes in the regular files under `root` (each hard-linked file once), for the log.
fn tree_bytes(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() && (md.nlink() == 1 || seen.insert((md.dev(), md.ino()))) {
                total += md.len();
            }
        }
    }
    total
}

fn make_owner_writable_all(root: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(md) = std::fs::symlink_metadata(root) else {
        return;
    };
    if md.file_type().is_symlink() {
        return;
    }
    let mode = md.permissions().mode();
    let want = if md.is_dir() || mode & 0o100 != 0 {
        0o700
    } else {
        0o600
    };
    if mode & want != want {
        let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode | want));
    }
    if md.is_dir()
        && let Ok(rd) = std::fs::read_dir(root)
    {
        for e in rd.flatten() {
            make_owner_writable_all(&e.path());
        }
    }
}

fn check_target(opts: &DefBuildOptions) -> Result<(), DefBuildError> {
    let Ok(md) = std::fs::symlink_metadata(&opts.target) else {
        return Ok(());
    };
    if opts.sandbox && md.is_dir() {
        // Apptainer replaces only a directory that looks like a sandbox image.
        let looks = [".singularity.d", "dev", "proc", "sys"]
            .iter()
            .all(|d| opts.target.join(d).is_dir());
        if !looks
            && std::fs::read_dir(&opts.target)
                .map(|mut r| r.next().is_some())
                .unwrap_or(true)
        {
            return Err(DefBuildError::TargetNotSandbox {
                path: opts.target.clone(),
            });
        }
    }
    // `--update` builds into the existing sandbox.
    let updating = opts.update && opts.sandbox && md.is_dir();
    if !opts.force && !updating {
        return Err(DefBuildError::TargetExists {
            path: opts.target.clone(),
        });
    }
    Ok(())
}

fn make_temp_dir(parent: &Path, prefix: &str) -> Result<PathBuf, DefBuildError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let pid = std::process::id();
    for n in 0..1000u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = parent.join(format!(
            "{prefix}{pid}-{:08x}",
            nanos ^ n.wrapping_mul(0x9e37_79b9)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(parent)(e)),
        }
    }
    Err(io_err(parent)(std::io::ErrorKind::AlreadyExists.into()))
}

#[allow(clippy::too_many_arguments)]
fn build_stage(
    def: &Definition,
    stage: &Stage,
    label: &str,
    rootfs: &Path,
    work: &Path,
    earlier: &[steps::Earlier],
    opts: &DefBuildOptions,
    update: bool,
    log: &mut dyn FnMut(&str),
    on_output: &mut dyn FnMut(&[u8]),
) -> Result<Built, DefBuildError> {
    check_interrupt()?;
    let layout_err = |source| DefBuildError::Layout {
        stage: label.to_string(),
        source,
    };
    if stage
        .pre
        .as_ref()
        .is_some_and(|s| !s.body.trim().is_empty())
    {
        // Never silently: the legacy section is parsed, and said to be skipped.
        tracing::warn!("%pre is not run (a legacy section); move its commands to %setup");
    }
    let done = steps::Stepper {
        stage,
        label,
        rootfs,
        work,
        earlier,
        opts,
        update,
    }
    .run(log, on_output)?;
    let boot = done.meta;

    check_interrupt()?;
    let arch = crate::arch::detect(rootfs).arch.go_name().to_string();
    let mut meta = MetadataOptions::new(label_time(opts, &boot), arch.clone());
    meta.force = opts.force;
    meta.update = update;
    meta.base_image = boot.base.clone();
    layout::insert_metadata(rootfs, stage, &def.substituted, &meta).map_err(layout_err)?;

    if !opts.notest
        && stage
            .test
            .as_ref()
            .is_some_and(|t| !t.body.trim().is_empty())
    {
        log("running %test in the container");
        let run = script::Runner {
            stage: label,
            rootfs,
            work,
            opts,
            hint: opts.post_failure_hint.clone(),
        };
        run.test(stage.test.as_ref().map_or(0, |t| t.line), on_output)?;
    }
    Ok(Built {
        arch,
        oci_config: boot.oci_config.map(String::into_bytes),
        key: done.key,
    })
}

/// The time a stage's labels record: a reproducible build's epoch (with `--reproducible`, the
/// stage's base image's creation time), else the build's time.
fn label_time(opts: &DefBuildOptions, boot: &cache::EntryMeta) -> BuildTime {
    let config = boot.oci_config.as_ref().map(|raw| raw.as_bytes());
    opts.source_date
        .epoch(config)
        .map_or_else(|| opts.time.clone(), BuildTime::utc)
}

/// What a stage leaves for packing.
struct Built {
    arch: String,
    /// The raw OCI image config of an OCI-based stage, stored in the SIF as `oci-config.json`.
    oci_config: Option<Vec<u8>>,
    /// The stage's build cache key, for later stages' `%files from`.
    key: Option<String>,
}

fn finish(
    rootfs: &Path,
    opts: &DefBuildOptions,
    stages: usize,
    built: Built,
    log: &mut dyn FnMut(&str),
) -> Result<DefReport, DefBuildError> {
    let arch = built.arch;
    if opts.sandbox {
        log(&format!("creating sandbox `{}`", opts.target.display()));
        let parent = match opts.target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Rename when the work directory is on the same file system; copy otherwise.
        let staged = make_temp_dir(&parent, ".sifr-sandbox-")?;
        let inner = staged.join("rootfs");
        if std::fs::rename(rootfs, &inner).is_err() {
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(rootfs)
                .arg(&inner)
                .status()
                .map_err(io_err(&inner))?;
            if !status.success() {
                remove_tree(&staged);
                return Err(io_err(&inner)(std::io::Error::other(format!(
                    "cp -a failed ({status})"
                ))));
            }
        }
        if opts.target.exists() {
            remove_tree(&opts.target);
        }
        let moved = std::fs::rename(&inner, &opts.target).map_err(io_err(&opts.target));
        remove_tree(&staged);
        moved?;
        return Ok(DefReport {
            stages,
            arch,
            pack: None,
        });
    }
    log(&format!("creating SIF file `{}`", opts.target.display()));
    let inspect = layout::inspect(rootfs).map_err(|source| DefBuildError::Layout {
        stage: "image".into(),
        source,
    })?;
    let pack = PackOptions {
        compression: opts.compression,
        all_root: false,
        force: opts.force,
        threads: opts.threads,
        arch: None,
        metadata_json: std::iter::once((
            "inspect-metadata.json".to_string(),
            inspect.to_json().into_bytes(),
        ))
        .chain(
            built
                .oci_config
                .clone()
                .map(|c| ("oci-config.json".to_string(), c)),
        )
        .collect(),
        source_date_epoch: opts.source_date.epoch(built.oci_config.as_deref()),
        progress: opts.progress.clone(),
    };
    if opts.source_date.requested() && pack.source_date_epoch.is_none() {
        tracing::warn!(
            "--reproducible: the base image records no creation date and SOURCE_DATE_EPOCH is not set; the image is dated now and is not reproducible"
        );
    }
    let report = crate::pack::pack_dir(rootfs, &opts.target, &pack)?;
    Ok(DefReport {
        stages,
        arch,
        pack: Some(report),
    })
}

#[cfg(test)]
mod sweep_tests {
    use super::*;

    #[test]
    fn a_dead_builds_work_directory_is_swept_but_a_live_kept_or_fresh_one_is_not() {
        let t = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let make = |name: &str, age_it: bool| {
            let p = t.path().join(name);
            std::fs::create_dir_all(p.join("stage-0/rootfs/etc")).unwrap();
            std::fs::write(p.join("stage-0/rootfs/etc/f"), "x").unwrap();
            if age_it {
                std::fs::File::open(&p).unwrap().set_modified(old).unwrap();
            }
            p
        };
        let dead = make("build-temp-11-aaaa", true);
        let live = make("build-temp-22-bbbb", true);
        let fresh = make("build-temp-33-cccc", false);
        let kept = make("build-temp-44-dddd", true);
        std::fs::write(kept.join(KEEP_MARK), b"").unwrap();
        std::fs::File::open(&kept)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let other = make("not-a-build-55", true);
        let held = std::fs::File::open(&live).unwrap();
        held.lock().unwrap();
        let mut lines = Vec::new();
        sweep_work_dirs(t.path(), &mut |l| lines.push(l.to_string()));
        assert!(!dead.exists(), "a dead build's directory is removed");
        assert!(live.exists() && fresh.exists() && kept.exists() && other.exists());
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("build-temp-11-aaaa"), "{lines:?}");
    }
}
