//! The request and options of the extra mounts an action may ask for beyond binds:
//! `-S/--scratch` ([`crate::scratch`]) and `--fusemount` ([`crate::fusemount`]). One field of
//! [`crate::Request`] and one of [`crate::plan::Options`], so that these flags travel together.

use std::path::PathBuf;

use crate::fusemount::{self, FuseMount, FuseMountError};
use crate::request::Sourced;
use crate::scratch::{self, ScratchError};

/// `--scratch` and `--fusemount` as given, with their origins (a flag or its twin).
#[derive(Debug, Clone, Default)]
pub struct MountsRequest {
    /// `-S/--scratch` values; each may list several directories, comma-separated.
    pub scratch: Vec<Sourced<String>>,
    /// `--fusemount` specs, one a value.
    pub fusemount: Vec<Sourced<String>>,
}

/// The typed extra mounts ([`crate::plan::Options::extra_mounts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraMounts {
    /// Scratch directories, absolute and cleaned.
    pub scratch: Vec<PathBuf>,
    pub fuse: Vec<FuseMount>,
}

/// Why an extra mount cannot be used: the value's entry, its origin and the cause.
#[derive(Debug, thiserror::Error)]
pub enum MountsError {
    #[error("invalid `--scratch` value from {origin}")]
    Scratch {
        index: usize,
        origin: crate::request::Origin,
        #[source]
        error: ScratchError,
    },
    #[error("invalid `--fusemount` value from {origin}")]
    Fuse {
        index: usize,
        origin: crate::request::Origin,
        #[source]
        error: FuseMountError,
    },
}

impl MountsError {
    /// Where the value came from and what is wrong with it.
    pub fn cause(&self) -> (crate::request::Origin, String) {
        match self {
            MountsError::Scratch { origin, error, .. } => (origin.clone(), error.to_string()),
            MountsError::Fuse { origin, error, .. } => (origin.clone(), error.to_string()),
        }
    }

    pub fn hint(&self) -> String {
        match self {
            MountsError::Scratch { error, .. } => error.hint(),
            MountsError::Fuse { error, .. } => error.hint(),
        }
    }
}

impl MountsRequest {
    /// Type every value, in order (the first bad one is reported).
    pub fn typed(&self) -> Result<ExtraMounts, MountsError> {
        let mut out = ExtraMounts::default();
        for (index, v) in self.scratch.iter().enumerate() {
            out.scratch
                .extend(
                    scratch::parse_list(&v.value).map_err(|error| MountsError::Scratch {
                        index,
                        origin: v.origin.clone(),
                        error,
                    })?,
                );
        }
        for (index, v) in self.fusemount.iter().enumerate() {
            let parsed = fusemount::parse(&v.value).map_err(|error| MountsError::Fuse {
                index,
                origin: v.origin.clone(),
                error,
            })?;
            out.fuse.extend(parsed);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::plan::Action;
    use crate::request::{Origin, Request, RequestError, Sourced};

    fn request() -> Request {
        Request::new("/img.sif".into(), Action::Exec(vec!["true".into()]))
    }

    #[test]
    fn scratch_and_fusemount_are_typed_and_fusemount_implies_pid() {
        let mut r = request();
        r.extra_mounts.scratch = vec![Sourced::flag("/a,/b/".into()), Sourced::flag("/c".into())];
        r.extra_mounts.fusemount = vec![Sourced::flag("host:squashfuse x.sqfs /m".into())];
        let o = r.options(&[]).unwrap();
        assert_eq!(
            o.extra_mounts.scratch,
            [Path::new("/a"), Path::new("/b"), Path::new("/c")]
        );
        assert_eq!(o.extra_mounts.fuse[0].program, ["squashfuse", "x.sqfs"]);
        assert!(o.pid, "--fusemount implies --pid, as in Apptainer");
        assert!(!request().options(&[]).unwrap().pid);
    }

    #[test]
    fn a_bad_value_names_its_entry_and_origin() {
        let mut r = request();
        let twin = Origin::EnvVar("APPTAINER_FUSESPEC".into());
        r.extra_mounts.fusemount = vec![Sourced {
            value: "sshfs h:/ /m".into(),
            origin: twin.clone(),
        }];
        match r.options(&[]).unwrap_err() {
            RequestError::Mounts(e) => {
                let (origin, message) = e.cause();
                assert_eq!(origin, twin);
                assert!(message.contains("unknown prefix `sshfs`"), "{message}");
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn relative_bind_sources_are_made_absolute_in_the_options() {
        let mut r = request();
        r.binds = vec![Sourced::flag("data:/data,/abs:/x".into())];
        r.mounts = vec![Sourced::flag("type=bind,src=./m,dst=/m".into())];
        let o = r.options(&[]).unwrap();
        let cwd = std::env::current_dir().unwrap();
        let srcs: Vec<_> = o.binds.iter().map(|b| b.src.clone()).collect();
        assert_eq!(srcs, [cwd.join("data"), "/abs".into(), cwd.join("m")]);
    }
}
