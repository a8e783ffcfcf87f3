//! Image URIs wherever a command takes an image (`exec|run|shell|test|inspect|instance start
//! docker://alpine`), as Apptainer's `replaceURIWithImage` does for its actions: the URI is
//! fetched into the cache once, as a SIF, and the command then runs that SIF as it would a
//! local one.
//!
//! - `docker://`, `oci:`, `oci-archive:`, `docker-archive:` are converted by the pull pipeline
//!   into `<cache>/oci-tmp/<key>`. For a registry the key is the digest the registry gives the
//!   tag now (one `HEAD` per launch, which Docker Hub does not count as a pull) mixed with the
//!   platform, as Apptainer keys its `oci-tmp` entries; the conversion pulls by that digest, so
//!   a tag moved meanwhile cannot put another image under the key. For a local layout or
//!   archive the key is the file's identity (path, size, time, inode) and the platform.
//! - `oras://` SIF artifacts are downloaded into `<cache>/oras/<key>`, the key made of the
//!   manifest digest (one `HEAD`, as for `docker://`) and the platform.
//! - `http(s)://` files are downloaded into `<cache>/net/<key>`, the key made of the URL and
//!   what the server says of the file (`ETag`, `Last-Modified`, length).
//!
//! Concurrent first launches of one URI fill its entry once (a lock per key); the others wait
//! and use it. `--disable-cache` (`APPTAINER_DISABLE_CACHE`) fetches into a private temporary
//! directory that is removed when the command ends.
//!
//! All of this runs in a forked child: a pull starts threads (layer downloads, the SquashFS
//! writer's pool, DNS lookups with a timeout), and the launch that follows must start from a
//! single-threaded process (docs/architecture.md, "Threads"). The child sends the entry's path,
//! or its rendered error, back through a pipe.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sifr_oci::images::{self, ImageCache};
use sifr_oci::{ImageSource, Reference};

use super::action_remote::RemoteFlags;
use super::pull::{self, RegistryArgs, TempDir};
use crate::report::{self, Prerendered};
use crate::settings::Settings;

/// What kind of source an image argument names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A path (or `instance://NAME`, which the action code handles).
    Local,
    /// `docker://` and the other sources the pull pipeline converts.
    Oci,
    Oras,
    /// `library://` (a Sylabs-style container library).
    Library,
    /// `http://`, `https://`.
    Net,
}

/// The transport of `image` as Apptainer's `uri.Split` finds it: the text before the first
/// colon when `//` follows it or when it is a transport Apptainer knows; `None` for a path.
pub fn transport(image: &str) -> Option<&str> {
    let (t, rest) = image.split_once(':')?;
    (rest.starts_with("//") || pull::TRANSPORTS.contains(&t)).then_some(t)
}

/// The kind of `image`; the transports sifr cannot fetch from are refused here, with
/// Apptainer's wording and what to do instead.
pub fn kind(image: &str) -> anyhow::Result<Kind> {
    Ok(match transport(image) {
        None | Some("instance") => Kind::Local,
        Some("docker" | "oci" | "oci-archive" | "docker-archive") => {
            pull::check_transport(image)?;
            Kind::Oci
        }
        Some("oras") => Kind::Oras,
        Some("library") => Kind::Library,
        Some("http" | "https") => Kind::Net,
        Some(t) => {
            pull::check_transport(image)?;
            anyhow::bail!("unsupported transport type: {t}")
        }
    })
}

/// A fetched image, ready to run: its path, and the temporary directory holding it under
/// `--disable-cache` (removed when this is dropped).
pub struct Fetched {
    pub path: PathBuf,
    _temp: Option<TempDir>,
}

/// The registry flags of a pull, from an action's (already completed) remote flags.
fn registry_args(remote: &RemoteFlags) -> RegistryArgs {
    RegistryArgs {
        nohttps: remote.no_https,
        docker_login: remote.docker_login,
        docker_username: remote.docker_username.clone(),
        docker_password: remote.docker_password.clone(),
        docker_host: remote.docker_host.clone(),
        disable_cache: remote.disable_cache,
        tmpdir: remote.tmpdir.clone(),
        auth: crate::cmd::registry::AuthFileArg {
            authfile: remote.authfile.clone(),
        },
        ..RegistryArgs::default()
    }
}

