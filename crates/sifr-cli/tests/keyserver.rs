//! `sifr keyserver add|list|remove`, `sifr key search|pull|push` and `verify`'s look-up of
//! unknown signers, against a small HKP server this test runs on 127.0.0.1 (GET
//! `/pks/lookup?op=get|index`, POST `/pks/add`). Expectations from Apptainer's `e2e/key` and
//! `e2e/verify` (keyserver cases), with the server in place of keys.openpgp.org.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sifr_sign::openpgp::{self, KeyInfo};
use sifr_testkit::{TestCommand, TestOutput};

type Store = Arc<Mutex<Vec<(KeyInfo, String)>>>;

/// Starts the HKP server; returns its URL and its key store.
fn hkp_server() -> (String, Store) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let store: Store = Arc::default();
    let s = store.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let _ = serve(conn, &s);
        }
    });
    (url, store)
}

fn decode(s: &str) -> String {
    let b = s.replace('+', " ");
    let b = b.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn params(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn serve(mut conn: TcpStream, store: &Store) -> std::io::Result<()> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("").to_string(),
    );
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (status, text) = match (method, path) {
        ("GET", "/pks/lookup") => {
            let p = params(query);
            let search = p.get("search").cloned().unwrap_or_default();
            let hexed = search.trim_start_matches("0x").to_ascii_uppercase();
            let keys = store.lock().unwrap();
            let hits: Vec<&(KeyInfo, String)> = keys
                .iter()
                .filter(|(i, _)| {
                    (hexed.len() >= 8 && i.fingerprint.ends_with(&hexed))
                        || i.user_ids.iter().any(|u| u.contains(&search))
                })
                .collect();
            if hits.is_empty() {
                (404, "No results found".to_string())
            } else if p.get("op").map(String::as_str) == Some("index") {
                let mut t = format!("info:1:{}\n", hits.len());
                for (i, _) in &hits {
                    t.push_str(&format!(
                        "pub:{}:1:{}:{}::\n",
                        i.fingerprint, i.bits, i.created
                    ));
                    for u in &i.user_ids {
                        t.push_str(&format!(
                            "uid:{}:{}::\n",
                            u.replace('<', "%3C").replace('>', "%3E"),
                            i.created
                        ));
                    }
                }
                (200, t)
            } else {
                (
                    200,
                    hits.iter()
                        .map(|(_, a)| a.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            }
        }
        ("POST", "/pks/add") => {
            let p = params(std::str::from_utf8(&body).unwrap());
            let text = p.get("keytext").cloned().unwrap_or_default();
            match openpgp::read_public_keys(text.as_bytes()) {
                Ok(keys) if !keys.is_empty() => {
                    let mut s = store.lock().unwrap();
                    for k in keys {
                        s.push((KeyInfo::of(&k), openpgp::armor_public(&k).unwrap()));
                    }
                    (200, String::new())
                }
                _ => (400, "bad key".to_string()),
            }
        }
        _ => (404, "not found".to_string()),
    };
    write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    conn.flush()
}

fn sifr(tmp: &Path, keys: &str, args: &[&str]) -> TestCommand {
    TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
        .without_caller_settings()
        .env("APPTAINER_KEYSDIR", tmp.join(keys))
        .env("APPTAINER_CONFIGDIR", tmp.join("config"))
        .env_remove("SIFR_KEY_PASSPHRASE")
        .args(args)
}

fn failed(o: &TestOutput) {
    assert!(
        !o.status.success(),
        "expected a failure: {}",
        o.stderr_text()
    );
}

#[test]
fn keyserver_list_is_kept_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let o = sifr(t, "k", &["keyserver", "list"]).output();
    o.assert_success();
    assert!(o.stdout_text().contains("https://keys.openpgp.org"));
    sifr(t, "k", &["keyserver", "add", "https://a.example"])
        .output()
        .assert_success();
    sifr(
        t,
        "k",
        &[
            "keyserver",
            "add",
            "--order",
            "1",
            "DefaultRemote",
            "hkp://b.example",
        ],
    )
    .output()
    .assert_success();
    let o = sifr(t, "k", &["keyserver", "add", "https://a.example"]).output();
    failed(&o);
    failed(
        &sifr(
            t,
            "k",
            &["keyserver", "add", "--order", "0", "https://c.example"],
        )
        .output(),
    );
    let list = sifr(t, "k", &["keyserver", "list"]).output().stdout_text();
    assert_eq!(list, " #1  hkp://b.example\n #2  https://a.example\n");
    sifr(t, "k", &["keyserver", "remove", "hkp://b.example"])
        .output()
        .assert_success();
    let list = sifr(t, "k", &["keyserver", "list"]).output().stdout_text();
    assert_eq!(list, " #1  https://a.example\n");
    failed(&sifr(t, "k", &["keyserver", "remove", "hkp://b.example"]).output());
    let o = sifr(
        t,
        "k",
        &[
            "keyserver",
            "login",
            "-u",
            "me",
            "-p",
            "pw",
            "https://a.example",
        ],
    )
    .output();
    failed(&o);
    o.assert_stderr_contains("keeps no keyserver credentials");
    // -c names another file.
    let other: PathBuf = t.join("other.toml");
    sifr(
        t,
        "k",
        &[
            "keyserver",
            "-c",
            other.to_str().unwrap(),
            "add",
            "https://d.example",
        ],
    )
    .output()
    .assert_success();
    assert!(
        fs::read_to_string(&other)
            .unwrap()
            .contains("https://d.example")
    );
}

#[test]
fn keys_travel_through_the_keyserver_and_verify_finds_the_signer_there() {
    let Some(fixtures) = sifr_testkit::sif_fixtures() else {
        return;
    };
    let (url, store) = hkp_server();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // The signer: a new pair, pushed.
    sifr(
        t,
        "signer",
        &[
            "key",
            "newpair",
            "-N",
            "Remote Signer",
            "-E",
            "remote@example.org",
            "-C",
            "",
            "-P",
            "",
            "-b",
            "2048",
        ],
    )
    .output()
    .assert_success();
    let list = sifr(t, "signer", &["key", "list"]).output().stdout_text();
    let fp = list
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Fingerprint:")
                .map(|f| f.trim().to_string())
        })
        .unwrap();
    let o = sifr(t, "signer", &["key", "push", "--url", &url, &fp]).output();
    o.assert_success();
    assert!(o.stdout_text().contains("pushed to server successfully"));
    assert_eq!(store.lock().unwrap().len(), 1);
    let img = t.join("img.sif");
    fs::copy(fixtures.join("images/one-group.sif"), &img).unwrap();
    let img_s = img.to_str().unwrap();
    sifr(t, "signer", &["sign", img_s])
        .output()
        .assert_success();

    // Search by name and by fingerprint.
    let o = sifr(
        t,
        "other",
        &["key", "search", "--url", &url, "Remote Signer"],
    )
    .output();
    o.assert_success();
    let out = o.stdout_text();
    assert!(out.starts_with("Showing 1 results\n\nKEY ID"), "{out}");
    assert!(
        out.contains(&fp[32..]) && out.contains("Remote Signer <remote@example.org>"),
        "{out}"
    );
    let o = sifr(t, "other", &["key", "search", "-l", "-u", &url, &fp]).output();
    o.assert_success();
    assert!(o.stdout_text().contains(&fp) && o.stdout_text().contains("[enabled]"));
    failed(&sifr(t, "other", &["key", "search", "--url", &url, "nobody"]).output());

    // Verify elsewhere: --local fails, the keyserver supplies the key ([REMOTE]).
    let o = sifr(t, "verifier", &["verify", "--local", img_s]).output();
    failed(&o);
    o.assert_stderr_contains("not in the keyring");
    let o = sifr(t, "verifier", &["verify", "--url", &url, img_s]).output();
    o.assert_success();
    assert!(
        o.stdout_text()
            .contains("[REMOTE]           Signing entity: Remote Signer"),
        "{}",
        o.stdout_text()
    );
    // The configured keyserver is used without --url.
    sifr(t, "verifier", &["keyserver", "add", &url])
        .output()
        .assert_success();
    sifr(t, "verifier", &["verify", img_s])
        .output()
        .assert_success();

    // Pull into the verifier's keyring: then it is [LOCAL], even with --local.
    let o = sifr(t, "verifier", &["key", "pull", "--url", &url, &fp]).output();
    o.assert_success();
    assert!(
        o.stdout_text()
            .starts_with("1 key(s) added to keyring of trust")
    );
    let o = sifr(t, "verifier", &["verify", "--local", img_s]).output();
    o.assert_success();
    assert!(o.stdout_text().contains("[LOCAL]"));
    let o = sifr(t, "verifier", &["key", "pull", "--url", &url, &fp]).output();
    assert!(o.stdout_text().starts_with("0 key(s) added"));
    failed(
        &sifr(
            t,
            "verifier",
            &["key", "pull", "--url", &url, "0123456789ABCDEF"],
        )
        .output(),
    );
}
