//! Forks whose child runs ordinary Rust code: a long-running server ([`fork_server`]), a
//! child that runs a whole launch ([`fork_child`]), a daemon that outlives the caller
//! ([`spawn_daemon`]). Each goes through [`fork_checked`], which makes sure first that the
//! caller has a single thread (the hard rule of `docs/architecture.md`).

use super::child::{ExitStatus, wait_pid};
use super::fds;
use crate::error::Error;
use crate::threads;

/// A forked server process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ForkServerError {
    #[error("cannot fork a server: this process has {threads} threads, it must have 1")]
    Threaded { threads: usize },
    #[error(transparent)]
    Sys(#[from] Error),
}

/// Fork a long-running helper (the FUSE server of an attached image): the child runs
/// `serve(state)` and `_exit`s with its return value; the parent gets the child's pid and its
/// own `state` back (both processes hold a copy; each uses only its own). The child's stdin,
/// stdout and stderr are `/dev/null` (so `/dev/null` must still resolve: fork before
/// `pivot_root`); it reports through its exit status.
///
/// Why this is sound although the child runs arbitrary Rust code (allocation, locks, threads):
/// the restriction to async-signal-safe work after `fork` exists because other threads of the
/// parent may hold locks (malloc's, stdio's) that are copied locked into the child. This
/// function first checks that the calling process has exactly one thread (the launcher before
/// it starts any, see the hard rules in docs/architecture.md), so no lock can be held by another
/// thread, and the child's copy of memory is consistent. The child never returns into the
/// caller's code: `_exit` skips atexit handlers and the parent's buffered stdio.
pub fn fork_server<T, F: FnOnce(T) -> i32>(
    state: T,
    serve: F,
) -> std::result::Result<(i32, T), ForkServerError> {
    let pid = fork_checked("server")?;
    if pid == 0 {
        // The server must not write on the user's terminal, nor keep the caller's stdout or
        // stderr pipe open after the payload is done (a reader would wait for it).
        fds::stdio_to_null();
        exit_with(|| serve(state));
    }
    Ok((pid, state))
}

/// Fork a child that runs `body()` and `_exit`s with its return value, keeping the caller's
/// stdin, stdout and stderr (unlike [`fork_server`]); returns the child's pid. Used to run a
/// whole container launch (which enters namespaces and never returns into the caller's code)
/// in a child while the caller, a build, goes on afterwards.
///
/// Sound for the same reason as [`fork_server`]: the caller is checked to be single-threaded,
/// so the child may run ordinary code.
pub fn fork_child<F: FnOnce() -> i32>(body: F) -> std::result::Result<i32, ForkServerError> {
    let pid = fork_checked("child")?;
    if pid == 0 {
        exit_with(body);
    }
    Ok(pid)
}

/// [`fork_child`] for a child that must not outlive the caller: it gets `SIGKILL` when the
/// calling process dies, however it dies (`PR_SET_PDEATHSIG`; `kill -9` of a build included),
/// and exits at once if the caller was already gone before that was set. A build section's
/// container runs in such a child, whose init (PID 1 of the section's PID namespace) is tied
/// to it the same way: when the init dies the kernel kills every process of the namespace.
pub fn fork_tied_child<F: FnOnce() -> i32>(body: F) -> std::result::Result<i32, ForkServerError> {
    let parent = rustix::process::getpid();
    let pid = fork_checked("child")?;
    if pid == 0 {
        die_with(parent);
        exit_with(body);
    }
    Ok(pid)
}

/// In a child just forked from `parent`: get `SIGKILL` when `parent` dies, and `_exit(137)` at
/// once if it died before that was set. Only async-signal-safe calls (`prctl`, `getppid`,
/// `_exit`), so it also serves between fork and exec.
fn die_with(parent: rustix::process::Pid) {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid() != Some(parent) {
        // SAFETY: ends the child at once, without the parent's atexit handlers or buffers.
        unsafe { libc::_exit(137) }
    }
}

