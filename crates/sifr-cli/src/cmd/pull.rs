//! `sifr pull [IMAGE.sif] SOURCE`: a registry image (or an `oci:`/`oci-archive:`/
//! `docker-archive:` one) to a SIF, as `apptainer pull` does, and the registry setup that
//! `sifr build` and `push` share: client options from the flags, credentials, the blob cache.
//! An `oras://` source is a SIF file already, fetched whole by `oras`.
//!
//! The layers go through the blob cache (downloaded in parallel, once across concurrent
//! processes) and are merged straight into the SIF's SquashFS partition by `sifr_build::pull`:
//! no temporary extraction and no temporary SquashFS file. Progress lines go to stderr.
//!
//! Apptainer's naming rules are kept: `--name` beats the IMAGE argument, the default is
//! `NAME_TAG.sif` (its `uri.GetName`), and `--dir` goes in front. `--sandbox` writes the SIF in
//! the temporary directory and extracts it, as Apptainer does; `--disable-cache` sends the
//! blobs to a private directory removed afterwards. The flags' environment twins are applied
//! by `pull_build_env` before anything else.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use clap::Args;
use sifr_oci::client::{Client, ClientOptions, CredentialStore, Credentials, PullEvent};
use sifr_oci::{ImageSource, manifest::Platform};
use sifr_squashfs::Compression;

use crate::settings::Settings;

/// Flags shared by every command that talks to a registry (`pull` and `build`).
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// Pick this architecture from multi-platform images (amd64, arm64, arm, 386, ppc64le,
    /// s390x, riscv64, loong64); default: the host's.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// The architecture variant to pick (`8` or `v8` for arm64; 5, 6 or 7 for arm).
    #[arg(long, value_name = "VARIANT")]
    pub arch_variant: Option<String>,
    /// Talk plain HTTP to the registry (local test registries only).
    #[arg(long = "no-https", alias = "nohttps")]
    pub nohttps: bool,
    /// Ask for the registry username and password interactively.
    #[arg(long)]
    pub docker_login: bool,
    /// The registry username (also DOCKER_USERNAME).
    #[arg(long, hide = true, value_name = "USER")]
    pub docker_username: Option<String>,
    /// The registry password (also DOCKER_PASSWORD).
    #[arg(long, hide = true, value_name = "PASSWORD")]
    pub docker_password: Option<String>,
    /// The Docker daemon for `docker-daemon:` sources (which sifr does not read).
    #[arg(long, value_name = "HOST")]
    pub docker_host: Option<String>,
    /// Use no cache: blobs go to a temporary directory removed afterwards.
    #[arg(long)]
    pub disable_cache: bool,
    /// Temporary directory for the build or pull (default: the `tmpdir` setting, $TMPDIR, /tmp).
    #[arg(long, hide = true, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
    /// The library for `library://` sources that name no host (`https://HOST` or `HOST`).
    #[arg(long, value_name = "URL")]
    pub library: Option<String>,
    /// Keep the temporary files of a failed build or pull, for debugging.
    #[arg(long)]
    pub no_cleanup: bool,
    /// Date the image's files and metadata with the source image's creation time.
    #[arg(long)]
    pub reproducible: bool,
    #[command(flatten)]
    pub auth: crate::cmd::registry::AuthFileArg,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// `[IMAGE.sif] SOURCE`: the SIF to write (default: NAME_TAG.sif in the current
    /// directory) and `docker://[host[:port]/]name[:tag|@digest]`, `oci:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REF]`, `oras://host/name[:tag]` (a
    /// SIF file stored as an ORAS artifact), `library://[host/]entity/collection/image[:tag]`
    /// or `https://host/file.sif`.
    #[arg(value_name = "[IMAGE.sif] SOURCE", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    /// Overwrite the image file if it exists.
    #[arg(short = 'F', long)]
    pub force: bool,
    /// SquashFS compression: gzip, zstd, xz or lz4, with an optional level (`gzip:9`). The
    /// default is `sifr build`'s, zstd:3 (about 4x faster to write than gzip at the same
    /// size); use gzip for the oldest runtimes (kernels before 4.14, squashfuse without zstd).
    #[arg(long, value_name = "CODEC[:LEVEL]", default_value = "zstd:3")]
    pub compression: Compression,
    /// The file (or with --sandbox the directory) to write; beats the IMAGE argument.
    #[arg(long, hide = true, value_name = "NAME")]
    pub name: Option<String>,
    /// Write the image into this directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Write a sandbox directory instead of a SIF file.
    #[arg(long)]
    pub sandbox: bool,
    /// Deprecated: only silences the warning about an unsigned image.
    #[arg(short = 'U', long)]
    pub allow_unsigned: bool,
    /// Only silences the warning about an unsigned image.
    #[arg(long, hide = true)]
    pub allow_unauthenticated: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// The file name Apptainer gives a pull with neither IMAGE nor `--name` (its `uri.GetName`):
