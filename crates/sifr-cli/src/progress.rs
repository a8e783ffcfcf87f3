//! Progress lines on stderr for the long steps (packing a SquashFS, debootstrap): on a
//! terminal one line rewritten in place at most five times a second and cleared at the end;
//! otherwise (a Slurm log, a pipe) a plain `INFO:` line every ten seconds, so a log shows the
//! build is alive without filling up (`SIFR_PROGRESS_INTERVAL`, in seconds, changes that
//! interval; the tests make it short). `-q` and `-s` silence them. Starts no thread: the step
//! reports on the thread doing the work (a pull's layers report from its download threads,
//! which is why a line is behind a lock).

use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::settings::Settings;

/// How often a line is rewritten on a terminal, and printed elsewhere.
const TERMINAL_EVERY: Duration = Duration::from_millis(200);
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Seconds between plain lines, instead of [`LOG_EVERY`].
pub const INTERVAL_VAR: &str = "SIFR_PROGRESS_INTERVAL";

fn log_every() -> Duration {
    std::env::var(INTERVAL_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(LOG_EVERY)
}

/// One step's progress line.
pub struct Line {
    label: String,
    terminal: bool,
    log_every: Duration,
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
            log_every: log_every(),
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
            self.log_every
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

    /// Clear a terminal's line for a message printed between updates, the step going on.
    pub fn clear(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.terminal && st.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            st.shown = false;
        }
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

/// A pull's layer downloads on one line: a bar of all the bytes, then each layer being
/// downloaded, named by its place and digest, with its bytes.
pub struct Layers {
    line: std::sync::Arc<Line>,
    /// Per layer: the digest's start, bytes done, size (`None`: not started).
    state: Mutex<Vec<Option<(String, u64, u64)>>>,
}

impl Layers {
    /// The line for a pull of `count` layers of `total` bytes, or `None` when silenced.
    pub fn new(count: usize, settings: &Settings) -> Option<Layers> {
        Some(Layers {
            line: Line::new("downloading layers", settings)?,
            state: Mutex::new(vec![None; count]),
        })
    }

    /// Layer `index` (digest `digest`, `size` bytes) has `done` bytes on disk.
    pub fn bytes(&self, index: usize, digest: &str, done: u64, size: u64) {
        let text = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = st.get_mut(index) {
                let short = digest.get(..19).unwrap_or(digest).to_string();
                *slot = Some((short, done, size));
            }
            layers_text(&st)
        };
        self.line.update(&text);
    }

    /// Clear the line for a message between updates.
    pub fn clear(&self) {
        self.line.clear();
    }

    pub fn finish(&self) {
        self.line.finish();
    }
}

/// `bar done/total MiB; layer i/n DIGEST done/size MiB, ...` (the layers not yet complete).
fn layers_text(layers: &[Option<(String, u64, u64)>]) -> String {
    let mib = |b: u64| b as f64 / 1048576.0;
    let (done, total) = layers
        .iter()
        .flatten()
        .fold((0, 0), |(d, t), l| (d + l.1, t + l.2));
    let mut text = format!(
        "{} {:.1}/{:.1} MiB",
        bar(done, total),
        mib(done),
        mib(total)
    );
    let n = layers.len();
    let going: Vec<String> = layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let (digest, done, size) = l.as_ref()?;
            (done < size).then(|| {
                format!(
                    "layer {}/{n} {digest} {:.1}/{:.1} MiB",
                    i + 1,
                    mib(*done),
                    mib(*size)
                )
            })
        })
        .collect();
    if !going.is_empty() {
        text.push_str("; ");
        text.push_str(&going.join(", "));
    }
    text
}

/// `[####------]`: `done` of `total` in 20 steps.
fn bar(done: u64, total: u64) -> String {
    let full = (done.min(total) * 20).checked_div(total).unwrap_or(0) as usize;
    format!("[{}{}]", "#".repeat(full), "-".repeat(20 - full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layers_line_has_a_bar_of_all_bytes_and_names_the_layers_still_coming() {
        let layers = [
            Some(("sha256:0123456789ab".to_string(), 1 << 20, 1 << 20)),
            Some(("sha256:ba9876543210".to_string(), 1 << 20, 3 << 20)),
            None,
        ];
        assert_eq!(
            layers_text(&layers),
            "[##########----------] 2.0/4.0 MiB; layer 2/3 sha256:ba9876543210 1.0/3.0 MiB"
        );
        assert_eq!(bar(0, 0), "[--------------------]");
        assert_eq!(bar(5, 5), "[####################]");
    }

    #[test]
    fn a_packing_line_counts_files_and_mebibytes() {
        assert_eq!(packed(12, 3 << 20), "12 files, 3 MiB");
    }
}
