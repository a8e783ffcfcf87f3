//! Terminal echo turned off while a secret (a registry password) is typed, and back on when
//! the guard drops, through rustix's termios wrappers.
//!
//! What it must not do: read or prompt (the caller does, between creating and dropping the
//! guard), or touch a descriptor that is not a terminal. A process killed while the guard is
//! alive leaves echo off, as every password prompt does; `stty echo` or `reset` repairs it.

use std::os::fd::AsFd;

use rustix::termios::{LocalModes, OptionalActions, Termios, isatty, tcgetattr, tcsetattr};

use crate::error::{Result, err};

/// Echo is off on the terminal `fd` while this lives; its old modes come back on drop.
pub struct EchoOff<Fd: AsFd> {
    fd: Fd,
    saved: Termios,
}

impl<Fd: AsFd> EchoOff<Fd> {
    /// Turn echo off on `fd` if it is a terminal; `Ok(None)` when it is not (a pipe, a
    /// file), where there is nothing to hide. The newline the user types is still echoed
    /// (`ECHONL`), so the next output starts on a line of its own.
    pub fn new(fd: Fd) -> Result<Option<Self>> {
        if !isatty(fd.as_fd()) {
            return Ok(None);
        }
        let saved = tcgetattr(fd.as_fd()).map_err(err("tcgetattr", "terminal"))?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        quiet.local_modes.insert(LocalModes::ECHONL);
        tcsetattr(fd.as_fd(), OptionalActions::Flush, &quiet)
            .map_err(err("tcsetattr", "terminal"))?;
        Ok(Some(EchoOff { fd, saved }))
    }
}

impl<Fd: AsFd> Drop for EchoOff<Fd> {
    fn drop(&mut self) {
        // Nothing useful to do if the terminal went away meanwhile.
        let _ = tcsetattr(self.fd.as_fd(), OptionalActions::Now, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

    use super::*;

    fn echo(fd: impl AsFd) -> bool {
        tcgetattr(fd)
            .unwrap()
            .local_modes
            .contains(LocalModes::ECHO)
    }

    #[test]
    fn echo_is_off_while_the_guard_lives_and_back_after() {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let tty = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY,
            Mode::empty(),
        )
        .unwrap();
        assert!(echo(&tty), "a new terminal echoes");
        {
            let _g = EchoOff::new(&tty).unwrap().expect("a pty is a terminal");
            assert!(!echo(&tty));
        }
        assert!(echo(&tty), "restored on drop");
    }

    #[test]
    fn not_a_terminal_is_left_alone() {
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert!(EchoOff::new(&r).unwrap().is_none());
    }
}
