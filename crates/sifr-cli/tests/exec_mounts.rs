//! Paths and mounts end to end, as root and as the unprivileged test user: relative bind
//! sources, nested binds that create their mount point in the enclosing bind's source,
//! `-S/--scratch`, and `--fusemount` with a real FUSE program (squashfuse). Expectations come
//! from Apptainer's e2e suite (`e2e/actions/actions.go`, `actionBinds`), named per test.
//!
//! Host-state tests (they start containers, mount FUSE filesystems and change `/dev/fuse`'s
//! mode): nextest's `host-state` group runs them one at a time.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use sifr_testkit::{As, Fixture, TestOutput, runnable_identities as identities};

const FAILURE: i32 = sifr_cli::exit::FAILURE as i32;

fn sifr(fx: &Fixture, who: As, args: &[&str]) -> TestOutput {
    fx.command(env!("CARGO_BIN_EXE_sifr"), who)
        .args(args)
        .output()
}

/// `sifr exec FLAGS IMAGE /bin/probe ARGS` as `who`, in the fixture's work directory.
fn probe(fx: &Fixture, who: As, flags: &[&str], args: &[&str]) -> TestOutput {
    let mut all = vec!["exec"];
    all.extend(flags);
    all.extend([fx.image.to_str().unwrap(), "/bin/probe"]);
    all.extend(args);
    sifr(fx, who, &all)
}

