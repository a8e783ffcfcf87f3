//! Shared helpers of the reader tests: fixture trees built at test time, packing them with
//! `mksquashfs`, and comparing an archive with its source tree. Tests skip (with a printed
//! reason) when `mksquashfs` is missing, and fail instead under `SIFR_TEST_STRICT` (CI).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sifr_squashfs::read::{Archive, Error, FileType, Inode};

/// Whether `mksquashfs` runs; if not, [`sifr_testkit::skip`] says why.
#[track_caller]
pub fn have_mksquashfs(test: &str) -> bool {
    match Command::new("mksquashfs").arg("-version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            sifr_testkit::skip(format_args!(
                "{test}: mksquashfs not found (apt-get install squashfs-tools)"
            ));
            false
        }
    }
}

/// Assert that `err` says the inode read as a file is not a regular file.
#[track_caller]
pub fn assert_not_a_regular_file(err: &Error) {
    assert!(
        matches!(
            err,
            Error::WrongType {
                want: "regular file",
                ..
            }
        ),
        "{err:?}"
    );
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Deterministic bytes: a mix of random and repetitive runs so compressors have work to do.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let run = (x % 64) as usize;
        if x & 0x100 == 0 {
            out.extend(std::iter::repeat_n(
                (x >> 24) as u8,
                run.min(len - out.len()),
            ));
        } else {
            for b in x.to_le_bytes() {
                if out.len() < len {
                    out.push(b);
                }
            }
        }
    }
    out
}

/// Tiny xorshift for random offsets in tests.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// Whether the filesystem holding `dir` accepts `user.*` xattrs.
pub fn user_xattrs_supported(dir: &Path) -> bool {
    let p = dir.join(".xattr-probe");
    fs::write(&p, b"").unwrap();
    let ok = rustix::fs::setxattr(&p, "user.probe", b"1", rustix::fs::XattrFlags::empty()).is_ok();
    fs::remove_file(&p).unwrap();
    ok
}

/// Builds the standard fixture tree under `root` (which must exist and be empty).
pub fn build_tree(root: &Path) {
    let w = |p: &str, data: &[u8]| {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    };
    let k = 1024;
    w("empty", b"");
    w("small.txt", b"hello squashfs\n");
    w("one-byte", b"x");
    w("exact-4k", &pattern(1, 4 * k));
    w("exact-128k", &pattern(2, 128 * k));
    w("blocks-and-tail", &pattern(3, 3 * 128 * k + 1000));
    w("big.bin", &pattern(4, 2 * 1024 * k + 12345));
    w("dir/nested/file", &pattern(5, 70_000));
    w("zeros", &vec![0u8; 300 * k]);
    // Sparse: a hole, some data in the middle, a hole at the end.
    let f = fs::File::create(root.join("sparse")).unwrap();
    f.set_len(3 * 1024 * k as u64).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &pattern(6, 5000), (1024 * k + 17) as u64)
        .unwrap();
    drop(f);
    // Hard links (three names, one inode).
    w("links/a", &pattern(7, 9000));
    fs::hard_link(root.join("links/a"), root.join("links/b")).unwrap();
    fs::hard_link(root.join("links/a"), root.join("dir/c-link")).unwrap();
    // Symlinks.
    std::os::unix::fs::symlink("small.txt", root.join("sym-rel")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("sym-abs")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("sym-dangling")).unwrap();
    std::os::unix::fs::symlink("x".repeat(1000), root.join("sym-long")).unwrap();
    // Many entries: several directory headers and an index.
    let many = root.join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..700 {
        let name = format!("entry-{i:04}-{}", "n".repeat(i % 40));
        fs::write(many.join(name), format!("{i}\n")).unwrap();
    }
    // Long names and a deep path.
    w(&"L".repeat(255), b"long name");
    let mut deep = PathBuf::from("deep");
    for i in 0..40 {
        deep.push(format!("level{i}"));
    }
    w(&deep.join("leaf").to_string_lossy(), b"deep leaf");
    // Modes.
    w("modes/exec", b"#!/bin/sh\n");
    fs::set_permissions(root.join("modes/exec"), fs::Permissions::from_mode(0o755)).unwrap();
    w("modes/private", b"secret");
    fs::set_permissions(
        root.join("modes/private"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    w("modes/setuid", b"s");
    fs::set_permissions(
        root.join("modes/setuid"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    fs::create_dir(root.join("modes/ro-dir")).unwrap();
    fs::write(root.join("modes/ro-dir/inside"), b"in a read-only dir").unwrap();
    fs::set_permissions(root.join("modes/ro-dir"), fs::Permissions::from_mode(0o555)).unwrap();
    // Fifo (unprivileged works) and, as root, devices and foreign owners.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    if is_root() {
        let dev = rustix::fs::makedev(1, 3);
        let _ = rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("null-dev"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            dev,
        );
        let dev = rustix::fs::makedev(259, 70000);
        let _ = rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("blk-dev"),
            rustix::fs::FileType::BlockDevice,
            rustix::fs::Mode::from_raw_mode(0o660),
            dev,
        );
        std::os::unix::fs::lchown(root.join("small.txt"), Some(1000), Some(1001)).unwrap();
        std::os::unix::fs::lchown(root.join("sym-rel"), Some(2000), Some(2001)).unwrap();
        std::os::unix::fs::lchown(root.join("dir"), Some(65534), Some(100)).unwrap();
    }
    if user_xattrs_supported(root) {
        let set = |p: &str, k: &str, v: &[u8]| {
            rustix::fs::lsetxattr(root.join(p), k, v, rustix::fs::XattrFlags::empty()).unwrap();
        };
        set("small.txt", "user.comment", b"a comment");
        set("small.txt", "user.empty", b"");
        set("dir", "user.dirattr", b"on a directory");
        set("big.bin", "user.big", &pattern(8, 3000));
        // Same value on several inodes: mksquashfs may store it out of line.
        for f in ["one-byte", "exact-4k", "links/a"] {
            set(f, "user.shared", &pattern(9, 600));
        }
    }
    // Fixed mtimes so comparisons do not race with the clock.
    set_times(root);
}

fn set_times(root: &Path) {
    let mut all = Vec::new();
    collect(root, &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        let t = rustix::fs::Timespec {
            tv_sec: 1_600_000_000 + i as i64 * 7,
            tv_nsec: 0,
        };
        let ts = rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            p,
            &ts,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    out.push(p.to_path_buf());
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            collect(&e.unwrap().path(), out);
        }
    }
}

