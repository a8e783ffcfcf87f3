//! Registry authentication pieces that are pure text: `WWW-Authenticate` challenges
//! (RFC 7235 syntax, as registries send them), token-endpoint URLs and responses, and the
//! `Basic` header. No network I/O here; `client` drives the flow:
//!
//! 1. a request without credentials gets `401` with `Bearer realm=…,service=…,scope=…`
//!    (or `Basic realm=…`);
//! 2. for Bearer, `GET realm?service=…&scope=repository:NAME:pull`, with Basic credentials
//!    when the user has some (anonymous otherwise), returns `{"token": …}`;
//! 3. the request is repeated with `Authorization: Bearer <token>`.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

/// One authentication challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// A header that is not a usable challenge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChallengeError {
    #[error("unsupported authentication scheme `{0}`")]
    Scheme(String),
    #[error("bearer challenge `{0}` has no realm")]
    NoRealm(String),
    #[error("malformed authentication challenge `{0}`")]
    Malformed(String),
}

impl Challenge {
    /// Parse the first challenge of a `WWW-Authenticate` value. Parameter names are
    /// case-insensitive; values may be tokens or quoted strings with `\` escapes.
    pub fn parse(header: &str) -> Result<Self, ChallengeError> {
        let h = header.trim();
        let (scheme, rest) = h.split_once(char::is_whitespace).unwrap_or((h, ""));
        let params =
            parse_params(rest).ok_or_else(|| ChallengeError::Malformed(header.to_string()))?;
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Ok(Challenge::Basic {
                realm: params.get("realm").cloned(),
            }),
            "bearer" => Ok(Challenge::Bearer {
                realm: params
                    .get("realm")
                    .cloned()
                    .ok_or_else(|| ChallengeError::NoRealm(header.to_string()))?,
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            }),
            _ => Err(ChallengeError::Scheme(scheme.to_string())),
        }
    }
}

/// `name=value` pairs separated by commas; `None` on a syntax error.
fn parse_params(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t' || b[*i] == b',') {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            return Some(out);
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' && b[i] != b' ' {
            i += 1;
        }
        let name = s[start..i].to_ascii_lowercase();
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if name.is_empty() || i >= b.len() || b[i] != b'=' {
            return None;
        }
        i += 1;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = Vec::new();
            loop {
                match b.get(i) {
                    None => return None,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        v.push(b[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            String::from_utf8(v).ok()?
        } else {
            let start = i;
            while i < b.len() && b[i] != b',' && b[i] != b' ' {
                i += 1;
            }
            s[start..i].to_string()
        };
        out.insert(name, value);
    }
}

/// The scope a pull needs.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The scope a push needs: a push reads too (existing blobs, the manifest).
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

/// `realm?service=…&scope=…`, query values percent-encoded.
pub fn token_url(realm: &str, service: Option<&str>, scope: Option<&str>) -> String {
    let mut url = realm.to_string();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    for (k, v) in [("service", service), ("scope", scope)] {
        if let Some(v) = v {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&percent_encode(v));
            sep = '&';
        }
    }
    url
}

/// RFC 3986 unreserved characters pass; everything else is `%XX`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token endpoint's answer; Docker Hub sends both fields, the spec allows either.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    /// Seconds; the spec's default is 60.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<String> {
        self.token.or(self.access_token).filter(|t| !t.is_empty())
    }
}

/// `Basic base64(user:password)`.
pub fn basic_header(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_style_bearer() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/ubuntu:pull".into()),
            }
        );
    }

    #[test]
    fn challenge_syntax_table() {
        let table: &[(&str, Result<Challenge, ChallengeError>)] = &[
            (
                r#"Basic realm="Registry Realm""#,
                Ok(Challenge::Basic {
                    realm: Some("Registry Realm".into()),
                }),
            ),
            ("basic", Ok(Challenge::Basic { realm: None })),
            (
                r#"BEARER Realm = "http://127.0.0.1:1/t" , Service=svc"#,
                Ok(Challenge::Bearer {
                    realm: "http://127.0.0.1:1/t".into(),
                    service: Some("svc".into()),
                    scope: None,
                }),
            ),
            (
                r#"Bearer realm="r",scope="repository:a/b:pull,push""#,
                Ok(Challenge::Bearer {
                    realm: "r".into(),
                    service: None,
                    scope: Some("repository:a/b:pull,push".into()),
                }),
            ),
            (
                r#"Bearer realm="say \"hi\"""#,
                Ok(Challenge::Bearer {
                    realm: "say \"hi\"".into(),
                    service: None,
                    scope: None,
                }),
            ),
            (
                "Bearer service=x",
                Err(ChallengeError::NoRealm("Bearer service=x".into())),
            ),
            (
                "Negotiate abc=1",
                Err(ChallengeError::Scheme("Negotiate".into())),
            ),
            (
                r#"Bearer realm="unterminated"#,
                Err(ChallengeError::Malformed(
                    r#"Bearer realm="unterminated"#.into(),
                )),
            ),
            (
                "Bearer realm",
                Err(ChallengeError::Malformed("Bearer realm".into())),
            ),
        ];
        for (input, want) in table {
            assert_eq!(&Challenge::parse(input), want, "{input}");
        }
    }

    #[test]
    fn token_url_encodes_scope() {
        assert_eq!(
            token_url(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some(&pull_scope("library/ubuntu"))
            ),
            "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fubuntu%3Apull"
        );
        assert_eq!(
            token_url("http://h/t?x=1", None, Some("a b")),
            "http://h/t?x=1&scope=a%20b"
        );
    }

    #[test]
    fn push_scope_asks_for_pull_and_push() {
        assert_eq!(push_scope("a/b"), "repository:a/b:pull,push");
        assert_eq!(
            token_url("http://h/t", None, Some(&push_scope("a/b"))),
            "http://h/t?scope=repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }

    #[test]
    fn token_response_accepts_either_field() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.into_token().as_deref(), Some("abc"));
        let t: TokenResponse =
            serde_json::from_str(r#"{"token":"xyz","access_token":"abc"}"#).unwrap();
        assert_eq!(t.into_token().as_deref(), Some("xyz"));
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert_eq!(t.into_token(), None);
    }

    #[test]
    fn basic_header_is_base64_user_colon_password() {
        assert_eq!(basic_header("user", "pass"), "Basic dXNlcjpwYXNz");
    }
}
