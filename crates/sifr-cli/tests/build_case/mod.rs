//! The definition-file build tests' common case (`build_def.rs`, `build_layers.rs`,
//! `build_isolation.rs`): the shared test sandbox as a base image with busybox's tools, a
//! private tmpdir for the builds' work directories (checked empty afterwards), sifr run as root
//! or as the test user, and the checks they share.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sifr_testkit::{As, Fixture, stderr, stdout};

pub fn sifr() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sifr"))
}

/// A fixture plus a private tmpdir for build work directories (checked empty afterwards).
pub struct Case {
    pub fx: Fixture,
    pub tmp: PathBuf,
}

impl Case {
    pub fn new() -> Option<Case> {
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

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.fx.work.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    pub fn sifr(&self, who: As, args: &[&str]) -> Output {
        self.fx
            .command(sifr(), who)
            .args(args)
            .env("SIFR_TMPDIR", &self.tmp)
            .output()
            .output
    }

    pub fn assert_clean(&self) {
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

pub fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Users to build as: root, and the test user when unprivileged user namespaces work.
pub fn builders() -> Vec<As> {
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

pub fn unsquashfs_list(sif: &Path) -> Option<String> {
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

/// `sha256:HEX` and size of a file, through `sha256sum` (no hashing code in the tests).
pub fn digest(path: &Path) -> (String, u64) {
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
pub fn blob(layout: &Path, path: &Path) -> (String, u64) {
    let (d, size) = digest(path);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(path, dir.join(d.trim_start_matches("sha256:"))).unwrap();
    (d, size)
}

/// Media types of the layers [`finish_layout`] lists.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const LAYER_TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Complete the OCI layout `layout` whose layer blobs are stored: store the config `cfg`, write
/// the manifest (through `scratch`) listing `layers` (media type, digest, size) as its blob,
/// `index.json` naming it `v1`, and `oci-layout`; readable by everyone (the test user builds
/// from it too).
pub fn finish_layout(layout: &Path, scratch: &Path, cfg: &Path, layers: &[(&str, String, u64)]) {
    let (dc, sc) = blob(layout, cfg);
    let listed: Vec<String> = layers
        .iter()
        .map(|(media, d, s)| format!(r#"{{"mediaType":"{media}","digest":"{d}","size":{s}}}"#))
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{dc}","size":{sc}}},"layers":[{}]}}"#,
        listed.join(",")
    );
    let name = layout.file_name().unwrap().to_string_lossy();
    let man = scratch.join(format!("{name}-manifest.json"));
    std::fs::write(&man, manifest).unwrap();
    let (dm, sm) = blob(layout, &man);
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
            .arg(layout)
            .status()
            .unwrap()
            .success()
    );
}