/// Packs `src` into `img` with mksquashfs and extra `args`.
pub fn pack(src: &Path, img: &Path, args: &[&str]) {
    sifr_testkit::mksquashfs(src, img, &[&["-processors", "2"], args].concat());
}

/// [`build_tree`] in `TMP/src`, packed with mksquashfs and `args` into `TMP/img` and opened;
/// `None` (after saying why) when mksquashfs is missing.
pub fn packed_tree(test: &str, args: &[&str]) -> Option<(tempfile::TempDir, PathBuf, Archive)> {
    if !have_mksquashfs(test) {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    build_tree(&src);
    let img = tmp.path().join("img");
    pack(&src, &img, args);
    let a = open(&img);
    Some((tmp, src, a))
}

pub fn open(img: &Path) -> Archive {
    Archive::open(fs::File::open(img).unwrap(), 0).unwrap()
}

/// `user.*` xattrs of a source path, sorted.
pub fn source_xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut buf = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(p, &mut buf) else {
        return out;
    };
    for name in buf[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !name.starts_with(b"user.") {
            continue;
        }
        let mut v = vec![0u8; 65536];
        let m = rustix::fs::lgetxattr(p, OsStr::from_bytes(name), &mut v).unwrap();
        out.insert(name.to_vec(), v[..m].to_vec());
    }
    out
}

/// Reads the whole of `inode` through `read_at` in chunks of `chunk` bytes.
pub fn read_all(a: &Archive, inode: &Inode, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = a.read_at(inode, out.len() as u64, &mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Checks every object of the archive against `src`: type, mode, owner, size, nlink, mtime,
/// link target, xattrs, and file contents by random-offset reads. Returns the count checked.
pub fn check_against_source(a: &Archive, src: &Path, seed: u64) -> usize {
    let entries = a.walk().unwrap();
    let mut rng = Rng(seed | 1);
    for e in &entries {
        let sp = src.join(&e.path);
        let m = fs::symlink_metadata(&sp).unwrap_or_else(|err| panic!("{}: {err}", sp.display()));
        let i = &e.inode;
        let what = e.path.display().to_string();
        assert_eq!(i.mode(), m.mode(), "mode of `{what}`");
        assert_eq!((i.uid, i.gid), (m.uid(), m.gid()), "owner of `{what}`");
        assert_eq!(i64::from(i.mtime), m.mtime(), "mtime of `{what}`");
        assert_eq!(u64::from(i.nlink), m.nlink(), "nlink of `{what}`");
        match i.file_type() {
            FileType::File => {
                assert_eq!(i.size(), m.len(), "size of `{what}`");
                let want = fs::read(&sp).unwrap();
                // Random-offset, random-length reads, some across block boundaries.
                for _ in 0..20 {
                    let off = rng.below(want.len() as u64 + 10);
                    let len = rng.below(300_000) as usize;
                    let mut buf = vec![0u8; len];
                    let n = a.read_at(i, off, &mut buf).unwrap();
                    let lo = (off as usize).min(want.len());
                    let hi = (lo + len).min(want.len());
                    assert_eq!(n, hi - lo, "read length of `{what}` at {off}+{len}");
                    assert!(
                        buf[..n] == want[lo..hi],
                        "content of `{what}` at {off}+{len}"
                    );
                }
                assert!(read_all(a, i, 65536) == want, "whole content of `{what}`");
            }
            FileType::Symlink => {
                assert_eq!(
                    a.read_link(i).unwrap(),
                    fs::read_link(&sp).unwrap(),
                    "target of `{what}`"
                );
            }
            FileType::CharDevice | FileType::BlockDevice => {
                let (ma, mi) = i.device().unwrap();
                assert_eq!(rustix::fs::makedev(ma, mi), m.rdev(), "device of `{what}`");
            }
            FileType::Directory => {
                let names: Vec<Vec<u8>> =
                    a.read_dir(i).unwrap().into_iter().map(|d| d.name).collect();
                let mut want: Vec<Vec<u8>> = fs::read_dir(&sp)
                    .unwrap()
                    .map(|d| d.unwrap().file_name().as_bytes().to_vec())
                    .collect();
                want.sort();
                assert_eq!(names, want, "listing of `{what}`");
            }
            _ => {}
        }
        let got: BTreeMap<_, _> = a
            .xattrs(i)
            .unwrap()
            .into_iter()
            .filter(|x| x.name.starts_with(b"user."))
            .map(|x| (x.name, x.value))
            .collect();
        assert_eq!(got, source_xattrs(&sp), "xattrs of `{what}`");
    }
    let mut all = Vec::new();
    collect(src, &mut all);
    assert_eq!(entries.len(), all.len(), "number of objects");
    entries.len()
}
