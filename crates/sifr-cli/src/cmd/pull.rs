//! `sifr pull [IMAGE.sif] SOURCE`: a registry image (or an `oci:`/`oci-archive:`/
//! `docker-archive:` one) to a SIF, as `apptainer pull` does, and the registry setup that
//! `sifr build` shares: client options from the flags, credentials, the blob cache.
//!
//! The layers go through the blob cache (downloaded in parallel, once across concurrent
//! processes) and are merged straight into the SIF's SquashFS partition by `sifr_build::pull`:
//! no temporary extraction and no temporary SquashFS file. Progress lines go to stderr.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use clap::Args;
use sifr_oci::client::{Client, ClientOptions, CredentialStore, Credentials, PullEvent};
use sifr_oci::{ImageSource, manifest::Platform};
use sifr_squashfs::Compression;

use crate::settings::Settings;

/// Flags shared by every command that talks to a registry.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// Pick this architecture from multi-platform images (amd64, arm64, ppc64le, ...);
    /// default: the host's.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Talk plain HTTP to the registry (local test registries only).
    #[arg(long, alias = "no-https")]
    pub nohttps: bool,
    /// Ask for the registry username and password interactively.
    #[arg(long)]
    pub docker_login: bool,
    #[command(flatten)]
    pub auth: crate::cmd::registry::AuthFileArg,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// `[IMAGE.sif] SOURCE`: the SIF to write (default: NAME_TAG.sif in the current
    /// directory) and `docker://[host[:port]/]name[:tag|@digest]`, `oci:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:REF]`.
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
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// The SIF name Apptainer gives a pull: the repository's last component and the tag.
fn default_target(source: &ImageSource) -> PathBuf {
    let name = match source {
        ImageSource::Registry(r) => {
            let base = r.repository.rsplit('/').next().unwrap_or(&r.repository);
            let tag = match (&r.tag, &r.digest) {
                (Some(t), _) => t.clone(),
                (None, Some(d)) => d.hex().chars().take(12).collect(),
                (None, None) => sifr_oci::reference::DEFAULT_TAG.to_string(),
            };
            format!("{base}_{tag}")
        }
        ImageSource::OciLayout { path, .. }
        | ImageSource::OciArchive { path, .. }
        | ImageSource::DockerArchive { path, .. } => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into()),
    };
    PathBuf::from(format!("{name}.sif"))
}

/// The cache directory: `cachedir` from settings, else Apptainer's environment and default.
pub fn cache_dir(settings: &Settings) -> anyhow::Result<PathBuf> {
    settings
        .cachedir
        .clone()
        .or_else(|| sifr_oci::cache::default_dir(|k| std::env::var(k).ok()))
        .context("no cache directory: set APPTAINER_CACHEDIR or HOME")
}

/// The client and cache for registry sources, from the flags, settings and environment.
pub fn registry_access(
    settings: &Settings,
    args: &RegistryArgs,
) -> anyhow::Result<sifr_build::pull::RegistryAccess> {
    let env = |k: &str| std::env::var(k).ok();
    let files = crate::cmd::registry::pull_files(settings, &args.auth)?;
    let mut creds =
        CredentialStore::load(env, &files).context("cannot load registry credentials")?;
    if args.docker_login {
        let username = crate::prompt::ask("Enter Docker Username", crate::prompt::Echo::Shown)?;
        let password = crate::prompt::ask("Enter Docker Password", crate::prompt::Echo::Hidden)?;
        creds = creds.with_override(Credentials { username, password });
    }
    let opts = ClientOptions {
        platform: args
            .arch
            .as_deref()
            .map(Platform::linux)
            .unwrap_or_else(Platform::host),
        plain_http: args.nohttps,
        ..ClientOptions::default()
    };
    let client = Client::new(opts, creds, env).context("cannot set up the registry client")?;
    Ok(sifr_build::pull::RegistryAccess {
        client,
        cache: sifr_oci::cache::BlobCache::new(cache_dir(settings)?),
    })
}

/// `SOURCE_DATE_EPOCH`, else now: the time stamped on files an image build adds.
pub fn build_time() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(now)
}

pub fn run(args: PullArgs, settings: &Settings) -> anyhow::Result<u8> {
    let (target, source_text) = match args.args.as_slice() {
        [source] => (None, source.clone()),
        [target, source] => (Some(PathBuf::from(target)), source.clone()),
        _ => unreachable!("clap takes one or two values"),
    };
    let source = ImageSource::parse(&source_text)
        .with_context(|| format!("invalid image source `{source_text}`"))?;
    let target = target.unwrap_or_else(|| default_target(&source));
    let pack = sifr_build::PackOptions {
        compression: args.compression,
        force: args.force,
        ..sifr_build::PackOptions::default()
    };
    pull_to_sif(
        &source,
        &source_text,
        &target,
        &pack,
        &args.registry,
        settings,
    )
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
    // Refuse an existing target before downloading anything.
    if !pack.force && target.exists() {
        return Err(crate::report::Hinted::new(
            format!("image file `{}` already exists", target.display()),
            "use --force to overwrite it",
        )
        .into());
    }
    let access = match source {
        ImageSource::Registry(_) => Some(registry_access(settings, registry)?),
        _ => None,
    };
    let platform = access
        .as_ref()
        .map(|a| a.client.options().platform.clone())
        .unwrap_or_else(Platform::host);
    let started = std::time::Instant::now();
    if loud {
        eprintln!("INFO:    Fetching image `{source_text}`");
    }
    // Events come from the download threads; one lock keeps lines whole.
    let out = Mutex::new(());
    let progress = |e: PullEvent<'_>| {
        if !loud {
            return;
        }
        let _g = out.lock();
        match e {
            PullEvent::Resolved {
                manifest,
                layers,
                bytes,
            } => eprintln!(
                "INFO:    {manifest}: {layers} layer{}, {:.1} MiB",
                if layers == 1 { "" } else { "s" },
                bytes as f64 / 1048576.0
            ),
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
    let image =
        sifr_build::pull::fetch(source, source_text, access.as_ref(), &platform, &progress)?;
    let fetched = started.elapsed();
    if loud {
        eprintln!("INFO:    Creating SIF file `{}`", target.display());
    }
    let report = sifr_build::pull::write_sif(&image, target, pack, build_time())?;
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
        let n = |s: &str| default_target(&ImageSource::parse(s).unwrap());
        assert_eq!(n("docker://alpine"), PathBuf::from("alpine_latest.sif"));
        assert_eq!(
            n("docker://127.0.0.1:5000/team/tool:1.2"),
            PathBuf::from("tool_1.2.sif")
        );
        assert_eq!(n("oci-archive:/x/app.tar:v1"), PathBuf::from("app.sif"));
    }
}
