//! `sifr build IMAGE DEF` as users run it, as root and as an ordinary user (fakeroot): every
//! section runs where and when Apptainer runs it, multi-stage builds ship only the last stage,
//! failures name the section, line, command and status and leave nothing behind, and a hostile
//! base image cannot make `%files` write outside the image.
//!
//! The base image is the shared test sandbox (a static probe plus busybox), so no network is
//! needed; the debootstrap examples are built by `scripts/examples.sh`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sifr_testkit::{As, Fixture, stderr, stdout};

fn sifr() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sifr"))
}

/// A fixture plus a private tmpdir for build work directories (checked empty afterwards).
struct Case {
    fx: Fixture,
    tmp: PathBuf,
}

impl Case {
    fn new() -> Option<Case> {
        let fx = Fixture::new();
        if !fx.has_shell {
            sifr_testkit::skip(
                "busybox is needed in the base image for %post (apt-get install busybox-static)",
            );
            return None;
        }
        let tmp = fx.dir.path().join("buildtmp");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        for tool in [
            "id", "cat", "ls", "mkdir", "echo", "test", "chown", "stat", "touch", "ln", "sleep",
        ] {
            let _ = std::os::unix::fs::symlink("busybox", fx.image.join("bin").join(tool));
        }
        Some(Case { fx, tmp })
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.fx.work.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    fn sifr(&self, who: As, args: &[&str]) -> Output {
        self.fx
            .command(sifr(), who)
            .args(args)
            .env("SIFR_TMPDIR", &self.tmp)
            .output()
            .output
    }

    fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "build left {left:?} in its tmpdir");
        let stray: Vec<_> = std::fs::read_dir(&self.fx.work)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n.contains("sifr"))
            .collect();
        assert!(stray.is_empty(), "partial outputs left: {stray:?}");
    }
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Users to build as: root, and the test user when unprivileged user namespaces work.
fn builders() -> Vec<As> {
    sifr_testkit::identities()
        .into_iter()
        .filter(|w| match w {
            As::Root => true,
            As::User { .. } => match sifr_testkit::userns_available() {
                Ok(()) => true,
                Err(why) => {
                    sifr_testkit::skip(format_args!("as user: {why}"));
                    false
                }
            },
        })
        .collect()
}

fn unsquashfs_list(sif: &Path) -> Option<String> {
    let img = sifr_sif::Image::open(sif).unwrap();
    let part = img.primary_partition().expect("primary partition");
    let (start, len) = (part.offset(), part.size());
    let bytes = std::fs::read(sif).unwrap();
    let sq = sif.with_extension("sqfs");
    std::fs::write(&sq, &bytes[start as usize..(start + len) as usize]).unwrap();
    let out = Command::new("unsquashfs")
        .arg("-lln")
        .arg(&sq)
        .output()
        .ok()?;
    std::fs::remove_file(&sq).unwrap();
    assert!(out.status.success(), "unsquashfs rejects the image");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

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

/// `sha256:HEX` and size of a file, through `sha256sum` (no hashing code in the tests).
fn digest(path: &Path) -> (String, u64) {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (
        format!("sha256:{hex}"),
        std::fs::metadata(path).unwrap().len(),
    )
}

/// Store `path` as a blob of the OCI layout `layout`; returns its descriptor fields.
fn blob(layout: &Path, path: &Path) -> (String, u64) {
    let (d, size) = digest(path);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(path, dir.join(d.trim_start_matches("sha256:"))).unwrap();
    (d, size)
}

/// An OCI image layout (tag `v1`) with two layers: the fixture image, then one that adds
/// `/opt/added` and whites out `/bin/ls`; its config has ENV, ENTRYPOINT, CMD and a label.
fn oci_layout(c: &Case) -> PathBuf {
    let root = c.fx.dir.path();
    let layout = c.fx.work.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let l1 = root.join("layer1.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&c.fx.image)
        .args(["-cf"])
        .arg(&l1)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let up = root.join("upper");
    std::fs::create_dir_all(up.join("opt")).unwrap();
    std::fs::create_dir_all(up.join("bin")).unwrap();
    std::fs::write(up.join("opt/added"), "from layer 2\n").unwrap();
    std::fs::write(up.join("bin/.wh.ls"), "").unwrap();
    let l2 = root.join("layer2.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&up)
            .arg("-cf")
            .arg(&l2)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let (diff2, _) = digest(&l2);
    let dock = root.join("dock");
    std::fs::create_dir_all(&dock).unwrap();
    std::fs::copy(&l1, dock.join("layer1.tar")).unwrap();
    std::fs::copy(&l2, dock.join("layer2.tar")).unwrap();
    assert!(
        Command::new("gzip")
            .arg("-n")
            .arg(&l2)
            .status()
            .unwrap()
            .success()
    );
    let l2gz = root.join("layer2.tar.gz");
    let (d1, s1) = blob(&layout, &l1);
    let (d2, s2) = blob(&layout, &l2gz);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin:/usr/bin","FROM_OCI=oci-value"],"Entrypoint":["/bin/probe","args"],"Cmd":["default-cmd"],"Labels":{{"org.example.from":"oci"}}}},"rootfs":{{"type":"layers","diff_ids":["{d1}","{diff2}"]}}}}"#
    );
    let cfg = root.join("config.json");
    std::fs::write(&cfg, &config).unwrap();
    // The same image as `docker save` writes it.
    std::fs::write(dock.join("config.json"), &config).unwrap();
    std::fs::write(
        dock.join("manifest.json"),
        r#"[{"Config":"config.json","RepoTags":["example:v1"],"Layers":["layer1.tar","layer2.tar"]}]"#,
    )
    .unwrap();
    let docker = c.fx.work.join("docker.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&dock)
            .arg("-cf")
            .arg(&docker)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let (dc, sc) = blob(&layout, &cfg);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{dc}","size":{sc}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d1}","size":{s1}}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d2}","size":{s2}}}]}}"#
    );
    let man = root.join("manifest.json");
    std::fs::write(&man, manifest).unwrap();
    let (dm, sm) = blob(&layout, &man);
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{dm}","size":{sm},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    assert!(
        Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&layout)
            .status()
            .unwrap()
            .success()
    );
    layout
}

