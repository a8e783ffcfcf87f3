//! `sifr registry login|logout|list` against Debian's `docker-registry` on 127.0.0.1, with
//! htpasswd over TLS and with token auth backed by a test issuer: a login is checked before
//! it is stored, stored privately where Apptainer keeps it, used by pulls with the documented
//! precedence, listed without its password, and removed by logout. Skips, saying why, when a
//! tool is missing (`apt-get install docker-registry skopeo busybox-static openssl
//! apache2-utils`).

mod registries;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use registries::{
    PASSWORD, Registry, USER, push, run_ok, setup, sifr_in, tls_htpasswd_config, token_registry,
};
use sifr_testkit::{stderr, stdout};

/// Run `cmd` with `input` on stdin.
fn with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut c = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

/// Run `cmd` (its program, arguments and environment) on a pseudo-terminal made by
/// `script(1)`; type `answer` once `question` shows. Everything the terminal showed.
fn on_a_terminal(cmd: Command, question: &str, answer: &str) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        line.push_str(&format!(" '{}'", a.to_string_lossy()));
    }
    let mut c = Command::new("script");
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        c.current_dir(dir);
    }
    let mut child = c
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = Vec::new();
    while !String::from_utf8_lossy(&shown).contains(question) {
        match rx.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(chunk) => shown.extend(chunk),
            Err(e) => panic!("no `{question}` ({e}): {}", String::from_utf8_lossy(&shown)),
        }
    }
    stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    shown.extend(rx.try_iter().flatten());
    let shown = String::from_utf8_lossy(&shown).into_owned();
    assert!(status.success(), "{line}: {shown}");
    shown
}

/// Where a login lands for sifr run by `sifr_in(d, ...)` (HOME is `d`).
fn stored(d: &Path) -> PathBuf {
    d.join(".apptainer/docker-config.json")
}

fn fails_with(out: &Output, needle: &str) {
    assert!(!out.status.success(), "expected a failure: {}", stderr(out));
    assert!(
        stderr(out).contains(needle),
        "wanted `{needle}`: {}",
        stderr(out)
    );
}

/// A `docker login`-style `~/.docker/config.json` in `d` for `host`.
fn docker_config(d: &Path, host: &str, password: &str) {
    use base64::Engine as _;
    std::fs::create_dir_all(d.join(".docker")).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
    std::fs::write(
        d.join(".docker/config.json"),
        serde_json::json!({"auths": {host: {"auth": auth}}}).to_string(),
    )
    .unwrap();
}

