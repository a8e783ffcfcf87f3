//! `pull` and `build` flags that neither mount nor start a container: the output name
//! (`--name`, `--dir`, the default `NAME_TAG.sif`), `--sandbox` extraction, `--disable-cache`,
//! `--arch`/`--arch-variant` against the local `docker-registry`, their `APPTAINER_*` twins, and
//! the errors Apptainer gives for what cannot work (`--remote`, `--update` without a sandbox,
//! `--section all,post`, encryption, unsupported transports). Registry tests skip, saying why,
//! when `docker-registry`, `skopeo` or busybox-static are missing.

mod registries;

use std::path::Path;
use std::process::Command;

use registries::{
    PASSWORD, Registry, USER, push, registry_with_test_image, run_ok, setup, sifr, sifr_in,
    tls_htpasswd_config,
};
use sifr_testkit::stderr;

/// sifr in `d` with a private cache and none of the caller's settings; expected to fail.
fn fails(d: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = sifr_in(d, &d.join("cache"), args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(i32::from(sifr_cli::exit::FAILURE)),
        "{args:?}: {}",
        stderr(&out)
    );
    stderr(&out)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sifr-pbflags-")
        .tempdir()
        .unwrap()
}

#[test]
fn build_refuses_what_apptainer_refuses_before_any_work() {
    let t = tempdir();
    let d = t.path();
    std::fs::write(d.join("a.def"), "Bootstrap: scratch\n").unwrap();
    // cmd/internal/cli/build.go preRun.
    let e = fails(d, &["build", "--remote", "x.sif", "a.def"], &[]);
    assert!(
        e.contains("--remote is no longer supported, try building locally without it"),
        "{e}"
    );
    // checkBuildTarget (e2e/build: testBuildUpdate's expectations).
    let e = fails(d, &["build", "--update", "x.sif", "a.def"], &[]);
    assert!(e.contains("--sandbox flag is missing"), "{e}");
    let e = fails(d, &["build", "-u", "-s", "nosuch", "a.def"], &[]);
    assert!(
        e.contains("could not update sandbox") && e.contains("doesn't exist"),
        "{e}"
    );
    std::fs::write(d.join("file"), "").unwrap();
    let e = fails(d, &["build", "-u", "-s", "file", "a.def"], &[]);
    assert!(e.contains("is not a directory"), "{e}");
    // The twin does the same as the flag.
    let e = fails(
        d,
        &["build", "x.sif", "a.def"],
        &[("APPTAINER_UPDATE", "1")],
    );
    assert!(e.contains("--sandbox flag is missing"), "{e}");
    // checkSections.
    let e = fails(
        d,
        &["build", "--section", "all,post", "x.sif", "a.def"],
        &[],
    );
    assert!(e.contains("cannot have all and any other option"), "{e}");
    let e = fails(
        d,
        &["build", "x.sif", "a.def"],
        &[("SINGULARITY_SECTION", "none,post")],
    );
    assert!(e.contains("cannot have none and any other option"), "{e}");
    // Encryption: the key is checked as Apptainer checks it, then refused.
    let e = fails(
        d,
        &["build", "--pem-path", "/nonexistent.pem", "x.sif", "a.def"],
        &[],
    );
    assert!(
        e.contains("Specified PEM file /nonexistent.pem: does not exist."),
        "{e}"
    );
    let e = fails(d, &["build", "--passphrase", "x.sif", "a.def"], &[]);
    assert!(e.contains("does not support container encryption"), "{e}");
    assert!(
        !d.join("x.sif").exists(),
        "no plain image in place of an encrypted one"
    );
    // --mksquashfs-args with a compressor sifr does not write.
    let e = fails(
        d,
        &["build", "--mksquashfs-args", "-comp lzo", "x.sif", "a.def"],
        &[],
    );
    assert!(e.contains("lzo"), "{e}");
    // --json with a file that is no JSON.
    let e = fails(d, &["build", "--json", "x.sif", "a.def"], &[]);
    assert!(e.contains("JSON definition"), "{e}");
}

