//! Build cache keys: a SHA-256 chained through a stage's steps, so the key of a step digests
//! everything that step and every step before it depended on.
//!
//! What goes in (docs/build.md, "Build cache", says the same for users):
//! - always: the cache format, sifr's version and its executable's identity (a new sifr
//!   rebuilds rather than trust a tree an older one made), the host architecture, the fakeroot
//!   mode, and the options that reach the sections (`-B` binds, the GPU driver found for
//!   `--nv`/`--rocm`, `--target-isa`'s compiler flags);
//! - the bootstrap: the stage's header with `{{ args }}` substituted, plus the source resolved
//!   (a registry image's manifest digest and the platform, a local image's contents, the Debian
//!   mirror that `debootstrap` would use);
//! - each section's text after substitution (not its line number: moving a section in the file
//!   changes nothing it does), `%files` sources' names, modes and contents, and for
//!   `%files from` the key of the stage copied from.
//!
//! Not in: the host's state that `%setup` or `%post` may read (the network above all). A cached
//! step is reused until its inputs change; `--no-cache-from` reruns it.

use std::io::{self, Read};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// Bumped when an entry's layout or a key's inputs change meaning.
const FORMAT: &str = "sifr-build-cache-1";

/// A key being chained: each part is tagged and length-prefixed, so no two lists of parts hash
/// alike.
#[derive(Clone)]
pub struct Chain(Sha256);

impl Chain {
    /// The start of every stage's chain: the cache format, this sifr, and `salt` (the build
    /// options that reach every step).
    pub fn start(salt: &[u8]) -> Chain {
        let mut c = Chain(Sha256::new());
        c.part("format", FORMAT.as_bytes());
        c.part("version", env!("CARGO_PKG_VERSION").as_bytes());
        c.part("executable", &executable_identity());
        c.part("arch", std::env::consts::ARCH.as_bytes());
        c.part("salt", salt);
        c
    }

    pub fn part(&mut self, tag: &str, bytes: &[u8]) {
        for p in [tag.as_bytes(), bytes] {
            self.0.update((p.len() as u64).to_le_bytes());
            self.0.update(p);
        }
    }

    /// The key at this point of the chain (the chain goes on).
    pub fn key(&self) -> String {
        hex::encode(self.0.clone().finalize())
    }
}

/// Which sifr made an entry: its executable's size, time and inode, so a rebuilt or upgraded
/// sifr never reuses a tree an older one made with other behaviour.
fn executable_identity() -> Vec<u8> {
    let md = std::env::current_exe().and_then(std::fs::metadata);
    match md {
        Ok(m) => format!("{} {} {} {}", m.len(), m.mtime(), m.mtime_nsec(), m.ino()).into_bytes(),
        Err(_) => b"unknown".to_vec(),
    }
}

/// `value` as JSON without its `line` and `col` fields: a section's text and arguments, not
/// where it sits in the file.
pub fn json_without_lines<T: serde::Serialize>(value: &T) -> Vec<u8> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("line");
                m.remove("col");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    strip(&mut v);
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The identity of a local image or source tree: a file's contents (SHA-256); a directory's
/// entries' names, types, modes, owners, sizes, times and link targets (a sandbox is copied as
/// it is, so metadata that changes with any edit stands for its contents).
pub fn local_identity(path: &Path) -> io::Result<Vec<u8>> {
    let md = std::fs::metadata(path)?;
    if md.is_dir() {
        let mut h = Sha256::new();
        walk_metadata(path, Path::new(""), &mut h)?;
        Ok(h.finalize().to_vec())
    } else {
        let mut h = Sha256::new();
        hash_file(path, &mut h)?;
        Ok(h.finalize().to_vec())
    }
}

fn walk_metadata(root: &Path, rel: &Path, h: &mut Sha256) -> io::Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for n in names {
        let r = rel.join(&n);
        let p = root.join(&r);
        let md = std::fs::symlink_metadata(&p)?;
        h.update(r.as_os_str().as_encoded_bytes());
        h.update(
            format!(
                "\0{} {} {} {} {} {} {}\0",
                md.mode(),
                md.uid(),
                md.gid(),
                md.size(),
                md.mtime(),
                md.mtime_nsec(),
                md.rdev()
            )
            .as_bytes(),
        );
        if md.file_type().is_symlink() {
            h.update(std::fs::read_link(&p)?.as_os_str().as_encoded_bytes());
        } else if md.is_dir() {
            walk_metadata(root, &r, h)?;
        }
    }
    Ok(())
}

fn hash_file(path: &Path, h: &mut Sha256) -> io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

/// What a `%files` copy from the host reads of `path`: names, modes and contents, symlinks
/// followed (it copies as `cp -L` does).
pub fn copied_content(path: &Path, h: &mut Chain) -> io::Result<()> {
    let mut inner = Sha256::new();
    content_walk(path, &mut inner, 0)?;
    h.part("content", &inner.finalize());
    Ok(())
}

fn content_walk(path: &Path, h: &mut Sha256, depth: usize) -> io::Result<()> {
    // A symlink loop would recurse forever; the copy itself fails on it long before this.
    if depth > 256 {
        return Err(io::Error::other("directories nested too deep"));
    }
    let md = std::fs::metadata(path)?;
    h.update(format!("{}\0", md.mode() & 0o7777).as_bytes());
    if md.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        h.update(format!("dir {}\0", names.len()).as_bytes());
        for n in names {
            h.update(n.as_encoded_bytes());
            h.update([0]);
            content_walk(&path.join(&n), h, depth + 1)?;
        }
    } else if md.is_file() {
        h.update(format!("file {}\0", md.len()).as_bytes());
        hash_file(path, h)?;
    } else {
        h.update(format!("special {}\0", md.rdev()).as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_separated_and_chains_differ_by_any_part() {
        let mut a = Chain::start(b"s");
        a.part("x", b"ab");
        a.part("y", b"c");
        let mut b = Chain::start(b"s");
        b.part("x", b"a");
        b.part("y", b"bc");
        assert_ne!(a.key(), b.key());
        let mut c = Chain::start(b"s");
        c.part("x", b"ab");
        c.part("y", b"c");
        assert_eq!(a.key(), c.key());
        assert_ne!(Chain::start(b"s").key(), Chain::start(b"t").key());
    }

    #[test]
    fn line_numbers_do_not_count_but_text_does() {
        let s1 = sifr_deffile::Script {
            args: String::new(),
            body: "echo hi".into(),
            line: 3,
        };
        let mut s2 = s1.clone();
        s2.line = 30;
        assert_eq!(json_without_lines(&s1), json_without_lines(&s2));
        s2.body = "echo ho".into();
        assert_ne!(json_without_lines(&s1), json_without_lines(&s2));
    }

    #[test]
    fn copied_content_sees_contents_and_modes_not_times() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("a"), b"one").unwrap();
        let key = || {
            let mut c = Chain::start(b"");
            copied_content(&src, &mut c).unwrap();
            c.key()
        };
        let k1 = key();
        std::fs::File::options()
            .write(true)
            .open(src.join("a"))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH)
            .unwrap();
        assert_eq!(key(), k1, "a time alone changes nothing copied");
        std::fs::write(src.join("a"), b"two").unwrap();
        let k2 = key();
        assert_ne!(k2, k1);
        std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_ne!(key(), k2);
    }
}
