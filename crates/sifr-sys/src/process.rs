//! Spawn, exec and wait.
//!
//! [`ExecSpec`] converts everything the child will need (candidate paths, argv, envp) into C
//! strings *before* the child is created; the child then only performs async-signal-safe calls
//! (`signal`, `sigprocmask`, `dup2`, `execve`, `write`, `_exit`), as required in a child of a
//! process that may hold locks, and in a [`spawn`] child, which shares the caller's memory until
//! it execs (`clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn`). The child code is private to
//! this module; callers get [`spawn`].
//!
//! Runs after the namespace change, in the container's mount namespace; the child inherits the
//! namespaces, the cwd and `no_new_privs` of the caller.

use std::ffi::{CString, OsStr, OsString};
use std::io::Read as _;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use crate::error::{Error, Result, err};
use crate::signal::{self, SavedMask};

/// A program to execute, fully prepared for a forked child.
#[derive(Debug)]
pub struct ExecSpec {
    /// Display name of the command, for errors.
    pub name: String,
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// An argument, path or variable contained a NUL byte.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` contains a NUL byte")]
pub struct NulError(pub String);

fn cstr(s: &OsStr) -> std::result::Result<CString, NulError> {
    CString::new(s.as_bytes()).map_err(|_| NulError(s.to_string_lossy().into_owned()))
}

impl ExecSpec {
    /// `candidates` are tried in order with `execve` (a PATH search done by the caller);
    /// `argv[0]` is passed as given.
    pub fn new(
        name: &str,
        candidates: &[PathBuf],
        argv: &[OsString],
        env: &[(OsString, OsString)],
    ) -> std::result::Result<ExecSpec, NulError> {
        let candidates = candidates
            .iter()
            .map(|p| cstr(p.as_os_str()))
            .collect::<std::result::Result<_, _>>()?;
        let argv = argv
            .iter()
            .map(|a| cstr(a))
            .collect::<std::result::Result<_, _>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.clone();
                kv.push("=");
                kv.push(v);
                cstr(&kv)
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(ExecSpec {
            name: name.to_string(),
            candidates,
            argv,
            envp,
        })
    }
}

/// A forked child that is executing (or failed to execute) an [`ExecSpec`].
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    /// Read end of a close-on-exec pipe: EOF means the exec succeeded; 4 bytes are the errno of
    /// the last failed `execve`.
    status_pipe: Option<OwnedFd>,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// `exit status N` or `killed by signal N`, for messages.
    pub fn describe(self) -> String {
        match self {
            ExitStatus::Exited(c) => format!("exit status {c}"),
            ExitStatus::Signaled(s) => format!("killed by signal {s}"),
        }
    }

    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// Options for [`spawn`].
#[derive(Debug, Default)]
pub struct SpawnOptions<'a> {
    /// Redirect the child's stdout to this fd.
    pub stdout: Option<BorrowedFd<'a>>,
    /// The signal mask to restore in the child (the caller blocked forwarded signals).
    pub mask: Option<SavedMask>,
}

/// Fork and exec `spec` in the child. Returns once the child exists; use
/// [`Child::wait_exec`] to learn whether the exec itself succeeded.
pub fn spawn(spec: &ExecSpec, opts: &SpawnOptions<'_>) -> Result<Child> {
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(err("create pipe for", &spec.name))?;
    // Pointer arrays are built before the child exists: it must not allocate.
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let stdout = opts.stdout.map(|fd| fd.as_raw_fd());
    let wr_raw = wr.as_raw_fd();
    let candidates: Vec<*const libc::c_char> = spec.candidates.iter().map(|c| c.as_ptr()).collect();
    let mask = opts.mask;

    let args = ChildArgs {
        candidates: &candidates,
        argv: &argv,
        envp: &envp,
        stdout,
        status_fd: wr_raw,
        mask: mask.as_ref(),
    };
    // The child runs on its own small stack in the parent's memory (CLONE_VM) while the parent
    // waits (CLONE_VFORK) until it has called execve or _exit, as posix_spawn does: no page
    // tables are copied, and neither process takes copy-on-write faults afterwards.
    let mut stack = vec![0u8; CHILD_STACK];
    // SAFETY: the stack grows down from its (16-byte aligned) end, which stays inside `stack`.
    let top = unsafe { stack.as_mut_ptr().add(CHILD_STACK) };
    let top = (top as usize & !15) as *mut libc::c_void;
    // SAFETY: `child_entry` receives a pointer to `args`, which outlives the child's use of it:
    // with CLONE_VFORK this call returns only after the child has exec'd or exited, and the
    // child only runs async-signal-safe code (see `child_exec`). `stack` outlives it likewise.
    let pid = unsafe {
        libc::clone(
            child_entry,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&args as *const ChildArgs<'_>).cast_mut().cast(),
        )
    };
    drop(stack);
    if pid < 0 {
        return Err(Error::new(
            "start a process for",
            &spec.name,
            std::io::Error::last_os_error(),
        ));
    }
    drop(wr);
    Ok(Child {
        pid,
        status_pipe: Some(rd),
    })
}

