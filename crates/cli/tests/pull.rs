//! `sifr pull`, `sifr build X.sif docker://...`, `Bootstrap: docker` and `sifr cache` end to end
//! against Debian's `docker-registry` on 127.0.0.1. The image is made at test time as an OCI
//! layout (busybox as its shell, three layers with a file whiteout, an opaque directory, a
//! gzip and a zstd layer, ENV/ENTRYPOINT/CMD/labels, and a multi-arch index with an arm64
//! variant) and pushed with `skopeo copy --all`. Skips, saying why, when a tool is missing
//! (`apt-get install docker-registry skopeo busybox-static openssl apache2-utils`).
#![allow(clippy::print_stderr)]

#[path = "../../launch/tests/support/mod.rs"]
mod support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use oci::Digest;
use support::{stderr, stdout};

fn sifr() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sifr"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn missing(tools: &[&str]) -> Option<String> {
    let m: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    (!m.is_empty()).then(|| m.join(", "))
}

fn run_ok(mut cmd: impl std::borrow::BorrowMut<Command>) -> Output {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Kills the registry it started when dropped.
struct Registry {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn start(dir: &Path, extra: &str) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("config.yml");
        // The access log (one line per request) is what the concurrency test counts.
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let log = dir.join("registry.log");
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        let reg = Registry { child, port, log };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "registry did not start: {}",
                std::fs::read_to_string(&reg.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Successful `GET`s of blobs made by sifr, per blob digest.
    fn sifr_blob_gets(&self) -> std::collections::BTreeMap<String, usize> {
        let text = std::fs::read_to_string(&self.log).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for l in text.lines() {
            if !(l.contains("\"GET /v2/") && l.contains("sifr/")) {
                continue;
            }
            if let Some(i) = l.find("/blobs/sha256:")
                && l.contains(" HTTP/1.1\" 200 ")
            {
                let d = &l[i + 7..i + 7 + 71];
                *counts.entry(d.to_string()).or_insert(0) += 1;
            }
        }
        counts
    }
}

/// Writes an OCI image layout by hand: blobs by digest, `index.json` naming the tag.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: PathBuf) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout { dir }
    }

    fn blob(&self, media: &str, bytes: &[u8]) -> serde_json::Value {
        let d = Digest::of(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        serde_json::json!({"mediaType": media, "digest": d.to_string(), "size": bytes.len()})
    }

    /// A tar of the tree under `root` (owned by root, as registries' images are).
    fn tar(root: &Path) -> Vec<u8> {
        run_ok(
            Command::new("tar")
                .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
                .arg(root)
                .args(["-cf", "-", "."]),
        )
        .stdout
    }

    fn gzip_layer(&self, root: &Path) -> serde_json::Value {
        let mut gz = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let data = Self::tar(root);
        let mut stdin = gz.stdin.take().unwrap();
        let w = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data));
        let out = gz.wait_with_output().unwrap();
        w.join().unwrap().unwrap();
        self.blob("application/vnd.oci.image.layer.v1.tar+gzip", &out.stdout)
    }

    fn zstd_layer(&self, root: &Path) -> serde_json::Value {
        let z = zstd::encode_all(&Self::tar(root)[..], 3).unwrap();
        self.blob("application/vnd.oci.image.layer.v1.tar+zstd", &z)
    }

    fn image(&self, arch: &str, layers: Vec<serde_json::Value>) -> serde_json::Value {
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {
                "Env": ["PATH=/bin:/usr/bin", "GREETING=hello-from-env"],
                "Entrypoint": ["/bin/echo", "ep"],
                "Cmd": ["from-cmd"],
                "WorkingDir": "/opt",
                "Labels": {"org.example.test": "yes"}
            },
            "rootfs": {"type": "layers", "diff_ids": []}
        });
        let c = self.blob(
            "application/vnd.oci.image.config.v1+json",
            config.to_string().as_bytes(),
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": c,
            "layers": layers,
        });
        let mut d = self.blob(
            "application/vnd.oci.image.manifest.v1+json",
            manifest.to_string().as_bytes(),
        );
        d["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
        d
    }

    fn tag(&self, tag: &str, manifests: Vec<serde_json::Value>) {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let mut d = self.blob(
            "application/vnd.oci.image.index.v1+json",
            index.to_string().as_bytes(),
        );
        d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        let top = serde_json::json!({"schemaVersion": 2, "manifests": [d]});
        std::fs::write(self.dir.join("index.json"), top.to_string()).unwrap();
    }
}

