//! SIF files stored in OCI registries as ORAS artifacts, as Apptainer pushes and pulls them
//! (`oras://REGISTRY/REPO:TAG`): an OCI image manifest whose config is the empty JSON `{}`
//! typed [`SIF_CONFIG`] and whose one layer is the SIF file itself, typed [`SIF_LAYER`] and
//! titled with the file's name.
//!
//! ```text
//! resolve_sif: manifest (an index: the platform's entry) ─► one SIF layer ─► SifArtifact
//! fetch_sif:   blob ─► temporary file beside dest ─► size, digest, SIF magic ─► dest
//! push_sif:    SIF magic ─► layer blob, config blob (each skipped when there) ─► manifest
//! ```
//!
//! Apptainer's checks are kept: one layer of either SIF media type (the config's media type
//! is not checked, since old pushers set it inconsistently), and a downloaded file must be a
//! SIF. Caching is the caller's (keyed by [`SifArtifact::manifest_digest`] or the layer's
//! digest); nothing here prints.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::client::{Client, ClientError};
use crate::digest::{Digest, Hasher};
use crate::manifest::{
    DOCKER_CONFIG, Descriptor, Manifest, ManifestKind, OCI_CONFIG, OCI_MANIFEST,
};
use crate::reference::Reference;

/// The media type of the layer that is the SIF file (Apptainer and SingularityCE 3.7 on).
pub const SIF_LAYER: &str = "application/vnd.sylabs.sif.layer.v1.sif";
/// The layer media type of Singularity before 3.7, misspelt as it was published; pulled, never
/// pushed.
pub const SIF_LAYER_PROTO: &str = "appliciation/vnd.sylabs.sif.layer.tar";
/// The config's media type; the config itself is [`EMPTY_CONFIG`].
pub const SIF_CONFIG: &str = "application/vnd.sylabs.sif.config.v1+json";
/// The config blob: the empty JSON object.
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// The layer annotation holding the SIF's file name.
pub const TITLE: &str = "org.opencontainers.image.title";

/// Where a SIF's magic is, and what it says.
const MAGIC_OFFSET: usize = 32;
const MAGIC: &[u8] = b"SIF_MAGIC\0";
/// Index → manifest nesting deeper than this is refused.
const MAX_DEPTH: usize = 4;

/// An ORAS SIF artifact found in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SifArtifact {
    /// The digest of the manifest (of the platform's manifest, when the tag names an index).
    pub manifest_digest: Digest,
    /// The SIF layer.
    pub sif: Descriptor,
}

/// ORAS failures; each names the reference or file involved.
#[derive(Debug, thiserror::Error)]
pub enum OrasError {
    #[error("cannot fetch `oras://{reference}`")]
    Client {
        reference: String,
        #[source]
        source: Box<ClientError>,
    },
    #[error("cannot push to `oras://{reference}`")]
    Push {
        reference: String,
        #[source]
        source: Box<ClientError>,
    },
    #[error("`oras://{reference}` is not a SIF stored as an ORAS artifact: {found}")]
    NotSifArtifact {
        reference: String,
        /// The media types found, as text.
        found: String,
        /// Its config or layers are those of a container image.
        container_image: bool,
    },
    #[error("`oras://{reference}` has an unsupported manifest")]
    Manifest {
        reference: String,
        #[source]
        source: crate::manifest::ManifestError,
    },
    #[error("`oras://{reference}` nests indexes deeper than {MAX_DEPTH}")]
    TooDeep { reference: String },
    #[error(
        "the SIF of `oras://{reference}` does not match its manifest: got {size} bytes with digest \
         `{digest}`, expected {expected_size} bytes with digest `{expected}`"
    )]
    Mismatch {
        reference: String,
        size: u64,
        digest: Digest,
        expected_size: u64,
        expected: Digest,
    },
    #[error("the file stored at `oras://{reference}` is not a SIF image")]
    BlobNotSif { reference: String },
    #[error("`{}` is not a SIF image: {why}", path.display())]
    NotSifFile { path: PathBuf, why: String },
    #[error("`{}` already exists", path.display())]
    Exists { path: PathBuf },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl OrasError {
    /// What the user can do about it, where that is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            OrasError::Client { source, .. }
                if matches!(&**source, ClientError::Status { status: 404, url, .. }
                    if url.contains("/manifests/")) =>
            {
                Some("the registry has no such repository or tag: check the name".into())
            }
            OrasError::Client { source, .. } | OrasError::Push { source, .. } => source.hint(),
            OrasError::NotSifArtifact {
                reference,
                container_image: true,
                ..
            } => Some(format!(
                "this is a container image: use docker://{reference}"
            )),
            OrasError::NotSifArtifact { .. } => {
                Some("oras:// holds SIF files pushed with `sifr push` or `apptainer push`".into())
            }
            OrasError::Exists { .. } => Some("use --force to overwrite it".into()),
            OrasError::NotSifFile { .. } => Some(
                "build a SIF with `sifr build`; only SIF files can be pushed to oras://".into(),
            ),
            _ => None,
        }
    }
}

