//! Image URIs where an action takes an image: `sifr exec|run|test|shell|inspect|run-help|
//! instance start docker://...`, `oci-archive:`, `oci:`, `http(s)://`, end to end against
//! Debian's `docker-registry` on 127.0.0.1 and a small HTTP file server in the test. Apptainer
//! runs these through `replaceURIWithImage` (cmd/internal/cli/actions.go); its e2e tests
//! `e2e/actions` (`actionFromURI`: exec/run/test/shell of `docker://`, `oras://`, `https://`
//! images, with and without `--disable-cache`) are the expectations ported here.
//!
//! Runs containers as root (loop devices), so it is in the nextest `host-state` group.
#![allow(clippy::print_stderr)]

mod registries;

use std::io::{BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use registries::{Layout, push, registry_with_test_image, run_ok, setup, sifr_in};
use sifr_testkit::{stderr, stdout};

/// Whether this process may run containers the way these tests do (root: loop devices).
fn can_launch() -> bool {
    if sifr_sys::process::ids().0 != 0 {
        // CI runs the tests as root.
        assert!(
            std::env::var_os("CI").is_none(),
            "the image-URI launch tests need root in CI"
        );
        eprintln!("skipped: needs root (the action tests launch containers on loop devices)");
        return false;
    }
    true
}

/// `sifr ARGS` in `d` with the test's cache and plain HTTP to the registry (as a site would
/// set `APPTAINER_NOHTTPS` for a registry without TLS).
fn sifr_nohttps(d: &Path, args: &[&str]) -> Command {
    let mut c = sifr_in(d, &d.join("cache"), args);
    c.env("APPTAINER_NOHTTPS", "1").env("TMPDIR", d.join("tmp"));
    c
}

/// The entries of one kind of whole-image cache (dot-files are the cache's bookkeeping).
fn entries(d: &Path, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d.join("cache").join(kind))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Requests sifr made to the registry for `what` (`manifests`, `blobs`), by method.
fn requests(log: &Path, method: &str, what: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("sifr/") && l.contains(&format!("\"{method} /v2/")))
        .filter(|l| l.contains(&format!("/{what}/")))
        .count()
}

fn prepare(d: &Path) {
    std::fs::create_dir_all(d.join("tmp")).unwrap();
}

