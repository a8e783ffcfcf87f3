//! The distribution client against an in-process registry on 127.0.0.1 (plain HTTP):
//! anonymous, Bearer-token and Basic auth, indexes resolved by platform, resumed and
//! corrupted blob downloads, and the pulled layers merged.

mod common;
#[path = "common/registry.rs"]
mod registry;

use common::{E, gzip, tar};
use registry::{Auth, Registry};
use sifr_oci::cache::BlobCache;
use sifr_oci::client::{
    Client, ClientError, ClientOptions, CredentialSource, CredentialStore, Credentials,
};
use sifr_oci::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_MANIFEST, Platform};
use sifr_oci::merge::{self, Layer, MemorySink, MergeOptions};
use sifr_oci::{Digest, Reference};

const CONFIG: &str = r#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/true"]}}"#;

struct Pushed {
    layers: Vec<Vec<u8>>,
    index: Digest,
}

/// Push a two-layer image for the host platform plus a decoy for another one, behind a
/// manifest list tagged `v1`.
fn push(reg: &Registry) -> Pushed {
    let l0 = gzip(&tar(&[
        E::Dir("bin"),
        E::File("bin/true", &[0x7f; 70_000]),
        E::File("etc-old", b"x"),
    ]));
    let l1 = zstd::encode_all(
        &tar(&[E::File(".wh.etc-old", b""), E::File("hello", b"world")])[..],
        3,
    )
    .unwrap();
    let (d0, d1, c) = (
        reg.add_blob(&l0),
        reg.add_blob(&l1),
        reg.add_blob(CONFIG.as_bytes()),
    );
    let manifest = |layers: &[(&Digest, usize)]| {
        let ls: Vec<String> = layers
            .iter()
            .map(|(d, n)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":{n}}}"#))
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{c}","size":{}}},"layers":[{}]}}"#,
            CONFIG.len(),
            ls.join(",")
        )
    };
    let host_m = manifest(&[(&d0, l0.len()), (&d1, l1.len())]);
    let decoy_m = manifest(&[(&d0, l0.len())]);
    let hd = reg.add_manifest(None, OCI_MANIFEST, host_m.as_bytes());
    let dd = reg.add_manifest(None, OCI_MANIFEST, decoy_m.as_bytes());
    let other = if Platform::host().architecture == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
          {{"mediaType":"{DOCKER_MANIFEST}","digest":"{dd}","size":{},"platform":{{"architecture":"{other}","os":"linux"}}}},
          {{"mediaType":"{DOCKER_MANIFEST}","digest":"{hd}","size":{},"platform":{{"architecture":"{}","os":"linux"}}}}]}}"#,
        decoy_m.len(),
        host_m.len(),
        Platform::host().architecture
    );
    let index = reg.add_manifest(Some("v1"), DOCKER_LIST, index.as_bytes());
    Pushed {
        layers: vec![l0, l1],
        index,
    }
}

fn client(creds: CredentialStore) -> Client {
    let opts = ClientOptions {
        plain_http: true,
        retries: 2,
        backoff: std::time::Duration::from_millis(1),
        ..Default::default()
    };
    Client::new(opts, creds, |_| None).unwrap()
}

fn pull_and_merge(
    c: &Client,
    reg: &Registry,
    cache: &BlobCache,
) -> Result<MemorySink, ClientError> {
    let r = Reference::parse(&format!("{}/lib/app:v1", reg.host())).unwrap();
    let (image, layers) = c.pull(&r, cache)?;
    assert_eq!(
        image.config.config.unwrap().cmd,
        Some(vec!["/bin/true".to_string()])
    );
    let refs: Vec<&dyn Layer> = layers.iter().map(|l| l as &dyn Layer).collect();
    let mut sink = MemorySink::new();
    merge::merge(&refs, &mut sink, &MergeOptions::default()).unwrap();
    Ok(sink)
}

