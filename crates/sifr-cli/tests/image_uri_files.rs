//! Image URIs served by plain URL or a container library: `sifr exec|run|pull https://...`
//! and `library://...`, against small servers in the test (a file server with `ETag`, and a
//! Sylabs-style library: describe, then a redirect to storage). The expectations come from
//! Apptainer's `replaceURIWithImage` (`handleNet`, `handleLibrary`) and its library client
//! (internal/pkg/client/library).
//!
//! Runs containers as root (loop devices), so it is in the nextest `host-state` group.

mod registries;
mod uris;

use std::io::{BufReader, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use registries::{run_ok, setup};
use sifr_testkit::{stderr, stdout};
use uris::{can_launch, entries, host_goarch, prepare, sifr_nohttps};

/// An answer of the test servers: status line text, extra header lines, body.
struct Reply {
    status: &'static str,
    headers: String,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: &'static str, headers: &str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: headers.to_string(),
            body,
        }
    }
}

/// An HTTP/1.1 server on a free port of 127.0.0.1, one request per connection, answering each
/// with `handler`'s reply (no body for `HEAD`); returns the port.
fn serve(handler: impl Fn(&sifr_testkit::http::Head) -> Reply + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let Ok(head) = sifr_testkit::http::read_head(&mut reader) else {
                continue;
            };
            let r = handler(&head);
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
                    r.status,
                    r.body.len(),
                    r.headers
                )
                .as_bytes(),
            );
            if head.method != "HEAD" {
                let _ = conn.write_all(&r.body);
            }
        }
    });
    port
}

/// A file server: `HEAD` and `GET` of the files in `dir`, with an `ETag` made of the size and
/// the modification time; counts the `GET`s of files.
struct FileServer {
    port: u16,
    gets: Arc<Mutex<usize>>,
}

impl FileServer {
    fn start(dir: PathBuf) -> FileServer {
        let gets = Arc::new(Mutex::new(0));
        let counter = gets.clone();
        let port = serve(move |head| {
            let path = dir.join(head.target.trim_start_matches('/'));
            let Ok(body) = std::fs::read(&path) else {
                return Reply::new("404 Not Found", "", Vec::new());
            };
            let mtime = std::fs::metadata(&path)
                .unwrap()
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            if head.method == "GET" {
                *counter.lock().unwrap() += 1;
            }
            let etag = format!("ETag: \"{:x}-{mtime:x}\"\r\n", body.len());
            Reply::new("200 OK", &etag, body)
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

/// A fake Sylabs-style container library: `GET /v1/images/PATH:TAG?arch=...` describes the
/// image (`{"data":{"hash":"sha256.HEX","size":N}}`), `GET /v1/imagefile/PATH:TAG?arch=...`
/// redirects (303) to `/files/NAME`, which serves the file. `bad` is described with a wrong
/// hash. Counts the file downloads.
fn library_server(sif: PathBuf) -> (u16, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let port = serve(move |head| {
        log.lock().unwrap().push(head.target.clone());
        let bytes = std::fs::read(&sif).unwrap();
        let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
        if !query.starts_with("arch=") && path.starts_with("/v1/") {
            Reply::new("400 Bad Request", "", Vec::new())
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
            Reply::new(
                "200 OK",
                "Content-Type: application/json\r\n",
                body.into_bytes(),
            )
        } else if path.starts_with("/v1/imagefile/") {
            Reply::new("303 See Other", "Location: /files/img.sif\r\n", Vec::new())
        } else if path == "/files/img.sif" {
            Reply::new("200 OK", "", bytes)
        } else {
            Reply::new("404 Not Found", "", Vec::new())
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
