//! `--overlay` end to end (issue 22): directories, ext3 images (`sifr overlay create`), SquashFS
//! images and a SIF's overlay partition, several at once and `:ro`, with `--writable` and
//! `--writable-tmpfs`, as root (loop devices and the kernel's ext3) and as the test user (the
//! in-tree SquashFS and ext3 FUSE servers, `/dev/fuse` 0666; a clear error with 0600). The
//! kernel and e2fsprogs judge: `e2fsck -fn` finds every image clean right after the container
//! exits, and `debugfs` shows the files and whiteouts where Apptainer puts them (`upper/`).
//! Nothing is left mounted or running after a run.
//!
//! The table is Apptainer v1.5.3's `e2e/actions/actions.go` `PersistentOverlay`, case for case
//! (names kept); the lock cases follow its `pkg/image` byte-range locks.

mod images;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use images::*;
use sifr_testkit::{As, stderr, stdout};

/// The shared image with the busybox tools the table's commands use and `/etc/hostname`.
fn images() -> Option<Images> {
    if let Some(m) = sifr_testkit::missing(&["mkfs.ext3", "e2fsck", "debugfs", "mksquashfs"]) {
        sifr_testkit::skip(&m);
        return None;
    }
    let fx = sifr_testkit::Fixture::new();
    if !fx.has_shell {
        sifr_testkit::skip("busybox is needed in the test image (apt-get install busybox-static)");
        return None;
    }
    for tool in ["touch", "test", "rm", "true", "cat", "ls", "mkdir", "echo"] {
        let _ = std::os::unix::fs::symlink("busybox", fx.image.join("bin").join(tool));
    }
    std::fs::write(fx.image.join("etc/hostname"), "image\n").unwrap();
    Some(Images::pack(fx))
}

fn sifr(im: &Images, who: As, args: &[&str]) -> Output {
    run(&im.fx, who, args)
}

