//! Preparing a command ([`ExecSpec`]) and starting it posix_spawn-style ([`spawn`]).
//!
//! [`ExecSpec`] converts everything the child will need (candidate paths, argv, envp) into C
//! strings *before* the child is created; the child then only performs async-signal-safe calls
//! (`signal`, `sigprocmask`, `dup2`, `execve`, `write`, `_exit`; `write` to `cgroup.procs` too), as required in a child of a
//! process that may hold locks, and in a [`spawn`] child, which shares the caller's memory until
//! it execs (`clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn`). The child code
//! (`child_exec`) is private to `process`; the init of `super::init` runs it too.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use super::child::Child;
use crate::caps::Privileges;
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
    /// Applied in the child just before `execve` ([`ExecSpec::with_privileges`]).
    privileges: Option<Privileges>,
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
            privileges: None,
        })
    }

    /// Give the command exactly these capabilities (and ids), applied by the child just before
    /// `execve`; the launcher keeps its own.
    pub fn with_privileges(mut self, p: Privileges) -> ExecSpec {
        self.privileges = Some(p);
        self
    }

    /// The privileges the child applies, if any.
    pub(super) fn privileges(&self) -> Option<&Privileges> {
        self.privileges.as_ref()
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
    /// A cgroup's `cgroup.procs`, opened for writing ([`crate::cgroup::open_procs`]): the child
    /// writes `0` to it first, moving itself into that cgroup before it execs, so the command is
    /// charged to the cgroup from its first page. A failed move is reported by
    /// [`Child::wait_exec`] as an [`super::ExecFailed`] with `in_cgroup` set.
    pub cgroup: Option<BorrowedFd<'a>>,
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
    let cgroup = opts.cgroup.map(|fd| fd.as_raw_fd());

    let args = ChildArgs {
        candidates: &candidates,
        argv: &argv,
        envp: &envp,
        stdout,
        status_fd: wr_raw,
        mask: mask.as_ref(),
        privileges: spec.privileges(),
        cgroup,
    };
    // SAFETY: `child_entry` reads a `ChildArgs` behind its argument and only runs
    // async-signal-safe code (see `child_exec`).
    let pid = unsafe { clone_vfork(child_entry, &args) }
        .map_err(|e| Error::new("start a process for", &spec.name, e))?;
    drop(wr);
    Ok(Child {
        pid,
        status_pipe: Some(rd),
    })
}

/// Set in the errno a child reports when applying its [`Privileges`] failed, rather than its
/// `execve` (errnos are far below it).
pub(super) const PRIVILEGES_FAILED: i32 = 1 << 30;

/// Stack of the [`spawn`] child: it only calls `child_exec` (a few small frames).
const CHILD_STACK: usize = 64 * 1024;

/// Start `entry(args)` as a child on its own small stack in the caller's memory (CLONE_VM),
/// the caller waiting (CLONE_VFORK) until the child has called `execve` or `_exit`, as
/// posix_spawn does: no page tables are copied, and neither process takes copy-on-write faults
/// afterwards. The child has its own root, working directory and descriptor table (no CLONE_FS,
/// no CLONE_FILES). Returns the child's pid.
///
/// # Safety
/// `entry` must treat its argument as a `&T` and run only async-signal-safe code until it
/// execs or exits. `args` and the stack outlive the child's use of them: with CLONE_VFORK this
/// returns only after the child has exec'd or exited.
pub(super) unsafe fn clone_vfork<T>(
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    args: &T,
) -> std::io::Result<i32> {
    let mut stack = vec![0u8; CHILD_STACK];
    // SAFETY: the stack grows down from its (16-byte aligned) end, which stays inside `stack`.
    let top = unsafe { stack.as_mut_ptr().add(CHILD_STACK) };
    let top = (top as usize & !15) as *mut libc::c_void;
    // SAFETY: see the function's contract; `stack` lives until the child no longer runs on it.
    let pid = unsafe {
        libc::clone(
            entry,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (args as *const T).cast_mut().cast(),
        )
    };
    drop(stack);
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(pid)
}

