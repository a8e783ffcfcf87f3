//! Shared helpers for the writer tests: a generated source tree holding every entry type,
//! a snapshot of a tree (what `ls -l`, `cmp` and `getfattr` would show) and runners for
//! the peer tools. Peers that are missing make a test print why and return early, which fails
//! under `SIFR_TEST_STRICT` (CI installs them: scripts/deps.sh).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub use sifr_testkit::have;

/// Say why a check is skipped ([`sifr_testkit::skip`]: a failure under `SIFR_TEST_STRICT`).
#[track_caller]
pub fn skip(what: &str, why: &str) {
    sifr_testkit::skip(format_args!("{what}: {why}"));
}

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::File::create(p).unwrap().write_all(data).unwrap();
}

fn pseudo(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Half text-like, half noise: compressible but not trivially.
            if i % 2 == 0 {
                b'a' + (x % 7) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

/// A tree with every entry type the writer supports. `block` is the block size the
/// image will use, so "crossing a block boundary" means the same thing in every test.
pub fn make_tree(root: &Path, block: usize) {
    fs::create_dir_all(root).unwrap();
    write(&root.join("empty"), b"");
    write(&root.join("small.txt"), b"hello squashfs\n");
    write(&root.join("exact_block"), &pseudo(block, 1));
    write(&root.join("cross_blocks"), &pseudo(3 * block + 17, 2));
    write(&root.join("one_less"), &pseudo(block - 1, 3));
    // Sparse: zero blocks around data, and an all-zero file.
    let mut sparse = vec![0u8; 4 * block];
    sparse[block + 5..block + 100].copy_from_slice(&pseudo(95, 4));
    write(&root.join("sparse"), &sparse);
    write(&root.join("zeros"), &vec![0u8; 2 * block + 3]);
    // Duplicates in different directories, one of them multi-block.
    write(&root.join("dup/a"), &pseudo(2 * block + 9, 5));
    write(&root.join("dup/b/copy"), &pseudo(2 * block + 9, 5));
    write(&root.join("dup/small1"), b"same small content");
    write(&root.join("dup/small2"), b"same small content");
    // Long names and a deep path.
    let long = "L".repeat(255);
    write(&root.join(&long), b"long name");
    let mut deep = root.join("deep");
    for i in 0..40 {
        deep = deep.join(format!("level{i:02}_{}", "d".repeat(60)));
    }
    write(&deep.join("leaf"), b"deep leaf");
    // Many entries: > 256 per header and a listing over 8 KiB.
    for i in 0..700 {
        write(
            &root
                .join("many")
                .join(format!("file_{i:04}_{}", "x".repeat(12))),
            format!("{i}").as_bytes(),
        );
    }
    // Symlinks: relative, absolute, dangling, to a directory.
    symlink("small.txt", root.join("link_rel")).unwrap();
    symlink("/etc/passwd", root.join("link_abs")).unwrap();
    symlink("does/not/exist", root.join("link_dangling")).unwrap();
    symlink("dup", root.join("link_dir")).unwrap();
    // Hard links: a group of three across directories, and a pair.
    write(&root.join("hard/one"), &pseudo(block + 1, 6));
    fs::hard_link(root.join("hard/one"), root.join("hard/two")).unwrap();
    fs::create_dir_all(root.join("hard/sub")).unwrap();
    fs::hard_link(root.join("hard/one"), root.join("hard/sub/three")).unwrap();
    write(&root.join("hard/pair_a"), b"pair");
    fs::hard_link(root.join("hard/pair_a"), root.join("hard/pair_b")).unwrap();
    // Special modes.
    write(&root.join("modes/setuid"), b"#!/bin/sh\n");
    fs::set_permissions(
        root.join("modes/setuid"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    write(&root.join("modes/setgid"), b"#!/bin/sh\n");
    fs::set_permissions(
        root.join("modes/setgid"),
        fs::Permissions::from_mode(0o2711),
    )
    .unwrap();
    fs::create_dir_all(root.join("modes/sticky")).unwrap();
    fs::set_permissions(
        root.join("modes/sticky"),
        fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    write(&root.join("modes/private"), b"secret");
    fs::set_permissions(
        root.join("modes/private"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::create_dir_all(root.join("emptydir")).unwrap();
    // FIFO and socket.
    assert!(
        Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    let _sock = std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
    // User xattrs (the filesystem under the test dir may not support them).
    let _ = xattr::set(root.join("small.txt"), "user.comment", b"a note");
    let _ = xattr::set(root.join("small.txt"), "user.empty", b"");
    let _ = xattr::set(root.join("dup"), "user.dir", b"on a directory");
    let _ = xattr::set(root.join("hard/one"), "user.shared", b"all links see this");
    if is_root() {
        for (name, major, minor, kind) in [
            ("null", 1, 3, "c"),
            ("loop7", 7, 7, "b"),
            ("bigdev", 300, 70000, "c"),
        ] {
            let st = Command::new("mknod")
                .arg(root.join(name))
                .arg(kind)
                .arg(major.to_string())
                .arg(minor.to_string())
                .status()
                .unwrap();
            assert!(st.success());
        }
        std::os::unix::fs::chown(root.join("small.txt"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("link_rel"), Some(42), Some(43)).unwrap();
        std::os::unix::fs::chown(root.join("dup"), Some(65534), Some(100)).unwrap();
        // security.capability: vfs_cap_data v2, cap_net_raw permitted + effective.
        let mut cap = Vec::new();
        for w in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
            cap.extend_from_slice(&w.to_le_bytes());
        }
        write(&root.join("ping"), b"\x7fELF fake ping");
        xattr::set(root.join("ping"), "security.capability", &cap).unwrap();
        let _ = xattr::set(root.join("ping"), "trusted.note", b"trusted");
    }
    // Fixed mtimes on regular files and directories (not symlinks: no std API).
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for p in ["small.txt", "cross_blocks", "modes/setuid"] {
        fs::File::options()
            .write(true)
            .open(root.join(p))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
}

/// What a tree looks like to a user, per relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub nlink: u64,
    pub rdev: u64,
    pub target: Option<PathBuf>,
    pub sha: Option<[u8; 32]>,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub struct SnapOpts {
    pub owners: bool,
    pub xattrs: bool,
    pub sockets: bool,
}

pub fn snapshot(root: &Path, o: &SnapOpts) -> BTreeMap<PathBuf, Info> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            '-'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_fifo() {
            'p'
        } else {
            's'
        };
        if kind == 's' && !o.sockets {
            continue;
        }
        let mut xattrs: Vec<(String, Vec<u8>)> = if o.xattrs && kind != 'l' {
            xattr::list(&p)
                .map(|l| {
                    l.filter(|n| !n.to_string_lossy().starts_with("system."))
                        .map(|n| {
                            (
                                n.to_string_lossy().into_owned(),
                                xattr::get(&p, &n).unwrap().unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        xattrs.sort();
        let info = Info {
            kind,
            mode: md.mode() & 0o7777,
            uid: if o.owners { md.uid() } else { 0 },
            gid: if o.owners { md.gid() } else { 0 },
            size: if kind == 'd' { 0 } else { md.len() },
            mtime: if kind == 'l' { 0 } else { md.mtime() },
            nlink: md.nlink(),
            rdev: if kind == 'b' || kind == 'c' {
                md.rdev()
            } else {
                0
            },
            target: (kind == 'l').then(|| fs::read_link(&p).unwrap()),
            sha: (kind == '-').then(|| Sha256::digest(fs::read(&p).unwrap()).into()),
            xattrs,
        };
        if kind == 'd' {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        }
        out.insert(rel, info);
    }
    out
}

/// Assert two snapshots are equal, naming the first differing path.
pub fn assert_same(what: &str, expected: &BTreeMap<PathBuf, Info>, got: &BTreeMap<PathBuf, Info>) {
    for (p, e) in expected {
        match got.get(p) {
            None => panic!("{what}: `{}` missing", p.display()),
            Some(g) => assert_eq!(e, g, "{what}: `{}` differs", p.display()),
        }
    }
    for p in got.keys() {
        assert!(
            expected.contains_key(p),
            "{what}: unexpected `{}`",
            p.display()
        );
    }
}

/// `unsquashfs -lln` parsed into path -> (perms, owner, size-or-device, link target).
pub fn unsquashfs_lln(img: &Path) -> BTreeMap<PathBuf, (String, String, String, Option<String>)> {
    let out = Command::new("unsquashfs")
        .arg("-lln")
        .arg("-d")
        .arg("")
        .arg(img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unsquashfs -lln failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let perms = it.next().unwrap().to_string();
        let owner = it.next().unwrap().to_string();
        let mut size = it.next().unwrap().to_string();
        if (perms.starts_with('b') || perms.starts_with('c')) && size.ends_with(',') {
            size.push_str(it.next().unwrap());
        }
        let _date = it.next();
        let _time = it.next();
        let rest: Vec<&str> = it.collect();
        let rest = rest.join(" ");
        let (path, target) = match rest.split_once(" -> ") {
            Some((p, t)) => (p.to_string(), Some(t.to_string())),
            None => (rest, None),
        };
        let rel = PathBuf::from(path.trim_start_matches('/'));
        map.insert(rel, (perms, owner, size, target));
    }
    map
}

/// The listing `unsquashfs -lln` should print for the source tree.
pub fn expected_lln(
    src: &BTreeMap<PathBuf, Info>,
    all_root: bool,
) -> BTreeMap<PathBuf, (String, String, String, Option<String>)> {
    let mut map = BTreeMap::new();
    for (p, i) in src {
        let mut perms = String::new();
        perms.push(match i.kind {
            '-' => '-',
            k => k,
        });
        let m = i.mode;
        let bit = |b: u32, c: char| if m & b != 0 { c } else { '-' };
        let x = |xb: u32, sb: u32, s: char| match (m & xb != 0, m & sb != 0) {
            (true, true) => s,
            (false, true) => s.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        };
        perms.push(bit(0o400, 'r'));
        perms.push(bit(0o200, 'w'));
        perms.push(x(0o100, 0o4000, 's'));
        perms.push(bit(0o40, 'r'));
        perms.push(bit(0o20, 'w'));
        perms.push(x(0o10, 0o2000, 's'));
        perms.push(bit(0o4, 'r'));
        perms.push(bit(0o2, 'w'));
        perms.push(x(0o1, 0o1000, 't'));
        let owner = if all_root {
            "0/0".to_string()
        } else {
            format!("{}/{}", i.uid, i.gid)
        };
        let size = match i.kind {
            'b' | 'c' => {
                let r = i.rdev;
                let major = ((r >> 8) & 0xfff) | ((r >> 32) & !0xfff);
                let minor = (r & 0xff) | ((r >> 12) & !0xff);
                // unsquashfs -lln prints the stored word as (word >> 8, word & 0xff), which
                // is the real major/minor only while both fit the old 12/8-bit split.
                let word = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
                format!("{},{}", word >> 8, word & 0xff)
            }
            'd' => "DIR".to_string(),
            _ => i.size.to_string(),
        };
        map.insert(
            p.clone(),
            (
                perms,
                owner,
                size,
                i.target.as_ref().map(|t| t.to_string_lossy().into_owned()),
            ),
        );
    }
    map
}

pub fn assert_lln(img: &Path, src: &BTreeMap<PathBuf, Info>, all_root: bool) {
    if !have("unsquashfs") {
        return skip(
            "unsquashfs -lln",
            "unsquashfs not installed (apt-get install squashfs-tools)",
        );
    }
    let mut got = unsquashfs_lln(img);
    let want = expected_lln(src, all_root);
    // Directory sizes are the listing size, not comparable to the host's.
    for (p, v) in got.iter_mut() {
        if want.get(p).is_some_and(|w| w.2 == "DIR") {
            v.2 = "DIR".into();
        }
    }
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "unsquashfs -lln names: missing {missing:?}, unexpected {extra:?}"
    );
    for (p, w) in &want {
        assert_eq!(w, &got[p], "unsquashfs -lln `{}`", p.display());
    }
}

pub fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