/// Stack of the [`spawn`] child: it only calls `child_exec` (a few small frames).
const CHILD_STACK: usize = 64 * 1024;

/// What the [`spawn`] child needs, all prepared before `clone`.
struct ChildArgs<'a> {
    candidates: &'a [*const libc::c_char],
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    stdout: Option<i32>,
    status_fd: i32,
    mask: Option<&'a SavedMask>,
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `spawn` passes a pointer to a live `ChildArgs` (see there).
    let a = unsafe { &*arg.cast::<ChildArgs<'_>>() };
    child_exec(a.candidates, a.argv, a.envp, a.stdout, a.status_fd, a.mask)
}

/// The child side of [`spawn`] (and of the init's fork). Only async-signal-safe calls; never
/// returns. In a [`spawn`] child it shares the parent's memory: it writes nothing but `errno`.
fn child_exec(
    candidates: &[*const libc::c_char],
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    stdout: Option<i32>,
    status_fd: i32,
    mask: Option<&SavedMask>,
) -> ! {
    signal::reset_forwarded_to_default();
    if let Some(m) = mask {
        signal::restore_mask(m);
    }
    let mut errno: i32 = libc::ENOENT;
    // SAFETY: all pointers were prepared before the child was created and stay valid (it shares
    // or has a copy of the parent's memory); argv/envp are NULL-terminated arrays of
    // NUL-terminated strings. dup2, execve, write and _exit are async-signal-safe.
    unsafe {
        if let Some(fd) = stdout
            && libc::dup2(fd, 1) < 0
        {
            errno = *libc::__errno_location();
            libc::write(status_fd, (&errno as *const i32).cast(), 4);
            libc::_exit(127);
        }
        for &c in candidates {
            libc::execve(c, argv.as_ptr(), envp.as_ptr());
            let e = *libc::__errno_location();
            // Keep the most telling error: "permission denied" beats "not found".
            if errno == libc::ENOENT || e != libc::ENOENT {
                errno = e;
            }
        }
        libc::write(status_fd, (&errno as *const i32).cast(), 4);
        libc::_exit(if errno == libc::ENOENT { 127 } else { 126 });
    }
}