type Result<T, E = OrasError> = std::result::Result<T, E>;

/// Fetch `r`'s manifest (following an index to the client's platform, as Apptainer's does)
/// and check that it is an ORAS SIF artifact: exactly one layer, of [`SIF_LAYER`] or
/// [`SIF_LAYER_PROTO`].
pub fn resolve_sif(client: &Client, r: &Reference) -> Result<SifArtifact> {
    let client_err = |source| OrasError::Client {
        reference: r.to_string(),
        source: Box::new(source),
    };
    let manifest_err = |source| OrasError::Manifest {
        reference: r.to_string(),
        source,
    };
    let mut wanted = r.manifest_ref();
    let mut expected = r.digest;
    for _ in 0..MAX_DEPTH {
        let (bytes, content_type, digest) = client
            .manifest_bytes(r, &wanted, expected)
            .map_err(client_err)?;
        match ManifestKind::parse(&bytes, content_type.as_deref(), &digest.to_string())
            .map_err(manifest_err)?
        {
            ManifestKind::Index(idx) => {
                let d = idx
                    .select(&client.options().platform, &digest.to_string())
                    .map_err(manifest_err)?;
                wanted = d.digest.to_string();
                expected = Some(d.digest);
            }
            ManifestKind::Image(m) => return sif_layer(r, m, digest),
        }
    }
    Err(OrasError::TooDeep {
        reference: r.to_string(),
    })
}

/// The one SIF layer of manifest `m`, or the error naming what `m` holds instead.
fn sif_layer(r: &Reference, m: Manifest, manifest_digest: Digest) -> Result<SifArtifact> {
    if let [layer] = m.layers.as_slice()
        && (layer.media_type == SIF_LAYER || layer.media_type == SIF_LAYER_PROTO)
    {
        return Ok(SifArtifact {
            manifest_digest,
            sif: layer.clone(),
        });
    }
    let layers: Vec<&str> = m.layers.iter().map(|l| l.media_type.as_str()).collect();
    let container_image = m.config.media_type == OCI_CONFIG
        || m.config.media_type == DOCKER_CONFIG
        || layers
            .iter()
            .any(|l| l.contains(".layer.") && l.contains("tar"));
    let found = format!(
        "config `{}`, {} layer{}{}",
        m.config.media_type,
        layers.len(),
        if layers.len() == 1 { "" } else { "s" },
        if layers.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                layers
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Err(OrasError::NotSifArtifact {
        reference: r.to_string(),
        found,
        container_image,
    })
}

/// Download the SIF of `artifact` into the new file `dest`, through a temporary file beside
/// it, checking the size, the digest and the SIF magic before `dest` appears. An existing
/// `dest` is never replaced; on any failure nothing is left behind.
pub fn fetch_sif(
    client: &Client,
    r: &Reference,
    artifact: &SifArtifact,
    dest: &Path,
) -> Result<()> {
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(OrasError::Exists {
            path: dest.to_path_buf(),
        });
    }
    let (mut file, temp) = Temp::beside(dest)?;
    client
        .blob_to_file(r, &artifact.sif, &mut file)
        .map_err(|source| OrasError::Client {
            reference: r.to_string(),
            source: Box::new(source),
        })?;
    drop(file);
    let (digest, size, magic) = digest_of(&temp.path)?;
    if digest != artifact.sif.digest || size != artifact.sif.size {
        return Err(OrasError::Mismatch {
            reference: r.to_string(),
            size,
            digest,
            expected_size: artifact.sif.size,
            expected: artifact.sif.digest,
        });
    }
    if !magic {
        return Err(OrasError::BlobNotSif {
            reference: r.to_string(),
        });
    }
    temp.persist_new(dest)
}

