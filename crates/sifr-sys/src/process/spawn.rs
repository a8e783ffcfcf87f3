//! Preparing a command ([`ExecSpec`]) and starting it posix_spawn-style ([`spawn`]).
//!
//! [`ExecSpec`] converts everything the child will need (candidate paths, argv, envp) into C
//! strings *before* the child is created; the child then only performs async-signal-safe calls
//! (`signal`, `sigprocmask`, `dup2`, `execve`, `write`, `_exit`), as required in a child of a
//! process that may hold locks, and in a [`spawn`] child, which shares the caller's memory until
//! it execs (`clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn`). The child code
//! (`child_exec`) is private to `process`; the init of `super::init` runs it too.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use super::child::Child;
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

    /// The pointer arrays the child passes to `execve` (`candidates`, then `argv` and `envp`,
    /// each NULL-terminated), built before the child exists: it must not allocate. They point
    /// into `self`, which must outlive the child's use of them.
    pub(super) fn pointers(
        &self,
    ) -> (
        Vec<*const libc::c_char>,
        Vec<*const libc::c_char>,
        Vec<*const libc::c_char>,
    ) {
        let candidates = self.candidates.iter().map(|c| c.as_ptr()).collect();
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        (candidates, argv, envp)
    }
}

/// Options for [`spawn`].
#[derive(Debug, Default)]
pub struct SpawnOptions<'a> {
    /// Redirect the child's stdout to this fd.
    pub stdout: Option<BorrowedFd<'a>>,
    /// The signal mask to restore in the child (the caller blocked forwarded signals).
    pub mask: Option<SavedMask>,
    /// For [`super::spawn_init`] only: no init stays in the PID namespace; the process that
    /// mounts its procfs becomes the command itself, PID 1 (`--no-init`).
    pub no_init: bool,
}

/// Fork and exec `spec` in the child. Returns once the child exists; use
/// [`Child::wait_exec`] to learn whether the exec itself succeeded.
pub fn spawn(spec: &ExecSpec, opts: &SpawnOptions<'_>) -> Result<Child> {
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(err("create pipe for", &spec.name))?;
    // Pointer arrays are built before the child exists: it must not allocate.
    let (candidates, argv, envp) = spec.pointers();
    let stdout = opts.stdout.map(|fd| fd.as_raw_fd());
    let wr_raw = wr.as_raw_fd();
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
pub(super) fn child_exec(
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