/// A fresh directory anyone may write, under the fixture's work directory.
fn open_dir(fx: &Fixture, name: &str) -> PathBuf {
    let d = fx.work.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

fn tag(who: As) -> String {
    format!("u{}", who.uid())
}

#[test]
fn relative_bind_sources_resolve_against_the_working_directory() {
    let fx = Fixture::new();
    let rel = fx.work.join("rel");
    std::fs::create_dir_all(&rel).unwrap();
    std::fs::write(rel.join("hello"), "relative\n").unwrap();
    for who in identities() {
        // `-B data:/data`, `--bind ./x:/x` and `--mount src=data,...`: issue 19's examples.
        probe(
            &fx,
            who,
            &[
                "-B",
                "rel:/rel",
                "--bind",
                "./rel/hello:/h",
                "--mount",
                "type=bind,src=rel,dst=/m",
            ],
            &["cat", "/rel/hello", "/h", "/m/hello"],
        )
        .assert_success();
        let o = fx
            .command(env!("CARGO_BIN_EXE_sifr"), who)
            // `..` then the work directory's own name: a path through the parent.
            .env("APPTAINER_BIND", format!("../{}/rel:/e", work_name(&fx)))
            .args([
                "exec",
                fx.image.to_str().unwrap(),
                "/bin/probe",
                "cat",
                "/e/hello",
            ])
            .output();
        o.assert_success();
        assert_eq!(o.stdout_text(), "relative\n");
    }
    fx.assert_image_untouched();
}

#[test]
fn a_relative_bind_destination_is_refused() {
    // e2e `RelativeBindDestination`: `--bind FILE:relative` exits 255 (sifr's FAILURE).
    let fx = Fixture::new();
    let file = fx.data.join("hello");
    for who in identities() {
        let spec = format!("{}:relative", file.display());
        probe(&fx, who, &["--bind", &spec], &["id"])
            .assert_code(FAILURE)
            .assert_stderr_contains("the destination `relative` is not an absolute path");
        // A relative source alone would bind at a relative destination too.
        probe(&fx, who, &["-B", "data"], &["id"])
            .assert_code(FAILURE)
            .assert_stderr_contains("give it a destination: `data:/data`");
    }
}

#[test]
fn a_nested_bind_creates_its_mount_point_in_the_enclosing_source() {
    let fx = Fixture::new();
    let file = fx.data.join("hello");
    let file = file.to_str().unwrap();
    for who in identities() {
        let canary = open_dir(&fx, &format!("canary-{}", tag(who)));
        let c = canary.to_str().unwrap();
        // e2e `NestedBindFile`: the file mount point is created in the host directory.
        let outer = format!("{c}:/canary");
        let inner = format!("{file}:/canary/file2");
        let o = probe(
            &fx,
            who,
            &["-B", &outer, "-B", &inner],
            &["cat", "/canary/file2"],
        );
        o.assert_success();
        assert_eq!(o.stdout_text(), "hello from the host\n");
        assert!(
            canary.join("file2").is_file(),
            "file2 not created on the host"
        );
        // e2e `NestedBindDir`, then `MultipleNestedBindDir`: a directory inside a directory,
        // and a file inside that (whose source is `canary` again).
        let dir2 = format!("{c}:/canary/dir2");
        let nested = format!("{file}:/canary/dir2/nested");
        let o = probe(
            &fx,
            who,
            &["-B", &outer, "-B", &dir2, "-B", &nested],
            &["exists", "/canary/dir2", "/canary/dir2/nested"],
        );
        o.assert_success();
        assert_eq!(
            o.stdout_text(),
            "/canary/dir2 yes\n/canary/dir2/nested yes\n"
        );
        assert!(canary.join("dir2").is_dir());
        assert!(canary.join("nested").is_file());
        // Deeper, with the flags in the other order: the intermediate directory is created
        // too, and the outer bind is mounted first whatever the order.
        let deep = format!("{file}:/mnt/a/sub/f.txt");
        let mnt = format!("{c}:/mnt/a:ro");
        let o = probe(
            &fx,
            who,
            &["-B", &deep, "-B", &mnt],
            &["cat", "/mnt/a/sub/f.txt"],
        );
        o.assert_success();
        assert_eq!(o.stdout_text(), "hello from the host\n");
        assert!(canary.join("sub/f.txt").is_file());
        // e2e `CustomHomeOneToOne`: the home stands in for the image's directory too.
        let home = open_dir(&fx, &format!("home-{}", tag(who)));
        let h = home.to_str().unwrap();
        let in_home = format!("{c}:{h}/canary121RO");
        let o = probe(
            &fx,
            who,
            &["--home", h, "--bind", &in_home],
            &["exists", &format!("{h}/canary121RO/file2")],
        );
        o.assert_success();
        assert!(o.stdout_text().ends_with(" yes\n"), "{}", o.stdout_text());
        assert!(home.join("canary121RO").is_dir());
    }
    fx.assert_image_untouched();
}

#[test]
fn no_mount_point_is_created_in_the_hosts_dev() {
    // Only the directories Apptainer lets stand in for the image's (user binds, home, /tmp)
    // take nested mount points; the host's /dev is bound, but nothing is created in it.
    let fx = Fixture::new();
    let file = fx.data.join("hello");
    let name = format!("sifr-exec-mounts-{}", std::process::id());
    let spec = format!("{}:/dev/{name}", file.display());
    for who in identities() {
        probe(
            &fx,
            who,
            &["-B", &spec],
            &["exists", &format!("/dev/{name}")],
        )
        .assert_success()
        .assert_stderr_contains("does not exist in the container");
        assert!(
            !Path::new("/dev").join(&name).exists(),
            "created in the host's /dev"
        );
    }
}

#[test]
fn a_nested_mount_point_never_follows_a_symlink_out_of_the_bound_tree() {
    let fx = Fixture::new();
    let file = fx.data.join("hello");
    for who in identities() {
        let canary = open_dir(&fx, &format!("evil-{}", tag(who)));
        let target = fx.work.join(format!("outside-{}", tag(who)));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777)).unwrap();
        // Absolute and relative links out of the tree: neither may lead the creation there.
        std::os::unix::fs::symlink(&target, canary.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", canary.join("up")).unwrap();
        for via in ["abs", "up"] {
            let outer = format!("{}:/c", canary.display());
            let inner = format!("{}:/c/{via}/x", file.display());
            let o = probe(&fx, who, &["-B", &outer, "-B", &inner], &["id"]);
            assert!(
                !target.join("x").exists() && !fx.work.join("x").exists(),
                "the mount point was created outside the bound tree ({via})"
            );
            // `up` resolves to the tree's own root, where `x` may be created; `abs` names a
            // path missing in the tree, and the launch fails.
            if via == "abs" {
                o.assert_code(FAILURE)
                    .assert_stderr_contains("cannot create the mount point of `/c/abs/x`");
            } else {
                o.assert_success();
                assert!(canary.join("x").is_file());
            }
        }
    }
}