/// Check that `path` is a SIF file (by its magic), with the reason when it is not.
pub fn check_sif_file(path: &Path) -> Result<()> {
    let not = |why: String| OrasError::NotSifFile {
        path: path.to_path_buf(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| not(e.to_string()))?;
    if !meta.is_file() {
        return Err(not("not a regular file".into()));
    }
    let mut head = [0u8; MAGIC_OFFSET + MAGIC.len()];
    let mut f = File::open(path).map_err(|e| not(e.to_string()))?;
    match f.read_exact(&mut head) {
        Ok(()) if &head[MAGIC_OFFSET..] == MAGIC => Ok(()),
        Ok(()) => Err(not("no SIF magic in its header".into())),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(not("too short for a SIF header".into()))
        }
        Err(e) => Err(not(e.to_string())),
    }
}

/// The manifest Apptainer pushes for the SIF `name` (its file name) of `size` bytes.
pub fn sif_manifest(name: &str, digest: Digest, size: u64) -> Manifest {
    Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config: Descriptor {
            media_type: SIF_CONFIG.to_string(),
            digest: Digest::of(EMPTY_CONFIG),
            size: EMPTY_CONFIG.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
        },
        layers: vec![Descriptor {
            media_type: SIF_LAYER.to_string(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::from([(TITLE.to_string(), name.to_string())]),
            urls: Vec::new(),
        }],
        annotations: BTreeMap::new(),
    }
}

/// Push the SIF file `sif` to `r` as Apptainer does: the file as the one layer, the empty
/// config, then the manifest under `r`'s tag. Blobs the repository already holds are not sent
/// again. Returns the manifest's digest. A file that is not a SIF is refused before any
/// request.
pub fn push_sif(client: &Client, r: &Reference, sif: &Path) -> Result<Digest> {
    check_sif_file(sif)?;
    let (digest, size, _) = digest_of(sif)?;
    let name = sif
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let push_err = |source| OrasError::Push {
        reference: r.to_string(),
        source: Box::new(source),
    };
    if !client.blob_exists(r, &digest).map_err(push_err)? {
        client.upload_file(r, &digest, sif).map_err(push_err)?;
    }
    let config = Digest::of(EMPTY_CONFIG);
    if !client.blob_exists(r, &config).map_err(push_err)? {
        client.upload_bytes(r, EMPTY_CONFIG).map_err(push_err)?;
    }
    let manifest = serde_json::to_vec(&sif_manifest(&name, digest, size))
        .expect("a manifest always serialises");
    client
        .put_manifest(r, OCI_MANIFEST, &manifest)
        .map_err(push_err)
}

/// The digest and size of the file `path`, and whether it starts as a SIF does.
fn digest_of(path: &Path) -> Result<(Digest, u64, bool)> {
    let read_err = |source| OrasError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(read_err)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut head = Vec::with_capacity(MAGIC_OFFSET + MAGIC.len());
    loop {
        let n = f.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        let want = (MAGIC_OFFSET + MAGIC.len()).saturating_sub(head.len());
        head.extend_from_slice(&buf[..n.min(want)]);
        h.update(&buf[..n]);
    }
    let magic = head.get(MAGIC_OFFSET..) == Some(MAGIC);
    let size = h.len();
    Ok((h.finish(), size, magic))
}

/// A temporary file beside its destination, removed when dropped unless persisted.
struct Temp {
    path: PathBuf,
    keep: bool,
}