fn expect(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// `e2fsck -fn` of an ext3 image (or of the bytes at `offset` of a file): clean.
fn assert_fsck_clean(img: &Path) {
    let o = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    assert!(
        o.status.success(),
        "e2fsck -fn {}: {}\n{}",
        img.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `debugfs -R CMD IMG`'s output.
fn debugfs(img: &Path, cmd: &str) -> String {
    let o = Command::new("debugfs")
        .args(["-R", cmd])
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The test's overlay files, made by `who` (so that a user's are the user's).
struct Layers {
    dir: PathBuf,
    ext3: PathBuf,
    squashfs: PathBuf,
    embedded: PathBuf,
}

fn layers(im: &Images, who: As, tag: &str) -> Layers {
    let base = im.fx.dir.path().join(format!("layers-{tag}"));
    std::fs::create_dir(&base).unwrap();
    if who != As::Root {
        std::os::unix::fs::chown(&base, Some(who.uid()), Some(who.gid())).unwrap();
    }
    let dir = base.join("overlay-dir");
    std::fs::create_dir(&dir).unwrap();
    if who != As::Root {
        std::os::unix::fs::chown(&dir, Some(who.uid()), Some(who.gid())).unwrap();
    }
    let ext3 = base.join("ext3_fs.img");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    expect(
        &sifr(im, who, &["overlay", "create", "--size", "64", &s(&ext3)]),
        0,
        "overlay create",
    );
    let marker = im.fx.dir.path().join(format!("sq-{tag}"));
    std::fs::create_dir(&marker).unwrap();
    std::fs::write(marker.join("squash_marker"), "").unwrap();
    let squashfs = base.join("squashfs.img");
    sifr_testkit::mksquashfs(&marker, &squashfs, &["-all-root"]);
    let embedded = base.join("embedded.sif");
    std::fs::copy(&im.sif, &embedded).unwrap();
    if who != As::Root {
        for p in [&squashfs, &embedded] {
            std::os::unix::fs::chown(p, Some(who.uid()), Some(who.gid())).unwrap();
        }
    }
    expect(
        &sifr(
            im,
            who,
            &["overlay", "create", "--size", "64", &s(&embedded)],
        ),
        0,
        "overlay create on a SIF",
    );
    Layers {
        dir,
        ext3,
        squashfs,
        embedded,
    }
}

/// Apptainer's `PersistentOverlay` table for one profile: `fakeroot` adds `--fakeroot` to the
/// cases that write into the image's root-owned directories (Apptainer's user profiles).
fn persistent_overlay(im: &Images, who: As, fakeroot: bool, tag: &str) {
    let l = layers(im, who, tag);
    let img = im.sif.to_str().unwrap();
    let dir = l.dir.to_str().unwrap();
    let ext3 = l.ext3.to_str().unwrap();
    let sq = l.squashfs.to_str().unwrap();
    let sq_ro = format!("{sq}:ro");
    let dir_ro = format!("{dir}:ro");
    let sandbox = im.fx.image.to_str().unwrap();
    // Relative to the commands' working directory (the fixture's `work`), as Apptainer's
    // issue 4270 case gives it.
    let relative = format!("../layers-{tag}/overlay-dir");
    let cases: &[(&str, &[&str], bool, i32)] = &[
        (
            "overlay_create",
            &["--overlay", dir, img, "touch", "/dir_overlay"],
            true,
            0,
        ),
        (
            "overlay_ext3_create",
            &["--overlay", ext3, img, "touch", "/ext3_overlay"],
            true,
            0,
        ),
        (
            "overlay_multiple_create",
            &[
                "--overlay",
                ext3,
                "--overlay",
                &sq_ro,
                img,
                "touch",
                "/multiple_overlay_fs",
            ],
            true,
            0,
        ),
        (
            "overlay_find",
            &["--overlay", dir, img, "test", "-f", "/dir_overlay"],
            true,
            0,
        ),
        (
            "overlay_find_with_writable_fail",
            &["--overlay", dir, "--writable", img, "true"],
            false,
            255,
        ),
        (
            "overlay_find_with_writable_tmpfs",
            &[
                "--overlay",
                &dir_ro,
                "--writable-tmpfs",
                img,
                "test",
                "-f",
                "/dir_overlay",
            ],
            false,
            0,
        ),
        (
            "overlay_find_with_writable_tmpfs_fail",
            &["--overlay", dir, "--writable-tmpfs", img, "true"],
            false,
            255,
        ),
        (
            "overlay_ext3_find",
            &["--overlay", ext3, img, "test", "-f", "/ext3_overlay"],
            true,
            0,
        ),
        (
            "overlay_multiple_writable_fail",
            &["--overlay", ext3, "--overlay", ext3, img, "true"],
            false,
            255,
        ),
        (
            "overlay_squashFS_find",
            &["--overlay", &sq_ro, img, "test", "-f", "/squash_marker"],
            false,
            0,
        ),
        (
            "overlay_squashFS_find_without_ro",
            &["--overlay", sq, img, "test", "-f", "/squash_marker"],
            false,
            0,
        ),
        (
            "overlay_multiple_find_ext3",
            &[
                "--overlay",
                ext3,
                "--overlay",
                &sq_ro,
                img,
                "test",
                "-f",
                "/multiple_overlay_fs",
            ],
            true,
            0,
        ),
        (
            "overlay_multiple_find_squashfs",
            &[
                "--overlay",
                ext3,
                "--overlay",
                &sq_ro,
                img,
                "test",
                "-f",
                "/squash_marker",
            ],
            true,
            0,
        ),
        ("overlay_noroot", &["--overlay", dir, img, "true"], true, 0),
        (
            "overlay_noflag",
            &[img, "test", "-f", "/foo_overlay"],
            false,
            1,
        ),
        (
            "SIF_writable_without_overlay_partition_issue_4329",
            &["--writable", img, "true"],
            false,
            255,
        ),
        (
            "overlay_dir_relative_path_issue_4270",
            &[
                "--overlay",
                &relative,
                sandbox,
                "test",
                "-f",
                "/dir_overlay",
            ],
            true,
            0,
        ),
        (
            "overlay_remove",
            &["--overlay", dir, img, "rm", "/etc/hostname"],
            true,
            0,
        ),
        (
            "overlay_check_removed",
            &["--overlay", dir, img, "test", "!", "-f", "/etc/hostname"],
            true,
            0,
        ),
        (
            "overlay_ext3_remove",
            &["--overlay", ext3, img, "rm", "/etc/hostname"],
            true,
            0,
        ),
        (
            "overlay_ext3_check_removed",
            &["--overlay", ext3, img, "test", "!", "-f", "/etc/hostname"],
            true,
            0,
        ),
        (
            "Embedded overlay partition in SIF",
            &[l.embedded.to_str().unwrap(), "true"],
            false,
            0,
        ),
    ];
    for (name, argv, writes, code) in cases {
        let mut args = vec!["exec"];
        if fakeroot && *writes {
            args.push("--fakeroot");
        }
        args.extend_from_slice(argv);
        let o = sifr(im, who, &args);
        expect(&o, *code, &format!("{name} ({tag})"));
        if *code == 255 {
            assert!(stderr(&o).contains("FATAL:"), "{name}: {}", stderr(&o));
        }
        assert_nothing_left(im);
    }
    // The judges: the image is clean, and Apptainer's layout holds the writes: the files in
    // `upper/`, the removed `/etc/hostname` a whiteout (a 0/0 character device).
    assert_fsck_clean(&l.ext3);
    let upper = debugfs(&l.ext3, "ls -l /upper");
    for f in ["ext3_overlay", "multiple_overlay_fs"] {
        assert!(upper.contains(f), "{f} not in upper/: {upper}");
    }
    let wh = debugfs(&l.ext3, "stat /upper/etc/hostname");
    assert!(wh.contains("Type: character special"), "{wh}");
    assert!(l.dir.join("upper/dir_overlay").is_file());
    let wh = std::fs::symlink_metadata(l.dir.join("upper/etc/hostname")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &wh.file_type()
    ));
    assert_fsck_clean_partition(im, &l.embedded);
}

/// `e2fsck -fn` of a SIF's overlay partition, dumped with `sifr sif dump`.
fn assert_fsck_clean_partition(im: &Images, sif: &Path) {
    let o = sifr(im, As::Root, &["sif", "list", sif.to_str().unwrap()]);
    let id = stdout(&o)
        .lines()
        .find(|l| l.contains("Ext3/Overlay"))
        .and_then(|l| l.split('|').next())
        .map(|s| s.trim().to_string())
        .expect("an overlay partition");
    let out = im.fx.dir.path().join("partition.ext3");
    let o = Command::new(env!("CARGO_BIN_EXE_sifr"))
        .args(["sif", "dump", &id])
        .arg(sif)
        .output()
        .unwrap();
    std::fs::write(&out, &o.stdout).unwrap();
    assert_fsck_clean(&out);
}

#[test]
fn persistent_overlays_as_root() {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("the kernel's ext3 and loop devices need root");
        return;
    }
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(im) = images() else { return };
    persistent_overlay(&im, As::Root, false, "root");
}

#[test]
fn persistent_overlays_as_a_user_through_fuse() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o666);
    let Some(im) = images() else { return };
    // Apptainer's user profiles: `--fakeroot` for the cases that write into root's directories.
    persistent_overlay(&im, user, true, "fakeroot");
}

