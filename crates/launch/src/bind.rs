//! `-B/--bind` and `APPTAINER_BIND` values: `src[:dst[:opts]]`, comma-separated lists, typed once
//! into [`Bind`]. Pure parsing; no I/O, no namespace work.

use std::path::PathBuf;

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
    #[error("invalid bind `{spec}`: `{path}` is not an absolute path")]
    NotAbsolute { spec: String, path: String },
    #[error("invalid bind `{spec}`: unknown option `{option}`")]
    UnknownOption { spec: String, option: String },
    #[error("invalid bind `{spec}`: too many `:` fields")]
    TooManyFields { spec: String },
}

impl BindError {
    pub fn hint(&self) -> Option<String> {
        match self {
            BindError::UnknownOption { .. } | BindError::TooManyFields { .. } => {
                Some("the form is `src[:dst[:ro|rw]]`; separate several binds with commas".into())
            }
            BindError::NotAbsolute { .. } => Some("bind paths must start with `/`".into()),
            BindError::EmptySource { .. } => None,
        }
    }
}

/// Parse one `-B` value, which may be a comma-separated list.
pub fn parse_list(value: &str) -> Result<Vec<Bind>, BindError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_one)
        .collect()
}

/// Parse a single `src[:dst[:opts]]`. Options: `ro`, `rw` (the last one wins, as in Apptainer).
/// `image-src=` and `id=` (binds out of image files) are not supported yet and are rejected.
pub fn parse_one(spec: &str) -> Result<Bind, BindError> {
    let fields: Vec<&str> = spec.split(':').collect();
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
    for p in [src, dst] {
        if !p.starts_with('/') {
            return Err(BindError::NotAbsolute {
                spec: spec.into(),
                path: p.into(),
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn b(src: &str, dst: &str, ro: bool) -> Bind {
        Bind {
            src: src.into(),
            dst: dst.into(),
            readonly: ro,
        }
    }

    #[test]
    fn source_alone_binds_at_the_same_path() {
        assert_eq!(
            parse_list("/data").unwrap(),
            vec![b("/data", "/data", false)]
        );
    }

    #[test]
    fn comma_list_with_destinations_and_ro() {
        assert_eq!(
            parse_list("/a:/x:ro, /b:/y,/c::rw").unwrap(),
            vec![
                b("/a", "/x", true),
                b("/b", "/y", false),
                b("/c", "/c", false)
            ]
        );
    }

    #[test]
    fn bad_binds_name_the_spec() {
        let e = parse_one("/a:/b:rx").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid bind `/a:/b:rx`: unknown option `rx`"
        );
        let e = parse_one("data:/b").unwrap_err();
        assert!(e.to_string().contains("`data` is not an absolute path"));
        assert!(matches!(
            parse_one("/a:/b:ro:x"),
            Err(BindError::TooManyFields { .. })
        ));
    }
}
