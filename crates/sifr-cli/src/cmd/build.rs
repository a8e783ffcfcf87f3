//! `sifr build TARGET SOURCE`: a SIF (or with `--sandbox` a directory) from a definition file,
//! a sandbox directory, a SIF or SquashFS image, a `docker://` registry image, or an
//! `oci:`/`oci-archive:`/`docker-archive:` reference.
//!
//! A `docker://` source with a SIF target is a pull (`cmd::pull`): layers merged straight into
//! the SIF, nothing extracted, no fakeroot needed. With `--sandbox` it becomes a one-stage
//! `Bootstrap: docker` definition, which extracts the merged tree.
//!
//! Argument parsing, fakeroot entry and progress lines only: a sandbox directory packed into a
//! SIF goes straight to `sifr_build::pack_dir`; everything else becomes a definition (a path or an
//! archive reference turns into a one-stage `localimage`/`oci*` definition, as Apptainer does)
//! built by `sifr_build::defbuild`.
//!
//! An ordinary user building from a definition becomes root in a user namespace first
//! (`sifr_launch::fakeroot`), before anything else happens, while the process is single-threaded.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use sifr_squashfs::Compression;

use crate::cmd::deffile::{check_one, parse_kv, parse_options};
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The image to create: a SIF file, or a directory with --sandbox.
    pub target: PathBuf,
    /// A definition file, a sandbox directory, a SIF/SquashFS image, `docker://REF`, or
    /// `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REF]`.
    pub source: String,
    /// Build a sandbox directory instead of a SIF.
    #[arg(short = 's', long)]
    pub sandbox: bool,
    /// SquashFS compression: gzip, zstd, xz or lz4, with an optional level (`gzip:9`,
    /// `zstd:19`). zstd needs Apptainer/SingularityCE hosts with a zstd-capable kernel or
    /// squashfuse; use gzip for the oldest runtimes.
    #[arg(long, value_name = "CODEC[:LEVEL]", default_value = "zstd:3")]
    pub compression: Compression,
    /// Overwrite the target image if it exists.
    #[arg(short = 'F', long)]
    pub force: bool,
    /// Skip the %test section.
    #[arg(short = 'T', long)]
    pub notest: bool,
    /// Value for a `{{ NAME }}` placeholder of the definition; may be repeated.
    #[arg(long = "build-arg", value_name = "NAME=VALUE", value_parser = parse_kv)]
    pub build_args: Vec<(String, String)>,
    /// File of `NAME=VALUE` lines for `{{ NAME }}` placeholders.
    #[arg(long = "build-arg-file", value_name = "FILE")]
    pub build_arg_file: Option<PathBuf>,
    /// Warn about unused build arguments instead of failing.
    #[arg(long)]
    pub warn_unused_build_args: bool,
    /// Build as root inside a user namespace (implied for an ordinary user building from a
    /// definition file).
    #[arg(short = 'f', long)]
    pub fakeroot: bool,
    /// Give the owner read/write (and search on directories) on every file of the image, so an
    /// unprivileged user can later modify or remove a sandbox.
    #[arg(long)]
    pub fix_perms: bool,
    /// Bind a host path during %post and %test: `src[:dst[:ro|rw]]`, repeatable.
    #[arg(short = 'B', long = "bind", value_name = "SPEC")]
    pub bind: Vec<String>,
    /// Store every file as owned by root (uid 0, gid 0); for directory sources.
    #[arg(long)]
    pub all_root: bool,
    /// Compression threads (0 = one per core); the image is identical for any value.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub registry: crate::cmd::pull::RegistryArgs,
    #[command(flatten)]
    pub gpu: crate::cmd::action::GpuFlags,
    /// Compile for this CPU level in %post: exports CFLAGS, CXXFLAGS, FFLAGS and RUSTFLAGS
    /// (and GOAMD64/GOARM64) for it, e.g. `x86-64-v2` so the image runs on older nodes.
    #[arg(long, value_name = "LEVEL")]
    pub target_isa: Option<sifr_isa::target::TargetIsa>,
    /// With --target-isa: `warn` (default: the isa_check setting) or fail (`error`, removing
    /// the image) when a program in the image needs more than LEVEL; `off` to not check.
    #[arg(long, value_name = "MODE", hide_possible_values = true)]
    pub isa_check: Option<crate::cmd::isa_check::IsaCheck>,
    /// Run this step and the ones after it again instead of reusing them from the build cache:
    /// bootstrap, setup, files or post (docs/build.md, "Build cache").
    #[arg(long, value_name = "STEP", value_parser = parse_checkpoint)]
    pub no_cache_from: Option<sifr_build::defbuild::Checkpoint>,
    #[command(flatten)]
    pub extra: crate::cmd::build_flags::BuildExtraArgs,
}

