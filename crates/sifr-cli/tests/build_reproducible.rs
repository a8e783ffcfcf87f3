//! Reproducible builds (issue 28): with `SOURCE_DATE_EPOCH`, or `--reproducible` and an OCI
//! base image's creation time, two builds of one definition from two directories, whose
//! `%files` sources have different times, run at different moments under different umasks,
//! give byte-identical SIF files, as root and as an ordinary user (fakeroot); without it they
//! differ. The image's UUID is derived from its contents (not Apptainer's nil UUID) and the
//! labels carry the epoch. A directory packed into a SIF and a pull are reproducible the same
//! way.
//!
//! Apptainer's e2e test: `e2e/imgbuild/imgbuild.go` `reproducibleBuild` (SOURCE_DATE_EPOCH,
//! `--reproducible` and `APPTAINER_REPRODUCIBLE`, two builds compared byte for byte).

mod build_case;

use std::path::{Path, PathBuf};
use std::process::Command;

use build_case::{Case, LAYER_TAR, blob, builders, finish_layout, ok};
use sifr_testkit::{As, stdout};

/// 2023-11-14 22:13:20 UTC, a Tuesday.
const EPOCH: &str = "1700000000";
const EPOCH_LABEL: &str = "Tuesday_14_November_2023_22:13:20_UTC";

/// A definition with every section that writes into the image: `%files` (the stage's and an
/// app's), `%post` writing files, a directory, a hard link, a symlink and a truncated ELF file
/// (which the CPU-feature scan stored in the image skips, with a reason), `%labels`,
/// `%environment`, `%runscript`, `%help` and an app. The base image is the fixture's, two
/// levels up from the build directories.
const DEF: &str = "Bootstrap: localimage
From: ../../image

%files
    data.txt /opt/data.txt

%post
    mkdir -p /opt/made/deeper
    echo built > /opt/made/post.txt
    ln /opt/made/post.txt /opt/made/hardlink
    ln -s post.txt /opt/made/symlink
    touch /opt/made/deeper/empty
    busybox head -c 3000 /bin/busybox > /opt/made/truncated-elf

%labels
    Maintainer reproducible
    Version 1.0

%environment
    export REPRO_VAR=value

%runscript
    echo running

%help
    Built twice, the same bytes.

%apprun tool
    echo tool

%appfiles tool
    data.txt tool-data.txt

%applabels tool
    Kind tool
";

/// A build directory `name` under the fixture's work directory holding the definition and its
/// `%files` source, usable by every builder; the source's time is `touch -d WHEN`.
fn build_dir(c: &Case, name: &str, def: &str, when: &str) -> PathBuf {
    let dir = c.fx.work.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("x.def"), def).unwrap();
    std::fs::write(dir.join("data.txt"), "some data\n").unwrap();
    let st = Command::new("touch")
        .args(["-d", when])
        .arg(dir.join("data.txt"))
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

/// `sifr build [flags] x.sif x.def` run by `who` in `dir`, with `env`; returns the image.
fn build(c: &Case, who: As, dir: &Path, flags: &[&str], env: &[(&str, &str)]) -> PathBuf {
    build_umask(c, who, dir, flags, env, "0022")
}

/// [`build`] started with the file-mode creation mask `umask`.
fn build_umask(
    c: &Case,
    who: As,
    dir: &Path,
    flags: &[&str],
    env: &[(&str, &str)],
    umask: &str,
) -> PathBuf {
    let mut cmd =
        c.fx.command(build_case::sifr(), who)
            .launcher(["sh", "-c", &format!("umask {umask} && exec \"$@\""), "sh"])
            .current_dir(dir)
            .env("SIFR_TMPDIR", &c.tmp)
            .env_remove("SOURCE_DATE_EPOCH")
            .arg("build")
            .args(flags)
            .args(["x.sif", "x.def"]);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let out = cmd.output().output;
    ok(&out, &format!("build in {} as {who:?}", dir.display()));
    dir.join("x.sif")
}