#[test]
fn login_over_tls_with_htpasswd_is_checked_stored_privately_listed_used_and_logged_out() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo", "openssl", "htpasswd"]) else {
        return;
    };
    let d = t.path();
    let reg = Registry::start(d, &tls_htpasswd_config(d));
    std::fs::create_dir(d.join("certs")).unwrap();
    std::fs::copy(d.join("ca.crt"), d.join("certs/ca.crt")).unwrap();
    let certs = d.join("certs").display().to_string();
    let creds = format!("{USER}:{PASSWORD}");
    push(
        &layout,
        &format!("{}/test/img:v1", reg.host()),
        &["--dest-cert-dir", &certs, "--dest-creds", &creds],
    );
    let cache = d.join("cache");
    let ca = d.join("ca.crt");
    let registry = format!("docker://{}", reg.host());
    let src = format!("{registry}/test/img:v1");
    let sifr = |args: &[&str]| {
        let mut c = sifr_in(d, &cache, args);
        c.env("SSL_CERT_FILE", &ca);
        c
    };
    let login = ["registry", "login", "--username", USER, "--password-stdin"];

    // A wrong password is refused by the registry, and nothing is stored.
    let out = with_stdin(sifr(&[&login[..], &[&registry]].concat()), "wrong\n");
    fails_with(
        &out,
        &format!(
            "`{}` refused the credentials of user `{USER}` (as given",
            reg.host()
        ),
    );
    fails_with(&out, "hint: check the username and password");
    assert!(!stored(d).exists(), "a refused login is not stored");

    // The right one is stored, readable by its owner only, in Docker's format.
    let out = with_stdin(
        sifr(&[&login[..], &[&registry]].concat()),
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Token stored in"), "{}", stderr(&out));
    let meta = std::fs::metadata(stored(d)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(stored(d)).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(doc["auths"][reg.host()]["auth"].is_string(), "{text}");
    assert!(!text.contains(PASSWORD), "no plain-text password: {text}");

    // `list --json`: the same, as JSON.
    let out = run_ok(sifr(&["registry", "list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|e| e["registry"] == reg.host().as_str() && e["username"] == USER),
        "{v}"
    );
    assert!(!stdout(&out).contains(PASSWORD));
    // `list` shows the registry and the user, never the password.
    let out = run_ok(sifr(&["registry", "list"]));
    let listed = stdout(&out);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&reg.host()) && l.ends_with(USER)),
        "{listed}"
    );
    let auth = doc["auths"][reg.host()]["auth"].as_str().unwrap();
    assert!(
        !listed.contains(PASSWORD) && !listed.contains(auth),
        "{listed}"
    );

    // A pull with no other credentials uses the stored login.
    run_ok(sifr(&["pull", "a.sif", &src]));
    assert!(d.join("a.sif").is_file());

    // The prompt reads a piped answer too (a terminal would not echo it).
    let out = with_stdin(
        sifr(&["registry", "login", "-u", USER, &registry]),
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Password / Token:"),
        "{}",
        stderr(&out)
    );

    // On a terminal the password is not echoed.
    if registries::have("script") {
        let shown = on_a_terminal(
            sifr(&["registry", "login", "-u", USER, &registry]),
            "Password / Token: ",
            PASSWORD,
        );
        assert!(shown.contains("Token stored in"), "{shown}");
        assert!(
            !shown.contains(PASSWORD),
            "the password was echoed: {shown}"
        );
    } else {
        sifr_testkit::skip("the terminal prompt: script (util-linux) not installed");
    }

    // Logout removes it: the list no longer has it and pulls are anonymous again.
    run_ok(sifr(&["registry", "logout", &registry]));
    assert!(!stdout(&run_ok(sifr(&["registry", "list"]))).contains(&reg.host()));
    let out = sifr(&["pull", "b.sif", &src]).output().unwrap();
    fails_with(&out, "requires authentication");
    fails_with(&out, "hint: log in with `sifr registry login");
    // A second logout has nothing to do and says so.
    let out = run_ok(sifr(&["registry", "logout", &registry]));
    assert!(
        stderr(&out).contains("no existing login"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn login_with_token_auth_and_the_order_pulls_take_credentials_in() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo", "openssl"]) else {
        return;
    };
    let d = t.path();
    let (issuer, reg) = token_registry(d, &layout);
    let cache = d.join("cache");
    let registry = format!("docker://{}", reg.host());
    let src = format!("{registry}/test/img:v1");
    let login = |password: &str, extra: &[&str]| {
        let args = [
            &[
                "registry",
                "login",
                "--nohttps",
                "-u",
                USER,
                "--password-stdin",
            ][..],
            extra,
            &[&registry],
        ]
        .concat();
        with_stdin(sifr_in(d, &cache, &args), &format!("{password}\n"))
    };
    let pull = |name: &str| {
        sifr_in(d, &cache, &["pull", "--nohttps", "--force", name, &src])
            .output()
            .unwrap()
    };

    // The issuer refuses a wrong password; nothing is stored. The check asks for no
    // repository scope: a login is for the whole registry.
    fails_with(&login("wrong", &[]), "refused the credentials");
    assert!(!stored(d).exists());
    assert!(
        issuer
            .requests()
            .iter()
            .any(|r| r.by_sifr() && r.refused && r.scopes.is_empty()),
        "{:?}",
        issuer.requests()
    );
    let out = login(PASSWORD, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The stored login is what the pull sends to the issuer.
    issuer.forget();
    let out = pull("a.sif");
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = issuer.requests();
    let sifr_seen: Vec<_> = seen.iter().filter(|r| r.by_sifr()).collect();
    assert_eq!(sifr_seen.len(), 1, "{seen:?}");
    assert_eq!(sifr_seen[0].user.as_deref(), Some(USER));
    assert_eq!(sifr_seen[0].scopes, ["repository:test/img:pull"]);

    // The environment beats the stored login...
    let out = sifr_in(d, &cache, &["pull", "--nohttps", "--force", "e.sif", &src])
        .env("APPTAINER_DOCKER_USERNAME", USER)
        .env("APPTAINER_DOCKER_PASSWORD", "wrong")
        .output()
        .unwrap();
    fails_with(&out, "(from APPTAINER_DOCKER_USERNAME");
    // ...and the stored login beats Docker's config.json.
    docker_config(d, &reg.host(), "wrong");
    assert!(pull("b.sif").status.success());

    // Logged out, Docker's file answers; when it is wrong, the error names it.
    run_ok(sifr_in(d, &cache, &["registry", "logout", &registry]));
    let out = pull("c.sif");
    fails_with(&out, ".docker/config.json`, HTTP 401)");
    fails_with(&out, "hint: the login stored in");
    docker_config(d, &reg.host(), PASSWORD);
    assert!(pull("c.sif").status.success());
    std::fs::remove_file(d.join(".docker/config.json")).unwrap();

    // --authfile names the one file that login writes and pulls read.
    let other = d.join("elsewhere.json");
    let out = login(PASSWORD, &["--authfile", other.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(other.is_file());
    assert!(
        !std::fs::read_to_string(stored(d))
            .unwrap()
            .contains(&reg.host()),
        "the default file is untouched"
    );
    fails_with(&pull("f.sif"), "requires authentication");
    let out = sifr_in(
        d,
        &cache,
        &[
            "pull",
            "--nohttps",
            "--authfile",
            other.to_str().unwrap(),
            "f.sif",
            &src,
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_ok(sifr_in(
        d,
        &cache,
        &["registry", "list", "--authfile", other.to_str().unwrap()],
    ));
    assert!(stdout(&out).contains(&reg.host()), "{}", stdout(&out));
}

/// Apptainer 1.5.3's `remote login docker://HOST` warns and runs `registry login`
/// (internal/app/apptainer/remote_login.go); `remote logout` likewise. A remote endpoint's
/// name, which sifr has no counterpart for, and `--tokenfile` are refused.
#[test]
fn remote_login_and_logout_of_a_registry_are_registry_login_and_logout() {
    let Some((t, _layout)) = setup(&["docker-registry", "openssl", "htpasswd"]) else {
        return;
    };
    let d = t.path();
    let reg = Registry::start(d, &tls_htpasswd_config(d));
    let cache = d.join("cache");
    let ca = d.join("ca.crt");
    let sifr = |args: &[&str]| {
        let mut c = sifr_in(d, &cache, args);
        c.env("SSL_CERT_FILE", &ca);
        c
    };
    let registry = format!("docker://{}", reg.host());
    let out = with_stdin(
        sifr(&["remote", "login", "-u", USER, "--password-stdin", &registry]),
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("'remote login' is deprecated for registries"),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(stored(d)).unwrap();
    assert!(text.contains(&reg.host()), "{text}");
    let out = run_ok(sifr(&["registry", "list"]));
    assert!(stdout(&out).contains(&reg.host()), "{}", stdout(&out));
    // The same login under the oras:// name logs out.
    let out = run_ok(sifr(&[
        "remote",
        "logout",
        &format!("oras://{}", reg.host()),
    ]));
    assert!(stderr(&out).contains("'remote logout' is deprecated"));
    let text = std::fs::read_to_string(stored(d)).unwrap();
    assert!(!text.contains(&reg.host()), "{text}");

    fails_with(
        &sifr(&["remote", "login", "SylabsCloud"]).output().unwrap(),
        "sifr has no remote endpoints (`SylabsCloud`)",
    );
    fails_with(
        &sifr(&["remote", "login", "--tokenfile", "/dev/null", &registry])
            .output()
            .unwrap(),
        "--tokenfile is only supported for login to a remote endpoint",
    );
}
