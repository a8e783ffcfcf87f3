//! The init (PID 1) of a new PID namespace: [`spawn_init`] forks it, it mounts the
//! namespace's procfs, forks the command (through the async-signal-safe child code of
//! `super::spawn`), forwards signals to it and reaps every process re-parented to it.

use std::io::Read as _;
use std::os::fd::{AsRawFd, OwnedFd};

use super::child::{Child, wait_pid};
use super::spawn::{ExecSpec, SpawnOptions, child_exec};
use crate::error::{Error, Result, err};
use crate::signal::{self, SavedMask};
use crate::threads;

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
/// Like [`super::fork_server`], the init runs ordinary Rust code after `fork`, which is sound because
/// the calling process is checked to be single-threaded first (no lock can be held by another
/// thread); the command's own child still performs only async-signal-safe calls before `execve`.
pub fn spawn_init(
    spec: &ExecSpec,
    opts: &SpawnOptions<'_>,
    proc_at: Option<&std::path::Path>,
) -> Result<Child> {
    threads::ensure_single_threaded(|threads| {
        Error::new(
            "fork",
            "the container's init",
            std::io::Error::other(format!(
                "this process has {threads} threads, it must have 1"
            )),
        )
    })?;
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(err("create pipe for", &spec.name))?;
    let (setup_rd, setup_wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(err("create pipe for", "the container's init"))?;
    let (candidates, argv, envp) = spec.pointers();
    let stdout = opts.stdout.map(|fd| fd.as_raw_fd());
    let mask = opts.mask;
    let no_init = opts.no_init;

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
        init_main(&cmd, wr, setup_wr, proc_at, no_init);
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

/// The init's side of [`spawn_init`]; never returns. With `no_init` it becomes the command
/// once the procfs is mounted, as Apptainer's `--no-init` runs the command as PID 1.
fn init_main(
    cmd: &Prepared<'_>,
    status: OwnedFd,
    setup: OwnedFd,
    proc_at: Option<&std::path::Path>,
    no_init: bool,
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
    if no_init {
        child_exec(
            cmd.candidates,
            cmd.argv,
            cmd.envp,
            cmd.stdout,
            status.as_raw_fd(),
            cmd.mask.as_ref(),
        );
    }
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
