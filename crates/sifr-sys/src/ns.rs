//! Namespaces: `unshare` and the user-namespace id maps.
//!
//! Runs across a namespace change: after [`unshare`] with `user`, the calling process is root
//! *inside* a new user namespace (with a full capability set there) until it execs a program as
//! a non-zero uid. [`write_id_maps`] must follow immediately, before anything looks at ids.
//!
//! Must not: start threads, or be called from a process that has more than one thread when a
//! user namespace is requested (the kernel refuses with `EINVAL`; [`unshare`] checks first and
//! says so instead).

use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};

use crate::error::{Error, Result, err};
use crate::threads;

/// Which new namespaces to create. Anything `false` is shared with the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    /// A network namespace with only `lo` (brought up by [`crate::net::loopback_up`]).
    pub net: bool,
}

impl Namespaces {
    /// Each namespace: whether it is new, its name in messages, its `unshare` flag.
    fn table(self) -> [(bool, &'static str, rustix::thread::UnshareFlags); 6] {
        use rustix::thread::UnshareFlags as F;
        [
            (self.user, "user", F::NEWUSER),
            (self.mount, "mount", F::NEWNS),
            (self.pid, "pid", F::NEWPID),
            (self.ipc, "ipc", F::NEWIPC),
            (self.uts, "uts", F::NEWUTS),
            (self.net, "net", F::NEWNET),
        ]
    }

    fn flags(self) -> rustix::thread::UnshareFlags {
        self.table()
            .into_iter()
            .filter(|(on, _, _)| *on)
            .fold(rustix::thread::UnshareFlags::empty(), |f, (_, _, flag)| {
                f | flag
            })
    }

    /// `user+mount`-style list for messages.
    pub fn describe(self) -> String {
        let v: Vec<&str> = self
            .table()
            .into_iter()
            .filter(|(on, _, _)| *on)
            .map(|(_, name, _)| name)
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join("+")
        }
    }
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
        threads::ensure_single_threaded(|threads| {
            Error::new(
                "unshare",
                ns.describe(),
                std::io::Error::other(ThreadedError { threads }),
            )
        })?;
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

/// Map root inside the user namespace just created to the caller's own `uid`/`gid` (one id
/// each, like `unshare -r`): the fakeroot fallback when no subordinate ids are configured.
/// Files the namespace's root creates belong to the caller on the host; `chown` to any other
/// id fails with `EINVAL` inside.
pub fn write_root_maps(uid: u32, gid: u32) -> Result<()> {
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("0 {uid} 1\n"))?;
    write_proc("/proc/self/gid_map", &format!("0 {gid} 1\n"))
}

/// One line of a `uid_map`/`gid_map`: `count` ids starting at `inside` map to those starting
/// at `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl IdRange {
    /// Whether id `id`, as seen inside the namespace, is mapped by this line.
    pub fn maps_inside(&self, id: u32) -> bool {
        id >= self.inside && u64::from(id) < u64::from(self.inside) + u64::from(self.count)
    }
}

/// The lines of a `uid_map`/`gid_map` text; lines that do not parse are skipped (the kernel
/// writes three numbers a line).
pub fn parse_id_map(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let mut n = l.split_whitespace().map(str::parse::<u32>);
            match (n.next(), n.next(), n.next()) {
                (Some(Ok(inside)), Some(Ok(outside)), Some(Ok(count))) => Some(IdRange {
                    inside,
                    outside,
                    count,
                }),
                _ => None,
            }
        })
        .collect()
}

/// The calling process's own user namespace maps: `(uid_map, gid_map)` lines from
/// `/proc/self/uid_map` and `/proc/self/gid_map`. An id outside every range has no name in this
/// namespace: the kernel shows it as the overflow id and refuses to write inodes it owns.
pub fn own_id_maps() -> Result<(Vec<IdRange>, Vec<IdRange>)> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|t| parse_id_map(&t))
            .map_err(err("read", path))
    };
    Ok((read("/proc/self/uid_map")?, read("/proc/self/gid_map")?))
}