/// the reference's last path component and its tag, `latest` by default, as `NAME_TAG.sif`
/// (`docker://alpine` -> `alpine_latest.sif`, `oci-archive:/x/app.tar:v1` -> `app.tar_v1.sif`);
/// an `http(s)://` URL keeps its file name. A bare reference (no transport, which sifr takes as
/// `docker://`) is named as one.
pub fn default_name(source: &str) -> String {
    let (transport, reference) = match source.split_once(':') {
        Some((t, r)) if r.starts_with("//") || TRANSPORTS.contains(&t) => (t, r),
        _ => ("docker", source),
    };
    let reference = reference.trim_start_matches('/');
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if transport == "http" || transport == "https" {
        return last.to_string();
    }
    let mut parts = last.split(':');
    let name = parts.next().unwrap_or_default();
    let tag = match parts.next() {
        Some(t) => t.split(',').next().unwrap_or_default(),
        None => "latest",
    };
    format!("{name}_{tag}.sif")
}

/// The transports Apptainer recognises without `//` (its `uri.validURIs`).
pub(crate) const TRANSPORTS: &[&str] = &[
    "library",
    "shub",
    "docker",
    "docker-archive",
    "docker-daemon",
    "oci",
    "oci-archive",
    "http",
    "https",
    "oras",
    "buildkit",
    "dockerfile",
    "ipfs",
];

/// Where a pull writes: `--name` beats the IMAGE argument, which beats the default name; `--dir`
/// goes in front of any of them (even an absolute one, as Go's `filepath.Join` does).
pub fn pull_target(
    image: Option<&str>,
    source: &str,
    name: Option<&str>,
    dir: Option<&Path>,
) -> PathBuf {
    let file = name
        .filter(|n| !n.is_empty())
        .or(image)
        .map(str::to_string)
        .unwrap_or_else(|| default_name(source));
    match dir {
        Some(d) if !d.as_os_str().is_empty() => d.join(file.trim_start_matches('/')),
        _ => PathBuf::from(file),
    }
}

/// Transports Apptainer pulls from that sifr does not, with what to use instead.
const UNSUPPORTED_TRANSPORTS: &[(&str, &str)] = &[
    (
        "shub",
        "Singularity Hub is read-only and gone; use docker:// or a SIF file",
    ),
    ("ipfs", "download the SIF file with an IPFS client"),
    (
        "docker-daemon",
        "export the image with `docker save -o img.tar IMAGE` and pull docker-archive:img.tar",
    ),
];

/// Refuse the transports sifr cannot pull from, naming them as Apptainer names them.
pub fn check_transport(source: &str) -> anyhow::Result<()> {
    let Some((transport, rest)) = source.split_once(':') else {
        return Ok(());
    };
    if rest.is_empty() {
        anyhow::bail!("Bad URI {source}");
    }
    if let Some((_, hint)) = UNSUPPORTED_TRANSPORTS.iter().find(|(t, _)| *t == transport) {
        return Err(crate::report::Hinted::new(
            format!("unsupported transport type: {transport} (`{source}`)"),
            *hint,
        )
        .into());
    }
    Ok(())
}

/// The temporary directory for a pull or build: `--tmpdir`, else the `tmpdir` setting
/// (`APPTAINER_TMPDIR`), else `$TMPDIR`, else `/tmp`; made absolute.
pub fn temp_root(settings: &Settings, args: &RegistryArgs) -> anyhow::Result<PathBuf> {
    let dir = args
        .tmpdir
        .clone()
        .or_else(|| settings.tmpdir.clone())
        .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    Ok(if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()?.join(dir)
    })
}

