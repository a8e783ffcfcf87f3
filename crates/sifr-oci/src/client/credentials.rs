//! Registry credentials and where they come from, strongest first:
//!
//! 1. credentials the caller gives (a `--docker-login` prompt, a `registry login` being
//!    checked);
//! 2. `APPTAINER_DOCKER_USERNAME`/`APPTAINER_DOCKER_PASSWORD` (or the `SINGULARITY_`
//!    spellings), for every registry;
//! 3. auth files, in the order the caller lists them (the CLI: `--authfile` alone when
//!    given, else Apptainer's `~/.apptainer/docker-config.json` then Docker's
//!    `config.json`); the first file with an entry for the registry answers.
//!
//! The explicit sources win because they are the more deliberate (a batch job setting the
//! variables means them). Environment lookups go through a closure so callers and tests
//! decide where they come from. The file format is [`super::authfile`]'s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::authfile::{AuthFile, AuthFileError};

/// A username and password (or identity token used as the password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    /// Never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// An auth file that cannot be used.
pub type CredentialsError = AuthFileError;

/// Where a registry's credentials were found, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Handed over by the caller (a prompt, a login being checked).
    Given,
    /// `APPTAINER_DOCKER_USERNAME`/`APPTAINER_DOCKER_PASSWORD` or their `SINGULARITY_` forms.
    Environment,
    /// An entry of this auth file.
    File(PathBuf),
}

impl fmt::Display for CredentialSource {
    /// Completes "the credentials of user `U` …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Given => f.write_str("as given"),
            CredentialSource::Environment => {
                f.write_str("from APPTAINER_DOCKER_USERNAME/APPTAINER_DOCKER_PASSWORD")
            }
            CredentialSource::File(p) => write!(f, "from `{}`", p.display()),
        }
    }
}

/// Where credentials come from, loaded once.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    /// For every registry: given or from the environment.
    all: Option<(Credentials, CredentialSource)>,
    /// Auth files in search order (always `CredentialSource::File`), each: normalised
    /// registry → credentials.
    files: Vec<(CredentialSource, BTreeMap<String, Credentials>)>,
}

impl CredentialStore {
    /// Load from the environment and the auth files, searched in the order given. A missing
    /// file is not an error; a malformed one is.
    pub fn load(
        env: impl Fn(&str) -> Option<String>,
        files: &[PathBuf],
    ) -> Result<Self, CredentialsError> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        let user = get("APPTAINER_DOCKER_USERNAME").or_else(|| get("SINGULARITY_DOCKER_USERNAME"));
        let pass = get("APPTAINER_DOCKER_PASSWORD").or_else(|| get("SINGULARITY_DOCKER_PASSWORD"));
        let all = match (user, pass) {
            (Some(username), Some(password)) => Some((
                Credentials { username, password },
                CredentialSource::Environment,
            )),
            _ => None,
        };
        let mut store = CredentialStore {
            all,
            files: Vec::new(),
        };
        for path in files {
            if path.is_file() {
                let creds = AuthFile::open(path)?.credentials()?;
                store
                    .files
                    .push((CredentialSource::File(path.clone()), creds));
            }
        }
        Ok(store)
    }

    /// Explicit credentials (a `--docker-login` prompt, a login being checked, tests); they
    /// win over everything.
    pub fn with_override(mut self, creds: Credentials) -> Self {
        self.all = Some((creds, CredentialSource::Given));
        self
    }

    /// Credentials for a registry as written in a reference (`docker.io`, `host:5000`).
    pub fn get(&self, registry: &str) -> Option<&Credentials> {
        self.lookup(registry).map(|(c, _)| c)
    }

    /// [`CredentialStore::get`], and where the answer came from.
    pub fn lookup(&self, registry: &str) -> Option<(&Credentials, &CredentialSource)> {
        if let Some((c, s)) = &self.all {
            return Some((c, s));
        }
        let key = super::authfile::normalise_key(registry);
        self.files
            .iter()
            .find_map(|(source, m)| m.get(&key).map(|c| (c, source)))
    }

    /// The auth files that were read, in search order.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().filter_map(|(s, _)| match s {
            CredentialSource::File(p) => Some(p.as_path()),
            _ => None,
        })
    }
}