/// Make the process `cmd` starts get `SIGKILL` when the calling process dies, however it dies
/// (`PR_SET_PDEATHSIG`; `kill -9` of a build included), and exit at once if the caller was
/// already gone: for host tools a build runs (`cp` of a base sandbox, `debootstrap`,
/// `%setup`'s shell), which run in a process group of their own so that the build's signal
/// handler can pass Ctrl-C on, and so are not killed with the build's group. Only that process
/// is tied; what it starts in turn is not.
///
/// The signal follows the *thread* that spawns: spawn from a thread that outlives the tool
/// (a build's main thread).
pub fn tie_to_caller(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = rustix::process::getpid();
    // SAFETY: the hook runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed: `die_with` makes only such calls, and nothing is allocated.
    unsafe {
        cmd.pre_exec(move || {
            die_with(parent);
            Ok(())
        });
    }
}

/// Start `body` as a daemon: a grandchild of this process in a session of its own, with stdin,
/// stdout and stderr on `/dev/null` and every other fd closed except `keep` (a launcher may
/// have inherited pipes from `mpirun` or `srun`, whose readers wait until every copy is
/// closed); it `_exit`s with `body`'s return value. The intermediate child exits at once and is
/// reaped here, so the daemon is not this process's child: it is re-parented to init (or the
/// nearest subreaper) and outlives the caller. Returns when the intermediate is gone.
///
/// Sound for the same reason as [`fork_server`]: the caller is checked to be single-threaded.
pub fn spawn_daemon<F: FnOnce() -> i32>(
    keep: &[std::os::fd::RawFd],
    body: F,
) -> std::result::Result<(), ForkServerError> {
    // Collected before forking so the child only closes.
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Error::new("list", "/proc/self/fd", e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    let pid = fork_checked("daemon")?;
    if pid == 0 {
        let _ = rustix::process::setsid();
        // SAFETY: still single-threaded (the child of a single-threaded process).
        let grandchild = unsafe { libc::fork() };
        if grandchild != 0 {
            // SAFETY: `_exit` is always safe; the intermediate only existed to be reaped.
            unsafe { libc::_exit(i32::from(grandchild < 0)) }
        }
        for fd in open {
            // SAFETY: closing a descriptor number; nothing in this process uses these fds
            // (they were not in `keep`), and the directory fd used to list them is gone.
            unsafe { libc::close(fd) };
        }
        fds::stdio_to_null();
        let _ = rustix::process::chdir("/");
        exit_with(body);
    }
    match wait_pid(pid)? {
        ExitStatus::Exited(0) => Ok(()),
        other => Err(Error::new(
            "fork",
            "daemon",
            std::io::Error::other(format!("the intermediate process {}", other.describe())),
        )
        .into()),
    }
}

/// The end of a forked child: run `body` and `_exit` with its return value, or 101 if it
/// panicked (a panic must not unwind into the caller's code in the child).
fn exit_with(body: impl FnOnce() -> i32) -> ! {
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
    // SAFETY: `_exit` is always safe to call; it ends the child without unwinding into the
    // parent's code or running its atexit handlers.
    unsafe { libc::_exit(code) }
}

/// Check that the calling process has a single thread, then `fork(2)`: returns 0 in the child
/// and the child's pid in the parent; `what` names the child in errors (`fork \`what\``).
///
/// The child may run ordinary Rust code (allocate, lock), because no other thread existed to
/// hold a lock that `fork` copies held. It must end with `_exit`, never returning into code
/// of its caller that would drop or reuse the parent's objects a second time.
pub(crate) fn fork_checked(what: &'static str) -> std::result::Result<i32, ForkServerError> {
    threads::ensure_single_threaded(|threads| ForkServerError::Threaded { threads })?;
    // SAFETY: the process has a single thread (checked just above), so the child inherits no
    // lock held by another thread and may run ordinary code; see the function docs.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::new("fork", what, std::io::Error::last_os_error()).into());
    }
    Ok(pid)
}
