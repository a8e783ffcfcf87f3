//! `sifr build IMAGE DEF` as users run it, as root and as an ordinary user (fakeroot): every
//! section runs where and when Apptainer runs it, multi-stage builds ship only the last stage,
//! failures name the section, line, command and status and leave nothing behind, and a hostile
//! base image cannot make `%files` write outside the image.
//!
//! The base image is the shared test sandbox (a static probe plus busybox), so no network is
//! needed; the debootstrap examples are built by `scripts/examples.sh`.

mod build_case;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use build_case::{Case, builders, ok, sifr, unsquashfs_list};
use sifr_testkit::{As, stderr, stdout};

const SECTIONS_DEF: &str = r#"Bootstrap: localimage
From: ../image

%setup
    # on the host, with the root named
    echo setup > "$APPTAINER_ROOTFS/setup-ran"
    test "$SINGULARITY_ROOTFS" = "$APPTAINER_ROOTFS"

%files
    ../data/hello /opt/data/

%post
    # inside: root, / writable, %setup and %files done before
    test "$(id -u)" = 0
    test -f /setup-ran
    cat /opt/data/hello
    echo 'export FROM_POST=post-value' >> "$APPTAINER_ENVIRONMENT"
    echo 'built.by post' >> "$APPTAINER_LABELS"
    mkdir -p /opt/made
    test "$PWD" = /
    test -z "$HOST_ONLY"

%environment
    export GREETING={{ greeting }}

%runscript
    echo "run: $GREETING $FROM_POST $*"

%test
    test -d /opt/made

%labels
    Author sifr-tests

%help
    Says hello.
"#;

#[test]
fn every_section_runs_where_apptainer_runs_it() {
    let Some(c) = Case::new() else { return };
    c.write("sections.def", SECTIONS_DEF);
    for who in builders() {
        let target = format!("sections-{}.sif", who.uid());
        let o =
            c.fx.command(sifr(), who)
                .args([
                    "build",
                    "--build-arg",
                    "greeting=hi",
                    &target,
                    "sections.def",
                ])
                .env("SIFR_TMPDIR", &c.tmp)
                .env("HOST_ONLY", "must not reach %post")
                .output();
        ok(&o, &format!("build as {who:?}"));
        let log = stderr(&o);
        assert!(log.contains("+ echo setup"), "%setup is traced: {log}");
        assert!(
            stdout(&o).contains("hello from the host"),
            "%post saw the %files copy (its stdout is the build's): {}\n{log}",
            stdout(&o)
        );
        if let As::User { .. } = who {
            assert!(
                log.contains("fakeroot"),
                "the fakeroot mode is announced: {log}"
            );
        }

        let run = c.sifr(who, &["run", &target, "a", "b"]);
        ok(&run, "run");
        assert_eq!(stdout(&run).trim(), "run: hi post-value a b");

        let labels = c.sifr(who, &["inspect", "--labels", &target]);
        ok(&labels, "inspect --labels");
        let l = stdout(&labels);
        assert!(l.contains("Author: sifr-tests"), "{l}");
        assert!(l.contains("built.by: post"), "{l}");
        assert!(
            l.contains("org.label-schema.usage.singularity.deffile.bootstrap: localimage"),
            "{l}"
        );
        let help = c.sifr(who, &["run-help", &target]);
        assert!(stdout(&help).contains("Says hello."));
        let def = c.sifr(who, &["inspect", "--deffile", &target]);
        assert!(
            stdout(&def).contains("export GREETING=hi"),
            "stored def is substituted"
        );

        let listing = c.sifr(who, &["sif", "list", &target]);
        let l = stdout(&listing);
        for kind in ["Def.FILE", "JSON.Generic", "FS (Squashfs/*System/"] {
            assert!(l.contains(kind), "sif list lacks {kind}: {l}");
        }
        if let Some(files) = unsquashfs_list(&c.fx.work.join(&target)) {
            for p in [
                "/opt/data/hello",
                "/.singularity.d/runscript",
                "/.singularity.d/env/90-environment.sh",
                "/.singularity.d/Singularity",
                "/.singularity.d/labels.json",
                "/setup-ran",
            ] {
                assert!(
                    files.contains(&format!("squashfs-root{p}")),
                    "{p} missing:\n{files}"
                );
            }
            assert!(
                !files.contains(".post.script"),
                "the %post script is removed"
            );
            // Files the build made belong to root in the image, whoever built it.
            let made = files
                .lines()
                .find(|l| l.ends_with("squashfs-root/opt/made"))
                .unwrap();
            assert!(made.contains(" 0/0 "), "{made}");
            // So do the base image's files, although the real root owns them on the host (in
            // the fakeroot namespace they first show as the unmapped overflow id).
            let base = files
                .lines()
                .find(|l| l.ends_with("squashfs-root/bin/probe"))
                .unwrap();
            assert!(base.contains(" 0/0 "), "{base}");
        }
        c.assert_clean();
    }
}

