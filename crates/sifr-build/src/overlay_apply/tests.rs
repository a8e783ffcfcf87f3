//! An ext3 made by the real `mkfs.ext3 -d` from a staging tree laid out as overlayfs leaves an
//! upper directory (a 0/0 character device whiteout, an opaque directory, aufs-style `.wh.`
//! names), applied over a lower tree; the result is compared with what overlayfs shows.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

use rustix::fs::XattrFlags;

use super::*;

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    rustix::fs::lgetxattr(p, name, &mut buf)
        .ok()
        .map(|n| buf[..n].to_vec())
}

/// `mkfs.ext3 -d staging image`; `None` (with the reason printed) where this host cannot.
#[allow(
    clippy::print_stdout,
    reason = "a skipped test says why in its captured output"
)]
fn mkfs(staging: &Path, image: &Path) -> Option<()> {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: needs root for mknod and trusted.* attributes");
        return None;
    }
    let out = Command::new("mkfs.ext3")
        .args(["-q", "-F", "-d"])
        .arg(staging)
        .arg(image)
        .arg("8M")
        .output();
    match out {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => panic!("mkfs.ext3: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            println!("skipped: no mkfs.ext3 ({e})");
            None
        }
    }
}

#[test]
fn upper_applies_over_lower_as_overlayfs_shows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (lower, staging) = (tmp.path().join("lower"), tmp.path().join("staging"));
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // The lower image.
    write(&lower.join("changed.txt"), "before");
    write(&lower.join("gone"), "x");
    write(&lower.join("gone2/deep/f"), "x");
    write(&lower.join("opq/old.txt"), "old");
    write(&lower.join("opq/sub/x"), "x");
    write(&lower.join("opq2/a"), "a");
    write(&lower.join("merged/kept.txt"), "kept");
    write(&lower.join("wasfile"), "file");
    std::os::unix::fs::symlink(&outside, lower.join("esc")).unwrap();
    std::os::unix::fs::symlink("../outside", lower.join("esc2")).unwrap();
    // The upper directory, as overlayfs writes it.
    let up = staging.join("upper");
    write(&up.join("new.txt"), "new");
    std::fs::set_permissions(up.join("new.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(up.join("new.txt"), Some(1234), Some(2345)).unwrap();
    rustix::fs::setxattr(up.join("new.txt"), "user.keep", b"1", XattrFlags::empty()).unwrap();
    rustix::fs::setxattr(
        up.join("new.txt"),
        "trusted.overlay.origin",
        b"zz",
        XattrFlags::empty(),
    )
    .unwrap();
    write(&up.join("changed.txt"), "after");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        up.join("gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    write(&up.join(".wh.gone2"), "");
    write(&up.join("opq/inner.txt"), "inner");
    rustix::fs::setxattr(
        up.join("opq"),
        "trusted.overlay.opaque",
        b"y",
        XattrFlags::empty(),
    )
    .unwrap();
    write(&up.join("opq2/.wh..wh..opq"), "");
    write(&up.join("opq2/b"), "b");
    write(&up.join("merged/added.txt"), "added");
    std::fs::set_permissions(up.join("merged"), std::fs::Permissions::from_mode(0o751)).unwrap();
    write(&up.join("wasfile/in"), "in");
    write(&up.join("esc/pwned"), "no");
    write(&up.join("esc2/pwned"), "no");
    std::os::unix::fs::symlink("/no/such/target", up.join("link")).unwrap();
    write(&up.join("h1"), "hard");
    std::fs::hard_link(up.join("h1"), up.join("h2")).unwrap();
    write(&staging.join("work/work/junk"), "junk");
    let image = tmp.path().join("ovl.img");
    if mkfs(&staging, &image).is_none() {
        return;
    }

    let r = apply(&image, 0, &lower).unwrap();

    assert_eq!(read(&lower.join("new.txt")), "new");
    let md = std::fs::symlink_metadata(lower.join("new.txt")).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid()),
        (0o640, 1234, 2345)
    );
    assert_eq!(
        xattr(&lower.join("new.txt"), "user.keep").as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        xattr(&lower.join("new.txt"), "trusted.overlay.origin"),
        None
    );
    assert_eq!(read(&lower.join("changed.txt")), "after");
    assert!(!lower.join("gone").exists(), "0/0 whiteout removes");
    assert!(
        !lower.join("gone2").exists(),
        ".wh. whiteout removes a tree"
    );
    assert!(!lower.join(".wh.gone2").exists());
    let names = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(lower.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("opq"), ["inner.txt"], "opaque by xattr");
    assert_eq!(xattr(&lower.join("opq"), "trusted.overlay.opaque"), None);
    assert_eq!(names("opq2"), ["b"], "opaque by .wh..wh..opq");
    assert_eq!(names("merged"), ["added.txt", "kept.txt"], "merged");
    let md = std::fs::metadata(lower.join("merged")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o751);
    assert_eq!(read(&lower.join("wasfile/in")), "in");
    // Symlinks in the lower image are replaced, never followed.
    assert!(
        std::fs::symlink_metadata(lower.join("esc"))
            .unwrap()
            .is_dir()
    );
    assert!(
        std::fs::symlink_metadata(lower.join("esc2"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_link(lower.join("link")).unwrap(),
        Path::new("/no/such/target")
    );
    let (h1, h2) = (
        std::fs::metadata(lower.join("h1")).unwrap(),
        std::fs::metadata(lower.join("h2")).unwrap(),
    );
    assert_eq!(
        (h1.ino(), read(&lower.join("h2"))),
        (h2.ino(), "hard".into())
    );
    assert!(!lower.join("work").exists() && !lower.join("junk").exists());
    assert_eq!((r.removed, r.opaque, r.hard_links), (2, 2, 1));
}

#[test]
fn a_damaged_partition_is_an_error_naming_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let staging = tmp.path().join("staging");
    write(&staging.join("upper/f"), "f");
    let image = tmp.path().join("bad.img");
    if mkfs(&staging, &image).is_none() {
        return;
    }
    // The superblock (at 1024) overwritten.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xa5; 1024], 1024).unwrap();
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let e = apply(&image, 0, &dest).unwrap_err();
    assert!(e.to_string().contains("bad.img"), "{e}");
    assert!(matches!(e, ApplyError::Open { .. }), "{e:?}");
}

#[test]
fn only_overlay_attributes_are_overlay_s_own() {
    assert!(is_overlay_xattr(b"trusted.overlay.opaque"));
    assert!(is_overlay_xattr(b"user.overlay.redirect"));
    assert!(!is_overlay_xattr(b"user.overlayish"));
    assert!(!is_overlay_xattr(b"security.capability"));
}
