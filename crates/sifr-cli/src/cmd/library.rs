//! `library://` sources: `sifr pull [IMAGE.sif] library://...` and launches of `library://`
//! URIs, from a Sylabs-style container library (`sifr_oci::library`).
//!
//! Which library: the host the reference names (`library://HOST/entity/collection/image:tag`,
//! over HTTPS, or HTTP with `--no-https`), else `--library URL` (`APPTAINER_LIBRARY`) for a
//! pull. Apptainer would otherwise use its default remote's library; its stock configuration
//! has none, and it fails with "no default remote with library client in use", as sifr does.
//! sifr has no `remote add` for library endpoints, nor their service discovery and tokens:
//! the images are read anonymously.

use std::path::PathBuf;

use anyhow::Context as _;
use sifr_oci::library::{self, LibraryRef};
use sifr_oci::net::NetClient;

use super::image_uri::{Mode, cached, info};
use super::pull::{self, PullArgs, RegistryArgs};
use crate::report::Hinted;
use crate::settings::Settings;

/// The library's base URL for `r`: its own host, else `--library`.
fn base(r: &LibraryRef, args: &RegistryArgs, text: &str) -> anyhow::Result<String> {
    let scheme = if args.nohttps { "http" } else { "https" };
    if let Some(h) = &r.host {
        return Ok(format!("{scheme}://{h}"));
    }
    match args.library.as_deref().filter(|l| !l.is_empty()) {
        Some(l) if l.contains("://") => Ok(l.to_string()),
        Some(l) => Ok(format!("{scheme}://{l}")),
        None => Err(Hinted::new(
            format!("cannot fetch `{text}`: no default remote with library client in use"),
            "name the library in the URI (library://HOST/ENTITY/COLLECTION/IMAGE:TAG), or give \
             pull --library URL (APPTAINER_LIBRARY); sifr has no library remotes of its own",
        )
        .into()),
    }
}

fn client(https: bool) -> anyhow::Result<NetClient> {
    let env = |k: &str| std::env::var(k).ok();
    NetClient::new(&[], concat!("sifr/", env!("CARGO_PKG_VERSION")), https, env)
        .context("cannot set up the HTTP client")
}

/// The reference, its library and the image the library describes for the platform. The CA
/// bundle is read for an HTTPS library, or when a download may follow a redirect to HTTPS
/// storage (`download`); a launch's check of a plain-HTTP library skips it.
fn resolve(
    text: &str,
    args: &RegistryArgs,
    download: bool,
) -> anyhow::Result<(LibraryRef, String, NetClient, library::LibraryImage, String)> {
    let r = LibraryRef::parse(text)?;
    let base = base(&r, args, text)?;
    let arch = pull::platform(args)?.architecture;
    let client = client(download || base.starts_with("https://"))?;
    let image = library::describe(&client, &base, &r, &arch)
        .with_context(|| format!("cannot look up `{text}`"))?;
    Ok((r, base, client, image, arch))
}

/// For a launch: the SIF of `text` in the cache (`library/<hash>`), fetched if missing.
pub(super) fn locate(
    text: &str,
    args: &RegistryArgs,
    settings: &Settings,
    mode: Mode<'_>,
) -> anyhow::Result<Option<PathBuf>> {
    let (r, base, client, image, arch) = resolve(text, args, !mode.probe())?;
    let key = sifr_oci::images::key(&[b"library", image.hash.as_bytes(), arch.as_bytes()]);
    cached(settings, "library", &key, mode, |tmp| {
        info(settings, &format!("Downloading library image `{text}`"));
        library::download(&client, &base, &r, &arch, &image, tmp)?;
        super::image_uri::check_image(tmp, text)
    })
}

/// `pull [IMAGE.sif] library://...`: the file, checked against the library's hash.
pub fn pull(
    args: &PullArgs,
    image: Option<&str>,
    text: &str,
    settings: &Settings,
) -> anyhow::Result<u8> {
    let target = pull::pull_target(image, text, args.name.as_deref(), args.dir.as_deref());
    pull::download_to_target(args, &target, text, "library", settings, |tmp| {
        let (r, base, client, desc, arch) = resolve(text, &args.registry, true)?;
        library::download(&client, &base, &r, &arch, &desc, tmp)?;
        Ok(())
    })
}