// Issue 24, finding 3: a failed `--fakeroot` build (a layer nested deeper than the 1024-level
// limit) left `$TMPDIR/build-temp-PID/stage-0`. The build now fails naming the limit and leaves
// nothing, as root and as a user.
#[test]
fn a_build_from_a_too_deep_layer_fails_and_leaves_nothing() {
    let Some(c) = Case::new() else { return };
    let root = c.fx.dir.path();
    let tree = root.join("deep");
    let mut dir = tree.clone();
    for _ in 0..1100 {
        dir.push("d");
    }
    std::fs::create_dir_all(&dir).unwrap();
    let layer = root.join("deep.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let layout = c.fx.work.join("deep-layout");
    let (dl, sl) = blob(&layout, &layer);
    let cfg = root.join("deep-config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{dl}"]}}}}"#
        ),
    )
    .unwrap();
    let (dc, sc) = blob(&layout, &cfg);
    let man = root.join("deep-manifest.json");
    std::fs::write(
        &man,
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{dc}","size":{sc}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{dl}","size":{sl}}}]}}"#
        ),
    )
    .unwrap();
    let (dm, sm) = blob(&layout, &man);
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{dm}","size":{sm},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    assert!(
        Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&layout)
            .status()
            .unwrap()
            .success()
    );
    c.write(
        "deep.def",
        "Bootstrap: oci\nFrom: deep-layout:v1\n\n%post\n    true\n",
    );
    for who in builders() {
        let mut args = vec!["build"];
        if matches!(who, As::User { .. }) {
            args.push("--fakeroot");
        }
        args.extend(["deep.sif", "deep.def"]);
        let o = c.sifr(who, &args);
        assert_eq!(
            o.status.code(),
            Some(i32::from(sifr_cli::exit::FAILURE)),
            "{}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains("nested deeper than 1024"),
            "{}",
            stderr(&o)
        );
        assert!(!c.fx.work.join("deep.sif").exists());
        c.assert_clean();
    }
}

#[test]
fn oci_layouts_and_archives_become_images_with_their_env_and_entrypoint() {
    let Some(c) = Case::new() else { return };
    let layout = oci_layout(&c);
    let archive = c.fx.work.join("layout.tar");
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    c.write(
        "oci.def",
        "Bootstrap: oci\nFrom: layout:v1\n\n%post\n    test -f /opt/added\n",
    );
    for who in builders() {
        for (target, source) in [
            (format!("def-{}.sif", who.uid()), "oci.def".to_string()),
            (
                format!("arch-{}.sif", who.uid()),
                "oci-archive:layout.tar:v1".to_string(),
            ),
            (
                format!("docker-{}.sif", who.uid()),
                "docker-archive:docker.tar".to_string(),
            ),
        ] {
            let o = c.sifr(who, &["build", &target, &source]);
            ok(&o, &format!("build {source} as {who:?}"));
            let run = c.sifr(who, &["run", &target]);
            ok(&run, "run");
            assert_eq!(stdout(&run), "default-cmd\n", "CMD is the default argument");
            let run = c.sifr(who, &["run", &target, "given"]);
            assert_eq!(stdout(&run), "given\n", "arguments replace CMD");
            let env = c.sifr(who, &["exec", &target, "/bin/probe", "env"]);
            assert!(
                stdout(&env).contains("FROM_OCI=oci-value\n"),
                "{}",
                stdout(&env)
            );
            let files = c.sifr(
                who,
                &[
                    "exec",
                    &target,
                    "/bin/probe",
                    "exists",
                    "/opt/added",
                    "/bin/ls",
                ],
            );
            assert_eq!(
                stdout(&files),
                "/opt/added yes\n/bin/ls no\n",
                "layer 2's whiteout applies"
            );
            let labels = c.sifr(who, &["inspect", "--labels", &target]);
            assert!(
                stdout(&labels).contains("org.example.from: oci"),
                "{}",
                stdout(&labels)
            );
            let list = stdout(&c.sifr(who, &["sif", "list", &target]));
            assert!(
                list.matches("JSON.Generic").count() >= 2,
                "inspect metadata and oci-config.json: {list}"
            );
        }
        c.assert_clean();
    }
}