#[test]
fn scratch_directories_are_empty_writable_and_kept_only_with_a_workdir() {
    let fx = Fixture::new();
    for who in identities() {
        // e2e `actionScratch`-style: the directories exist, are empty and writable.
        let o = probe(
            &fx,
            who,
            &["-S", "/scratch,/s2", "--scratch", "/deep/s3"],
            &["write", "/deep/s3/x"],
        );
        o.assert_success();
        assert_eq!(o.stdout_text(), "ok\n");
        let o = probe(&fx, who, &["--scratch", "/scratch"], &["ls", "/scratch"]);
        o.assert_success();
        assert_eq!(o.stdout_text(), "", "a fresh scratch directory is empty");
        // The twin, `APPTAINER_SCRATCH`.
        let o = fx
            .command(env!("CARGO_BIN_EXE_sifr"), who)
            .env("APPTAINER_SCRATCH", "/from-env")
            .args([
                "exec",
                fx.image.to_str().unwrap(),
                "/bin/probe",
                "write",
                "/from-env/y",
            ])
            .output();
        o.assert_success();
        // With -W, `WORK/scratch/DIR` on the host, kept after the container.
        let work = open_dir(&fx, &format!("wd-{}", tag(who)));
        let w = work.to_str().unwrap();
        probe(
            &fx,
            who,
            &["-W", w, "-S", "/scratch/a"],
            &["write", "/scratch/a/kept"],
        )
        .assert_success();
        let kept = work.join("scratch/scratch/a/kept");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "written\n");
        let mode = std::fs::metadata(work.join("scratch"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o7777 & !0o022,
            0o750 & !0o022,
            "scratch created mode 0750"
        );
        probe(&fx, who, &["-S", "rel"], &["id"])
            .assert_code(FAILURE)
            .assert_stderr_contains("invalid scratch directory `rel`");
    }
    fx.assert_image_untouched();
}

/// Sets `/dev/fuse`'s mode for the guard's life and restores it afterwards.
struct FuseMode(u32);

impl FuseMode {
    fn set(mode: u32) -> FuseMode {
        let old = std::fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
        std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(mode)).unwrap();
        FuseMode(old)
    }
}

impl Drop for FuseMode {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(self.0));
    }
}

/// A squashfs image holding `inside.txt`, or `None` (after [`sifr_testkit::skip`]) without the
/// tools.
fn squashfs(fx: &Fixture) -> Option<PathBuf> {
    if let Some(why) = sifr_testkit::missing(&["squashfuse", "mksquashfs"]) {
        sifr_testkit::skip(format_args!(
            "{why} not installed (apt-get install squashfuse squashfs-tools)"
        ));
        return None;
    }
    if !sifr_testkit::is_root() || !Path::new("/dev/fuse").exists() {
        sifr_testkit::skip("needs root (to switch /dev/fuse's mode) and /dev/fuse");
        return None;
    }
    let src = fx.dir.path().join("sqsrc");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("inside.txt"), "in the squashfs\n").unwrap();
    let img = fx.dir.path().join("fuse.sqfs");
    sifr_testkit::mksquashfs(&src, &img, &[]);
    Some(img)
}

