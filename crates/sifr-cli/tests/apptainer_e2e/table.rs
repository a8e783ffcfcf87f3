//! The row type of the Apptainer e2e conformance table and the checks a row makes.
//!
//! A row is one command line from Apptainer v1.5.3's `e2e/` suite: the Apptainer test it comes
//! from, the arguments (without the program name), the environment, what Apptainer expects of
//! the exit status and of each stream, and who runs it. Arguments, variables, files and expected
//! text may hold placeholders (`{img}`, `{tmp}`, ...) that the runner fills in; see
//! `apptainer_e2e.rs` for the list.

use serde_json::Value;

/// Who runs a row. Apptainer runs most of these under its "user" profile; sifr runs them as
/// root and as the test user unless the expectation itself depends on who runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Both,
    Root,
    User,
}

/// One check on a stream, named after Apptainer's `e2e.MatchType`.
#[derive(Debug, Clone)]
pub enum Match {
    /// `ExactMatch`: the stream, less one trailing newline, equals the text.
    Exact(String),
    /// `ContainMatch`.
    Contains(String),
    /// `UnwantedContainMatch`.
    NotContains(String),
    /// `UnwantedExactMatch` (less one trailing newline, as Apptainer's ExactMatch).
    NotExact(String),
    /// `RegexMatch` with a pattern of the form `^TEXT`: the stream starts with the text.
    Prefix(String),
    /// `apptainer version` output: Apptainer strips the text when it leads (`TrimPrefix`),
    /// trims spaces and parses the rest with `semver.Make`.
    Semver(String),
    /// As `Semver`, and the version is this one (`testEqualVersion` compares the two outputs).
    Version(String, String),
    /// The stream is JSON and the value at the JSON pointer is this string (the comparisons
    /// Apptainer makes after `json.Unmarshal` of `inspect --json` output).
    JsonStr(String, String),
    /// The stream is JSON and the array at the pointer has this many elements.
    JsonLen(String, usize),
    /// The stream is JSON and the string at the pointer starts with the text.
    JsonPrefix(String, String),
}

pub fn exact(s: &str) -> Match {
    Match::Exact(s.into())
}
pub fn contains(s: &str) -> Match {
    Match::Contains(s.into())
}
pub fn not_contains(s: &str) -> Match {
    Match::NotContains(s.into())
}
pub fn not_exact(s: &str) -> Match {
    Match::NotExact(s.into())
}
pub fn prefix(s: &str) -> Match {
    Match::Prefix(s.into())
}
pub fn semver_after(s: &str) -> Match {
    Match::Semver(s.into())
}
pub fn version_is(prefix: &str, v: &str) -> Match {
    Match::Version(prefix.into(), v.into())
}
pub fn json_str(ptr: &str, v: &str) -> Match {
    Match::JsonStr(ptr.into(), v.into())
}
pub fn json_len(ptr: &str, n: usize) -> Match {
    Match::JsonLen(ptr.into(), n)
}
pub fn json_prefix(ptr: &str, v: &str) -> Match {
    Match::JsonPrefix(ptr.into(), v.into())
}

impl Match {
    /// Fill the placeholders in the expected text.
    pub fn expand(&self, f: &dyn Fn(&str) -> String) -> Match {
        match self {
            Match::Exact(s) => Match::Exact(f(s)),
            Match::Contains(s) => Match::Contains(f(s)),
            Match::NotContains(s) => Match::NotContains(f(s)),
            Match::NotExact(s) => Match::NotExact(f(s)),
            Match::Prefix(s) => Match::Prefix(f(s)),
            Match::Semver(s) => Match::Semver(f(s)),
            Match::Version(s, v) => Match::Version(f(s), v.clone()),
            Match::JsonStr(p, s) => Match::JsonStr(p.clone(), f(s)),
            Match::JsonLen(p, n) => Match::JsonLen(p.clone(), *n),
            Match::JsonPrefix(p, s) => Match::JsonPrefix(p.clone(), f(s)),
        }
    }

