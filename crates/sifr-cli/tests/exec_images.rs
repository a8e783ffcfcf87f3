//! `sifr exec IMAGE.sif|IMAGE.sqfs ...` end to end: the sandbox of the shared fixture (static
//! probe + busybox) packed at test time with `mksquashfs` into a bare squashfs image and, with
//! the `sif` crate, into a SIF. Run as root (kernel squashfs on a loop device) and as the test
//! user (the in-tree FUSE server when `/dev/fuse` is open to everyone, as a distribution's udev
//! rule makes it; extraction to a temporary sandbox when it is not). After every run nothing may
//! be left: no mount, no loop device, no extraction directory, no process.
//!
//! Tests that run images hold one lock; those that change `/dev/fuse`'s mode put it back.
#![allow(clippy::print_stdout)]

mod images;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use images::*;
use sifr_testkit::{As, Fixture, stderr, stdout};

/// The behaviour every image kind shares with sandboxes, for one identity.
fn behaves_like_a_sandbox(im: &Images, img: &Path, who: As) -> Vec<String> {
    let fx = &im.fx;
    let img = img.to_str().unwrap();
    let mut errs = Vec::new();
    let o = run(fx, who, &["exec", img, "/bin/probe", "id"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (u, g) = (who.uid(), who.gid());
    assert_eq!(
        stdout(&o).trim(),
        format!("uid={u} gid={g} euid={u} egid={g}")
    );
    errs.push(stderr(&o));
    assert_nothing_left(im);

    let o = run(fx, who, &["exec", img, "probe", "exit", "42"]);
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));

    let o = run(fx, who, &["exec", img, "/bin/probe", "write", "/new-file"]);
    assert_eq!(stdout(&o).trim(), "error=EROFS", "{}", stderr(&o));

    let bind = format!("{}:/from-flag:ro", fx.data.display());
    let o = run(
        fx,
        who,
        &[
            "exec",
            "-B",
            &bind,
            img,
            "/bin/probe",
            "cat",
            "/from-flag/hello",
        ],
    );
    assert_eq!(stdout(&o), "hello from the host\n", "{}", stderr(&o));

    let o = run(fx, who, &["run", img, "a", "-b"]);
    assert_eq!(stdout(&o), "runscript: a -b\n", "{}", stderr(&o));

    // SIGTERM to sifr reaches the command (and not the FUSE server, which would then fail it).
    let mut cmd = sifr_as(fx, who, &["exec", img, "/bin/probe", "wait-signal"]);
    cmd.stderr(Stdio::null());
    sifr_testkit::assert_sigterm_reaches_probe(cmd);
    assert_nothing_left(im);
    errs
}

#[test]
fn sif_and_squashfs_images_run_as_root_on_a_loop_device() {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("the loop-device path needs root");
        return;
    }
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let im = Images::new();
    for img in [&im.sif, &im.sqfs] {
        for e in behaves_like_a_sandbox(&im, img, As::Root) {
            assert!(!e.contains("notice:"), "{e}");
        }
    }
}

#[test]
fn images_run_as_a_user_through_fuse_when_dev_fuse_is_open_to_all() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o666);
    let im = Images::new();
    for img in [&im.sif, &im.sqfs] {
        for e in behaves_like_a_sandbox(&im, img, user) {
            assert!(!e.contains("notice:"), "{e}");
        }
    }
}

#[test]
fn images_are_extracted_for_a_user_when_dev_fuse_is_not_usable() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o600);
    let im = Images::new();
    for img in [&im.sif, &im.sqfs] {
        let errs = behaves_like_a_sandbox(&im, img, user);
        let notice = format!(
            "notice: FUSE is not usable (cannot open `/dev/fuse`: Permission denied (os error 13)); extracting `{}` to a temporary sandbox",
            img.display()
        );
        assert!(errs.iter().all(|e| e.contains(&notice)), "{errs:?}");
    }
}

