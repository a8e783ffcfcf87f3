//! The crate's one error type, warnings, and the "did you mean" machinery (edit distance).
//! Builds messages only; must not decide what is an error (the parsing modules do).

use serde::Serialize;

/// A definition-file error. Every variant carries the 1-based `line` and `col` it refers to;
/// `line == 0` means the problem is not in the file (a `--build-arg` given on the command line,
/// or unused build arguments), see [`Error::location`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the file is not valid UTF-8 (invalid byte at line {line}, column {col})")]
    NotUtf8 { line: usize, col: usize },
    #[error("empty definition file: nothing but comments and blank lines")]
    Empty { line: usize, col: usize },
    #[error("the file is JSON, not a definition file (starts with `{start}`)")]
    JsonInput {
        line: usize,
        col: usize,
        start: char,
    },
    #[error("header line `{text}` is not `Keyword: value`")]
    HeaderNoColon {
        line: usize,
        col: usize,
        text: String,
    },
    #[error("invalid header keyword `{keyword}`")]
    UnknownKeyword {
        line: usize,
        col: usize,
        keyword: String,
        suggestion: Option<String>,
    },
    #[error("the header has no `Bootstrap:` keyword")]
    MissingBootstrap { line: usize, col: usize },
    #[error("unknown bootstrap agent `{value}`")]
    UnknownBootstrap {
        line: usize,
        col: usize,
        value: String,
        suggestion: Option<String>,
    },
    #[error("`Bootstrap: {agent}` needs a `From:` keyword")]
    MissingFrom {
        line: usize,
        col: usize,
        agent: String,
    },
    #[error("invalid section `%{name}`")]
    UnknownSection {
        line: usize,
        col: usize,
        name: String,
        suggestion: Option<String>,
    },
    #[error("section header `%{name}` is indented")]
    IndentedSection {
        line: usize,
        col: usize,
        name: String,
    },
    #[error("app section `%{section}` has no app name")]
    MissingAppName {
        line: usize,
        col: usize,
        section: String,
    },
    #[error("invalid `%files` arguments `{args}`")]
    InvalidFilesArgs {
        line: usize,
        col: usize,
        args: String,
    },
    #[error("unterminated quote in files line `{text}`")]
    UnterminatedQuote {
        line: usize,
        col: usize,
        text: String,
    },
    #[error("stage `{stage}` was not found")]
    UnknownStage {
        line: usize,
        col: usize,
        stage: String,
        /// Names of the stages defined before this one.
        earlier: Vec<String>,
        /// Line of a stage of that name defined later (or this stage itself), if any.
        defined_later_at: Option<usize>,
    },
    #[error("build argument `{name}` is not defined")]
    UndefinedBuildArg {
        line: usize,
        col: usize,
        name: String,
    },
    #[error("unused build arguments: {}", backticked(names))]
    UnusedBuildArgs {
        line: usize,
        col: usize,
        names: Vec<String>,
    },
    #[error("build argument `{value}` is not `name=value`")]
    InvalidBuildArg {
        line: usize,
        col: usize,
        value: String,
    },
}

