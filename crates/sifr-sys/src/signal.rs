//! Signal forwarding from the waiting parent to the container's command.
//!
//! The parent blocks the forwarded signals *before* forking ([`block_forwarded`]), records the
//! child's pid and installs handlers ([`forward_to`]), then unblocks: a signal that arrives in
//! between stays pending and is forwarded, none is lost. The handler only calls `kill(2)`, which
//! is async-signal-safe.
//!
//! Runs in the parent after all namespace changes. Must not: do anything in the handler beyond
//! reading an atomic and calling `kill`.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{Error, Result};

/// The signals forwarded to the command: the ones a batch system or a terminal sends to stop,
/// reconfigure or notify a job (Slurm sends SIGTERM then SIGKILL, or `--signal=USR1`).
pub const FORWARDED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGWINCH,
    libc::SIGCONT,
];

/// The pid signals are forwarded to; 0 while there is none.
static TARGET: AtomicI32 = AtomicI32::new(0);

/// The first SIGTERM or SIGINT received while forwarding was installed; 0 for none.
static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    if sig == libc::SIGTERM || sig == libc::SIGINT {
        let _ = STOP.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    }
    let pid = TARGET.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; pid and sig are plain integers.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn forwarded_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and modify a local sigset_t we own; the
    // zeroed value is a valid starting point that sigemptyset overwrites.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// The signal mask in force before [`block_forwarded`]; restore it with [`restore_mask`].
#[derive(Clone, Copy)]
pub struct SavedMask(libc::sigset_t);

impl std::fmt::Debug for SavedMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SavedMask")
    }
}

/// Block the forwarded signals in the calling thread; returns the previous mask.
pub fn block_forwarded() -> Result<SavedMask> {
    let set = forwarded_set();
    // SAFETY: both pointers point to live sigset_t values; `old` is fully written by the call.
    let (rc, old) = unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        (rc, old)
    };
    if rc != 0 {
        return Err(Error::new(
            "block signals",
            "forwarded set",
            std::io::Error::from_raw_os_error(rc),
        ));
    }
    Ok(SavedMask(old))
}

/// Restore a mask saved by [`block_forwarded`]. Async-signal-safe (used in a forked child too).
pub fn restore_mask(mask: &SavedMask) {
    // SAFETY: the pointer refers to a valid sigset_t; a null old-set pointer is allowed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut());
    }
}

/// Reset the forwarded signals to their default action. Async-signal-safe: a forked child calls
/// this before unblocking, so a signal pending there acts on the child itself.
pub fn reset_forwarded_to_default() {
    for &s in FORWARDED {
        // SAFETY: `signal` with SIG_DFL is async-signal-safe and takes plain integers.
        unsafe {
            libc::signal(s, libc::SIG_DFL);
        }
    }
}

/// Forward every signal of [`FORWARDED`] to `pid` from now on.
pub fn forward_to(pid: i32) -> Result<()> {
    TARGET.store(pid, Ordering::SeqCst);
    for &s in FORWARDED {
        install(s, forward)?;
    }
    Ok(())
}

/// Install `handler` for `sig` with `SA_RESTART`. The handlers of this module only touch
/// atomics and call kill(2), both async-signal-safe.
fn install(sig: i32, handler: extern "C" fn(libc::c_int)) -> Result<()> {
    // SAFETY: a fully initialised sigaction whose handler is an `extern "C" fn(c_int)` doing
    // only async-signal-safe work; the old-action pointer may be null.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(Error::new(
            "install signal handler for",
            sig.to_string(),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Stop forwarding: signals that arrive from now on are handled but go nowhere. Called as soon
/// as the command has been reaped, so that its pid, free for reuse, never receives a signal.
pub fn stop_forwarding() {
    TARGET.store(0, Ordering::SeqCst);
}

/// After the command has ended (forwarding stopped, handlers still installed): wait until a
/// SIGTERM or SIGINT arrives, or return at once if one arrived while the command ran. For a
/// process that must outlive its command until it is told to stop (an instance).
pub fn wait_for_stop() -> Result<i32> {
    let mask = block_forwarded()?;
    // SAFETY: sigsuspend atomically installs the saved mask (with the forwarded signals
    // unblocked) and waits for a handler to run; the mask is a valid sigset_t. Checking STOP
    // with the signals blocked and then suspending leaves no window where one is missed.
    unsafe {
        let mut waiting = mask.0;
        for &s in FORWARDED {
            libc::sigdelset(&mut waiting, s);
        }
        while STOP.load(Ordering::SeqCst) == 0 {
            libc::sigsuspend(&waiting);
        }
    }
    restore_mask(&mask);
    Ok(STOP.load(Ordering::SeqCst))
}

/// The first of SIGINT, SIGTERM or SIGHUP received since [`catch_interrupts`]; 0 for none.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);
/// The process group of the step running now (a tool or a container), 0 while there is none.
static STEP_GROUP: AtomicI32 = AtomicI32::new(0);

extern "C" fn interrupt(sig: libc::c_int) {
    let _ = INTERRUPTED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    let group = STEP_GROUP.load(Ordering::SeqCst);
    if group > 0 {
        // SAFETY: kill(2) is async-signal-safe; a negative pid names the step's own process
        // group, never the caller's (which may hold a batch script or a test harness).
        unsafe {
            libc::kill(-group, sig);
        }
    }
}

/// For a process that must clean up before ending (a build and its work directory): SIGINT,
/// SIGTERM and SIGHUP no longer end this process; they are recorded ([`interrupted`]) and
/// passed to the process group of the step running now ([`set_step_group`]), so that step
/// fails and the caller unwinds normally. Children start with the default actions again when
/// they exec.
pub fn catch_interrupts() -> Result<()> {
    for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        install(s, interrupt)?;
    }
    Ok(())
}