/// Docker's own auth file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    get("DOCKER_CONFIG")
        .map(|d| PathBuf::from(d).join("config.json"))
        .or_else(|| get("HOME").map(|h| Path::new(&h).join(".docker/config.json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |k| vars.iter().find(|v| v.0 == k).map(|v| v.1.clone())
    }

    /// `{"auths":{registry: user:password}}`.
    fn auth_file(path: &Path, entries: &[(&str, &str)]) {
        use base64::Engine as _;
        let auths: serde_json::Map<String, serde_json::Value> = entries
            .iter()
            .map(|(r, up)| {
                let a = base64::engine::general_purpose::STANDARD.encode(up);
                (r.to_string(), serde_json::json!({ "auth": a }))
            })
            .collect();
        std::fs::write(path, serde_json::json!({ "auths": auths }).to_string()).unwrap();
    }

    #[test]
    fn given_then_environment_then_files_in_order() {
        let t = tempfile::tempdir().unwrap();
        let (first, second) = (t.path().join("first.json"), t.path().join("second.json"));
        auth_file(
            &first,
            &[("a.example", "fa:1"), ("index.docker.io", "hub:2")],
        );
        auth_file(&second, &[("a.example", "sa:3"), ("b.example", "sb:4")]);
        let files = [first.clone(), t.path().join("missing.json"), second.clone()];
        let s = CredentialStore::load(env(vec![]), &files).unwrap();
        let user = |s: &CredentialStore, r: &str| s.get(r).map(|c| c.username.clone());
        assert_eq!(
            user(&s, "a.example").as_deref(),
            Some("fa"),
            "first file wins"
        );
        assert_eq!(
            user(&s, "b.example").as_deref(),
            Some("sb"),
            "then the next"
        );
        assert_eq!(user(&s, "docker.io").as_deref(), Some("hub"));
        assert_eq!(user(&s, "c.example"), None);
        assert_eq!(
            s.lookup("b.example").unwrap().1,
            &CredentialSource::File(second.clone())
        );
        assert_eq!(s.files().collect::<Vec<_>>(), [&first, &second]);

        let s = CredentialStore::load(
            env(vec![
                ("APPTAINER_DOCKER_USERNAME", "envuser".into()),
                ("APPTAINER_DOCKER_PASSWORD", "envpw".into()),
            ]),
            &files,
        )
        .unwrap();
        let (c, src) = s.lookup("a.example").unwrap();
        assert_eq!(
            (c.username.as_str(), src),
            ("envuser", &CredentialSource::Environment)
        );
        assert!(
            !format!("{c:?}").contains("envpw"),
            "Debug hides the password"
        );
        let s = s.with_override(Credentials {
            username: "given".into(),
            password: "x".into(),
        });
        assert_eq!(
            s.lookup("a.example").map(|(c, s)| (c.username.as_str(), s)),
            Some(("given", &CredentialSource::Given))
        );
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.json");
        std::fs::write(&p, r#"{"auths":{"reg.example":{"auth":"bm9jb2xvbg=="}}}"#).unwrap();
        let e = CredentialStore::load(env(vec![]), &[p]).unwrap_err();
        assert!(e.to_string().contains("`reg.example`"), "{e}");
    }

    #[test]
    fn docker_config_path_follows_docker() {
        assert_eq!(
            docker_config(env(vec![
                ("DOCKER_CONFIG", "/d".into()),
                ("HOME", "/h".into())
            ])),
            Some(PathBuf::from("/d/config.json"))
        );
        assert_eq!(
            docker_config(env(vec![("HOME", "/h".into())])),
            Some(PathBuf::from("/h/.docker/config.json"))
        );
        assert_eq!(docker_config(env(vec![])), None);
    }

    #[test]
    fn singularity_env_spelling_and_partial_env() {
        let s = CredentialStore::load(
            env(vec![
                ("SINGULARITY_DOCKER_USERNAME", "u".into()),
                ("SINGULARITY_DOCKER_PASSWORD", "p".into()),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(s.get("any").unwrap().username, "u");
        let s = CredentialStore::load(env(vec![("APPTAINER_DOCKER_USERNAME", "u".into())]), &[])
            .unwrap();
        assert!(
            s.get("any").is_none(),
            "a username without a password is ignored"
        );
    }
}