/// Whether `cmp` finds the two files identical (it prints the first difference otherwise).
fn same_bytes(a: &Path, b: &Path) -> bool {
    let out = Command::new("cmp").arg(a).arg(b).output().unwrap();
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => panic!("cmp failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// A moment between the two builds, so that anything dated "now" differs between them.
fn tick() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

fn header(sif: &Path) -> sifr_sif::Header {
    sifr_sif::Image::open(sif).unwrap().header().clone()
}

/// Every path's stored time in the SIF's root filesystem, and the superblock's.
fn squashfs_times(sif: &Path) -> (Vec<(PathBuf, u32)>, u32) {
    let offset = sifr_sif::Image::open(sif)
        .unwrap()
        .primary_partition()
        .unwrap()
        .offset();
    let a = sifr_squashfs::read::Archive::open(std::fs::File::open(sif).unwrap(), offset).unwrap();
    let times = a
        .walk()
        .unwrap()
        .into_iter()
        .map(|e| (e.path, e.inode.mtime))
        .collect();
    (times, a.superblock().mod_time)
}

fn inspect_labels(c: &Case, sif: &Path) -> String {
    let out =
        c.fx.command(build_case::sifr(), As::Root)
            .args(["inspect", "--labels"])
            .arg(sif)
            .output()
            .output;
    ok(&out, "inspect");
    stdout(&out)
}

#[test]
fn reproducible_builds_in_two_directories_are_byte_identical_as_root_and_as_a_user() {
    let Some(c) = Case::new() else { return };
    for who in builders() {
        let tag = format!("u{}", who.uid());
        // The sources differ in time (both after the epoch, so both are clamped to it).
        let a = build_dir(&c, &format!("{tag}-a"), DEF, "2024-01-01 10:00:00");
        let b = build_dir(&c, &format!("{tag}-b"), DEF, "2025-06-30 23:59:59");
        let sde = [("SOURCE_DATE_EPOCH", EPOCH)];
        // Different umasks too: the build's own (Apptainer's 0002) applies to %post.
        let first = build_umask(&c, who, &a, &[], &sde, "0022");
        tick();
        let second = build_umask(&c, who, &b, &[], &sde, "0077");
        assert!(
            same_bytes(&first, &second),
            "two builds with SOURCE_DATE_EPOCH differ ({who:?})"
        );
        let h = header(&first);
        assert!(!h.id_is_nil(), "the UUID is derived, not nil");
        assert_eq!(h.created_at.to_string(), EPOCH);
        assert_eq!(h.modified_at.to_string(), EPOCH);
        let labels = inspect_labels(&c, &first);
        assert!(
            labels.contains(&format!("org.label-schema.build-date: {EPOCH_LABEL}\n")),
            "{labels}"
        );
        // The base image's files and everything the build wrote are newer than the epoch
        // here, so every stored time is the epoch (clamped), the filesystem's too.
        let (times, fs_time) = squashfs_times(&first);
        assert_eq!(fs_time.to_string(), EPOCH);
        let other: Vec<_> = times
            .iter()
            .filter(|(_, t)| t.to_string() != EPOCH)
            .collect();
        assert!(!times.is_empty() && other.is_empty(), "{other:?}");
        c.assert_clean();
    }
}

#[test]
fn without_source_date_epoch_two_builds_differ() {
    let Some(c) = Case::new() else { return };
    let a = build_dir(&c, "plain-a", DEF, "2024-01-01 10:00:00");
    let b = build_dir(&c, "plain-b", DEF, "2025-06-30 23:59:59");
    let first = build(&c, As::Root, &a, &[], &[]);
    tick();
    let second = build(&c, As::Root, &b, &[], &[]);
    assert!(
        !same_bytes(&first, &second),
        "the comparison must be able to fail"
    );
    assert_ne!(header(&first).id, header(&second).id);
    c.assert_clean();
}

#[test]
fn different_reproducible_images_get_different_content_uuids() {
    let Some(c) = Case::new() else { return };
    let sde = [("SOURCE_DATE_EPOCH", EPOCH)];
    let one = build_dir(&c, "one", DEF, "2024-01-01 10:00:00");
    let other_def = DEF.replace("echo running", "echo running otherwise");
    let other = build_dir(&c, "other", &other_def, "2024-01-01 10:00:00");
    let (h1, h2) = (
        header(&build(&c, As::Root, &one, &[], &sde)),
        header(&build(&c, As::Root, &other, &[], &sde)),
    );
    assert!(!h1.id_is_nil() && !h2.id_is_nil());
    assert_ne!(h1.id, h2.id, "different images, different UUIDs");
    // A name-free, vendor-defined UUID (RFC 9562 version 8).
    assert_eq!(&h1.id_text()[14..15], "8", "{}", h1.id_text());
    // Another epoch is another image.
    let later = header(&build(
        &c,
        As::Root,
        &one,
        &["--force"],
        &[("SOURCE_DATE_EPOCH", "1700000001")],
    ));
    assert_ne!(h1.id, later.id);
    c.assert_clean();
}

/// An OCI layout `layout` (tag `v1`) of the fixture image as one layer, its config created at
/// `created`; readable by everyone.
fn oci_layout(c: &Case, created: &str) -> PathBuf {
    let root = c.fx.dir.path();
    let layout = c.fx.work.join("layout");
    let layer = root.join("layer.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&c.fx.image)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let (dl, sl) = blob(&layout, &layer);
    let cfg = root.join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"created":"{created}","architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin"]}},"rootfs":{{"type":"layers","diff_ids":["{dl}"]}}}}"#
        ),
    )
    .unwrap();
    finish_layout(&layout, root, &cfg, &[(LAYER_TAR, dl, sl)]);
    layout
}

