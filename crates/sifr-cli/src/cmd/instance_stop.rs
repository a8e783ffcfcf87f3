//! `sifr instance stop`: signal instances, then kill what is still there after the timeout, as
//! Apptainer's `StopInstance` does (`internal/app/apptainer/instance_linux.go`).
//!
//! The signal is SIGINT unless `--signal` names another (a name such as `TERM` or `SIGUSR1`, or
//! a number; Apptainer's table, `sifr_sys::signal::number`); `--force` sends SIGKILL at once.
//! The launcher forwards the signal to the start script while it runs and ends on SIGINT or
//! SIGTERM. Whatever has not ended `--timeout` seconds after the last instance that did is
//! killed: SIGKILL to the launcher's process group, so that the start script and what it
//! started go too (a sifr instance has no PID namespace whose end would take them). An
//! instance whose script has ended is killed at once when the signal is one its launcher does
//! not stop on, as Apptainer kills an instance process that has no children.

use std::time::{Duration, Instant};

use clap::Args;

use super::instance_state::{Glob, State};
use crate::report::{AlreadyReported, Hinted};
use crate::settings::Settings;

/// Apptainer's status for the errors its command layer reports (no instance found): 1, not
/// the 255 of its fatal errors.
const COMMAND_ERROR: u8 = 1;

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The instance to stop, or a pattern (`*`, `?`, `[a-z]`) naming several.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Stop every instance of this user on this host (also APPTAINER_ALL).
    #[arg(short, long)]
    pub all: bool,
    /// Send SIGKILL at once (also APPTAINER_FORCE).
    #[arg(short = 'F', long)]
    pub force: bool,
    /// The signal to send: a name (`TERM`, `SIGUSR1`) or a number [default: INT] (also
    /// APPTAINER_SIGNAL).
    #[arg(short, long, value_name = "SIGNAL")]
    pub signal: Option<String>,
    /// Seconds to wait before killing the instances that did not stop.
    #[arg(short, long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,
    /// As root: stop the instances of this user (also APPTAINER_USER).
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
}

pub fn stop(mut a: StopArgs, s: &Settings) -> anyhow::Result<u8> {
    a.all = super::instance::switch_twin(a.all, "all", &["ALL"])?;
    a.force = super::instance::switch_twin(a.force, "force", &["FORCE"])?;
    a.signal = a.signal.or_else(|| super::instance::text_twin(&["SIGNAL"]));
    a.user = a.user.or_else(|| super::instance::text_twin(&["USER"]));
    if a.name.is_none() && !a.all {
        return Err(AlreadyReported {
            summary: "name the instance to stop, or give `--all`".into(),
            code: crate::exit::USAGE,
        }
        .into());
    }
    let owner = super::instance::owner_for(a.user.as_deref(), "stop", s)?;
    let sig = if a.force {
        sifr_sys::signal::KILL
    } else {
        match a.signal.as_deref() {
            Some(text) => parse_signal(text)?,
            None => INT,
        }
    };
    // With `--all`, a name still narrows the choice, as in Apptainer.
    let pattern = match a.name.as_deref() {
        None => Glob::all(),
        Some(p) => Glob::parse(p).map_err(|e| AlreadyReported {
            summary: format!("could not retrieve instance list: {e}"),
            code: COMMAND_ERROR,
        })?,
    };
    let targets = owner.matching(&pattern);
    if targets.is_empty() {
        return Err(AlreadyReported {
            summary: "no instance found".into(),
            code: COMMAND_ERROR,
        }
        .into());
    }
    let quiet = s.quiet || s.silent;
    for st in &targets {
        if !quiet {
            eprintln!(
                "INFO:    Stopping {} instance of {} (PID={})",
                st.name,
                st.image.display(),
                st.pid
            );
        }
        let _ = sifr_sys::process::send_signal(st.pid, sig);
    }
    let left = wait_all(&targets, Duration::from_secs(a.timeout), sig);
    for st in &left {
        if !quiet {
            eprintln!(
                "INFO:    Killing {} instance of {} (PID={}) (Timeout)",
                st.name,
                st.image.display(),
                st.pid
            );
        }
        kill(st);
    }
    // Unlike Apptainer, wait for the killed to be gone, so that the next `instance list` or
    // `instance start` of the name does not see them.
    wait_all(&left, Duration::from_secs(5), sifr_sys::signal::KILL);
    for st in &targets {
        if !st.alive() {
            let _ = std::fs::remove_file(owner.state_dir().join(format!("{}.json", st.name)));
        }
    }
    Ok(crate::exit::OK)
}

