//! `build --sandbox DIR IMAGE.sif` and `build NEW.sif IMAGE.sif` from a SIF whose ext3 overlay
//! partition (`overlay create IMAGE.sif`) was written with `exec --writable` (issue 22, item
//! 4): the new image is the merged view, the user's changes included. Apptainer's packer
//! extracts only the primary partition and drops them (its `e2e/build` has no such case; the
//! difference is documented in docs/compat.md). As root: the container's writes go through
//! the kernel's ext3 and overlayfs, so the whiteouts and opaque directories read back are the
//! kernel's own.

mod images;

use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use images::*;
use sifr_testkit::{As, Fixture, stderr, stdout};

fn expect_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The fixture with a few files the container changes, packed by `sifr build`, with a 64 MiB
/// overlay partition the container has written. `None` (skipped) where this host cannot.
fn written_sif() -> Option<(Fixture, PathBuf)> {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("runs as root (the kernel's ext3 and overlayfs write the partition)");
        return None;
    }
    if let Some(m) = sifr_testkit::missing(&["mkfs.ext3"]) {
        sifr_testkit::skip(&m);
        return None;
    }
    let fx = Fixture::new();
    if !fx.has_shell {
        sifr_testkit::skip("busybox is needed in the test image (apt-get install busybox-static)");
        return None;
    }
    for tool in ["rm", "mkdir", "ln", "echo", "cat"] {
        let _ = std::os::unix::fs::symlink("busybox", fx.image.join("bin").join(tool));
    }
    std::fs::write(fx.image.join("etc/changeme"), "before\n").unwrap();
    std::fs::write(fx.image.join("etc/removeme"), "x\n").unwrap();
    std::fs::create_dir_all(fx.image.join("data/old/sub")).unwrap();
    std::fs::write(fx.image.join("data/old/a"), "a\n").unwrap();
    std::fs::write(fx.image.join("data/old/sub/x"), "x\n").unwrap();
    let sif = fx.dir.path().join("x.sif");
    expect_ok(
        &run(&fx, As::Root, &["build", s(&sif), s(&fx.image)]),
        "build x.sif",
    );
    expect_ok(
        &run(
            &fx,
            As::Root,
            &["overlay", "create", "--size", "64", s(&sif)],
        ),
        "overlay create x.sif",
    );
    let script = "echo new > /new.txt && echo after > /etc/changeme && rm /etc/removeme \
                  && rm -r /data/old && mkdir /data/old && echo b > /data/old/b \
                  && ln -s /etc/changeme /link";
    expect_ok(
        &run(
            &fx,
            As::Root,
            &["exec", "--writable", s(&sif), "sh", "-c", script],
        ),
        "exec --writable",
    );
    Some((fx, sif))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// No overlayfs bookkeeping (a 0/0 character device, a `.wh.` name) anywhere below `dir`.
fn assert_no_whiteouts(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".wh."), "{}", e.path().display());
        assert!(!ft.is_char_device(), "{}", e.path().display());
        if ft.is_dir() {
            assert_no_whiteouts(&e.path());
        }
    }
}

/// The merged view: what the container wrote, over the image.
fn assert_merged(root: &Path) {
    assert_eq!(read(&root.join("new.txt")), "new\n");
    assert_eq!(read(&root.join("etc/changeme")), "after\n");
    assert!(!root.join("etc/removeme").exists(), "removed by a whiteout");
    assert_eq!(names(&root.join("data/old")), ["b"], "an opaque directory");
    assert_eq!(
        std::fs::read_link(root.join("link")).unwrap(),
        Path::new("/etc/changeme")
    );
    // The image's own files are still there.
    assert!(root.join("bin/busybox").is_file());
    assert_no_whiteouts(root);
}

fn assert_nothing_mounted(fx: &Fixture) {
    assert!(sifr_testkit::host_mounts_mentioning(fx.dir.path()).is_empty());
    let procs = sifr_testkit::settled(|| sifr_testkit::processes_mentioning(fx.dir.path()));
    assert!(procs.is_empty(), "processes left: {procs:?}");
}

#[test]
fn a_sandbox_from_a_sif_holds_its_overlay_partitions_changes() {
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((fx, sif)) = written_sif() else {
        return;
    };
    let out = fx.dir.path().join("sandbox");
    let o = run(&fx, As::Root, &["build", "--sandbox", s(&out), s(&sif)]);
    expect_ok(&o, "build --sandbox from a SIF with an overlay partition");
    assert!(
        stderr(&o).contains(&format!(
            "INFO:    applying the overlay partition of `{}`",
            sif.display()
        )),
        "{}",
        stderr(&o)
    );
    assert_merged(&out);

    // SIF to SIF carries them too; the new SIF has no partition left to apply.
    let new = fx.dir.path().join("new.sif");
    expect_ok(
        &run(&fx, As::Root, &["build", s(&new), s(&sif)]),
        "build NEW.sif IMAGE.sif",
    );
    let out2 = fx.dir.path().join("sandbox2");
    let o = run(&fx, As::Root, &["build", "--sandbox", s(&out2), s(&new)]);
    expect_ok(&o, "build --sandbox from the new SIF");
    assert!(
        !stderr(&o).contains("applying the overlay"),
        "{}",
        stderr(&o)
    );
    assert_merged(&out2);
    assert_nothing_mounted(&fx);
}

#[test]
fn a_damaged_overlay_partition_fails_the_build_and_leaves_no_sandbox() {
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((fx, sif)) = written_sif() else {
        return;
    };
    let offset = {
        let img = sifr_sif::Image::open(&sif).unwrap();
        img.descriptors()
            .find_map(|d| {
                let m = d.partition()?;
                (m.part == sifr_sif::PartType::Overlay).then(|| d.offset())
            })
            .unwrap()
    };
    // The partition's superblock overwritten.
    let f = std::fs::OpenOptions::new().write(true).open(&sif).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xa5; 1024], offset + 1024).unwrap();
    drop(f);
    let out = fx.dir.path().join("sandbox");
    let o = run(&fx, As::Root, &["build", "--sandbox", s(&out), s(&sif)]);
    assert!(!o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cannot open the overlay partition of `{}`",
            sif.display()
        )),
        "{err}"
    );
    assert!(!out.exists(), "no partial sandbox");
    assert_nothing_mounted(&fx);
}
