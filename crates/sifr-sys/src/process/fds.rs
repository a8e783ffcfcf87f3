//! Descriptors: pipes, the standard descriptors (redirections, `/dev/null`), closing what a
//! forked child must not keep, and the one-byte readiness signal.

use std::os::fd::{AsRawFd as _, BorrowedFd, OwnedFd};

use crate::error::{Result, err};

/// A close-on-exec pipe `(read, write)`.
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(err("create", "pipe"))
}

/// Read `fd` to its end, or until `deadline`: `Ok(None)` when the deadline came first (what
/// was read so far is dropped). Without a deadline, a plain read to the end.
pub fn read_until(fd: OwnedFd, deadline: Option<std::time::Instant>) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let ts = rustix::event::Timespec::try_from(left).unwrap_or(rustix::event::Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            });
            let mut fds = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(err("poll", "pipe")(e)),
            }
        }
        match rustix::io::read(&fd, &mut buf) {
            Ok(0) => return Ok(Some(out)),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(err("read", "pipe")(e)),
        }
    }
}

/// Make `fd` the caller's standard error (`dup2(fd, 2)`); the new fd 2 is not close-on-exec.
pub fn redirect_stderr(fd: BorrowedFd<'_>) -> Result<()> {
    rustix::stdio::dup2_stderr(fd).map_err(err("redirect", "standard error"))
}

/// Make `fd` the standard output.
pub fn redirect_stdout(fd: BorrowedFd<'_>) -> Result<()> {
    rustix::stdio::dup2_stdout(fd).map_err(err("redirect", "standard output"))
}

/// Make `/dev/null` the caller's standard input.
pub fn stdin_from_null() -> Result<()> {
    let null = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(err("open", "/dev/null"))?;
    rustix::stdio::dup2_stdin(&null).map_err(err("redirect", "standard input"))
}

/// Point stdin, stdout and stderr at `/dev/null` (in a forked helper; best effort).
pub(super) fn stdio_to_null() {
    if let Ok(null) = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
}

/// Close every descriptor above stderr except those in `keep`, with `close_range(2)` over the
/// gaps (nothing to list first). For a forked child that keeps running ordinary code but must
/// not hold what its parent had open: a pipe `mpirun` or `srun` waits on, a socket, a lock.
///
/// `keep` borrows the descriptors the child goes on using, so they are the child's own and
/// open. Every other descriptor number is closed, including any that another Rust object of
/// the process still wraps: call it only where no such object is used or dropped afterwards,
/// as in the child of [`super::fork_server`], which ends with `_exit` and uses nothing of the
/// caller's but its `state`.
pub fn close_fds_except(keep: &[BorrowedFd<'_>]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|fd| u32::try_from(fd.as_raw_fd()).ok())
        .filter(|fd| *fd > 2)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    for fd in keep.into_iter().chain([u32::MAX]) {
        if fd > first {
            // SAFETY: closes descriptor numbers only, never memory; those in `keep` stay open.
            // The caller (a freshly forked child) owns no Rust object wrapping one it still
            // uses, other than those in `keep` (see the function docs).
            unsafe { libc::syscall(libc::SYS_close_range, first, fd - 1, 0) };
        }
        first = fd.saturating_add(1);
    }
}

/// Write one byte to `fd` and close it: a readiness signal to a waiting process. Taking the
/// descriptor by value makes the close part of the signal (the waiter may read to end of file).
/// Errors are ignored (a waiter that went away is not the writer's problem).
pub fn notify(fd: OwnedFd) {
    let _ = rustix::io::write(&fd, &[1]);
}