#[test]
fn a_user_writes_an_ext3_overlay_with_the_users_ids() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o666);
    let Some(im) = images() else { return };
    let l = layers(&im, user, "own");
    let ext3 = l.ext3.to_str().unwrap();
    let img = im.sif.to_str().unwrap();
    let o = sifr(
        &im,
        user,
        &[
            "exec",
            "--overlay",
            ext3,
            img,
            "sh",
            "-c",
            "echo mine > /mine; mkdir -p /d/e; rm /etc/hostname",
        ],
    );
    expect(&o, 0, "writing through an ext3 overlay as the user");
    assert_nothing_left(&im);
    let o = sifr(
        &im,
        user,
        &[
            "exec",
            "--overlay",
            &format!("{ext3}:ro"),
            img,
            "cat",
            "/mine",
        ],
    );
    expect(&o, 0, "reading it back read-only");
    assert_eq!(stdout(&o), "mine\n");
    // Read-only layers alone leave the root read-only, and the image readable under a user's
    // SquashFS layer (a read-only overlay topped by a FUSE layer failed every lookup below it).
    let sq = format!("{}:ro", l.squashfs.display());
    let o = sifr(
        &im,
        user,
        &[
            "exec",
            "--overlay",
            &sq,
            img,
            "sh",
            "-c",
            "cat /etc/hostname; touch /x",
        ],
    );
    assert_eq!(stdout(&o), "image\n", "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    assert_fsck_clean(&l.ext3);
    let st = debugfs(&l.ext3, "stat /upper/mine");
    assert!(st.contains(&format!("User:  {}", user.uid())), "{st}");
}

