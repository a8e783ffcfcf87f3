//! The registry side of the end-to-end tests: Debian's `docker-registry` on 127.0.0.1 (plain
//! HTTP, TLS with a throwaway CA and htpasswd, or token auth backed by [`token::Issuer`]), a
//! test image written as an OCI layout by hand and pushed with `skopeo`, and `sifr` run with
//! a private cache and home. Shared by `pull.rs` and `registry_login.rs`; each uses part.
#![allow(dead_code)]

pub mod token;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sifr_oci::Digest;

use sifr_testkit::{stderr, stdout};

// Each test binary uses part of these.
#[allow(unused_imports)]
pub use sifr_testkit::registry::{PASSWORD, Registry, USER, tls_htpasswd_config};
#[allow(unused_imports)]
pub use sifr_testkit::{have, missing};

pub fn sifr() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sifr"))
}

pub fn run_ok(mut cmd: impl std::borrow::BorrowMut<Command>) -> Output {
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

/// The registry's log once it has stopped growing: it writes a request's access line after
/// the answer, so a client can be done before its request is logged.
pub fn settled_log(log: &Path) -> String {
    let start = std::time::Instant::now();
    let mut last = std::fs::read_to_string(log).unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = std::fs::read_to_string(log).unwrap();
        if now == last || start.elapsed() > std::time::Duration::from_secs(3) {
            return now;
        }
        last = now;
    }
}

/// Successful `GET`s of blobs made by sifr from `reg`, per blob digest, from its access log.
pub fn sifr_blob_gets(reg: &Registry) -> std::collections::BTreeMap<String, usize> {
    let text = settled_log(&reg.log);
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

/// Writes an OCI image layout by hand: blobs by digest, `index.json` naming the tag.
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub fn new(dir: PathBuf) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout { dir }
    }

    pub fn blob(&self, media: &str, bytes: &[u8]) -> serde_json::Value {
        let d = Digest::of(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        serde_json::json!({"mediaType": media, "digest": d.to_string(), "size": bytes.len()})
    }

    /// A tar of the tree under `root` (owned by root, as registries' images are).
    pub fn tar(root: &Path) -> Vec<u8> {
        run_ok(
            Command::new("tar")
                .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
                .arg(root)
                .args(["-cf", "-", "."]),
        )
        .stdout
    }

    pub fn gzip_layer(&self, root: &Path) -> serde_json::Value {
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

    pub fn zstd_layer(&self, root: &Path) -> serde_json::Value {
        let z = zstd::encode_all(&Self::tar(root)[..], 3).unwrap();
        self.blob("application/vnd.oci.image.layer.v1.tar+zstd", &z)
    }

    pub fn image(&self, arch: &str, layers: Vec<serde_json::Value>) -> serde_json::Value {
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

    pub fn tag(&self, tag: &str, manifests: Vec<serde_json::Value>) {
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
pub fn make_image(dir: &Path) -> PathBuf {
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

pub fn push(layout: &Path, dest: &str, extra: &[&str]) {
    run_ok(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--all", "--quiet"])
            .args(extra)
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{dest}")),
    );
}

/// sifr in `cwd` with a private cache and none of the caller's Apptainer settings.
pub fn sifr_in(cwd: &Path, cache: &Path, args: &[&str]) -> Command {
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
    c.env_remove("DOCKER_CONFIG");
    c
}

/// A plain-HTTP registry in `d` holding the test layout as `test/img:v1`.
pub fn registry_with_test_image(d: &Path, layout: &Path) -> Registry {
    let reg = Registry::start(d, "");
    push(
        layout,
        &format!("{}/test/img:v1", reg.host()),
        &["--dest-tls-verify=false"],
    );
    reg
}

/// Whether `tools` and `/bin/busybox` are all there; when not, the test is skipped, saying
/// why (a failure under `SIFR_TEST_STRICT`: scripts/deps.sh installs them all).
pub fn tools_present(tools: &[&str]) -> bool {
    let mut absent = missing(tools);
    if !Path::new("/bin/busybox").exists() {
        absent = Some(absent.map_or("/bin/busybox (busybox-static)".into(), |m| {
            format!("{m}, /bin/busybox (busybox-static)")
        }));
    }
    if let Some(m) = absent {
        sifr_testkit::skip(format_args!("{m} not installed"));
        return false;
    }
    true
}

/// A temporary directory holding the test image's layout when every tool is there (see
/// [`tools_present`]).
pub fn setup(tools: &[&str]) -> Option<(tempfile::TempDir, PathBuf)> {
    if !tools_present(tools) {
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

/// A plain-HTTP registry in `d` with token auth backed by a test issuer that knows [`USER`],
/// holding the test layout as `test/img:v1` and `test/other:v1` (pushed by skopeo through
/// the issuer too). The issuer's record starts empty.
pub fn token_registry(d: &Path, layout: &Path) -> (token::Issuer, Registry) {
    let issuer = token::Issuer::start(d, &[(USER, PASSWORD)]);
    let reg = Registry::start(d, &issuer.registry_config());
    let creds = format!("{USER}:{PASSWORD}");
    for repo in ["img", "other"] {
        push(
            layout,
            &format!("{}/test/{repo}:v1", reg.host()),
            &["--dest-tls-verify=false", "--dest-creds", &creds],
        );
    }
    issuer.forget();
    (issuer, reg)
}
