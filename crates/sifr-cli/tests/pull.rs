//! `sifr pull`, `sifr build X.sif docker://...`, `Bootstrap: docker` and `sifr cache` end to end
//! against Debian's `docker-registry` on 127.0.0.1. The image is made at test time as an OCI
//! layout (busybox as its shell, three layers with a file whiteout, an opaque directory, a
//! gzip and a zstd layer, ENV/ENTRYPOINT/CMD/labels, and a multi-arch index with an arm64
//! variant) and pushed with `skopeo copy --all`. Skips, saying why, when a tool is missing
//! (`apt-get install docker-registry skopeo busybox-static openssl apache2-utils`).

mod registries;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use registries::token::SERVICE;
use registries::{
    PASSWORD, Registry, USER, push, registry_with_test_image, run_ok, setup, sifr, sifr_blob_gets,
    sifr_in, tls_htpasswd_config, token_registry,
};
use sifr_testkit::{stderr, stdout};

/// `sif list` output and the text of one `inspect` query.
fn inspect(sif: &Path, cwd: &Path, flag: &str) -> String {
    let out = run_ok(sifr_in(cwd, &cwd.join("cache"), &["inspect", flag]).arg(sif));
    stdout(&out)
}

/// The pulled tree as the SquashFS reader sees it: whiteouts applied, skeleton added.
fn check_tree(sif: &Path, dir: &Path) {
    let x = dir.join(format!("x-{}", sif.file_name().unwrap().to_string_lossy()));
    let off = {
        // The partition's offset is where the squashfs magic is.
        let bytes = std::fs::read(sif).unwrap();
        bytes.windows(4).position(|w| w == b"hsqs").unwrap()
    };
    run_ok(
        Command::new("unsquashfs")
            .args(["-no-progress", "-q", "-o"])
            .arg(off.to_string())
            .arg("-d")
            .arg(&x)
            .arg(sif),
    );
    let read = |p: &str| std::fs::read_to_string(x.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("etc/hello"), "hello v2\n", "upper layer wins");
    assert!(!x.join("etc/gone").exists(), "file whiteout applied");
    assert!(
        !x.join("etc/.wh.gone").exists(),
        "whiteout markers never shipped"
    );
    assert!(
        !x.join("opt/dir/old").exists(),
        "opaque directory hides lower content"
    );
    assert_eq!(read("opt/dir/new"), "after the opaque whiteout\n");
    assert_eq!(read("usr/share/layer3"), "from a zstd layer\n");
    assert!(read(".singularity.d/env/10-docker2singularity.sh").contains("GREETING"));
    assert!(read(".singularity.d/runscript").contains("'/bin/echo' 'ep'"));
    for d in [
        "proc",
        "sys",
        "dev",
        "tmp",
        "home",
        ".singularity.d/actions",
    ] {
        assert!(x.join(d).is_dir(), "skeleton directory {d}");
    }
    assert_eq!(
        std::fs::read_link(x.join("singularity")).unwrap(),
        PathBuf::from(".singularity.d/runscript")
    );
}

