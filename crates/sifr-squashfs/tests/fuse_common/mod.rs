//! Shared helpers of the FUSE tests: a generated source tree (sizes around block and page
//! boundaries, a directory of thousands of entries, symlinks, hard links, xattrs, owners,
//! special files), packing it, mounting with a forked server, and comparing a mount with
//! the tree through ordinary syscalls.
#![allow(dead_code, clippy::print_stderr, clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use sifr_squashfs::fuse::{self, Owner};

/// Numeric ids that only exist in the image (no such user on the machine).
pub const ODD_UID: u32 = 1234;
pub const ODD_GID: u32 = 5678;

pub struct Tree {
    pub dir: tempfile::TempDir,
    pub src: PathBuf,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Deterministic bytes: random-looking for even seeds, repetitive text for odd ones, so both
/// compressed and stored-uncompressed blocks occur.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    if seed % 2 == 1 {
        let line = format!("line of file {seed}: the quick brown fox\n");
        return line.bytes().cycle().take(len).collect();
    }
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sizes around 4 KiB pages and 128 KiB blocks, a multi-block file with a tail, an empty one.
pub const SIZES: &[usize] = &[
    0,
    1,
    100,
    4095,
    4096,
    4097,
    131_071,
    131_072,
    131_073,
    (1 << 20) + 17,
    3 << 20,
];

pub fn user_ids(name: &str) -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let o = Command::new("id")
            .args([flag, name])
            .output()
            .map_err(io("run id"))?;
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .map_err(|_| format!("no user `{name}`"))
    };
    Ok((id("-u")?, id("-g")?))
}

impl Tree {
    pub fn generate() -> Result<Tree, String> {
        let dir = tempfile::Builder::new()
            .prefix("sifr-fuse-")
            .tempdir()
            .map_err(io("tempdir"))?;
        // Reachable by the unprivileged probe.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).map_err(io("chmod"))?;
        let src = dir.path().join("src");
        let d = |p: &str| fs::create_dir_all(src.join(p)).map_err(io("mkdir"));
        for p in [
            "files",
            "many",
            "deep/a/b/c/d/e",
            "links",
            "special",
            "empty",
            "private",
        ] {
            d(p)?;
        }
        let mtime = |p: &Path, t: i64| {
            let ts = rustix::fs::Timespec {
                tv_sec: t,
                tv_nsec: 0,
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                p,
                &rustix::fs::Timestamps {
                    last_access: ts,
                    last_modification: ts,
                },
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| format!("utimensat {}: {e}", p.display()))
        };
        for (i, &size) in SIZES.iter().enumerate() {
            let p = src.join(format!("files/f-{size}"));
            fs::write(&p, content(i as u64, size)).map_err(io("write"))?;
            mtime(&p, 1_600_000_000 + i as i64)?;
        }
        for i in 0..2500u64 {
            let p = src.join(format!("many/entry-{i:05}"));
            fs::write(&p, content(i + 100, (i % 300) as usize)).map_err(io("write"))?;
        }
        fs::write(src.join("deep/a/b/c/d/e/leaf"), b"deep\n").map_err(io("write"))?;
        // Hard links across directories.
        let hl = src.join("files/hardlinked");
        fs::write(&hl, content(7, 10_000)).map_err(io("write"))?;
        fs::hard_link(&hl, src.join("many/hardlink-2")).map_err(io("link"))?;
        fs::hard_link(&hl, src.join("deep/a/hardlink-3")).map_err(io("link"))?;
        // Symlinks: relative, absolute, dangling, long.
        for (name, target) in [
            ("rel", "../files/f-4096".to_string()),
            ("abs", "/etc/hostname".to_string()),
            ("dangling", "no/such/file".to_string()),
            ("long", "x/".repeat(200) + "end"),
        ] {
            let p = src.join("links").join(name);
            symlink(&target, &p).map_err(io("symlink"))?;
            mtime(&p, 1_500_000_000)?;
        }
        // Owners and modes.
        let owned = src.join("files/odd-owner");
        fs::write(&owned, b"owned by ids that exist only in the image\n").map_err(io("write"))?;
        std::os::unix::fs::chown(&owned, Some(ODD_UID), Some(ODD_GID)).map_err(io("chown"))?;
        let suid = src.join("files/setuid");
        fs::write(&suid, b"#!/bin/sh\n").map_err(io("write"))?;
        fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).map_err(io("chmod"))?;
        let secret = src.join("private/secret");
        fs::write(&secret, b"only the owner reads this\n").map_err(io("write"))?;
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).map_err(io("chmod"))?;
        fs::set_permissions(src.join("private"), fs::Permissions::from_mode(0o700))
            .map_err(io("chmod"))?;
        // The unprivileged probe reads the source too: give it the private corner.
        if let Ok((uid, gid)) = user_ids("sifrtest") {
            for p in [&secret, &src.join("private")] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(io("chown"))?;
            }
        }
        // Special files.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("special/fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .map_err(|e| format!("mkfifo: {e}"))?;
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("special/null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .map_err(|e| format!("mknod: {e}"))?;
        // Xattrs (user namespace only: readable by anyone, storable on any Linux fs).
        for (p, name, value) in [
            ("files/f-100", "user.sifr.test", &b"hello"[..]),
            ("files/f-100", "user.sifr.empty", &b""[..]),
            ("many", "user.sifr.dir", &b"a directory attribute"[..]),
            ("files/f-0", "user.sifr.big", &[0xabu8; 3000][..]),
        ] {
            if let Err(e) = xattr::set(src.join(p), name, value) {
                // The filesystem under TMPDIR is the machine's (tmpfs before Linux 6.6 keeps
                // no user xattrs); no package changes it.
                sifr_testkit::not_here(format_args!(
                    "xattrs not stored ({e}); comparing without them"
                ));
                break;
            }
        }
        Ok(Tree { dir, src })
    }

    /// An image from the project's own writer.
    pub fn write_image(&self, img: &Path, exportable: bool) -> Result<(), String> {
        let out = File::create(img).map_err(io("create image"))?;
        let opts = sifr_squashfs::Options {
            exportable,
            ..Default::default()
        };
        sifr_squashfs::from_dir(&self.src, out, opts).map_err(|e| format!("writer: {e}"))?;
        fs::set_permissions(img, fs::Permissions::from_mode(0o644)).map_err(io("chmod"))
    }

    pub fn mksquashfs(&self, img: &Path, extra: &[&str]) -> Result<(), String> {
        let o = Command::new("mksquashfs")
            .arg(&self.src)
            .arg(img)
            .args(["-noappend", "-quiet", "-no-progress"])
            .args(extra)
            .output()
            .map_err(io("run mksquashfs"))?;
        if !o.status.success() {
            return Err(format!(
                "mksquashfs: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        fs::set_permissions(img, fs::Permissions::from_mode(0o644)).map_err(io("chmod"))
    }

    pub fn mountpoint(&self, name: &str) -> Result<PathBuf, String> {
        let p = self.dir.path().join(name);
        fs::create_dir_all(&p).map_err(io("mkdir mountpoint"))?;
        Ok(p)
    }
}

/// The error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}

/// Mounts `img` on `mnt` and forks the server exactly as the runtime does. Only sound while
/// this process is single-threaded (these tests use their own harness).
pub fn mount_forked(
    img: &Path,
    mnt: &Path,
    opts: &fuse::Options,
) -> Result<fuse::MountHandle, String> {
    mount_forked_at(img, 0, mnt, opts)
}

/// [`mount_forked`] for an image that starts `offset` bytes into `img` (a SIF partition).
pub fn mount_forked_at(
    img: &Path,
    offset: u64,
    mnt: &Path,
    opts: &fuse::Options,
) -> Result<fuse::MountHandle, String> {
    let file = File::open(img).map_err(io("open image"))?;
    let mounted = fuse::mount(file, offset, mnt, opts).map_err(|e| chain(&e))?;
    // The runtime's own fork helper: it refuses unless this process is single-threaded.
    let (pid, mounted) = sifr_sys::process::fork_server(mounted, |m| match m.serve() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fuse server: {}", chain(&e));
            1
        }
    })
    .map_err(|e| format!("fork the server: {e}"))?;
    let mut h = mounted.into_handle(pid);
    h.wait_ready().map_err(|e| chain(&e))?;
    Ok(h)
}

