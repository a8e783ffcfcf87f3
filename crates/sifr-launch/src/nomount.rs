//! `--no-mount LIST` (and `APPTAINER_NO_MOUNT`): the default mounts a user may switch off, typed
//! once into [`NoMount`]. Pure parsing; no I/O.
//!
//! The names are Apptainer's (`setNoMountFlags` in its launcher). Where Apptainer warns about
//! and ignores an unknown name, sifr refuses it: a typo such as `--no-mount hme` would otherwise
//! silently leave the home directory mounted.

use std::path::PathBuf;

/// One default mount to leave out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoMount {
    /// `proc`: no `/proc` at all.
    Proc,
    /// `sys`: no `/sys`.
    Sys,
    /// `dev`: no `/dev` at all.
    Dev,
    /// `devpts`: no new devpts instance in the minimal `/dev` of `--contain`.
    Devpts,
    /// `home`: as `--no-home`.
    Home,
    /// `tmp`: neither `/tmp` nor `/var/tmp`.
    Tmp,
    /// `hostfs`: the host's mount points (sifr never binds them, so nothing to leave out).
    Hostfs,
    /// `cwd`: the current directory is not bound.
    Cwd,
    /// `bind-paths`: none of the `bind path` entries (`/etc/localtime`, `/etc/hosts`), nor
    /// `/etc/resolv.conf`.
    BindPaths,
    /// An absolute path: the `bind path` entry (or `/etc/resolv.conf`) with that destination.
    Path(PathBuf),
}

/// The names accepted, for messages and docs.
pub const NAMES: &[&str] = &[
    "proc",
    "sys",
    "dev",
    "devpts",
    "home",
    "tmp",
    "hostfs",
    "cwd",
    "bind-paths",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `--no-mount` value `{value}`: not a mount name nor an absolute path")]
pub struct NoMountError {
    pub value: String,
}

impl NoMountError {
    pub fn hint(&self) -> String {
        format!(
            "use one or more of {}, or the absolute destination of a bind path entry, separated by commas",
            NAMES.join(", ")
        )
    }
}

/// Parse one `--no-mount` value, a comma-separated list (empty items are ignored).
pub fn parse_list(value: &str) -> Result<Vec<NoMount>, NoMountError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|v| {
            Ok(match v {
                "proc" => NoMount::Proc,
                "sys" => NoMount::Sys,
                "dev" => NoMount::Dev,
                "devpts" => NoMount::Devpts,
                "home" => NoMount::Home,
                "tmp" => NoMount::Tmp,
                "hostfs" => NoMount::Hostfs,
                "cwd" => NoMount::Cwd,
                "bind-paths" => NoMount::BindPaths,
                p if p.starts_with('/') => NoMount::Path(PathBuf::from(p)),
                _ => return Err(NoMountError { value: v.into() }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apptainer_names_and_paths_parse() {
        assert_eq!(
            parse_list("home,tmp, proc,/etc/hosts,bind-paths").unwrap(),
            vec![
                NoMount::Home,
                NoMount::Tmp,
                NoMount::Proc,
                NoMount::Path("/etc/hosts".into()),
                NoMount::BindPaths
            ]
        );
    }

    #[test]
    fn unknown_name_is_an_error_naming_it() {
        let e = parse_list("home,hme").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid `--no-mount` value `hme`: not a mount name nor an absolute path"
        );
        assert!(e.hint().contains("bind-paths"));
    }
}