/// `image` fetched as a SIF when it is a URI (see the module docs); `None` for a local image.
/// `remote` are the action's registry flags with their environment twins applied.
pub fn fetch(
    image: &Path,
    remote: &RemoteFlags,
    settings: &Settings,
) -> anyhow::Result<Option<Fetched>> {
    let Some(text) = image.to_str() else {
        return Ok(None);
    };
    let kind = kind(text)?;
    if kind == Kind::Local {
        return Ok(None);
    }
    let args = registry_args(remote);
    // A launch of a cached image looks it up here, in this process: one small request at most,
    // which starts no thread (ureq resolves names without a timeout thread here; the
    // test `docker_uris_run_from_one_cached_conversion...` launches into a user namespace, which
    // needs a single thread, after a probe by host name). Only a miss forks.
    // `--docker-login` asks on the terminal, which the child does once.
    if !args.disable_cache
        && !args.docker_login
        && let Some(path) = locate(kind, text, &args, settings, Mode::Probe)?
    {
        return Ok(Some(Fetched { path, _temp: None }));
    }
    let temp = if args.disable_cache {
        Some(TempDir::new(
            &pull::temp_root(settings, &args)?,
            "sifr-image-",
        )?)
    } else {
        None
    };
    let dest = temp.as_ref().map(|t| t.path.join("image.sif"));
    let (read, write) = sifr_sys::process::pipe().context("cannot create a pipe")?;
    let pid = sifr_sys::process::fork_child(|| {
        let (tag, payload) = match locate(kind, text, &args, settings, Mode::Fill(dest.as_deref()))
        {
            Ok(Some(path)) => (b'P', path.into_os_string().into_vec()),
            Ok(None) => (b'E', b"FATAL:   the image was not fetched".to_vec()),
            Err(e) => (
                b'E',
                report::render(&e, report::render_colour(settings)).into_bytes(),
            ),
        };
        let mut msg = vec![tag];
        msg.extend(payload);
        // A copy of the pipe's end: the closure cannot take the parent's (it is not run there).
        let sent = write
            .try_clone()
            .map(std::fs::File::from)
            .and_then(|mut out| std::io::Write::write_all(&mut out, &msg))
            .is_ok();
        if sent && tag == b'P' {
            crate::exit::OK.into()
        } else {
            crate::exit::FAILURE.into()
        }
    })
    .context("cannot start the image fetch")?;
    drop(write);
    let msg = sifr_sys::process::read_until(read, None)
        .context("cannot read the fetched image's path")?
        .unwrap_or_default();
    let status = sifr_sys::process::wait_pid(pid).context("cannot wait for the image fetch")?;
    match msg.split_first() {
        Some((b'P', path)) if status.code() == 0 => Ok(Some(Fetched {
            path: PathBuf::from(OsString::from_vec(path.to_vec())),
            _temp: temp,
        })),
        Some((b'E', text)) => Err(Prerendered {
            text: String::from_utf8_lossy(text).into_owned(),
        }
        .into()),
        _ => anyhow::bail!(
            "fetching `{text}` failed ({}) before it could report why",
            status.describe()
        ),
    }
}

/// [`fetch`] for commands without the registry flags (`inspect`, `run-help`): the flags'
/// environment twins (`APPTAINER_NOHTTPS`, `APPTAINER_DOCKER_USERNAME`, ...) still apply.
pub fn fetch_with_env(image: &Path, settings: &Settings) -> anyhow::Result<Option<Fetched>> {
    if image.to_str().map(kind).transpose()?.unwrap_or(Kind::Local) == Kind::Local {
        return Ok(None);
    }
    #[derive(clap::Parser)]
    struct NoFlags {
        #[command(flatten)]
        flags: super::action::ActionFlags,
    }
    let none = <NoFlags as clap::Parser>::try_parse_from(["sifr"])
        .context("cannot set up the registry flags")?;
    let (completed, _) = super::action_env::completed(&none.flags, &super::action::host_env())?;
    fetch(image, &completed.remote, settings)
}

/// What [`locate`] does on a cache miss.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode<'a> {
    /// Only look: `None` on a miss. Reads no CA bundle for a plain-HTTP registry.
    Probe,
    /// Fetch (in the forked child): into the cache, or into this file (`--disable-cache`).
    Fill(Option<&'a Path>),
}

