//! Registry credentials: `APPTAINER_DOCKER_USERNAME`/`APPTAINER_DOCKER_PASSWORD` (and the
//! `SINGULARITY_` spellings), then the `auths` of Docker's `config.json`
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
//!
//! The environment wins because it is the more explicit of the two (a batch job setting it
//! means it). Credential helpers (`credsStore`, `credHelpers`) are not run: that would
//! execute a program named by a file; entries that only a helper holds are simply absent.
//! Environment lookups go through a closure so callers and tests decide where they come from.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::reference::DOCKER_HUB;

/// A username and password (or identity token used as the password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A Docker config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read docker config `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse docker config `{path}`")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "bad `auth` for `{registry}` in docker config `{path}`: expected base64 of `user:password`"
    )]
    BadAuth { path: PathBuf, registry: String },
}

/// Where credentials come from, loaded once.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    env: Option<Credentials>,
    /// Normalised registry name → credentials.
    auths: HashMap<String, Credentials>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

impl CredentialStore {
    /// Load from the environment and the Docker config it points to. A missing config file
    /// is not an error; a malformed one is.
    pub fn load(env: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        let user = get("APPTAINER_DOCKER_USERNAME").or_else(|| get("SINGULARITY_DOCKER_USERNAME"));
        let pass = get("APPTAINER_DOCKER_PASSWORD").or_else(|| get("SINGULARITY_DOCKER_PASSWORD"));
        let env_creds = match (user, pass) {
            (Some(username), Some(password)) => Some(Credentials { username, password }),
            _ => None,
        };
        let config = get("DOCKER_CONFIG")
            .map(|d| PathBuf::from(d).join("config.json"))
            .or_else(|| get("HOME").map(|h| Path::new(&h).join(".docker/config.json")));
        let mut store = match config {
            Some(p) if p.is_file() => Self::from_docker_config(&p)?,
            _ => CredentialStore::default(),
        };
        store.env = env_creds;
        Ok(store)
    }

    /// Only the `auths` of one Docker config file.
    pub fn from_docker_config(path: &Path) -> Result<Self, CredentialsError> {
        let bytes = std::fs::read(path).map_err(|source| CredentialsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: DockerConfig =
            serde_json::from_slice(&bytes).map_err(|source| CredentialsError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let mut auths = HashMap::new();
        for (key, e) in cfg.auths {
            let bad = || CredentialsError::BadAuth {
                path: path.to_path_buf(),
                registry: key.clone(),
            };
            let creds = if let Some(auth) = e.auth.filter(|a| !a.is_empty()) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| bad())?;
                let s = String::from_utf8(raw).map_err(|_| bad())?;
                let (u, p) = s.split_once(':').ok_or_else(bad)?;
                Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                }
            } else if let Some(token) = e.identity_token.filter(|t| !t.is_empty()) {
                // Docker's convention: an identity token goes with the user `<token>`.
                Credentials {
                    username: "<token>".to_string(),
                    password: token,
                }
            } else if let (Some(u), Some(p)) = (e.username, e.password) {
                Credentials {
                    username: u,
                    password: p,
                }
            } else {
                continue;
            };
            auths.insert(normalise_key(&key), creds);
        }
        Ok(CredentialStore { env: None, auths })
    }

    /// Explicit credentials (a `--docker-login` prompt, tests); they win over everything.
    pub fn with_override(mut self, creds: Credentials) -> Self {
        self.env = Some(creds);
        self
    }

    /// Credentials for a registry as written in a reference (`docker.io`, `host:5000`).
    pub fn get(&self, registry: &str) -> Option<&Credentials> {
        self.env
            .as_ref()
            .or_else(|| self.auths.get(&normalise_key(registry)))
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://host:5000/x` → `host:5000`.
fn normalise_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |k| vars.iter().find(|v| v.0 == k).map(|v| v.1.clone())
    }

    #[test]
    fn docker_config_auths_by_registry() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(".docker");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"auths":{
                "https://index.docker.io/v1/":{"auth":"aHViOmh1YnB3"},
                "127.0.0.1:5000":{"auth":"bG9jYWw6cDpzOnc="},
                "reg.example":{"username":"q","password":"qp"},
                "helper-only.example":{}
            },"credsStore":"desktop"}"#,
        )
        .unwrap();
        let home = t.path().to_string_lossy().into_owned();
        let s = CredentialStore::load(env(vec![("HOME", home.clone())])).unwrap();
        assert_eq!(s.get("docker.io").unwrap().username, "hub");
        assert_eq!(s.get("docker.io").unwrap().password, "hubpw");
        assert_eq!(
            s.get("127.0.0.1:5000").unwrap().password,
            "p:s:w",
            "password may contain ':'"
        );
        assert_eq!(s.get("reg.example").unwrap().username, "q");
        assert!(s.get("helper-only.example").is_none());
        assert!(s.get("other.example").is_none());
        let s = CredentialStore::load(env(vec![
            ("HOME", home),
            ("APPTAINER_DOCKER_USERNAME", "envuser".into()),
            ("APPTAINER_DOCKER_PASSWORD", "envpw".into()),
        ]))
        .unwrap();
        assert_eq!(
            s.get("reg.example").unwrap().username,
            "envuser",
            "the environment wins"
        );
        assert!(!format!("{:?}", s.get("x").unwrap()).contains("envpw"));
    }

    #[test]
    fn missing_config_is_fine_and_bad_auth_names_the_registry() {
        let t = tempfile::tempdir().unwrap();
        let s = CredentialStore::load(env(vec![(
            "DOCKER_CONFIG",
            t.path().to_string_lossy().into_owned(),
        )]))
        .unwrap();
        assert!(s.get("docker.io").is_none());
        std::fs::write(
            t.path().join("config.json"),
            r#"{"auths":{"reg.example":{"auth":"bm9jb2xvbg=="}}}"#,
        )
        .unwrap();
        let e = CredentialStore::load(env(vec![(
            "DOCKER_CONFIG",
            t.path().to_string_lossy().into_owned(),
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("`reg.example`"), "{e}");
    }

    #[test]
    fn singularity_env_spelling_and_partial_env() {
        let s = CredentialStore::load(env(vec![
            ("SINGULARITY_DOCKER_USERNAME", "u".into()),
            ("SINGULARITY_DOCKER_PASSWORD", "p".into()),
        ]))
        .unwrap();
        assert_eq!(s.get("any").unwrap().username, "u");
        let s =
            CredentialStore::load(env(vec![("APPTAINER_DOCKER_USERNAME", "u".into())])).unwrap();
        assert!(
            s.get("any").is_none(),
            "a username without a password is ignored"
        );
    }
}
