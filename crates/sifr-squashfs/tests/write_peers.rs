//! The writer's images, checked by the real readers: `unsquashfs -lln` lists the source
//! tree, `unsquashfs -d` extracts identical contents and xattrs, the kernel mounts it and
//! squashfuse serves it. Each peer that is missing or unusable is skipped with a reason.

mod write_common;

use std::fs;
use std::path::Path;
use std::process::Command;

use sifr_squashfs::{Compression, Options, from_dir};
use write_common::*;

const BLOCK: usize = 16 * 1024;

fn pack(src: &Path, img: &Path, opts: Options) -> sifr_squashfs::Summary {
    let f = fs::File::create(img).unwrap();
    from_dir(src, f, opts).unwrap()
}

fn opts(c: Compression) -> Options {
    Options {
        compression: c,
        block_size: BLOCK as u32,
        ..Options::default()
    }
}

fn snap_opts() -> SnapOpts {
    SnapOpts {
        owners: true,
        xattrs: true,
        sockets: true,
    }
}

fn check_extract(
    img: &Path,
    src_snap: &std::collections::BTreeMap<std::path::PathBuf, Info>,
    tmp: &Path,
) {
    if !have("unsquashfs") {
        return skip(
            "unsquashfs -d",
            "unsquashfs not installed (apt-get install squashfs-tools)",
        );
    }
    let out = tmp.join("extracted");
    let _ = fs::remove_dir_all(&out);
    run_ok(
        Command::new("unsquashfs")
            .arg("-no-progress")
            .arg("-d")
            .arg(&out)
            .arg(img),
    )
    .unwrap();
    // unsquashfs does not recreate sockets; compare everything else.
    let mut want = src_snap.clone();
    want.retain(|_, i| i.kind != 's');
    let got = snapshot(
        &out,
        &SnapOpts {
            owners: is_root(),
            xattrs: true,
            sockets: false,
        },
    );
    if !is_root() {
        for i in want.values_mut() {
            i.uid = 0;
            i.gid = 0;
        }
    }
    // The extraction root is created by unsquashfs; its mode/owner/mtime are the image's.
    want.remove(Path::new(""));
    let mut got = got;
    got.remove(Path::new(""));
    assert_same("unsquashfs -d", &want, &got);
}

fn with_mount(what: &str, mount: &mut Command, mnt: &Path, f: impl FnOnce(&Path)) {
    match run_ok(mount) {
        Ok(()) => {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(mnt)));
            let _ = Command::new("umount").arg(mnt).status();
            if let Err(e) = r {
                std::panic::resume_unwind(e);
            }
        }
        Err(e) => skip(what, &format!("cannot mount: {e}")),
    }
}

fn check_kernel(
    img: &Path,
    src_snap: &std::collections::BTreeMap<std::path::PathBuf, Info>,
    tmp: &Path,
) {
    if !is_root() {
        return skip("kernel mount", "not root");
    }
    if !Path::new("/dev/loop-control").exists() {
        return skip("kernel mount", "no /dev/loop-control");
    }
    let mnt = tmp.join("kmnt");
    fs::create_dir_all(&mnt).unwrap();
    with_mount(
        "kernel mount",
        Command::new("mount")
            .args(["-t", "squashfs", "-o", "loop,ro"])
            .arg(img)
            .arg(&mnt),
        &mnt,
        |m| {
            let got = snapshot(m, &snap_opts());
            assert_same("kernel squashfs", src_snap, &got);
        },
    );
}

fn check_squashfuse(
    img: &Path,
    src_snap: &std::collections::BTreeMap<std::path::PathBuf, Info>,
    tmp: &Path,
) {
    if !have("squashfuse") {
        return skip(
            "squashfuse",
            "squashfuse not installed (apt-get install squashfuse)",
        );
    }
    if !Path::new("/dev/fuse").exists() {
        return skip("squashfuse", "no /dev/fuse");
    }
    let mnt = tmp.join("fmnt");
    fs::create_dir_all(&mnt).unwrap();
    with_mount(
        "squashfuse",
        Command::new("squashfuse").arg(img).arg(&mnt),
        &mnt,
        |m| {
            let mut want = src_snap.clone();
            let got = snapshot(m, &snap_opts());
            let mut got = got;
            // squashfuse 0.1.105 swaps the trusted./security. prefixes (it does so for
            // mksquashfs images too, whose xattr bytes are identical to ours): compare user.*.
            for i in want.values_mut().chain(got.values_mut()) {
                i.xattrs.retain(|(n, _)| n.starts_with("user."));
            }
            assert_same("squashfuse", &want, &got);
        },
    );
}

fn full_check(c: Compression, all_root: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, BLOCK);
    let img = tmp.path().join("img.sqfs");
    let mut o = opts(c);
    o.all_root = all_root;
    let summary = pack(&src, &img, o);
    assert_eq!(
        fs::metadata(&img).unwrap().len() % 4096,
        0,
        "padded to 4 KiB"
    );
    assert!(summary.data.duplicate_files >= 2, "{summary:?}");
    assert!(summary.data.sparse_bytes >= 5 * BLOCK as u64, "{summary:?}");
    let mut src_snap = snapshot(&src, &snap_opts());
    assert_lln(&img, &src_snap, all_root);
    if all_root {
        for i in src_snap.values_mut() {
            i.uid = 0;
            i.gid = 0;
        }
    }
    check_extract(&img, &src_snap, tmp.path());
    check_kernel(&img, &src_snap, tmp.path());
    check_squashfuse(&img, &src_snap, tmp.path());
}

#[test]
fn gzip_image_matches_source_for_every_reader() {
    full_check(Compression::Gzip { level: 9 }, false);
}

#[test]
fn zstd_image_matches_source_for_every_reader() {
    full_check(Compression::Zstd { level: 3 }, false);
}

#[test]
fn xz_image_matches_source_for_every_reader() {
    full_check(Compression::Xz { level: 6 }, false);
}

#[test]
fn lz4_image_matches_source_for_every_reader() {
    full_check(Compression::Lz4, false);
}

#[test]
fn gzip_non_default_level_writes_compressor_options() {
    full_check(Compression::Gzip { level: 1 }, false);
}

#[test]
fn all_root_option_stores_every_owner_as_root() {
    full_check(Compression::Zstd { level: 1 }, true);
}

#[test]
fn large_blocks_and_min_blocks_are_readable() {
    for bs in [4096u32, 1 << 20] {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_tree(&src, bs as usize);
        let img = tmp.path().join("img.sqfs");
        let mut o = opts(Compression::Zstd { level: 3 });
        o.block_size = bs;
        pack(&src, &img, o);
        let src_snap = snapshot(&src, &snap_opts());
        assert_lln(&img, &src_snap, false);
        check_extract(&img, &src_snap, tmp.path());
        check_kernel(&img, &src_snap, tmp.path());
    }
}
