//! Docker-style auth files (`{"auths": {"HOST": {"auth": base64("user:password")}}}`): Docker's
//! `~/.docker/config.json` and Apptainer's `~/.apptainer/docker-config.json`, which
//! `registry login` writes. Reading decodes each entry; writing changes one entry and keeps
//! everything else in the file (other registries, `credsStore`, keys sifr does not know).
//!
//! Writes ([`AuthFile::edit`]) are atomic and private: the new text goes to a mode-0600
//! temporary file in the same directory, is synced, then renamed over the old one. The read,
//! the change and the write happen under an advisory lock on the directory, so two logins at
//! once cannot lose each other's entry. A file that is a
//! symlink is written where the link points, as Docker does, so the link survives.
//!
//! This module knows nothing of precedence between files or of the network; it never runs
//! credential helpers (`credsStore`, `credHelpers`), which would execute a program named by a
//! file.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::credentials::Credentials;
use crate::reference::DOCKER_HUB;

/// The key Docker (and so Apptainer) files Docker Hub's credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// An auth file that cannot be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("cannot read auth file `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse auth file `{path}`")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("auth file `{path}` is not a JSON object with an `auths` object")]
    Shape { path: PathBuf },
    #[error(
        "bad `auth` for `{registry}` in auth file `{path}`: expected base64 of `user:password`"
    )]
    BadAuth { path: PathBuf, registry: String },
    #[error("cannot write auth file `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One auth file, parsed; changes are written by [`AuthFile::edit`].
#[derive(Debug, Clone)]
pub struct AuthFile {
    path: PathBuf,
    doc: Map<String, Value>,
}

/// One `auths` entry as `registry list` shows it: never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The registry, normalised (`docker.io` for Docker Hub's keys).
    pub registry: String,
    /// The user, or `None` for an entry only a credential helper can answer.
    pub username: Option<String>,
}