fn backticked(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// `(line, col)` in the definition file, or `None` when the error is not about a place in it.
    pub fn location(&self) -> Option<(usize, usize)> {
        let (line, col) = self.line_col();
        (line > 0).then_some((line, col))
    }

    /// The 1-based line (0 when not in the file).
    pub fn line(&self) -> usize {
        self.line_col().0
    }

    fn line_col(&self) -> (usize, usize) {
        use Error::*;
        match self {
            NotUtf8 { line, col }
            | Empty { line, col }
            | JsonInput { line, col, .. }
            | HeaderNoColon { line, col, .. }
            | UnknownKeyword { line, col, .. }
            | MissingBootstrap { line, col }
            | UnknownBootstrap { line, col, .. }
            | MissingFrom { line, col, .. }
            | UnknownSection { line, col, .. }
            | IndentedSection { line, col, .. }
            | MissingAppName { line, col, .. }
            | InvalidFilesArgs { line, col, .. }
            | UnterminatedQuote { line, col, .. }
            | UnknownStage { line, col, .. }
            | UndefinedBuildArg { line, col, .. }
            | UnusedBuildArgs { line, col, .. }
            | InvalidBuildArg { line, col, .. } => (*line, *col),
        }
    }

    /// How to fix it, when that is known: the closest valid name, the expected form, ...
    pub fn hint(&self) -> Option<String> {
        use Error::*;
        match self {
            NotUtf8 { .. } => Some("save the file as UTF-8".into()),
            Empty { .. } => Some(
                "a definition starts with a header such as `Bootstrap: docker` and `From: alpine`"
                    .into(),
            ),
            JsonInput { .. } => Some(
                "give the definition file itself; sifr does not take Apptainer's JSON form".into(),
            ),
            HeaderNoColon { .. } => Some(
                "header lines are `Keyword: value`; start a section with `%` (for example `%post`)"
                    .into(),
            ),
            UnknownKeyword { suggestion, .. } => Some(match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("valid keywords are {}", crate::header::KEYWORDS_DISPLAY),
            }),
            MissingBootstrap { .. } => {
                Some("add a `Bootstrap:` line (for example `Bootstrap: docker`)".into())
            }
            UnknownBootstrap { suggestion, .. } => Some(match suggestion {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("valid agents are {}", crate::header::AGENTS_DISPLAY),
            }),
            MissingFrom { agent, .. } => Some(format!(
                "add a line such as `From: {}`",
                crate::header::from_example(agent)
            )),
            UnknownSection { suggestion, .. } => Some(match suggestion {
                Some(s) => format!("did you mean `%{s}`?"),
                None => format!("valid sections are {}", crate::sections::SECTIONS_DISPLAY),
            }),
            IndentedSection { .. } => Some(
                "start section headers in the first column; a script line cannot begin with `%`"
                    .into(),
            ),
            MissingAppName { section, .. } => Some(format!("name the app: `%{section} myapp`")),
            InvalidFilesArgs { .. } => Some(
                "`%files` takes no arguments, or `from <stage>` to copy from an earlier stage"
                    .into(),
            ),
            UnterminatedQuote { .. } => Some("close the `\"` or `'`".into()),
            UnknownStage {
                earlier,
                defined_later_at,
                ..
            } => Some(match (defined_later_at, earlier.is_empty()) {
                (Some(l), _) => format!(
                    "`%files from` copies from an earlier stage; the stage at line {l} is not built yet"
                ),
                (None, true) => {
                    "no earlier stage has a `Stage:` name; add `Stage: NAME` to its header".into()
                }
                (None, false) => {
                    match closest(self.stage_name(), earlier.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("earlier stages are {}", backticked(earlier)),
                    }
                }
            }),
            UndefinedBuildArg { name, .. } => Some(format!(
                "pass `--build-arg {name}=VALUE` or add `{name}=VALUE` to the `%arguments` section"
            )),
            UnusedBuildArgs { .. } => {
                Some("remove them, or pass `--warn-unused-build-args` to only warn".into())
            }
            InvalidBuildArg { .. } => Some("write it as `name=value`".into()),
        }
    }

    fn stage_name(&self) -> &str {
        match self {
            Error::UnknownStage { stage, .. } => stage,
            _ => "",
        }
    }
}

/// Something Apptainer accepts that is probably a mistake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// 1-based; 0 when not about a place in the file.
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Edit distance over chars counting insertions, deletions, substitutions and swaps of two
/// neighbours (optimal string alignment), so `biuld` is one edit from `build`.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        d[i * w] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo: within a
/// third of the word's length (at least 1, at most 3), or a candidate that starts with `word`
/// or that `word` starts with.
pub(crate) fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(&word, c);
        let prefix = word.len() >= 3 && (c.starts_with(&word) || word.starts_with(c));
        if (d <= limit || prefix) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("post", "post"), 0);
        assert_eq!(edit_distance("pots", "post"), 1);
        assert_eq!(edit_distance("biuld", "build"), 1);
        assert_eq!(edit_distance("enviroment", "environment"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn closest_finds_typos_but_not_strangers() {
        let c = ["post", "environment", "runscript"];
        assert_eq!(
            closest("enviroment", c.iter().copied()).as_deref(),
            Some("environment")
        );
        assert_eq!(
            closest("run", c.iter().copied()).as_deref(),
            Some("runscript")
        );
        assert_eq!(closest("zzzzzz", c.iter().copied()), None);
    }
}
