//! Questions asked on stderr and answered on stdin: registry usernames and passwords for
//! `--docker-login` and `registry login`. A secret is read with the terminal's echo off when
//! stdin is a terminal (`sifr_sys::tty`); from a pipe it is read as a plain line, so scripts can
//! answer.
//!
//! What it must not do: print an answer, or keep one beyond returning it.

use std::io::{BufRead as _, Write as _};

use anyhow::Context;

/// Whether a terminal shows the answer as it is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// A plain answer such as a username.
    Shown,
    /// A secret such as a password: the terminal's echo is off while it is typed.
    Hidden,
}

/// Print `label: ` on stderr and read one line from stdin, without its line ending, with the
/// terminal echoing it as `echo` says.
pub fn ask(label: &str, echo: Echo) -> anyhow::Result<String> {
    // Echo goes off before the question shows, so nothing typed after seeing it is echoed.
    let guard = if echo == Echo::Hidden {
        sifr_sys::tty::EchoOff::new(std::io::stdin())
            .context("cannot turn off the terminal's echo")?
    } else {
        None
    };
    eprint!("{label}: ");
    let _ = std::io::stderr().flush();
    let stdin = std::io::stdin();
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    drop(guard);
    r.context("cannot read the answer from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// All of stdin (`--password-stdin`), without one trailing line ending, as Apptainer and
/// Docker read it.
pub fn read_stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut s)
        .context("cannot read the password from stdin")?;
    let s = s.strip_suffix('\n').unwrap_or(&s);
    Ok(s.strip_suffix('\r').unwrap_or(s).to_string())
}
