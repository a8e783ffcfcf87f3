//! `-B/--bind` and `APPTAINER_BIND` values (`src[:dst[:opts]]`, comma-separated lists) and
//! Docker-style `--mount type=bind,source=…,destination=…[,readonly]` values, typed once into
//! [`Bind`]. Pure parsing; no I/O, no namespace work.
//!
//! A relative source is kept as given and made absolute against the working directory by
//! [`Bind::absolute`] (Apptainer's `filepath.Abs`: joined and cleaned lexically, symlinks left
//! alone). A destination must be absolute, as in Apptainer (its e2e `RelativeBindDestination`
//! exits 255), and a spec without one binds the source at the same path, so `-B data` alone is
//! refused just as Apptainer refuses it.

use std::path::{Component, Path, PathBuf};

/// A user bind: host `src` at container `dst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub src: PathBuf,
    pub dst: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindError {
    #[error("invalid bind `{spec}`: the source is empty")]
    EmptySource { spec: String },
    #[error("invalid bind `{spec}`: the destination `{path}` is not an absolute path")]
    NotAbsolute { spec: String, path: String },
    #[error(
        "invalid bind `{spec}`: a relative source alone would bind at the relative destination \
         `{src}`"
    )]
    RelativeAlone { spec: String, src: String },
    #[error("invalid bind `{spec}`: unknown option `{option}`")]
    UnknownOption { spec: String, option: String },
    #[error("invalid bind `{spec}`: too many `:` fields")]
    TooManyFields { spec: String },
    #[error("invalid mount `{spec}`: {why}")]
    Mount { spec: String, why: String },
}

impl BindError {
    pub fn hint(&self) -> Option<String> {
        match self {
            BindError::UnknownOption { .. } | BindError::TooManyFields { .. } => {
                Some("the form is `src[:dst[:ro|rw]]`; separate several binds with commas".into())
            }
            BindError::RelativeAlone { src, .. } => Some(format!(
                "give it a destination: `{src}:/{}`",
                src.trim_start_matches("./")
            )),
            BindError::NotAbsolute { .. } => Some("container paths must start with `/`".into()),
            BindError::EmptySource { .. } => None,
            BindError::Mount { .. } => Some(
                "the form is `type=bind,source=/host/path,destination=/container/path[,readonly]`"
                    .into(),
            ),
        }
    }
}

impl Bind {
    /// The bind with a relative source taken from `cwd` (absolute itself), as Apptainer's
    /// `filepath.Abs`: joined, then `.` and `..` removed lexically.
    pub fn absolute(mut self, cwd: &Path) -> Bind {
        if self.src.is_relative() {
            self.src = clean(&cwd.join(&self.src));
        }
        self
    }
}

/// `path` with `.` and `..` components removed lexically (`..` of `/` is `/`), as Go's
/// `filepath.Clean` does for an absolute path.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Parse one `-B` value, which may be a comma-separated list.
pub fn parse_list(value: &str) -> Result<Vec<Bind>, BindError> {
    split_unescaped(value, ',')
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(parse_one)
        .collect()
}

/// `s` split at each `sep` not escaped by a backslash, with `\sep` turned into `sep` in the
/// pieces (other backslashes are kept): Apptainer's `\,` and `\:` in bind paths.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&sep) => {
                if let Some(p) = out.last_mut() {
                    p.push(sep);
                }
                chars.next();
            }
            c if c == sep => out.push(String::new()),
            c => {
                if let Some(p) = out.last_mut() {
                    p.push(c);
                }
            }
        }
    }
    out
}