impl Temp {
    fn beside(dest: &Path) -> Result<(File, Temp)> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pid = std::process::id();
        let mut n = 0u32;
        loop {
            let path = dir.join(format!(".{name}.sifr-part-{pid}-{n}"));
            // 0777 before the umask: a SIF starts with `#!` and runs, as Apptainer's copy out
            // of its cache makes it.
            match File::options()
                .write(true)
                .read(true)
                .create_new(true)
                .mode(0o777)
                .open(&path)
            {
                Ok(f) => return Ok((f, Temp { path, keep: false })),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(source) => {
                    return Err(OrasError::Write {
                        path: dest.to_path_buf(),
                        source,
                    });
                }
            }
        }
    }

    /// Give the file its name `dest`, which must not exist: a hard link fails rather than
    /// replace one that appeared meanwhile (a rename is the fallback where links are not
    /// supported).
    fn persist_new(mut self, dest: &Path) -> Result<()> {
        let write_err = |source| OrasError::Write {
            path: dest.to_path_buf(),
            source,
        };
        match std::fs::hard_link(&self.path, dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(OrasError::Exists {
                    path: dest.to_path_buf(),
                });
            }
            Err(_) if std::fs::symlink_metadata(dest).is_err() => {
                std::fs::rename(&self.path, dest).map_err(write_err)?;
                self.keep = true;
                return Ok(());
            }
            Err(e) => return Err(write_err(e)),
        }
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(config: &str, layers: &[&str]) -> Manifest {
        let d = |m: &str| Descriptor {
            media_type: m.to_string(),
            digest: Digest::of(m.as_bytes()),
            size: 1,
            platform: None,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
        };
        Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            config: d(config),
            layers: layers.iter().map(|l| d(l)).collect(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn either_sif_layer_media_type_is_accepted() {
        // Apptainer's e2e/pull "oras transport for SIF from registry" and its
        // "(SifLayerMediaTypeProto)" case; the config's type is not checked.
        let r = Reference::parse("h:5000/a/b:1").unwrap();
        for (config, layer) in [
            (SIF_CONFIG, SIF_LAYER),
            (SIF_CONFIG, SIF_LAYER_PROTO),
            ("application/vnd.unknown.config.v1+json", SIF_LAYER),
        ] {
            let a = sif_layer(&r, manifest(config, &[layer]), Digest::of(b"m")).unwrap();
            assert_eq!(a.sif.media_type, layer);
            assert_eq!(a.manifest_digest, Digest::of(b"m"));
        }
    }

    #[test]
    fn a_container_image_is_named_with_a_docker_hint() {
        let r = Reference::parse("h:5000/a/b:1").unwrap();
        let e = sif_layer(
            &r,
            manifest(
                OCI_CONFIG,
                &["application/vnd.oci.image.layer.v1.tar+gzip"; 2],
            ),
            Digest::of(b"m"),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("oras://h:5000/a/b:1")
                && text.contains(OCI_CONFIG)
                && text.contains("2 layers"),
            "{text}"
        );
        assert_eq!(
            e.hint().as_deref(),
            Some("this is a container image: use docker://h:5000/a/b:1")
        );
        // Two SIF layers are not an ORAS SIF either (Apptainer: "should have a single layer").
        let e = sif_layer(&r, manifest(SIF_CONFIG, &[SIF_LAYER; 2]), Digest::of(b"m"));
        assert!(matches!(
            e,
            Err(OrasError::NotSifArtifact {
                container_image: false,
                ..
            })
        ));
    }

    #[test]
    fn the_pushed_manifest_has_apptainers_layout() {
        let d = Digest::of(b"sif");
        let json = serde_json::to_value(sif_manifest("x.sif", d, 3)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.sylabs.sif.config.v1+json",
                    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                    "size": 2
                },
                "layers": [{
                    "mediaType": "application/vnd.sylabs.sif.layer.v1.sif",
                    "digest": d.to_string(),
                    "size": 3,
                    "annotations": {"org.opencontainers.image.title": "x.sif"}
                }]
            })
        );
    }

    #[test]
    fn only_sif_files_pass_the_check() {
        let t = tempfile::tempdir().unwrap();
        let sif = t.path().join("a.sif");
        let mut bytes = b"#!/usr/bin/env run-singularity\n".to_vec();
        bytes.resize(MAGIC_OFFSET, b'\n');
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[0; 100]);
        std::fs::write(&sif, &bytes).unwrap();
        check_sif_file(&sif).unwrap();
        let (d, size, magic) = digest_of(&sif).unwrap();
        assert_eq!(
            (d, size, magic),
            (Digest::of(&bytes), bytes.len() as u64, true)
        );
        // Apptainer's e2e/push "non SIF file", "directory" and "non existent image".
        let text = t.path().join("text");
        std::fs::write(&text, "Invalid Image Contents").unwrap();
        for (p, why) in [
            (text.as_path(), "too short"),
            (t.path(), "not a regular file"),
            (&t.path().join("missing.sif"), "No such file"),
        ] {
            let e = check_sif_file(p).unwrap_err().to_string();
            assert!(e.contains("is not a SIF image") && e.contains(why), "{e}");
        }
        std::fs::write(&text, vec![b'x'; 200]).unwrap();
        let e = check_sif_file(&text).unwrap_err().to_string();
        assert!(e.contains("no SIF magic"), "{e}");
    }

    #[test]
    fn persisting_never_replaces_and_a_dropped_temp_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("x.sif");
        let (_, temp) = Temp::beside(&dest).unwrap();
        let part = temp.path.clone();
        assert!(part.exists());
        drop(temp);
        assert!(!part.exists(), "removed on drop");
        std::fs::write(&dest, "old").unwrap();
        let (_, temp) = Temp::beside(&dest).unwrap();
        assert!(matches!(
            temp.persist_new(&dest),
            Err(OrasError::Exists { .. })
        ));
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old");
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "no part left"
        );
    }
}