impl Mode<'_> {
    pub(super) fn probe(self) -> bool {
        matches!(self, Mode::Probe)
    }

    /// Whether the result is a cache entry (not a `--disable-cache` file).
    pub(super) fn cached(self) -> bool {
        !matches!(self, Mode::Fill(Some(_)))
    }
}

/// The SIF for `text`: in the cache, or (filling) at the `--disable-cache` destination.
fn locate(
    kind: Kind,
    text: &str,
    args: &RegistryArgs,
    settings: &Settings,
    mode: Mode<'_>,
) -> anyhow::Result<Option<PathBuf>> {
    match kind {
        Kind::Oci => locate_oci(text, args, settings, mode),
        Kind::Net => locate_net(text, settings, mode),
        Kind::Oras => locate_oras(text, args, settings, mode),
        Kind::Library => super::library::locate(text, args, settings, mode),
        Kind::Local => Ok(Some(PathBuf::from(text))),
    }
}

pub(super) fn info(settings: &Settings, msg: &str) {
    if !settings.quiet && !settings.silent {
        eprintln!("INFO:    {msg}");
    }
}

/// The entry `key` of `kind` in the cache; filled by `fill` if it is missing, unless only
/// probing. With a `--disable-cache` destination, `fill` writes that file instead.
pub(super) fn cached(
    settings: &Settings,
    kind: &str,
    key: &str,
    mode: Mode<'_>,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<Option<PathBuf>> {
    if let Mode::Fill(Some(d)) = mode {
        fill(d)?;
        return Ok(Some(d.to_path_buf()));
    }
    let cache = ImageCache::new(&pull::cache_dir(settings)?, kind);
    let path = match mode {
        Mode::Probe => match cache.get(key) {
            Some(p) => p,
            None => return Ok(None),
        },
        Mode::Fill(_) => match cache.get_or_fill(key, fill)? {
            (p, true) => return Ok(Some(p)),
            (p, false) => p,
        },
    };
    info(settings, "Using cached SIF image");
    Ok(Some(path))
}

fn locate_oci(
    text: &str,
    args: &RegistryArgs,
    settings: &Settings,
    mode: Mode<'_>,
) -> anyhow::Result<Option<PathBuf>> {
    let source =
        ImageSource::parse(text).with_context(|| format!("invalid image source `{text}`"))?;
    let platform = pull::platform(args)?;
    let arch = platform.architecture.as_bytes();
    let variant = platform.variant.as_deref().unwrap_or("").as_bytes();
    let (key, pinned) = match &source {
        ImageSource::Registry(r) => {
            let digest = match r.digest {
                Some(d) => d,
                None => {
                    let (access, _guard) =
                        pull::registry_access_with(settings, args, check_options(mode))?;
                    match look_up(&access.client, r, text, settings, "oci-tmp")? {
                        Lookup::Digest(d) => d,
                        Lookup::Remembered(p) => return Ok(Some(p)),
                    }
                }
            };
            let pinned = Reference {
                digest: Some(digest),
                ..r.clone()
            };
            let key = images::key(&[b"docker", digest.to_string().as_bytes(), arch, variant]);
            (key, ImageSource::Registry(pinned))
        }
        ImageSource::OciLayout { path, .. }
        | ImageSource::OciArchive { path, .. }
        | ImageSource::DockerArchive { path, .. } => {
            // A layout directory changes through its index; an archive as a whole.
            let file = if path.is_dir() {
                path.join("index.json")
            } else {
                path.clone()
            };
            let key = images::key(&[text.as_bytes(), &file_identity(&file)?, arch, variant]);
            (key, source.clone())
        }
    };
    let found = cached(settings, "oci-tmp", &key, mode, |tmp| {
        info(settings, "Converting OCI blobs to SIF format");
        let pack = sifr_build::PackOptions {
            force: true,
            ..sifr_build::PackOptions::default()
        };
        pull::pull_to_sif(&pinned, text, tmp, &pack, args, settings).map(|_| ())
    })?;
    if found.is_some()
        && mode.cached()
        && matches!(&source, ImageSource::Registry(r) if r.digest.is_none())
    {
        remember(settings, "oci-tmp", text, &platform, &key);
    }
    Ok(found)
}

