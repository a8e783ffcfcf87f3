//! A client of OpenPGP keyservers speaking HKP (the HTTP Keyserver Protocol,
//! draft-gallagher-openpgp-hkp): `GET /pks/lookup?op=get` for keys (armored), `op=index` for a
//! search's machine-readable listing, `POST /pks/add` to upload an armored key. It moves text
//! only; parsing and checking keys is `sifr-sign`'s. `hkp://` means `http://` on port 11371,
//! `hkps://` means `https://`, as GnuPG and Apptainer read them.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::client::ClientError;

/// Answers larger than this are cut off (a key listing is small).
const MAX_ANSWER: u64 = 16 << 20;

/// A keyserver at one base URL.
pub struct HkpClient {
    agent: ureq::Agent,
    base: String,
}

/// The base URL a keyserver address stands for.
pub fn base_url(address: &str) -> String {
    let a = address.trim_end_matches('/');
    if let Some(rest) = a.strip_prefix("hkp://") {
        if rest.contains(':') {
            format!("http://{rest}")
        } else {
            format!("http://{rest}:11371")
        }
    } else if let Some(rest) = a.strip_prefix("hkps://") {
        format!("https://{rest}")
    } else if a.starts_with("http://") || a.starts_with("https://") {
        a.to_string()
    } else {
        format!("https://{a}")
    }
}

impl HkpClient {
    /// `ca_files` are trusted on top of the system bundle; `env` looks up `SSL_CERT_FILE`.
    pub fn new(
        address: &str,
        ca_files: &[PathBuf],
        user_agent: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ClientError> {
        let base = base_url(address);
        let https = base.starts_with("https://");
        Ok(HkpClient {
            agent: crate::net::agent(ca_files, user_agent, https, Duration::from_secs(60), env)?,
            base,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn lookup(&self, op: &str, search: &str) -> Result<Option<String>, ClientError> {
        let url = format!("{}/pks/lookup", self.base);
        let resp = self
            .agent
            .get(&url)
            .query("op", op)
            .query("options", "mr")
            .query("search", search)
            .call()
            .map_err(|source| ClientError::Http {
                url: url.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        let body = read_text(resp, &url)?;
        if !(200..300).contains(&status) {
            return Err(ClientError::Status {
                url,
                status,
                detail: detail(&body),
            });
        }
        Ok(Some(body))
    }

    /// The armored keys matching `search` (a fingerprint as `0x<hex>`, a key ID, or text);
    /// `None` when the server has none.
    pub fn get(&self, search: &str) -> Result<Option<String>, ClientError> {
        self.lookup("get", search)
    }

    /// The machine-readable index (`info:`, `pub:`, `uid:` lines) of the keys matching
    /// `search`; `None` when none match.
    pub fn index(&self, search: &str) -> Result<Option<String>, ClientError> {
        self.lookup("index", search)
    }

    /// Uploads an armored public key; returns the server's answer text.
    pub fn add(&self, armored: &str) -> Result<String, ClientError> {
        let url = format!("{}/pks/add", self.base);
        let resp = self
            .agent
            .post(&url)
            .send_form([("keytext", armored)])
            .map_err(|source| ClientError::Http {
                url: url.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        let body = read_text(resp, &url)?;
        if !(200..300).contains(&status) {
            return Err(ClientError::Status {
                url,
                status,
                detail: detail(&body),
            });
        }
        Ok(body)
    }
}

fn read_text(resp: ureq::http::Response<ureq::Body>, url: &str) -> Result<String, ClientError> {
    resp.into_body()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_string()
        .map_err(|e| ClientError::Body {
            url: url.to_string(),
            source: io::Error::other(e),
        })
}

fn detail(body: &str) -> String {
    let line = body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if line.is_empty() {
        String::new()
    } else {
        format!(": {}", line.chars().take(200).collect::<String>())
    }
}

/// One key of a machine-readable index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexedKey {
    /// The key ID or fingerprint the server gave (hex, upper case).
    pub key_id: String,
    /// The algorithm number (RFC 9580: 1 RSA, 17 DSA, 19 ECDSA, 22 EdDSA, ...).
    pub algorithm: String,
    pub bits: String,
    /// Seconds since the epoch, as text (may be empty).
    pub created: String,
    pub expires: String,
    /// `r` revoked, `d` disabled, `e` expired.
    pub flags: String,
    pub user_ids: Vec<String>,
}

/// Parses an HKP machine-readable index.
pub fn parse_index(text: &str) -> Vec<IndexedKey> {
    let mut keys: Vec<IndexedKey> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.trim_end().split(':').collect();
        match f.first().copied() {
            Some("pub") => keys.push(IndexedKey {
                key_id: f.get(1).unwrap_or(&"").to_ascii_uppercase(),
                algorithm: f.get(2).unwrap_or(&"").to_string(),
                bits: f.get(3).unwrap_or(&"").to_string(),
                created: f.get(4).unwrap_or(&"").to_string(),
                expires: f.get(5).unwrap_or(&"").to_string(),
                flags: f.get(6).unwrap_or(&"").to_string(),
                user_ids: Vec::new(),
            }),
            Some("uid") => {
                if let Some(k) = keys.last_mut() {
                    k.user_ids.push(unescape(f.get(1).unwrap_or(&"")));
                }
            }
            _ => {}
        }
    }
    keys
}

/// Undoes the index's `%XX` escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_index_lines() {
        assert_eq!(base_url("hkp://k.example"), "http://k.example:11371");
        assert_eq!(base_url("hkps://k.example/"), "https://k.example");
        assert_eq!(base_url("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(base_url("keys.example.org"), "https://keys.example.org");
        let idx = "info:1:1\npub:12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84:1:2048:1588023536::\nuid:Unit Test %3Cunit@test.com%3E:1588023536::\n";
        let k = parse_index(idx);
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].bits, "2048");
        assert_eq!(k[0].user_ids, vec!["Unit Test <unit@test.com>".to_string()]);
    }
}
