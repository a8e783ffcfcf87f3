//! The client against Debian's `docker-registry` on 127.0.0.1, with images built by
//! `umoci` from a tiny tree and pushed by `skopeo`: plain HTTP first, then TLS with a
//! throwaway CA and htpasswd basic auth. Skips, saying why, when a tool is missing
//! (`apt-get install docker-registry skopeo umoci openssl apache2-utils`); under
//! `SIFR_TEST_STRICT=1` (CI) a missing tool fails instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use sifr_oci::Reference;
use sifr_oci::cache::BlobCache;
use sifr_oci::client::{Client, ClientError, ClientOptions, CredentialStore, Credentials};
use sifr_oci::layout;
use sifr_oci::manifest::Platform;
use sifr_oci::merge::{self, Layer, MemorySink, MergeOptions};
use sifr_testkit::registry::{PASSWORD, Registry, USER, tls_htpasswd_config};
use sifr_testkit::{missing, run_ok};

/// An OCI layout at `dir/layout` tagged `v1`: a first layer with two files and a symlink,
/// a second that changes one file and deletes the other (umoci writes the whiteout).
fn build_image(dir: &Path) -> PathBuf {
    let l = dir.join("layout");
    let b = dir.join("bundle");
    let image = format!("{}:v1", l.display());
    run_ok(Command::new("umoci").arg("init").arg("--layout").arg(&l));
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image", &image])
            .arg(&b),
    );
    let root = b.join("rootfs");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("etc/hello"), "hello v1").unwrap();
    std::fs::write(root.join("etc/gone"), "deleted in layer 2").unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    // --refresh-bundle: the next repack diffs against this layer, not the empty image.
    run_ok(
        Command::new("umoci")
            .args(["repack", "--refresh-bundle", "--image", &image])
            .arg(&b),
    );
    std::fs::remove_file(root.join("etc/gone")).unwrap();
    std::fs::write(root.join("etc/hello"), "hello v2").unwrap();
    run_ok(
        Command::new("umoci")
            .args(["repack", "--image", &image])
            .arg(&b),
    );
    run_ok(Command::new("umoci").args(["config", "--image", &image, "--config.cmd", "/bin/sh"]));
    l
}

fn push(layout: &Path, dest: &str, extra: &[&str]) {
    run_ok(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet"])
            .args(extra)
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{dest}")),
    );
}

fn merged(layers: &[impl Layer]) -> MemorySink {
    let refs: Vec<&dyn Layer> = layers.iter().map(|l| l as &dyn Layer).collect();
    let mut sink = MemorySink::new();
    merge::merge(&refs, &mut sink, &MergeOptions::default()).unwrap();
    common::assert_inside_root(&sink);
    sink
}

fn check(sink: &MemorySink) {
    assert_eq!(common::content(sink, "etc/hello"), "hello v2");
    assert!(
        sink.get("etc/gone").is_none(),
        "umoci's whiteout applied: {:?}",
        sink.paths()
    );
    assert!(sink.get("bin").is_some());
}

#[test]
fn pull_from_docker_registry_over_plain_http() {
    if let Some(m) = missing(&["docker-registry", "skopeo", "umoci"]) {
        sifr_testkit::skip(format_args!("{m} not installed"));
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout_dir = build_image(t.path());
    let reg = Registry::start(t.path(), "");
    let host = format!("127.0.0.1:{}", reg.port);
    push(
        &layout_dir,
        &format!("{host}/test/img:oci"),
        &["--dest-tls-verify=false"],
    );
    push(
        &layout_dir,
        &format!("{host}/test/img:v2s2"),
        &["--dest-tls-verify=false", "--format", "v2s2"],
    );

    let local = layout::open_oci_dir(&layout_dir, Some("v1"), &Platform::host()).unwrap();
    check(&merged(&local.layers));

    let opts = ClientOptions {
        plain_http: true,
        ..Default::default()
    };
    let client = Client::new(opts, CredentialStore::default(), |_| None).unwrap();
    let cache = BlobCache::new(t.path().join("cache"));
    for tag in ["oci", "v2s2"] {
        let r = Reference::parse(&format!("{host}/test/img:{tag}")).unwrap();
        client.ping(&r).unwrap();
        let (image, layers) = client.pull(&r, &cache).unwrap();
        assert_eq!(
            image.config.config.as_ref().unwrap().cmd,
            Some(vec!["/bin/sh".to_string()]),
            "{tag}"
        );
        assert_eq!(layers.len(), 2, "{tag}");
        check(&merged(&layers));
    }
}

#[test]
fn pull_over_tls_with_a_throwaway_ca_and_htpasswd() {
    if let Some(m) = missing(&["docker-registry", "skopeo", "umoci", "openssl", "htpasswd"]) {
        sifr_testkit::skip(format_args!("{m} not installed"));
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let layout_dir = build_image(d);
    let extra = tls_htpasswd_config(d);
    let reg = Registry::start(d, &extra);
    let host = format!("127.0.0.1:{}", reg.port);
    // skopeo wants a directory holding only CA certificates (`*.crt`).
    std::fs::create_dir(d.join("certs")).unwrap();
    std::fs::copy(d.join("ca.crt"), d.join("certs/ca.crt")).unwrap();
    let certs = d.join("certs").display().to_string();
    push(
        &layout_dir,
        &format!("{host}/test/img:v1"),
        &[
            "--dest-cert-dir",
            &certs,
            "--dest-creds",
            &format!("{USER}:{PASSWORD}"),
        ],
    );

    let r = Reference::parse(&format!("{host}/test/img:v1")).unwrap();
    let creds = CredentialStore::default().with_override(Credentials {
        username: USER.into(),
        password: PASSWORD.into(),
    });
    let opts = ClientOptions {
        ca_files: vec![d.join("ca.crt")],
        ..Default::default()
    };
    let client = Client::new(opts.clone(), creds.clone(), |_| None).unwrap();
    let (_, layers) = client.pull(&r, &BlobCache::new(d.join("cache"))).unwrap();
    check(&merged(&layers));

    // Without the CA the server is not trusted; without credentials it refuses.
    let untrusted = Client::new(ClientOptions::default(), creds, |_| None).unwrap();
    let e = untrusted.ping(&r).unwrap_err();
    assert!(matches!(e, ClientError::Http { .. }), "{e}");
    let anonymous = Client::new(opts, CredentialStore::default(), |_| None).unwrap();
    let e = anonymous.ping(&r).unwrap_err();
    assert!(matches!(e, ClientError::NoCredentials { .. }), "{e}");
}
