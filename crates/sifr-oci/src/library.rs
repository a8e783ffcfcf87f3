//! `library://` images: SIF files in a Sylabs-style container library (the API Apptainer's
//! library client speaks), for `pull` and for launches of `library://` URIs.
//!
//! - A reference is `library://[HOST/]ENTITY/COLLECTION/CONTAINER[:TAG[,TAG...]]`, split as
//!   Apptainer splits it: with more than two slashes after the scheme the first component is
//!   the library's host; the tag defaults to `latest`, and of several the first is used.
//! - `GET BASE/v1/images/PATH:TAG?arch=ARCH` describes the image: its `hash`
//!   (`sha256.HEX`), which keys the cache, and its size.
//! - `GET BASE/v1/imagefile/PATH:TAG?arch=ARCH` serves the file, usually through a redirect to
//!   its storage; the download is checked against the hash.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::net::{NetClient, NetError};

/// A parsed `library://` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryRef {
    /// `host[:port]` when the reference names its library.
    pub host: Option<String>,
    /// `entity/collection/container` (or shorter, as the library resolves it).
    pub path: String,
    pub tag: String,
}

/// A `library://` reference that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("invalid library reference `{0}`: it names no image")]
    Empty(String),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("the library's answer about `{reference}` is not the JSON of an image")]
    Json {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the library sent `{reference}` with hash `{actual}`, but describes it as `{expected}`"
    )]
    Hash {
        reference: String,
        expected: String,
        actual: String,
    },
}

impl LibraryError {
    pub fn hint(&self) -> Option<String> {
        match self {
            LibraryError::Net(e) => e.hint(),
            _ => None,
        }
    }
}

impl LibraryRef {
    /// Parse `library://...` (or `library:...`) as Apptainer's `NormalizeLibraryRef` does.
    pub fn parse(text: &str) -> Result<LibraryRef, LibraryError> {
        let rest = text
            .strip_prefix("library://")
            .or_else(|| text.strip_prefix("library:"))
            .unwrap_or(text);
        let (host, path_tag) = if rest.matches('/').count() <= 2 {
            (None, rest)
        } else {
            let (h, p) = rest.split_once('/').unwrap_or((rest, ""));
            (Some(h.to_string()).filter(|h| !h.is_empty()), p)
        };
        let (path, tags) = match path_tag.split_once(':') {
            Some((p, t)) => (p, t),
            None => (path_tag, "latest"),
        };
        let path = path.trim_start_matches('/').to_string();
        let tag = tags.split(',').next().unwrap_or("latest").to_string();
        if path.is_empty() || tag.is_empty() {
            return Err(LibraryError::Empty(text.to_string()));
        }
        Ok(LibraryRef { host, path, tag })
    }

    fn api(&self, base: &str, what: &str, arch: &str) -> String {
        format!(
            "{}/v1/{what}/{}:{}?arch={arch}",
            base.trim_end_matches('/'),
            self.path,
            self.tag
        )
    }
}

/// What the library says of an image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LibraryImage {
    /// `sha256.HEX` for the images of current libraries.
    pub hash: String,
    #[serde(default)]
    pub size: Option<u64>,
}

#[derive(Deserialize)]
struct ImageResponse {
    data: LibraryImage,
}

/// The library at `base` (`https://HOST`) describes `r` for `arch` (Go's name).
pub fn describe(
    client: &NetClient,
    base: &str,
    r: &LibraryRef,
    arch: &str,
) -> Result<LibraryImage, LibraryError> {
    let bytes = client
        .get_small(&r.api(base, "images", arch))
        .map_err(NetError::from)?;
    serde_json::from_slice::<ImageResponse>(&bytes)
        .map(|res| res.data)
        .map_err(|source| LibraryError::Json {
            reference: format!("{}:{}", r.path, r.tag),
            source,
        })
}

/// Download `r` into the new file `dest`, checked against `image.hash` when it is a SHA-256
/// (older libraries used other hashes, which are not checked); `dest` is removed on failure.
pub fn download(
    client: &NetClient,
    base: &str,
    r: &LibraryRef,
    arch: &str,
    image: &LibraryImage,
    dest: &Path,
) -> Result<(), LibraryError> {
    client.download(&r.api(base, "imagefile", arch), dest)?;
    if let Some(expected) = image.hash.strip_prefix("sha256.") {
        let actual = std::fs::File::open(dest)
            .and_then(|mut f| {
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = std::io::Read::read(&mut f, &mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                Ok(hex::encode(h.finalize()))
            })
            .map_err(|source| NetError::Write {
                path: dest.to_path_buf(),
                source,
            })?;
        if actual != expected {
            let _ = std::fs::remove_file(dest);
            return Err(LibraryError::Hash {
                reference: format!("{}:{}", r.path, r.tag),
                expected: image.hash.clone(),
                actual: format!("sha256.{actual}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_as_apptainer_splits_them() {
        // Apptainer's NormalizeLibraryRef (internal/pkg/client/library/library.go).
        let r = |t: &str| LibraryRef::parse(t).unwrap();
        assert_eq!(
            r("library://alpine"),
            LibraryRef {
                host: None,
                path: "alpine".into(),
                tag: "latest".into()
            }
        );
        assert_eq!(r("library://e/c/img:1.0").path, "e/c/img");
        assert_eq!(r("library://e/c/img:1.0").host, None);
        let h = r("library://lib.example.org:8443/e/c/img:a,b");
        assert_eq!(h.host.as_deref(), Some("lib.example.org:8443"));
        assert_eq!((h.path.as_str(), h.tag.as_str()), ("e/c/img", "a"));
        assert_eq!(r("library:e/c/img").tag, "latest");
        assert!(LibraryRef::parse("library://").is_err());
        assert_eq!(
            r("library://h/e/c/i:t").api("https://h/", "images", "amd64"),
            "https://h/v1/images/e/c/i:t?arch=amd64"
        );
    }
}