/// A private temporary directory, removed when dropped unless `keep` is set (`--no-cleanup`
/// after a failure).
pub struct TempDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl TempDir {
    pub fn new(parent: &Path, prefix: &str) -> anyhow::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
        let pid = std::process::id();
        for n in 0..1000u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = parent.join(format!(
                "{prefix}{pid}-{:08x}",
                nanos ^ n.wrapping_mul(0x9e37_79b9)
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempDir { path, keep: false }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create `{}`", path.display()));
                }
            }
        }
        anyhow::bail!(
            "cannot create a temporary directory in `{}`",
            parent.display()
        )
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The cache directory: `cachedir` from settings, else Apptainer's environment and default.
pub fn cache_dir(settings: &Settings) -> anyhow::Result<PathBuf> {
    settings
        .cachedir
        .clone()
        .or_else(|| sifr_oci::cache::default_dir(|k| std::env::var(k).ok()))
        .context("no cache directory: set APPTAINER_CACHEDIR or HOME")
}

/// The platform `--arch`/`--arch-variant` ask for (Apptainer's names checked as it checks
/// them), the host's by default.
pub fn platform(args: &RegistryArgs) -> anyhow::Result<Platform> {
    let arch = args
        .arch
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(crate::cmd::pull_build_env::host_arch);
    let name = crate::cmd::pull_build_env::convert_arch(
        &arch,
        args.arch_variant.as_deref().unwrap_or_default(),
    )
    .map_err(|e| anyhow::Error::new(e).context("invalid --arch/--arch-variant"))?;
    Ok(Platform::linux(&name))
}

/// The client and cache for registry sources, from the flags, settings and environment. With
/// `--disable-cache` the blobs go to a temporary directory under `temp`, which the returned
/// guard removes.
pub fn registry_access(
    settings: &Settings,
    args: &RegistryArgs,
) -> anyhow::Result<(sifr_build::pull::RegistryAccess, Option<TempDir>)> {
    registry_access_with(settings, args, |_| {})
}

/// [`registry_access`], with `tweak` applied to the client's options (an image-URI launch's
/// check of a tag leaves the CA bundle unread over plain HTTP and retries less).
pub fn registry_access_with(
    settings: &Settings,
    args: &RegistryArgs,
    tweak: impl FnOnce(&mut ClientOptions),
) -> anyhow::Result<(sifr_build::pull::RegistryAccess, Option<TempDir>)> {
    let env = |k: &str| std::env::var(k).ok();
    let files = crate::cmd::registry::pull_files(settings, &args.auth)?;
    let mut creds =
        CredentialStore::load(env, &files).context("cannot load registry credentials")?;
    let mut username = args.docker_username.clone().filter(|u| !u.is_empty());
    let mut password = args.docker_password.clone().filter(|p| !p.is_empty());
    if args.docker_login {
        // Apptainer asks for the username only when none was given.
        if username.is_none() {
            username = Some(crate::prompt::ask(
                "Enter Docker Username",
                crate::prompt::Echo::Shown,
            )?);
        }
        password = Some(crate::prompt::ask(
            "Enter Docker Password",
            crate::prompt::Echo::Hidden,
        )?);
    }
    if username.is_some() || password.is_some() {
        creds = creds.with_override(Credentials {
            username: username.unwrap_or_default(),
            password: password.unwrap_or_default(),
        });
    }
    let mut opts = ClientOptions {
        platform: platform(args)?,
        plain_http: args.nohttps,
        ..ClientOptions::default()
    };
    tweak(&mut opts);
    let client = Client::new(opts, creds, env).context("cannot set up the registry client")?;
    let (dir, guard) = if args.disable_cache {
        let t = TempDir::new(&temp_root(settings, args)?, "sifr-nocache-")?;
        (t.path.clone(), Some(t))
    } else {
        (cache_dir(settings)?, None)
    };
    Ok((
        sifr_build::pull::RegistryAccess {
            client,
            cache: sifr_oci::cache::BlobCache::new(dir),
        },
        guard,
    ))
}

/// `SOURCE_DATE_EPOCH` and `--reproducible` as a build or a pull reads them (a value that is
/// not whole seconds is an error, as in Apptainer).
pub fn source_date(reproducible: bool) -> anyhow::Result<sifr_build::SourceDate> {
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    Ok(sifr_build::SourceDate::from_env(
        epoch.as_deref(),
        reproducible,
    )?)
}