#[test]
fn a_sif_for_another_architecture_is_refused_naming_both() {
    let im = Images::new();
    let host = sifr_sif::Arch::host();
    let other = if host == sifr_sif::Arch::Arm64 {
        sifr_sif::Arch::Amd64
    } else {
        sifr_sif::Arch::Arm64
    };
    let p = im.fx.dir.path().join("other-arch.sif");
    write_sif(&p, Some((&im.sqfs, other)));
    let o = run(
        &im.fx,
        As::Root,
        &["exec", p.to_str().unwrap(), "/bin/probe", "id"],
    );
    assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "image `{}` is built for architecture `{}`, but this host is `{}`",
            p.display(),
            other.go_name(),
            host.go_name()
        )),
        "{err}"
    );
    assert!(err.contains("binfmt_misc"), "{err}");
    assert!(err.contains(&format!("--arch {}", host.go_name())), "{err}");
}

#[test]
fn a_sif_without_a_primary_partition_is_refused_naming_the_file() {
    let im = Images::new();
    let p = im.fx.dir.path().join("no-rootfs.sif");
    write_sif(&p, None);
    let o = run(&im.fx, As::Root, &["exec", p.to_str().unwrap(), "true"]);
    assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "SIF image `{}` has no primary system partition",
            p.display()
        )),
        "{err}"
    );
}

/// A corrupt image whose attach fails leaves no empty mount point in the runtime directory (one
/// per image was left, and another run's leftovers then failed this suite's leftover checks);
/// an orphaned mount point of an earlier run is swept by the next launch (issue 24, item 4).
#[test]
fn a_corrupt_image_leaves_no_mount_point_and_orphans_are_swept() {
    let im = Images::new();
    let d = im.fx.dir.path();
    let bad = d.join("corrupt.sqfs");
    let mut bytes = std::fs::read(&im.sqfs).unwrap();
    // The superblock after its magic: sizes and table offsets nothing can mount.
    for b in &mut bytes[8..96] {
        *b = 0xff;
    }
    std::fs::write(&bad, &bytes).unwrap();
    // A private temporary directory, so the runtime directory is this test's alone.
    let tmp = d.join("tmp");
    let runtime = tmp.join("sifr-0");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(runtime.join("0123456789abcdef.mnt")).unwrap();
    let mut c = sifr_as(&im.fx, As::Root, &["exec", bad.to_str().unwrap(), "true"]);
    let o = c.env("TMPDIR", &tmp).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(i32::from(sifr_cli::exit::FAILURE)),
        "{}",
        stderr(&o)
    );
    let left: Vec<String> = std::fs::read_dir(&runtime)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".mnt") || n.ends_with(".sock"))
        .collect();
    assert!(left.is_empty(), "left in the runtime directory: {left:?}");
}

#[test]
fn writable_is_refused_for_image_files() {
    let im = Images::new();
    let o = run(
        &im.fx,
        As::Root,
        &["exec", "--writable", im.sif.to_str().unwrap(), "true"],
    );
    assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
    // A SIF is written through its overlay partition (Apptainer's e2e
    // `SIF_writable_without_overlay_partition_issue_4329`); this one has none.
    assert!(
        stderr(&o).contains("no SIF writable overlay partition found in"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("sifr overlay create"), "{}", stderr(&o));
    let o = run(
        &im.fx,
        As::Root,
        &["exec", "--writable", im.sqfs.to_str().unwrap(), "true"],
    );
    assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
    assert!(stderr(&o).contains("`--writable` needs a sandbox directory"));
}

/// The first subordinate range of at least 65536 ids of `name` in `file` (`/etc/subuid`).
fn subid_start(file: &str, name: &str) -> Option<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            let count: u32 = f.get(2)?.parse().ok()?;
            (f.first() == Some(&name) && count >= 65536).then(|| f[1].parse().ok())?
        })
}

/// Whether `who` gets subordinate ids under `--fakeroot` on this host (a range in both files
/// and the helpers installed).
fn subids_of(who: As) -> Option<u32> {
    let name = match who {
        As::Root => "root",
        As::User { .. } => sifr_testkit::TEST_USER,
    };
    let helpers = ["/usr/bin/newuidmap", "/usr/bin/newgidmap"]
        .iter()
        .all(|p| Path::new(p).exists());
    let start = subid_start("/etc/subuid", name)?;
    subid_start("/etc/subgid", name)?;
    helpers.then_some(start)
}

