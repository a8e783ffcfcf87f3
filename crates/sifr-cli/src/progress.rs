//! Progress lines on stderr for the long steps (packing a SquashFS, debootstrap): on a
//! terminal one line rewritten in place at most five times a second and cleared at the end;
//! otherwise (a Slurm log, a pipe) a plain `INFO:` line every ten seconds, so a log shows the
//! build is alive without filling up. `-q` and `-s` silence them. Starts no thread: the step
//! reports on the thread doing the work.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::settings::Settings;

/// How often a line is rewritten on a terminal, and printed elsewhere.
const TERMINAL_EVERY: Duration = Duration::from_millis(200);
const LOG_EVERY: Duration = Duration::from_secs(10);

/// One step's progress line.
pub struct Line {
    label: String,
    terminal: bool,
    state: Mutex<State>,
}

struct State {
    /// When the step began: its first report.
    started: Option<Instant>,
    last: Option<Instant>,
    shown: bool,
}

impl Line {
    /// A line for the step `label`, or `None` when messages are silenced.
    pub fn new(label: impl Into<String>, settings: &Settings) -> Option<std::sync::Arc<Line>> {
        if settings.quiet || settings.silent {
            return None;
        }
        Some(std::sync::Arc::new(Line {
            label: label.into(),
            terminal: std::io::stderr().is_terminal(),
            state: Mutex::new(State {
                started: None,
                last: None,
                shown: false,
            }),
        }))
    }

    /// Report `text` (what is done so far); printed when the interval allows.
    pub fn update(&self, text: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let started = *st.started.get_or_insert(now);
        let every = if self.terminal {
            TERMINAL_EVERY
        } else {
            LOG_EVERY
        };
        // Off a terminal the first line waits one interval: a step that ends sooner says
        // nothing more than its own start and end lines.
        let due = match st.last {
            Some(t) => now.duration_since(t) >= every,
            None => self.terminal || now.duration_since(started) >= every,
        };
        if !due {
            return;
        }
        st.last = Some(now);
        st.shown = true;
        let secs = now.duration_since(started).as_secs();
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[K{}: {text} ({secs} s)", self.label);
        } else {
            let _ = writeln!(err, "INFO:    {}: {text} ({secs} s)", self.label);
        }
        let _ = err.flush();
    }

    /// End the step: a terminal's line is cleared so the next message starts clean; the
    /// line may be used again for a later step of the same kind.
    pub fn finish(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.terminal && st.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
        st.shown = false;
        st.last = None;
        st.started = None;
    }
}

/// `files`, `MiB` as the packing line shows them.
fn packed(files: u64, bytes: u64) -> String {
    format!("{files} files, {:.0} MiB", bytes as f64 / 1048576.0)
}

/// A SquashFS writer's progress callback printing to `line`.
pub fn packing(line: &std::sync::Arc<Line>) -> sifr_squashfs::write::Progress {
    let line = line.clone();
    sifr_squashfs::write::Progress(std::sync::Arc::new(move |files, bytes| {
        line.update(&packed(files, bytes))
    }))
}

/// A build step's progress callback printing to `line`; an empty text ends the step (its
/// line is cleared, so what the build prints next starts clean).
pub fn step(line: &std::sync::Arc<Line>) -> sifr_build::defbuild::StepProgress {
    let line = line.clone();
    sifr_build::defbuild::StepProgress(std::sync::Arc::new(move |text| {
        if text.is_empty() {
            line.finish();
        } else {
            line.update(text);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packing_line_counts_files_and_mebibytes() {
        assert_eq!(packed(12, 3 << 20), "12 files, 3 MiB");
    }
}