#[test]
fn pull_refuses_bad_sources_arches_and_existing_targets_before_any_download() {
    let t = tempdir();
    let d = t.path();
    // No library named and none configured: Apptainer 1.5.3's own error, before any request.
    let e = fails(d, &["pull", "library://alpine:3"], &[]);
    assert!(
        e.contains("no default remote with library client in use"),
        "{e}"
    );
    let e = fails(d, &["pull", "x.sif", "ipfs://h/x"], &[]);
    assert!(e.contains("unsupported transport type: ipfs"), "{e}");
    // The host cannot be reached (port 9 on 127.0.0.1 is closed): these fail before trying.
    let e = fails(
        d,
        &["pull", "--arch", "mips", "docker://127.0.0.1:9/a"],
        &[],
    );
    assert!(e.contains("arch: mips is not valid"), "{e}");
    let e = fails(
        d,
        &["pull", "docker://127.0.0.1:9/a"],
        &[
            ("APPTAINER_PULL_ARCH_VARIANT", "7"),
            ("APPTAINER_PULL_ARCH", "arm64"),
        ],
    );
    assert!(e.contains("arch: arm64v7 is not valid"), "{e}");
    // --name, its twin and --dir name the file checked for existence.
    std::fs::write(d.join("n.sif"), "").unwrap();
    let e = fails(
        d,
        &["pull", "--name", "n.sif", "docker://127.0.0.1:9/a"],
        &[],
    );
    assert!(e.contains("`n.sif` already exists"), "{e}");
    let e = fails(
        d,
        &["pull", "-U", "docker://127.0.0.1:9/a"],
        &[("APPTAINER_PULL_NAME", "n.sif")],
    );
    assert!(e.contains("`n.sif` already exists"), "{e}");
    assert!(
        e.contains("Flag --allow-unsigned has been deprecated"),
        "{e}"
    );
    std::fs::create_dir(d.join("out")).unwrap();
    std::fs::write(d.join("out/a_latest.sif"), "").unwrap();
    let e = fails(d, &["pull", "--dir", "out", "docker://127.0.0.1:9/a"], &[]);
    assert!(e.contains("`out/a_latest.sif` already exists"), "{e}");
    let e = fails(
        d,
        &["pull", "docker://127.0.0.1:9/a"],
        &[("SINGULARITY_PULLFOLDER", "out")],
    );
    assert!(e.contains("`out/a_latest.sif` already exists"), "{e}");
}

/// e2e/imgbuild buildDataPartition: `build --data` of a SquashFS image gives a SIF whose
/// partition is a data partition.
#[test]
fn build_data_wraps_a_squashfs_image_as_a_data_partition() {
    if let Some(m) = sifr_testkit::missing(&["mksquashfs"]) {
        sifr_testkit::skip(format_args!(
            "{m} not installed (apt-get install squashfs-tools)"
        ));
        return;
    }
    let t = tempdir();
    let d = t.path();
    std::fs::create_dir(d.join("root")).unwrap();
    std::fs::write(d.join("root/f"), "data\n").unwrap();
    run_ok(
        Command::new("mksquashfs")
            .arg(d.join("root"))
            .arg(d.join("d.sqfs"))
            .args(["-quiet", "-noappend"]),
    );
    run_ok(sifr_in(
        d,
        &d.join("cache"),
        &["build", "--data", "data.sif", "d.sqfs"],
    ));
    let img = sifr_sif::Image::open(d.join("data.sif")).unwrap();
    assert!(
        img.descriptors()
            .any(|desc| desc.is_partition_of(sifr_sif::PartType::Data)),
        "no data partition"
    );
    let e = fails(d, &["build", "--data", "data.sif", "d.sqfs"], &[]);
    assert!(e.contains("already exists"), "{e}");
    let e = fails(d, &["build", "--data", "x.sif", "root"], &[]);
    assert!(e.contains("not a SquashFS image"), "{e}");
}