/// Root and the test user, when the test user can have a user namespace.
fn fakeroot_identities() -> Vec<As> {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("needs root to create the test user and its sandbox");
        return Vec::new();
    }
    let mut ids = sifr_testkit::identities();
    if let Err(why) = sifr_testkit::userns_available() {
        sifr_testkit::skip(format_args!("the test user: {why}"));
        ids.retain(|w| *w == As::Root);
    }
    ids
}

/// `cp -a` of the fixture's sandbox, owned by `who` (a writable sandbox of theirs).
fn own_sandbox(fx: &Fixture, who: As) -> PathBuf {
    let dst = fx.copy_image(&format!("sandbox-{}", who.uid()));
    let st = Command::new("chown")
        .args(["-R", &format!("{}:{}", who.uid(), who.gid())])
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    dst
}

fn owner_on_host(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(p).unwrap().uid()
}

#[test]
fn fakeroot_is_root_inside_and_writes_belong_to_the_caller() {
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let im = Images::new();
    let fx = &im.fx;
    for who in fakeroot_identities() {
        let sandbox = own_sandbox(fx, who);
        let sb = sandbox.to_str().unwrap();
        for flag in ["--fakeroot", "-f"] {
            let o = run(fx, who, &["exec", flag, sb, "/bin/probe", "id"]);
            assert_eq!(
                stdout(&o).trim(),
                "uid=0 gid=0 euid=0 egid=0",
                "{who:?} {flag}: {}",
                stderr(&o)
            );
        }
        // Root's entries and root's home, as Apptainer's fakeroot shows them.
        let o = run(
            fx,
            who,
            &["exec", "-f", sb, "/bin/probe", "cat", "/etc/passwd"],
        );
        assert!(
            stdout(&o).lines().any(|l| l.starts_with("root:x:0:0:")),
            "{who:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let o = run(fx, who, &["exec", "-f", sb, "/bin/probe", "env"]);
        assert!(
            stdout(&o).lines().any(|l| l == "HOME=/root"),
            "{}",
            stdout(&o)
        );

        let o = run(
            fx,
            who,
            &["exec", "-f", "-w", sb, "/bin/probe", "write", "/made"],
        );
        assert_eq!(stdout(&o).trim(), "ok", "{who:?}: {}", stderr(&o));
        assert_eq!(owner_on_host(&sandbox.join("made")), who.uid(), "{who:?}");

        let o = run(
            fx,
            who,
            &["exec", "-f", "-w", sb, "/bin/probe", "chown", "42", "/made"],
        );
        match subids_of(who) {
            Some(start) => {
                assert_eq!(stdout(&o).trim(), "ok", "{who:?}: {}", stderr(&o));
                assert_eq!(owner_on_host(&sandbox.join("made")), start + 41, "{who:?}");
                let o = run(fx, who, &["exec", "-f", sb, "/bin/probe", "owner", "/made"]);
                assert_eq!(stdout(&o).trim(), format!("uid=42 gid=0"), "{who:?}");
            }
            None => {
                println!("{who:?} has no subordinate ids: only root is mapped");
                assert_eq!(stdout(&o).trim(), "error=EINVAL", "{who:?}: {}", stderr(&o));
            }
        }
        std::fs::remove_dir_all(&sandbox).unwrap();
        assert_nothing_left(&im);
    }
}

#[test]
fn fakeroot_and_userns_mount_images_with_fuse_and_keep_overlay_writes_the_callers() {
    if !Path::new("/dev/fuse").exists() {
        sifr_testkit::skip("needs /dev/fuse");
        return;
    }
    let ids = fakeroot_identities();
    if ids.is_empty() {
        return;
    }
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o666);
    let im = Images::with_owners();
    let fx = &im.fx;
    let sif = im.sif.to_str().unwrap();
    for who in ids {
        // The kernel's squashfs cannot be mounted in a user namespace: these only start when
        // the image is served by FUSE (no extraction notice either). Which owners the files
        // show (below and in the next test) tells the FUSE server from a loop mount too.
        for flag in ["--userns", "-u", "--fakeroot", "-f"] {
            let o = run(fx, who, &["exec", flag, sif, "/bin/probe", "exit", "3"]);
            assert_eq!(o.status.code(), Some(3), "{who:?} {flag}: {}", stderr(&o));
            assert!(stderr(&o).is_empty(), "{who:?} {flag}: {}", stderr(&o));
        }
        let host_userns = std::fs::read_link("/proc/self/ns/user").unwrap();
        let o = run(fx, who, &["exec", "-u", sif, "/bin/probe", "ns", "user"]);
        assert_ne!(Path::new(stdout(&o).trim()), host_userns, "{who:?}");
        let o = run(fx, who, &["exec", "-u", sif, "/bin/probe", "id"]);
        let (u, g) = (who.uid(), who.gid());
        assert_eq!(
            stdout(&o).trim(),
            format!("uid={u} gid={g} euid={u} egid={g}")
        );

        let o = run(fx, who, &["exec", "-f", sif, "/bin/probe", "id"]);
        assert_eq!(
            stdout(&o).trim(),
            "uid=0 gid=0 euid=0 egid=0",
            "{}",
            stderr(&o)
        );

        let overlay = fx.dir.path().join(format!("overlay-{u}"));
        std::fs::create_dir(&overlay).unwrap();
        std::os::unix::fs::chown(&overlay, Some(u), Some(g)).unwrap();
        let ov = overlay.to_str().unwrap();
        let o = run(
            fx,
            who,
            &[
                "exec",
                "-f",
                "-o",
                ov,
                sif,
                "/bin/probe",
                "write",
                "/etc/made",
            ],
        );
        assert_eq!(stdout(&o).trim(), "ok", "{who:?}: {}", stderr(&o));
        assert_eq!(owner_on_host(&overlay.join("upper/etc/made")), u, "{who:?}");
        std::fs::remove_dir_all(&overlay).unwrap();
        assert_nothing_left(&im);
    }
}

