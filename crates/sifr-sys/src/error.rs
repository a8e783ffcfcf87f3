//! The one error type of `sys`: which operation failed, on what (a path, an id, a flag set),
//! and the OS error as its source. Pure data; no I/O.

use std::io;

/// A failed system call, naming the operation and the object it was applied to.
#[derive(Debug, thiserror::Error)]
#[error("{op} `{subject}` failed")]
pub struct Error {
    /// The operation, e.g. `"bind mount"`, `"unshare"`, `"write uid map"`.
    pub op: &'static str,
    /// What it was applied to: a path, an id, a namespace list.
    pub subject: String,
    #[source]
    pub source: io::Error,
}

impl Error {
    pub fn new(op: &'static str, subject: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error {
            op,
            subject: subject.into(),
            source: source.into(),
        }
    }

    /// The raw OS error number, if the cause was one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for mapping a rustix/io error into [`Error`].
pub(crate) fn err<E: Into<io::Error>>(
    op: &'static str,
    subject: impl std::fmt::Display,
) -> impl FnOnce(E) -> Error {
    move |e| Error::new(op, subject.to_string(), e)
}
