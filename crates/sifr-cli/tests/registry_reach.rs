//! The preflight's question to a `Bootstrap: docker` base's registry (issue 25, "fail fast"):
//! `sifr deffile check` and `sifr build` ask Debian's `docker-registry` on 127.0.0.1 whether
//! it answers, before anything is bootstrapped. A registry that answers (`200`, or `401`
//! asking for credentials over TLS) passes; a closed port, a name that does not resolve and a
//! plain-HTTP registry asked over HTTPS each fail with their own one-line reason, and only the
//! last suggests `--nohttps`. Nothing here starts a container. Skips, saying why, when a tool
//! is missing (`apt-get install docker-registry openssl apache2-utils`).

mod registries;

use std::path::Path;
use std::process::Output;

use registries::{Registry, sifr_in, tls_htpasswd_config};
use sifr_testkit::{missing, stderr};

fn tools() -> bool {
    match missing(&["docker-registry", "openssl", "htpasswd"]) {
        Some(m) => {
            sifr_testkit::skip(format_args!("{m} not installed"));
            false
        }
        None => true,
    }
}

/// `sifr ARGS` in `dir` on a definition whose base is `from`.
fn check(dir: &Path, from: &str, args: &[&str]) -> Output {
    std::fs::write(
        dir.join("reach.def"),
        format!("Bootstrap: docker\nFrom: {from}\n\n%post\n    true\n"),
    )
    .unwrap();
    let mut all = args.to_vec();
    all.push("reach.def");
    sifr_in(dir, &dir.join("cache"), &all).output().unwrap()
}

/// A port of 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_registry_that_answers_passes_even_when_it_asks_for_credentials() {
    if !tools() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let plain = Registry::start(&t.path().join("plain").tap_mkdir(), "");
    let out = check(
        t.path(),
        &format!("{}/test/img:v1", plain.host()),
        &["deffile", "check", "--nohttps"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log = registries::settled_log(&plain.log);
    assert!(log.contains("\"GET /v2/ "), "no /v2/ request: {log}");

    // TLS with htpasswd: `/v2/` answers 401, which is an answer.
    let d = t.path().join("tls").tap_mkdir();
    let tls = Registry::start(&d, &tls_htpasswd_config(&d));
    let mut cmd = sifr_in(
        t.path(),
        &t.path().join("cache"),
        &["deffile", "check", "reach.def"],
    );
    std::fs::write(
        t.path().join("reach.def"),
        format!("Bootstrap: docker\nFrom: {}/test/img:v1\n", tls.host()),
    )
    .unwrap();
    let out = cmd.env("SSL_CERT_FILE", d.join("ca.crt")).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        registries::settled_log(&tls.log).contains("\"GET /v2/ HTTP/1.1\" 401"),
        "{}",
        std::fs::read_to_string(&tls.log).unwrap()
    );
}

#[test]
fn unreachable_registries_fail_in_one_line_with_their_own_reason() {
    if !tools() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let port = closed_port();
    for (from, says, nohttps) in [
        (
            format!("127.0.0.1:{port}/app:1"),
            "refuses connections",
            false,
        ),
        (
            "registry.invalid/app:1".to_string(),
            "does not resolve",
            false,
        ),
    ] {
        let out = check(t.path(), &from, &["deffile", "check"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{from}: {err}");
        assert!(err.contains(says) && err.contains(&from), "{from}: {err}");
        assert!(err.contains("reach.def:2:"), "{err}");
        assert_eq!(err.contains("--nohttps"), nohttps, "{from}: {err}");
    }

    // Asked over HTTPS, a plain-HTTP registry answers plain HTTP: the one case for the hint.
    let plain = Registry::start(&t.path().join("plain").tap_mkdir(), "");
    let from = format!("{}/test/img:v1", plain.host());
    let out = check(t.path(), &from, &["deffile", "check"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("plain HTTP") && err.contains("--nohttps"),
        "{err}"
    );

    // A TLS registry whose CA is not trusted: a TLS failure, with no `--nohttps` hint (the
    // server answers a plain request on its port with 400, which is no registry's answer).
    let d = t.path().join("tls").tap_mkdir();
    let tls = Registry::start(&d, &tls_htpasswd_config(&d));
    let out = check(
        t.path(),
        &format!("{}/test/img:v1", tls.host()),
        &["deffile", "check"],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("fails TLS") && err.contains("SSL_CERT_FILE"),
        "{err}"
    );
    assert!(!err.contains("--nohttps"), "{err}");

    // `build` refuses before bootstrapping: nothing is written, and it says so at once.
    let start = std::time::Instant::now();
    let out = check(
        t.path(),
        &format!("127.0.0.1:{port}/app:1"),
        &["build", "out.sif"],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("refuses connections"), "{err}");
    assert!(!err.contains("bootstrap:"), "it bootstrapped: {err}");
    assert!(!t.path().join("out.sif").exists());
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn a_base_pinned_by_digest_is_only_a_warning_when_its_registry_is_unreachable() {
    if !tools() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let from = format!("127.0.0.1:{}/app@sha256:{}", closed_port(), "0".repeat(64));
    let out = check(t.path(), &from, &["deffile", "check"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("WARNING:") && err.contains("refuses connections"),
        "{err}"
    );
    assert!(err.contains("build cache"), "{err}");
}

/// `mkdir` in place, for building paths inline.
trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
