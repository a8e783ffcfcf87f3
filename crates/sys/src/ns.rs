//! Namespaces: `unshare` and the user-namespace id maps.
//!
//! Runs across a namespace change: after [`unshare`] with `user`, the calling process is root
//! *inside* a new user namespace (with a full capability set there) until it execs a program as
//! a non-zero uid. [`write_id_maps`] must follow immediately, before anything looks at ids.
//!
//! Must not: start threads, or be called from a process that has more than one thread when a
//! user namespace is requested (the kernel refuses with `EINVAL`; [`unshare`] checks first and
//! says so instead).

use crate::error::{Error, Result, err};

/// Which new namespaces to create. Anything `false` is shared with the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
}

impl Namespaces {
    fn flags(self) -> rustix::thread::UnshareFlags {
        use rustix::thread::UnshareFlags as F;
        let mut f = F::empty();
        if self.user {
            f |= F::NEWUSER;
        }
        if self.mount {
            f |= F::NEWNS;
        }
        if self.pid {
            f |= F::NEWPID;
        }
        if self.ipc {
            f |= F::NEWIPC;
        }
        if self.uts {
            f |= F::NEWUTS;
        }
        f
    }

    /// `user+mount`-style list for messages.
    pub fn describe(self) -> String {
        let names = [
            (self.user, "user"),
            (self.mount, "mount"),
            (self.pid, "pid"),
            (self.ipc, "ipc"),
            (self.uts, "uts"),
        ];
        let v: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join("+")
        }
    }
}

/// The number of threads of the calling process, from `/proc/self/status`.
pub fn thread_count() -> Result<usize> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(err("read", "/proc/self/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            Error::new(
                "parse",
                "/proc/self/status",
                std::io::Error::from(std::io::ErrorKind::InvalidData),
            )
        })
}

/// Error raised when a user namespace is requested from a multi-threaded process.
#[derive(Debug, thiserror::Error)]
#[error("cannot create a user namespace: this process has {threads} threads, the kernel needs 1")]
pub struct ThreadedError {
    pub threads: usize,
}

/// `unshare(2)` the given namespaces in the calling process.
///
/// With `ns.user`, the process must be single-threaded; this is checked first.
pub fn unshare(ns: Namespaces) -> Result<()> {
    if ns.user {
        let threads = thread_count()?;
        if threads != 1 {
            return Err(Error::new(
                "unshare",
                ns.describe(),
                std::io::Error::other(ThreadedError { threads }),
            ));
        }
    }
    // SAFETY: `unshare_unsafe` is unsafe only because of `CLONE_FILES`, which can make file
    // descriptors of other threads invalid in this one. We never pass `FILES`, and with a user
    // namespace requested the process was just checked to have a single thread.
    unsafe { rustix::thread::unshare_unsafe(ns.flags()) }.map_err(err("unshare", ns.describe()))
}

/// Map `uid` and `gid` of the caller to themselves in the user namespace just created
/// (`setgroups` is denied first, as an unprivileged process must).
///
/// Only a single id each is mapped: this is Apptainer's unprivileged mode, where the uid inside
/// equals the uid outside (MPI's PMIx rejects anything else).
pub fn write_id_maps(uid: u32, gid: u32) -> Result<()> {
    // `deny` must be written before gid_map by an unprivileged process; for root it is harmless
    // and keeps one code path.
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("{uid} {uid} 1\n"))?;
    write_proc("/proc/self/gid_map", &format!("{gid} {gid} 1\n"))
}

fn write_proc(path: &str, text: &str) -> Result<()> {
    // A single write(2) call is what the kernel expects for these files; std::fs::write does one
    // write for such short contents.
    std::fs::write(path, text)
        .map_err(|e| Error::new("write", format!("{path}` with `{}", text.trim_end()), e))
}

/// Whether the caller runs inside a user namespace other than the initial one, judged from
/// `/proc/self/uid_map` (the initial namespace maps the full 32-bit range from 0).
pub fn in_initial_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(m) => m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"],
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_namespace_is_refused_while_threads_exist() {
        // libtest runs this on a thread of its own, so the process has at least two.
        assert!(thread_count().unwrap() >= 2);
        let err = unshare(Namespaces {
            user: true,
            mount: true,
            ..Namespaces::default()
        })
        .unwrap_err();
        assert_eq!(err.op, "unshare");
        assert_eq!(err.subject, "user+mount");
        assert!(
            err.source
                .to_string()
                .contains("threads, the kernel needs 1"),
            "{}",
            err.source
        );
    }

    #[test]
    fn namespace_lists_read_like_apptainer_docs() {
        let ns = Namespaces {
            user: true,
            mount: true,
            ..Namespaces::default()
        };
        assert_eq!(ns.describe(), "user+mount");
        assert_eq!(Namespaces::default().describe(), "none");
    }
}