/// Parse a single `src[:dst[:opts]]` (`\:` is a colon in a path). Options: `ro`, `rw` (the
/// last one wins, as in Apptainer).
/// `image-src=` and `id=` (binds out of image files) are not supported yet and are rejected.
pub fn parse_one(spec: &str) -> Result<Bind, BindError> {
    let owned = split_unescaped(spec, ':');
    let fields: Vec<&str> = owned.iter().map(String::as_str).collect();
    if fields.len() > 3 {
        return Err(BindError::TooManyFields { spec: spec.into() });
    }
    let src = fields[0];
    if src.is_empty() {
        return Err(BindError::EmptySource { spec: spec.into() });
    }
    let dst = fields
        .get(1)
        .copied()
        .filter(|d| !d.is_empty())
        .unwrap_or(src);
    if !dst.starts_with('/') {
        if fields.get(1).is_none_or(|d| d.is_empty()) {
            return Err(BindError::RelativeAlone {
                spec: spec.into(),
                src: src.into(),
            });
        }
        return Err(BindError::NotAbsolute {
            spec: spec.into(),
            path: dst.into(),
        });
    }
    let mut readonly = false;
    if let Some(opts) = fields.get(2) {
        for o in opts.split(';').filter(|o| !o.is_empty()) {
            match o {
                "ro" => readonly = true,
                "rw" => readonly = false,
                other => {
                    return Err(BindError::UnknownOption {
                        spec: spec.into(),
                        option: other.into(),
                    });
                }
            }
        }
    }
    Ok(Bind {
        src: PathBuf::from(src),
        dst: PathBuf::from(dst),
        readonly,
    })
}

/// Parse one `--mount` value (or one line of `APPTAINER_MOUNT`): comma-separated `key=value`
/// fields, CSV-quoted with `"` where a value contains a comma. Keys, as Apptainer accepts them:
/// `type` (only `bind`, the default), `source`/`src`, `destination`/`dst`/`target`,
/// `readonly`/`ro` (any value, even `=false`, makes the bind read-only, as in Apptainer) and
/// `nonested` (accepted; sifr passes no binds to nested containers). `image-src=`, `id=` and
/// `bind-propagation=` are refused.
pub fn parse_mount(spec: &str) -> Result<Bind, BindError> {
    let bad = |why: &str| BindError::Mount {
        spec: spec.into(),
        why: why.into(),
    };
    let (mut src, mut dst, mut readonly) = (None, None, false);
    for field in csv_fields(spec).map_err(bad)? {
        let (key, val) = field.split_once('=').unwrap_or((field.as_str(), ""));
        match key {
            "type" if val == "bind" => {}
            "type" => return Err(bad(&format!("unsupported type `{val}`, only `bind` is"))),
            "source" | "src" if val.is_empty() => return Err(bad("the source is empty")),
            "source" | "src" => src = Some(val.to_string()),
            "destination" | "dst" | "target" if val.is_empty() => {
                return Err(bad("the destination is empty"));
            }
            "destination" | "dst" | "target" => dst = Some(val.to_string()),
            "readonly" | "ro" => readonly = true,
            "nonested" => {}
            "image-src" | "id" => return Err(bad(&format!("`{key}` is not supported yet"))),
            "bind-propagation" => {
                return Err(bad("`bind-propagation` cannot be set for a single mount"));
            }
            other => return Err(bad(&format!("unknown key `{other}`"))),
        }
    }
    let (Some(src), Some(dst)) = (src, dst) else {
        return Err(bad("it needs both a source and a destination"));
    };
    if !dst.starts_with('/') {
        return Err(BindError::NotAbsolute {
            spec: spec.into(),
            path: dst,
        });
    }
    Ok(Bind {
        src: PathBuf::from(src),
        dst: PathBuf::from(dst),
        readonly,
    })
}

