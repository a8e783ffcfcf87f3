//! The JSON documents of an image: descriptors, manifests, indexes (manifest lists), the
//! image config, and platform selection. Docker schema 2 and OCI media types are both
//! accepted: their JSON shapes are the same where this crate looks.
//!
//! Pure data and parsing; no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The `Accept` header for manifest requests: every kind this crate can read.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The annotation naming a manifest in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A manifest JSON that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot parse {what} `{digest}`")]
    Json {
        what: &'static str,
        digest: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("unsupported manifest media type `{media_type}` for `{digest}`")]
    MediaType { media_type: String, digest: String },
    #[error("no manifest for platform `{wanted}` in index `{digest}`; available: {available}")]
    NoPlatform {
        wanted: String,
        digest: String,
        available: String,
    },
}

/// A pointer to content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OS/architecture pair in Go's spelling (`linux`/`amd64`, `arm64` + `v8`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `linux` and the architecture this binary was built for, in Go's names.
    pub fn host() -> Self {
        // An architecture Go has no name for keeps Rust's spelling, as a registry might use it.
        Platform::linux(match sifr_arch::Arch::host() {
            sifr_arch::Arch::Unknown => std::env::consts::ARCH,
            known => known.go_name(),
        })
    }

    /// `linux/<arch>`, with `arch` as Apptainer's `--arch` takes it (`amd64`, `arm64v8`,
    /// `arm32v7`, `ppc64le`, …) or in Go's spelling.
    pub fn linux(arch: &str) -> Self {
        let (architecture, variant) = match arch {
            "arm64" | "arm64v8" | "aarch64" => ("arm64", Some("v8")),
            "arm32v7" | "armhf" | "arm" => ("arm", Some("v7")),
            "arm32v6" | "armel" => ("arm", Some("v6")),
            "arm32v5" => ("arm", Some("v5")),
            "x86_64" => ("amd64", None),
            "i386" | "x86" => ("386", None),
            other => (other, None),
        };
        Platform {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Does an index entry's platform serve this one? A missing variant on either side
    /// matches (many single-variant images omit it), as containerd's default matcher does.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The parts of the image config this crate needs; the raw bytes are kept alongside for
/// whoever needs more (labels, history).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

impl ImageConfig {
    /// Parse an image config. It must be a JSON object: serde would also read an array into
    /// this struct field by field (`[]` as an empty config, `["arm64"]` as an architecture),
    /// which no writer makes and Go's decoder, Apptainer's, refuses.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_slice(bytes)?;
        if !value.is_object() {
            return Err(serde::de::Error::custom(
                "an image config must be a JSON object",
            ));
        }
        serde_json::from_value(value)
    }
}

/// What a container of the image runs with (Docker's capitalised field names).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Digests of the uncompressed layers, base first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// A manifest or an index, told apart by media type (or, when absent, by shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestKind {
    Image(Manifest),
    Index(Index),
}

impl ManifestKind {
    /// Parse manifest bytes; `content_type` is the HTTP `Content-Type` or the descriptor's
    /// media type, if known.
    pub fn parse(
        bytes: &[u8],
        content_type: Option<&str>,
        digest: &str,
    ) -> Result<Self, ManifestError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
        }
        let json = |what, source| ManifestError::Json {
            what,
            digest: digest.to_string(),
            source,
        };
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| json("manifest", e))?;
        let media = probe
            .media_type
            .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string()))
            .filter(|m| {
                !m.is_empty() && m != "application/json" && m != "application/octet-stream"
            });
        let is_index = match media.as_deref() {
            Some(OCI_INDEX | DOCKER_LIST) => true,
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
            None => probe.manifests.is_some(),
            Some(other) => {
                return Err(ManifestError::MediaType {
                    media_type: other.to_string(),
                    digest: digest.to_string(),
                });
            }
        };
        Ok(if is_index {
            ManifestKind::Index(serde_json::from_slice(bytes).map_err(|e| json("index", e))?)
        } else {
            ManifestKind::Image(serde_json::from_slice(bytes).map_err(|e| json("manifest", e))?)
        })
    }
}

impl Index {
    /// The manifest for `want`; `digest` names this index in errors.
    pub fn select(&self, want: &Platform, digest: &str) -> Result<&Descriptor, ManifestError> {
        self.manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
            .ok_or_else(|| ManifestError::NoPlatform {
                wanted: want.to_string(),
                digest: digest.to_string(),
                available: self
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| format!("`{p}`")))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn index_json() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
              {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}},
              {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D}","size":2,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
              {{"mediaType":"{DOCKER_MANIFEST}","digest":"{D}","size":3,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}}]}}"#
        )
    }

    #[test]
    fn index_selects_by_platform_and_names_what_is_available() {
        let ManifestKind::Index(idx) =
            ManifestKind::parse(index_json().as_bytes(), None, D).unwrap()
        else {
            panic!("not an index")
        };
        assert_eq!(idx.select(&Platform::linux("amd64"), D).unwrap().size, 1);
        assert_eq!(idx.select(&Platform::linux("arm64"), D).unwrap().size, 2);
        assert_eq!(idx.select(&Platform::linux("arm32v7"), D).unwrap().size, 3);
        let e = idx
            .select(&Platform::linux("s390x"), D)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`linux/s390x`") && e.contains("`linux/arm/v7`"),
            "{e}"
        );
    }

    #[test]
    fn manifest_kind_by_media_type_or_shape() {
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{D}","size":2}},"layers":[]}}"#
        );
        assert!(matches!(
            ManifestKind::parse(m.as_bytes(), Some(OCI_MANIFEST), D),
            Ok(ManifestKind::Image(_))
        ));
        assert!(matches!(
            ManifestKind::parse(m.as_bytes(), None, D),
            Ok(ManifestKind::Image(_))
        ));
        let e = ManifestKind::parse(
            m.as_bytes(),
            Some("application/vnd.docker.distribution.manifest.v1+json"),
            D,
        )
        .unwrap_err();
        assert!(e.to_string().contains("manifest.v1"), "{e}");
    }

    #[test]
    fn host_platform_uses_go_names() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        assert!(
            !h.architecture.is_empty() && h.architecture != "x86_64" && h.architecture != "aarch64"
        );
    }

    /// A config that is not an object is refused (serde alone read `[]` as an empty config,
    /// and the image ran with no entrypoint: found by the mutation suite).
    #[test]
    fn an_image_config_must_be_an_object() {
        for bad in [&b"[]"[..], b"[\"arm64\", \"linux\"]", b"null", b"7"] {
            let err = ImageConfig::parse(bad).unwrap_err();
            assert!(
                err.to_string().contains("must be a JSON object"),
                "{}: {err}",
                String::from_utf8_lossy(bad)
            );
        }
        let ok = ImageConfig::parse(br#"{"architecture":"arm64","os":"linux"}"#).unwrap();
        assert_eq!(ok.architecture, "arm64");
    }
}