#[test]
fn docker_uris_run_from_one_cached_conversion_and_check_the_tag_each_time() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo"]) else {
        return;
    };
    if !can_launch() {
        return;
    }
    let d = t.path();
    prepare(d);
    let reg = registry_with_test_image(d, &layout);
    let uri = format!("docker://{}/test/img:v1", reg.host());

    // First launch: converted once, announced as Apptainer announces it.
    let out = run_ok(sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"]));
    assert_eq!(stdout(&out), "hello v2\n");
    assert!(
        stderr(&out).contains("INFO:    Converting OCI blobs to SIF format"),
        "{}",
        stderr(&out)
    );
    assert_eq!(entries(d, "oci-tmp").len(), 1);
    let blobs = requests(&reg.log, "GET", "blobs");

    // Every other command finds it: one HEAD of the tag each, no blob download.
    let heads = requests(&reg.log, "HEAD", "manifests");
    let out = run_ok(sifr_nohttps(d, &["run", &uri]));
    assert_eq!(stdout(&out), "ep from-cmd\n", "the image's runscript ran");
    assert!(stderr(&out).contains("INFO:    Using cached SIF image"));
    let out = run_ok(sifr_nohttps(d, &["run", &uri, "a", "b"]));
    assert_eq!(stdout(&out), "ep a b\n");
    let out = run_ok(sifr_nohttps(d, &["inspect", "--labels", &uri]));
    assert!(
        stdout(&out).contains("org.example.test: yes"),
        "{}",
        stdout(&out)
    );
    let out = run_ok(sifr_nohttps(d, &["run-help", &uri]));
    assert_eq!(
        stdout(&out),
        "No help sections were defined for this image\n"
    );
    let mut shell = sifr_nohttps(d, &["shell", &uri]);
    shell
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = shell.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"cat /opt/dir/new\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "after the opaque whiteout\n");
    // `-q` silences the INFO lines, as in Apptainer.
    let out = run_ok(sifr_nohttps(d, &["-q", "exec", &uri, "echo"]));
    assert_eq!(stderr(&out), "");
    // By host name (a DNS lookup in the launching process), into a user namespace: creating
    // one needs a single-threaded process, so the probe must have started no thread.
    let by_name = format!("docker://localhost:{}/test/img:v1", reg.port);
    let out = run_ok(sifr_nohttps(
        d,
        &["exec", "--userns", &by_name, "cat", "/etc/hello"],
    ));
    assert_eq!(stdout(&out), "hello v2\n");
    assert_eq!(requests(&reg.log, "HEAD", "manifests"), heads + 7);
    assert_eq!(
        requests(&reg.log, "GET", "blobs"),
        blobs,
        "nothing downloaded again"
    );
    assert_eq!(entries(d, "oci-tmp").len(), 1);

    // The tag moves: the next launch converts the new image, under a new key.
    let trees = d.join("trees/moved");
    std::fs::create_dir_all(trees.join("etc")).unwrap();
    std::fs::write(trees.join("etc/hello"), "hello v3\n").unwrap();
    let moved = d.join("moved-layout");
    let l = Layout::new(moved.clone());
    let base = make_base_layer(&l, d);
    let top = l.gzip_layer(&trees);
    let img = l.image(host_goarch(), vec![base, top]);
    l.tag("v1", vec![img]);
    push(
        &moved,
        &format!("{}/test/img:v1", reg.host()),
        &["--dest-tls-verify=false"],
    );
    let out = run_ok(sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"]));
    assert_eq!(stdout(&out), "hello v3\n", "the moved tag's image ran");
    assert_eq!(entries(d, "oci-tmp").len(), 2);

    // A digest-pinned reference needs no request at all once cached.
    let pinned = digest_of(d, &reg.host());
    let uri_at = format!("docker://{}/test/img@{pinned}", reg.host());
    run_ok(sifr_nohttps(d, &["exec", &uri_at, "echo"]));
    let heads = requests(&reg.log, "HEAD", "manifests");
    let gets = requests(&reg.log, "GET", "manifests");
    let out = run_ok(sifr_nohttps(d, &["exec", &uri_at, "cat", "/etc/hello"]));
    assert_eq!(stdout(&out), "hello v3\n");
    assert_eq!(requests(&reg.log, "HEAD", "manifests"), heads);
    assert_eq!(requests(&reg.log, "GET", "manifests"), gets);

    // `cache clean --type oci-tmp` removes the converted images, and a launch converts again.
    run_ok(sifr_nohttps(
        d,
        &["cache", "clean", "-f", "--type", "oci-tmp"],
    ));
    assert!(entries(d, "oci-tmp").is_empty());
    let out = run_ok(sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"]));
    assert_eq!(stdout(&out), "hello v3\n");
    assert_eq!(listing(&d.join("tmp")), Vec::<String>::new());

    // The registry goes away (a compute node without a route out): the tag runs the image it
    // named when last reached, with a warning; a tag never run before fails, naming it.
    let host = reg.host();
    drop(reg);
    let out = run_ok(sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"]));
    assert_eq!(stdout(&out), "hello v3\n");
    assert!(
        stderr(&out).contains(&format!("cannot reach the registry of `{uri}`")),
        "{}",
        stderr(&out)
    );
    let other = format!("docker://{host}/test/img:v2");
    let out = sifr_nohttps(d, &["exec", &other, "echo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains(&format!("cannot look up `{other}`")),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        entries(d, "oci-tmp").len(),
        1,
        "the ref records are not entries"
    );
}

/// The names in a temporary directory, but for the launches' per-user runtime directory
/// (`sifr-UID`, node sharing's, which stays).
fn listing(dir: &Path) -> Vec<String> {
    let runtime = format!("sifr-{}", sifr_sys::process::ids().0);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| *n != runtime)
        .collect()
}

/// The Go name of the host's architecture, as images and the test layout name it.
fn host_goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A layer with busybox as the shell, for the images a test writes itself.
fn make_base_layer(l: &Layout, d: &Path) -> serde_json::Value {
    let t = d.join("trees/base");
    std::fs::create_dir_all(t.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", t.join("bin/busybox")).unwrap();
    for app in ["sh", "cat", "echo", "true", "sleep"] {
        let _ = std::os::unix::fs::symlink("busybox", t.join("bin").join(app));
    }
    l.gzip_layer(&t)
}

/// The digest `test/img:v1` has now, as the registry answers a `HEAD`.
fn digest_of(d: &Path, host: &str) -> String {
    let out = run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{host}/test/img:v1"),
    ]));
    let _ = d;
    // skopeo reports the platform manifest's digest; the index's is what a HEAD returns, but
    // either pins the image.
    stdout(&out).trim().to_string()
}

#[test]
fn concurrent_first_launches_convert_once_and_disable_cache_leaves_nothing() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo"]) else {
        return;
    };
    if !can_launch() {
        return;
    }
    let d = t.path();
    prepare(d);
    let reg = registry_with_test_image(d, &layout);
    let uri = format!("docker://{}/test/img:v1", reg.host());
    let children: Vec<_> = (0..6)
        .map(|_| {
            sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut converted = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "hello v2\n");
        converted += stderr(&out).matches("Converting OCI blobs").count();
    }
    assert_eq!(
        converted, 1,
        "one conversion for six concurrent first launches"
    );
    assert_eq!(entries(d, "oci-tmp").len(), 1);
    let names: Vec<String> = std::fs::read_dir(d.join("cache/oci-tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "no temporary file left: {names:?}"
    );

    // --disable-cache (and its twin): fetched into the temporary directory, removed after.
    let fresh = d.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::create_dir_all(fresh.join("tmp")).unwrap();
    let out = run_ok(sifr_nohttps(
        &fresh,
        &["exec", "--disable-cache", &uri, "cat", "/etc/hello"],
    ));
    assert_eq!(stdout(&out), "hello v2\n");
    let mut c = sifr_nohttps(&fresh, &["exec", &uri, "echo"]);
    c.env("APPTAINER_DISABLE_CACHE", "1");
    run_ok(c);
    assert!(
        !fresh.join("cache/oci-tmp").exists(),
        "no cache entry with --disable-cache"
    );
    assert!(
        !fresh.join("cache/blob").exists()
            || std::fs::read_dir(fresh.join("cache/blob/sha256"))
                .map(|mut r| r.next().is_none())
                .unwrap_or(true),
        "no blobs cached with --disable-cache"
    );
    assert_eq!(
        listing(&fresh.join("tmp")),
        Vec::<String>::new(),
        "the temporary image is removed"
    );
}