/// Fork the init of a PID namespace the caller has just `unshare`d, and from it the command:
/// the init is PID 1 there, the command its child (PID 2), as Apptainer's `appinit` shim does.
/// An init is needed because the kernel only delivers to a namespace's PID 1 the signals it
/// has a handler for: a command running as PID 1 would ignore the SIGTERM a batch system sends.
///
/// The init first mounts a fresh procfs at `proc_at` (it must be inside the namespace for the
/// new procfs to show the container's processes), then forks the command, forwards the
/// signals of [`signal::FORWARDED`] to it, reaps every process that ends up its child, and
/// exits with the command's status (`128 + N` when the command was killed by signal N: an init
/// cannot kill itself with a signal). It dies with the caller (`PR_SET_PDEATHSIG`).
///
/// The returned [`Child`] is the init; [`Child::wait_exec`] still reports whether the
/// *command*'s `execve` succeeded (the status pipe is handed down to it). A failed proc mount
/// is returned here as an error, after the init has been reaped.
///
/// Like [`fork_server`], the init runs ordinary Rust code after `fork`, which is sound because
/// the calling process is checked to be single-threaded first (no lock can be held by another
/// thread); the command's own child still performs only async-signal-safe calls before `execve`.
pub fn spawn_init(
    spec: &ExecSpec,
    opts: &SpawnOptions<'_>,
    proc_at: Option<&std::path::Path>,
) -> Result<Child> {
    let threads = crate::ns::thread_count()?;
    if threads != 1 {
        return Err(Error::new(
            "fork",
            "the container's init",
            std::io::Error::other(format!(
                "this process has {threads} threads, it must have 1"
            )),
        ));
    }
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(err("create pipe for", &spec.name))?;
    let (setup_rd, setup_wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(err("create pipe for", "the container's init"))?;
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let candidates: Vec<*const libc::c_char> = spec.candidates.iter().map(|c| c.as_ptr()).collect();
    let stdout = opts.stdout.map(|fd| fd.as_raw_fd());
    let mask = opts.mask;

    // SAFETY: single-threaded (checked above), so the child may run ordinary code; see the
    // function docs.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::new(
            "fork",
            "the container's init",
            std::io::Error::last_os_error(),
        ));
    }
    if pid == 0 {
        drop(rd);
        drop(setup_rd);
        let cmd = Prepared {
            candidates: &candidates,
            argv: &argv,
            envp: &envp,
            stdout,
            mask,
        };
        init_main(&cmd, wr, setup_wr, proc_at);
    }
    drop(wr);
    drop(setup_wr);
    let mut buf = [0u8; 4];
    let mut f = std::fs::File::from(setup_rd);
    let mut got = 0;
    while got < 4 {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if got == 4 {
        let _ = wait_pid(pid);
        let subject = proc_at.map(|p| p.display().to_string()).unwrap_or_default();
        return Err(Error::new(
            "mount proc on",
            subject,
            std::io::Error::from_raw_os_error(i32::from_ne_bytes(buf)),
        ));
    }
    Ok(Child {
        pid,
        status_pipe: Some(rd),
    })
}

/// What the init needs to start the command, all prepared before the first fork.
struct Prepared<'a> {
    candidates: &'a [*const libc::c_char],
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    stdout: Option<i32>,
    mask: Option<SavedMask>,
}

/// The init's side of [`spawn_init`]; never returns.
fn init_main(
    cmd: &Prepared<'_>,
    status: OwnedFd,
    setup: OwnedFd,
    proc_at: Option<&std::path::Path>,
) -> ! {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if let Some(p) = proc_at
        && let Err(e) = crate::mount::mount_proc(p)
    {
        let errno = e.errno().unwrap_or(libc::EIO).to_ne_bytes();
        let _ = rustix::io::write(&setup, &errno);
        // SAFETY: `_exit` ends the init without running the parent's atexit handlers.
        unsafe { libc::_exit(1) }
    }
    drop(setup);
    // SAFETY: this process is single-threaded (a child of a single-threaded process); the child
    // only runs `child_exec`, which is async-signal-safe.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        child_exec(
            cmd.candidates,
            cmd.argv,
            cmd.envp,
            cmd.stdout,
            status.as_raw_fd(),
            cmd.mask.as_ref(),
        );
    }
    if pid < 0 {
        let e = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EAGAIN);
        let _ = rustix::io::write(&status, &e.to_ne_bytes());
        // SAFETY: as above.
        unsafe { libc::_exit(126) }
    }
    drop(status);
    let _ = signal::forward_to(pid);
    if let Some(m) = &cmd.mask {
        signal::restore_mask(m);
    }
    // Orphans of the namespace are re-parented to us: reap them too, until the command ends.
    let code = loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((p, st))) if p.as_raw_nonzero().get() == pid => {
                if let Some(c) = st.exit_status() {
                    break c;
                }
                if let Some(s) = st.terminating_signal() {
                    break 128 + s;
                }
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => break 255,
        }
    };
    // SAFETY: as above.
    unsafe { libc::_exit(code) }
}

/// Exec failed in the child.
#[derive(Debug, thiserror::Error)]
#[error("cannot execute `{name}`")]
pub struct ExecFailed {
    pub name: String,
    #[source]
    pub source: std::io::Error,
}

impl ExecFailed {
    /// 127 when not found, 126 otherwise (the shell convention).
    pub fn exit_code(&self) -> i32 {
        if self.source.raw_os_error() == Some(libc::ENOENT) {
            127
        } else {
            126
        }
    }
}

