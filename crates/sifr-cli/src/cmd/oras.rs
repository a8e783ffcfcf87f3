//! `sifr pull [IMAGE.sif] oras://REGISTRY/REPO:TAG`: a SIF file stored as an ORAS artifact,
//! as `apptainer pull` fetches it (`sifr_oci::oras` does the protocol).
//!
//! With the cache, the SIF goes into the blob cache under its layer digest (Apptainer's `oras`
//! cache is keyed by the same digest), verified there, and is copied out; with
//! `--disable-cache` it is downloaded straight to its destination, verified before it gets its
//! name. Either way the destination appears whole or not at all. `--sandbox` extracts the SIF,
//! fetched into the temporary directory, as Apptainer does. The naming rules, `--force`,
//! credentials and `--no-https` are `pull`'s.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sifr_oci::Reference;
use sifr_oci::oras::{self, OrasError};

use crate::cmd::pull::{PullArgs, TempDir, pull_target, registry_access, temp_root};
use crate::report::Hinted;
use crate::settings::Settings;

/// The registry reference of an `oras://` URI (`oras://` and a bare `//` stripped, as Apptainer
/// strips them).
pub fn reference(source: &str) -> anyhow::Result<Reference> {
    let rest = source.strip_prefix("oras:").unwrap_or(source);
    let rest = rest.trim_start_matches('/');
    Reference::parse(rest).map_err(|e| {
        anyhow::Error::new(e).context(Hinted::new(
            format!("invalid image source `{source}`"),
            "name an ORAS artifact as oras://REGISTRY/REPO:TAG or oras://REGISTRY/REPO@sha256:DIGEST",
        ))
    })
}

/// An ORAS failure as an error for the user (`report::hint_of` asks it for its hint).
pub fn report(e: OrasError) -> anyhow::Error {
    anyhow::Error::new(e)
}

/// `pull ... oras://...`.
pub fn pull(
    args: &PullArgs,
    image: Option<&str>,
    source: &str,
    settings: &Settings,
) -> anyhow::Result<u8> {
    let loud = !settings.quiet && !settings.silent;
    let r = reference(source)?;
    let target = pull_target(image, source, args.name.as_deref(), args.dir.as_deref());
    if !args.force && std::fs::symlink_metadata(&target).is_ok() {
        return Err(Hinted::new(
            format!("image file `{}` already exists", target.display()),
            "use --force to overwrite it",
        )
        .into());
    }
    let (access, _cache_guard) = registry_access(settings, &args.registry)?;
    let artifact = oras::resolve_sif(&access.client, &r).map_err(report)?;
    if args.sandbox {
        let work = TempDir::new(&temp_root(settings, &args.registry)?, "sifr-pull-")?;
        let sif = work.path.join("image.sif");
        fetch(
            &access,
            &r,
            &artifact,
            &sif,
            args.registry.disable_cache,
            loud,
        )?;
        crate::cmd::pull::extract_sandbox(&sif, &target, args.force)?;
        if loud {
            eprintln!("INFO:    Sandbox written: {}", target.display());
        }
        return Ok(crate::exit::OK);
    }
    // Staged beside the target, so that --force replaces it in one rename.
    let staging = Staging(staging_path(&target));
    let _ = std::fs::remove_file(&staging.0);
    fetch(
        &access,
        &r,
        &artifact,
        &staging.0,
        args.registry.disable_cache,
        loud,
    )?;
    std::fs::rename(&staging.0, &target)
        .with_context(|| format!("cannot create `{}`", target.display()))?;
    if loud {
        eprintln!("INFO:    Digest: {}", artifact.manifest_digest);
        eprintln!("INFO:    Pull complete: {}", target.display());
    }
    Ok(crate::exit::OK)
}

/// Put the SIF of `artifact` at the new file `dest`: through the blob cache, or straight from
/// the registry with `--disable-cache` (the cache in `access` is then a private one that is
/// removed afterwards, so it is not used at all).
fn fetch(
    access: &sifr_build::pull::RegistryAccess,
    r: &Reference,
    artifact: &oras::SifArtifact,
    dest: &Path,
    disable_cache: bool,
    loud: bool,
) -> anyhow::Result<()> {
    if disable_cache {
        if loud {
            eprintln!("INFO:    Downloading oras image");
        }
        return oras::fetch_sif(&access.client, r, artifact, dest).map_err(report);
    }
    let cached = access.cache.get(&artifact.sif.digest).is_some();
    if loud {
        eprintln!(
            "INFO:    {}",
            if cached {
                "Using cached SIF image"
            } else {
                "Downloading oras image"
            }
        );
    }
    let path = access
        .client
        .blob(r, &artifact.sif, &access.cache)
        .map_err(|source| {
            report(OrasError::Client {
                reference: r.to_string(),
                source: Box::new(source),
            })
        })?;
    // The cache verified the digest; what it holds must still be a SIF (Apptainer checks the
    // file it pulled too).
    if oras::check_sif_file(&path).is_err() {
        return Err(report(OrasError::BlobNotSif {
            reference: r.to_string(),
        }));
    }
    copy_new(&path, dest)
}

/// Copy `from` to the new file `dest`, mode 0777 before the umask (a SIF runs, as Apptainer's
/// copy out of its cache makes it).
fn copy_new(from: &Path, dest: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut src =
        std::fs::File::open(from).with_context(|| format!("cannot read `{}`", from.display()))?;
    let mut out = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o777)
        .open(dest)
        .with_context(|| format!("cannot create `{}`", dest.display()))?;
    std::io::copy(&mut src, &mut out)
        .and_then(|_| out.flush())
        .and_then(|()| out.sync_all())
        .with_context(|| format!("cannot write `{}`", dest.display()))?;
    Ok(())
}

/// `.NAME.sifr-oras-PID` beside `target`.
fn staging_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = format!(".{name}.sifr-oras-{}", std::process::id());
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(file),
        _ => PathBuf::from(file),
    }
}

/// A staged file, removed when dropped (after the rename there is nothing left to remove).
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oras_uris_name_registry_references() {
        let r = reference("oras://127.0.0.1:5000/team/tool:1.2").unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/tool:1.2");
        assert_eq!(
            reference("oras://ghcr.io/apptainer/alpine")
                .unwrap()
                .to_string(),
            "ghcr.io/apptainer/alpine:latest"
        );
        assert!(reference("oras://").is_err());
        assert_eq!(
            staging_path(Path::new("/d/x.sif")),
            PathBuf::from(format!("/d/.x.sif.sifr-oras-{}", std::process::id()))
        );
    }
}
