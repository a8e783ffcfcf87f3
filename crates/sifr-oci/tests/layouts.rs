//! Local image sources end to end: an OCI layout directory, the same layout as an
//! `oci-archive:` tar, and a `docker save`-style archive, each merged into memory.

mod common;

use std::fs;
use std::path::Path;

use common::{E, gzip, tar};
use sifr_oci::Digest;
use sifr_oci::layout::{self, LayoutError};
use sifr_oci::manifest::{DOCKER_LIST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Platform};
use sifr_oci::merge::{self, Layer, MemorySink, MergeError, MergeOptions};

fn put(dir: &Path, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    let p = dir.join("blobs/sha256");
    fs::create_dir_all(&p).unwrap();
    fs::write(p.join(d.hex()), data).unwrap();
    d
}

fn desc(media: &str, d: &Digest, size: usize) -> String {
    format!(r#"{{"mediaType":"{media}","digest":"{d}","size":{size}}}"#)
}

const CONFIG: &str = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;

/// The two uncompressed layers every image here holds: a base with `/etc/os-release` and
/// `/etc/gone`, and a top layer that rewrites the first and whites out the second.
fn two_layers() -> (Vec<u8>, Vec<u8>) {
    let l0 = tar(&[
        E::Dir("etc"),
        E::File("etc/os-release", b"base"),
        E::File("etc/gone", b"x"),
    ]);
    let l1 = tar(&[
        E::File("etc/os-release", b"top"),
        E::File("etc/.wh.gone", b""),
    ]);
    (l0, l1)
}

/// An OCI layout with a two-layer image reachable through an index by platform, tagged `v1`.
fn make_layout(dir: &Path) -> Vec<Vec<u8>> {
    let (l0, l1) = two_layers();
    let l0 = gzip(&l0);
    let (d0, d1) = (put(dir, &l0), put(dir, &l1));
    let c = put(dir, CONFIG.as_bytes());
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{},{}]}}"#,
        desc(OCI_CONFIG, &c, CONFIG.len()),
        desc("application/vnd.oci.image.layer.v1.tar+gzip", &d0, l0.len()),
        desc("application/vnd.oci.image.layer.v1.tar", &d1, l1.len())
    );
    let md = put(dir, m.as_bytes());
    let host = Platform::host();
    let idx = format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{md}","size":{},"platform":{{"architecture":"{}","os":"linux"}}}}]}}"#,
        m.len(),
        host.architecture
    );
    let id = put(dir, idx.as_bytes());
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_INDEX}","digest":"{id}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
            idx.len()
        ),
    )
    .unwrap();
    vec![l0, l1]
}

fn merged(img: &layout::LocalImage) -> Result<MemorySink, MergeError> {
    let layers: Vec<&dyn Layer> = img.layers.iter().map(|l| l as &dyn Layer).collect();
    let mut sink = MemorySink::new();
    merge::merge(&layers, &mut sink, &MergeOptions::default())?;
    Ok(sink)
}

fn check_image(img: &layout::LocalImage) {
    assert_eq!(
        img.config.config.as_ref().unwrap().cmd,
        Some(vec!["/bin/sh".to_string()])
    );
    assert_eq!(img.layers.len(), 2);
    let sink = merged(img).unwrap();
    assert_eq!(sink.paths(), ["etc", "etc/os-release"]);
    assert_eq!(common::content(&sink, "etc/os-release"), "top");
}

fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(fs::File::create(out).unwrap());
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

#[test]
fn oci_layout_dir_by_tag_and_platform() {
    let t = tempfile::tempdir().unwrap();
    make_layout(t.path());
    let img = layout::open_oci_dir(t.path(), Some("v1"), &Platform::host()).unwrap();
    assert!(img.manifest_digest.is_some());
    check_image(&img);
    let img = layout::open_oci_dir(t.path(), None, &Platform::host()).unwrap();
    check_image(&img);
}

