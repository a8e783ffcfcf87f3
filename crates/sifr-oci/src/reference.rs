//! Image references: `[docker://][host[:port]/]name[:tag][@digest]` and the other image
//! sources (`oci:`, `oci-archive:`, `docker-archive:`), parsed and normalised once.
//!
//! Normalisation follows Docker's rules so that `ubuntu` means what `docker pull ubuntu`
//! means: no registry → Docker Hub (`docker.io`, API host `registry-1.docker.io`); a
//! single-component Docker Hub name gets the `library/` namespace; no tag and no digest →
//! `latest`. The first component is a registry only when it contains `.` or `:`, is
//! `localhost`, or is a bracketed IPv6 address — otherwise `myuser/app` would be taken for a
//! host called `myuser`.
//!
//! This module does no I/O and knows nothing of credentials.

use std::fmt;
use std::path::PathBuf;

use crate::digest::{Digest, DigestError};

/// Docker Hub's canonical registry name, as it appears in references and credentials.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's distribution API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Legacy spellings of Docker Hub that normalise to [`DOCKER_HUB`].
const DOCKER_HUB_ALIASES: &[&str] = &[
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];
/// The tag used when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Docker's limit on the full `registry/repository` name.
const MAX_NAME_LEN: usize = 255;
/// Docker's limit on a tag.
const MAX_TAG_LEN: usize = 128;

/// A reference that could not be parsed; each variant names the offending value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("invalid registry `{registry}` in reference `{reference}`")]
    Registry { reference: String, registry: String },
    #[error("invalid port `{port}` in reference `{reference}`: expected 1-65535")]
    Port { reference: String, port: String },
    #[error(
        "invalid repository component `{component}` in reference `{reference}`: expected lower-case \
         letters and digits separated by `.`, `_`, `__` or `-`"
    )]
    Component {
        reference: String,
        component: String,
    },
    #[error(
        "invalid tag `{tag}` in reference `{reference}`: expected [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
    )]
    Tag { reference: String, tag: String },
    #[error("invalid digest in reference `{reference}`")]
    Digest {
        reference: String,
        #[source]
        source: DigestError,
    },
    #[error("repository name in reference `{reference}` is longer than {MAX_NAME_LEN} characters")]
    TooLong { reference: String },
    #[error("unknown image transport `{transport}` in `{source_text}`")]
    Transport {
        source_text: String,
        transport: String,
    },
    #[error("missing path in image source `{source_text}`")]
    MissingPath { source_text: String },
}