#[test]
fn pull_over_http_writes_a_sif_that_inspects_and_runs_like_a_built_one() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo", "unsquashfs"]) else {
        return;
    };
    let d = t.path();
    let reg = registry_with_test_image(d, &layout);
    let cache = d.join("cache");
    let src = format!("docker://{}/test/img:v1", reg.host());

    let out = run_ok(sifr_in(d, &cache, &["pull", "--nohttps", &src]));
    let sif = d.join("img_v1.sif");
    assert!(sif.is_file(), "default name NAME_TAG.sif: {}", stderr(&out));
    assert!(
        stderr(&out).contains("layer 3/3"),
        "progress: {}",
        stderr(&out)
    );
    check_tree(&sif, d);

    // The SIF's objects: what Apptainer's pull stores.
    let list = stdout(&run_ok(sifr_in(d, &cache, &["sif", "list"]).arg(&sif)));
    assert!(list.contains("amd64"), "the config's architecture: {list}");
    let bytes = std::fs::read(&sif).unwrap();
    for name in [
        &b"oci-config.json"[..],
        b"inspect-metadata.json",
        b"isa-facts.json",
    ] {
        assert!(
            bytes.windows(name.len()).any(|w| w == name),
            "descriptor named {}",
            String::from_utf8_lossy(name)
        );
    }
    let isa = inspect(&sif, d, "--isa");
    assert!(
        isa.contains("stored in the image"),
        "the pull records the CPU facts, read back from the written image: {isa}"
    );
    assert!(inspect(&sif, d, "--runscript").contains("'/bin/echo' 'ep'"));
    assert!(inspect(&sif, d, "--labels").contains("org.example.test"));
    assert!(inspect(&sif, d, "--environment").contains("hello-from-env"));

    // A second pull comes from the cache: no blob is fetched again.
    let before = sifr_blob_gets(&reg);
    let out = run_ok(sifr_in(d, &cache, &["pull", "--nohttps", "x.sif", &src]));
    assert!(stderr(&out).contains("in cache"), "{}", stderr(&out));
    assert_eq!(sifr_blob_gets(&reg), before, "nothing downloaded twice");

    // An existing target needs --force; the cache lists and cleans.
    let out = sifr_in(d, &cache, &["pull", "--nohttps", "x.sif", &src])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    run_ok(sifr_in(
        d,
        &cache,
        &["pull", "--force", "--nohttps", "x.sif", &src],
    ));
    let listed = stdout(&run_ok(sifr_in(d, &cache, &["cache", "list"])));
    assert!(
        listed.contains(" 4 oci blob file(s) "),
        "3 layers + config: {listed}"
    );
    run_ok(sifr_in(d, &cache, &["cache", "clean", "--force"]));
    let listed = stdout(&run_ok(sifr_in(d, &cache, &["cache", "list"])));
    assert!(listed.contains(" 0 oci blob file(s) "), "{listed}");

    // --arch picks the other index entry and records its architecture.
    run_ok(sifr_in(
        d,
        &cache,
        &["pull", "--nohttps", "--arch", "arm64", "arm.sif", &src],
    ));
    let list = stdout(&run_ok(
        sifr_in(d, &cache, &["sif", "list"]).arg(d.join("arm.sif")),
    ));
    assert!(list.contains("arm64"), "{list}");

    // `build X.sif docker://` is the same streamed pull.
    run_ok(sifr_in(
        d,
        &cache,
        &["build", "--nohttps", "built.sif", &src],
    ));
    check_tree(&d.join("built.sif"), d);

    // The same image from the local layout (no registry).
    run_ok(sifr_in(
        d,
        &cache,
        &["pull", "local.sif", &format!("oci:{}:v1", layout.display())],
    ));
    check_tree(&d.join("local.sif"), d);

    // And it runs: ENTRYPOINT then CMD, arguments replacing CMD, ENV in the environment.
    if cfg!(target_arch = "x86_64") {
        for who in sifr_testkit::identities() {
            let run = |args: &[&str]| {
                let mut c = sifr_testkit::command_as(who, &sifr());
                c.args(args).current_dir(d).env("HOME", d);
                c.output().unwrap()
            };
            let out = run(&["run", "img_v1.sif"]);
            assert_eq!(stdout(&out), "ep from-cmd\n", "{who:?}: {}", stderr(&out));
            let out = run(&["run", "img_v1.sif", "given"]);
            assert_eq!(stdout(&out), "ep given\n", "{who:?}: {}", stderr(&out));
            let out = run(&["exec", "img_v1.sif", "sh", "-c", "echo $GREETING"]);
            assert_eq!(
                stdout(&out),
                "hello-from-env\n",
                "{who:?}: {}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn sixteen_concurrent_pulls_share_one_cache_and_fetch_each_blob_once() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo"]) else {
        return;
    };
    let d = t.path();
    let reg = registry_with_test_image(d, &layout);
    let cache = d.join("cache");
    let src = format!("docker://{}/test/img:v1", reg.host());
    let children: Vec<_> = (0..16)
        .map(|i| {
            sifr_in(
                d,
                &cache,
                &["pull", "--nohttps", &format!("p{i}.sif"), &src],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "pull {i}: {}", stderr(&out));
        assert!(d.join(format!("p{i}.sif")).is_file());
    }
    let gets = sifr_blob_gets(&reg);
    // amd64: config + three layers.
    assert_eq!(gets.len(), 4, "{gets:?}");
    assert!(
        gets.values().all(|&n| n == 1),
        "each blob fetched once: {gets:?}"
    );
    let a = std::fs::read(d.join("p0.sif")).unwrap();
    assert!(a.len() > 4096);
}

#[test]
fn pull_over_tls_with_basic_auth_takes_credentials_from_env_or_docker_login() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo", "openssl", "htpasswd"]) else {
        return;
    };
    let d = t.path();
    let extra = tls_htpasswd_config(d);
    let reg = Registry::start(d, &extra);
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
    let cache = d.join("cache");
    let src = format!("docker://{}/test/img:v1", reg.host());
    let ca = d.join("ca.crt");

    // No credentials: refused, with a hint naming the ways to give them.
    let out = sifr_in(d, &cache, &["pull", "a.sif", &src])
        .env("SSL_CERT_FILE", &ca)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("requires authentication"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));

    // Untrusted CA: a TLS failure.
    let out = sifr_in(d, &cache, &["pull", "a.sif", &src])
        .env("APPTAINER_DOCKER_USERNAME", USER)
        .env("APPTAINER_DOCKER_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown CA is not trusted");

    run_ok(
        sifr_in(d, &cache, &["pull", "a.sif", &src])
            .env("SSL_CERT_FILE", &ca)
            .env("APPTAINER_DOCKER_USERNAME", USER)
            .env("APPTAINER_DOCKER_PASSWORD", PASSWORD),
    );
    check_tree(&d.join("a.sif"), d);

    // --docker-login reads them from stdin; a fresh cache proves the blobs were fetched.
    let mut c = sifr_in(
        d,
        &d.join("cache2"),
        &["pull", "--docker-login", "b.sif", &src],
    )
    .env("SSL_CERT_FILE", &ca)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::io::Write::write_all(
        c.stdin.as_mut().unwrap(),
        format!("{USER}\n{PASSWORD}\n").as_bytes(),
    )
    .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Enter Docker Username"));
}