#[test]
fn oci_layout_errors_name_what_is_wrong() {
    let t = tempfile::tempdir().unwrap();
    make_layout(t.path());
    let e = layout::open_oci_dir(t.path(), Some("v2"), &Platform::host()).unwrap_err();
    assert!(
        matches!(&e, LayoutError::NoSuchName { .. }) && e.to_string().contains("`v1`"),
        "{e}"
    );
    let e =
        layout::open_oci_dir(t.path(), None, &Platform::linux("s390x-nonexistent")).unwrap_err();
    assert!(matches!(e, LayoutError::Manifest { .. }), "{e}");
    let e = layout::open_oci_dir(&t.path().join("nope"), None, &Platform::host()).unwrap_err();
    assert!(
        matches!(&e, LayoutError::Missing { member, .. } if member == "oci-layout"),
        "{e}"
    );
}

#[test]
fn corrupted_layer_blob_fails_the_merge_naming_the_digest() {
    let t = tempfile::tempdir().unwrap();
    let layers = make_layout(t.path());
    let d = Digest::of(&layers[1]);
    let mut bad = layers[1].clone();
    let n = bad.len();
    bad[n - 1] ^= 1; // in the end-of-archive padding: only the digest notices
    fs::write(t.path().join("blobs/sha256").join(d.hex()), bad).unwrap();
    let img = layout::open_oci_dir(t.path(), None, &Platform::host()).unwrap();
    let e = merged(&img).unwrap_err();
    let chain = format!(
        "{e}: {}",
        std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(chain.contains(&d.to_string()), "{chain}");
}

#[test]
fn oci_archive_reads_members_in_place() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("layout");
    fs::create_dir(&dir).unwrap();
    make_layout(&dir);
    let archive = t.path().join("img.tar");
    tar_dir(&dir, &archive);
    fs::remove_dir_all(&dir).unwrap();
    let source =
        sifr_oci::ImageSource::parse(&format!("oci-archive:{}:v1", archive.display())).unwrap();
    let img = layout::open(&source, &Platform::host()).unwrap().unwrap();
    assert!(
        img.layers
            .iter()
            .all(|l| l.window.is_some() && l.path == archive)
    );
    check_image(&img);
}

#[test]
fn docker_archive_with_legacy_layer_dirs_and_symlinked_layers() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("save");
    fs::create_dir(&dir).unwrap();
    let (l0, l1) = two_layers();
    let (d0, d1) = (Digest::of(&l0), Digest::of(&l1));
    fs::create_dir_all(dir.join("aaa")).unwrap();
    fs::create_dir_all(dir.join("bbb")).unwrap();
    fs::write(dir.join("aaa/layer.tar"), &l0).unwrap();
    fs::write(dir.join("bbb/real.tar"), &l1).unwrap();
    std::os::unix::fs::symlink("real.tar", dir.join("bbb/layer.tar")).unwrap();
    let config = CONFIG.replace(
        r#""diff_ids":[]"#,
        &format!(r#""diff_ids":["{d0}","{d1}"]"#),
    );
    let cd = Digest::of(config.as_bytes());
    fs::write(dir.join(format!("{}.json", cd.hex())), &config).unwrap();
    fs::write(
        dir.join("manifest.json"),
        format!(r#"[{{"Config":"{}.json","RepoTags":["myapp:v1"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}}]"#, cd.hex()),
    )
    .unwrap();
    let archive = t.path().join("save.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&archive).unwrap());
        b.follow_symlinks(false);
        b.append_dir_all(".", &dir).unwrap();
        b.finish().unwrap();
    }
    let img = layout::open_docker_archive(&archive, None).unwrap();
    assert_eq!(img.manifest.layers.len(), 2);
    assert_eq!(img.manifest.config.digest, cd);
    check_image(&img);
    let img = layout::open_docker_archive(&archive, Some("docker.io/library/myapp:v1")).unwrap();
    check_image(&img);
    let e = layout::open_docker_archive(&archive, Some("other:v1")).unwrap_err();
    assert!(e.to_string().contains("`myapp:v1`"), "{e}");
}