const INT: i32 = 2;
const TERM: i32 = 15;

/// SIGKILL to the instance: its launcher's process group, which its script and what that
/// started share unless they left it.
fn kill(st: &State) {
    let target = if super::instance_state::process_group(st.pid) == Some(st.pid) {
        -st.pid
    } else {
        st.pid
    };
    let _ = sifr_sys::process::send_signal(target, sifr_sys::signal::KILL);
}

/// A signal by name (`TERM`, `SIGTERM`, any case) or number; Apptainer's messages.
pub(crate) fn parse_signal(text: &str) -> anyhow::Result<i32> {
    sifr_sys::signal::number(text).ok_or_else(|| {
        let why = if text.parse::<i64>().is_ok() {
            format!("can't convert {text} to signal number")
        } else {
            format!("{text} is not a number")
        };
        Hinted::new(
            format!("could not convert stop signal: {why}"),
            "use a signal name such as TERM, INT, KILL or USR1 (with or without SIG), or its number (1-31)",
        )
        .into()
    })
}

/// Wait until every instance of `targets` has ended, giving up when `timeout` has passed since
/// the last one that did (Apptainer restarts its timer each time one stops); returns those
/// still running. As Apptainer kills an instance whose process has no children left, an
/// instance whose script has ended and that was sent a signal its launcher does not stop on
/// (`sig`, not SIGINT or SIGTERM) is killed at once.
fn wait_all(targets: &[State], timeout: Duration, sig: i32) -> Vec<State> {
    let mut left: Vec<State> = targets.to_vec();
    let mut deadline = Instant::now() + timeout;
    let stops_launcher = sig == INT || sig == TERM || sig == sifr_sys::signal::KILL;
    loop {
        let before = left.len();
        left.retain(State::alive);
        if !stops_launcher {
            for st in left
                .iter()
                .filter(|st| !super::instance_state::has_children(st.pid))
            {
                kill(st);
            }
        }
        if left.is_empty() {
            return left;
        }
        let now = Instant::now();
        if left.len() < before {
            deadline = now + timeout;
        }
        if now >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigint_is_two_and_sigterm_fifteen() {
        assert_eq!(sifr_sys::signal::number("INT"), Some(INT));
        assert_eq!(sifr_sys::signal::number("TERM"), Some(TERM));
    }

    #[test]
    fn bad_signals_get_apptainers_reasons() {
        let e = |t: &str| parse_signal(t).unwrap_err().to_string();
        assert_eq!(
            e("FOO"),
            "could not convert stop signal: FOO is not a number"
        );
        assert_eq!(
            e("40"),
            "could not convert stop signal: can't convert 40 to signal number"
        );
        assert_eq!(parse_signal("sigusr1").unwrap(), 10);
        assert_eq!(parse_signal("15").unwrap(), 15);
    }

    #[test]
    fn waiting_for_gone_instances_returns_at_once() {
        let gone = State {
            name: "x".into(),
            pid: i32::MAX,
            image: "/x.sif".into(),
            uid: 0,
            started: 0,
            start_ticks: Some(1),
            ip: String::new(),
            log_out: Default::default(),
            log_err: Default::default(),
        };
        let t = Instant::now();
        assert!(wait_all(&[gone], Duration::from_secs(30), INT).is_empty());
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