#[test]
fn bootstrap_docker_pulls_through_the_cache_and_runs_post_in_the_merged_tree() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo", "unsquashfs"]) else {
        return;
    };
    if !sifr_testkit::is_root() && sifr_testkit::userns_available().is_err() {
        sifr_testkit::skip("%post needs root or user namespaces");
        return;
    }
    let d = t.path();
    let reg = registry_with_test_image(d, &layout);
    let cache = d.join("cache");
    std::fs::write(
        d.join("app.def"),
        format!(
            "Bootstrap: docker\nRegistry: {}\nNamespace: test\nFrom: img:v1\n\n%post\n    cat /etc/hello > /etc/post\n",
            reg.host()
        ),
    )
    .unwrap();
    let out =
        run_ok(sifr_in(d, &cache, &["build", "--nohttps", "app.sif", "app.def"]).env("TMPDIR", d));
    assert!(
        stderr(&out).contains("bootstrap: docker"),
        "{}",
        stderr(&out)
    );
    check_tree(&d.join("app.sif"), d);
    let x = d.join("x-app.sif");
    assert_eq!(
        std::fs::read_to_string(x.join("etc/post")).unwrap(),
        "hello v2\n",
        "%post saw the merged layers"
    );
    assert!(
        inspect(&d.join("app.sif"), d, "--environment").contains("hello-from-env"),
        "the image's ENV is kept"
    );
    // The layers came through the cache.
    let listed = stdout(&run_ok(sifr_in(d, &cache, &["cache", "list"])));
    assert!(listed.contains(" 4 oci blob file(s) "), "{listed}");
}

#[test]
fn token_auth_pull_gets_a_token_per_repository_scope_and_names_refused_credentials() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo", "openssl", "unsquashfs"]) else {
        return;
    };
    let d = t.path();
    let (issuer, reg) = token_registry(d, &layout);
    let cache = d.join("cache");
    let src = format!("docker://{}/test/img:v1", reg.host());
    let with_creds = |mut c: Command, password: &str| {
        c.env("APPTAINER_DOCKER_USERNAME", USER)
            .env("APPTAINER_DOCKER_PASSWORD", password);
        c
    };

    // A wrong password: the issuer refuses it and the error says who refused whom.
    let out = with_creds(
        sifr_in(d, &cache, &["pull", "--nohttps", "bad.sif", &src]),
        "wrong",
    )
    .output()
    .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "`{}` refused the credentials of user `{USER}` (from APPTAINER_DOCKER_USERNAME",
            reg.host()
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: check APPTAINER_DOCKER_USERNAME"),
        "{err}"
    );
    assert!(!d.join("bad.sif").exists());
    let seen = issuer.requests();
    assert!(
        seen.iter().any(|r| r.by_sifr() && r.refused),
        "the issuer saw the wrong password: {seen:?}"
    );

    // The right one: one token for the pull scope, reused for the manifest and every blob.
    issuer.forget();
    run_ok(with_creds(
        sifr_in(d, &cache, &["pull", "--nohttps", "good.sif", &src]),
        PASSWORD,
    ));
    check_tree(&d.join("good.sif"), d);
    assert_eq!(issuer.sifr_scopes(), ["repository:test/img:pull"]);
    let r = &issuer.requests()[0];
    assert_eq!(r.user.as_deref(), Some(USER), "{r:?}");
    assert_eq!(r.service.as_deref(), Some(SERVICE), "{r:?}");

    // Two images in one run: each stage of a build pulls through the same client, and the
    // second repository gets a token of its own rather than the first one's.
    if !sifr_testkit::is_root() && sifr_testkit::userns_available().is_err() {
        sifr_testkit::skip("the two-stage build: it needs root or user namespaces");
        return;
    }
    issuer.forget();
    let stage = |repo: &str, name: &str| {
        format!(
            "Bootstrap: docker\nRegistry: {}\nNamespace: test\nFrom: {repo}:v1\nStage: {name}\n\n",
            reg.host()
        )
    };
    std::fs::write(
        d.join("two.def"),
        format!("{}{}", stage("img", "first"), stage("other", "second")),
    )
    .unwrap();
    run_ok(
        with_creds(
            sifr_in(d, &cache, &["build", "--nohttps", "two.sif", "two.def"]),
            PASSWORD,
        )
        .env("TMPDIR", d),
    );
    let mut scopes = issuer.sifr_scopes();
    scopes.sort();
    assert_eq!(
        scopes,
        ["repository:test/img:pull", "repository:test/other:pull"]
    );
}