pub fn assert_not_mounted(mnt: &Path) -> Result<(), String> {
    let info = fs::read_to_string("/proc/self/mountinfo").map_err(io("mountinfo"))?;
    let m = mnt.to_string_lossy();
    if let Some(line) = info.lines().find(|l| l.split(' ').nth(4) == Some(&*m)) {
        return Err(format!("still mounted: {line}"));
    }
    Ok(())
}

fn mount_line(mnt: &Path) -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let m = mnt.to_string_lossy();
    info.lines()
        .find(|l| l.split(' ').nth(4) == Some(&*m))
        .map(str::to_string)
}

/// Every path under `root` (relative; "" is the root), found with `read_dir` like `find`.
fn listing(root: &Path) -> Result<BTreeMap<PathBuf, fs::Metadata>, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let p = root.join(&rel);
        let md = fs::symlink_metadata(&p).map_err(|e| format!("lstat {}: {e}", p.display()))?;
        if md.is_dir() {
            for e in fs::read_dir(&p).map_err(|e| format!("readdir {}: {e}", p.display()))? {
                let e = e.map_err(io("readdir entry"))?;
                pending.push(rel.join(e.file_name()));
            }
        }
        out.insert(rel, md);
    }
    Ok(out)
}

fn user_xattrs(p: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    let names = xattr::list(p).map_err(|e| format!("listxattr {}: {e}", p.display()))?;
    for n in names {
        let name = n.to_string_lossy().into_owned();
        if !name.starts_with("user.") {
            continue;
        }
        let v = xattr::get(p, &n)
            .map_err(|e| format!("getxattr {name} {}: {e}", p.display()))?
            .unwrap_or_default();
        out.insert(name, v);
    }
    Ok(out)
}