impl AuthFile {
    /// Parse `path`; a missing file is an empty one (it is created by [`AuthFile::edit`]).
    pub fn open(path: &Path) -> Result<Self, AuthFileError> {
        let doc = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(AuthFileError::Shape {
                        path: path.to_path_buf(),
                    });
                }
                Err(source) => {
                    return Err(AuthFileError::Json {
                        path: path.to_path_buf(),
                        source,
                    });
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Map::new(),
            Err(source) => {
                return Err(AuthFileError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        if doc.get("auths").is_some_and(|a| !a.is_object()) {
            return Err(AuthFileError::Shape {
                path: path.to_path_buf(),
            });
        }
        Ok(AuthFile {
            path: path.to_path_buf(),
            doc,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn auths(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.doc
            .get("auths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
    }

    /// Every entry's credentials by normalised registry. Entries that hold none (a helper
    /// has them) are left out; an `auth` that does not decode is an error naming the entry.
    pub fn credentials(&self) -> Result<BTreeMap<String, Credentials>, AuthFileError> {
        let mut out = BTreeMap::new();
        for (key, entry) in self.auths() {
            if let Some(c) = self.decode(key, entry)? {
                out.entry(normalise_key(key)).or_insert(c);
            }
        }
        Ok(out)
    }

    /// The entries, sorted by registry, with their users.
    pub fn entries(&self) -> Result<Vec<Entry>, AuthFileError> {
        let mut out = Vec::new();
        for (key, entry) in self.auths() {
            out.push(Entry {
                registry: normalise_key(key),
                username: self.decode(key, entry)?.map(|c| c.username),
            });
        }
        out.sort_by(|a, b| a.registry.cmp(&b.registry));
        out.dedup_by(|a, b| a.registry == b.registry);
        Ok(out)
    }

    fn decode(&self, key: &str, entry: &Value) -> Result<Option<Credentials>, AuthFileError> {
        let bad = || AuthFileError::BadAuth {
            path: self.path.clone(),
            registry: key.to_string(),
        };
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        if let Some(auth) = field("auth") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let s = String::from_utf8(raw).map_err(|_| bad())?;
            let (u, p) = s.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        if let Some(token) = field("identitytoken") {
            // Docker's convention: an identity token goes with the user `<token>`.
            return Ok(Some(Credentials {
                username: "<token>".to_string(),
                password: token.to_string(),
            }));
        }
        Ok(match (field("username"), field("password")) {
            (Some(u), Some(p)) => Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }),
            _ => None,
        })
    }

    /// Store credentials for a normalised registry, replacing any entry that names it
    /// (however spelled), in the form Docker and Apptainer write: `auth` only.
    pub fn set(&mut self, registry: &str, creds: &Credentials) {
        self.remove(registry);
        let key = if registry == DOCKER_HUB {
            DOCKER_HUB_KEY.to_string()
        } else {
            registry.to_string()
        };
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password));
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = auths {
            m.insert(key, serde_json::json!({ "auth": auth }));
        }
    }

    /// Drop every entry for a normalised registry; false when there was none.
    pub fn remove(&mut self, registry: &str) -> bool {
        let Some(Value::Object(m)) = self.doc.get_mut("auths") else {
            return false;
        };
        let before = m.len();
        m.retain(|k, _| normalise_key(k) != registry);
        m.len() != before
    }

    /// Change the file at `path` under an exclusive lock on its directory (created with
    /// mode 0700 if missing): read it, let `change` edit it, and write it back atomically
    /// with mode 0600 if `change` returns true. What `change` returned comes back. Two
    /// edits at once run one after the other, so neither loses the other's entry.
    pub fn edit(
        path: &Path,
        change: impl FnOnce(&mut AuthFile) -> bool,
    ) -> Result<bool, AuthFileError> {
        let err = |source| AuthFileError::Write {
            path: path.to_path_buf(),
            source,
        };
        // Through a symlink to where it points, so the link survives.
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(err)?;
        // The file itself cannot carry the lock: the rename below replaces it.
        let lock = std::fs::File::open(&dir).map_err(err)?;
        lock.lock().map_err(err)?;
        let mut file = AuthFile::open(path)?;
        if !change(&mut file) {
            return Ok(false);
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "auth.json".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let write = || -> io::Result<()> {
            // A leftover of a crashed process with this pid would keep its own mode.
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut text = serde_json::to_vec_pretty(&file.doc).map_err(io::Error::other)?;
            text.push(b'\n');
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &target)
        };
        let r = write();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r.map(|()| true).map_err(err)
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://host:5000/x` → `host:5000`.
pub fn normalise_key(key: &str) -> String {
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
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn reads_every_entry_form_by_normalised_registry() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"auths":{
                "https://index.docker.io/v1/":{"auth":"aHViOmh1YnB3"},
                "127.0.0.1:5000":{"auth":"bG9jYWw6cDpzOnc="},
                "reg.example":{"username":"q","password":"qp"},
                "tok.example":{"identitytoken":"itok"},
                "helper-only.example":{}
            },"credsStore":"desktop"}"#,
        )
        .unwrap();
        let f = AuthFile::open(&p).unwrap();
        let c = f.credentials().unwrap();
        assert_eq!(c["docker.io"], creds("hub", "hubpw"));
        assert_eq!(c["127.0.0.1:5000"].password, "p:s:w", "':' in a password");
        assert_eq!(c["reg.example"], creds("q", "qp"));
        assert_eq!(c["tok.example"], creds("<token>", "itok"));
        assert!(!c.contains_key("helper-only.example"));
        let e = f.entries().unwrap();
        assert_eq!(e.len(), 5);
        assert_eq!(
            e.iter().find(|e| e.registry == "helper-only.example"),
            Some(&Entry {
                registry: "helper-only.example".into(),
                username: None
            })
        );
    }

    #[test]
    fn bad_files_name_the_path_or_the_entry() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("c.json");
        for (text, want) in [
            ("{", "cannot parse"),
            ("[]", "not a JSON object"),
            (r#"{"auths":[]}"#, "not a JSON object"),
            (
                r#"{"auths":{"reg.example":{"auth":"bm9jb2xvbg=="}}}"#,
                "`reg.example`",
            ),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = AuthFile::open(&p)
                .and_then(|f| f.credentials())
                .unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
        std::fs::write(&p, "\n").unwrap();
        assert!(
            AuthFile::open(&p)
                .unwrap()
                .credentials()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn set_and_remove_keep_other_entries_and_fields() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("sub/docker-config.json");
        let changed = AuthFile::edit(&p, |f| {
            f.set("docker.io", &creds("hub", "pw1"));
            f.set("127.0.0.1:5000", &creds("u", "p"));
            true
        })
        .unwrap();
        assert!(changed);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&t.path().join("sub")), 0o700);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(DOCKER_HUB_KEY), "{text}");
        assert!(
            !text.contains("pw1"),
            "only base64 `auth` is written: {text}"
        );

        // Unknown fields survive; a re-login replaces the entry spelled another way.
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        doc["credHelpers"] = serde_json::json!({"x.example": "x"});
        doc["auths"]["http://127.0.0.1:5000/v2/"] = serde_json::json!({"auth": "dTpvbGQ="});
        std::fs::write(&p, doc.to_string()).unwrap();
        AuthFile::edit(&p, |f| {
            f.set("127.0.0.1:5000", &creds("u", "new"));
            true
        })
        .unwrap();
        let f = AuthFile::open(&p).unwrap();
        assert_eq!(f.credentials().unwrap()["127.0.0.1:5000"].password, "new");
        assert_eq!(f.entries().unwrap().len(), 2);
        assert!(std::fs::read_to_string(&p).unwrap().contains("credHelpers"));

        assert!(AuthFile::edit(&p, |f| f.remove("127.0.0.1:5000")).unwrap());
        let before = std::fs::read(&p).unwrap();
        assert!(
            !AuthFile::edit(&p, |f| f.remove("127.0.0.1:5000")).unwrap(),
            "nothing left to remove"
        );
        assert_eq!(
            std::fs::read(&p).unwrap(),
            before,
            "an unchanged file is not written"
        );
        let f = AuthFile::open(&p).unwrap();
        assert_eq!(
            f.entries().unwrap(),
            [Entry {
                registry: "docker.io".into(),
                username: Some("hub".into())
            }]
        );
        let names: Vec<_> = std::fs::read_dir(t.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["docker-config.json"], "no temporary file left");
    }

    #[test]
    fn concurrent_edits_keep_every_entry() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("docker-config.json");
        std::thread::scope(|s| {
            for i in 0..8 {
                let p = &p;
                s.spawn(move || {
                    AuthFile::edit(p, |f| {
                        // Widen the window between read and write.
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        f.set(&format!("r{i}.example"), &creds("u", "p"));
                        true
                    })
                    .unwrap()
                });
            }
        });
        assert_eq!(AuthFile::open(&p).unwrap().entries().unwrap().len(), 8);
    }

    #[test]
    fn save_through_a_symlink_keeps_the_link() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real.json");
        let link = t.path().join("link.json");
        std::fs::write(&real, "{}").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        AuthFile::edit(&link, |f| {
            f.set("reg.example", &creds("u", "p"));
            true
        })
        .unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert!(
            std::fs::read_to_string(&real)
                .unwrap()
                .contains("reg.example")
        );
    }
}
