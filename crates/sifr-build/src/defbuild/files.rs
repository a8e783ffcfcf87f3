//! `%files` copies into the root filesystem being built, with Apptainer's semantics:
//!
//! - from the host: `cp -fLr` (every symlink followed), sources relative to the build's
//!   directory, shell globs (`*`, `?`, `[...]`) expanded;
//! - `from <stage>`: from an earlier stage's root, where the source path is resolved inside that
//!   root (a top-level symlink is followed within it) and inner symlinks are kept as symlinks;
//! - the destination defaults to the source path; an existing directory receives the source
//!   under its own name; missing parent directories are created (mode 0755).
//!
//! Both roots may be hostile (a base image is untrusted). Sources and destinations are resolved
//! with `sifr_sys::fs::open_in_root` (`openat2(RESOLVE_IN_ROOT)`), so `/lib -> usr/lib` in the
//! image works while `/etc -> /host/etc` stays inside the image; everything below is created relative to directory descriptors with
//! `O_NOFOLLOW`, and an existing non-directory in the way is replaced, never written through.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sifr_sys::fs::open_in_root;

/// Why a copy failed; the caller adds the definition file's line.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("no file matches `{pattern}`")]
    NoMatch { pattern: String },
    #[error("cannot read `{path}`")]
    Source {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write `{path}` in the image")]
    Dest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{pattern}` matches {count} files, so `{dst}` must be a directory in the image")]
    NotADirectory {
        pattern: String,
        count: usize,
        dst: PathBuf,
    },
}

const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

fn dest_err(path: &Path) -> impl FnOnce(Errno) -> CopyError + '_ {
    move |e| CopyError::Dest {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn src_err(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Source {
        path: path.to_path_buf(),
        source,
    }
}

/// Where one source lands: an open directory in the image and the name to create in it.
struct Dest {
    dir: OwnedFd,
    name: std::ffi::OsString,
    /// For messages: the path inside the image.
    shown: PathBuf,
}

/// Open (creating as needed, mode 0755) the directory `rel` inside `root`. A dangling symlink
/// on the way is followed inside the root and its target created, as a chroot would see it.
fn mkdir_in_root(root: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd, CopyError> {
    mkdir_in_root_depth(root, rel, 0)
}

/// Symlinks followed while creating one path, as the kernel's own limit.
const MAX_LINKS: usize = 40;

fn mkdir_in_root_depth(
    root: BorrowedFd<'_>,
    rel: &Path,
    depth: usize,
) -> Result<OwnedFd, CopyError> {
    let mut walked = PathBuf::new();
    let mut cur = rustix::fs::openat(root, ".", DIR, Mode::empty()).map_err(dest_err(rel))?;
    for c in rel.components() {
        let Component::Normal(name) = c else { continue };
        let parent = walked.clone();
        walked.push(name);
        let open = |p: &Path| open_in_root(root, p, DIR);
        cur = match open(&walked) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        // A dangling symlink: create what it points to, inside the root.
                        let target = rustix::fs::readlinkat(&cur, name, Vec::new())
                            .map_err(dest_err(&walked))?;
                        if depth >= MAX_LINKS {
                            return Err(dest_err(&walked)(Errno::LOOP));
                        }
                        let t = Path::new(
                            std::ffi::OsStr::from_bytes_owned(target.as_bytes()).as_os_str(),
                        )
                        .to_path_buf();
                        let next = if t.is_absolute() {
                            relative(&t)
                        } else {
                            parent.join(t)
                        };
                        mkdir_in_root_depth(root, &next, depth + 1)?;
                    }
                    Err(e) => return Err(dest_err(&walked)(e)),
                }
                open(&walked).map_err(dest_err(&walked))?
            }
            Err(e) => return Err(dest_err(&walked)(e)),
        };
    }
    Ok(cur)
}

/// What a `%files` destination path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DstIs {
    /// Whatever is there: a directory if one exists, else the copy's own path.
    AsFound,
    /// A directory to copy into, made if missing (several sources, or a trailing `/`).
    Dir,
}

/// Where `src_name` goes for destination `dst` (absolute inside the image): into `dst` if that
/// is an existing directory (or `dst_is` says it must be one), else at `dst` itself.
fn destination(
    root: BorrowedFd<'_>,
    dst: &Path,
    src_name: &std::ffi::OsStr,
    dst_is: DstIs,
) -> Result<Dest, CopyError> {
    let rel = relative(dst);
    let is_dir = match open_in_root(root, &rel, DIR) {
        Ok(_) => true,
        Err(Errno::NOENT | Errno::NOTDIR) => false,
        Err(e) => return Err(dest_err(dst)(e)),
    };
    if is_dir || dst_is == DstIs::Dir || rel.as_os_str().is_empty() {
        Ok(Dest {
            dir: mkdir_in_root(root, &rel)?,
            name: src_name.to_owned(),
            shown: dst.join(src_name),
        })
    } else {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().unwrap_or(src_name).to_owned();
        Ok(Dest {
            dir: mkdir_in_root(root, parent)?,
            name,
            shown: dst.to_path_buf(),
        })
    }
}

/// `p` made relative to the root, `..` resolved lexically and never above the root (as the
/// kernel treats `..` at a chroot's root).
fn relative(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Copy host files matching `pattern` (relative to `context`) to `dst` inside `root`.
/// Returns the number of sources copied.
pub fn copy_from_host(
    context: &Path,
    pattern: &str,
    dst: Option<&str>,
    root: &Path,
) -> Result<usize, CopyError> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        context.join(pattern)
    };
    let sources = glob(&full).map_err(src_err(&full))?;
    if sources.is_empty() {
        return Err(CopyError::NoMatch {
            pattern: pattern.to_string(),
        });
    }
    // No destination: the same path inside the image as the source pattern names.
    let dst = PathBuf::from(dst.unwrap_or(pattern));
    let dst = if dst.is_absolute() {
        dst
    } else {
        Path::new("/").join(dst)
    };
    let root_fd = rustix::fs::open(root, DIR, Mode::empty()).map_err(dest_err(root))?;
    // `dst/` names a directory to copy into, as several sources do.
    let dst_is = if sources.len() > 1 || dst.as_os_str().as_encoded_bytes().ends_with(b"/") {
        DstIs::Dir
    } else {
        DstIs::AsFound
    };
    for src in &sources {
        let name = src.file_name().unwrap_or(src.as_os_str());
        let d = destination(root_fd.as_fd(), &dst, name, dst_is)?;
        let md = std::fs::metadata(src).map_err(src_err(src))?;
        copy_host_entry(src, &md, &d)?;
    }
    Ok(sources.len())
}

fn copy_host_entry(src: &Path, md: &std::fs::Metadata, d: &Dest) -> Result<(), CopyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = md.permissions().mode() & 0o7777;
    if md.is_dir() {
        let sub = make_dir(d, mode)?;
        for entry in std::fs::read_dir(src).map_err(src_err(src))? {
            let entry = entry.map_err(src_err(src))?;
            let path = entry.path();
            // `cp -L`: symlinks inside are followed too.
            let md = std::fs::metadata(&path).map_err(src_err(&path))?;
            let child = Dest {
                dir: rustix::io::dup(&sub).map_err(dest_err(&d.shown))?,
                name: entry.file_name(),
                shown: d.shown.join(entry.file_name()),
            };
            copy_host_entry(&path, &md, &child)?;
        }
        Ok(())
    } else if md.is_file() {
        let mut from = File::open(src).map_err(src_err(src))?;
        write_file(d, &mut from, mode)
    } else {
        tracing::warn!(
            "%files: skipping `{}`: not a regular file or directory",
            src.display()
        );
        Ok(())
    }
}

/// Make (or reuse an existing) directory `d.name` in `d.dir`; an existing non-directory is
/// replaced. Returns the open directory.
fn make_dir(d: &Dest, mode: u32) -> Result<OwnedFd, CopyError> {
    let open = || rustix::fs::openat(&d.dir, &d.name, DIR | OFlags::NOFOLLOW, Mode::empty());
    match open() {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(Errno::NOTDIR | Errno::LOOP) => {
            rustix::fs::unlinkat(&d.dir, &d.name, AtFlags::empty()).map_err(dest_err(&d.shown))?
        }
        Err(e) => return Err(dest_err(&d.shown)(e)),
    }
    // Owner-writable while filling; the final mode is applied below.
    rustix::fs::mkdirat(&d.dir, &d.name, Mode::from_raw_mode(0o700)).map_err(dest_err(&d.shown))?;
    let fd = open().map_err(dest_err(&d.shown))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode | 0o700)).map_err(dest_err(&d.shown))?;
    Ok(fd)
}

/// Replace whatever is at `d` (never following it) with a regular file holding `from`.
fn write_file(d: &Dest, from: &mut dyn io::Read, mode: u32) -> Result<(), CopyError> {
    match rustix::fs::statat(&d.dir, &d.name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            return Err(CopyError::Dest {
                path: d.shown.clone(),
                source: io::Error::other("a directory is in the way of a file"),
            });
        }
        Ok(_) => {
            rustix::fs::unlinkat(&d.dir, &d.name, AtFlags::empty()).map_err(dest_err(&d.shown))?
        }
        Err(Errno::NOENT) => {}
        Err(e) => return Err(dest_err(&d.shown)(e)),
    }
    let fd = rustix::fs::openat(
        &d.dir,
        &d.name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(dest_err(&d.shown))?;
    let mut out = File::from(fd);
    io::copy(from, &mut out).map_err(|source| CopyError::Dest {
        path: d.shown.clone(),
        source,
    })?;
    rustix::fs::fchmod(&out, Mode::from_raw_mode(mode)).map_err(dest_err(&d.shown))?;
    Ok(())
}

/// Copy `src` (absolute inside the stage root `from_root`) to `dst` inside `root`: the source is
/// resolved inside its root (a symlink at the top is followed there), inner symlinks are kept.
pub fn copy_from_stage(
    from_root: &Path,
    src: &str,
    dst: Option<&str>,
    root: &Path,
) -> Result<(), CopyError> {
    let shown = PathBuf::from(src);
    let from_fd =
        rustix::fs::open(from_root, DIR, Mode::empty()).map_err(|e| CopyError::Source {
            path: from_root.to_path_buf(),
            source: e.into(),
        })?;
    let rel = relative(&shown);
    let sfd = open_in_root(from_fd.as_fd(), &rel, OFlags::PATH).map_err(|e| CopyError::Source {
        path: shown.clone(),
        source: e.into(),
    })?;
    let dst = PathBuf::from(dst.unwrap_or(src));
    let dst = Path::new("/").join(relative(&dst));
    let root_fd = rustix::fs::open(root, DIR, Mode::empty()).map_err(dest_err(root))?;
    let name = shown.file_name().unwrap_or(shown.as_os_str());
    let d = destination(root_fd.as_fd(), &dst, name, DstIs::AsFound)?;
    let st = rustix::fs::fstat(&sfd).map_err(|e| CopyError::Source {
        path: shown.clone(),
        source: e.into(),
    })?;
    copy_stage_entry(&sfd, None, &st, &shown, &d)
}

/// Copy the object `fd` (an `O_PATH` fd, or `parent`+name for children) keeping symlinks.
fn copy_stage_entry(
    fd: &OwnedFd,
    link_of: Option<(&OwnedFd, &std::ffi::OsStr)>,
    st: &rustix::fs::Stat,
    shown: &Path,
    d: &Dest,
) -> Result<(), CopyError> {
    let serr = |e: Errno| CopyError::Source {
        path: shown.to_path_buf(),
        source: e.into(),
    };
    let mode = st.st_mode & 0o7777;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let dir = rustix::fs::openat(fd, ".", DIR, Mode::empty()).map_err(serr)?;
            let sub = make_dir(d, mode)?;
            let mut names = Vec::new();
            for e in rustix::fs::Dir::read_from(&dir).map_err(serr)? {
                let e = e.map_err(serr)?;
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(std::ffi::OsStr::from_bytes_owned(n));
                }
            }
            for n in names {
                let cshown = shown.join(&n);
                let cst = rustix::fs::statat(&dir, &n, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
                    CopyError::Source {
                        path: cshown.clone(),
                        source: e.into(),
                    }
                })?;
                let cfd = rustix::fs::openat(
                    &dir,
                    &n,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| CopyError::Source {
                    path: cshown.clone(),
                    source: e.into(),
                })?;
                let child = Dest {
                    dir: rustix::io::dup(&sub).map_err(dest_err(&d.shown))?,
                    name: n.clone(),
                    shown: d.shown.join(&n),
                };
                copy_stage_entry(&cfd, Some((&dir, &n)), &cst, &cshown, &child)?;
            }
            Ok(())
        }
        FileType::RegularFile => {
            let f = match link_of {
                Some((dir, n)) => rustix::fs::openat(
                    dir,
                    n,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ),
                None => reopen(fd),
            }
            .map_err(serr)?;
            write_file(d, &mut File::from(f), mode)
        }
        FileType::Symlink => {
            let Some((dir, n)) = link_of else {
                return Ok(());
            };
            let target = rustix::fs::readlinkat(dir, n, Vec::new()).map_err(serr)?;
            match rustix::fs::statat(&d.dir, &d.name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
                    rustix::fs::unlinkat(&d.dir, &d.name, AtFlags::empty())
                        .map_err(dest_err(&d.shown))?
                }
                _ => {}
            }
            rustix::fs::symlinkat(target.as_c_str(), &d.dir, &d.name).map_err(dest_err(&d.shown))
        }
        _ => {
            tracing::warn!(
                "%files from: skipping `{}`: not a regular file, directory or symlink",
                shown.display()
            );
            Ok(())
        }
    }
}

/// Reopen an `O_PATH` fd for reading through `/proc/self/fd` (the top-level source of a stage
/// copy, already resolved inside its root).
fn reopen(fd: &OwnedFd) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsRawFd as _;
    rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

trait FromBytesOwned {
    fn from_bytes_owned(b: &[u8]) -> std::ffi::OsString;
}

impl FromBytesOwned for std::ffi::OsStr {
    fn from_bytes_owned(b: &[u8]) -> std::ffi::OsString {
        use std::os::unix::ffi::OsStrExt as _;
        std::ffi::OsStr::from_bytes(b).to_owned()
    }
}

/// Expand shell wildcards in `path`, component by component, sorted; a path without wildcards
/// is returned as is when it exists.
pub fn glob(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = vec![PathBuf::new()];
    for c in path.components() {
        let mut next = Vec::new();
        match c {
            Component::Normal(s) if has_wildcard(&s.to_string_lossy()) => {
                let pat = s.to_string_lossy().into_owned();
                for base in &found {
                    let dir = if base.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        base.as_path()
                    };
                    let Ok(rd) = std::fs::read_dir(dir) else {
                        continue;
                    };
                    let mut names: Vec<_> = rd
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| {
                            (!n.starts_with('.') || pat.starts_with('.')) && wild_match(&pat, n)
                        })
                        .collect();
                    names.sort();
                    next.extend(names.into_iter().map(|n| base.join(n)));
                }
            }
            other => next.extend(found.iter().map(|b| b.join(other.as_os_str()))),
        }
        found = next;
    }
    Ok(found.into_iter().filter(|p| p.exists()).collect())
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell pattern match of one name: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`.
fn wild_match(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(close) = p.iter().skip(2).position(|&c| c == ']').map(|i| i + 2) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let (neg, set) = match p[1] {
                    '!' | '^' => (true, &p[2..close]),
                    _ => (false, &p[1..close]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[close + 1..], &n[1..])
            }
            Some(&ch) => n.first() == Some(&ch) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_the_shell() {
        assert!(wild_match("*.txt", "req.txt"));
        assert!(!wild_match("*.txt", "req.txt.bak"));
        assert!(wild_match("f?o", "foo"));
        assert!(wild_match("[a-c]x", "bx"));
        assert!(!wild_match("[!a-c]x", "bx"));
        assert!(wild_match("[!a-c]x", "dx"));
        assert!(wild_match("a[", "a["));
    }

    #[test]
    fn host_copy_creates_parents_and_follows_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        let root = t.path().join("root");
        std::fs::create_dir_all(ctx.join("d/sub")).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(ctx.join("a.txt"), "A").unwrap();
        std::fs::write(ctx.join("d/sub/b"), "B").unwrap();
        std::os::unix::fs::symlink("a.txt", ctx.join("link")).unwrap();
        copy_from_host(&ctx, "a.txt", Some("/opt/x/a.txt"), &root).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("opt/x/a.txt")).unwrap(),
            "A"
        );
        copy_from_host(&ctx, "d", Some("/opt"), &root).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("opt/d/sub/b")).unwrap(),
            "B"
        );
        copy_from_host(&ctx, "link", Some("/l"), &root).unwrap();
        assert!(!root.join("l").symlink_metadata().unwrap().is_symlink());
        assert_eq!(
            copy_from_host(&ctx, "*.txt", Some("/many"), &root).unwrap(),
            1
        );
        assert!(matches!(
            copy_from_host(&ctx, "nope*", None, &root),
            Err(CopyError::NoMatch { .. })
        ));
    }

    #[test]
    fn destination_symlinks_resolve_inside_the_root_never_the_host() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        for d in [&ctx, &root, &outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(ctx.join("f"), "F").unwrap();
        // An absolute symlink pointing at a host directory: inside the root it means root/outside.
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        copy_from_host(&ctx, "f", Some("/evil/f"), &root).unwrap();
        assert!(
            !outside.join("f").exists(),
            "wrote through a symlink onto the host"
        );
        let inside = root.join(outside.strip_prefix("/").unwrap()).join("f");
        assert_eq!(std::fs::read_to_string(inside).unwrap(), "F");
        // A symlink leaf at the destination is replaced, not written through.
        std::fs::write(outside.join("victim"), "keep").unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), root.join("leaf")).unwrap();
        copy_from_host(&ctx, "f", Some("/leaf"), &root).unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "keep"
        );
        assert_eq!(std::fs::read_to_string(root.join("leaf")).unwrap(), "F");
    }

    #[test]
    fn stage_copy_keeps_inner_symlinks_and_follows_the_top_one_inside_its_root() {
        let t = tempfile::tempdir().unwrap();
        let from = t.path().join("from");
        let root = t.path().join("root");
        std::fs::create_dir_all(from.join("src/bin")).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(from.join("src/bin/hello"), "ELF").unwrap();
        std::os::unix::fs::symlink("hello", from.join("src/bin/hi")).unwrap();
        std::os::unix::fs::symlink("/src", from.join("top")).unwrap();
        copy_from_stage(&from, "/top", Some("/usr/local/app"), &root).unwrap();
        let app = root.join("usr/local/app");
        assert_eq!(
            std::fs::read_to_string(app.join("bin/hello")).unwrap(),
            "ELF"
        );
        assert_eq!(
            std::fs::read_link(app.join("bin/hi")).unwrap(),
            Path::new("hello")
        );
        copy_from_stage(&from, "/src/bin/hello", Some("/usr/bin/hello"), &root).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("usr/bin/hello")).unwrap(),
            "ELF"
        );
    }
}