#[test]
fn reproducible_takes_the_base_images_creation_date() {
    let Some(c) = Case::new() else { return };
    oci_layout(&c, "2021-06-01T12:00:00Z");
    let def = DEF.replace(
        "Bootstrap: localimage\nFrom: ../../image",
        "Bootstrap: oci\nFrom: ../layout:v1",
    );
    let a = build_dir(&c, "oci-a", &def, "2024-01-01 10:00:00");
    let b = build_dir(&c, "oci-b", &def, "2025-06-30 23:59:59");
    let first = build(&c, As::Root, &a, &["--reproducible"], &[]);
    tick();
    // The switch's environment twin; Apptainer's --reproducible also beats SOURCE_DATE_EPOCH.
    let second = build(
        &c,
        As::Root,
        &b,
        &[],
        &[
            ("APPTAINER_REPRODUCIBLE", "true"),
            ("SOURCE_DATE_EPOCH", EPOCH),
        ],
    );
    assert!(
        same_bytes(&first, &second),
        "two --reproducible builds differ"
    );
    let h = header(&first);
    assert_eq!(h.created_at, 1_622_548_800, "the base image's `created`");
    let labels = inspect_labels(&c, &first);
    assert!(
        labels.contains("org.label-schema.build-date: Tuesday_1_June_2021_12:0:0_UTC\n"),
        "{labels}"
    );
    c.assert_clean();
}

/// `sifr ARGS` as root in `dir`, with `env` (and no SOURCE_DATE_EPOCH of the caller's).
fn sifr_in(c: &Case, dir: &Path, args: &[&str], env: &[(&str, &str)]) {
    let mut cmd =
        c.fx.command(build_case::sifr(), As::Root)
            .current_dir(dir)
            .env("SIFR_TMPDIR", &c.tmp)
            .env_remove("SOURCE_DATE_EPOCH")
            .args(args);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    ok(&cmd.output().output, &args.join(" "));
}

#[test]
fn packed_directories_and_pulls_are_reproducible_too() {
    let Some(c) = Case::new() else { return };
    // Two copies of one sandbox whose files have different times (after the epoch).
    let (one, two) = (c.fx.copy_image("copy-one"), c.fx.copy_image("copy-two"));
    tick();
    let st = Command::new("find")
        .arg(&two)
        .args(["-exec", "touch", "-h", "{}", "+"])
        .status()
        .unwrap();
    assert!(st.success());
    let w = &c.fx.work;
    let sde = [("SOURCE_DATE_EPOCH", EPOCH)];
    let (d1, d2) = (w.join("d1.sif"), w.join("d2.sif"));
    sifr_in(&c, w, &["build", "d1.sif", one.to_str().unwrap()], &sde);
    tick();
    sifr_in(&c, w, &["build", "d2.sif", two.to_str().unwrap()], &sde);
    assert!(same_bytes(&d1, &d2), "two packs of one directory differ");
    assert_eq!(header(&d1).created_at.to_string(), EPOCH);

    // A pull of an OCI layout with --reproducible: dated by the image's `created`.
    oci_layout(&c, "2021-06-01T12:00:00Z");
    sifr_in(
        &c,
        w,
        &["pull", "--reproducible", "p1.sif", "oci:layout:v1"],
        &[],
    );
    tick();
    sifr_in(
        &c,
        w,
        &["pull", "--reproducible", "p2.sif", "oci:layout:v1"],
        &[],
    );
    let (p1, p2) = (w.join("p1.sif"), w.join("p2.sif"));
    assert!(same_bytes(&p1, &p2), "two --reproducible pulls differ");
    let h = header(&p1);
    assert_eq!(h.created_at, 1_622_548_800);
    assert!(!h.id_is_nil());
    // Without either, the same pull is another file.
    tick();
    sifr_in(&c, w, &["pull", "p3.sif", "oci:layout:v1"], &[]);
    assert!(!same_bytes(&p1, &w.join("p3.sif")));
    c.assert_clean();
}