/// Compares the mount with its source: the listing, stat fields, contents, link targets,
/// xattrs, hard-link identity, and the mount's own type and flags.
pub fn verify(src: &Path, mnt: &Path, owner: Option<Owner>) -> Result<(), String> {
    let line = mount_line(mnt).ok_or("not in mountinfo")?;
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields
        .iter()
        .position(|f| *f == "-")
        .ok_or("bad mountinfo")?;
    if fields[sep + 1] != "fuse.sifr" || !fields[5].split(',').any(|o| o == "ro") {
        return Err(format!("unexpected mount: {line}"));
    }
    for flag in ["nosuid", "nodev"] {
        if !fields[5].split(',').any(|o| o == flag) {
            return Err(format!("mount lacks {flag}: {line}"));
        }
    }
    let st = rustix::fs::statfs(mnt).map_err(|e| format!("statfs: {e}"))?;
    if st.f_type as i64 != 0x6573_5546 {
        return Err(format!("statfs type {:#x}, want FUSE", st.f_type));
    }

    let a = listing(src)?;
    let b = listing(mnt)?;
    if a.len() != b.len() || a.keys().ne(b.keys()) {
        let only_a: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).take(5).collect();
        let only_b: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).take(5).collect();
        return Err(format!(
            "listings differ ({} vs {} paths): only in source {only_a:?}, only in mount {only_b:?}",
            a.len(),
            b.len()
        ));
    }
    let mut groups: HashMap<(u64, u64), u64> = HashMap::new();
    let mut seen_ino: HashMap<u64, (u64, u64)> = HashMap::new();
    for (rel, ma) in &a {
        let mb = &b[rel];
        let (ps, pm) = (src.join(rel), mnt.join(rel));
        let what = |field: &str, x: &dyn std::fmt::Debug, y: &dyn std::fmt::Debug| {
            format!(
                "{}: {field} is {y:?} through the mount, {x:?} in the source",
                rel.display()
            )
        };
        if ma.mode() != mb.mode() {
            return Err(what(
                "mode",
                &format_args!("{:o}", ma.mode()),
                &format_args!("{:o}", mb.mode()),
            ));
        }
        if ma.nlink() != mb.nlink() {
            return Err(what("nlink", &ma.nlink(), &mb.nlink()));
        }
        if ma.mtime() != mb.mtime() {
            return Err(what("mtime", &ma.mtime(), &mb.mtime()));
        }
        let want = owner.map_or((ma.uid(), ma.gid()), |o| (o.uid, o.gid));
        if want != (mb.uid(), mb.gid()) {
            return Err(what("owner", &want, &(mb.uid(), mb.gid())));
        }
        if !ma.is_dir() && ma.size() != mb.size() {
            return Err(what("size", &ma.size(), &mb.size()));
        }
        if ma.rdev() != mb.rdev() {
            return Err(what("rdev", &ma.rdev(), &mb.rdev()));
        }
        let ft = ma.file_type();
        if ft.is_file() {
            let x = fs::read(&ps).map_err(io("read source"))?;
            let y = fs::read(&pm).map_err(|e| format!("read {}: {e}", pm.display()))?;
            if x != y {
                let at = x.iter().zip(&y).position(|(p, q)| p != q);
                return Err(what(
                    "contents",
                    &format_args!("{} bytes", x.len()),
                    &format_args!("{} bytes, first difference at {at:?}", y.len()),
                ));
            }
        }
        if ft.is_symlink() {
            let x = fs::read_link(&ps).map_err(io("readlink source"))?;
            let y = fs::read_link(&pm).map_err(|e| format!("readlink {}: {e}", pm.display()))?;
            if x != y {
                return Err(what("symlink target", &x, &y));
            }
        }
        if ft.is_file() || ft.is_dir() {
            let (x, y) = (user_xattrs(&ps)?, user_xattrs(&pm)?);
            if x != y {
                return Err(what("xattrs", &x, &y));
            }
            if xattr::get(&pm, "user.sifr.absent")
                .map_err(io("getxattr"))?
                .is_some()
            {
                return Err(what("absent xattr", &"none", &"a value"));
            }
        }
        // Hard links: one source inode <-> one mount inode.
        if !ft.is_dir() {
            let key = (ma.dev(), ma.ino());
            if let Some(&ino) = groups.get(&key)
                && ino != mb.ino()
            {
                return Err(what("inode of a hard link", &ino, &mb.ino()));
            }
            groups.insert(key, mb.ino());
        }
        if let Some(other) = seen_ino.insert(mb.ino(), (ma.dev(), ma.ino()))
            && other != (ma.dev(), ma.ino())
        {
            return Err(what(
                "inode number (shared with another file)",
                &"unique",
                &mb.ino(),
            ));
        }
    }
    if fs::read(mnt.join("no-such-file")).is_ok() {
        return Err("a missing name opened".into());
    }
    if fs::write(mnt.join("files/f-1"), b"x").is_ok() {
        return Err("a write through the read-only mount succeeded".into());
    }
    Ok(())
}