fn parse_checkpoint(text: &str) -> Result<sifr_build::defbuild::Checkpoint, String> {
    sifr_build::defbuild::Checkpoint::parse(text).ok_or_else(|| {
        format!("`{text}` is not a cached build step; use bootstrap, setup, files or post")
    })
}

/// What SOURCE names.
enum Source {
    /// A registry image written straight into a SIF (no extraction, no fakeroot).
    Image(sifr_oci::ImageSource),
    /// A directory packed straight into a SIF.
    Directory(PathBuf),
    /// A definition file's path, or a synthesized definition.
    Definition { text: String, file: PathBuf },
}

fn classify(source: &str, sandbox: bool, json: bool) -> anyhow::Result<Source> {
    if json {
        let text = std::fs::read_to_string(source)
            .with_context(|| format!("cannot read JSON definition `{source}`"))?;
        let text = crate::cmd::build_json::to_definition_text(&text)
            .with_context(|| format!("cannot read `{source}` as a JSON definition (--json)"))?;
        return Ok(Source::Definition {
            text,
            file: PathBuf::from(source),
        });
    }
    for (prefix, agent) in [
        ("oci-archive:", "oci-archive"),
        ("docker-archive:", "docker-archive"),
        ("oci:", "oci"),
    ] {
        if let Some(rest) = source.strip_prefix(prefix) {
            return Ok(Source::Definition {
                text: format!("Bootstrap: {agent}\nFrom: {rest}\n"),
                file: PathBuf::from(source),
            });
        }
    }
    if let Some(rest) = source.strip_prefix("docker://") {
        if sandbox {
            // A sandbox is a directory: the definition path extracts the merged tree.
            return Ok(Source::Definition {
                text: format!("Bootstrap: docker\nFrom: {rest}\n"),
                file: PathBuf::from(source),
            });
        }
        let image = sifr_oci::ImageSource::parse(source)
            .with_context(|| format!("invalid image source `{source}`"))?;
        return Ok(Source::Image(image));
    }
    if source.contains("://") {
        anyhow::bail!(
            "`{source}`: only `docker://` registry sources are supported; \
             use `oci:`, `oci-archive:` or `docker-archive:` for local images"
        );
    }
    let path = PathBuf::from(source);
    let md = std::fs::metadata(&path).with_context(|| format!("cannot read `{source}`"))?;
    if md.is_dir() && !sandbox {
        return Ok(Source::Directory(path));
    }
    if md.is_dir() || is_image_file(&path) {
        return Ok(Source::Definition {
            text: format!(
                "Bootstrap: localimage\nFrom: {}\n",
                absolute(&path)?.display()
            ),
            file: path,
        });
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read definition file `{source}`"))?;
    Ok(Source::Definition { text, file: path })
}

/// A SIF (magic at byte 32) or bare SquashFS (magic at byte 0) file.
fn is_image_file(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 48];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    (n >= 42 && &head[32..41] == b"SIF_MAGIC") || (n >= 4 && &head[..4] == b"hsqs")
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

pub fn run(mut args: BuildArgs, settings: &Settings) -> anyhow::Result<u8> {
    use crate::cmd::build_flags as flags;
    crate::cmd::pull_build_env::apply_process(&mut args, crate::cmd::pull_build_env::BUILD_TWINS)?;
    let loud = !settings.quiet && !settings.silent;
    if args.extra.remote {
        anyhow::bail!(flags::REMOTE_ERROR);
    }
    if args.extra.update {
        flags::check_update(&args.target, args.sandbox)?;
    }
    let (uid, _) = sys_ids();
    let env = |k: &str| std::env::var(k).ok();
    if let Some(w) = flags::check_encryption(&args.extra, &env, uid != 0)?
        && !settings.silent
    {
        eprintln!("WARNING: {w}");
    }
    for w in flags::check_sections(&args.extra.section)? {
        if !settings.silent {
            eprintln!("WARNING: {w}");
        }
    }
    if args.extra.data {
        flags::build_data(&args.target, &args.source, args.force)?;
        if loud {
            eprintln!("INFO:    Build complete: {}", args.target.display());
        }
        return Ok(crate::exit::OK);
    }
    if let Some(text) = args.extra.mksquashfs_args.clone() {
        let sq = flags::squashfs_args(&text)?;
        if let Some(c) = sq.compression {
            args.compression = c;
        }
        if let Some(t) = sq.threads {
            args.threads = t;
        }
        args.all_root |= sq.all_root;
        if !sq.ignored.is_empty() && !settings.silent {
            eprintln!(
                "WARNING: --mksquashfs-args: sifr writes SquashFS itself and ignores: {}",
                sq.ignored.join(" ")
            );
        }
    }
    match classify(&args.source, args.sandbox, args.extra.json)? {
        Source::Directory(dir) => pack_directory(&args, &dir, settings),
        Source::Image(image) => {
            let pack = sifr_build::PackOptions {
                compression: args.compression,
                force: args.force,
                threads: args.threads,
                ..sifr_build::PackOptions::default()
            };
            crate::cmd::pull::pull_to_sif(
                &image,
                &args.source,
                &args.target,
                &pack,
                &args.registry,
                settings,
            )
        }
        Source::Definition { text, file } => {
            if uid != 0 && args.extra.ignore_userns {
                // Apptainer's answer when neither user namespaces, setuid nor the fakeroot
                // command can give an unprivileged build root; sifr has only the first.
                anyhow::bail!(
                    "Building from a definition file unprivileged requires either a suid installation or unprivileged user namespaces"
                );
            }
            if uid != 0 || args.fakeroot {
                let user = sifr_launch::host::gather(Vec::new())
                    .ok()
                    .and_then(|h| h.user.map(|u| u.name));
                let path = std::env::var("PATH").unwrap_or_default();
                let mode = sifr_launch::fakeroot::enter(user.as_deref(), &path)?;
                if loud {
                    eprintln!("INFO:    {}", mode.describe());
                }
                let salt = mode.describe();
                let only_root = match &mode {
                    sifr_launch::fakeroot::Mode::RootOnly { reason } => Some(reason.as_str()),
                    sifr_launch::fakeroot::Mode::Subids { .. } => None,
                };
                let how = How {
                    post_failure_hint: mode.explain_failure(),
                    mode: &salt,
                    only_root,
                };
                build_definition(&args, &text, &file, settings, how)
            } else {
                let how = How {
                    post_failure_hint: None,
                    mode: "root",
                    only_root: None,
                };
                build_definition(&args, &text, &file, settings, how)
            }
        }
    }
}

fn sys_ids() -> (u32, u32) {
    let h = sifr_launch::host::gather(Vec::new());
    h.map(|h| (h.uid, h.gid)).unwrap_or((u32::MAX, u32::MAX))
}

/// How a definition build runs: as root, or faked (and then whether only root is mapped).
struct How<'a> {
    /// Added to a failing `%post` (the fakeroot mode's explanation).
    post_failure_hint: Option<String>,
    /// The fakeroot mode's description, part of the build cache's key.
    mode: &'a str,
    /// Why only root is mapped in the build's user namespace, if so.
    only_root: Option<&'a str>,
}

