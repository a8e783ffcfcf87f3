//! Where `sifr instance` keeps its records of running instances, and how it finds them.
//!
//! A user's instances on a host are recorded in `<configdir>/instances/sifr/HOST/USER/NAME.json`
//! (the launcher's pid and start time, the image, the log paths), `<configdir>` being
//! `APPTAINER_CONFIGDIR` or `~/.apptainer`, the home directory possibly shared by the cluster's
//! nodes. The start script's output goes where Apptainer puts it,
//! `<configdir>/instances/logs/HOST/USER/NAME.out` and `.err`, so that users find it there. The
//! records stay out of Apptainer's `instances/app/...`: Apptainer reads every file there and
//! fails on one that is not its own.
//!
//! A record whose launcher is gone (killed, host rebooted) is removed when it is next read.
//! This module reads and writes files only; it sends no signal.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::report::Hinted;
use crate::settings::Settings;

/// What `instance start` records of a running instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub name: String,
    /// The launcher, which holds the container's namespaces.
    pub pid: i32,
    pub image: PathBuf,
    pub uid: u32,
    /// Seconds since the epoch.
    pub started: u64,
    /// The launcher's start time in clock ticks since boot (`/proc/PID/stat`, field 22): a pid
    /// reused by another process after a crash does not pass for the instance.
    #[serde(default)]
    pub start_ticks: Option<u64>,
    /// The container's address; empty while it shares the host's network.
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub log_out: PathBuf,
    #[serde(default)]
    pub log_err: PathBuf,
}

impl State {
    /// Whether the recorded launcher still runs: the pid exists, belongs to the owner and
    /// started when the record says.
    pub fn alive(&self) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(md) = std::fs::metadata(format!("/proc/{}", self.pid)) else {
            return false;
        };
        if md.uid() != self.uid {
            return false;
        }
        match self.start_ticks {
            Some(t) => start_ticks(self.pid) == Some(t),
            // A record written before start times were kept: the command line must be sifr's.
            None => std::fs::read(format!("/proc/{}/cmdline", self.pid))
                .is_ok_and(|c| c.windows(b"instance".len()).any(|w| w == b"instance")),
        }
    }
}

/// Process `pid`'s start time in clock ticks since boot, from `/proc/PID/stat`.
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    stat_field(pid, 22)?.parse().ok()
}

/// Process `pid`'s process group.
pub(crate) fn process_group(pid: i32) -> Option<i32> {
    stat_field(pid, 5)?.parse().ok()
}

/// Whether process `pid` has children (any of its threads'), from `/proc/PID/task/*/children`,
/// or from every process's parent where the kernel lacks those files.
pub(crate) fn has_children(pid: i32) -> bool {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
    let listed: Option<Vec<String>> = tasks.ok().map(|rd| {
        rd.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
            .collect()
    });
    match listed {
        Some(l) if !l.is_empty() => l.iter().any(|c| !c.trim().is_empty()),
        _ => std::fs::read_dir("/proc").into_iter().flatten().any(|e| {
            e.ok()
                .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .and_then(|child| stat_field(child, 4)?.parse::<i32>().ok())
                == Some(pid)
        }),
    }
}

/// Field `n` (1-based, as proc(5) numbers them, 3 or above) of `/proc/PID/stat`.
fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n - 3).map(str::to_string)
}

/// Whose instances a command works on, and where that user's files are.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    /// The user name, a path component as in Apptainer's layout.
    pub user: String,
    /// `<configdir>`: `APPTAINER_CONFIGDIR` (setting `configdir`) or `~/.apptainer`.
    pub config_dir: PathBuf,
    host: String,
}

impl Owner {
    /// The calling user.
    pub fn current(s: &Settings) -> anyhow::Result<Owner> {
        let uid = sifr_sys::process::ids().0;
        let entry = sifr_sys::user::user_by_uid(uid);
        let config_dir = match &s.configdir {
            Some(d) => d.clone(),
            None => std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .or_else(|| entry.as_ref().map(|u| PathBuf::from(&u.home)))
                .context(
                    "cannot find the home directory for the instances' records (HOME is not set)",
                )?
                .join(".apptainer"),
        };
        Ok(Owner {
            user: entry.map_or_else(|| uid.to_string(), |u| u.name),
            config_dir,
            host: hostname(),
        })
    }

