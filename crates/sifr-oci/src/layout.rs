//! Local image sources: OCI image layouts (`oci:DIR[:TAG]`), tars of them
//! (`oci-archive:FILE[:TAG]`) and `docker save` output (`docker-archive:FILE[:REF]`), all read
//! into one [`LocalImage`]: manifest, config, and layers ready for [`crate::merge`].
//!
//! Archives are never unpacked: one pass over the tar headers records where each member's
//! bytes are, and layers are read in place as windows of the archive file. JSON documents
//! are verified against their digests when one is known; layers are verified while the
//! merge streams them ([`FileLayer::verify`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::digest::{Digest, VerifyError};
use crate::manifest::{
    self, Descriptor, ImageConfig, Index, Manifest, ManifestError, ManifestKind, Platform,
};
use crate::merge::{FileLayer, RelPath};
use crate::reference::ImageSource;

/// JSON documents larger than this are refused rather than read into memory.
const MAX_JSON: u64 = 16 << 20;
/// Index → index → manifest nesting deeper than this is refused.
const MAX_DEPTH: usize = 4;

/// Failures reading a local image; each names the file and the member.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{member}` is missing from `{path}`")]
    Missing { path: PathBuf, member: String },
    #[error("`{member}` in `{path}` is larger than {MAX_JSON} bytes")]
    TooLarge { path: PathBuf, member: String },
    #[error("cannot parse `{member}` in `{path}`")]
    Json {
        path: PathBuf,
        member: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{member}` in `{path}` does not match its digest")]
    Verify {
        path: PathBuf,
        member: String,
        #[source]
        source: VerifyError,
    },
    #[error("in `{path}`")]
    Manifest {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
    #[error("no image named `{name}` in `{path}`; available: {available}")]
    NoSuchName {
        path: PathBuf,
        name: String,
        available: String,
    },
    #[error("`{path}` holds {count} images; name one (available: {available})")]
    Ambiguous {
        path: PathBuf,
        count: usize,
        available: String,
    },
    #[error("`{path}` nests indexes deeper than {MAX_DEPTH}")]
    TooDeep { path: PathBuf },
}

/// An image read from a local source.
#[derive(Debug, Clone)]
pub struct LocalImage {
    pub manifest: Manifest,
    /// The manifest's digest where the source records one (not for `docker-archive`).
    pub manifest_digest: Option<Digest>,
    pub config: ImageConfig,
    pub config_bytes: Vec<u8>,
    /// Layers base first, each reading the raw (possibly compressed) blob.
    pub layers: Vec<FileLayer>,
}

/// Where members live: a directory, or windows of an uncompressed tar.
enum Store {
    Dir(PathBuf),
    Tar {
        file: PathBuf,
        members: HashMap<String, (u64, u64)>,
    },
}

impl Store {
    fn path(&self) -> &Path {
        match self {
            Store::Dir(p) => p,
            Store::Tar { file, .. } => file,
        }
    }

    /// Index a tar's regular members by normalised name; symlinks (old `docker save`
    /// shares `layer.tar` files that way) are resolved lexically inside the archive.
    fn tar(file: &Path) -> Result<Self, LayoutError> {
        let io_err = |source| LayoutError::Io {
            path: file.to_path_buf(),
            source,
        };
        let f = File::open(file).map_err(io_err)?;
        let mut archive = tar::Archive::new(f);
        let mut members = HashMap::new();
        let mut links = Vec::new();
        for entry in archive.entries_with_seek().map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let Ok(name) = RelPath::normalise(&entry.path_bytes()) else {
                continue;
            };
            let name = String::from_utf8_lossy(name.path.as_bytes()).into_owned();
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    members.insert(name, (entry.raw_file_position(), entry.size()));
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = entry.link_name_bytes() {
                        let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                            Path::new(&name)
                                .parent()
                                .map(|p| p.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        } else {
                            String::new()
                        };
                        let joined = format!("{base}/{}", String::from_utf8_lossy(&target));
                        if let Ok(t) = RelPath::normalise(joined.as_bytes()) {
                            links.push((
                                name,
                                String::from_utf8_lossy(t.path.as_bytes()).into_owned(),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        // Resolve link chains a bounded number of times.
        for _ in 0..8 {
            for (name, target) in &links {
                if let Some(&w) = members.get(target) {
                    members.entry(name.clone()).or_insert(w);
                }
            }
        }
        Ok(Store::Tar {
            file: file.to_path_buf(),
            members,
        })
    }

    fn missing(&self, member: &str) -> LayoutError {
        LayoutError::Missing {
            path: self.path().to_path_buf(),
            member: member.to_string(),
        }
    }

    /// Read a small member whole, verifying it when `digest` is given.
    fn read(&self, member: &str, digest: Option<&Digest>) -> Result<Vec<u8>, LayoutError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LayoutError::Io { path, source }
        };
        let (mut reader, len): (Box<dyn Read>, u64) = match self {
            Store::Dir(dir) => {
                let p = dir.join(member);
                let f = File::open(&p).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        self.missing(member)
                    } else {
                        io_err(&p)(e)
                    }
                })?;
                let len = f.metadata().map_err(io_err(&p))?.len();
                (Box::new(f), len)
            }
            Store::Tar { file, members } => {
                let &(offset, len) = members.get(member).ok_or_else(|| self.missing(member))?;
                let mut f = File::open(file).map_err(io_err(file))?;
                f.seek(SeekFrom::Start(offset)).map_err(io_err(file))?;
                (Box::new(f.take(len)), len)
            }
        };
        if len > MAX_JSON {
            return Err(LayoutError::TooLarge {
                path: self.path().to_path_buf(),
                member: member.to_string(),
            });
        }
        let mut buf = Vec::with_capacity(len as usize);
        reader.read_to_end(&mut buf).map_err(io_err(self.path()))?;
        if let Some(d) = digest {
            let actual = Digest::of(&buf);
            if actual != *d {
                return Err(LayoutError::Verify {
                    path: self.path().to_path_buf(),
                    member: member.to_string(),
                    source: VerifyError::Digest {
                        expected: *d,
                        actual,
                    },
                });
            }
        }
        Ok(buf)
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        member: &str,
        bytes: &[u8],
    ) -> Result<T, LayoutError> {
        serde_json::from_slice(bytes).map_err(|source| LayoutError::Json {
            path: self.path().to_path_buf(),
            member: member.to_string(),
            source,
        })
    }

    /// [`Store::json`] for an image config, which must be an object ([`ImageConfig::parse`]).
    fn config(&self, member: &str, bytes: &[u8]) -> Result<ImageConfig, LayoutError> {
        ImageConfig::parse(bytes).map_err(|source| LayoutError::Json {
            path: self.path().to_path_buf(),
            member: member.to_string(),
            source,
        })
    }

    fn layer(
        &self,
        member: &str,
        name: String,
        verify: Option<(Digest, Option<u64>)>,
    ) -> Result<FileLayer, LayoutError> {
        Ok(match self {
            Store::Dir(dir) => {
                let p = dir.join(member);
                if !p.is_file() {
                    return Err(self.missing(member));
                }
                FileLayer {
                    path: p,
                    name,
                    window: None,
                    verify,
                }
            }
            Store::Tar { file, members } => {
                let &w = members.get(member).ok_or_else(|| self.missing(member))?;
                FileLayer {
                    path: file.clone(),
                    name,
                    window: Some(w),
                    verify,
                }
            }
        })
    }
}

fn blob_member(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Open any local source (`oci:`, `oci-archive:`, `docker-archive:`); `None` for a
/// registry reference, which needs the client.
pub fn open(source: &ImageSource, platform: &Platform) -> Option<Result<LocalImage, LayoutError>> {
    Some(match source {
        ImageSource::Registry(_) => return None,
        ImageSource::OciLayout { path, tag } => open_oci_dir(path, tag.as_deref(), platform),
        ImageSource::OciArchive { path, tag } => open_oci_archive(path, tag.as_deref(), platform),
        ImageSource::DockerArchive { path, reference } => {
            open_docker_archive(path, reference.as_deref())
        }
    })
}

/// Read an OCI image layout directory.
pub fn open_oci_dir(
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<LocalImage, LayoutError> {
    open_oci(&Store::Dir(dir.to_path_buf()), tag, platform)
}

/// Read a tar of an OCI image layout without unpacking it.
pub fn open_oci_archive(
    file: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<LocalImage, LayoutError> {
    open_oci(&Store::tar(file)?, tag, platform)
}

fn open_oci(
    store: &Store,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<LocalImage, LayoutError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct LayoutMarker {
        #[allow(dead_code)]
        image_layout_version: String,
    }
    let marker = store.read("oci-layout", None)?;
    store.json::<LayoutMarker>("oci-layout", &marker)?;
    let index_bytes = store.read("index.json", None)?;
    let index: Index = store.json("index.json", &index_bytes)?;
    let names = || {
        let v: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|d| d.annotations.get(manifest::REF_NAME))
            .map(|n| format!("`{n}`"))
            .collect();
        if v.is_empty() {
            "none named".to_string()
        } else {
            v.join(", ")
        }
    };
    let desc: &Descriptor = match tag {
        Some(t) => index
            .manifests
            .iter()
            .find(|d| {
                d.annotations
                    .get(manifest::REF_NAME)
                    .is_some_and(|n| n == t || n.rsplit_once(':').is_some_and(|(_, tag)| tag == t))
            })
            .ok_or_else(|| LayoutError::NoSuchName {
                path: store.path().to_path_buf(),
                name: t.to_string(),
                available: names(),
            })?,
        None if index.manifests.len() == 1 => &index.manifests[0],
        None => {
            return Err(LayoutError::Ambiguous {
                path: store.path().to_path_buf(),
                count: index.manifests.len(),
                available: names(),
            });
        }
    };
    let mut desc = desc.clone();
    let manifest_err = |source| LayoutError::Manifest {
        path: store.path().to_path_buf(),
        source,
    };
    for _ in 0..MAX_DEPTH {
        let member = blob_member(&desc.digest);
        let bytes = store.read(&member, Some(&desc.digest))?;
        match ManifestKind::parse(&bytes, Some(&desc.media_type), &desc.digest.to_string())
            .map_err(manifest_err)?
        {
            ManifestKind::Index(idx) => {
                desc = idx
                    .select(platform, &desc.digest.to_string())
                    .map_err(manifest_err)?
                    .clone();
            }
            ManifestKind::Image(m) => {
                let config_bytes =
                    store.read(&blob_member(&m.config.digest), Some(&m.config.digest))?;
                let config = store.config(&blob_member(&m.config.digest), &config_bytes)?;
                let layers = m
                    .layers
                    .iter()
                    .map(|l| {
                        store.layer(
                            &blob_member(&l.digest),
                            l.digest.to_string(),
                            Some((l.digest, Some(l.size))),
                        )
                    })
                    .collect::<Result<_, _>>()?;
                return Ok(LocalImage {
                    manifest: m,
                    manifest_digest: Some(desc.digest),
                    config,
                    config_bytes,
                    layers,
                });
            }
        }
    }
    Err(LayoutError::TooDeep {
        path: store.path().to_path_buf(),
    })
}

/// Read `docker save` output. `reference` picks an image by one of its `RepoTags`
/// (`app:v1`, or the same with `docker.io/library/` spelled out).
pub fn open_docker_archive(
    file: &Path,
    reference: Option<&str>,
) -> Result<LocalImage, LayoutError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let store = Store::tar(file)?;
    let bytes = store.read("manifest.json", None)?;
    let entries: Vec<Entry> = store.json("manifest.json", &bytes)?;
    let tags = |e: &Entry| e.repo_tags.clone().unwrap_or_default();
    let available = || {
        entries
            .iter()
            .flat_map(tags)
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let short = |t: &str| {
        t.trim_start_matches("docker.io/")
            .trim_start_matches("library/")
            .to_string()
    };
    let entry = match reference {
        Some(r) => entries
            .iter()
            .find(|e| tags(e).iter().any(|t| t == r || short(t) == short(r)))
            .ok_or_else(|| LayoutError::NoSuchName {
                path: file.to_path_buf(),
                name: r.to_string(),
                available: available(),
            })?,
        None if entries.len() == 1 => &entries[0],
        None => {
            return Err(LayoutError::Ambiguous {
                path: file.to_path_buf(),
                count: entries.len(),
                available: available(),
            });
        }
    };
    let config_name = RelPath::new(&entry.config)
        .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
        .unwrap_or_default();
    let from_blob_name = |name: &str| {
        name.strip_prefix("blobs/sha256/")
            .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok())
    };
    let config_bytes = store.read(&config_name, from_blob_name(&config_name).as_ref())?;
    let config = store.config(&config_name, &config_bytes)?;
    let diff_ids = config
        .rootfs
        .as_ref()
        .map(|r| r.diff_ids.clone())
        .unwrap_or_default();
    let Store::Tar { members, .. } = &store else {
        unreachable!("docker archives are tars")
    };
    let mut layers = Vec::new();
    let mut descs = Vec::new();
    for (i, l) in entry.layers.iter().enumerate() {
        let member = RelPath::new(l)
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .unwrap_or_default();
        // Layers are stored uncompressed, so the file's digest is the config's diff_id;
        // newer `docker save` names them by that digest too.
        let digest = from_blob_name(&member).or_else(|| diff_ids.get(i).copied());
        let size = members.get(&member).map(|w| w.1);
        layers.push(store.layer(
            &member,
            format!("{}:{member}", file.display()),
            digest.map(|d| (d, size)),
        )?);
        if let (Some(digest), Some(size)) = (digest, size) {
            descs.push(Descriptor {
                media_type: "application/vnd.docker.image.rootfs.diff.tar".to_string(),
                digest,
                size,
                platform: None,
                annotations: Default::default(),
                urls: Vec::new(),
            });
        }
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(manifest::DOCKER_MANIFEST.to_string()),
        config: Descriptor {
            media_type: manifest::DOCKER_CONFIG.to_string(),
            digest: Digest::of(&config_bytes),
            size: config_bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
            urls: Vec::new(),
        },
        layers: descs,
        annotations: Default::default(),
    };
    Ok(LocalImage {
        manifest,
        manifest_digest: None,
        config,
        config_bytes,
        layers,
    })
}
