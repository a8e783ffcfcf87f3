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