#[test]
fn oci_archives_and_layouts_run_and_are_reconverted_when_they_change() {
    let Some((t, layout)) = setup(&["skopeo"]) else {
        return;
    };
    if !can_launch() {
        return;
    }
    let d = t.path();
    prepare(d);
    let archive = d.join("img.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .arg("."),
    );
    let uri = format!("oci-archive:{}:v1", archive.display());
    let out = run_ok(sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"]));
    assert_eq!(stdout(&out), "hello v2\n");
    let out = run_ok(sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"]));
    assert!(stderr(&out).contains("Using cached SIF image"));
    let out = run_ok(sifr_nohttps(
        d,
        &[
            "exec",
            &format!("oci:{}:v1", layout.display()),
            "cat",
            "/usr/share/layer3",
        ],
    ));
    assert_eq!(stdout(&out), "from a zstd layer\n");
    assert_eq!(entries(d, "oci-tmp").len(), 2);
    // A rewritten archive is a new image.
    std::thread::sleep(std::time::Duration::from_millis(20));
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .arg("."),
    );
    let out = run_ok(sifr_nohttps(d, &["exec", &uri, "echo"]));
    assert!(
        stderr(&out).contains("Converting OCI blobs"),
        "{}",
        stderr(&out)
    );
}

/// A small HTTP/1.1 file server: `HEAD` and `GET` of the files in `dir`, with `ETag`,
/// `Last-Modified` and `Content-Length`; counts the `GET`s.
struct FileServer {
    port: u16,
    gets: Arc<Mutex<usize>>,
}

impl FileServer {
    fn start(dir: PathBuf) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let gets = Arc::new(Mutex::new(0));
        let counter = gets.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let Ok(head) = sifr_testkit::http::read_head(&mut reader) else {
                    continue;
                };
                let path = dir.join(head.target.trim_start_matches('/'));
                let Ok(body) = std::fs::read(&path) else {
                    let _ = conn.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                };
                let md = std::fs::metadata(&path).unwrap();
                let mtime = md
                    .modified()
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                let etag = format!("\"{:x}-{:x}\"", body.len(), mtime);
                let header = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {etag}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(header.as_bytes());
                if head.method == "GET" {
                    *counter.lock().unwrap() += 1;
                    let _ = conn.write_all(&body);
                }
            }
        });
        FileServer { port, gets }
    }

    fn gets(&self) -> usize {
        *self.gets.lock().unwrap()
    }
}