    /// The user called `name` (`--user`, root only): their own `~/.apptainer`, or the caller's
    /// configdir when it is the caller.
    pub fn named(name: &str, s: &Settings) -> anyhow::Result<Owner> {
        let Some(entry) = sifr_sys::user::user_by_name(name) else {
            return Err(Hinted::new(
                format!("no user `{name}` on this host"),
                "`--user` takes a user name from the host's user database",
            )
            .into());
        };
        if entry.uid == sifr_sys::process::ids().0 {
            return Owner::current(s);
        }
        Ok(Owner {
            user: entry.name,
            config_dir: Path::new(&entry.home).join(".apptainer"),
            host: hostname(),
        })
    }

    /// `<configdir>/instances/sifr/HOST/USER`: the records.
    pub fn state_dir(&self) -> PathBuf {
        self.config_dir
            .join("instances/sifr")
            .join(&self.host)
            .join(&self.user)
    }

    /// `<configdir>/instances/logs/HOST/USER`: the start scripts' output, Apptainer's place.
    pub fn log_dir(&self) -> PathBuf {
        self.config_dir
            .join("instances/logs")
            .join(&self.host)
            .join(&self.user)
    }

    /// The record of `name`, if its launcher still runs; a stale one is removed.
    pub fn running(&self, name: &str) -> Option<State> {
        running(&self.state_dir(), name)
    }

    /// The running instances whose names match `pattern` (a glob, [`Glob`]), by name.
    pub fn matching(&self, pattern: &Glob) -> Vec<State> {
        let dir = self.state_dir();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let file = e.ok()?.file_name().into_string().ok()?;
                Some(file.strip_suffix(".json")?.to_string())
            })
            .filter(|n| pattern.matches(n))
            .collect();
        names.sort();
        names.iter().filter_map(|n| running(&dir, n)).collect()
    }
}

/// The host's name, as `uname -n` gives it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The record of `name` in `dir`, if its launcher still runs; a stale one is removed.
pub(crate) fn running(dir: &Path, name: &str) -> Option<State> {
    let path = dir.join(format!("{name}.json"));
    let st: State = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    if st.alive() {
        Some(st)
    } else {
        let _ = std::fs::remove_file(&path);
        None
    }
}

/// Write `st` to `path` atomically (a sibling temporary file renamed over it).
pub(crate) fn write_state(path: &Path, st: &State) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(st).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

/// Whether `name` may name an instance: Apptainer's letters, digits, `.`, `_` and `-`, minus
/// `.` and `..`, which would name a directory in the paths built from it.
pub(crate) fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Hinted::new(
            format!("`{name}` is not a valid instance name"),
            "use letters, digits, `.`, `_` and `-`",
        )
        .into())
    }
}

/// A pattern over instance names with Go's `filepath.Match` syntax, which Apptainer's `instance
/// list|stop NAME` uses: `*` any run of characters, `?` one character, `[abc]`, `[a-z]`,
/// `[^a-z]` a class, `\x` the character `x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob(Vec<Token>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
    One,
    /// A class: negated, and its ranges (a single character is a range of one).
    Class(bool, Vec<(char, char)>),
}

/// A pattern that is not one: an unclosed class, a dangling `\`, a range with no end.
#[derive(Debug, thiserror::Error)]
#[error("syntax error in pattern `{0}`")]
pub(crate) struct BadPattern(String);

impl Glob {
    /// Every name.
    pub fn all() -> Glob {
        Glob(vec![Token::Any])
    }