/// The client options of a tag's check: no CA bundle read for a plain-HTTP probe, and one
/// retry only, so that an unreachable registry (a compute node without a route out) falls
/// back to the remembered image quickly.
fn check_options(mode: Mode<'_>) -> impl FnOnce(&mut sifr_oci::client::ClientOptions) {
    move |o| {
        if mode.probe() {
            o.system_roots = false;
            o.retries = 1;
            o.connect_timeout = std::time::Duration::from_secs(10);
        }
    }
}

/// What a tag's check found.
enum Lookup {
    /// The digest the registry gives the tag now.
    Digest(sifr_oci::Digest),
    /// The registry could not be reached: the entry this URI ran from last time.
    Remembered(PathBuf),
}

/// The digest the registry gives `r` now. When the registry cannot be reached (no route, no
/// name resolution, refused, 5xx) and this URI ran before, the entry it ran from, with a
/// warning: Apptainer fails there, which stops job scripts on compute nodes without network.
fn look_up(
    client: &sifr_oci::client::Client,
    r: &Reference,
    text: &str,
    settings: &Settings,
    kind: &str,
) -> anyhow::Result<Lookup> {
    match client.manifest_digest(r) {
        Ok(d) => Ok(Lookup::Digest(d)),
        Err(e) => {
            if e.is_transient()
                && let Some(p) = remembered(settings, kind, text, &client.options().platform)
            {
                tracing::warn!(
                    "cannot reach the registry of `{text}` ({e}); running the image it named when it was last reached"
                );
                return Ok(Lookup::Remembered(p));
            }
            Err(anyhow::Error::new(e).context(format!("cannot look up `{text}`")))
        }
    }
}

/// Where the entry last used for the URI `text` on `platform` is recorded:
/// `<kind>/.refs/<hash of both>`, a dot-directory the cache's listing leaves out.
fn ref_file(
    settings: &Settings,
    kind: &str,
    text: &str,
    platform: &sifr_oci::manifest::Platform,
) -> Option<PathBuf> {
    let name = images::key(&[
        text.as_bytes(),
        platform.architecture.as_bytes(),
        platform.variant.as_deref().unwrap_or("").as_bytes(),
    ]);
    Some(
        pull::cache_dir(settings)
            .ok()?
            .join(kind)
            .join(".refs")
            .join(name),
    )
}

/// The entry last used for `text`, if it is still in the cache.
fn remembered(
    settings: &Settings,
    kind: &str,
    text: &str,
    platform: &sifr_oci::manifest::Platform,
) -> Option<PathBuf> {
    let key = std::fs::read_to_string(ref_file(settings, kind, text, platform)?).ok()?;
    ImageCache::new(&pull::cache_dir(settings).ok()?, kind).get(key.trim())
}

/// Record `key` as the entry `text` runs from (best effort: a read-only cache only loses the
/// fallback). Written only when it changed, through a rename, so readers see whole keys.
fn remember(
    settings: &Settings,
    kind: &str,
    text: &str,
    platform: &sifr_oci::manifest::Platform,
    key: &str,
) {
    let Some(file) = ref_file(settings, kind, text, platform) else {
        return;
    };
    if std::fs::read_to_string(&file).is_ok_and(|k| k.trim() == key) {
        return;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let written = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, key))
        .and_then(|()| std::fs::rename(&tmp, &file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!("cannot record `{}`: {e}", file.display());
    }
}