#[test]
fn anonymous_pull_resolves_the_host_platform_and_merges() {
    let reg = Registry::start(Auth::None);
    let pushed = push(&reg);
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::new(dir.path());
    let c = client(CredentialStore::default());
    let r = Reference::parse(&format!("{}/lib/app:v1", reg.host())).unwrap();
    c.ping(&r).unwrap();
    let sink = pull_and_merge(&c, &reg, &cache).unwrap();
    assert_eq!(sink.paths(), ["bin", "bin/true", "hello"]);
    assert_eq!(common::content(&sink, "hello"), "world");
    for l in &pushed.layers {
        assert!(
            cache.get(&Digest::of(l)).is_some(),
            "layer cached by digest"
        );
    }
    let before = reg.log().len();
    pull_and_merge(&c, &reg, &cache).unwrap();
    let again: Vec<String> = reg.log()[before..].to_vec();
    assert!(
        again.iter().all(|l| !l.contains("/blobs/")),
        "second pull hits the cache: {again:?}"
    );
}

#[test]
fn pull_by_index_digest_and_wrong_digest_is_refused() {
    let reg = Registry::start(Auth::None);
    let pushed = push(&reg);
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::new(dir.path());
    let c = client(CredentialStore::default());
    let r = Reference::parse(&format!("{}/lib/app@{}", reg.host(), pushed.index)).unwrap();
    let img = c.resolve(&r, &cache).unwrap();
    assert_eq!(img.index_digest, Some(pushed.index));
    assert_eq!(
        img.manifest.layers.len(),
        2,
        "the host platform's manifest, not the decoy"
    );
    let other = Digest::of(b"other");
    reg.state
        .lock()
        .unwrap()
        .manifests
        .insert(other.to_string(), (DOCKER_LIST.into(), b"{}".to_vec()));
    let r = Reference::parse(&format!("{}/lib/app@{other}", reg.host())).unwrap();
    let e = c.resolve(&r, &cache).unwrap_err();
    assert!(matches!(e, ClientError::ManifestDigest { .. }), "{e}");
}

#[test]
fn bearer_token_flow_with_scope_and_credentials() {
    let reg = Registry::start(Auth::Bearer(Some(("alice".into(), "s3cret".into()))));
    push(&reg);
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::new(dir.path());
    let creds = CredentialStore::default().with_override(Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
    });
    let sink = pull_and_merge(&client(creds), &reg, &cache).unwrap();
    assert!(sink.get("hello").is_some());
    let log = reg.log();
    let token_reqs: Vec<&String> = log.iter().filter(|l| l.starts_with("GET /token")).collect();
    assert_eq!(
        token_reqs.len(),
        1,
        "one token reused for the whole pull: {log:?}"
    );
    assert!(
        token_reqs[0].contains("scope=repository%3Alib%2Fapp%3Apull")
            && token_reqs[0].ends_with("Basic"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .filter(|l| l.contains("/blobs/"))
            .all(|l| l.ends_with("Bearer")),
        "{log:?}"
    );

    let wrong = CredentialStore::default().with_override(Credentials {
        username: "alice".into(),
        password: "wrong".into(),
    });
    let e =
        pull_and_merge(&client(wrong), &reg, &BlobCache::new(dir.path().join("2"))).unwrap_err();
    assert!(
        matches!(e, ClientError::AuthRejected { status: 401, .. }),
        "{e}"
    );
}

#[test]
fn basic_auth_and_missing_credentials() {
    let reg = Registry::start(Auth::Basic("bob".into(), "pw".into()));
    push(&reg);
    let dir = tempfile::tempdir().unwrap();
    let creds = CredentialStore::default().with_override(Credentials {
        username: "bob".into(),
        password: "pw".into(),
    });
    pull_and_merge(&client(creds), &reg, &BlobCache::new(dir.path())).unwrap();
    let e = pull_and_merge(
        &client(CredentialStore::default()),
        &reg,
        &BlobCache::new(dir.path().join("x")),
    )
    .unwrap_err();
    assert!(
        matches!(&e, ClientError::NoCredentials { registry } if *registry == reg.host()),
        "{e}"
    );
}