/// Id maps written by the setuid helpers `newuidmap`/`newgidmap` (package `uidmap`), which may
/// grant the subordinate ranges of `/etc/subuid` and `/etc/subgid` that an unprivileged process
/// cannot map itself.
///
/// The helpers must run outside the new user namespace, on the pid of the process inside it,
/// after it exists: [`HelperMaps::prepare`] forks one waiting child per helper *before*
/// `unshare`, and [`HelperMaps::apply`] releases them afterwards and checks their status.
/// Runs across the user-namespace change.
#[derive(Debug)]
pub struct HelperMaps {
    /// `(pid, write end of its go pipe, helper name)`.
    helpers: Vec<(i32, Option<OwnedFd>, String)>,
}

/// A map helper failed.
#[derive(Debug, thiserror::Error)]
pub enum HelperMapError {
    #[error("cannot prepare `{helper}`")]
    Prepare {
        helper: String,
        #[source]
        source: crate::process::ForkServerError,
    },
    #[error("`{helper}` failed ({status}); it printed the reason above")]
    Failed { helper: String, status: String },
    #[error(transparent)]
    Sys(#[from] Error),
}

impl HelperMaps {
    /// Fork the two helpers for the calling process's pid, each blocked until [`Self::apply`].
    /// `newuidmap`/`newgidmap` are the helpers' paths; the ranges become their arguments.
    pub fn prepare(
        newuidmap: &std::path::Path,
        newgidmap: &std::path::Path,
        uid: &[IdRange],
        gid: &[IdRange],
    ) -> std::result::Result<HelperMaps, HelperMapError> {
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        let mut helpers = Vec::new();
        for (prog, ranges) in [(newuidmap, uid), (newgidmap, gid)] {
            let name = prog.display().to_string();
            match spawn_waiting_helper(prog, pid, ranges) {
                Ok((child, go)) => helpers.push((child, Some(go), name)),
                Err(source) => {
                    // Dropping the ones already forked releases and reaps them.
                    drop(HelperMaps { helpers });
                    return Err(HelperMapError::Prepare {
                        helper: name,
                        source,
                    });
                }
            }
        }
        Ok(HelperMaps { helpers })
    }