/// The test image at `dir/layout:v1`: amd64 (the host's arch is assumed by the run checks
/// only when it is amd64) and arm64 entries in one index.
fn make_image(dir: &Path) -> PathBuf {
    let l = Layout::new(dir.join("layout"));
    let tree = |name: &str| {
        let p = dir.join("trees").join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    // Layer 1: busybox as the shell, files to change and delete, a directory to make opaque.
    let t1 = tree("l1");
    for d in ["bin", "etc", "opt/dir", "usr/bin"] {
        std::fs::create_dir_all(t1.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", t1.join("bin/busybox")).unwrap();
    for app in ["sh", "echo", "cat", "ls", "pwd"] {
        std::os::unix::fs::symlink("busybox", t1.join("bin").join(app)).unwrap();
    }
    std::fs::write(t1.join("etc/hello"), "hello v1\n").unwrap();
    std::fs::write(t1.join("etc/gone"), "deleted in layer 2\n").unwrap();
    std::fs::write(t1.join("opt/dir/old"), "hidden by an opaque whiteout\n").unwrap();
    // Layer 2: change, whiteout, opaque directory.
    let t2 = tree("l2");
    std::fs::create_dir_all(t2.join("etc")).unwrap();
    std::fs::create_dir_all(t2.join("opt/dir")).unwrap();
    std::fs::write(t2.join("etc/hello"), "hello v2\n").unwrap();
    std::fs::write(t2.join("etc/.wh.gone"), "").unwrap();
    std::fs::write(t2.join("opt/dir/.wh..wh..opq"), "").unwrap();
    std::fs::write(t2.join("opt/dir/new"), "after the opaque whiteout\n").unwrap();
    // Layer 3 (zstd): one more file.
    let t3 = tree("l3");
    std::fs::create_dir_all(t3.join("usr/share")).unwrap();
    std::fs::write(t3.join("usr/share/layer3"), "from a zstd layer\n").unwrap();
    let tarm = tree("arm");
    std::fs::write(tarm.join("arch"), "arm64\n").unwrap();

    let (a, b, c) = (l.gzip_layer(&t1), l.gzip_layer(&t2), l.zstd_layer(&t3));
    let amd = l.image("amd64", vec![a.clone(), b, c]);
    let arm = l.image("arm64", vec![a, l.gzip_layer(&tarm)]);
    l.tag("v1", vec![amd, arm]);
    l.dir
}

fn push(layout: &Path, dest: &str, extra: &[&str]) {
    run_ok(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--all", "--quiet"])
            .args(extra)
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{dest}")),
    );
}

/// sifr in `cwd` with a private cache and none of the caller's Apptainer settings.
fn sifr_in(cwd: &Path, cache: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(sifr());
    c.args(args)
        .current_dir(cwd)
        .env("APPTAINER_CACHEDIR", cache)
        .env("HOME", cwd);
    for (k, _) in std::env::vars() {
        if (k.starts_with("APPTAINER") && k != "APPTAINER_CACHEDIR")
            || k.starts_with("SINGULARITY")
            || k.starts_with("SIFR_")
        {
            c.env_remove(k);
        }
    }
    c
}

/// `sif list` output and the text of one `inspect` query.
fn inspect(sif: &Path, cwd: &Path, flag: &str) -> String {
    let out = run_ok(sifr_in(cwd, &cwd.join("cache"), &["inspect", flag]).arg(sif));
    stdout(&out)
}

/// A plain-HTTP registry in `d` holding the test layout as `test/img:v1`.
fn registry_with_test_image(d: &Path, layout: &Path) -> Registry {
    let reg = Registry::start(d, "");
    push(
        layout,
        &format!("{}/test/img:v1", reg.host()),
        &["--dest-tls-verify=false"],
    );
    reg
}

fn setup(tools: &[&str]) -> Option<(tempfile::TempDir, PathBuf)> {
    if let Some(m) = missing(tools) {
        eprintln!("skipped: {m} not installed");
        return None;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox (busybox-static) not installed");
        return None;
    }
    let t = tempfile::Builder::new()
        .prefix("sifr-pull-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        t.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let layout = make_image(t.path());
    Some((t, layout))
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
    let before = reg.sifr_blob_gets();
    let out = run_ok(sifr_in(d, &cache, &["pull", "--nohttps", "x.sif", &src]));
    assert!(stderr(&out).contains("in cache"), "{}", stderr(&out));
    assert_eq!(reg.sifr_blob_gets(), before, "nothing downloaded twice");

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
        listed.contains("There are 4 blobs"),
        "3 layers + config: {listed}"
    );
    run_ok(sifr_in(d, &cache, &["cache", "clean", "--force"]));
    let listed = stdout(&run_ok(sifr_in(d, &cache, &["cache", "list"])));
    assert!(listed.contains("There are 0 blobs"), "{listed}");

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
        for who in support::identities() {
            let run = |args: &[&str]| {
                let mut c = support::command_as(who, &sifr());
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
    let gets = reg.sifr_blob_gets();
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
    let openssl = |args: &[&str]| run_ok(Command::new("openssl").current_dir(d).args(args));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=sifr test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    run_ok(
        Command::new("htpasswd")
            .current_dir(d)
            .args(["-Bbc", "htpasswd", "tester", "pa55word"]),
    );
    let extra = format!(
        "  tls:\n    certificate: {0}/server.crt\n    key: {0}/server.key\nauth:\n  htpasswd:\n    realm: sifr-test\n    path: {0}/htpasswd\n",
        d.display()
    );
    let reg = Registry::start(d, &extra);
    std::fs::create_dir(d.join("certs")).unwrap();
    std::fs::copy(d.join("ca.crt"), d.join("certs/ca.crt")).unwrap();
    let certs = d.join("certs").display().to_string();
    push(
        &layout,
        &format!("{}/test/img:v1", reg.host()),
        &["--dest-cert-dir", &certs, "--dest-creds", "tester:pa55word"],
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
        .env("APPTAINER_DOCKER_USERNAME", "tester")
        .env("APPTAINER_DOCKER_PASSWORD", "pa55word")
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown CA is not trusted");

    run_ok(
        sifr_in(d, &cache, &["pull", "a.sif", &src])
            .env("SSL_CERT_FILE", &ca)
            .env("APPTAINER_DOCKER_USERNAME", "tester")
            .env("APPTAINER_DOCKER_PASSWORD", "pa55word"),
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
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), b"tester\npa55word\n").unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Enter Docker Username"));
}

#[test]
fn bootstrap_docker_pulls_through_the_cache_and_runs_post_in_the_merged_tree() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo", "unsquashfs"]) else {
        return;
    };
    if !support::is_root() && support::userns_available().is_err() {
        eprintln!("skipped: %post needs root or user namespaces");
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
    assert!(listed.contains("There are 4 blobs"), "{listed}");
}