/// Now, in seconds since the epoch: the time of an image that is not reproducible.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn run(mut args: PullArgs, settings: &Settings) -> anyhow::Result<u8> {
    crate::cmd::pull_build_env::apply_process(&mut args, crate::cmd::pull_build_env::PULL_TWINS)?;
    if args.allow_unsigned && !settings.silent {
        // cobra's notice for a deprecated flag, worded as Apptainer's.
        eprintln!(
            "Flag --allow-unsigned has been deprecated, pull no longer exits with an error code in case of unsigned image. Now the flag only suppress warning message."
        );
    }
    let (image, source_text) = match args.args.as_slice() {
        [source] => (None, source.clone()),
        [image, source] => (Some(image.as_str()), source.clone()),
        _ => unreachable!("clap takes one or two values"),
    };
    check_transport(&source_text)?;
    if crate::cmd::image_uri::transport(&source_text) == Some("library") {
        return crate::cmd::library::pull(&args, image, &source_text, settings);
    }
    if source_text
        .split_once(':')
        .is_some_and(|(t, _)| t == "oras")
    {
        return crate::cmd::oras::pull(&args, image, &source_text, settings);
    }
    if matches!(
        crate::cmd::image_uri::transport(&source_text),
        Some("http" | "https")
    ) {
        let target = pull_target(
            image,
            &source_text,
            args.name.as_deref(),
            args.dir.as_deref(),
        );
        return pull_net(&args, &target, &source_text, settings);
    }
    let source = ImageSource::parse(&source_text)
        .with_context(|| format!("invalid image source `{source_text}`"))?;
    let target = pull_target(
        image,
        &source_text,
        args.name.as_deref(),
        args.dir.as_deref(),
    );
    let pack = sifr_build::PackOptions {
        compression: args.compression,
        force: args.force,
        ..sifr_build::PackOptions::default()
    };
    if args.sandbox {
        return pull_to_sandbox(
            &source,
            &source_text,
            &target,
            &pack,
            &args.registry,
            settings,
        );
    }
    pull_to_sif(
        &source,
        &source_text,
        &target,
        &pack,
        &args.registry,
        settings,
    )
}

/// `pull IMAGE https://...`: the file the URL serves, checked to be an image.
fn pull_net(args: &PullArgs, target: &Path, url: &str, settings: &Settings) -> anyhow::Result<u8> {
    download_to_target(args, target, url, "network", settings, |tmp| {
        let env = |k: &str| std::env::var(k).ok();
        let client = sifr_oci::net::NetClient::new(
            &[],
            concat!("sifr/", env!("CARGO_PKG_VERSION")),
            true,
            env,
        )
        .context("cannot set up the HTTP client")?;
        client
            .download(url, tmp)
            .with_context(|| format!("cannot download `{url}`"))?;
        Ok(())
    })
}

