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