#[test]
fn fusemount_serves_a_filesystem_from_a_host_or_container_program() {
    let fx = Fixture::new();
    let Some(sqfs) = squashfs(&fx) else { return };
    let sqfs = sqfs.to_str().unwrap();
    let mode = FuseMode::set(0o666);
    for who in identities() {
        for side in ["host", "host-daemon"] {
            let spec = format!("{side}:squashfuse {sqfs} /mnt/sq");
            let o = probe(
                &fx,
                who,
                &["--fusemount", &spec],
                &["cat", "/mnt/sq/inside.txt"],
            );
            o.assert_success();
            assert_eq!(o.stdout_text(), "in the squashfs\n");
        }
        // `container:` runs the program in the container: the host's /usr and libraries are
        // bound in for it (the probe image has no squashfuse of its own).
        let spec = "container:squashfuse /data/fuse.sqfs /mnt/sq";
        let data = format!("{}:/data", fx.dir.path().display());
        let o = probe(
            &fx,
            who,
            &["-B", "/usr,/lib,/lib64", "-B", &data, "--fusemount", spec],
            &["cat", "/mnt/sq/inside.txt"],
        );
        o.assert_success();
        assert_eq!(o.stdout_text(), "in the squashfs\n");
        // `--fusemount` implies `--pid`: the command is PID 2, under the init.
        let spec = format!("host:squashfuse {sqfs} /mnt/sq");
        let o = probe(&fx, who, &["--fusemount", &spec], &["pid"]);
        o.assert_success();
        assert!(o.stdout_text().starts_with("pid=2 "), "{}", o.stdout_text());
        // The twin, `APPTAINER_FUSESPEC`.
        let o = fx
            .command(env!("CARGO_BIN_EXE_sifr"), who)
            .env("APPTAINER_FUSESPEC", &spec)
            .args([
                "exec",
                fx.image.to_str().unwrap(),
                "/bin/probe",
                "cat",
                "/mnt/sq/inside.txt",
            ])
            .output();
        o.assert_success();
    }
    drop(mode);
    // Nothing left: no program serving the image, no mount.
    let left = sifr_testkit::settled(|| sifr_testkit::processes_mentioning(Path::new(sqfs)));
    assert!(left.is_empty(), "FUSE programs left running: {left:?}");
    assert!(sifr_testkit::host_mounts_mentioning(fx.dir.path()).is_empty());
    fx.assert_image_untouched();
}

#[test]
fn fusemount_errors_are_apptainers_cases() {
    let fx = Fixture::new();
    let Some(sqfs) = squashfs(&fx) else { return };
    let sqfs = sqfs.to_str().unwrap();
    let mode = FuseMode::set(0o666);
    for who in identities() {
        // Apptainer's `SetFuseMount` errors.
        probe(&fx, who, &["--fusemount", "host:squashfuse"], &["id"])
            .assert_code(FAILURE)
            .assert_stderr_contains("no whitespace separators found");
        probe(&fx, who, &["--fusemount", "squashfuse x /m"], &["id"])
            .assert_code(FAILURE)
            .assert_stderr_contains("unknown prefix `squashfuse`");
        // A program that is not there ("could not start program" in Apptainer).
        let o = probe(
            &fx,
            who,
            &["--fusemount", "host:no-such-fuse-program x /m"],
            &["id"],
        );
        o.assert_code(FAILURE)
            .assert_stderr_contains("could not start the `--fusemount` program");
    }
    drop(mode);
    // An ordinary user who may not open /dev/fuse gets the open's error, as with Apptainer.
    if let Some(user) = identities()
        .into_iter()
        .find(|w| matches!(w, As::User { .. }))
    {
        let _mode = FuseMode::set(0o600);
        let spec = format!("host:squashfuse {sqfs} /mnt/sq");
        probe(&fx, user, &["--fusemount", &spec], &["id"])
            .assert_code(FAILURE)
            .assert_stderr_contains("cannot open `/dev/fuse`");
    }
}

/// The file name of the fixture's work directory (the tests run there).
fn work_name(fx: &Fixture) -> String {
    fx.work
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