/// A pull of a whole image file (`https://`, `library://`): refused before anything is
/// fetched when `target` exists without `--force`; `fetch` writes the file into a temporary
/// directory beside `target`, which must then be an image sifr can run; it is renamed into
/// place (or, with `--sandbox`, extracted there), so a failure leaves nothing at `target`.
/// `kind` names the source in the progress line, as Apptainer does (`network`, `library`).
pub(crate) fn download_to_target(
    args: &PullArgs,
    target: &Path,
    source: &str,
    kind: &str,
    settings: &Settings,
    fetch: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<u8> {
    let loud = !settings.quiet && !settings.silent;
    refuse_existing(
        target,
        &sifr_build::PackOptions {
            force: args.force,
            ..sifr_build::PackOptions::default()
        },
    )?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let work = TempDir::new(&parent, ".sifr-pull-")?;
    let tmp = work.path.join("image.sif");
    if loud {
        eprintln!("INFO:    Downloading {kind} image `{source}`");
    }
    fetch(&tmp)?;
    crate::cmd::image_uri::check_image(&tmp, source)?;
    if args.sandbox {
        extract_sandbox(&tmp, target, args.force)?;
    } else {
        std::fs::rename(&tmp, target)
            .with_context(|| format!("cannot create `{}`", target.display()))?;
    }
    if loud {
        eprintln!("INFO:    Download complete: {}", target.display());
    }
    Ok(crate::exit::OK)
}

/// An existing `target` is refused unless `--force`, before anything is downloaded.
fn refuse_existing(target: &Path, pack: &sifr_build::PackOptions) -> anyhow::Result<()> {
    if !pack.force && target.exists() {
        return Err(crate::report::Hinted::new(
            format!("image file `{}` already exists", target.display()),
            "use --force to overwrite it",
        )
        .into());
    }
    Ok(())
}

/// `pull --sandbox`: the image is written to a SIF in the temporary directory, as Apptainer
/// does, then extracted into `target` (as the calling user: no fakeroot needed).
pub fn pull_to_sandbox(
    source: &ImageSource,
    source_text: &str,
    target: &Path,
    pack: &sifr_build::PackOptions,
    registry: &RegistryArgs,
    settings: &Settings,
) -> anyhow::Result<u8> {
    let loud = !settings.quiet && !settings.silent;
    refuse_existing(target, pack)?;
    let mut work = TempDir::new(&temp_root(settings, registry)?, "sifr-pull-")?;
    let sif = work.path.join("image.sif");
    let mut sif_pack = pack.clone();
    sif_pack.force = true;
    let quiet = Settings {
        quiet: true,
        ..settings.clone()
    };
    let result = pull_to_sif(
        source,
        source_text,
        &sif,
        &sif_pack,
        registry,
        if loud { settings } else { &quiet },
    )
    .and_then(|_| extract_sandbox(&sif, target, pack.force));
    if result.is_err() && registry.no_cleanup {
        work.keep = true;
        if !settings.silent {
            eprintln!(
                "INFO:    Pull performed with no clean up option, files left in {}",
                work.path.display()
            );
        }
    }
    result?;
    if loud {
        eprintln!("INFO:    Sandbox written: {}", target.display());
    }
    Ok(crate::exit::OK)
}

/// Extract the SIF `sif`'s root file system into the new directory `target` (replacing an
/// existing one when `force`), through a sibling staging directory so that a failure leaves
/// nothing half-written at `target`.
pub fn extract_sandbox(sif: &Path, target: &Path, force: bool) -> anyhow::Result<u8> {
    let image = sifr_launch::image::open(sif)
        .with_context(|| format!("cannot open `{}`", sif.display()))?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = TempDir::new(&parent, ".sifr-sandbox-")?;
    let root = staging.path.join("rootfs");
    let file = std::fs::File::open(&image.path)
        .with_context(|| format!("cannot open `{}`", image.path.display()))?;
    let archive = sifr_squashfs::read::Archive::open(file, image.offset)
        .with_context(|| format!("cannot read `{}`", sif.display()))?;
    archive
        .extract_to(&root, &sifr_squashfs::read::ExtractOptions::default())
        .with_context(|| format!("cannot extract the image into `{}`", target.display()))?;
    if force && std::fs::symlink_metadata(target).is_ok() {
        if target.is_dir() {
            sifr_build::defbuild::remove_tree(target);
        } else {
            std::fs::remove_file(target)
                .with_context(|| format!("cannot replace `{}`", target.display()))?;
        }
    }
    std::fs::rename(&root, target)
        .with_context(|| format!("cannot create `{}`", target.display()))?;
    Ok(crate::exit::OK)
}

/// Fetch `source` and write it to the SIF `target`, with progress on stderr. Shared with
/// `sifr build TARGET docker://...`.
pub fn pull_to_sif(
    source: &ImageSource,
    source_text: &str,
    target: &Path,
    pack: &sifr_build::PackOptions,
    registry: &RegistryArgs,
    settings: &Settings,
) -> anyhow::Result<u8> {
    let loud = !settings.quiet && !settings.silent;
    refuse_existing(target, pack)?;
    let source_date = source_date(registry.reproducible)?;
    let (access, _cache_guard) = match source {
        ImageSource::Registry(_) => {
            let (a, g) = registry_access(settings, registry)?;
            (Some(a), g)
        }
        _ => (None, None),
    };
    let platform = match &access {
        Some(a) => a.client.options().platform.clone(),
        None => platform(registry)?,
    };
    let started = std::time::Instant::now();
    if loud {
        eprintln!("INFO:    Fetching image `{source_text}`");
    }
    // Events come from the download threads; one lock keeps lines whole.
    let out = Mutex::new(());
    let downloads: std::sync::OnceLock<Option<crate::progress::Layers>> = Default::default();
    let progress = |e: PullEvent<'_>| {
        if !loud {
            return;
        }
        if let PullEvent::Bytes {
            index,
            digest,
            done,
            size,
        } = e
        {
            if let Some(Some(d)) = downloads.get() {
                d.bytes(index, &digest.to_string(), done, size);
            }
            return;
        }
        let _g = out.lock();
        if let Some(Some(d)) = downloads.get() {
            d.clear();
        }
        match e {
            PullEvent::Bytes { .. } => {}
            PullEvent::Resolved {
                manifest,
                layers,
                bytes,
            } => {
                downloads.get_or_init(|| crate::progress::Layers::new(layers, settings));
                eprintln!(
                    "INFO:    {manifest}: {layers} layer{}, {:.1} MiB",
                    if layers == 1 { "" } else { "s" },
                    bytes as f64 / 1048576.0
                )
            }
            PullEvent::Layer {
                index,
                count,
                digest,
                size,
                cached,
            } => eprintln!(
                "INFO:    layer {}/{count} {} {:.1} MiB {}",
                index + 1,
                &digest.to_string()[..19.min(digest.to_string().len())],
                size as f64 / 1048576.0,
                if cached { "in cache" } else { "downloaded" }
            ),
        }
    };
    let image = sifr_build::pull::fetch(source, source_text, access.as_ref(), &platform, &progress);
    if let Some(Some(d)) = downloads.get() {
        d.finish();
    }
    let image = image?;
    let fetched = started.elapsed();
    if loud {
        eprintln!("INFO:    Creating SIF file `{}`", target.display());
    }
    // `--reproducible`: the image's creation time, as Apptainer takes it for SOURCE_DATE_EPOCH.
    let epoch = source_date.epoch(Some(&image.config_bytes));
    let packing = crate::progress::Line::new("creating the SIF file", settings);
    let pack = sifr_build::PackOptions {
        source_date_epoch: epoch,
        progress: packing.as_ref().map(crate::progress::packing),
        ..pack.clone()
    };
    let time = epoch.unwrap_or_else(now);
    let report = sifr_build::pull::write_sif(&image, target, &pack, time);
    if let Some(p) = &packing {
        p.finish();
    }
    let report = report?;
    if loud {
        let s = &report.squashfs;
        eprintln!(
            "INFO:    Pull complete: {} ({}, {} inodes, {:.1} MiB, fetched in {:.1} s, {:.1} s in all)",
            target.display(),
            report.arch.go_name(),
            s.inodes,
            report.sif_size as f64 / 1048576.0,
            fetched.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_apptainer() {
        // Apptainer's uri.GetName (internal/pkg/util/uri/uri_test.go cases).
        assert_eq!(default_name("docker://alpine"), "alpine_latest.sif");
        assert_eq!(
            default_name("docker://127.0.0.1:5000/team/tool:1.2"),
            "tool_1.2.sif"
        );
        assert_eq!(default_name("oci-archive:/x/app.tar:v1"), "app.tar_v1.sif");
        assert_eq!(default_name("library://u/c/img:a,b"), "img_a.sif");
        assert_eq!(default_name("https://h/x/file.sif"), "file.sif");
        assert_eq!(default_name("localhost:5000/alpine"), "alpine_latest.sif");
    }

    #[test]
    fn name_beats_the_image_argument_and_dir_goes_in_front() {
        let t = |image, name, dir: Option<&str>| {
            pull_target(image, "docker://alpine:3", name, dir.map(Path::new))
        };
        assert_eq!(t(None, None, None), PathBuf::from("alpine_3.sif"));
        assert_eq!(t(Some("a.sif"), None, None), PathBuf::from("a.sif"));
        assert_eq!(
            t(Some("a.sif"), Some("n.sif"), None),
            PathBuf::from("n.sif")
        );
        assert_eq!(t(None, None, Some("/d")), PathBuf::from("/d/alpine_3.sif"));
        // Go's filepath.Join keeps the directory even before an absolute name.
        assert_eq!(
            t(Some("/abs/a.sif"), None, Some("/d")),
            PathBuf::from("/d/abs/a.sif")
        );
    }

    #[test]
    fn unsupported_transports_are_named() {
        let e = check_transport("shub://alpine").unwrap_err();
        assert!(
            e.to_string().contains("unsupported transport type: shub"),
            "{e}"
        );
        assert!(check_transport("docker://alpine").is_ok());
        assert!(check_transport("oci-archive:/a.tar").is_ok());
        assert_eq!(
            check_transport("docker:").unwrap_err().to_string(),
            "Bad URI docker:"
        );
    }
}
