//! `sifr overlay create`, judged by e2fsprogs (`e2fsck -fn`, `debugfs`), `stat`, `unsquashfs`
//! and `sifr sif`, against Apptainer's e2e test `e2e/overlay/overlay.go` (`testOverlayCreate`,
//! whose cases are named where each expectation comes from) and the layout its
//! `internal/app/apptainer/overlay_create.go` makes.
//!
//! Run as root and as the unprivileged test user; nothing is mounted and no container starts,
//! so this binary is not in the `host-state` group (the user switch is `setpriv`, which changes
//! nothing on the host).

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use sifr_testkit::{As, TestCommand, TestOutput, identities, runnable_identities};

const MIB: u64 = 1 << 20;

/// The e2fsprogs and squashfs tools these tests judge with, or a skip.
fn tools() -> bool {
    match sifr_testkit::missing(&["mkfs.ext3", "debugfs", "e2fsck", "mksquashfs", "unsquashfs"]) {
        None => true,
        Some(m) => {
            sifr_testkit::skip(format_args!(
                "{m} missing (apt-get install e2fsprogs squashfs-tools)"
            ));
            false
        }
    }
}

/// A directory `who` may write in, with a private temporary directory for the staging trees.
struct Dir {
    tmp: tempfile::TempDir,
    path: PathBuf,
    tmpdir: PathBuf,
    who: As,
}

fn dir_for(who: As) -> Dir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = tmp.path().join("work");
    let tmpdir = tmp.path().join("tmp");
    for d in [&path, &tmpdir] {
        std::fs::create_dir(d).unwrap();
        std::os::unix::fs::chown(d, Some(who.uid()), Some(who.gid())).unwrap_or_else(|e| {
            // Not root: the directory is the caller's already.
            assert_eq!(who.uid(), std::fs::metadata(d).unwrap().uid(), "{e}");
        });
    }
    Dir {
        tmp,
        path,
        tmpdir,
        who,
    }
}

impl Dir {
    fn sifr(&self, args: &[&str]) -> TestOutput {
        TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
            .without_caller_settings()
            .as_user(self.who)
            .current_dir(&self.path)
            .env("TMPDIR", &self.tmpdir)
            .args(args)
            .output()
    }

    fn create(&self, args: &[&str]) -> TestOutput {
        let mut all = vec!["overlay", "create"];
        all.extend_from_slice(args);
        self.sifr(&all)
    }

    /// The names in the work directory and in the temporary directory.
    fn entries(&self) -> (Vec<String>, Vec<String>) {
        let names = |d: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        (names(&self.path), names(&self.tmpdir))
    }