#[test]
fn without_dev_fuse_a_users_ext3_overlay_is_a_clear_error_and_a_directory_works() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o600);
    let Some(im) = images() else { return };
    let l = layers(&im, user, "nofuse");
    let img = im.sif.to_str().unwrap();
    let o = sifr(
        &im,
        user,
        &["exec", "--overlay", l.ext3.to_str().unwrap(), img, "true"],
    );
    expect(&o, 255, "an ext3 overlay without /dev/fuse");
    let e = stderr(&o);
    assert!(e.contains("ext3_fs.img") && e.contains("/dev/fuse"), "{e}");
    assert_nothing_left(&im);
    let dir = l.dir.to_str().unwrap();
    let o = sifr(
        &im,
        user,
        &["exec", "--overlay", dir, img, "touch", "/in-dir"],
    );
    expect(&o, 0, "a directory overlay without /dev/fuse");
    assert!(l.dir.join("upper/in-dir").is_file());
    assert_nothing_left(&im);
}

#[test]
fn a_writable_overlay_image_takes_one_writer_and_readers_share() {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("runs as root");
        return;
    }
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(im) = images() else { return };
    let l = layers(&im, As::Root, "lock");
    let ext3 = l.ext3.to_str().unwrap();
    let ro = format!("{ext3}:ro");
    let img = im.sif.to_str().unwrap();
    let stop = im.fx.dir.path().join("stop");
    let writer = Holder::start(&im, ext3, "writer");
    let o = sifr(&im, As::Root, &["exec", "--overlay", ext3, img, "true"]);
    expect(&o, 255, "a second writer");
    assert!(
        stderr(&o).contains(&format!(
            "can't open {ext3} for writing, currently in use by another process"
        )),
        "{}",
        stderr(&o)
    );
    let o = sifr(&im, As::Root, &["exec", "--overlay", &ro, img, "true"]);
    expect(&o, 255, "a reader while it writes");
    assert!(
        stderr(&o).contains("currently in use for writing"),
        "{}",
        stderr(&o)
    );
    writer.stop(&stop);
    // Readers share.
    let reader = Holder::start(&im, &ro, "reader");
    let o = sifr(&im, As::Root, &["exec", "--overlay", &ro, img, "true"]);
    expect(&o, 0, "a second reader");
    reader.stop(&stop);
    assert_nothing_left(&im);
    assert_fsck_clean(&l.ext3);
}

/// A container that holds `--overlay SPEC` (and its lock) until `stop` appears on the host.
struct Holder(std::process::Child);

impl Holder {
    fn start(im: &Images, spec: &str, name: &str) -> Holder {
        let dir = im.fx.dir.path();
        let bind = format!("{}:/host", dir.display());
        let script =
            format!("touch /host/{name}-ready; while [ ! -e /host/stop ]; do sleep 0.05; done");
        let img = im.sif.to_str().unwrap();
        let args = [
            "exec",
            "-B",
            &bind,
            "--overlay",
            spec,
            img,
            "sh",
            "-c",
            &script,
        ];
        let child = sifr_as(&im.fx, As::Root, &args).spawn().unwrap();
        let ready = dir.join(format!("{name}-ready"));
        let t0 = std::time::Instant::now();
        while !ready.exists() {
            assert!(t0.elapsed().as_secs() < 30, "the {name} did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Holder(child)
    }

    fn stop(mut self, stop: &Path) {
        std::fs::write(stop, "").unwrap();
        assert!(self.0.wait().unwrap().success());
        std::fs::remove_file(stop).unwrap();
    }
}

#[test]
fn writable_on_a_sif_writes_its_overlay_partition() {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("runs as root");
        return;
    }
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(im) = images() else { return };
    let l = layers(&im, As::Root, "sif");
    let sif = l.embedded.to_str().unwrap();
    expect(
        &sifr(
            &im,
            As::Root,
            &["exec", "--writable", sif, "sh", "-c", "echo kept > /kept"],
        ),
        0,
        "--writable on a SIF with an overlay partition",
    );
    let o = sifr(&im, As::Root, &["exec", sif, "cat", "/kept"]);
    expect(
        &o,
        0,
        "its partition is a read-only layer without --writable",
    );
    assert_eq!(stdout(&o), "kept\n");
    let o = sifr(&im, As::Root, &["exec", sif, "touch", "/not-kept"]);
    assert_ne!(o.status.code(), Some(0), "read-only without --writable");
    assert_fsck_clean_partition(&im, &l.embedded);
    assert_nothing_left(&im);
}
