//! The calling process's own attributes: ids and groups, name, scheduling, CPU affinity,
//! working directory, process group, umask and `no_new_privs`.

use crate::error::{Result, err};

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: nothing exec'd afterwards gains privileges (setuid bits,
/// file capabilities).
pub fn set_no_new_privs() -> Result<()> {
    rustix::thread::set_no_new_privs(true).map_err(err("prctl", "PR_SET_NO_NEW_PRIVS"))
}

/// `umask(mask)`: the file-mode creation mask the process and its children start from;
/// returns the previous one.
pub fn set_umask(mask: u32) -> u32 {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask)).as_raw_mode()
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

/// Put process `pid` (0: the caller) in a process group of its own (`setpgid(pid, pid)`).
/// Parent and child both call it after a fork, so the group exists whichever runs first.
pub fn own_process_group(pid: i32) -> Result<()> {
    let p = rustix::process::Pid::from_raw(pid);
    rustix::process::setpgid(p, p).map_err(err("create process group for", pid))
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
