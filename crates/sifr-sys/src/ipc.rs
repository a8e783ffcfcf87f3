//! Local coordination between processes of one user on one node: advisory file locks, the
//! credentials of the process at the other end of a Unix socket, and waiting on several fds.
//! Used by the per-node sharing of attached images (`sifr_launch::share`).
//!
//! Must not: decide what is locked or who may connect; callers check the credentials returned.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use crate::error::{Error, Result, err};

/// What [`lock_exclusive`] does while another open file description holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait until it is released.
    Block,
    /// Return `Ok(false)` at once.
    Try,
}

/// Take an exclusive `flock(2)` on `fd`. Under [`LockWait::Try`], returns `Ok(false)` at once
/// when another open file description holds it.
pub fn lock_exclusive(fd: BorrowedFd<'_>, wait: LockWait, what: &str) -> Result<bool> {
    use rustix::fs::FlockOperation as Op;
    let op = if wait == LockWait::Block {
        Op::LockExclusive
    } else {
        Op::NonBlockingLockExclusive
    };
    match rustix::fs::flock(fd, op) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) if wait == LockWait::Try => Ok(false),
        Err(e) => Err(Error::new("lock", what, e)),
    }
}

/// Take an open-file-description byte-range lock (`F_OFD_SETLK`) on `len` bytes at `start` of
/// `fd`: a write lock with `exclusive`, a read lock without. Returns `Ok(false)` at once when
/// another open file description holds a conflicting lock, and `Ok(true)` also when the
/// filesystem does not support locks (`ENOLCK`: nothing can be enforced there, as Apptainer
/// carries on too). The lock lives as long as the open file description. Apptainer locks the
/// overlay partition of an image this way, so the two exclude each other.
pub fn lock_range(fd: BorrowedFd<'_>, start: u64, len: u64, exclusive: bool) -> Result<bool> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value of it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = if exclusive {
        libc::F_WRLCK
    } else {
        libc::F_RDLCK
    } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl.l_pid = 0;
    // SAFETY: F_OFD_SETLK reads a `struct flock`, which `fl` is, alive for the call; `fd` is
    // an open descriptor.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl as *const libc::flock) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        Some(libc::ENOLCK) => Ok(true),
        _ => Err(Error::new(
            "lock a range of",
            format!("fd {}", fd.as_raw_fd()),
            e,
        )),
    }
}

/// Release a lock taken with [`lock_exclusive`].
pub fn unlock(fd: BorrowedFd<'_>) {
    let _ = rustix::fs::flock(fd, rustix::fs::FlockOperation::Unlock);
}

/// Who is at the other end of a connected Unix socket (as recorded by the kernel at `connect`
/// or `listen` time, not as claimed by the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// `SO_PEERCRED` of a connected Unix socket.
pub fn peer(sock: impl AsFd) -> Result<Peer> {
    let c = rustix::net::sockopt::socket_peercred(sock)
        .map_err(err("read credentials of", "socket peer"))?;
    Ok(Peer {
        pid: c.pid.as_raw_nonzero().get(),
        uid: c.uid.as_raw(),
        gid: c.gid.as_raw(),
    })
}

/// Wait until one of `fds` is readable (or hung up), or `timeout` passes (`None`: forever).
/// Returns, per fd, whether it is ready. An interrupted wait returns all `false`.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> Result<Vec<bool>> {
    use rustix::event::{PollFd, PollFlags};
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .collect();
    let ts = timeout.map(|d| rustix::event::Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    });
    match rustix::event::poll(&mut pfds, ts.as_ref()) {
        Ok(_) => Ok(pfds.iter().map(|p| !p.revents().is_empty()).collect()),
        Err(rustix::io::Errno::INTR) => Ok(vec![false; fds.len()]),
        Err(e) => Err(Error::new("poll", "fds", e)),
    }
}