impl Child {
    /// Block until the child has exec'd (`Ok`) or failed to (`Err` with its errno). The child
    /// still has to be waited for in both cases.
    pub fn wait_exec(&mut self, name: &str) -> std::result::Result<(), ExecFailed> {
        let Some(fd) = self.status_pipe.take() else {
            return Ok(());
        };
        let mut buf = [0u8; 4];
        let mut f = std::fs::File::from(fd);
        let mut got = 0;
        loop {
            match f.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    if got == 4 {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if got == 4 {
            return Err(ExecFailed {
                name: name.to_string(),
                source: std::io::Error::from_raw_os_error(i32::from_ne_bytes(buf)),
            });
        }
        Ok(())
    }

    /// Wait for the child to end (retrying on `EINTR`), reaping it.
    pub fn wait(&self) -> Result<ExitStatus> {
        wait_pid(self.pid)
    }
}

/// `waitpid(pid, 0)` until it ends, retrying on `EINTR`; stopped children are not reported.
pub fn wait_pid(pid: i32) -> Result<ExitStatus> {
    let p = rustix::process::Pid::from_raw(pid).ok_or_else(|| {
        Error::new(
            "wait for",
            pid.to_string(),
            std::io::Error::from_raw_os_error(libc::EINVAL),
        )
    })?;
    loop {
        match rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, st))) => {
                if let Some(c) = st.exit_status() {
                    return Ok(ExitStatus::Exited(c));
                }
                if let Some(s) = st.terminating_signal() {
                    return Ok(ExitStatus::Signaled(s));
                }
            }
            Ok(None) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::new("wait for", format!("pid {pid}"), e)),
        }
    }
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: nothing exec'd afterwards gains privileges (setuid bits,
/// file capabilities).
pub fn set_no_new_privs() -> Result<()> {
    rustix::thread::set_no_new_privs(true).map_err(err("prctl", "PR_SET_NO_NEW_PRIVS"))
}

/// `chdir(path)`.
pub fn chdir(path: &std::path::Path) -> Result<()> {
    rustix::process::chdir(path).map_err(err("change directory to", path.display()))
}

/// The real uid and gid of the caller.
pub fn ids() -> (u32, u32) {
    (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    )
}

/// The supplementary groups of the caller.
pub fn groups() -> Result<Vec<u32>> {
    rustix::process::getgroups()
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .map_err(err("getgroups", "self"))
}

/// Make `fd` the caller's standard error (`dup2(fd, 2)`); the new fd 2 is not close-on-exec.
pub fn redirect_stderr(fd: BorrowedFd<'_>) -> Result<()> {
    rustix::stdio::dup2_stderr(fd).map_err(err("redirect", "standard error"))
}

/// Put process `pid` (0: the caller) in a process group of its own (`setpgid(pid, pid)`).
/// Parent and child both call it after a fork, so the group exists whichever runs first.
pub fn own_process_group(pid: i32) -> Result<()> {
    let p = rustix::process::Pid::from_raw(pid);
    rustix::process::setpgid(p, p).map_err(err("create process group for", pid))
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

/// A close-on-exec pipe `(read, write)`.
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(err("create", "pipe"))
}

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
/// it starts any, see the hard rules in ARCHITECTURE.md), so no lock can be held by another
/// thread, and the child's copy of memory is consistent. The child never returns into the
/// caller's code: `_exit` skips atexit handlers and the parent's buffered stdio.
pub fn fork_server<T, F: FnOnce(T) -> i32>(
    state: T,
    serve: F,
) -> std::result::Result<(i32, T), ForkServerError> {
    let threads = crate::ns::thread_count()?;
    if threads != 1 {
        return Err(ForkServerError::Threaded { threads });
    }
    // SAFETY: see the function docs: single-threaded at this point, so the child inherits no
    // lock held by another thread and may run ordinary code before `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::new("fork", "server", std::io::Error::last_os_error()).into());
    }
    if pid == 0 {
        // The server must not write on the user's terminal, nor keep the caller's stdout or
        // stderr pipe open after the payload is done (a reader would wait for it).
        stdio_to_null();
        // A panic must not unwind into the caller's code in the child.
        let code =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(state))).unwrap_or(101);
        // SAFETY: `_exit` is always safe to call; it ends the child without unwinding into the
        // parent's code or running its atexit handlers.
        unsafe { libc::_exit(code) }
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
    let threads = crate::ns::thread_count()?;
    if threads != 1 {
        return Err(ForkServerError::Threaded { threads });
    }
    // SAFETY: single-threaded at this point (checked above), so the child inherits no lock held
    // by another thread and may run ordinary code before `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::new("fork", "child", std::io::Error::last_os_error()).into());
    }
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
        // SAFETY: `_exit` is always safe to call; it ends the child without unwinding into the
        // caller's code or running its atexit handlers.
        unsafe { libc::_exit(code) }
    }
    Ok(pid)
}

