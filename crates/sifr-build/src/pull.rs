//! OCI images (a registry through the blob cache, or a local layout/archive) straight into a
//! SIF: the layers are merged newest-first into the SquashFS writer that streams the primary
//! partition, so nothing is extracted to disk (`sifr pull`, `sifr build X.sif docker://...`).
//!
//! ```text
//! ImageSource ─► fetch (client + cache, or layout) ─► FetchedImage (layers, config)
//!             ─► write_sif: merge ─► ImageSink ─► squashfs ─► SIF partition
//!                           + /.singularity.d skeleton, env script, runscript, labels
//!                           + inspect-metadata.json, oci-config.json objects
//! ```
//!
//! The image gets what an Apptainer `pull` produces: the base skeleton of `layout::base`, the
//! image's `ENV` in `10-docker2singularity.sh`, a runscript from `ENTRYPOINT`/`CMD`, the
//! image's labels in `labels.json`, and the raw config as `oci-config.json`. `WORKDIR` is kept
//! in `oci-config.json` only: Apptainer's native runtime ignores it too (it starts in the
//! caller's directory), and changing that would break job scripts that rely on it.
//!
//! The CPU-feature facts that `pack_dir` records (`isa-facts.json`) are recorded here too:
//! the files exist only inside the stream, so the partition is read back in place (no
//! extraction) before the SIF is renamed into place; a pull of the python image pays about a
//! second for it.
//!
//! Nothing here prints; progress goes to the caller's callback.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use sifr_oci::cache::BlobCache;
use sifr_oci::client::{Client, ClientError, PullEvent};
use sifr_oci::layout::LayoutError;
use sifr_oci::manifest::{ImageConfig, Platform};
use sifr_oci::merge::{
    self, EntryKind, EntryMeta, FileLayer, MergeOptions, MergeStats, RelPath, Sink, SinkError,
    SquashfsSink,
};
use sifr_oci::{Digest, ImageSource};

use crate::layout::base::{BASE_DIRS, BASE_FILES, BASE_SYMLINKS};
use crate::layout::{ImageTree, SINGULARITY_D};
use crate::ociconfig;
use crate::pack::{self, IsaFacts, PackError, PackOptions, PartWriter};

/// What a registry pull needs: a client (credentials, TLS, platform) and the blob cache.
pub struct RegistryAccess {
    pub client: Client,
    pub cache: BlobCache,
}

impl std::fmt::Debug for RegistryAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAccess")
            .field("client", self.client.options())
            .field("cache", &self.cache)
            .finish()
    }
}

/// An image whose layers are on local disk (in the cache, or in a layout or archive).
#[derive(Debug, Clone)]
pub struct FetchedImage {
    /// The source as the user wrote it, for messages and `org.opencontainers.image.base.name`.
    pub name: String,
    pub layers: Vec<FileLayer>,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfig,
    /// The manifest digest, where known.
    pub digest: Option<Digest>,
}

/// Failures of a pull; each names the image.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("`{image}` is a registry image but no registry access was set up")]
    NoRegistry { image: String },
    #[error("cannot pull `{image}`")]
    Client {
        image: String,
        #[source]
        source: Box<ClientError>,
    },
    #[error("cannot read OCI image `{image}`")]
    Layout {
        image: String,
        #[source]
        source: Box<LayoutError>,
    },
    #[error("cannot write `{image}` as a SIF")]
    Pack {
        image: String,
        #[source]
        source: PackError,
    },
}

impl PullError {
    pub fn hint(&self) -> Option<String> {
        let PullError::Client { source, .. } = self else {
            return None;
        };
        match &**source {
            ClientError::Manifest { .. } => {
                Some("choose another platform with --arch (amd64, arm64, ...)".into())
            }
            other => other.hint(),
        }
    }
}

