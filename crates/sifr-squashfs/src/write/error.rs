//! Typed errors of the SquashFS writer; each names the path (in the image or on the host)
//! that the failure concerns. No formatting for users beyond the `Display` text.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read extended attributes of `{path}`")]
    Xattr {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the squashfs image")]
    Output(#[source] io::Error),
    #[error("invalid path `{path}` in image: {reason}")]
    InvalidPath { path: PathBuf, reason: &'static str },
    #[error("cannot add `{path}`: `{parent}` is not a directory")]
    ParentNotDirectory { path: PathBuf, parent: PathBuf },
    #[error("hard link `{path}` points to `{target}`, which is not in the image")]
    HardLinkTargetMissing { path: PathBuf, target: PathBuf },
    #[error("hard link `{path}` points to `{target}`, which is a directory")]
    HardLinkToDirectory { path: PathBuf, target: PathBuf },
    #[error("the root of the image must be a directory, not the entry given for `{path}`")]
    RootNotDirectory { path: PathBuf },
    #[error("invalid block size {size}: expected a power of two from 4096 to 1048576")]
    BlockSize { size: u32 },
    #[error("the image has {count} distinct owner ids; squashfs holds at most 65536")]
    TooManyIds { count: usize },
    #[error("the image has more inodes than squashfs can number")]
    TooManyInodes,
    #[error("cannot start the compression threads")]
    ThreadPool(#[source] rayon::ThreadPoolBuildError),
}

impl WriteError {
    pub(crate) fn read(path: impl Into<PathBuf>, source: io::Error) -> Self {
        WriteError::Read {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = WriteError> = std::result::Result<T, E>;
