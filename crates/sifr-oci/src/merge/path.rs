//! Paths inside an image, normalised from untrusted tar names.
//!
//! A [`RelPath`] is relative to the image root, has no empty, `.` or `..` components and no
//! NUL byte; the empty path is the root itself. It is computed lexically — nothing is ever
//! resolved on the host, since there is no host tree to resolve against — so a name can only
//! ever denote a node of the image being built.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Why a tar name cannot name anything inside the image.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("name contains a NUL byte")]
    Nul,
    #[error("name climbs above the image root with `..`")]
    Escapes,
}

/// A normalised path inside the image (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RelPath(Vec<u8>);

/// The result of normalising a tar name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    pub path: RelPath,
    /// The name started with `/`; it was taken relative to the image root.
    pub was_absolute: bool,
}

impl RelPath {
    /// The image root.
    pub fn root() -> Self {
        RelPath(Vec::new())
    }

    /// Normalise an untrusted name: a leading `/` is dropped (absolute names are taken
    /// relative to the image root, as Docker and containerd do), empty and `.` components are
    /// dropped, `x/..` cancels, and a `..` that would climb above the root is an error rather
    /// than being clamped, because no honest layer contains one.
    pub fn normalise(raw: &[u8]) -> Result<Normalised, PathError> {
        if raw.contains(&0) {
            return Err(PathError::Nul);
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        for c in raw.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return Err(PathError::Escapes);
                    }
                }
                _ => parts.push(c),
            }
        }
        Ok(Normalised {
            path: RelPath(parts.join(&b'/')),
            was_absolute: raw.first() == Some(&b'/'),
        })
    }

    /// Build from a string known to be normal (tests, fixed names). Normalises anyway.
    pub fn new(s: &str) -> Result<Self, PathError> {
        RelPath::normalise(s.as_bytes()).map(|n| n.path)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// As a relative host-style path (empty for the root), for APIs that take `Path`.
    pub fn as_path(&self) -> &Path {
        Path::new(std::ffi::OsStr::from_bytes(&self.0))
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&[u8]> {
        if self.is_root() {
            return None;
        }
        Some(self.0.rsplit(|&b| b == b'/').next().unwrap_or(&self.0))
    }

    /// The parent directory; `None` for the root.
    pub fn parent(&self) -> Option<RelPath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => RelPath(self.0[..i].to_vec()),
            None => RelPath::root(),
        })
    }

    /// `self/name`; `name` must be a single non-empty component other than `.`/`..`.
    pub fn join(&self, name: &[u8]) -> Option<RelPath> {
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            return None;
        }
        let mut v = self.0.clone();
        if !v.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(name);
        Some(RelPath(v))
    }

    /// Proper ancestors from the top down, excluding the root: `a`, `a/b` for `a/b/c`.
    pub fn ancestors(&self) -> impl Iterator<Item = &[u8]> {
        self.0
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .map(|(i, _)| &self.0[..i])
    }
}

impl fmt::Display for RelPath {
    /// Shown with a leading `/`, as a user inside the container would name it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl std::borrow::Borrow<[u8]> for RelPath {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<(String, bool), PathError> {
        RelPath::normalise(s.as_bytes())
            .map(|n| (String::from_utf8(n.path.0).unwrap(), n.was_absolute))
    }

    #[test]
    fn normalise_table() {
        type Want<'a> = Result<(&'a str, bool), PathError>;
        let table: &[(&str, Want)] = &[
            ("a/b", Ok(("a/b", false))),
            ("./a//b/", Ok(("a/b", false))),
            ("/etc/passwd", Ok(("etc/passwd", true))),
            ("a/../b", Ok(("b", false))),
            ("a/b/../../c", Ok(("c", false))),
            (".", Ok(("", false))),
            ("/", Ok(("", true))),
            ("..", Err(PathError::Escapes)),
            ("../etc", Err(PathError::Escapes)),
            ("a/../../etc", Err(PathError::Escapes)),
            ("/../etc", Err(PathError::Escapes)),
            ("a\0b", Err(PathError::Nul)),
        ];
        for (input, want) in table {
            let want = want.clone().map(|(p, a)| (p.to_string(), a));
            assert_eq!(norm(input), want, "{input:?}");
        }
    }

    #[test]
    fn parent_join_ancestors() {
        let p = RelPath::new("a/b/c").unwrap();
        assert_eq!(p.parent().unwrap(), RelPath::new("a/b").unwrap());
        assert_eq!(p.file_name().unwrap(), b"c");
        assert_eq!(
            p.ancestors().collect::<Vec<_>>(),
            vec![&b"a"[..], &b"a/b"[..]]
        );
        assert_eq!(
            RelPath::new("a").unwrap().parent().unwrap(),
            RelPath::root()
        );
        assert!(RelPath::root().parent().is_none());
        assert!(p.join(b"..").is_none());
        assert!(p.join(b"x/y").is_none());
        assert_eq!(RelPath::root().join(b"x").unwrap().to_string(), "/x");
    }
}