/// Send `SIGTERM` to `pid` (a server this process forked) and reap it.
pub fn terminate(pid: i32) -> Result<ExitStatus> {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    }
    wait_pid(pid)
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
    let threads = crate::ns::thread_count()?;
    if threads != 1 {
        return Err(ForkServerError::Threaded { threads });
    }
    // Collected before forking so the child only closes.
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Error::new("list", "/proc/self/fd", e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    // SAFETY: single-threaded (checked above), so the child inherits no lock held by another
    // thread and may run ordinary code before `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::new("fork", "daemon", std::io::Error::last_os_error()).into());
    }
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
        stdio_to_null();
        let _ = rustix::process::chdir("/");
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
        // SAFETY: `_exit` is always safe to call.
        unsafe { libc::_exit(code) }
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

/// Close every descriptor above stderr except those in `keep`, with `close_range(2)` over the
/// gaps (nothing to list first). For a forked child that keeps running ordinary code but must
/// not hold what its parent had open: a pipe `mpirun` or `srun` waits on, a socket, a lock.
pub fn close_fds_except(keep: &[std::os::fd::RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|fd| u32::try_from(*fd).ok())
        .filter(|fd| *fd > 2)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    for fd in keep.into_iter().chain([u32::MAX]) {
        if fd > first {
            // SAFETY: closes descriptor numbers only; the caller (a freshly forked child) owns
            // no Rust object wrapping one it still uses, other than those in `keep`.
            unsafe { libc::syscall(libc::SYS_close_range, first, fd - 1, 0) };
        }
        first = fd.saturating_add(1);
    }
}

/// Name the calling thread (the process's `comm`, what `ps -o comm` and `top` show), truncated
/// to the kernel's 15 bytes.
pub fn set_name(name: &str) {
    let mut bytes: Vec<u8> = name.bytes().filter(|b| *b != 0).take(15).collect();
    bytes.push(0);
    if let Ok(c) = std::ffi::CStr::from_bytes_with_nul(&bytes) {
        let _ = rustix::thread::set_name(c);
    }
}

/// Let the calling thread run only when a CPU would otherwise be idle (`SCHED_IDLE`, for this
/// thread alone): any ordinary thread that wakes up preempts it at once, where a thread at
/// nice 19 may keep its CPU for the rest of its time slice. For speculative background work.
pub fn set_idle_priority() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, initialised `sched_param` that outlives the call; pid 0 is
    // the calling thread, and the call only changes its scheduling policy.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Write one byte to the inherited fd `fd` and close it: a readiness signal to a waiting
/// process. Errors are ignored (a waiter that went away is not the writer's problem).
pub fn notify(fd: i32) {
    // SAFETY: `fd` was handed to this process to be written once and closed; nothing else in
    // the process owns it, so taking ownership here (and closing it on drop) is sound.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let _ = rustix::io::write(&fd, &[1]);
}

/// Make `fd` the standard output.
pub fn redirect_stdout(fd: BorrowedFd<'_>) -> Result<()> {
    rustix::stdio::dup2_stdout(fd).map_err(err("redirect", "standard output"))
}

/// `kill(pid, sig)`; a negative `pid` names a process group.
pub fn send_signal(pid: i32, sig: i32) -> Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(Error::new(
            "signal",
            format!("process {pid}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Let the calling process run on every CPU its cgroup allows (undo a launcher's binding to
/// one core, such as `mpirun`'s per-rank binding, for a helper that serves all ranks).
/// Best effort: errors are ignored.
pub fn unpin() {
    use rustix::thread::{CpuSet, sched_setaffinity};
    let mut all = CpuSet::new();
    for cpu in 0..CpuSet::MAX_CPU {
        all.set(cpu);
    }
    let _ = sched_setaffinity(None, &all);
}

/// Point stdin, stdout and stderr at `/dev/null` (in a forked helper; best effort).
fn stdio_to_null() {
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
