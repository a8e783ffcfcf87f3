//! Images fetched by plain URL (`http://`, `https://`): what identifies the file a URL serves
//! now (its validators, from a `HEAD`), and its download to a new local file.
//!
//! Apptainer caches such images keyed by the URL and the `Last-Modified` header; sifr adds the
//! `ETag` and the length, so a file replaced within the same second, or by a server that sends
//! no dates, is still seen as new. The TLS trust is the registry client's (the system bundle,
//! `SSL_CERT_FILE`, extra CA files).

use std::fs::OpenOptions;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::client::{ClientError, tls};

/// Downloads of more than this many bytes are cut off (a runaway server cannot fill the disk).
const MAX_IMAGE: u64 = 1 << 40;

/// The methods of the requests made here.
#[derive(Clone, Copy)]
enum Method {
    Get,
    Head,
}

/// A blocking HTTP(S) client for image files.
pub struct NetClient {
    agent: ureq::Agent,
}

/// What identifies the file behind a URL at the moment of asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub length: Option<u64>,
}

impl Validators {
    /// The validators as one text, for a cache key.
    pub fn text(&self) -> String {
        format!(
            "etag={}\nlast-modified={}\nlength={}",
            self.etag.as_deref().unwrap_or(""),
            self.last_modified.as_deref().unwrap_or(""),
            self.length.map(|l| l.to_string()).unwrap_or_default()
        )
    }
}

/// A download could not be written.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{url}` sent {got} bytes, but announced {announced}")]
    Short {
        url: String,
        got: u64,
        announced: u64,
    },
}

impl NetError {
    pub fn hint(&self) -> Option<String> {
        match self {
            NetError::Client(e) => e.hint(),
            _ => None,
        }
    }
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// An HTTP agent for sifr's plain clients (files over HTTPS, keyservers): statuses are
/// answers, not errors; `ca_files` are trusted on top of the system bundle, which
/// `system_roots: false` leaves unread (for `http://` only); connecting may take 30 s and the
/// answer `answer` more.
pub(crate) fn agent(
    ca_files: &[PathBuf],
    user_agent: &str,
    system_roots: bool,
    answer: Duration,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ureq::Agent, ClientError> {
    let tls = if system_roots {
        tls::config(ca_files, env)?
    } else {
        tls::config_extra_only(ca_files)?
    };
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .user_agent(user_agent)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(answer))
        .build()
        .into())
}

impl NetClient {
    /// `ca_files` are trusted on top of the system bundle; `env` looks up `SSL_CERT_FILE`.
    /// `system_roots: false` skips reading the bundle: for `http://` URLs only (a redirect to
    /// `https://` then fails verification).
    pub fn new(
        ca_files: &[PathBuf],
        user_agent: &str,
        system_roots: bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ClientError> {
        Ok(NetClient {
            agent: agent(
                ca_files,
                user_agent,
                system_roots,
                Duration::from_secs(120),
                env,
            )?,
        })
    }

    /// `method url`: the answer when it is a success (2xx, after redirects), else the error
    /// naming the URL and the status.
    fn call_ok(
        &self,
        url: &str,
        method: Method,
    ) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
        let req = match method {
            Method::Get => self.agent.get(url),
            Method::Head => self.agent.head(url),
        };
        let resp = req.call().map_err(|source| ClientError::Http {
            url: url.to_string(),
            source,
        })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(ClientError::Status {
                url: url.to_string(),
                status,
                detail: String::new(),
            });
        }
        Ok(resp)
    }

    /// `HEAD url`: the validators of what it serves now.
    pub fn validators(&self, url: &str) -> Result<Validators, ClientError> {
        let resp = self.call_ok(url, Method::Head)?;
        Ok(Validators {
            etag: header(&resp, "etag"),
            last_modified: header(&resp, "last-modified"),
            length: header(&resp, "content-length").and_then(|v| v.parse().ok()),
        })
    }

    /// `GET url` of a small document (at most 16 MiB): an API's JSON answer.
    pub fn get_small(&self, url: &str) -> Result<Vec<u8>, ClientError> {
        let resp = self.call_ok(url, Method::Get)?;
        resp.into_body()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(|e| ClientError::Body {
                url: url.to_string(),
                source: io::Error::other(e),
            })
    }

    /// `GET url` into the new file `dest` (never an existing one); a short body is an error.
    /// On any failure `dest` is removed.
    pub fn download(&self, url: &str, dest: &Path) -> Result<u64, NetError> {
        let result = self.download_inner(url, dest);
        if result.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        result
    }

    fn download_inner(&self, url: &str, dest: &Path) -> Result<u64, NetError> {
        let resp = self.call_ok(url, Method::Get)?;
        let announced: Option<u64> = header(&resp, "content-length").and_then(|v| v.parse().ok());
        let write_err = |source| NetError::Write {
            path: dest.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(write_err)?;
        let mut body = resp.into_body().into_reader().take(MAX_IMAGE);
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ClientError::Body {
                        url: url.to_string(),
                        source,
                    }
                    .into());
                }
            };
            file.write_all(&buf[..n]).map_err(write_err)?;
            got += n as u64;
        }
        if let Some(a) = announced.filter(|&a| a != got) {
            return Err(NetError::Short {
                url: url.to_string(),
                got,
                announced: a,
            });
        }
        file.sync_all().map_err(write_err)?;
        Ok(got)
    }
}
