//! A tiny in-process registry speaking just enough of the distribution protocol over plain
//! HTTP on 127.0.0.1 to exercise the client: auth challenges, token endpoint, manifests,
//! blobs with `Range`, and injected faults. One request per connection (`Connection:
//! close`); it serves until the test process ends.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sifr_oci::Digest;

use sifr_testkit::http as http_head;

#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    None,
    Basic(String, String),
    /// Token endpoint at `/token`; when credentials are set it requires them as Basic.
    Bearer(Option<(String, String)>),
}

#[derive(Default)]
pub struct State {
    pub blobs: HashMap<String, Vec<u8>>,
    /// name → (content type, bytes); both tags and digests.
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    /// Serve only this many bytes of the next full blob response, then hang up.
    pub cut_next_blob_at: Option<usize>,
    /// Serve these bytes instead of the real blob (for digest-mismatch tests).
    pub corrupt: HashMap<String, Vec<u8>>,
    /// `METHOD path [range] [auth-scheme]` per request.
    pub log: Vec<String>,
}

pub struct Registry {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

struct Req {
    path: String,
    headers: HashMap<String, String>,
}

impl Registry {
    pub fn start(auth: Auth) -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (st, auth) = (st.clone(), auth.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &st, &auth, port);
                });
            }
        });
        Registry { port, state }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn add_blob(&self, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        self.state
            .lock()
            .unwrap()
            .blobs
            .insert(d.to_string(), data.to_vec());
        d
    }

    pub fn add_manifest(&self, tag: Option<&str>, media: &str, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        let mut s = self.state.lock().unwrap();
        s.manifests
            .insert(d.to_string(), (media.to_string(), data.to_vec()));
        if let Some(t) = tag {
            s.manifests
                .insert(t.to_string(), (media.to_string(), data.to_vec()));
        }
        d
    }

    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

fn serve(conn: TcpStream, st: &Mutex<State>, auth: &Auth, port: u16) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let http_head::Head {
        method,
        target: path,
        headers,
    } = http_head::read_head(&mut reader)?;
    let req = Req { path, headers };
    {
        let mut s = st.lock().unwrap();
        let range = req.headers.get("range").cloned().unwrap_or_default();
        let scheme = req
            .headers
            .get("authorization")
            .and_then(|a| a.split_whitespace().next())
            .unwrap_or("")
            .to_string();
        s.log.push(
            format!("{method} {} {range} {scheme}", req.path)
                .trim_end()
                .to_string(),
        );
    }
    let mut out = conn;
    route(&req, st, auth, port, &mut out)
}

fn reply(
    out: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    out.flush()
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn route(
    req: &Req,
    st: &Mutex<State>,
    auth: &Auth,
    port: u16,
    out: &mut TcpStream,
) -> std::io::Result<()> {
    let authz = req
        .headers
        .get("authorization")
        .cloned()
        .unwrap_or_default();
    if req.path.starts_with("/token") {
        if let Auth::Bearer(Some((u, p))) = auth
            && authz != basic(u, p)
        {
            return reply(
                out,
                "401 Unauthorized",
                &[],
                br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
            );
        }
        return reply(
            out,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            br#"{"token":"good-token","expires_in":300}"#,
        );
    }
    let allowed = match auth {
        Auth::None => true,
        Auth::Basic(u, p) => authz == basic(u, p),
        Auth::Bearer(_) => authz == "Bearer good-token",
    };
    if !allowed {
        let challenge = match auth {
            Auth::Basic(..) => r#"Basic realm="fake""#.to_string(),
            _ => format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake-registry""#),
        };
        return reply(
            out,
            "401 Unauthorized",
            &[("WWW-Authenticate", challenge)],
            br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
    }
    if req.path == "/v2/" {
        return reply(out, "200 OK", &[], b"{}");
    }
    let rest = req.path.strip_prefix("/v2/").unwrap_or("");
    if let Some((_, name)) = rest.split_once("/manifests/") {
        let found = st.lock().unwrap().manifests.get(name).cloned();
        return match found {
            Some((media, data)) => reply(out, "200 OK", &[("Content-Type", media)], &data),
            None => reply(
                out,
                "404 Not Found",
                &[],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            ),
        };
    }
    if let Some((_, digest)) = rest.split_once("/blobs/") {
        let (data, cut) = {
            let mut s = st.lock().unwrap();
            let data = s
                .corrupt
                .get(digest)
                .or_else(|| s.blobs.get(digest))
                .cloned();
            let len = data.as_ref().map_or(0, Vec::len);
            let cut = match s.cut_next_blob_at {
                Some(at) if at < len && !req.headers.contains_key("range") => {
                    s.cut_next_blob_at.take()
                }
                _ => None,
            };
            (data, cut)
        };
        let Some(data) = data else {
            return reply(
                out,
                "404 Not Found",
                &[],
                br#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#,
            );
        };
        if let Some(at) = cut {
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                data.len()
            );
            out.write_all(head.as_bytes())?;
            out.write_all(&data[..at])?;
            out.flush()?;
            return out.shutdown(std::net::Shutdown::Both);
        }
        if let Some(range) = req.headers.get("range") {
            let from: usize = range
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap_or(0);
            if from >= data.len() {
                return reply(out, "416 Range Not Satisfiable", &[], b"");
            }
            let cr = format!("bytes {from}-{}/{}", data.len() - 1, data.len());
            return reply(
                out,
                "206 Partial Content",
                &[("Content-Range", cr)],
                &data[from..],
            );
        }
        return reply(out, "200 OK", &[], &data);
    }
    let mut sink = Vec::new();
    let _ = (&*out).take(0).read_to_end(&mut sink);
    reply(out, "404 Not Found", &[], b"")
}