fn build_definition(
    args: &BuildArgs,
    text: &str,
    file: &Path,
    settings: &Settings,
    how: How<'_>,
) -> anyhow::Result<u8> {
    let How {
        post_failure_hint,
        mode,
        only_root,
    } = how;
    let loud = !settings.quiet && !settings.silent;
    let opts = parse_options(
        &args.build_args,
        args.build_arg_file.as_deref(),
        args.warn_unused_build_args,
    )?;
    let mut def = if file.is_file() && !is_image_file(file) && !args.extra.json {
        check_one(file, &opts)?
    } else {
        sifr_deffile::parse(text, &opts).map_err(|e| anyhow::anyhow!("{e}"))?
    };
    crate::cmd::build_flags::keep_sections(&mut def, &args.extra.section);
    if loud {
        for w in &def.warnings {
            eprintln!("WARNING: {}:{}: {}", file.display(), w.line, w.message);
        }
    }
    // What is certain to fail is said before minutes of bootstrapping. `--update` does not
    // bootstrap, so only its `%files` sources are checked.
    let update = args.extra.update && !args.force;
    let mut errors: Vec<anyhow::Error> = crate::cmd::deffile::preflight(
        file,
        &def,
        only_root,
        (!update).then_some(&args.registry),
        true,
        settings,
    )
    .into_iter()
    .filter(|(kind, _)| !update || *kind == sifr_build::defbuild::preflight::Kind::Files)
    .map(|(_, e)| e)
    .collect();
    match errors.len() {
        0 => {}
        1 => return Err(errors.remove(0)),
        n => {
            if !settings.silent {
                for e in &errors {
                    eprintln!(
                        "{}",
                        crate::report::render(e, crate::report::render_colour(settings))
                    );
                }
            }
            return Err(crate::report::AlreadyReported {
                summary: format!("{n} problems in `{}`; nothing was built", file.display()),
                code: crate::exit::FAILURE,
            }
            .into());
        }
    }
    let uses_registry = def.stages.iter().any(|s| {
        matches!(
            s.header.bootstrap.as_ref().map(|b| b.value),
            Some(sifr_deffile::Bootstrap::Docker)
        )
    });
    let (registry, _cache_guard) = if uses_registry {
        let (access, guard) = crate::cmd::pull::registry_access(settings, &args.registry)?;
        (Some(std::sync::Arc::new(access)), guard)
    } else {
        (None, None)
    };
    let mut binds = Vec::new();
    for spec in &args.bind {
        binds.extend(
            sifr_launch::bind::parse_list(spec)
                .map_err(|e| anyhow::anyhow!("invalid --bind: {e}"))?,
        );
    }
    for spec in &args.extra.mount {
        binds.push(
            sifr_launch::bind::parse_mount(spec)
                .map_err(|e| anyhow::anyhow!("invalid --mount `{spec}`: {e}"))?,
        );
    }
    let tmpdir = crate::cmd::pull::temp_root(settings, &args.registry)?;
    let source_date = crate::cmd::pull::source_date(args.registry.reproducible)?;
    // The labels' date until a base image's creation time (`--reproducible`) replaces it.
    let time = source_date
        .epoch(None)
        .unwrap_or_else(crate::cmd::pull::now);
    let host_env: Vec<(String, String)> = std::env::vars().collect();
    // `%post` sees the host's full /dev, so no GPU node needs binding.
    let gpu = args
        .gpu
        .discover(settings, &host_env, sifr_launch::gpu::DevView::Host)?;
    let packing = crate::progress::Line::new("packing", settings);
    let dopts = sifr_build::defbuild::DefBuildOptions {
        target: absolute(&args.target)?,
        sandbox: args.sandbox,
        force: args.force,
        notest: args.notest,
        compression: args.compression,
        threads: args.threads,
        tmpdir,
        context: std::env::current_dir().context("cannot read the current directory")?,
        binds,
        gpu,
        host_env,
        time: sifr_build::layout::BuildTime::utc(time),
        post_env: args
            .target_isa
            .map(|t| {
                sifr_isa::target::compiler_flags(t)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            // Tools in %post that honour it (Python's bytecode compiler, gzip, dpkg, pip's
            // wheels) then write the same bytes in every build.
            .chain(
                source_date
                    .epoch(None)
                    .map(|t| ("SOURCE_DATE_EPOCH".to_string(), t.to_string())),
            )
            .collect(),
        fix_perms: args.fix_perms,
        post_failure_hint,
        registry,
        // Apptainer: `--update --force` rebuilds from scratch.
        update: args.extra.update && !args.force,
        no_cleanup: args.registry.no_cleanup,
        writable_tmpfs: args.extra.writable_tmpfs,
        cache: build_cache(args, settings, mode)?,
        source_date,
        progress: packing.as_ref().map(crate::progress::packing),
        step_progress: crate::progress::Line::new("bootstrap", settings)
            .map(|l| crate::progress::step(&l)),
    };
    let started = std::time::Instant::now();
    if loud {
        eprintln!("INFO:    Starting build of `{}`", args.target.display());
    }
    let mut log = |m: &str| {
        if loud {
            eprintln!("INFO:    {m}");
        }
    };
    let mut out = |b: &[u8]| {
        if !settings.silent {
            let _ = std::io::stderr().write_all(b);
        }
    };
    sifr_launch::buildrun::catch_interrupts()
        .context("cannot install the build's signal handlers")?;
    // Apptainer builds under umask 0002 whatever the caller's (its build.go), so the modes of
    // what %setup and %post create do not depend on who builds, and a reproducible image
    // stays reproducible across users.
    sifr_sys::process::set_umask(0o002);
    let result = sifr_build::defbuild::build_definition(&def, &dopts, &mut log, &mut out);
    if let Some(p) = &packing {
        p.finish();
    }
    if let Some(sig) = sifr_launch::buildrun::interrupted() {
        // Whatever step was running failed because of the signal; say so instead.
        return Err(crate::report::AlreadyReported {
            summary: format!(
                "build of `{}` interrupted by signal {sig}; its work directory was removed and no image was written",
                args.target.display()
            ),
            code: (128 + sig).clamp(0, 255) as u8,
        }
        .into());
    }
    // The definition file is named with the target: a section's `line N` in the causes below
    // means nothing without it.
    let report = result.with_context(|| {
        format!(
            "cannot build `{}` from `{}`",
            args.target.display(),
            file.display()
        )
    })?;
    if loud {
        match &report.pack {
            Some(p) => eprintln!(
                "INFO:    Build complete: {} ({} stage{}, {}, {:.1} MiB, {:.1} s)",
                args.target.display(),
                report.stages,
                if report.stages == 1 { "" } else { "s" },
                report.arch,
                p.sif_size as f64 / 1048576.0,
                started.elapsed().as_secs_f64()
            ),
            None => eprintln!(
                "INFO:    Build complete: sandbox {} ({:.1} s)",
                args.target.display(),
                started.elapsed().as_secs_f64()
            ),
        }
    }
    if report.pack.is_some() {
        super::build_isa::after_build(&args.target, args.target_isa, args.isa_check, settings)?;
    }
    Ok(crate::exit::OK)
}

/// The build cache, unless `--disable-cache` or a size of 0 turns it off.
fn build_cache(
    args: &BuildArgs,
    settings: &Settings,
    mode: &str,
) -> anyhow::Result<Option<sifr_build::defbuild::CacheOptions>> {
    if args.registry.disable_cache || settings.build_cache_mib == 0 {
        return Ok(None);
    }
    Ok(Some(sifr_build::defbuild::CacheOptions {
        root: crate::cmd::pull::cache_dir(settings)?,
        max_bytes: settings.build_cache_mib.saturating_mul(1 << 20),
        no_cache_from: args.no_cache_from,
        salt: mode.to_string(),
    }))
}

fn pack_directory(args: &BuildArgs, dir: &Path, settings: &Settings) -> anyhow::Result<u8> {
    // A directory has no creation date of its own: `--reproducible` needs SOURCE_DATE_EPOCH.
    let source_date = crate::cmd::pull::source_date(args.registry.reproducible)?;
    let source_date_epoch = source_date.epoch(None);
    if source_date.requested() && source_date_epoch.is_none() && !settings.silent {
        eprintln!(
            "WARNING: --reproducible: a directory records no creation date and SOURCE_DATE_EPOCH is not set; the image is dated now and is not reproducible"
        );
    }
    let packing = crate::progress::Line::new("packing", settings);
    let opts = sifr_build::PackOptions {
        compression: args.compression,
        all_root: args.all_root,
        force: args.force,
        threads: args.threads,
        arch: None,
        metadata_json: Vec::new(),
        source_date_epoch,
        progress: packing.as_ref().map(crate::progress::packing),
    };
    let started = std::time::Instant::now();
    if !settings.quiet && !settings.silent {
        eprintln!(
            "INFO:    Packing `{}` into `{}`",
            dir.display(),
            args.target.display()
        );
    }
    let report = sifr_build::pack_dir(dir, &args.target, &opts);
    if let Some(p) = &packing {
        p.finish();
    }
    let report = report.with_context(|| {
        format!(
            "cannot build `{}` from `{}`",
            args.target.display(),
            dir.display()
        )
    })?;
    if let sifr_build::ArchSource::Host = report.arch.source
        && !settings.quiet
        && !settings.silent
    {
        eprintln!(
            "INFO:    no ELF executable in `{}`; architecture set to the host's ({})",
            dir.display(),
            report.arch.arch.go_name()
        );
    }
    if !settings.quiet && !settings.silent {
        let s = &report.squashfs;
        eprintln!(
            "INFO:    Build complete: {} ({} inodes, {:.1} MiB from {:.1} MiB, {}, {} duplicate files, {:.1} s)",
            args.target.display(),
            s.inodes,
            report.sif_size as f64 / 1048576.0,
            s.data.bytes_in as f64 / 1048576.0,
            args.compression,
            s.data.duplicate_files,
            started.elapsed().as_secs_f64()
        );
    }
    super::build_isa::after_build(&args.target, args.target_isa, args.isa_check, settings)?;
    Ok(crate::exit::OK)
}