    pub fn parse(pattern: &str) -> Result<Glob, BadPattern> {
        let bad = || BadPattern(pattern.to_string());
        let mut out = Vec::new();
        let mut it = pattern.chars().peekable();
        while let Some(c) = it.next() {
            out.push(match c {
                '*' => Token::Any,
                '?' => Token::One,
                '\\' => Token::Char(it.next().ok_or_else(bad)?),
                '[' => {
                    let negated = it.next_if(|&c| c == '^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        let lo = match it.next().ok_or_else(bad)? {
                            ']' if !ranges.is_empty() => break,
                            // Go refuses an empty class and an unescaped `-` as a bound.
                            ']' | '-' => return Err(bad()),
                            '\\' => it.next().ok_or_else(bad)?,
                            c => c,
                        };
                        let hi = if it.next_if(|&c| c == '-').is_some() {
                            match it.next().ok_or_else(bad)? {
                                ']' | '-' => return Err(bad()),
                                '\\' => it.next().ok_or_else(bad)?,
                                c => c,
                            }
                        } else {
                            lo
                        };
                        ranges.push((lo, hi));
                    }
                    Token::Class(negated, ranges)
                }
                c => Token::Char(c),
            });
        }
        Ok(Glob(out))
    }

    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        matches_at(&self.0, &name)
    }
}

fn matches_at(pat: &[Token], name: &[char]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((Token::Any, rest)) => (0..=name.len()).any(|i| matches_at(rest, &name[i..])),
        Some((t, rest)) => {
            let Some((&c, tail)) = name.split_first() else {
                return false;
            };
            let ok = match t {
                Token::Char(p) => *p == c,
                Token::One => true,
                Token::Class(negated, ranges) => {
                    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }
                Token::Any => unreachable!("handled above"),
            };
            ok && matches_at(rest, tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_go_filepath_match() {
        let m = |p: &str, n: &str| Glob::parse(p).unwrap().matches(n);
        assert!(m("*", "web"));
        assert!(m("*", ""));
        assert!(m("web", "web"));
        assert!(!m("web", "web2"));
        assert!(m("web*", "web2"));
        assert!(m("*2", "web2"));
        assert!(!m("web?", "web"));
        assert!(m("web?", "web1"));
        assert!(m("w*b*", "wxxbyy"));
        assert!(m("echo[0-9]", "echo7"));
        assert!(!m("echo[0-9]", "echoa"));
        assert!(m("echo[^0-9]", "echoa"));
        assert!(m("[abc]x", "bx"));
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
        assert!(m("[\\]]", "]"));
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "axb"));
        assert!(Glob::all().matches("anything-at.all_1"));
    }

    #[test]
    fn malformed_globs_are_refused() {
        for p in ["[", "[]", "[a", "a\\", "[a-]", "[-a]", "[^"] {
            assert!(Glob::parse(p).is_err(), "{p}");
        }
        assert_eq!(
            Glob::parse("[x").unwrap_err().to_string(),
            "syntax error in pattern `[x`"
        );
    }

    #[test]
    fn instance_names_are_apptainers_characters_without_dot_and_dot_dot() {
        for ok in [
            "web",
            "echo1",
            "a.b",
            "x_y-z",
            ".hidden",
            "9",
            "movedConfig",
        ] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "x*", "é", &"n".repeat(201)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_name("a/b").unwrap_err().to_string(),
            "`a/b` is not a valid instance name"
        );
    }

    #[test]
    fn this_process_start_time_is_read_and_stable() {
        let me = std::process::id() as i32;
        let t = start_ticks(me).expect("own start time");
        assert_eq!(start_ticks(me), Some(t));
        assert_eq!(start_ticks(-5), None);
        assert!(process_group(me).expect("own process group") > 0);
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(has_children(me));
        assert!(!has_children(child.id() as i32));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_record_of_a_gone_process_is_not_alive_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let mut st = State {
            name: "web".into(),
            pid: me,
            image: "/i.sif".into(),
            uid: sifr_sys::process::ids().0,
            started: 0,
            start_ticks: start_ticks(me),
            ip: String::new(),
            log_out: PathBuf::new(),
            log_err: PathBuf::new(),
        };
        write_state(&dir.path().join("web.json"), &st).unwrap();
        assert!(running(dir.path(), "web").is_some());
        // The same pid with another start time: a reused pid, not the launcher.
        st.start_ticks = st.start_ticks.map(|t| t + 1);
        write_state(&dir.path().join("web.json"), &st).unwrap();
        assert!(running(dir.path(), "web").is_none());
        assert!(!dir.path().join("web.json").exists());
    }
}