/// e2e/pull's name and directory expectations (testPullCmd: `--dir`, `--name`, the default
/// name), `--sandbox`, `--disable-cache` and `--arch-variant`, against a local registry.
#[test]
fn pull_names_sandboxes_and_caches_as_apptainer_does() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo"]) else {
        return;
    };
    let d = t.path();
    let reg = registry_with_test_image(d, &layout);
    let src = format!("docker://{}/test/img:v1", reg.host());
    let cache = d.join("cache");
    let tmp = d.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let pull = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = sifr_in(d, &cache, &["pull"]);
        c.args(args).arg(&src).env("TMPDIR", &tmp);
        for (k, v) in env {
            c.env(k, v);
        }
        run_ok(c)
    };
    let is_sif = |p: &Path| {
        let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        &b[32..41] == b"SIF_MAGIC"
    };

    pull(&["--no-https", "--name", "named.sif"], &[]);
    assert!(is_sif(&d.join("named.sif")));
    pull(
        &[],
        &[
            ("APPTAINER_NOHTTPS", "1"),
            ("APPTAINER_PULL_NAME", "env.sif"),
        ],
    );
    assert!(is_sif(&d.join("env.sif")));
    // As in e2e/pull, the directory exists (Apptainer does not create it either).
    std::fs::create_dir(d.join("out")).unwrap();
    std::fs::create_dir(d.join("out2")).unwrap();
    pull(&["--nohttps", "--dir", "out"], &[]);
    assert!(
        is_sif(&d.join("out/img_v1.sif")),
        "default name inside --dir"
    );
    pull(&["--nohttps"], &[("APPTAINER_PULLDIR", "out2")]);
    assert!(is_sif(&d.join("out2/img_v1.sif")));

    // --sandbox: a directory holding the merged layers and the metadata tree.
    pull(&["--nohttps", "--sandbox", "--name", "sb"], &[]);
    assert_eq!(
        std::fs::read_to_string(d.join("sb/etc/hello")).unwrap(),
        "hello v2\n"
    );
    assert!(d.join("sb/.singularity.d/runscript").is_file());
    assert!(!d.join("sb/etc/gone").exists());
    // An existing sandbox needs --force.
    let out = sifr_in(
        d,
        &cache,
        &["pull", "--nohttps", "--sandbox", "--name", "sb", &src],
    )
    .env("TMPDIR", &tmp)
    .output()
    .unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    pull(&["--nohttps", "--sandbox", "--force", "--name", "sb"], &[]);
    assert!(d.join("sb/etc/hello").is_file());

    // --disable-cache: nothing lands in the cache, nothing is left in the tmpdir.
    let fresh = d.join("fresh-cache");
    let mut c = sifr_in(
        d,
        &fresh,
        &["pull", "--nohttps", "--disable-cache", "nc.sif", &src],
    );
    run_ok(c.env("TMPDIR", &tmp));
    assert!(is_sif(&d.join("nc.sif")));
    let blobs = walk_files(&fresh);
    assert!(blobs.is_empty(), "cache used: {blobs:?}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in tmpdir: {left:?}");

    // --arch with --arch-variant picks the arm64 entry.
    pull(
        &[
            "--nohttps",
            "--arch",
            "arm64",
            "--arch-variant",
            "v8",
            "--name",
            "arm.sif",
        ],
        &[],
    );
    let list = Command::new(sifr())
        .args(["sif", "list"])
        .arg(d.join("arm.sif"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("arm64"));
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `--docker-username`/`--docker-password`, their bare `DOCKER_*` variables (Apptainer's
/// `WithoutPrefix`), and `--docker-login` asking only for the password once a username is given
/// (makeOCICredentials in cmd/internal/cli/build.go).
#[test]
fn docker_credentials_come_from_the_hidden_flags_and_bare_variables() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo", "openssl", "htpasswd"]) else {
        return;
    };
    let d = t.path();
    let reg = Registry::start(d, &tls_htpasswd_config(d));
    std::fs::create_dir(d.join("certs")).unwrap();
    std::fs::copy(d.join("ca.crt"), d.join("certs/ca.crt")).unwrap();
    let certs = d.join("certs").display().to_string();
    push(
        &layout,
        &format!("{}/test/img:v1", reg.host()),
        &[
            "--dest-cert-dir",
            &certs,
            "--dest-creds",
            &format!("{USER}:{PASSWORD}"),
        ],
    );
    let src = format!("docker://{}/test/img:v1", reg.host());
    let ca = d.join("ca.crt");
    let cache = d.join("cache");
    run_ok(
        sifr_in(
            d,
            &cache,
            &[
                "pull",
                "--docker-username",
                USER,
                "--docker-password",
                PASSWORD,
                "a.sif",
                &src,
            ],
        )
        .env("SSL_CERT_FILE", &ca),
    );
    run_ok(
        sifr_in(d, &d.join("cache2"), &["pull", "b.sif", &src])
            .env("SSL_CERT_FILE", &ca)
            .env("DOCKER_USERNAME", USER)
            .env("DOCKER_PASSWORD", PASSWORD),
    );
    let e = fails(
        d,
        &["pull", "--docker-password", "wrong", "c.sif", &src],
        &[
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
            ("DOCKER_USERNAME", USER),
        ],
    );
    assert!(e.contains("refused the credentials"), "{e}");
    let mut c = sifr_in(
        d,
        &d.join("cache3"),
        &[
            "pull",
            "--docker-login",
            "--docker-username",
            USER,
            "e.sif",
            &src,
        ],
    )
    .env("SSL_CERT_FILE", &ca)
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    std::io::Write::write_all(
        c.stdin.as_mut().unwrap(),
        format!("{PASSWORD}\n").as_bytes(),
    )
    .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("Enter Docker Username"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Enter Docker Password"),
        "{}",
        stderr(&out)
    );
}