    /// `None` when `text` passes, else what is wrong.
    pub fn check(&self, text: &str) -> Option<String> {
        let trimmed = text.strip_suffix('\n').unwrap_or(text);
        match self {
            Match::Exact(s) if trimmed != s => Some(format!("expected exactly {s:?}")),
            Match::Contains(s) if !text.contains(s.as_str()) => {
                Some(format!("expected to contain {s:?}"))
            }
            Match::NotContains(s) if text.contains(s.as_str()) => {
                Some(format!("expected not to contain {s:?}"))
            }
            Match::NotExact(s) if trimmed == s => Some(format!("expected anything but {s:?}")),
            Match::Prefix(s) if !text.starts_with(s.as_str()) => {
                Some(format!("expected to start with {s:?}"))
            }
            Match::Semver(s) => {
                let v = text.strip_prefix(s.as_str()).unwrap_or(text).trim();
                (!is_semver(v))
                    .then(|| format!("expected a semantic version after an optional {s:?}"))
            }
            Match::Version(s, want) => {
                let v = text.strip_prefix(s.as_str()).unwrap_or(text).trim();
                (v != want).then(|| format!("expected version {want} after an optional {s:?}"))
            }
            Match::JsonStr(p, s) => match json_at(text, p) {
                Ok(Value::String(v)) if &v == s => None,
                Ok(v) => Some(format!("expected {p} = {s:?}, found {v}")),
                Err(e) => Some(e),
            },
            Match::JsonLen(p, n) => match json_at(text, p) {
                Ok(Value::Array(a)) if a.len() == *n => None,
                Ok(Value::Object(o)) if o.len() == *n => None,
                Ok(v) => Some(format!("expected {n} elements at {p}, found {v}")),
                Err(e) => Some(e),
            },
            Match::JsonPrefix(p, s) => match json_at(text, p) {
                Ok(Value::String(v)) if v.starts_with(s.as_str()) => None,
                Ok(v) => Some(format!("expected {p} to start with {s:?}, found {v}")),
                Err(e) => Some(e),
            },
            _ => None,
        }
    }
}

fn json_at(text: &str, ptr: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    v.pointer(ptr)
        .cloned()
        .ok_or_else(|| format!("JSON has nothing at {ptr}"))
}

/// `MAJOR.MINOR.PATCH` with an optional `-pre` and `+build`, as `semver.Make` accepts.
fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// One ported expectation.
#[derive(Debug, Clone)]
pub struct Row {
    /// The Apptainer test: `e2e/<dir>/<file> <function>/<subtest>`.
    pub name: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<String>,
    /// Working directory; the identity's own work directory when `None`.
    pub cwd: Option<String>,
    /// Files to write (path under `{tmp}`, content) before the command runs.
    pub files: Vec<(String, String)>,
    pub exit: i32,
    pub stdout: Vec<Match>,
    pub stderr: Vec<Match>,
    pub who: Who,
    /// Ported but not run: the feature belongs to another issue, or the row needs what this
    /// host lacks (network, a terminal); listed by the runner.
    pub pending: Option<String>,
    /// How the row differs from Apptainer's (another image, a check made another way).
    pub adapted: Option<String>,
}

/// A row running `argv` (placeholders allowed), expected to exit 0 as root and as the user.
pub fn row(name: &str, argv: &[&str]) -> Row {
    Row {
        name: name.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        stdin: None,
        cwd: None,
        files: Vec::new(),
        exit: 0,
        stdout: Vec::new(),
        stderr: Vec::new(),
        who: Who::Both,
        pending: None,
        adapted: None,
    }
}

impl Row {
    pub fn env(mut self, k: &str, v: &str) -> Row {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn stdin(mut self, s: &str) -> Row {
        self.stdin = Some(s.into());
        self
    }
    pub fn cwd(mut self, s: &str) -> Row {
        self.cwd = Some(s.into());
        self
    }
    pub fn file(mut self, path: &str, content: &str) -> Row {
        self.files.push((path.into(), content.into()));
        self
    }
    pub fn exit(mut self, code: i32) -> Row {
        self.exit = code;
        self
    }
    pub fn out(mut self, m: Match) -> Row {
        self.stdout.push(m);
        self
    }
    pub fn err(mut self, m: Match) -> Row {
        self.stderr.push(m);
        self
    }
    pub fn who(mut self, w: Who) -> Row {
        self.who = w;
        self
    }
    pub fn pending(mut self, why: &str) -> Row {
        self.pending = Some(why.into());
        self
    }
    pub fn adapted(mut self, how: &str) -> Row {
        self.adapted = Some(how.into());
        self
    }
}

/// Apptainer's status for its own fatal errors (`sylog.Fatalf`).
pub const FATAL: i32 = 255;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_follow_apptainers_rules() {
        assert!(exact("a").check("a\n").is_none());
        assert!(exact("a").check("a\n\n").is_some());
        assert!(not_exact("1").check("1\n").is_some());
        assert!(
            semver_after("apptainer version ")
                .check("apptainer version 1.5.3\n")
                .is_none()
        );
        assert!(
            semver_after("apptainer version ")
                .check("sifr 0.1\n")
                .is_some()
        );
        assert!(
            json_len("/instances", 1)
                .check(r#"{"instances":[{}]}"#)
                .is_none()
        );
        assert!(
            json_str("/a/b~1c", "x")
                .check(r#"{"a":{"b/c":"x"}}"#)
                .is_none()
        );
    }
}