/// What the [`spawn`] child needs, all prepared before `clone`.
struct ChildArgs<'a> {
    candidates: &'a [*const libc::c_char],
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    stdout: Option<i32>,
    status_fd: i32,
    mask: Option<&'a SavedMask>,
    privileges: Option<&'a Privileges>,
    cgroup: Option<i32>,
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `spawn` passes a pointer to a live `ChildArgs` (see there).
    let a = unsafe { &*arg.cast::<ChildArgs<'_>>() };
    if let Some(fd) = a.cgroup {
        join_cgroup(fd, a.status_fd);
    }
    child_exec(
        a.candidates,
        a.argv,
        a.envp,
        a.stdout,
        a.status_fd,
        a.mask,
        a.privileges,
    )
}

/// Move the calling process into the cgroup whose `cgroup.procs` is open as `procs_fd` (writing
/// `0` names the writer). On failure the negated errno goes to `status_fd`, which
/// [`Child::wait_exec`] reads as a failed move rather than a failed `execve`, and the process
/// ends with status 255. Async-signal-safe: `write` and `_exit` only.
pub(super) fn join_cgroup(procs_fd: i32, status_fd: i32) {
    // SAFETY: `write` and `_exit` are async-signal-safe; the buffers are on this stack.
    unsafe {
        if libc::write(procs_fd, b"0".as_ptr().cast(), 1) != 1 {
            let errno = -*libc::__errno_location();
            libc::write(status_fd, (&errno as *const i32).cast(), 4);
            libc::_exit(255);
        }
    }
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
    privileges: Option<&Privileges>,
) -> ! {
    signal::reset_forwarded_to_default();
    if let Some(m) = mask {
        signal::restore_mask(m);
    }
    if let Some(p) = privileges
        && let Err(e) = p.apply()
    {
        let code = e | PRIVILEGES_FAILED;
        // SAFETY: `status_fd` is the open write end of the status pipe; write and _exit are
        // async-signal-safe.
        unsafe {
            libc::write(status_fd, (&code as *const i32).cast(), 4);
            libc::_exit(126);
        }
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

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::os::fd::AsFd as _;

    use super::*;

    fn true_spec() -> ExecSpec {
        let t = ["/bin/true", "/usr/bin/true"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("a `true` program");
        ExecSpec::new("true", &[t], &[OsString::from("true")], &[]).unwrap()
    }

    #[test]
    fn the_child_writes_0_to_its_cgroup_procs_before_it_execs() {
        let (rd, wr) = crate::process::pipe().unwrap();
        let opts = SpawnOptions {
            cgroup: Some(wr.as_fd()),
            ..SpawnOptions::default()
        };
        let mut child = spawn(&true_spec(), &opts).unwrap();
        child.wait_exec("true").unwrap();
        assert_eq!(child.wait().unwrap(), super::super::ExitStatus::Exited(0));
        drop(wr);
        let mut got = String::new();
        std::fs::File::from(rd).read_to_string(&mut got).unwrap();
        assert_eq!(got, "0");
    }

    #[test]
    fn a_failed_move_into_the_cgroup_is_not_an_exec_failure() {
        // A read-only descriptor stands for a `cgroup.procs` the child may not write.
        let (rd, _wr) = crate::process::pipe().unwrap();
        let opts = SpawnOptions {
            cgroup: Some(rd.as_fd()),
            ..SpawnOptions::default()
        };
        let mut child = spawn(&true_spec(), &opts).unwrap();
        let e = child.wait_exec("true").unwrap_err();
        assert!(e.in_cgroup);
        assert_eq!(e.exit_code(), 255);
        assert_eq!(e.source.raw_os_error(), Some(libc::EBADF));
        assert_eq!(
            e.to_string(),
            "cannot move `true` into the container's cgroup"
        );
        assert_eq!(child.wait().unwrap(), super::super::ExitStatus::Exited(255));
    }
}
