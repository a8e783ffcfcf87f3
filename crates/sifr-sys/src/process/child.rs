//! A started child: whether its `execve` succeeded, how it ended, and signalling it.

use std::io::Read as _;
use std::os::fd::OwnedFd;

use crate::error::{Error, Result};

/// A forked child that is executing (or failed to execute) an [`ExecSpec`].
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    /// Read end of a close-on-exec pipe: EOF means the exec succeeded; 4 bytes are the errno of
    /// the last failed `execve`.
    pub(super) status_pipe: Option<OwnedFd>,
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

/// Exec failed in the child, or (`in_cgroup`) the child could not move into its cgroup first.
#[derive(Debug, thiserror::Error)]
#[error("{}", if *.in_cgroup {
    format!("cannot move `{}` into the container's cgroup", .name)
} else {
    format!("cannot execute `{}`", .name)
})]
pub struct ExecFailed {
    pub name: String,
    /// The write of `0` to the cgroup's `cgroup.procs` failed, before any `execve`.
    pub in_cgroup: bool,
    #[source]
    pub source: std::io::Error,
}

impl ExecFailed {
    /// 127 when not found, 126 otherwise (the shell convention); 255 (sifr's own failure) when
    /// the command never got as far as `execve`.
    pub fn exit_code(&self) -> i32 {
        if self.in_cgroup {
            255
        } else if self.source.raw_os_error() == Some(libc::ENOENT) {
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
            // A negative errno is a failed move into the cgroup (`spawn::join_cgroup`).
            let code = i32::from_ne_bytes(buf);
            let in_cgroup = code < 0;
            let code = code.abs();
            let failed = super::spawn::PRIVILEGES_FAILED;
            let source = if code & failed != 0 {
                let cause = std::io::Error::from_raw_os_error(code & !failed);
                std::io::Error::other(format!("cannot set its capabilities or ids: {cause}"))
            } else {
                std::io::Error::from_raw_os_error(code)
            };
            return Err(ExecFailed {
                name: name.to_string(),
                in_cgroup,
                source,
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

/// Send `SIGTERM` to `pid` (a server this process forked) and reap it.
pub fn terminate(pid: i32) -> Result<ExitStatus> {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    }
    wait_pid(pid)
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
