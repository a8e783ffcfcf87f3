//! `sifr push IMAGE.sif oras://...` and `sifr pull oras://...` against Debian's
//! `docker-registry` on 127.0.0.1: plain HTTP, TLS with a throwaway CA and htpasswd (after
//! `registry login`), and token auth. The SIF is made at test time (busybox in a SquashFS
//! partition); a second copy is pushed "in Apptainer's layout" by raw HTTP requests built from
//! the published media types, so the pull is checked against what Apptainer writes, not only
//! against sifr's own push. Expectations come from Apptainer's `e2e/push/push.go` and
//! `e2e/pull/pull.go` (named at each check). Skips, saying why, when a tool is missing
//! (`apt-get install docker-registry skopeo busybox-static openssl apache2-utils
//! squashfs-tools`); under `SIFR_TEST_STRICT=1` (CI) a missing tool fails instead.

mod images;
mod registries;

use std::collections::HashMap;
use std::io::{BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use registries::{PASSWORD, Registry, USER, run_ok, sifr_in, tls_htpasswd_config};
use sifr_oci::Digest;
use sifr_testkit::{stderr, stdout};

const SIF_LAYER: &str = "application/vnd.sylabs.sif.layer.v1.sif";
const SIF_LAYER_PROTO: &str = "appliciation/vnd.sylabs.sif.layer.tar";
const SIF_CONFIG: &str = "application/vnd.sylabs.sif.config.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const EMPTY_CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// A temporary directory when every tool is there; `None` (skipped, saying why) otherwise,
/// except under `SIFR_TEST_STRICT=1` (CI), where a missing tool is a failure.
fn setup(tools: &[&str]) -> Option<tempfile::TempDir> {
    if !registries::tools_present(tools) {
        return None;
    }
    let t = tempfile::Builder::new()
        .prefix("sifr-oras-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        t.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    Some(t)
}

/// `d/image.sif`: busybox (as `/bin/sh`) in a SquashFS primary partition for the host's
/// architecture, and a definition file.
fn make_sif(d: &Path) -> PathBuf {
    let root = d.join("tree");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for app in ["sh", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(app)).unwrap();
    }
    let sqfs = d.join("image.sqfs");
    sifr_testkit::mksquashfs(&root, &sqfs, &[]);
    let sif = d.join("image.sif");
    images::write_sif(&sif, Some((&sqfs, sifr_sif::Arch::host())));
    sif
}

/// One plain-HTTP request to `host`; status, headers (lower-case names) and body.
fn http(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut s = TcpStream::connect(host).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    // A status line reads as a request line: "HTTP/1.1" then the status.
    let head = sifr_testkit::http::read_head(&mut r).unwrap();
    let mut out = Vec::new();
    if method != "HEAD" {
        r.read_to_end(&mut out).unwrap();
    }
    (head.target.parse().unwrap(), head.headers, out)
}

/// Upload `bytes` as a blob of `repo` (POST, then one PUT with the digest); its digest.
fn upload(host: &str, repo: &str, bytes: &[u8]) -> Digest {
    let (status, h, _) = http(
        host,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(status, 202, "upload start");
    let loc = &h["location"];
    let path = loc.strip_prefix(&format!("http://{host}")).unwrap_or(loc);
    let d = Digest::of(bytes);
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, _, body) = http(
        host,
        "PUT",
        &format!("{path}{sep}digest={d}"),
        &[("Content-Type", "application/octet-stream")],
        bytes,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    d
}

/// Push `file` to `repo:tag` as Apptainer does (its `oras.NewImageFromSIF` and
/// `e2e/pull/pull.go`'s `orasPushNoCheck`), with the layer media type given, by hand.
fn push_like_apptainer(host: &str, repo: &str, tag: &str, file: &Path, layer_type: &str) {
    let bytes = std::fs::read(file).unwrap();
    let layer = upload(host, repo, &bytes);
    assert_eq!(upload(host, repo, b"{}").to_string(), EMPTY_CONFIG_DIGEST);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": SIF_CONFIG, "digest": EMPTY_CONFIG_DIGEST, "size": 2},
        "layers": [{
            "mediaType": layer_type,
            "digest": layer.to_string(),
            "size": bytes.len(),
            "annotations": {
                "org.opencontainers.image.title": file.file_name().unwrap().to_string_lossy()
            }
        }]
    });
    let (status, _, body) = http(
        host,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", OCI_MANIFEST)],
        manifest.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
}

/// The manifest of `repo:tag`, as JSON.
fn manifest(host: &str, repo: &str, tag: &str) -> serde_json::Value {
    let (status, _, body) = http(
        host,
        "GET",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Accept", OCI_MANIFEST)],
        b"",
    );
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

/// Where `docker-registry` serving from `dir/data` keeps blob `digest`.
fn blob_file(dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    dir.join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// Requests sifr made to `reg` (its access log's lines with sifr's user agent).
fn sifr_requests(reg: &Registry) -> Vec<String> {
    std::fs::read_to_string(&reg.log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("sifr/") && l.contains("\"") && l.contains(" /v2/"))
        .map(str::to_string)
        .collect()
}

fn fails(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} succeeded: {}", stderr(&out));
    assert_eq!(
        out.status.code(),
        Some(i32::from(sifr_cli::exit::FAILURE)),
        "{}",
        stderr(&out)
    );
    out
}

fn same_bytes(a: &Path, b: &Path) {
    assert!(
        std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

/// The names in `dir` other than those listed: what a failed pull left behind.
fn leftovers(dir: &Path, known: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !known.contains(&n.as_str()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_pushed_sif_pulls_back_byte_identical_over_plain_http() {
    let Some(t) = setup(&["docker-registry", "mksquashfs"]) else {
        return;
    };
    let d = t.path();
    let sif = make_sif(d);
    let reg = Registry::start(d, "");
    let host = reg.host();
    let cache = d.join("cache");
    let uri = format!("oras://{host}/test/sif:v1");

    // e2e/push "standard SIF push with --no-https/--nohttps".
    let out = run_ok(
        sifr_in(d, &cache, &["push", "--no-https"])
            .arg(&sif)
            .arg(&uri),
    );
    assert!(stderr(&out).contains("Upload complete"), "{}", stderr(&out));
    // The manifest is Apptainer's: OCI manifest, empty SIF config, one titled SIF layer.
    let m = manifest(&host, "test/sif", "v1");
    assert_eq!(m["mediaType"], OCI_MANIFEST);
    assert_eq!(m["config"]["mediaType"], SIF_CONFIG);
    assert_eq!(m["config"]["digest"], EMPTY_CONFIG_DIGEST);
    assert_eq!(m["layers"].as_array().unwrap().len(), 1);
    let layer = &m["layers"][0];
    assert_eq!(layer["mediaType"], SIF_LAYER);
    assert_eq!(
        layer["digest"],
        Digest::of(&std::fs::read(&sif).unwrap()).to_string()
    );
    assert_eq!(
        layer["annotations"]["org.opencontainers.image.title"],
        "image.sif"
    );
    let digest = layer["digest"].as_str().unwrap().to_string();

    // e2e/pull "oras pull of SIF file with --no-https flag should succeed": NAME_TAG.sif.
    let out = run_ok(sifr_in(d, &cache, &["pull", "--no-https", &uri]));
    same_bytes(&sif, &d.join("sif_v1.sif"));
    assert!(
        stderr(&out).contains("Downloading oras image"),
        "{}",
        stderr(&out)
    );

    // APPTAINER_NOHTTPS for both commands; a second push of the same file sends no blob.
    let uploads = |reg: &Registry| {
        sifr_requests(reg)
            .iter()
            .filter(|l| l.contains("\"PUT ") && l.contains("/blobs/uploads/"))
            .count()
    };
    let before = uploads(&reg);
    run_ok(
        sifr_in(d, &cache, &["push"])
            .arg(&sif)
            .arg(format!("oras://{host}/test/sif:v2"))
            .env("APPTAINER_NOHTTPS", "1"),
    );
    assert_eq!(
        uploads(&reg),
        before,
        "blobs already there are not sent again"
    );
    std::fs::create_dir(d.join("out")).unwrap();
    let out = run_ok(
        sifr_in(
            d,
            &cache,
            &[
                "pull",
                "--dir",
                "out",
                "--name",
                "b.sif",
                &format!("oras://{host}/test/sif:v2"),
            ],
        )
        .env("APPTAINER_NOHTTPS", "1"),
    );
    same_bytes(&sif, &d.join("out/b.sif"));
    assert!(
        stderr(&out).contains("Using cached SIF image"),
        "{}",
        stderr(&out)
    );

    // An existing file needs --force, before anything is fetched.
    let out = fails(&mut sifr_in(d, &cache, &["pull", "--no-https", &uri]));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    std::fs::write(d.join("sif_v1.sif"), "old").unwrap();
    run_ok(sifr_in(d, &cache, &["pull", "--no-https", "--force", &uri]));
    same_bytes(&sif, &d.join("sif_v1.sif"));

    // --disable-cache: straight from the registry, and the cache is not written.
    let gets = |reg: &Registry| registries::sifr_blob_gets(reg).get(&digest).copied();
    let before = gets(&reg);
    let fresh = d.join("fresh-cache");
    run_ok(sifr_in(
        d,
        &fresh,
        &["pull", "--no-https", "--disable-cache", "c.sif", &uri],
    ));
    same_bytes(&sif, &d.join("c.sif"));
    assert_eq!(
        gets(&reg),
        before.map(|n| n + 1).or(Some(1)),
        "fetched again"
    );
    assert!(!fresh.exists(), "the cache is neither read nor written");
    assert_eq!(
        leftovers(
            d,
            &[
                "image.sif",
                "image.sqfs",
                "tree",
                "cache",
                "data",
                "config.yml",
                "registry.log",
                "sif_v1.sif",
                "out",
                "c.sif",
            ]
        ),
        Vec::<String>::new(),
        "no staging file left"
    );
}

#[test]
fn push_and_pull_over_tls_with_basic_auth_after_registry_login() {
    let Some(t) = setup(&["docker-registry", "mksquashfs", "openssl", "htpasswd"]) else {
        return;
    };
    let d = t.path();
    let sif = make_sif(d);
    let extra = tls_htpasswd_config(d);
    let reg = Registry::start(d, &extra);
    let host = reg.host();
    let cache = d.join("cache");
    let ca = d.join("ca.crt");
    let uri = format!("oras://{host}/test/sif:tls");
    let tls = |mut c: Command| {
        c.env("SSL_CERT_FILE", &ca);
        c
    };

    // No credentials: refused, with the hint naming the ways to give them; nothing stored.
    let out = fails(tls(sifr_in(d, &cache, &["push"])).arg(&sif).arg(&uri));
    assert!(
        stderr(&out).contains("requires authentication"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: log in"), "{}", stderr(&out));

    // `registry login oras://HOST` stores the login that push and pull then use.
    let mut login = tls(sifr_in(
        d,
        &cache,
        &[
            "registry",
            "login",
            "-u",
            USER,
            "--password-stdin",
            &format!("oras://{host}"),
        ],
    ));
    let mut child = login
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    run_ok(tls(sifr_in(d, &cache, &["push"])).arg(&sif).arg(&uri));
    run_ok(tls(sifr_in(d, &cache, &["pull", "a.sif", &uri])));
    same_bytes(&sif, &d.join("a.sif"));

    // After logout, the environment's credentials (and the flags) do instead.
    run_ok(sifr_in(
        d,
        &cache,
        &["registry", "logout", &format!("oras://{host}")],
    ));
    fails(&mut tls(sifr_in(
        d,
        &d.join("c2"),
        &["pull", "b.sif", &uri],
    )));
    run_ok(
        tls(sifr_in(d, &d.join("c2"), &["pull", "b.sif", &uri]))
            .env("APPTAINER_DOCKER_USERNAME", USER)
            .env("APPTAINER_DOCKER_PASSWORD", PASSWORD),
    );
    same_bytes(&sif, &d.join("b.sif"));
    run_ok(
        tls(sifr_in(
            d,
            &cache,
            &[
                "push",
                "--docker-username",
                USER,
                "--docker-password",
                PASSWORD,
            ],
        ))
        .arg(&sif)
        .arg(format!("oras://{host}/test/sif:flags")),
    );

    // An untrusted CA is a TLS failure with the hint for it.
    let out = fails(
        sifr_in(d, &d.join("c3"), &["pull", "c.sif", &uri])
            .env("APPTAINER_DOCKER_USERNAME", USER)
            .env("APPTAINER_DOCKER_PASSWORD", PASSWORD),
    );
    assert!(stderr(&out).contains("SSL_CERT_FILE"), "{}", stderr(&out));
    assert!(!d.join("c.sif").exists());
}

#[test]
fn token_auth_push_asks_for_pull_and_push_of_its_repository() {
    let Some(t) = setup(&["docker-registry", "mksquashfs", "openssl"]) else {
        return;
    };
    let d = t.path();
    let sif = make_sif(d);
    let issuer = registries::token::Issuer::start(d, &[(USER, PASSWORD)]);
    let reg = Registry::start(d, &issuer.registry_config());
    let cache = d.join("cache");
    let uri = format!("oras://{}/test/sif:tok", reg.host());
    let creds = |mut c: Command| {
        c.env("APPTAINER_DOCKER_USERNAME", USER)
            .env("APPTAINER_DOCKER_PASSWORD", PASSWORD);
        c
    };
    run_ok(
        creds(sifr_in(d, &cache, &["push", "--no-https"]))
            .arg(&sif)
            .arg(&uri),
    );
    let scopes = issuer.sifr_scopes();
    assert!(!scopes.is_empty());
    assert!(
        scopes.iter().all(|s| s == "repository:test/sif:pull,push"),
        "one scope, with push: {scopes:?}"
    );
    issuer.forget();
    run_ok(creds(sifr_in(
        d,
        &cache,
        &["pull", "--no-https", "p.sif", &uri],
    )));
    same_bytes(&sif, &d.join("p.sif"));
    assert_eq!(issuer.sifr_scopes(), ["repository:test/sif:pull"]);
}

#[test]
fn a_sif_pushed_in_apptainers_layout_pulls_inspects_and_runs() {
    let Some(t) = setup(&["docker-registry", "mksquashfs"]) else {
        return;
    };
    let d = t.path();
    let sif = make_sif(d);
    let reg = Registry::start(d, "");
    let host = reg.host();
    let cache = d.join("cache");
    // e2e/pull "oras transport for SIF from registry" and its "(SifLayerMediaTypeProto)" case.
    push_like_apptainer(&host, "apptainer/sif", "latest", &sif, SIF_LAYER);
    push_like_apptainer(&host, "apptainer/proto", "latest", &sif, SIF_LAYER_PROTO);
    for repo in ["sif", "proto"] {
        let name = format!("{repo}.sif");
        run_ok(sifr_in(
            d,
            &cache,
            &[
                "pull",
                "--no-https",
                &name,
                &format!("oras://{host}/apptainer/{repo}"),
            ],
        ));
        same_bytes(&sif, &d.join(&name));
    }
    let out = run_ok(sifr_in(d, &cache, &["inspect", "--deffile", "sif.sif"]));
    assert!(
        stdout(&out).contains("Bootstrap: scratch"),
        "{}",
        stdout(&out)
    );

    // --sandbox extracts it (e2e/pull "oras pulls as sandbox").
    run_ok(sifr_in(
        d,
        &cache,
        &[
            "pull",
            "--no-https",
            "--sandbox",
            "box",
            &format!("oras://{host}/apptainer/sif"),
        ],
    ));
    assert!(d.join("box/bin/busybox").is_file());

    // And it runs (as root only: this test binary is in the host-state group for it).
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("running the pulled SIF needs root (loop device)");
    } else if !cfg!(target_arch = "x86_64") {
        // As written, the run is checked on x86-64 hosts only; no package changes the host's
        // architecture.
        sifr_testkit::not_here("running the pulled SIF is checked on x86-64 hosts only");
    } else {
        let out = run_ok(sifr_in(
            d,
            &cache,
            &["exec", "sif.sif", "/bin/sh", "-c", "echo from-oras"],
        ));
        assert_eq!(stdout(&out), "from-oras\n", "{}", stderr(&out));
    }
}

#[test]
fn errors_name_the_problem_and_leave_nothing_behind() {
    let Some(t) = setup(&["docker-registry", "mksquashfs", "skopeo"]) else {
        return;
    };
    let d = t.path();
    let sif = make_sif(d);
    let layout = registries::make_image(d);
    let reg = Registry::start(d, "");
    let host = reg.host();
    let cache = d.join("cache");
    registries::push(
        &layout,
        &format!("{host}/test/img:v1"),
        &["--dest-tls-verify=false"],
    );
    let known = [
        "image.sif",
        "image.sqfs",
        "tree",
        "cache",
        "data",
        "config.yml",
        "registry.log",
        "layout",
        "trees",
        "notsif",
    ];

    // A container image through oras://: named, with the docker:// hint.
    let out = fails(&mut sifr_in(
        d,
        &cache,
        &["pull", "--no-https", &format!("oras://{host}/test/img:v1")],
    ));
    let err = stderr(&out);
    assert!(
        err.contains("is not a SIF stored as an ORAS artifact"),
        "{err}"
    );
    assert!(
        err.contains("application/vnd.oci.image.layer.v1.tar"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "hint: this is a container image: use docker://{host}/test/img:v1"
        )),
        "{err}"
    );

    // A missing tag (e2e/pull "image does not exist").
    let out = fails(&mut sifr_in(
        d,
        &cache,
        &[
            "pull",
            "--no-https",
            &format!("oras://{host}/test/img:nope"),
        ],
    ));
    assert!(
        stderr(&out).contains("404") && stderr(&out).contains("hint: the registry has no such"),
        "{}",
        stderr(&out)
    );

    // e2e/push "non SIF file", "directory", "non existent image": refused before any request.
    std::fs::write(d.join("notsif"), "Invalid Image Contents").unwrap();
    let before = sifr_requests(&reg).len();
    for (path, why) in [
        (d.join("notsif"), "too short"),
        (d.to_path_buf(), "not a regular file"),
        (d.join("missing.sif"), "No such file"),
    ] {
        let out = fails(
            sifr_in(d, &cache, &["push", "--no-https"])
                .arg(&path)
                .arg(format!("oras://{host}/test/bad:v1")),
        );
        assert!(
            stderr(&out).contains("is not a SIF image") && stderr(&out).contains(why),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(
        sifr_requests(&reg).len(),
        before,
        "no request for a refused push"
    );

    // e2e/push "push invalid transport"; library:// is refused with a hint.
    let out = fails(
        sifr_in(d, &cache, &["push"])
            .arg(&sif)
            .arg("nothing://bar/foo/foobar:latest"),
    );
    assert!(
        stderr(&out).contains("Unsupported transport type: nothing"),
        "{}",
        stderr(&out)
    );
    let out = fails(
        sifr_in(d, &cache, &["push"])
            .arg(&sif)
            .arg("library://u/c/i:1"),
    );
    assert!(
        stderr(&out).contains("hint: push the SIF to an OCI registry"),
        "{}",
        stderr(&out)
    );

    // --description is ignored for oras://, with Apptainer's warning.
    let out = run_ok(
        sifr_in(d, &cache, &["push", "--no-https", "-D", "text"])
            .arg(&sif)
            .arg(format!("oras://{host}/test/sif:v1")),
    );
    assert!(
        stderr(&out).contains("Description is not supported for push to oras"),
        "{}",
        stderr(&out)
    );

    // e2e/pull "oras pull of packed dir": a blob that is no SIF under the SIF media type.
    push_like_apptainer(&host, "test/notsif", "v1", &d.join("notsif"), SIF_LAYER);
    for extra in [&[][..], &["--disable-cache"]] {
        let out = fails(
            sifr_in(d, &cache, &["pull", "--no-https", "n.sif"])
                .args(extra)
                .arg(format!("oras://{host}/test/notsif:v1")),
        );
        assert!(
            stderr(&out).contains("is not a SIF image"),
            "{}",
            stderr(&out)
        );
        assert_eq!(leftovers(d, &known), Vec::<String>::new(), "{extra:?}");
    }

    // A blob corrupted in the registry: a digest mismatch, and no file, whole or partial.
    let m = manifest(&host, "test/sif", "v1");
    let blob = blob_file(d, m["layers"][0]["digest"].as_str().unwrap());
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    for (extra, cache) in [
        (&[][..], d.join("c2")),
        (&["--disable-cache"][..], cache.clone()),
    ] {
        let out = fails(
            sifr_in(d, &cache, &["pull", "--no-https", "x.sif"])
                .args(extra)
                .arg(format!("oras://{host}/test/sif:v1")),
        );
        let err = stderr(&out);
        assert!(
            err.contains("verification") || err.contains("does not match"),
            "{extra:?}: {err}"
        );
        let mut known = known.to_vec();
        known.push("c2");
        assert_eq!(leftovers(d, &known), Vec::<String>::new(), "{extra:?}");
    }

    // A SIF without a partition has no architecture: Apptainer's push refuses it.
    images::write_sif(&d.join("empty.sif"), None);
    let out = fails(
        sifr_in(d, &cache, &["push", "--no-https"])
            .arg(d.join("empty.sif"))
            .arg(format!("oras://{host}/test/empty:v1")),
    );
    assert!(
        stderr(&out).contains("unknown architecture"),
        "{}",
        stderr(&out)
    );
}