#[test]
fn fuse_presents_the_callers_ids_unless_fakeroot_maps_the_images_owners() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o666);
    let im = Images::with_owners();
    let fx = &im.fx;
    let sif = im.sif.to_str().unwrap();
    let owner = |who: As, flags: &[&str], path: &str| {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[sif, "/bin/probe", "owner", path]);
        let o = run(fx, who, &args);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    // One id mapped (the user's own, as Apptainer's `squashfuse -o uid=,gid=`): everything is
    // theirs, so the image's `0600` files stay readable, as after an extraction.
    let (u, g) = (user.uid(), user.gid());
    assert_eq!(owner(user, &[], "/etc/owned42"), format!("uid={u} gid={g}"));
    assert_eq!(owner(user, &[], "/bin/probe"), format!("uid={u} gid={g}"));
    let o = run(fx, user, &["exec", sif, "/bin/probe", "cat", "/etc/secret"]);
    assert_eq!(stdout(&o), "secret\n", "{}", stderr(&o));
    // Root with --userns: root's.
    assert_eq!(owner(As::Root, &["-u"], "/etc/owned42"), "uid=0 gid=0");
    // Fakeroot with subordinate ids: the image's owners, as a kernel mount shows them.
    if subids_of(user).is_some() {
        assert_eq!(owner(user, &["-f"], "/etc/owned42"), "uid=42 gid=42");
        assert_eq!(owner(user, &["-f"], "/etc/secret"), "uid=0 gid=0");
    } else {
        // `useradd` gives the test user a range where uidmap's /etc/subuid exists (CI).
        sifr_testkit::skip(
            "fakeroot with subordinate ids: the test user has none (apt-get install uidmap)",
        );
    }
    // Fakeroot with root only (root has no range here, or has one: either way root's).
    if subids_of(As::Root).is_none() {
        assert_eq!(owner(As::Root, &["-f"], "/etc/owned42"), "uid=0 gid=0");
    }
    assert_nothing_left(&im);
}