#[test]
fn http_uris_download_once_until_the_file_changes_and_refuse_what_is_not_an_image() {
    let Some((t, layout)) = setup(&["skopeo"]) else {
        return;
    };
    if !can_launch() {
        return;
    }
    let d = t.path();
    prepare(d);
    let served = d.join("served");
    std::fs::create_dir_all(&served).unwrap();
    // The SIF served is one sifr pulled from the local layout.
    run_ok(sifr_nohttps(
        d,
        &[
            "pull",
            served.join("img.sif").to_str().unwrap(),
            &format!("oci:{}:v1", layout.display()),
        ],
    ));
    std::fs::write(served.join("page.html"), "<html>please log in</html>\n").unwrap();
    let server = FileServer::start(served.clone());
    let url = format!("http://127.0.0.1:{}/img.sif", server.port);

    let out = run_ok(sifr_nohttps(d, &["exec", &url, "cat", "/etc/hello"]));
    assert_eq!(stdout(&out), "hello v2\n");
    let out = run_ok(sifr_nohttps(d, &["run", &url, "x"]));
    assert_eq!(stdout(&out), "ep x\n");
    assert!(stderr(&out).contains("Using cached SIF image"));
    assert_eq!(server.gets(), 1, "downloaded once");
    assert_eq!(entries(d, "net").len(), 1);

    // `pull` of the URL writes the same file.
    run_ok(sifr_nohttps(d, &["pull", "copy.sif", &url]));
    assert_eq!(
        std::fs::read(d.join("copy.sif")).unwrap(),
        std::fs::read(served.join("img.sif")).unwrap()
    );

    // A replaced file is downloaded again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let bytes = std::fs::read(served.join("img.sif")).unwrap();
    std::fs::write(served.join("img.sif"), &bytes).unwrap();
    run_ok(sifr_nohttps(d, &["exec", &url, "echo"]));
    assert_eq!(entries(d, "net").len(), 2);

    // A page that is not an image: a clear error, nothing cached, nothing left behind.
    let page = format!("http://127.0.0.1:{}/page.html", server.port);
    let out = sifr_nohttps(d, &["exec", &page, "echo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a SIF or SquashFS image"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));
    assert_eq!(entries(d, "net").len(), 2);
    let out = sifr_nohttps(d, &["pull", "page.sif", &page])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(!d.join("page.sif").exists());
    let missing = format!("http://127.0.0.1:{}/none.sif", server.port);
    let out = sifr_nohttps(d, &["exec", &missing, "echo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("HTTP 404"), "{}", stderr(&out));
}

#[test]
fn unreachable_registries_and_unsupported_transports_fail_clearly() {
    let Some((t, _layout)) = setup(&["skopeo"]) else {
        return;
    };
    let d = t.path();
    prepare(d);
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("docker://127.0.0.1:{port}/test/img:v1");
    let out = sifr_nohttps(d, &["exec", &uri, "echo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot look up `{uri}`")), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "reported once: {err}");
    assert!(entries(d, "oci-tmp").is_empty());
    for (uri, word) in [
        ("shub://user/image", "unsupported transport type: shub"),
        // Apptainer's stock configuration has no library either.
        (
            "library://user/c/img",
            "no default remote with library client in use",
        ),
        (
            "docker-daemon:alpine:3",
            "unsupported transport type: docker-daemon",
        ),
    ] {
        let out = sifr_nohttps(d, &["exec", uri, "echo"]).output().unwrap();
        assert_eq!(out.status.code(), Some(255), "{uri}");
        assert!(stderr(&out).contains(word), "{uri}: {}", stderr(&out));
    }
}

#[test]
fn instances_start_from_docker_uris() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo"]) else {
        return;
    };
    if !can_launch() {
        return;
    }
    let d = t.path();
    prepare(d);
    let reg = registry_with_test_image(d, &layout);
    let uri = format!("docker://{}/test/img:v1", reg.host());
    let name = format!("uri{}", std::process::id());
    run_ok(sifr_nohttps(d, &["instance", "start", &uri, &name]));
    let out = sifr_nohttps(
        d,
        &["exec", &format!("instance://{name}"), "cat", "/etc/hello"],
    )
    .output()
    .unwrap();
    let stop = sifr_nohttps(d, &["instance", "stop", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello v2\n");
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert_eq!(entries(d, "oci-tmp").len(), 1);

    // With --disable-cache the instance runs from a temporary copy, removed once it runs.
    let name = format!("uritmp{}", std::process::id());
    run_ok(sifr_nohttps(
        d,
        &["instance", "start", "--disable-cache", &uri, &name],
    ));
    assert_eq!(listing(&d.join("tmp")), Vec::<String>::new());
    let out = sifr_nohttps(
        d,
        &["exec", &format!("instance://{name}"), "cat", "/etc/hello"],
    )
    .output()
    .unwrap();
    let stop = sifr_nohttps(d, &["instance", "stop", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello v2\n");
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert_eq!(entries(d, "oci-tmp").len(), 1);
}

#[test]
fn oras_uris_run_the_pushed_sif_from_one_download() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo"]) else {
        return;
    };
    if !can_launch() {
        return;
    }
    let d = t.path();
    prepare(d);
    let reg = registry_with_test_image(d, &layout);
    run_ok(sifr_nohttps(
        d,
        &["pull", "img.sif", &format!("oci:{}:v1", layout.display())],
    ));
    let uri = format!("oras://{}/test/sif:v1", reg.host());
    run_ok(sifr_nohttps(d, &["push", "img.sif", &uri]));
    let blobs = requests(&reg.log, "GET", "blobs");
    let out = run_ok(sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"]));
    assert_eq!(stdout(&out), "hello v2\n");
    let out = run_ok(sifr_nohttps(d, &["run", &uri, "z"]));
    assert_eq!(stdout(&out), "ep z\n");
    assert!(stderr(&out).contains("Using cached SIF image"));
    assert_eq!(entries(d, "oras").len(), 1);
    let cached = d.join("cache/oras").join(&entries(d, "oras")[0]);
    assert_eq!(
        std::fs::read(cached).unwrap(),
        std::fs::read(d.join("img.sif")).unwrap(),
        "the cached file is the pushed SIF"
    );
    assert_eq!(
        requests(&reg.log, "GET", "blobs"),
        blobs + 1,
        "one download of the SIF's blob"
    );
    // A container image named as an ORAS artifact: Apptainer's hint, nothing cached.
    let wrong = format!("oras://{}/test/img:v1", reg.host());
    let out = sifr_nohttps(d, &["exec", &wrong, "echo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("docker://"), "{}", stderr(&out));
    assert_eq!(entries(d, "oras").len(), 1);
}

#[test]
fn a_fetch_killed_mid_conversion_leaves_nothing_the_next_launch_or_cache_clean_cannot_handle() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo"]) else {
        return;
    };
    if !can_launch() {
        return;
    }
    let d = t.path();
    prepare(d);
    let reg = registry_with_test_image(d, &layout);
    let uri = format!("docker://{}/test/img:v1", reg.host());
    let dir = d.join("cache/oci-tmp");
    let tmp_files = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| n.ends_with(".tmp"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Kill the launch and its fetching child (one process group) once the SIF is being written.
    let mut c = sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"]);
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while tmp_files().is_empty() && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let pgid = child.id() as i32;
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status();
    let _ = child.wait();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(entries(d, "oci-tmp").is_empty(), "no half-written entry");
    // The next launch converts again and runs.
    let out = run_ok(sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"]));
    assert_eq!(stdout(&out), "hello v2\n");
    assert_eq!(entries(d, "oci-tmp").len(), 1);
    assert!(tmp_files().is_empty(), "the refill replaced the leftover");
    // A leftover of another key is swept by `cache clean` (no entry of its own is touched
    // by the sweep; clean removes the entries as Apptainer's does).
    std::fs::write(dir.join(".orphan.tmp"), b"half").unwrap();
    std::fs::write(dir.join(".orphan.lock"), b"").unwrap();
    let out = run_ok(sifr_nohttps(
        d,
        &["cache", "clean", "-f", "--type", "oci-tmp"],
    ));
    assert!(
        stderr(&out).contains("Removed 1 unfinished oci-tmp cache file(s)"),
        "{}",
        stderr(&out)
    );
    assert!(tmp_files().is_empty());
}

/// A fake Sylabs-style container library: `GET /v1/images/PATH:TAG?arch=...` describes the
/// image (`{"data":{"hash":"sha256.HEX","size":N}}`), `GET /v1/imagefile/PATH:TAG?arch=...`
/// redirects (303) to `/files/NAME`, which serves the file. `bad` is described with a wrong
/// hash. Counts the file downloads.
fn library_server(sif: PathBuf) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let Ok(head) = sifr_testkit::http::read_head(&mut reader) else {
                continue;
            };
            log.lock().unwrap().push(head.target.clone());
            let bytes = std::fs::read(&sif).unwrap();
            let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
            let reply = |conn: &mut std::net::TcpStream, status: &str, extra: &str, body: &[u8]| {
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                let _ = conn.write_all(body);
            };
            if !query.starts_with("arch=") && path.starts_with("/v1/") {
                reply(&mut conn, "400 Bad Request", "", b"");
            } else if let Some(p) = path.strip_prefix("/v1/images/") {
                let hash = if p.starts_with("e/c/bad:") {
                    "sha256.".to_string() + &"0".repeat(64)
                } else {
                    format!("sha256.{}", sifr_oci::Digest::of(&bytes).hex())
                };
                let body = format!(
                    "{{\"data\":{{\"hash\":\"{hash}\",\"size\":{}}}}}",
                    bytes.len()
                );
                reply(
                    &mut conn,
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    body.as_bytes(),
                );
            } else if path.starts_with("/v1/imagefile/") {
                reply(
                    &mut conn,
                    "303 See Other",
                    "Location: /files/img.sif\r\n",
                    b"",
                );
            } else if path == "/files/img.sif" {
                reply(&mut conn, "200 OK", "", &bytes);
            } else {
                reply(&mut conn, "404 Not Found", "", b"");
            }
        }
    });
    (port, seen)
}