#[test]
fn multi_stage_builds_ship_only_the_last_stage() {
    let Some(c) = Case::new() else { return };
    c.write(
        "multi.def",
        r#"Bootstrap: localimage
From: ../image
Stage: one

%post
    mkdir -p /out/bin /out/share
    echo artefact > /out/share/made-in-one
    ln -s made-in-one /out/share/link
    echo scratch-only > /only-in-one

Bootstrap: scratch
Stage: two

%files from one
    /bin/probe /bin/probe
    /out/share /usr/share/app
"#,
    );
    for who in builders() {
        let target = format!("multi-{}.sif", who.uid());
        let o = c.sifr(who, &["build", &target, "multi.def"]);
        ok(&o, &format!("multi-stage build as {who:?}"));
        assert!(
            stderr(&o).contains("stage `two` (2 of 2)"),
            "{}",
            stderr(&o)
        );
        let cat = c.sifr(
            who,
            &["exec", &target, "/bin/probe", "cat", "/usr/share/app/link"],
        );
        ok(&cat, "exec in the final stage");
        assert_eq!(stdout(&cat), "artefact\n");
        if let Some(files) = unsquashfs_list(&c.fx.work.join(&target)) {
            assert!(!files.contains("only-in-one"), "stage one leaked:\n{files}");
            assert!(!files.contains("busybox"), "stage one leaked:\n{files}");
            let link = files
                .lines()
                .find(|l| l.contains("/usr/share/app/link"))
                .unwrap();
            assert!(
                link.starts_with('l'),
                "inner symlinks stay symlinks: {link}"
            );
        }
        c.assert_clean();
    }
}

#[test]
fn a_failing_post_names_stage_section_line_command_and_status_and_leaves_nothing() {
    let Some(c) = Case::new() else { return };
    c.write(
        "fail.def",
        "Bootstrap: localimage\nFrom: ../image\n\n%post\n    echo before\n    probe exit 7\n    echo never-reached\n",
    );
    for who in builders() {
        let o = c.sifr(who, &["build", "fail.sif", "fail.def"]);
        assert_eq!(
            o.status.code(),
            Some(i32::from(sifr_cli::exit::FAILURE)),
            "{}",
            stderr(&o)
        );
        let e = stderr(&o);
        assert!(
            e.contains("%post (line 4) failed with status 7 at `probe exit 7`"),
            "{e}"
        );
        assert!(!e.contains("never-reached"), "-e stops at the failure: {e}");
        assert!(!c.fx.work.join("fail.sif").exists(), "no partial image");
        c.assert_clean();
    }
}

#[test]
fn an_existing_target_needs_force_and_is_kept_without_it() {
    let Some(c) = Case::new() else { return };
    c.write("s.def", "Bootstrap: localimage\nFrom: ../image\n");
    let who = As::Root;
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("needs root: the build runs as root");
        return;
    }
    std::fs::write(c.fx.work.join("keep.sif"), "precious").unwrap();
    let o = c.sifr(who, &["build", "keep.sif", "s.def"]);
    assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
    assert!(stderr(&o).contains("use --force"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(c.fx.work.join("keep.sif")).unwrap(),
        "precious"
    );
    let o = c.sifr(who, &["build", "--force", "keep.sif", "s.def"]);
    ok(&o, "build --force");
    assert_ne!(
        std::fs::read(c.fx.work.join("keep.sif")).unwrap(),
        b"precious"
    );
    c.assert_clean();
}

#[test]
fn sandbox_targets_and_image_sources_round_trip() {
    let Some(c) = Case::new() else { return };
    c.write(
        "sb.def",
        "Bootstrap: localimage\nFrom: ../image\n\n%post\n    echo in-sandbox > /marker\n",
    );
    for who in builders() {
        let (sb, sif, back) = (
            format!("sb-{}", who.uid()),
            format!("sb-{}.sif", who.uid()),
            format!("back-{}", who.uid()),
        );
        ok(
            &c.sifr(who, &["build", "--sandbox", &sb, "sb.def"]),
            "build --sandbox",
        );
        assert!(
            c.fx.work
                .join(&sb)
                .join(".singularity.d/Singularity")
                .is_file()
        );
        ok(&c.sifr(who, &["build", &sif, &sb]), "sandbox to SIF");
        // A SIF source becomes `Bootstrap: localimage`, extracted by our reader.
        ok(
            &c.sifr(who, &["build", "--sandbox", &back, &sif]),
            "SIF to sandbox",
        );
        let out = c.sifr(who, &["exec", &back, "/bin/probe", "cat", "/marker"]);
        ok(&out, "exec in the sandbox");
        assert_eq!(stdout(&out), "in-sandbox\n");
        c.assert_clean();
    }
}