#[test]
fn cut_download_resumes_with_range() {
    let reg = Registry::start(Auth::None);
    push(&reg);
    reg.state.lock().unwrap().cut_next_blob_at = Some(50);
    let dir = tempfile::tempdir().unwrap();
    let c = ClientOptions {
        plain_http: true,
        parallel: 1,
        backoff: std::time::Duration::from_millis(1),
        ..Default::default()
    };
    let c = Client::new(c, CredentialStore::default(), |_| None).unwrap();
    pull_and_merge(&c, &reg, &BlobCache::new(dir.path())).unwrap();
    let log = reg.log();
    assert!(
        log.iter()
            .any(|l| l.contains("/blobs/") && l.contains("bytes=50-")),
        "{log:?}"
    );
}

#[test]
fn corrupted_blob_is_rejected_and_not_cached() {
    let reg = Registry::start(Auth::None);
    let pushed = push(&reg);
    let d = Digest::of(&pushed.layers[1]);
    let mut bad = pushed.layers[1].clone();
    bad[10] ^= 0xff;
    reg.state.lock().unwrap().corrupt.insert(d.to_string(), bad);
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::new(dir.path());
    let e = pull_and_merge(&client(CredentialStore::default()), &reg, &cache).unwrap_err();
    let msg = format!(
        "{e}: {}",
        std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(msg.contains(&d.to_string()), "{msg}");
    assert!(cache.get(&d).is_none());
}

#[test]
fn missing_tag_reports_the_registry_error_code() {
    let reg = Registry::start(Auth::None);
    let dir = tempfile::tempdir().unwrap();
    let r = Reference::parse(&format!("{}/lib/app:nope", reg.host())).unwrap();
    let e = client(CredentialStore::default())
        .resolve(&r, &BlobCache::new(dir.path()))
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Status { status: 404, .. })
            && e.to_string().contains("MANIFEST_UNKNOWN"),
        "{e}"
    );
}

#[test]
fn stale_partial_file_from_another_process_is_replaced() {
    let reg = Registry::start(Auth::None);
    let pushed = push(&reg);
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::new(dir.path());
    let d = Digest::of(&pushed.layers[0]);
    // A crashed writer left bytes that are not a prefix of the blob.
    std::fs::create_dir_all(dir.path().join("blob/sha256")).unwrap();
    std::fs::write(
        dir.path().join(format!("blob/sha256/{}.partial", d.hex())),
        b"garbage",
    )
    .unwrap();
    pull_and_merge(&client(CredentialStore::default()), &reg, &cache).unwrap();
    assert_eq!(
        std::fs::read(cache.get(&d).unwrap()).unwrap(),
        pushed.layers[0]
    );
}

#[test]
fn ping_registry_checks_credentials_without_a_repository_scope() {
    let with = |u: &str, p: &str| {
        client(CredentialStore::default().with_override(Credentials {
            username: u.into(),
            password: p.into(),
        }))
    };
    for auth in [
        Auth::Bearer(Some(("alice".into(), "s3cret".into()))),
        Auth::Basic("alice".into(), "s3cret".into()),
    ] {
        let reg = Registry::start(auth.clone());
        with("alice", "s3cret").ping_registry(&reg.host()).unwrap();
        let e = with("alice", "wrong")
            .ping_registry(&reg.host())
            .unwrap_err();
        assert!(
            matches!(&e, ClientError::AuthRejected { registry, username, source_of: CredentialSource::Given, .. }
                if *registry == reg.host() && username == "alice"),
            "{auth:?}: {e}"
        );
        assert!(
            e.to_string()
                .contains("refused the credentials of user `alice`"),
            "{e}"
        );
        let e = client(CredentialStore::default())
            .ping_registry(&reg.host())
            .unwrap_err();
        assert!(
            matches!(e, ClientError::NoCredentials { .. }),
            "{auth:?}: refused anonymous access asks for credentials: {e}"
        );
        let log = reg.log();
        assert!(
            log.iter()
                .filter(|l| l.starts_with("GET /token"))
                .all(|l| !l.contains("scope=")),
            "a registry-wide check asks for no repository scope: {log:?}"
        );
    }
}
