//! Image URIs from registries where an action takes an image: `sifr exec|run|test|shell|
//! inspect|run-help|instance start docker://...`, `oras://`, `oci-archive:`, `oci:`, end to end
//! against Debian's `docker-registry` on 127.0.0.1 (`image_uri_files.rs` has `http(s)://` and
//! `library://`). Apptainer runs these through `replaceURIWithImage`
//! (cmd/internal/cli/actions.go); its e2e tests `e2e/actions` (`actionFromURI`: exec/run/test/
//! shell of `docker://`, `oras://`, `https://` images, with and without `--disable-cache`) are
//! the expectations ported here.
//!
//! Runs containers as root (loop devices), so it is in the nextest `host-state` group.

mod registries;
mod uris;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use registries::{Layout, push, registry_with_test_image, run_ok, setup};
use sifr_testkit::{stderr, stdout};
use uris::{can_launch, entries, host_goarch, listing, prepare, sifr_nohttps};

/// Requests sifr made to the registry for `what` (`manifests`, `blobs`), by method.
fn requests(log: &Path, method: &str, what: &str) -> usize {
    registries::settled_log(log)
        .lines()
        .filter(|l| l.contains("sifr/") && l.contains(&format!("\"{method} /v2/")))
        .filter(|l| l.contains(&format!("/{what}/")))
        .count()
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
    assert_eq!(err.matches("FATAL:").count(), 1, "reported once: {err}");
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
    // The instance reads /etc/hello of the image, then stops; `start` gets `flags` first.
    let round_trip = |name: &str, flags: &[&str]| {
        let start: Vec<&str> = ["instance", "start"]
            .iter()
            .chain(flags)
            .chain([uri.as_str(), name].iter())
            .copied()
            .collect();
        run_ok(sifr_nohttps(d, &start));
        let running = listing(&d.join("tmp"));
        let out = sifr_nohttps(
            d,
            &["exec", &format!("instance://{name}"), "cat", "/etc/hello"],
        )
        .output()
        .unwrap();
        let stop = sifr_nohttps(d, &["instance", "stop", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "hello v2\n");
        assert!(stop.status.success(), "{}", stderr(&stop));
        running
    };
    round_trip(&format!("uri{}", std::process::id()), &[]);
    assert_eq!(entries(d, "oci-tmp").len(), 1);
    // With --disable-cache the instance runs from a temporary copy, removed once it runs.
    let running = round_trip(
        &format!("uritmp{}", std::process::id()),
        &["--disable-cache"],
    );
    assert_eq!(running, Vec::<String>::new());
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
                    .filter(|n| n.contains(".tmp"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Kill the launch and its fetching child (one process group) once the SIF is being written
    // (the SIF writer's partial file beside `.KEY.tmp`, which appears only complete).
    let mut c = sifr_nohttps(d, &["exec", &uri, "cat", "/etc/hello"]);
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !tmp_files().iter().any(|n| n.contains(".sifr-build-"))
        && start.elapsed() < std::time::Duration::from_secs(30)
    {
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
    // The killed writer's partial SIF stays until a sweep: it is too fresh for the refill's.
    let left = tmp_files();
    assert!(
        left.len() == 1 && left[0].contains(".sifr-build-"),
        "only the killed writer's partial file: {left:?}"
    );
    // `cache clean` sweeps it, and a leftover of another key (clean removes the entries as
    // Apptainer's does).
    std::fs::write(dir.join(".orphan.tmp"), b"half").unwrap();
    std::fs::write(dir.join(".orphan.lock"), b"").unwrap();
    let out = run_ok(sifr_nohttps(
        d,
        &["cache", "clean", "-f", "--type", "oci-tmp"],
    ));
    assert!(
        stderr(&out).contains("Removed 2 unfinished oci-tmp cache file(s)"),
        "{}",
        stderr(&out)
    );
    assert!(tmp_files().is_empty());
}