    /// Let the helpers write the maps of the (now unshared) caller and wait for them.
    pub fn apply(mut self) -> std::result::Result<(), HelperMapError> {
        for (pid, go, name) in &mut self.helpers {
            if let Some(fd) = go.take() {
                // One byte says "go"; a closed pipe without it says "give up".
                rustix::io::write(&fd, b"g").map_err(err("release", name.clone()))?;
            }
            let status = crate::process::wait_pid(*pid)?;
            *pid = 0;
            if status.code() != 0 {
                return Err(HelperMapError::Failed {
                    helper: name.clone(),
                    status: status.describe(),
                });
            }
        }
        Ok(())
    }
}

impl Drop for HelperMaps {
    fn drop(&mut self) {
        for (pid, go, _) in &mut self.helpers {
            drop(go.take());
            if *pid > 0 {
                let _ = crate::process::wait_pid(*pid);
            }
        }
    }
}

/// Fork a child that waits for one byte on a pipe, then execs `prog pid in out count...`.
fn spawn_waiting_helper(
    prog: &std::path::Path,
    pid: i32,
    ranges: &[IdRange],
) -> std::result::Result<(i32, OwnedFd), crate::process::ForkServerError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt as _;
    let bad = |what: &str| {
        Error::new(
            "prepare",
            what.to_string(),
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        )
    };
    let path = CString::new(prog.as_os_str().as_bytes()).map_err(|_| bad("helper path"))?;
    let mut args = vec![
        path.clone(),
        CString::new(pid.to_string()).map_err(|_| bad("pid"))?,
    ];
    for r in ranges {
        for v in [r.inside, r.outside, r.count] {
            args.push(CString::new(v.to_string()).map_err(|_| bad("range"))?);
        }
    }
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let (rd, wr) = crate::process::pipe()?;
    let (rd_raw, wr_raw) = (rd.as_raw_fd(), wr.as_raw_fd());
    // The child below goes further than `fork_checked` requires: it performs only
    // async-signal-safe calls (`close`, `read`, `execv`, `_exit`) on data prepared before.
    let child = crate::process::fork_checked("id map helper")?;
    if child == 0 {
        // SAFETY: plain syscalls on fds and pointers that stay valid in the child (its copy of
        // the parent's memory); `execv` either replaces the image or returns, then `_exit`.
        unsafe {
            libc::close(wr_raw);
            let mut b = 0u8;
            let n = loop {
                let n = libc::read(rd_raw, (&mut b as *mut u8).cast(), 1);
                if n >= 0 || *libc::__errno_location() != libc::EINTR {
                    break n;
                }
            };
            if n == 1 {
                libc::execv(path.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            }
            libc::_exit(1);
        }
    }
    drop(rd);
    Ok((child, wr))
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

/// Join existing namespaces of another process, through fds of its `/proc/PID/ns/user` and
/// `/proc/PID/ns/mnt`: the user namespace first (it grants the capabilities the mount namespace
/// needs), then the mount namespace. `setns(2)` into a mount namespace also moves the root and
/// working directory to that namespace's root.
///
/// Runs across a namespace change. With `user`, the process must be single-threaded (checked).
pub fn join(
    user: Option<std::os::fd::BorrowedFd<'_>>,
    mnt: std::os::fd::BorrowedFd<'_>,
) -> Result<()> {
    use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
    if let Some(user) = user {
        threads::ensure_single_threaded(|threads| {
            Error::new(
                "join",
                "user namespace",
                std::io::Error::other(ThreadedError { threads }),
            )
        })?;
        move_into_link_name_space(user, Some(LinkNameSpaceType::User))
            .map_err(err("join", "user namespace"))?;
    }
    move_into_link_name_space(mnt, Some(LinkNameSpaceType::Mount))
        .map_err(err("join", "mount namespace"))
}

/// Join every namespace of process `pid` that differs from the caller's: user first (it grants
/// the capabilities the others need), then IPC, UTS, network, the PID namespace of its children (the
/// caller's next child is born there), and mount last (it moves the root and working directory
/// to the namespace's root). Used to run a command in a running container (an instance).
///
/// Runs across a namespace change; the process must be single-threaded (checked).
pub fn join_all(pid: i32) -> Result<()> {
    use rustix::thread::{LinkNameSpaceType as T, move_into_link_name_space};
    threads::ensure_single_threaded(|threads| {
        Error::new(
            "join",
            format!("namespaces of process {pid}"),
            std::io::Error::other(ThreadedError { threads }),
        )
    })?;
    let order = [
        ("user", "user", T::User),
        ("ipc", "ipc", T::InterProcessCommunication),
        ("uts", "uts", T::HostNameAndNISDomainName),
        ("net", "net", T::Network),
        ("pid_for_children", "pid_for_children", T::ProcessID),
        ("mnt", "mnt", T::Mount),
    ];
    let mut fds = Vec::new();
    for (theirs, ours, kind) in order {
        let target = std::fs::read_link(format!("/proc/{pid}/ns/{theirs}"))
            .map_err(err("read", format!("/proc/{pid}/ns/{theirs}")))?;
        let own = std::fs::read_link(format!("/proc/self/ns/{ours}")).ok();
        if own.as_ref() != Some(&target) {
            fds.push((theirs, open_ns(pid, theirs)?, kind));
        }
    }
    for (name, fd, kind) in &fds {
        move_into_link_name_space(fd.as_fd(), Some(*kind))
            .map_err(err("join", format!("{name} namespace of process {pid}")))?;
    }
    Ok(())
}

/// Open `/proc/PID/ns/NAME` (`user`, `mnt`, ...) for [`join`].
pub fn open_ns(pid: i32, name: &str) -> Result<OwnedFd> {
    let path = format!("/proc/{pid}/ns/{name}");
    rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(err("open", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_namespace_is_refused_while_threads_exist() {
        // libtest runs this on a thread of its own, so the process has at least two.
        assert!(crate::threads::thread_count().unwrap() >= 2);
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

    #[test]
    fn id_maps_parse_as_the_kernel_prints_them() {
        let m =
            parse_id_map("      1001       1001          1\n         0     100000      65536\n");
        assert_eq!(
            m,
            [
                IdRange {
                    inside: 1001,
                    outside: 1001,
                    count: 1
                },
                IdRange {
                    inside: 0,
                    outside: 100000,
                    count: 65536
                },
            ]
        );
        assert!(m[0].maps_inside(1001) && !m[0].maps_inside(1000) && !m[0].maps_inside(1002));
        assert!(m[1].maps_inside(0) && m[1].maps_inside(65535) && !m[1].maps_inside(65536));
        let all = parse_id_map("0 0 4294967295");
        assert!(all[0].maps_inside(u32::MAX - 1) && !all[0].maps_inside(u32::MAX));
    }
}