/// A normalised registry reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry as written, normalised (`docker.io` for Docker Hub), with `:port` if any.
    pub registry: String,
    /// Repository path, e.g. `library/ubuntu`.
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// Digest; when present it is what gets fetched, the tag is informational.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parse `[docker://][host[:port]/]name[:tag][@digest]` (`//` alone is accepted too, as
    /// Apptainer's definition files produce it).
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let s = input
            .strip_prefix("docker://")
            .or_else(|| input.strip_prefix("//"))
            .unwrap_or(input);
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let err_ref = || input.to_string();
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let digest = Digest::parse(d).map_err(|source| ReferenceError::Digest {
                    reference: err_ref(),
                    source,
                })?;
                (r, Some(digest))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::Tag {
                reference: err_ref(),
                tag: tag.to_string(),
            });
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if looks_like_registry(first) => {
                (validate_registry(input, first)?, path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if repository.is_empty() {
            return Err(ReferenceError::Component {
                reference: err_ref(),
                component: String::new(),
            });
        }
        for component in repository.split('/') {
            if !valid_component(component) {
                return Err(ReferenceError::Component {
                    reference: err_ref(),
                    component: component.to_string(),
                });
            }
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong {
                reference: err_ref(),
            });
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Compose a `Bootstrap: docker` header the way Apptainer does: `Namespace:` is put in
    /// front of `From:`, then `Registry:` in front of that; the result is parsed as usual.
    pub fn from_header(
        from: &str,
        registry: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Self, ReferenceError> {
        let mut s = from
            .trim()
            .trim_start_matches("docker://")
            .trim_start_matches('/')
            .to_string();
        if let Some(ns) = namespace
            .map(|n| n.trim().trim_matches('/'))
            .filter(|n| !n.is_empty())
        {
            s = format!("{ns}/{s}");
        }
        if let Some(reg) = registry
            .map(|r| r.trim().trim_matches('/'))
            .filter(|r| !r.is_empty())
        {
            s = format!("{reg}/{s}");
        }
        Reference::parse(&s)
    }

    /// The host (and port) to talk to: Docker Hub's API host for `docker.io`.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// What to ask the manifest endpoint for: the digest if any, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// True for registries on the loopback interface, where plain HTTP is allowed without
    /// the user asking (Docker treats them as insecure registries too).
    pub fn is_loopback(&self) -> bool {
        let host = host_part(&self.registry);
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/ubuntu:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Where an image comes from, as written after a transport prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `docker://…` or a bare reference.
    Registry(Reference),
    /// `oci:DIR[:TAG]`: an OCI image layout directory; the tag selects by the
    /// `org.opencontainers.image.ref.name` annotation.
    OciLayout { path: PathBuf, tag: Option<String> },
    /// `oci-archive:FILE[:TAG]`: a tar of an OCI image layout.
    OciArchive { path: PathBuf, tag: Option<String> },
    /// `docker-archive:FILE[:REF]`: `docker save` output; `REF` picks by `RepoTags` entry.
    DockerArchive {
        path: PathBuf,
        reference: Option<String>,
    },
}

impl ImageSource {
    /// Parse a source with its transport. Paths may not contain `:` (as in skopeo); the
    /// part after the last `:` is the tag.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let Some((transport, rest)) = input.split_once(':') else {
            return Reference::parse(input).map(ImageSource::Registry);
        };
        let path_tag = |rest: &str| -> Result<(PathBuf, Option<String>), ReferenceError> {
            let (p, t) = match rest.split_once(':') {
                Some((p, t)) => (p, Some(t.to_string()).filter(|t| !t.is_empty())),
                None => (rest, None),
            };
            if p.is_empty() {
                return Err(ReferenceError::MissingPath {
                    source_text: input.to_string(),
                });
            }
            Ok((PathBuf::from(p), t))
        };
        match transport {
            "docker" => Reference::parse(input).map(ImageSource::Registry),
            "oci" => path_tag(rest).map(|(path, tag)| ImageSource::OciLayout { path, tag }),
            "oci-archive" => {
                path_tag(rest).map(|(path, tag)| ImageSource::OciArchive { path, tag })
            }
            "docker-archive" => {
                // The reference after the path may itself contain ':' (`name:tag`).
                let (p, r) = match rest.split_once(':') {
                    Some((p, r)) => (p, Some(r.to_string()).filter(|r| !r.is_empty())),
                    None => (rest, None),
                };
                if p.is_empty() {
                    return Err(ReferenceError::MissingPath {
                        source_text: input.to_string(),
                    });
                }
                Ok(ImageSource::DockerArchive {
                    path: PathBuf::from(p),
                    reference: r,
                })
            }
            _ if rest.starts_with("//") => Err(ReferenceError::Transport {
                source_text: input.to_string(),
                transport: transport.to_string(),
            }),
            // `localhost:5000/x` or `host:port/x` without a transport.
            _ if transport.contains('.') || transport == "localhost" || rest.contains('/') => {
                Reference::parse(input).map(ImageSource::Registry)
            }
            _ if !transport.contains('/') && valid_tag(rest) => {
                Reference::parse(input).map(ImageSource::Registry)
            }
            _ => Err(ReferenceError::Transport {
                source_text: input.to_string(),
                transport: transport.to_string(),
            }),
        }
    }
}

/// The host (and port) serving a normalised registry's API: [`DOCKER_HUB_API`] for
/// `docker.io`, the registry itself otherwise.
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        registry
    }
}