#[test]
fn fakeroot_runs_an_extracted_image_when_dev_fuse_is_not_usable() {
    let Some(user) = test_user() else { return };
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _mode = FuseMode::set(0o600);
    let im = Images::new();
    let o = run(
        &im.fx,
        user,
        &["exec", "-f", im.sif.to_str().unwrap(), "/bin/probe", "id"],
    );
    assert_eq!(
        stdout(&o).trim(),
        "uid=0 gid=0 euid=0 egid=0",
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("notice: FUSE is not usable"),
        "{}",
        stderr(&o)
    );
    assert_nothing_left(&im);
}

/// `/.singularity.d` as Apptainer lays it out for a Docker-based definition file, written by
/// hand: action scripts, the numbered env scripts (in the stock scripts' style), a shell
/// runscript and test, labels.json, the definition file and the compatibility links.
fn apptainer_layout(root: &Path) {
    use std::os::unix::fs::symlink;
    let sd = root.join(".singularity.d");
    for d in ["actions", "env", "libs"] {
        std::fs::create_dir_all(sd.join(d)).unwrap();
    }
    let exe = |rel: &str, text: &str| {
        let p = sd.join(rel);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    for action in ["exec", "run", "shell", "start", "test"] {
        exe(
            &format!("actions/{action}"),
            &format!(
                "#!/bin/sh\n\nfor script in /.singularity.d/env/*.sh; do\n    if [ -f \"$script\" ]; then\n        . \"$script\"\n    fi\ndone\n\n# the {action} action\nexec \"$@\"\n"
            ),
        );
    }
    exe(
        "env/01-base.sh",
        "#!/bin/sh\n#\n# Copyright notice of the project\n#\n\n",
    );
    exe(
        "env/10-docker2singularity.sh",
        "#!/bin/sh\nexport PATH=\"/opt/tool/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\nexport TOOL_HOME=\"/opt/tool\"\n",
    );
    exe(
        "env/90-environment.sh",
        "#!/bin/sh\n# Custom environment shell code should follow\n\n    export GREETING=\"hello\"\n    export WHO=${WHO:-world}\n",
    );
    exe(
        "env/94-appsbase.sh",
        "#!/bin/sh\nif test -n \"${SCIF_APPNAME:-}\"; then\n    :\nfi\n",
    );
    exe(
        "env/95-apps.sh",
        "#!/bin/sh\nif test -n \"${SCIF_APPNAME:-}\"; then\n    :\nfi\n",
    );
    exe(
        "env/99-base.sh",
        "#!/bin/sh\n\nif [ -z \"$LD_LIBRARY_PATH\" ]; then\n    LD_LIBRARY_PATH=\"/.singularity.d/libs\"\nelse\n    LD_LIBRARY_PATH=\"$LD_LIBRARY_PATH:/.singularity.d/libs\"\nfi\n\nPS1=\"Apptainer> \"\nexport LD_LIBRARY_PATH PS1\n",
    );
    exe(
        "env/99-runtimevars.sh",
        "#!/bin/sh\nif [ -n \"${SING_USER_DEFINED_PREPEND_PATH:-}\" ]; then\n    PATH=\"${SING_USER_DEFINED_PREPEND_PATH}:${PATH}\"\nfi\nif [ -n \"${SING_USER_DEFINED_APPEND_PATH:-}\" ]; then\n    PATH=\"${PATH}:${SING_USER_DEFINED_APPEND_PATH}\"\nfi\nunset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH\nexport PATH\n",
    );
    exe(
        "runscript",
        "#!/bin/sh\n\n    echo \"$GREETING $WHO\" \"$@\"\n",
    );
    exe(
        "test",
        "#!/bin/sh\n\n    test -n \"$TOOL_HOME\" && echo test-ok\n",
    );
    std::fs::write(
        sd.join("labels.json"),
        "{\n\t\"Maintainer\": \"someone\",\n\t\"org.label-schema.schema-version\": \"1.0\"\n}",
    )
    .unwrap();
    std::fs::write(
        sd.join("Singularity"),
        "Bootstrap: docker\nFrom: example/tool\n\n%environment\n    export GREETING=\"hello\"\n",
    )
    .unwrap();
    std::fs::write(sd.join("runscript.help"), "Greets.\n").unwrap();
    for (link, target) in [
        (".exec", ".singularity.d/actions/exec"),
        (".run", ".singularity.d/actions/run"),
        (".shell", ".singularity.d/actions/shell"),
        (".test", ".singularity.d/actions/test"),
        ("singularity", ".singularity.d/runscript"),
    ] {
        symlink(target, root.join(link)).unwrap();
    }
    // The fixture's shell-only env script is not part of this layout.
    std::fs::remove_file(sd.join("env/91-environment.sh")).unwrap();
}

#[test]
fn an_image_laid_out_by_apptainer_runs_and_inspects() {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("needs root (loop device, and the test user for FUSE)");
        return;
    }
    let fx = Fixture::new();
    if !fx.has_shell {
        sifr_testkit::skip(
            "the runscript needs busybox for /bin/sh (apt-get install busybox-static)",
        );
        return;
    }
    let _lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    apptainer_layout(&fx.image);
    let im = Images::pack(fx);
    let fx = &im.fx;
    let mut runs = vec![(As::Root, fx.image.clone()), (As::Root, im.sif.clone())];
    let _mode = FuseMode::set(0o666);
    if sifr_testkit::userns_available().is_ok()
        && let Some(user) = sifr_testkit::identities()
            .into_iter()
            .find(|w| matches!(w, As::User { .. }))
    {
        runs.push((user, im.sif.clone()));
    }
    for (who, img) in &runs {
        let img = img.to_str().unwrap();
        let o = run(fx, *who, &["exec", img, "/bin/probe", "env"]);
        let env = stdout(&o);
        for want in [
            "GREETING=hello",
            "WHO=world",
            "TOOL_HOME=/opt/tool",
            "PATH=/opt/tool/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LD_LIBRARY_PATH=/.singularity.d/libs",
        ] {
            assert!(
                env.lines().any(|l| l == want),
                "{who:?} {img}: no {want} in\n{env}{}",
                stderr(&o)
            );
        }
        let mut c = sifr_as(fx, *who, &["exec", img, "/bin/probe", "env"]);
        c.env("APPTAINERENV_PREPEND_PATH", "/pre");
        let env = stdout(&c.output().unwrap());
        assert!(
            env.lines().any(|l| l == "PATH=/pre:/opt/tool/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            "{env}"
        );
        // `run` runs the shell runscript with the image's environment; arguments follow.
        let o = run(fx, *who, &["run", img, "a", "b c"]);
        assert_eq!(
            stdout(&o),
            "hello world a b c\n",
            "{who:?} {img}: {}",
            stderr(&o)
        );
        let o = run(fx, *who, &["test", img]);
        assert_eq!(stdout(&o), "test-ok\n", "{who:?} {img}: {}", stderr(&o));
        // The action links Apptainer leaves at the root work as commands too.
        let o = run(
            fx,
            *who,
            &["exec", img, "/.exec", "/bin/probe", "args", "x"],
        );
        assert_eq!(stdout(&o), "x\n", "{who:?} {img}: {}", stderr(&o));
        assert_nothing_left(&im);
    }
    for img in [&fx.image, &im.sif] {
        let inspect = |flags: &[&str]| {
            let o = Command::new(env!("CARGO_BIN_EXE_sifr"))
                .arg("inspect")
                .args(flags)
                .arg(img)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
            stdout(&o)
        };
        let labels = inspect(&["--labels"]);
        assert!(labels.contains("Maintainer: someone"), "{labels}");
        assert!(inspect(&["--runscript"]).contains("echo \"$GREETING $WHO\""));
        assert!(inspect(&["--environment"]).contains("export GREETING=\"hello\""));
        // A SIF's definition object wins over the image's file, as in Apptainer's inspect:
        // the test SIF carries `Bootstrap: scratch` there.
        let deffile = inspect(&["--deffile"]);
        if img.is_dir() {
            assert!(deffile.contains("From: example/tool"), "{deffile}");
        } else {
            assert_eq!(deffile.trim(), "Bootstrap: scratch");
        }
        assert!(inspect(&["--helpfile"]).contains("Greets."));
        let json: serde_json::Value =
            serde_json::from_str(&inspect(&["--json", "--labels"])).unwrap();
        assert_eq!(
            json["data"]["attributes"]["labels"]["Maintainer"], "someone",
            "{json}"
        );
    }
}