/// Split one CSV record: fields separated by `,`, a field may be `"quoted"` with `""` for a
/// literal quote.
fn csv_fields(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if cur.is_empty() => quoted = true,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("a quote is not closed");
    }
    fields.push(cur);
    Ok(fields.into_iter().filter(|f| !f.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// e2e/actions `BindFileWithCommaOK`, `BindFileWithColonOK`: a backslash keeps a comma or a
    /// colon in a path.
    #[test]
    fn escaped_commas_and_colons_stay_in_the_path() {
        let b = parse_list(r"/d/file\,comma:/c/file,/x:/y:ro").unwrap();
        assert_eq!(b[0].src, PathBuf::from("/d/file,comma"));
        assert_eq!(b[0].dst, PathBuf::from("/c/file"));
        assert_eq!((b[1].dst.as_path(), b[1].readonly), (Path::new("/y"), true));
        let b = parse_one(r"/d/file\:colon:/c/file").unwrap();
        assert_eq!(b.src, PathBuf::from("/d/file:colon"));
        assert_eq!(b.dst, PathBuf::from("/c/file"));
    }

    fn ro(src: &str, dst: &str) -> Bind {
        Bind {
            src: src.into(),
            dst: dst.into(),
            readonly: true,
        }
    }

    fn rw(src: &str, dst: &str) -> Bind {
        Bind {
            readonly: false,
            ..ro(src, dst)
        }
    }

    /// The message of the error a bad spec gives.
    fn message(r: Result<Bind, BindError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn source_alone_binds_at_the_same_path() {
        assert_eq!(parse_list("/data").unwrap(), vec![rw("/data", "/data")]);
    }

    #[test]
    fn comma_list_with_destinations_and_ro() {
        assert_eq!(
            parse_list("/a:/x:ro, /b:/y,/c::rw").unwrap(),
            vec![ro("/a", "/x"), rw("/b", "/y"), rw("/c", "/c")]
        );
    }

    #[test]
    fn bad_binds_name_the_spec() {
        assert_eq!(
            message(parse_one("/a:/b:rx")),
            "invalid bind `/a:/b:rx`: unknown option `rx`"
        );
        let e = message(parse_one("/data:b"));
        assert!(
            e.contains("the destination `b` is not an absolute path"),
            "{e}"
        );
        assert!(matches!(
            parse_one("/a:/b:ro:x"),
            Err(BindError::TooManyFields { .. })
        ));
    }

    #[test]
    fn docker_style_mounts_parse_like_apptainer() {
        assert_eq!(
            parse_mount("type=bind,source=/a,destination=/b,readonly").unwrap(),
            ro("/a", "/b")
        );
        assert_eq!(parse_mount("src=/a,dst=/b").unwrap(), rw("/a", "/b"));
        assert_eq!(
            parse_mount("\"src=/a,b\",target=/c,ro=false").unwrap(),
            ro("/a,b", "/c")
        );
    }

    #[test]
    fn bad_mounts_name_the_spec_and_the_reason() {
        assert_eq!(
            message(parse_mount("type=volume,src=/a,dst=/b")),
            "invalid mount `type=volume,src=/a,dst=/b`: unsupported type `volume`, only `bind` is"
        );
        for (spec, why) in [
            ("src=/a", "needs both a source and a destination"),
            ("src=/a,dst=/b,propagation=x", "unknown key `propagation`"),
        ] {
            let e = message(parse_mount(spec));
            assert!(e.contains(why), "{e}");
        }
        assert!(matches!(
            parse_mount("src=/a,dst=b"),
            Err(BindError::NotAbsolute { .. })
        ));
    }

    #[test]
    fn relative_sources_resolve_against_the_working_directory() {
        // Apptainer's `addUserbindsMount`: `filepath.Abs(source)`, the destination as given.
        let cwd = Path::new("/jobs/job");
        let abs = |spec: &str| parse_one(spec).unwrap().absolute(cwd);
        assert_eq!(abs("data:/data"), rw("/jobs/job/data", "/data"));
        assert_eq!(abs("./x:/x:ro"), ro("/jobs/job/x", "/x"));
        assert_eq!(abs("../in/./d:/d"), rw("/jobs/in/d", "/d"));
        assert_eq!(abs("/abs:/abs"), rw("/abs", "/abs"));
        assert_eq!(
            parse_mount("type=bind,src=data,dst=/d")
                .unwrap()
                .absolute(cwd),
            rw("/jobs/job/data", "/d")
        );
        assert_eq!(clean(Path::new("/../a/../../b/.")), PathBuf::from("/b"));
    }

    #[test]
    fn a_relative_destination_is_refused_as_apptainer_does() {
        // e2e/actions/actions.go `RelativeBindDestination`: exit 255.
        let e = parse_one("./data").unwrap_err();
        assert!(matches!(&e, BindError::RelativeAlone { src, .. } if src == "./data"));
        assert_eq!(e.hint().unwrap(), "give it a destination: `./data:/data`");
        let e = parse_one("/host/f:relative").unwrap_err();
        assert_eq!(e.hint().unwrap(), "container paths must start with `/`");
    }
}
