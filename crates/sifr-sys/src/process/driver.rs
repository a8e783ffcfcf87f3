//! Starting a program that serves a FUSE filesystem (`--fusemount`): the `/dev/fuse`
//! descriptor of the mount becomes its fd 3, and it may be started in another root (`chroot`)
//! and working directory, so that a host program runs with the host's filesystem while the
//! launcher is already inside the container's mount namespace.
//!
//! The child is started posix_spawn-style, as [`super::spawn`], and runs only async-signal-safe
//! calls (`chroot`, `chdir`, `open`, `dup2`, `fcntl`, then the shared exec code); it writes nothing but
//! its own stack and errno.

use std::ffi::CString;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use super::child::Child;
use super::spawn::{ExecSpec, child_exec};
use crate::error::{Error, Result, err};

/// The descriptor number the program finds the `/dev/fuse` descriptor at (`/dev/fd/3`).
pub const FUSE_FD: i32 = 3;

/// Start `spec` with `fd3` as its descriptor 3 (inheritable) and `/dev/null` as its stdin,
/// after `chroot(root)` and `chdir(cwd)` when given (`cwd` is taken inside the new root; `/`
/// when `root` is given without it). Use [`Child::wait_exec`] to learn whether the exec
/// succeeded.
pub fn spawn_with_fd3(
    spec: &ExecSpec,
    fd3: BorrowedFd<'_>,
    root: Option<&Path>,
    cwd: Option<&Path>,
) -> Result<Child> {
    let cstr =
        |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(err("use path", p.display()));
    let root_c = root.map(cstr).transpose()?;
    let cwd_c = match (cwd, root) {
        (Some(c), _) => Some(cstr(c)?),
        (None, Some(_)) => Some(cstr(Path::new("/"))?),
        (None, None) => None,
    };
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(err("create pipe for", &spec.name))?;
    // Above the descriptor the child sets up, so that `dup2(fd3, 3)` cannot replace it.
    let wr = rustix::io::fcntl_dupfd_cloexec(wr.as_fd(), 10).map_err(err("dup", "pipe"))?;
    let (candidates, argv, envp) = spec.pointers();
    let args = DriverArgs {
        root: root_c.as_deref(),
        cwd: cwd_c.as_deref(),
        fuse: fd3.as_raw_fd(),
        status_fd: wr.as_raw_fd(),
        pointers: (&candidates, &argv, &envp),
    };
    // As `spawn`: the child has its own root, working directory and descriptor table, so
    // `chroot`, `chdir` and `dup2` there leave the launcher's untouched. A plain fork would do
    // too, but its single-thread check reads `/proc/self`, which is no longer at `/proc` once
    // the launcher has pivoted into the session.
    // SAFETY: `entry` reads a `DriverArgs` behind its argument and only runs async-signal-safe
    // code before it execs.
    let pid = unsafe { super::spawn::clone_vfork(entry, &args) }
        .map_err(|e| Error::new("start a process for", &spec.name, e))?;
    drop(wr);
    Ok(Child {
        pid,
        status_pipe: Some(rd),
    })
}

/// What the child needs, all prepared before `clone`.
struct DriverArgs<'a> {
    root: Option<&'a std::ffi::CStr>,
    cwd: Option<&'a std::ffi::CStr>,
    fuse: i32,
    status_fd: i32,
    pointers: Pointers<'a>,
}

extern "C" fn entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `spawn_with_fd3` passes a pointer to a live `DriverArgs` (see there).
    let a = unsafe { &*arg.cast::<DriverArgs<'_>>() };
    child(a.root, a.cwd, a.fuse, a.status_fd, a.pointers)
}

type Pointers<'a> = (
    &'a [*const libc::c_char],
    &'a [*const libc::c_char],
    &'a [*const libc::c_char],
);

/// The child of [`spawn_with_fd3`]: only async-signal-safe calls; never returns. It shares the
/// parent's memory: it writes nothing but `errno`.
fn child(
    root: Option<&std::ffi::CStr>,
    cwd: Option<&std::ffi::CStr>,
    fuse: i32,
    status_fd: i32,
    (candidates, argv, envp): Pointers<'_>,
) -> ! {
    // SAFETY: every pointer was prepared before the child was created and stays valid (it
    // shares the parent's memory until it execs); chroot, chdir, open, close, dup2 and fcntl
    // are async-signal-safe system calls on plain integers and NUL-terminated strings.
    unsafe {
        if let Some(r) = root
            && libc::chroot(r.as_ptr()) != 0
        {
            fail(status_fd);
        }
        if let Some(c) = cwd
            && libc::chdir(c.as_ptr()) != 0
        {
            fail(status_fd);
        }
        // Stdin is `/dev/null` (of the new root), as Apptainer starts these programs: a
        // foreground FUSE program must not read what the user types for the command.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null > 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
        if fuse == FUSE_FD {
            if libc::fcntl(FUSE_FD, libc::F_SETFD, 0) != 0 {
                fail(status_fd);
            }
        } else if libc::dup2(fuse, FUSE_FD) < 0 {
            fail(status_fd);
        }
    }
    child_exec(candidates, argv, envp, None, status_fd, None, None)
}

/// Report the current errno on the status pipe and exit (a step before the exec failed).
fn fail(status_fd: i32) -> ! {
    // SAFETY: the errno location, write and _exit are async-signal-safe; `errno` is a local.
    unsafe {
        let errno: i32 = *libc::__errno_location();
        libc::write(status_fd, (&errno as *const i32).cast(), 4);
        libc::_exit(126)
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::io::Read as _;
    use std::path::PathBuf;

    use super::*;

    /// `/bin/sh -c SCRIPT` as a spec, with an empty environment.
    fn sh(script: &str) -> ExecSpec {
        let argv: Vec<OsString> = ["/bin/sh", "-c", script]
            .iter()
            .map(OsString::from)
            .collect();
        ExecSpec::new("/bin/sh", &[PathBuf::from("/bin/sh")], &argv, &[]).unwrap()
    }

    #[test]
    fn the_program_finds_the_descriptor_at_3_in_its_directory() {
        let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let spec = sh("pwd >&3");
        let mut child = spawn_with_fd3(&spec, wr.as_fd(), None, Some(Path::new("/"))).unwrap();
        drop(wr);
        child.wait_exec("/bin/sh").unwrap();
        assert_eq!(child.wait().unwrap(), super::super::ExitStatus::Exited(0));
        let mut out = String::new();
        std::fs::File::from(rd).read_to_string(&mut out).unwrap();
        // The pipe's write end was fd 3 of the program; the status pipe did not replace it.
        assert_eq!(out, "/\n");
    }

    #[test]
    fn a_missing_program_is_reported_by_wait_exec() {
        let (_rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let argv = [OsString::from("no-such-fuse-program")];
        let spec = ExecSpec::new(
            "no-such-fuse-program",
            &[PathBuf::from("/nonexistent/no-such-fuse-program")],
            &argv,
            &[],
        )
        .unwrap();
        let mut child = spawn_with_fd3(&spec, wr.as_fd(), None, None).unwrap();
        let e = child.wait_exec("no-such-fuse-program").unwrap_err();
        assert_eq!(e.source.raw_os_error(), Some(libc::ENOENT));
        child.wait().unwrap();
    }
}