/// `library://` as Apptainer's library client reads it (internal/pkg/client/library): the
/// library named in the URI (or `pull --library`), the image described, then downloaded
/// through the storage redirect and checked against the described hash. e2e/pull's library
/// cases need Sylabs' service; these run against a fake one.
#[test]
fn library_uris_pull_and_run_from_the_library_the_uri_names() {
    let Some((t, layout)) = setup(&["skopeo"]) else {
        return;
    };
    let d = t.path();
    prepare(d);
    let served = d.join("img.sif");
    run_ok(sifr_nohttps(
        d,
        &[
            "pull",
            served.to_str().unwrap(),
            &format!("oci:{}:v1", layout.display()),
        ],
    ));
    let (port, seen) = library_server(served.clone());
    let uri = format!("library://127.0.0.1:{port}/e/c/img:v1");
    run_ok(sifr_nohttps(d, &["pull", "a.sif", &uri]));
    assert_eq!(
        std::fs::read(d.join("a.sif")).unwrap(),
        std::fs::read(&served).unwrap()
    );
    let arch = format!("?arch={}", host_goarch());
    assert!(
        seen.lock()
            .unwrap()
            .contains(&format!("/v1/imagefile/e/c/img:v1{arch}")),
        "{:?}",
        seen.lock().unwrap()
    );
    // The library given with --library for a URI that names none.
    let mut c = sifr_nohttps(
        d,
        &[
            "pull",
            "--library",
            &format!("http://127.0.0.1:{port}"),
            "b.sif",
            "library://e/c/img:v1",
        ],
    );
    c.env_remove("APPTAINER_NOHTTPS");
    run_ok(c);
    assert!(d.join("b.sif").is_file());
    // A download whose hash is not the described one: refused, nothing written.
    let bad = format!("library://127.0.0.1:{port}/e/c/bad:v1");
    let out = sifr_nohttps(d, &["pull", "c.sif", &bad]).output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr(&out).contains("describes it as"), "{}", stderr(&out));
    assert!(!d.join("c.sif").exists());

    if !can_launch() {
        return;
    }
    let files = || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|t| t.starts_with("/files/"))
            .count()
    };
    let before = files();
    let out = run_ok(sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"]));
    assert_eq!(stdout(&out), "hello v2\n");
    let out = run_ok(sifr_nohttps(d, &["run", &uri, "q"]));
    assert_eq!(stdout(&out), "ep q\n");
    assert!(stderr(&out).contains("Using cached SIF image"));
    assert_eq!(files(), before + 1, "downloaded once");
    assert_eq!(entries(d, "library").len(), 1);
}