/// What changes when a local file is replaced or rewritten: its absolute path, device,
/// inode, size and modification time.
fn file_identity(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::MetadataExt as _;
    let abs =
        std::fs::canonicalize(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    let md = std::fs::metadata(&abs).with_context(|| format!("cannot open `{}`", abs.display()))?;
    Ok(format!(
        "{}\0{}:{}\0{}\0{}.{}",
        abs.display(),
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec()
    )
    .into_bytes())
}

fn locate_net(text: &str, settings: &Settings, mode: Mode<'_>) -> anyhow::Result<Option<PathBuf>> {
    let env = |k: &str| std::env::var(k).ok();
    // A probe of an http:// URL makes one HEAD, which needs no CA bundle.
    let roots = !(mode.probe() && text.starts_with("http://"));
    let client =
        sifr_oci::net::NetClient::new(&[], concat!("sifr/", env!("CARGO_PKG_VERSION")), roots, env)
            .context("cannot set up the HTTP client")?;
    let validators = client
        .validators(text)
        .with_context(|| format!("cannot look up `{text}`"))?;
    let key = images::key(&[text.as_bytes(), validators.text().as_bytes()]);
    cached(settings, "net", &key, mode, |tmp| {
        info(settings, &format!("Downloading network image `{text}`"));
        client
            .download(text, tmp)
            .with_context(|| format!("cannot download `{text}`"))?;
        check_image(tmp, text)
    })
}

/// A downloaded file must be an image sifr can run: a SIF or a SquashFS file (not the HTML
/// page of a login portal or a 404 that answered 200).
pub fn check_image(path: &Path, source: &str) -> anyhow::Result<()> {
    if let Err(e) = sifr_launch::image::open(path) {
        let _ = std::fs::remove_file(path);
        return Err(anyhow::Error::new(e).context(crate::report::Hinted::new(
            format!("`{source}` is not a SIF or SquashFS image"),
            "check the URL in a browser or with `curl -I`: a login page or an error page is \
             not an image",
        )));
    }
    Ok(())
}

fn locate_oras(
    text: &str,
    args: &RegistryArgs,
    settings: &Settings,
    mode: Mode<'_>,
) -> anyhow::Result<Option<PathBuf>> {
    let r = super::oras::reference(text)?;
    let (access, _guard) = pull::registry_access_with(settings, args, check_options(mode))?;
    // The key is the manifest's digest, asked for with a HEAD as for docker://; the SIF is then
    // fetched by that digest.
    let tag = r.digest.is_none();
    let digest = match look_up(&access.client, &r, text, settings, "oras")? {
        Lookup::Digest(d) => d,
        Lookup::Remembered(p) => return Ok(Some(p)),
    };
    let pinned = Reference {
        digest: Some(digest),
        ..r
    };
    // Mixed with the platform, since a tag may name an index that `--arch` picks from.
    let platform = access.client.options().platform.clone();
    let key = images::key(&[
        b"oras",
        digest.to_string().as_bytes(),
        platform.architecture.as_bytes(),
        platform.variant.as_deref().unwrap_or("").as_bytes(),
    ]);
    let found = cached(settings, "oras", &key, mode, |tmp| {
        info(settings, &format!("Downloading oras image `{text}`"));
        let artifact =
            sifr_oci::oras::resolve_sif(&access.client, &pinned).map_err(super::oras::report)?;
        sifr_oci::oras::fetch_sif(&access.client, &pinned, &artifact, tmp)
            .map_err(super::oras::report)
    })?;
    if found.is_some() && mode.cached() && tag {
        remember(settings, "oras", text, &platform, &key);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_split_as_apptainer_splits_them() {
        // Apptainer's uri.Split (internal/pkg/util/uri/uri_test.go).
        assert_eq!(transport("docker://alpine"), Some("docker"));
        assert_eq!(transport("oci-archive:/x/a.tar"), Some("oci-archive"));
        assert_eq!(transport("https://h/a.sif"), Some("https"));
        assert_eq!(transport("instance://web"), Some("instance"));
        assert_eq!(transport("/x/alpine.sif"), None);
        assert_eq!(transport("dir:with/colon"), None);
        assert_eq!(transport("relative.sif"), None);
    }

    #[test]
    fn kinds_and_refusals() {
        assert_eq!(kind("docker://alpine").unwrap(), Kind::Oci);
        assert_eq!(kind("oci:/layout:tag").unwrap(), Kind::Oci);
        assert_eq!(kind("https://h/a.sif").unwrap(), Kind::Net);
        assert_eq!(kind("oras://h/r:t").unwrap(), Kind::Oras);
        assert_eq!(kind("a.sif").unwrap(), Kind::Local);
        assert_eq!(kind("instance://x").unwrap(), Kind::Local);
        let e = kind("shub://x/y").unwrap_err().to_string();
        assert!(e.contains("unsupported transport type: shub"), "{e}");
        let e = kind("buildkit://x").unwrap_err().to_string();
        assert!(e.contains("unsupported transport type: buildkit"), "{e}");
    }
}
