//! Errors of signing, verifying and keyrings, each carrying the values it names.

use std::path::PathBuf;

/// What went wrong, with the object, group, key or file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sif(#[from] sifr_sif::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("OpenPGP: {0}")]
    Pgp(String),
    #[error("key: {0}")]
    Key(String),
    #[error("group not found: {group}")]
    GroupNotFound { group: u32 },
    #[error("object not found: {id}")]
    ObjectNotFound { id: u32 },
    #[error("no groups found")]
    NoGroups,
    #[error("object {id} is not in an object group, so no signature can cover it")]
    NotGrouped { id: u32 },
    #[error("image has no primary system partition")]
    NoPrimaryPartition,
    #[error("no key material: give a PEM key (--key) or have a PGP key in the keyring")]
    NoKeyMaterial,
    #[error("keyring {path} is empty (hint: `sifr key newpair` or `sifr key import`)")]
    EmptyKeyring { path: PathBuf },
    #[error("key index {index} out of range: the keyring has {count} key(s)")]
    IndexOutOfRange { index: usize, count: usize },
    #[error("no key with fingerprint {fingerprint} in {path}")]
    NoSuchKey { fingerprint: String, path: PathBuf },
    #[error("the key with fingerprint {fingerprint} already belongs to the keyring")]
    KeyExists { fingerprint: String },
    #[error("wrong password for key {fingerprint}")]
    WrongPassword { fingerprint: String },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