/// A registry named on its own, as `sifr registry login` takes it: `docker://HOST[:PORT]`,
/// `oras://HOST[:PORT]` or `HOST[:PORT]`, with a trailing `/` allowed. Normalised as in
/// references (lower case, Docker Hub's spellings → `docker.io`). A path after the host is
/// refused: credentials are kept per registry, so it would be silently ignored.
pub fn parse_registry(input: &str) -> Result<String, ReferenceError> {
    let s = input
        .strip_prefix("docker://")
        .or_else(|| input.strip_prefix("oras://"))
        .unwrap_or(input);
    let s = s.strip_suffix('/').unwrap_or(s);
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if s.contains('/') {
        return Err(ReferenceError::Registry {
            reference: input.to_string(),
            registry: s.to_string(),
        });
    }
    validate_registry(input, s)
}

fn host_part(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry.find(']').map_or(registry, |i| &registry[..=i]);
    }
    registry.split(':').next().unwrap_or(registry)
}

fn looks_like_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.starts_with('[')
}

fn validate_registry(reference: &str, reg: &str) -> Result<String, ReferenceError> {
    let bad = || ReferenceError::Registry {
        reference: reference.to_string(),
        registry: reg.to_string(),
    };
    let (host, port) = if let Some(stripped) = reg.strip_prefix('[') {
        let end = stripped.find(']').ok_or_else(bad)?;
        let inner = &stripped[..end];
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(bad());
        }
        match &stripped[end + 1..] {
            "" => (&reg[..end + 2], None),
            p => (&reg[..end + 2], Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match reg.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (reg, None),
        }
    };
    if !host.starts_with('[') {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err(bad());
        }
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => {}
            _ => {
                return Err(ReferenceError::Port {
                    reference: reference.to_string(),
                    port: p.to_string(),
                });
            }
        }
    }
    let lower = reg.to_ascii_lowercase();
    if DOCKER_HUB_ALIASES.contains(&lower.as_str()) {
        return Ok(DOCKER_HUB.to_string());
    }
    Ok(lower)
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__`, or any number of `-`.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_alone() {
        for (input, want) in [
            ("docker://127.0.0.1:5000", "127.0.0.1:5000"),
            ("docker://Index.Docker.IO/", "docker.io"),
            ("oras://ghcr.io", "ghcr.io"),
            ("localhost:5000", "localhost:5000"),
            ("docker://[::1]:5000", "[::1]:5000"),
        ] {
            assert_eq!(parse_registry(input).as_deref(), Ok(want), "{input}");
        }
        assert_eq!(api_host("docker.io"), DOCKER_HUB_API);
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
        for bad in [
            "docker://",
            "docker://ghcr.io/org",
            "docker://bad_host",
            "h:0",
        ] {
            assert!(parse_registry(bad).is_err(), "{bad}");
        }
    }

    fn full(s: &str) -> String {
        Reference::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .to_string()
    }

    #[test]
    fn docker_hub_defaults_match_docker_pull() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let table = [
            ("ubuntu", "docker.io/library/ubuntu:latest"),
            ("docker://ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
            ("//alpine", "docker.io/library/alpine:latest"),
            ("user/app:v1", "docker.io/user/app:v1"),
            ("docker.io/ubuntu", "docker.io/library/ubuntu:latest"),
            (
                "index.docker.io/library/busybox:1",
                "docker.io/library/busybox:1",
            ),
            ("registry-1.docker.io/x/y", "docker.io/x/y:latest"),
            ("reg.example/org/img:tag", "reg.example/org/img:tag"),
            ("localhost/img", "localhost/img:latest"),
            ("localhost:5000/img:1.0", "localhost:5000/img:1.0"),
            ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c:latest"),
            ("[::1]:5000/img", "[::1]:5000/img:latest"),
            ("Example.COM/img", "example.com/img:latest"),
            ("a__b/c-d--e.f", "docker.io/a__b/c-d--e.f:latest"),
        ];
        for (input, want) in table {
            assert_eq!(full(input), want, "{input}");
        }
        let r = Reference::parse(&format!("ubuntu@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.to_string(), format!("docker.io/library/ubuntu@{d}"));
        let r = Reference::parse(&format!("localhost:5000/ubuntu:22.04@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("22.04"));
        assert_eq!(r.manifest_ref(), d, "the digest wins over the tag");
        assert!(r.is_loopback());
    }

    #[test]
    fn api_host_is_docker_hubs_api_for_docker_io() {
        assert_eq!(
            Reference::parse("ubuntu").unwrap().api_host(),
            DOCKER_HUB_API
        );
        assert_eq!(
            Reference::parse("localhost:5000/x").unwrap().api_host(),
            "localhost:5000"
        );
        assert!(!Reference::parse("reg.example/x").unwrap().is_loopback());
        assert!(Reference::parse("127.0.0.1:5000/x").unwrap().is_loopback());
    }

    #[test]
    fn bad_references_name_the_value() {
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("docker://", "empty"),
            ("Ubuntu", "`Ubuntu`"),
            ("ubuntu:bad tag", "`bad tag`"),
            ("ubuntu:-x", "`-x`"),
            ("localhost:0/x", "`0`"),
            ("localhost:99999/x", "`99999`"),
            ("localhost:http/x", "`http`"),
            ("ex_ample.com/x", "`ex_ample.com`"),
            ("-bad.com/x", "`-bad.com`"),
            ("a//b", "component ``"),
            ("a/b_-c", "`b_-c`"),
            ("a/b.", "`b.`"),
            ("reg.example/", "component ``"),
            (
                "ubuntu@sha256:xyz",
                "invalid digest in reference `ubuntu@sha256:xyz`",
            ),
            ("ubuntu@md5:abc", "invalid digest"),
        ];
        for (input, want) in table {
            let err = Reference::parse(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input}: {err} lacks {want}");
        }
        let long = format!("x/{}", "a".repeat(300));
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::TooLong { .. })
        ));
        let long_tag = format!("x:{}", "a".repeat(129));
        assert!(matches!(
            Reference::parse(&long_tag),
            Err(ReferenceError::Tag { .. })
        ));
    }

    #[test]
    fn registry_and_namespace_headers_compose_like_apptainer() {
        let r = Reference::from_header("ubuntu:22.04", None, None).unwrap();
        assert_eq!(r.to_string(), "docker.io/library/ubuntu:22.04");
        let r = Reference::from_header("ubuntu:22.04", Some("localhost:5000"), None).unwrap();
        assert_eq!(r.to_string(), "localhost:5000/ubuntu:22.04");
        let r = Reference::from_header("app", Some("reg.example/"), Some("/team/")).unwrap();
        assert_eq!(r.to_string(), "reg.example/team/app:latest");
        let r = Reference::from_header("app", None, Some("team")).unwrap();
        assert_eq!(r.to_string(), "docker.io/team/app:latest");
        let r = Reference::from_header("docker://app", Some(""), Some(" ")).unwrap();
        assert_eq!(r.to_string(), "docker.io/library/app:latest");
    }

    #[test]
    fn transports_select_the_source_kind() {
        assert_eq!(
            ImageSource::parse("oci:img-dir:v1").unwrap(),
            ImageSource::OciLayout {
                path: "img-dir".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            ImageSource::parse("oci-archive:a.tar").unwrap(),
            ImageSource::OciArchive {
                path: "a.tar".into(),
                tag: None
            }
        );
        assert_eq!(
            ImageSource::parse("docker-archive:save.tar:app:v2").unwrap(),
            ImageSource::DockerArchive {
                path: "save.tar".into(),
                reference: Some("app:v2".into())
            }
        );
        for s in [
            "docker://ubuntu",
            "ubuntu",
            "ubuntu:22.04",
            "localhost:5000/x:1",
        ] {
            assert!(
                matches!(ImageSource::parse(s), Ok(ImageSource::Registry(_))),
                "{s}"
            );
        }
        let e = ImageSource::parse("library://x/y").unwrap_err().to_string();
        assert!(e.contains("`library`"), "{e}");
        let e = ImageSource::parse("oci-archive:").unwrap_err().to_string();
        assert!(e.contains("`oci-archive:`"), "{e}");
    }
}
