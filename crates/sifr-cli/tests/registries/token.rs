//! A token issuer for `docker-registry`'s token auth, serving HTTP on 127.0.0.1 from a thread
//! of the test process: it checks the Basic credentials sent to its realm, reads `service`
//! and `scope`, and answers with a JWT in the distribution token format (RS256, `kid` the
//! libtrust key id of its key), signed by `openssl dgst` with a key made at test time whose
//! self-signed certificate the registry trusts through `rootcertbundle`. Every request is
//! recorded, so tests can tell which scopes were asked for, by whom, with which user.
//!
//! Known users get every action they ask for; a wrong password or no credentials get 401
//! (the registry is private). One request per connection; it serves until the process ends.

use std::collections::BTreeMap;
use std::io::{BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::run_ok;

use sifr_testkit::http::{Head, read_head};

/// The registry's name for itself (`aud` of its tokens) and the issuer's (`iss`).
pub const SERVICE: &str = "sifr-test-registry";
pub const ISSUER: &str = "sifr-test-issuer";

/// One request to the realm.
#[derive(Debug, Clone)]
pub struct Request {
    /// The user of valid Basic credentials; `None` when anonymous or refused.
    pub user: Option<String>,
    /// True when credentials were sent but did not match.
    pub refused: bool,
    pub service: Option<String>,
    pub scopes: Vec<String>,
    pub user_agent: String,
}

impl Request {
    pub fn by_sifr(&self) -> bool {
        self.user_agent.starts_with("sifr/")
    }
}

pub struct Issuer {
    pub port: u16,
    cert: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
}

struct Keys {
    key: PathBuf,
    kid: String,
    users: BTreeMap<String, String>,
    next_jti: AtomicU64,
}

impl Issuer {
    /// Make a key and certificate in `dir` and start serving for `users` (name, password).
    pub fn start(dir: &Path, users: &[(&str, &str)]) -> Issuer {
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        run_ok(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=sifr test token issuer", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        let pem = run_ok(
            Command::new("openssl")
                .args(["x509", "-pubkey", "-noout", "-in"])
                .arg(&cert),
        )
        .stdout;
        let der = pipe("openssl", &["pkey", "-pubin", "-outform", "DER"], &pem);
        let keys = Arc::new(Keys {
            key,
            kid: libtrust_key_id(&der),
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            next_jti: AtomicU64::new(1),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (keys, seen) = (keys.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &keys, &seen);
                });
            }
        });
        Issuer {
            port,
            cert,
            requests,
        }
    }

    /// The `auth:` section of a registry configuration that trusts this issuer.
    pub fn registry_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.cert.display()
        )
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The scopes of the requests sifr made, in order, one entry per request (joined by a
    /// space when a request asked for several; empty when it asked for none).
    pub fn sifr_scopes(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.by_sifr())
            .map(|r| r.scopes.join(" "))
            .collect()
    }

    pub fn forget(&self) {
        self.requests.lock().unwrap().clear();
    }
}

/// Run `program args` with `input` on stdin; its stdout.
fn pipe(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut c = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// docker/libtrust's key id, which `docker-registry` files the keys of its
/// `rootcertbundle` under: the first 240 bits of the SHA-256 of the DER
/// SubjectPublicKeyInfo, base32 (RFC 4648, unpadded), in twelve groups of four joined by `:`.
fn libtrust_key_id(spki_der: &[u8]) -> String {
    let hex = sifr_oci::Digest::of(spki_der).hex();
    let bytes: Vec<u8> = (0..30)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut b32 = String::new();
    // 30 bytes = 240 bits = 48 five-bit groups, no padding needed.
    for chunk in bytes.chunks(5) {
        let n = chunk.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
        for i in (0..8).rev() {
            b32.push(ALPHABET[((n >> (5 * i)) & 31) as usize] as char);
        }
    }
    let groups: Vec<&str> = (0..12).map(|i| &b32[4 * i..4 * i + 4]).collect();
    groups.join(":")
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `%XX` → the byte, `+` → space; a `%` not followed by two hex digits stays as it is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(conn: TcpStream, keys: &Keys, seen: &Mutex<Vec<Request>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let Head {
        target, headers, ..
    } = read_head(&mut reader)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut service = None;
    let mut scopes = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "service" => service = Some(percent_decode(v)),
            // Several scopes may come as repeated parameters or space-separated in one.
            "scope" => scopes.extend(percent_decode(v).split(' ').map(str::to_string)),
            _ => {}
        }
    }
    let sent = headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    let user = sent
        .as_ref()
        .filter(|(u, p)| keys.users.get(u) == Some(p))
        .map(|(u, _)| u.clone());
    seen.lock().unwrap().push(Request {
        user: user.clone(),
        refused: sent.is_some() && user.is_none(),
        service: service.clone(),
        scopes: scopes.clone(),
        user_agent: headers.get("user-agent").cloned().unwrap_or_default(),
    });
    let mut out = conn;
    if path != "/token" || service.as_deref() != Some(SERVICE) {
        return reply(
            &mut out,
            "400 Bad Request",
            br#"{"errors":[{"code":"DENIED"}]}"#,
        );
    }
    let Some(user) = user else {
        return reply(
            &mut out,
            "401 Unauthorized",
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad or missing credentials"}]}"#,
        );
    };
    let token = sign(keys, &user, &scopes);
    let body = serde_json::json!({ "token": token, "expires_in": 300 }).to_string();
    reply(&mut out, "200 OK", body.as_bytes())
}

/// A JWT granting `user` what `scopes` (`repository:NAME:ACTIONS`) ask for.
fn sign(keys: &Keys, user: &str, scopes: &[String]) -> String {
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let (kind, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let actions: Vec<&str> = actions.split(',').collect();
            Some(serde_json::json!({ "type": kind, "name": name, "actions": actions }))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "kid": keys.kid });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": user,
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": keys.next_jti.fetch_add(1, Ordering::SeqCst).to_string(),
        "access": access,
    });
    let signed = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let key = keys.key.to_string_lossy().into_owned();
    // RS256 is RSASSA-PKCS1-v1_5 over SHA-256, which is what `openssl dgst -sign` makes.
    let sig = pipe(
        "openssl",
        &["dgst", "-sha256", "-sign", &key],
        signed.as_bytes(),
    );
    format!("{signed}.{}", b64url(&sig))
}

fn reply(out: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    out.flush()
}
