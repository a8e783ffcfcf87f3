//! `sifr build` from OCI sources as users run it, as root and as an ordinary user: image
//! layouts and archives (`Bootstrap: oci`, `oci-archive`, `docker-archive`) become images with
//! their environment and entrypoint, and a layer past the nesting limit fails cleanly, leaving
//! nothing (issue 24, finding 3). The layouts are written at test time from the shared sandbox.

mod build_case;

use std::path::PathBuf;
use std::process::Command;

use build_case::{Case, LAYER_TAR, LAYER_TAR_GZ, blob, builders, digest, finish_layout, ok};
use sifr_testkit::{As, stderr, stdout};

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
    finish_layout(
        &layout,
        root,
        &cfg,
        &[(LAYER_TAR, d1, s1), (LAYER_TAR_GZ, d2, s2)],
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
    finish_layout(&layout, root, &cfg, &[(LAYER_TAR, dl, sl)]);
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