/// Get `source`'s layers onto local disk: registry images through `registry` (downloaded in
/// parallel into the cache, each blob once across processes), local ones opened in place.
pub fn fetch(
    source: &ImageSource,
    name: &str,
    registry: Option<&RegistryAccess>,
    platform: &Platform,
    progress: &(dyn Fn(PullEvent<'_>) + Sync),
) -> Result<FetchedImage, PullError> {
    if let ImageSource::Registry(r) = source {
        let access = registry.ok_or_else(|| PullError::NoRegistry { image: name.into() })?;
        let (image, layers) = access
            .client
            .pull_with(r, &access.cache, progress)
            .map_err(|e| PullError::Client {
                image: name.into(),
                source: Box::new(e),
            })?;
        return Ok(FetchedImage {
            name: name.into(),
            layers,
            config_bytes: image.config_bytes,
            config: image.config,
            digest: Some(image.manifest_digest),
        });
    }
    let image = sifr_oci::layout::open(source, platform)
        .unwrap_or_else(|| unreachable!("a non-registry source always opens locally"))
        .map_err(|e| PullError::Layout {
            image: name.into(),
            source: Box::new(e),
        })?;
    Ok(FetchedImage {
        name: name.into(),
        layers: image.layers,
        config_bytes: image.config_bytes,
        config: image.config,
        digest: image.manifest_digest,
    })
}

/// What [`write_sif`] produced.
#[derive(Debug, Clone)]
pub struct PullReport {
    pub arch: sifr_sif::Arch,
    pub squashfs: sifr_squashfs::Summary,
    pub sif_size: u64,
    pub merge: MergeStats,
    /// The CPU-feature summary recorded in the SIF, read back from the written partition.
    pub isa: Option<sifr_isa::Summary>,
}

/// Merge `image` into a new SIF at `target` (replaced only with `opts.force`), with the
/// `/.singularity.d` metadata Apptainer gives a pulled image. `mtime` stamps the metadata
/// files this adds. `opts.metadata_json` is replaced by the image's own objects.
pub fn write_sif(
    image: &FetchedImage,
    target: &Path,
    opts: &PackOptions,
    mtime: i64,
) -> Result<PullReport, PullError> {
    let pack_err = |source| PullError::Pack {
        image: image.name.clone(),
        source,
    };
    pack::check_target(target, opts.force).map_err(pack_err)?;
    let meta = Metadata::of(&image.config);
    let inspect = crate::layout::inspect_tree(&meta)
        .unwrap_or_else(|never: std::convert::Infallible| match never {});
    let mut opts = opts.clone();
    opts.metadata_json = vec![
        (
            "inspect-metadata.json".to_string(),
            inspect.to_json().into_bytes(),
        ),
        ("oci-config.json".to_string(), image.config_bytes.clone()),
    ];
    // The config's architecture, not the host's: `--arch arm64` on an amd64 host records
    // arm64, as the launch's architecture check expects.
    let arch = sifr_sif::Arch::from_go_name(&image.config.architecture)
        .unwrap_or_else(sifr_sif::Arch::host);
    let mut stats = None;
    let (squashfs, sif_size, isa) =
        pack::write_sif(target, &opts, arch, None, IsaFacts::Written, |w| {
            stats = Some(fill(w, image, &meta, mtime)?);
            Ok(())
        })
        .map_err(pack_err)?;
    Ok(PullReport {
        arch,
        squashfs,
        sif_size,
        merge: stats.unwrap_or_default(),
        isa,
    })
}

/// The merge, then the skeleton around what the merge delivered.
fn fill(
    w: &mut PartWriter<'_, '_>,
    image: &FetchedImage,
    meta: &Metadata,
    mtime: i64,
) -> Result<MergeStats, PackError> {
    let layers = merge::newest_occurrences(&image.layers);
    let mut sink = ImageSink {
        inner: SquashfsSink::new(w),
        seen: HashMap::new(),
    };
    let stats = merge::merge(&layers, &mut sink, &MergeOptions::default()).map_err(|source| {
        PackError::Merge {
            image: image.name.clone(),
            source: Box::new(source),
        }
    })?;
    let seen = sink.seen;
    let entry = |kind, mode| {
        let mut e = sifr_squashfs::Entry::new(kind, mode);
        e.mtime = mtime;
        e
    };
    // Nothing goes below a path the image made a non-directory (`/var` a symlink, say).
    let blocked = |path: &str| {
        let mut p = String::new();
        for c in path.split('/') {
            if !p.is_empty() {
                p.push('/');
            }
            p.push_str(c);
            if seen.get(&p) == Some(&false) {
                return true;
            }
        }
        false
    };
    for dir in BASE_DIRS {
        if seen.contains_key(*dir) || blocked(dir) {
            continue;
        }
        let mode = if matches!(*dir, "tmp" | "var/tmp") {
            0o1777
        } else {
            0o755
        };
        w.add(dir, entry(sifr_squashfs::EntryKind::Directory, mode))?;
    }
    for (target, link) in BASE_SYMLINKS {
        w.add(
            link,
            entry(sifr_squashfs::EntryKind::Symlink((*target).into()), 0o777),
        )?;
    }
    for (path, mode, contents) in meta.files.iter().map(|(p, (m, c))| (p, m, c)) {
        // `/etc/hosts` and `/etc/resolv.conf` only where the image has none: the runtime
        // binds the host's over them, and an image's own (or its symlink) is kept.
        if seen.contains_key(path.as_str()) || blocked(path) {
            continue;
        }
        let mut data = contents.as_slice();
        let source = sifr_squashfs::FileSource::Reader(&mut data);
        let mut e = sifr_squashfs::Entry::new(sifr_squashfs::EntryKind::File(source), *mode);
        e.mtime = mtime;
        w.add(path, e)?;
    }
    Ok(stats)
}

/// Names at the root that belong to the metadata layout and are always replaced.
const OWNED_LINKS: &[&str] = &[
    "singularity",
    "environment",
    ".run",
    ".exec",
    ".shell",
    ".test",
];

/// Passes merged entries to the SquashFS writer, dropping the image's own `/.singularity.d`
/// and compatibility links (this module writes them, as Apptainer overwrites them), and
/// remembering the kind of every path two levels deep or less (the skeleton's places).
/// A hard link into a dropped path fails the pull as a missing target; no real image has one.
struct ImageSink<S> {
    inner: S,
    /// Path → is a directory.
    seen: HashMap<String, bool>,
}

// stays literal: every `Sink` implementation repeats the trait's method signatures.
impl<S: Sink> Sink for ImageSink<S> {
    fn entry(
        &mut self,
        path: &RelPath,
        kind: &EntryKind,
        meta: &EntryMeta,
        data: &mut dyn Read,
    ) -> Result<(), SinkError> {
        let text = String::from_utf8_lossy(path.as_bytes());
        let top = text.split('/').next().unwrap_or_default();
        if top == SINGULARITY_D || (!text.contains('/') && OWNED_LINKS.contains(&top)) {
            return Ok(());
        }
        if text.split('/').count() <= 2 {
            self.seen
                .insert(text.into_owned(), *kind == EntryKind::Directory);
        }
        self.inner.entry(path, kind, meta, data)
    }
}

/// The files this module adds, as a tree `inspect_tree` can read for `inspect-metadata.json`.
struct Metadata {
    /// Path → (mode, contents), for the base files and the OCI config's scripts and labels.
    files: BTreeMap<String, (u32, Vec<u8>)>,
}

impl Metadata {
    fn of(config: &ImageConfig) -> Metadata {
        let mut files: BTreeMap<String, (u32, Vec<u8>)> = BASE_FILES
            .iter()
            .map(|(p, m, c)| (p.to_string(), (*m, c.as_bytes().to_vec())))
            .collect();
        let c = config.config.clone().unwrap_or_default();
        let d = |name: &str| format!("{SINGULARITY_D}/{name}");
        files.insert(
            d("env/10-docker2singularity.sh"),
            (
                0o755,
                ociconfig::env_script(&c.env.unwrap_or_default()).into_bytes(),
            ),
        );
        files.insert(
            d("runscript"),
            (
                0o755,
                ociconfig::runscript(
                    &c.entrypoint.unwrap_or_default(),
                    &c.cmd.unwrap_or_default(),
                )
                .into_bytes(),
            ),
        );
        if let Some(labels) = c.labels.filter(|l| !l.is_empty()) {
            let json = serde_json::to_string_pretty(&labels).unwrap_or_else(|_| "{}".into());
            files.insert(d("labels.json"), (0o644, json.into_bytes()));
        }
        Metadata { files }
    }
}

impl ImageTree for Metadata {
    type Error = std::convert::Infallible;
    fn is_dir(&self, rel: &str) -> Result<bool, Self::Error> {
        let prefix = format!("{rel}/");
        Ok(self.files.keys().any(|k| k.starts_with(&prefix)))
    }
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.files.get(rel).map(|(_, c)| c.clone()))
    }
    fn list(&self, rel: &str) -> Result<Vec<String>, Self::Error> {
        let prefix = format!("{rel}/");
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|r| r.split('/').next().unwrap_or(r).to_string())
            .collect();
        names.dedup();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sifr_oci::manifest::ContainerConfig;

    fn config() -> ImageConfig {
        ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            config: Some(ContainerConfig {
                env: Some(vec!["PATH=/opt/bin:/usr/bin".into(), "GREETING=hi".into()]),
                entrypoint: Some(vec!["/bin/echo".into()]),
                cmd: Some(vec!["from-cmd".into()]),
                labels: Some([("maintainer".to_string(), "x".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn inspect_metadata_of_a_pulled_image_reports_its_runscript_env_and_labels() {
        let meta = Metadata::of(&config());
        let i = crate::layout::inspect_tree(&meta).unwrap();
        let a = &i.attributes;
        assert!(a.runscript.contains("exec '/bin/echo' \"$@\""), "{a:?}");
        assert!(a.runscript.contains("set -- 'from-cmd'"));
        assert_eq!(a.labels.get("maintainer").map(String::as_str), Some("x"));
        let env = &a.environment["/.singularity.d/env/10-docker2singularity.sh"];
        assert!(env.contains("export GREETING=\"${GREETING:-hi}\""), "{env}");
        assert!(
            a.environment
                .contains_key("/.singularity.d/env/90-environment.sh")
        );
    }
}