#[test]
fn a_build_stopped_by_a_signal_removes_its_work_and_writes_nothing() {
    use std::io::{BufRead as _, BufReader};
    let Some(c) = Case::new() else { return };
    c.write(
        "slow.def",
        "Bootstrap: localimage\nFrom: ../image\n\n%post\n    probe wait-signal\n    echo not-reached\n",
    );
    for who in builders() {
        let mut child =
            c.fx.command(sifr(), who)
                .args(["build", "slow.sif", "slow.def"])
                .env("SIFR_TMPDIR", &c.tmp)
                .command()
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert_eq!(first, "ready", "%post started");
        // Only sifr is signalled, as a batch system or `kill PID` does.
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let out = child.wait_with_output().unwrap();
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(128 + 15), "{e}");
        assert!(e.contains("interrupted by signal 15"), "{e}");
        assert!(!c.fx.work.join("slow.sif").exists());
        c.assert_clean();
    }
}

/// The pids of processes whose command line is exactly `argv` (NUL-separated in /proc).
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

/// A started build that is killed if the test fails before it kills it itself (a failed
/// assertion must not leave the build running).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// Issue 24, finding 1: `kill -9` of `sifr build` left `%post` running (a `sleep` outlived the
// build, as root and with fakeroot). The section now runs in a PID namespace whose init dies
// with the build, so the kernel ends everything `%post` started, backgrounded or not.
#[test]
fn post_dies_with_a_build_killed_by_sigkill() {
    use std::io::{BufRead as _, BufReader};
    let Some(c) = Case::new() else { return };
    for (n, who) in builders().into_iter().enumerate() {
        // Numbers no other test uses, so the processes found are this build's.
        let bg = format!("{}", 424_200 + std::process::id() % 1000 * 10 + n as u32);
        let fg = format!("{}", 434_200 + std::process::id() % 1000 * 10 + n as u32);
        let def = format!(
            "Bootstrap: localimage\nFrom: ../image\n\n%post\n    sleep {bg} &\n    echo ready\n    sleep {fg}\n"
        );
        c.write("killed.def", &def);
        let mut child = KillOnDrop(
            c.fx.command(sifr(), who)
                .args(["build", "killed.sif", "killed.def"])
                .env("SIFR_TMPDIR", &c.tmp)
                .command()
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert_eq!(first, "ready", "%post started");
        let both = |a: &str| processes_running(&["sleep", a]);
        // Both sleeps are forked by now; each shows its command line once it has exec'd.
        let t0 = std::time::Instant::now();
        while (both(&bg).len(), both(&fg).len()) != (1, 1) {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "%post's two sleeps do not show"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        let t0 = std::time::Instant::now();
        let left = loop {
            let left = [both(&bg), both(&fg)].concat();
            if left.is_empty() || t0.elapsed() > std::time::Duration::from_secs(10) {
                break left;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        for pid in &left {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        assert!(
            left.is_empty(),
            "%post's processes {left:?} outlived the build killed with SIGKILL ({who:?})"
        );
        assert!(!c.fx.work.join("killed.sif").exists());
    }
}

// Issue 24, finding 6: Apptainer binds the host's /tmp and /var/tmp into `%post`, so a base
// image with `/opt -> /tmp/x` aims the build's writes at the host. The sections get their own
// /tmp, /var/tmp and /dev/shm in the build's work directory, removed with it.
#[test]
fn a_base_image_cannot_aim_post_writes_at_host_tmp() {
    let Some(c) = Case::new() else { return };
    let tag = format!("sifr-aim-{}", std::process::id());
    let targets = [
        ("aim-tmp", Path::new("/tmp").join(&tag)),
        ("aim-vartmp", Path::new("/var/tmp").join(&tag)),
        ("aim-shm", Path::new("/dev/shm").join(&tag)),
    ];
    for (link, host) in &targets {
        std::os::unix::fs::symlink(host, c.fx.image.join(link)).unwrap();
    }
    c.write(
        "aim.def",
        &format!(
            "Bootstrap: localimage\nFrom: ../image\n\n%post\n    \
             for d in /tmp /var/tmp /dev/shm; do mkdir $d/{tag}; done\n    \
             for l in aim-tmp aim-vartmp aim-shm; do echo planted > /$l/file; done\n    \
             cat /aim-tmp/file /aim-shm/file\n"
        ),
    );
    for who in builders() {
        let o = c.sifr(who, &["build", "aim.sif", "aim.def"]);
        let leaked: Vec<_> = targets.iter().filter(|(_, h)| h.exists()).collect();
        for (_, h) in &leaked {
            let _ = std::fs::remove_dir_all(h);
        }
        ok(&o, "build");
        assert!(
            leaked.is_empty(),
            "%post wrote to the host through the base image's symlinks: {leaked:?} ({who:?})"
        );
        assert!(stdout(&o).contains("planted\nplanted"), "{}", stdout(&o));
        std::fs::remove_file(c.fx.work.join("aim.sif")).unwrap();
        c.assert_clean();
    }
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