    fn at(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// `e2fsck -fn`: the file system is clean (exit 0, nothing to fix).
fn assert_clean(img: &Path) {
    let out = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    assert!(
        out.status.success(),
        "e2fsck -fn {}: {}{}",
        img.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `(uid, gid, mode & 0o7777, is a directory)` of `path` inside the ext3 image, from
/// `debugfs -R 'stat PATH'`.
fn inode(img: &Path, path: &str) -> (u32, u32, u32, bool) {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat \"{}\"", path.replace('"', "\"\"")))
        .arg(img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> String {
        let at = text
            .find(name)
            .unwrap_or_else(|| panic!("no {name} for {path} in {}: {text}", img.display()));
        text[at + name.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    (
        field("User:").parse().unwrap(),
        field("Group:").parse().unwrap(),
        u32::from_str_radix(&field("Mode:"), 8).unwrap(),
        field("Type:") == "directory",
    )
}

/// The layout Apptainer's overlay_create.go makes: `upper/`, `work/` and each `extra` under
/// `upper/`, directories owned by `owner`, mode 0755 (ids up to 65535, as the test user's).
fn assert_layout(img: &Path, owner: (u32, u32), extra: &[&str]) {
    assert_clean(img);
    let mut dirs = vec!["/upper".to_string(), "/work".to_string()];
    dirs.extend(extra.iter().map(|d| format!("/upper/{d}")));
    for d in dirs {
        let (uid, gid, mode, is_dir) = inode(img, &d);
        assert!(is_dir, "{d} in {} is not a directory", img.display());
        assert_eq!((uid, gid), owner, "{d}'s owner in {}", img.display());
        assert_eq!(mode, 0o755, "{d}'s mode in {}", img.display());
    }
}

/// e2e "create ext3 overlay with small size": refused (exit 255 in Apptainer) with its
/// message, and nothing is left behind.
#[test]
fn a_size_under_64_mib_is_refused() {
    for who in identities() {
        let d = dir_for(who);
        for size in ["1", "63", "-5"] {
            let out = d.create(&["--size", size, "o.img"]);
            assert!(!out.status.success(), "--size {size}");
            out.assert_stderr_contains("image size must be equal or greater than 64 MiB")
                .assert_stderr_contains(&format!("--size {size}"));
            assert_eq!(d.entries(), (vec![], vec![]), "--size {size}");
        }
    }
}

/// e2e "create ext3 overlay image", "check ext3 overlay size", "create ext3 overlay with dir":
/// a 128 MiB image, mode 0600, the caller's, clean, laid out with the caller's directories.
#[test]
fn a_new_image_has_the_size_and_the_callers_layout() {
    if !tools() {
        return;
    }
    for who in identities() {
        let d = dir_for(who);
        d.create(&[
            "--size",
            "128",
            "--create-dir",
            "/usr/local/testing",
            "--create-dir",
            "data/a b\"c",
            "o.img",
        ])
        .assert_success();
        let img = d.at("o.img");
        let md = std::fs::metadata(&img).unwrap();
        assert_eq!(md.len(), 128 * MIB);
        assert_eq!(md.mode() & 0o7777, 0o600);
        assert_eq!((md.uid(), md.gid()), (who.uid(), who.gid()));
        assert_layout(
            &img,
            (who.uid(), who.gid()),
            &[
                "usr",
                "usr/local",
                "usr/local/testing",
                "data",
                "data/a b\"c",
            ],
        );
        // The temporary image and the staging tree are gone.
        assert_eq!(d.entries(), (vec!["o.img".to_string()], vec![]));
    }
}

/// e2e "create ext3 sparse overlay image": the same size, far fewer blocks; without
/// `--sparse` every block is allocated (the zeros are written and kept).
#[test]
fn sparse_images_hold_fewer_blocks() {
    if !tools() {
        return;
    }
    let who = *identities().last().unwrap();
    let d = dir_for(who);
    d.create(&["--size", "128", "--sparse", "sparse.img"])
        .assert_success();
    d.create(&["-s", "128", "full.img"]).assert_success();
    let (sparse, full) = (
        std::fs::metadata(d.at("sparse.img")).unwrap(),
        std::fs::metadata(d.at("full.img")).unwrap(),
    );
    assert_eq!(sparse.len(), 128 * MIB);
    assert_eq!(full.len(), 128 * MIB);
    assert!(
        full.blocks() * 512 >= 128 * MIB,
        "full: {} blocks",
        full.blocks()
    );
    assert!(
        sparse.blocks() * 512 < 32 * MIB,
        "sparse: {} blocks",
        sparse.blocks()
    );
    for img in ["sparse.img", "full.img"] {
        assert_layout(&d.at(img), (who.uid(), who.gid()), &[]);
    }
}

/// `--fakeroot` ("make overlay layout usable by actions run with --fakeroot"): the layout is
/// root's, whoever makes it, and the image is still the caller's file.
#[test]
fn fakeroot_layout_is_owned_by_root() {
    if !tools() {
        return;
    }
    for who in runnable_identities() {
        let d = dir_for(who);
        d.create(&["--fakeroot", "--create-dir", "/opt/x y", "o.img"])
            .assert_success();
        let img = d.at("o.img");
        assert_eq!(std::fs::metadata(&img).unwrap().uid(), who.uid());
        assert_layout(&img, (0, 0), &["opt", "opt/x y"]);
        let (uid, gid, _, _) = inode(&img, "/");
        assert_eq!((uid, gid), (0, 0), "the root directory");
    }
}

/// e2e "create ext3 overlay with an existing image": refused with Apptainer's message, the
/// image untouched.
#[test]
fn an_existing_ext3_image_is_refused_unchanged() {
    if !tools() {
        return;
    }
    let d = dir_for(*identities().last().unwrap());
    d.create(&["o.img"]).assert_success();
    let before = std::fs::read(d.at("o.img")).unwrap();
    let out = d.create(&["--size", "128", "o.img"]);
    assert!(!out.status.success());
    out.assert_stderr_contains("EXT3 overlay image o.img already exists");
    assert!(std::fs::read(d.at("o.img")).unwrap() == before);
    assert_eq!(d.entries(), (vec!["o.img".to_string()], vec![]));
}

/// Apptainer refuses any other existing target ("destination image must be SIF image"), and
/// a `--create-dir` that climbs out of `upper/`.
#[test]
fn other_targets_and_escaping_dirs_are_refused() {
    let d = dir_for(*identities().last().unwrap());
    std::fs::write(d.at("notes.txt"), "text").unwrap();
    std::fs::create_dir(d.at("sandbox")).unwrap();
    for target in ["notes.txt", "sandbox"] {
        let out = d.create(&[target]);
        assert!(!out.status.success(), "{target}");
        out.assert_stderr_contains("destination image must be SIF image")
            .assert_stderr_contains(target);
    }
    assert_eq!(std::fs::read(d.at("notes.txt")).unwrap(), b"text");
    let out = d.create(&["--create-dir", "../../etc", "o.img"]);
    assert!(!out.status.success());
    out.assert_stderr_contains("`../../etc` created outside of overlay layout");
    assert!(!d.at("o.img").exists());
}

/// A SIF whose primary partition is a SquashFS of one file (`sif add`, as Apptainer's test
/// builds one from busybox), owned by `d`'s user; `fs` is the partition's siftool number.
fn sif_with_root(d: &Dir, name: &str, fs: &str) -> PathBuf {
    let src = d.path.join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hello"), "hello\n").unwrap();
    let sqfs = d.path.join("root.sqfs");
    sifr_testkit::mksquashfs(&src, &sqfs, &["-all-root"]);
    let sif = d.at(name);
    let sifr = |args: &[&str]| {
        TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
            .without_caller_settings()
            .args(args)
            .output()
            .assert_success();
    };
    let (s, q) = (sif.to_str().unwrap(), sqfs.to_str().unwrap());
    sifr(&["sif", "new", s]);
    sifr(&[
        "sif",
        "add",
        "--datatype",
        "4",
        "--parttype",
        "2",
        "--partfs",
        fs,
        "--partarch",
        "2",
        s,
        q,
    ]);
    std::fs::remove_dir_all(&src).unwrap();
    std::fs::remove_file(&sqfs).unwrap();
    std::os::unix::fs::chown(&sif, Some(d.who.uid()), Some(d.who.gid())).ok();
    sif
}

/// `sifr sif dump ID SIF` into `out`.
fn dump(sif: &Path, id: u32, out: &Path) {
    let o = TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
        .without_caller_settings()
        .args(["sif", "dump", &id.to_string()])
        .arg(sif)
        .output();
    o.assert_success();
    std::fs::write(out, &o.stdout).unwrap();
}

/// e2e "create ext3 overlay image in unsigned SIF" and "... in SIF with an existing overlay":
/// an `Ext3/Overlay` partition with the image's architecture is added; it is a clean ext3 file
/// system with the caller's layout, the root partition still reads, and a second create is
/// refused with the `sif del` hint, the SIF byte-identical.
#[test]
fn a_sif_gets_one_overlay_partition() {
    if !tools() {
        return;
    }
    for who in identities() {
        let d = dir_for(who);
        let sif = sif_with_root(&d, "img.sif", "1");
        d.create(&["--size", "96", "img.sif"]).assert_success();
        let list = d.sifr(&["sif", "list", "img.sif"]);
        list.assert_success();
        let line = list
            .stdout_text()
            .lines()
            .find(|l| l.contains("Ext3/Overlay"))
            .unwrap_or_else(|| panic!("no overlay partition:\n{}", list.stdout_text()))
            .to_string();
        assert!(line.contains("FS (Ext3/Overlay/amd64)"), "{line}");
        let id: u32 = line.split('|').next().unwrap().trim().parse().unwrap();
        assert_eq!(id, 2);

        let part = d.path.join("part.ext3");
        dump(&sif, id, &part);
        assert_eq!(std::fs::metadata(&part).unwrap().len(), 96 * MIB);
        assert_layout(&part, (who.uid(), who.gid()), &[]);
        let root = d.path.join("root.sqfs");
        dump(&sif, 1, &root);
        let ls = sifr_testkit::run_ok(Command::new("unsquashfs").arg("-l").arg(&root));
        assert!(String::from_utf8_lossy(&ls.stdout).contains("etc/hello"));
        std::fs::remove_file(&part).unwrap();
        std::fs::remove_file(&root).unwrap();

        let before = std::fs::read(&sif).unwrap();
        let out = d.create(&["img.sif"]);
        assert!(!out.status.success());
        out.assert_stderr_contains(
            "a writable overlay partition already exists in img.sif (ID: 2)",
        )
        .assert_stderr_contains("sifr sif del 2 img.sif");
        assert!(std::fs::read(&sif).unwrap() == before, "the SIF changed");
        assert_eq!(d.entries(), (vec!["img.sif".to_string()], vec![]));
    }
}

/// e2e "create ext3 overlay image in signed SIF" and "... in encrypted SIF": refused with
/// Apptainer's messages, the SIF byte-identical and nothing left beside it.
#[test]
fn signed_and_encrypted_sifs_are_refused_unchanged() {
    let d = dir_for(*identities().last().unwrap());
    let mut cases = vec![];
    if tools() {
        // Partition fs 5: an encrypted SquashFS root (what `build --encrypt` makes).
        sif_with_root(&d, "encrypted.sif", "5");
        cases.push((
            "encrypted.sif",
            "encrypted root FS partition in encrypted.sif",
        ));
    }
    if let Some(fx) = sifr_testkit::sif_fixtures() {
        let signed = d.at("signed.sif");
        std::fs::copy(fx.join("images/one-group-signed-pgp.sif"), &signed).unwrap();
        std::fs::set_permissions(&signed, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::chown(&signed, Some(d.who.uid()), Some(d.who.gid())).ok();
        cases.push(("signed.sif", "SIF image signed.sif is signed"));
    }
    for (name, message) in cases {
        let before = std::fs::read(d.at(name)).unwrap();
        let out = d.create(&[name]);
        assert!(!out.status.success(), "{name}");
        out.assert_stderr_contains(message);
        assert!(
            std::fs::read(d.at(name)).unwrap() == before,
            "{name} changed"
        );
    }
    let (files, tmp) = d.entries();
    assert!(files.iter().all(|f| f.ends_with(".sif")), "{files:?}");
    assert!(tmp.is_empty(), "{tmp:?}");
}

/// A failing `mkfs.ext3` (a stand-in first on `PATH`) leaves no image, no temporary file and
/// no staging tree, and a SIF unchanged; one whose usage lacks `-d` is refused as Apptainer
/// refuses it.
#[test]
fn a_failing_mkfs_leaves_nothing_behind() {
    if !tools() {
        return;
    }
    let who = *identities().last().unwrap();
    let d = dir_for(who);
    let bin = d.tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("mkfs.ext3");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| {
        TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
            .without_caller_settings()
            .as_user(who)
            .current_dir(&d.path)
            .env("TMPDIR", &d.tmpdir)
            .env("PATH", &path)
            .args(["overlay", "create"])
            .args(args)
            .output()
    };
    let sif = sif_with_root(&d, "img.sif", "1");
    let before = std::fs::read(&sif).unwrap();
    std::fs::write(
        &fake,
        "#!/bin/sh\nif [ \"$1\" = --help ]; then echo 'Usage: mkfs.ext3 [-d root-directory] device' >&2; exit 1; fi\necho 'mkfs: no space for the journal' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    for target in ["o.img", "img.sif"] {
        let out = run(&[target]);
        assert!(!out.status.success(), "{target}");
        out.assert_stderr_contains("while creating ext3 partition")
            .assert_stderr_contains("mkfs: no space for the journal");
        assert_eq!(
            d.entries(),
            (vec!["img.sif".to_string()], vec![]),
            "{target}"
        );
        assert!(
            std::fs::read(&sif).unwrap() == before,
            "{target}: the SIF changed"
        );
    }
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'Usage: mkfs.ext3 [-q] device' >&2\nexit 1\n",
    )
    .unwrap();
    let out = run(&["o.img"]);
    assert!(!out.status.success());
    out.assert_stderr_contains("seems too old as it doesn't support -d");
    assert_eq!(d.entries(), (vec!["img.sif".to_string()], vec![]));
}