#[test]
fn files_cannot_escape_a_hostile_base_image() {
    let Some(c) = Case::new() else { return };
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("needs root to show that even root's build stays inside the image");
        return;
    }
    let outside = c.fx.dir.path().join("host-etc");
    std::fs::create_dir(&outside).unwrap();
    // The base image's /evil is an absolute symlink naming a host directory.
    std::os::unix::fs::symlink(&outside, c.fx.image.join("evil")).unwrap();
    c.write(
        "evil.def",
        "Bootstrap: localimage\nFrom: ../image\n\n%files\n    ../data/hello /evil/planted\n",
    );
    let o = c.sifr(As::Root, &["build", "--sandbox", "evil", "evil.def"]);
    ok(&o, "build");
    assert!(
        !outside.join("planted").exists(),
        "%files wrote through the image's symlink onto the host"
    );
    let inside =
        c.fx.work
            .join("evil")
            .join(outside.strip_prefix("/").unwrap())
            .join("planted");
    assert!(
        inside.is_file(),
        "the copy lands where the symlink points inside the image"
    );
    c.assert_clean();
}

#[test]
fn fakeroot_gives_post_the_subordinate_ids_package_managers_need() {
    let Some(c) = Case::new() else { return };
    let Some(user) = builders()
        .into_iter()
        .find(|w| matches!(w, As::User { .. }))
    else {
        sifr_testkit::skip("needs an unprivileged user with user namespaces");
        return;
    };
    c.write(
        "owners.def",
        "Bootstrap: localimage\nFrom: ../image\n\n%post\n    touch /owned\n    chown 42:43 /owned\n",
    );
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    let has_range = subuid
        .lines()
        .any(|l| l.starts_with(&format!("{}:", sifr_testkit::TEST_USER)));
    let helpers = Path::new("/usr/bin/newuidmap").exists();
    let o = c.sifr(user, &["build", "owners.sif", "owners.def"]);
    if has_range && helpers {
        ok(&o, "fakeroot build with subordinate ids");
        assert!(stderr(&o).contains("subordinate ids"), "{}", stderr(&o));
        if let Some(files) = unsquashfs_list(&c.fx.work.join("owners.sif")) {
            let line = files
                .lines()
                .find(|l| l.ends_with("squashfs-root/owned"))
                .unwrap();
            assert!(
                line.contains(" 42/43 "),
                "the owner set in %post is kept: {line}"
            );
        }
    } else {
        assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
        let e = stderr(&o);
        assert!(e.contains("only root is mapped"), "{e}");
        assert!(e.contains("hint:") && e.contains("subordinate"), "{e}");
    }
    c.assert_clean();
}

#[test]
fn target_isa_exports_compiler_flags_into_post() {
    let Some(c) = Case::new() else { return };
    c.write(
        "isa.def",
        "Bootstrap: localimage\nFrom: ../image\n\n%post\n    echo \"$CFLAGS|$FFLAGS|$RUSTFLAGS\" > /flags\n",
    );
    let who = builders()[0];
    let o = c.sifr(
        who,
        &["build", "--target-isa", "x86-64-v2", "isa.sif", "isa.def"],
    );
    ok(&o, "build --target-isa");
    let out = c.sifr(who, &["exec", "isa.sif", "/bin/probe", "cat", "/flags"]);
    let flags = stdout(&out);
    assert!(
        flags.starts_with("-march=x86-64-v2|-march=x86-64-v2|"),
        "{flags}"
    );
    assert!(
        flags.contains("x86-64-v2\n"),
        "RUSTFLAGS names the level: {flags}"
    );
    let bad = c.sifr(
        who,
        &["build", "--target-isa", "x86-64-v9", "bad.sif", "isa.def"],
    );
    assert_eq!(
        bad.status.code(),
        Some(i32::from(sifr_cli::exit::USAGE)),
        "a bad level is a usage error"
    );
    assert!(
        stderr(&bad).contains("x86-64-v2"),
        "the valid levels are listed: {}",
        stderr(&bad)
    );
    c.assert_clean();
}

#[test]
fn fix_perms_gives_the_owner_access_to_everything() {
    let Some(c) = Case::new() else { return };
    c.write(
        "perms.def",
        "Bootstrap: localimage\nFrom: ../image\n\n%post\n    mkdir -p /locked/inner\n    echo x > /locked/inner/secret\n    chmod 000 /locked/inner/secret\n    chmod 500 /locked/inner\n",
    );
    for who in builders() {
        let sb = format!("perms-{}", who.uid());
        ok(
            &c.sifr(
                who,
                &["build", "--sandbox", "--fix-perms", &sb, "perms.def"],
            ),
            "build --fix-perms",
        );
        let mode = |p: &str| {
            std::fs::symlink_metadata(c.fx.work.join(&sb).join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("locked/inner") & 0o700, 0o700, "directories get rwx");
        assert_eq!(mode("locked/inner/secret") & 0o600, 0o600, "files get rw");
        assert_eq!(
            mode("locked/inner/secret") & 0o077,
            0,
            "group and other are untouched"
        );
        // The point of it: the user can remove the sandbox without help.
        let rm = sifr_testkit::command_as(who, Path::new("/bin/rm"))
            .arg("-rf")
            .arg(c.fx.work.join(&sb))
            .output()
            .unwrap();
        ok(&rm, "rm -rf of the sandbox by its owner");
        c.assert_clean();
    }
}