/// Name the process group that interrupts go to (0: none). A step already interrupted before
/// it was registered gets the signal now.
pub fn set_step_group(pgid: i32) {
    STEP_GROUP.store(pgid, Ordering::SeqCst);
    let sig = INTERRUPTED.load(Ordering::SeqCst);
    if pgid > 0 && sig != 0 {
        // SAFETY: kill(2) on the step's own process group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// The signal that interrupted the process since [`catch_interrupts`], if any.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// `SIGKILL`'s number.
pub const KILL: i32 = libc::SIGKILL;

/// The named signals, as Go's `x/sys/unix` names them for Linux (Apptainer converts
/// `instance stop --signal` with that table): the 31 classic signals, no real-time ones.
/// Stays literal: one entry a name, the number from libc for this architecture.
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
    // Other names of the same signals.
    ("IOT", libc::SIGABRT),
    ("CLD", libc::SIGCHLD),
    ("POLL", libc::SIGIO),
];

/// A signal's number from its name (`TERM`, `SIGTERM`, `sigterm`; the aliases `IOT`, `CLD`,
/// `POLL`) or its number as text, as Apptainer's `instance stop --signal` reads it: only the
/// named signals count, so real-time numbers (32 and up) and 0 are refused.
pub fn number(name: &str) -> Option<i32> {
    let up = name.to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    NAMES
        .iter()
        .find(|(n, _)| *n == bare)
        .or_else(|| {
            let n: i32 = name.parse().ok()?;
            NAMES.iter().find(|(_, s)| *s == n)
        })
        .map(|(_, s)| *s)
}

/// Blocks `SIGTERM`, `SIGINT` and `SIGHUP` in the calling thread (threads it starts afterwards
/// inherit the mask) and starts a thread that waits for them: on the first one it runs
/// `on_signal(signo)` and ends the process with `_exit(0)`. For servers that must write their
/// state before going (the ext3 FUSE server flushes its image); call it before starting any
/// other thread, or those threads may take the signal with its default action.
pub fn exit_on_termination(on_signal: impl FnOnce(i32) + Send + 'static) -> Result<()> {
    let set = termination_set();
    // SAFETY: `set` is a valid initialised sigset_t; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(Error::new(
            "block signals",
            "SIGTERM, SIGINT, SIGHUP",
            std::io::Error::from_raw_os_error(rc),
        ));
    }
    std::thread::Builder::new()
        .name("sifr-sigwait".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            loop {
                // SAFETY: both pointers refer to live values; the signals are blocked in every
                // thread, so sigwait is the only taker.
                if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                    break;
                }
            }
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_signal(sig)));
            // SAFETY: `_exit` ends the process at once, without unwinding or atexit handlers.
            unsafe { libc::_exit(0) }
        })
        .map_err(|e| Error::new("start a thread", "signal waiter", e))?;
    Ok(())
}

fn termination_set() -> libc::sigset_t {
    // SAFETY: as `forwarded_set`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_read_by_name_alias_or_number_as_apptainer_reads_them() {
        for (text, want) in [
            ("TERM", libc::SIGTERM),
            ("sigterm", libc::SIGTERM),
            ("SigInt", libc::SIGINT),
            ("kill", libc::SIGKILL),
            ("9", libc::SIGKILL),
            ("usr1", libc::SIGUSR1),
            ("IOT", libc::SIGABRT),
            ("SIGCLD", libc::SIGCHLD),
            ("poll", libc::SIGIO),
            ("31", libc::SIGSYS),
            ("+2", libc::SIGINT),
        ] {
            assert_eq!(number(text), Some(want), "{text}");
        }
        for text in [
            "", "0", "32", "34", "-9", "SIGRTMIN", "SIG", "TERMX", "SIG9",
        ] {
            assert_eq!(number(text), None, "{text}");
        }
    }
}
