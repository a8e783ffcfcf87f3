//! The image's `/.singularity.d/env/*.sh`, evaluated natively when they are plain exports (the
//! fast path: no interpreter is started for them):
//!
//! `export VAR=value`, `VAR=value; export VAR`, `export A B`, `unset VAR`, `:`/`true`, comments,
//! single and double quotes, backslash escapes, `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`.
//!
//! Anything else (`if`, pipes, `$(…)`, `.`/`source`, other commands, bash's own variables such
//! as `$UID`) makes [`NativeShell::eval`] return [`Unsupported`] without changing anything; the
//! caller then evaluates every script of the launch with the bash-compatible interpreter
//! ([`crate::interp`]). Stock scripts whose meaning the runtime defines itself (`99-base.sh`,
//! `99-runtimevars.sh`, …) are applied by [`builtin`] instead of being evaluated.
//!
//! Pure text processing; no I/O, no namespace work.

use crate::vars::Vars;

/// A construct the native evaluator does not handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what} needs a shell")]
pub struct Unsupported {
    pub line: usize,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var {
        name: String,
        /// `(op, word)` for `${name<op>word}`; op is one of `:-`, `-`, `:+`, `+`.
        op: Option<(&'static str, Vec<Part>)>,
    },
}

type Word = Vec<Part>;

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    line: usize,
}

fn unsupported(line: usize, what: impl Into<String>) -> Unsupported {
    Unsupported {
        line,
        what: what.into(),
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.char_indices().peekable(),
            line: 1,
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|(_, c)| *c)
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.next().map(|(_, c)| c);
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    /// Commands as lists of words, each with the line it started on.
    fn commands(&mut self) -> Result<Vec<(usize, Vec<Word>)>, Unsupported> {
        let mut out = Vec::new();
        let mut cur: Vec<Word> = Vec::new();
        let mut start = self.line;
        loop {
            match self.peek() {
                None => {
                    if !cur.is_empty() {
                        out.push((start, std::mem::take(&mut cur)));
                    }
                    return Ok(out);
                }
                Some(' ' | '\t') => {
                    self.next();
                }
                Some('\n' | ';') => {
                    self.next();
                    if !cur.is_empty() {
                        out.push((start, std::mem::take(&mut cur)));
                    }
                    start = self.line;
                }
                Some('#') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.next();
                    }
                }
                Some('\\') if self.is_line_continuation() => {
                    self.next();
                    self.next();
                }
                Some(_) => {
                    if cur.is_empty() {
                        start = self.line;
                    }
                    cur.push(self.word()?);
                }
            }
        }
    }

    fn is_line_continuation(&self) -> bool {
        let mut it = self.chars.clone();
        it.next();
        matches!(it.next(), Some((_, '\n')))
    }

    fn word(&mut self) -> Result<Word, Unsupported> {
        let mut parts: Word = Vec::new();
        let mut lit = String::new();
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' | ';' => break,
                '|' | '&' | '<' | '>' | '(' | ')' | '`' => {
                    return Err(unsupported(self.line, format!("`{c}`")));
                }
                '\'' => {
                    self.next();
                    loop {
                        match self.next() {
                            Some('\'') => break,
                            Some(ch) => lit.push(ch),
                            None => return Err(unsupported(self.line, "an unterminated quote")),
                        }
                    }
                }
                '"' => {
                    self.next();
                    loop {
                        match self.peek() {
                            Some('"') => {
                                self.next();
                                break;
                            }
                            Some('\\') => {
                                self.next();
                                match self.next() {
                                    Some(ch @ ('$' | '`' | '"' | '\\')) => lit.push(ch),
                                    Some('\n') => {}
                                    Some(ch) => {
                                        lit.push('\\');
                                        lit.push(ch);
                                    }
                                    None => return Err(unsupported(self.line, "a trailing `\\`")),
                                }
                            }
                            Some('$') => {
                                self.next();
                                self.dollar(&mut parts, &mut lit)?;
                            }
                            Some('`') => return Err(unsupported(self.line, "`` ` ``")),
                            Some(_) => lit.push(self.next().unwrap_or_default()),
                            None => return Err(unsupported(self.line, "an unterminated quote")),
                        }
                    }
                }
                '\\' => {
                    self.next();
                    match self.next() {
                        Some('\n') => {}
                        Some(ch) => lit.push(ch),
                        None => {}
                    }
                }
                '$' => {
                    self.next();
                    self.dollar(&mut parts, &mut lit)?;
                }
                _ => {
                    self.next();
                    lit.push(c);
                }
            }
        }
        if !lit.is_empty() || parts.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(parts)
    }

    /// After a `$`: `$NAME`, `${NAME}`, `${NAME<op>word}`.
    fn dollar(&mut self, parts: &mut Word, lit: &mut String) -> Result<(), Unsupported> {
        match self.peek() {
            Some('{') => {
                self.next();
                let name = self.name();
                if name.is_empty() {
                    return Err(unsupported(self.line, "a special `${…}` parameter"));
                }
                let op = match self.peek() {
                    Some('}') => {
                        self.next();
                        None
                    }
                    Some(':') => {
                        self.next();
                        match self.next() {
                            Some('-') => Some(":-"),
                            Some('+') => Some(":+"),
                            _ => return Err(unsupported(self.line, format!("`${{{name}:…}}`"))),
                        }
                    }
                    Some('-') => {
                        self.next();
                        Some("-")
                    }
                    Some('+') => {
                        self.next();
                        Some("+")
                    }
                    _ => return Err(unsupported(self.line, format!("`${{{name}…}}`"))),
                };
                let op = match op {
                    None => None,
                    Some(op) => Some((op, self.brace_word()?)),
                };
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(lit)));
                }
                parts.push(Part::Var { name, op });
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(lit)));
                }
                parts.push(Part::Var { name, op: None });
            }
            Some('(') => return Err(unsupported(self.line, "`$(…)`")),
            Some(c) if "@*#?$!-0123456789".contains(c) => {
                return Err(unsupported(self.line, format!("`${c}`")));
            }
            _ => lit.push('$'),
        }
        Ok(())
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if is_name_char(c) {
                n.push(c);
                self.next();
            } else {
                break;
            }
        }
        n
    }

    /// The word of `${NAME:-word}` up to the closing brace (quotes and `$` allowed).
    fn brace_word(&mut self) -> Result<Word, Unsupported> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        loop {
            match self.next() {
                Some('}') => break,
                Some('$') => self.dollar(&mut parts, &mut lit)?,
                Some('"') => loop {
                    match self.next() {
                        Some('"') => break,
                        Some('$') => self.dollar(&mut parts, &mut lit)?,
                        Some(c) => lit.push(c),
                        None => return Err(unsupported(self.line, "an unterminated quote")),
                    }
                },
                Some('\'') => loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(c) => lit.push(c),
                        None => return Err(unsupported(self.line, "an unterminated quote")),
                    }
                },
                Some('`') => return Err(unsupported(self.line, "`` ` ``")),
                Some(c) => lit.push(c),
                None => return Err(unsupported(self.line, "an unterminated `${`")),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(parts)
    }
}

/// Shell state while a script is evaluated: exported variables and plain shell variables.
struct State<'a> {
    exported: &'a mut Vars,
    shell: Vars,
    /// Names the script assigned or exported with a value, in first-assignment order.
    assigned: Vec<String>,
}

impl State<'_> {
    fn lookup(&self, k: &str) -> Option<&str> {
        self.shell.get(k).or_else(|| self.exported.get(k))
    }

    fn expand(&self, w: &[Part]) -> String {
        let mut s = String::new();
        for p in w {
            match p {
                Part::Lit(l) => s.push_str(l),
                Part::Var { name, op } => {
                    let val = self.lookup(name);
                    match op {
                        None => s.push_str(val.unwrap_or("")),
                        Some((op, word)) => {
                            let set = val.is_some();
                            let nonempty = val.is_some_and(|v| !v.is_empty());
                            let use_word = match *op {
                                ":-" => !nonempty,
                                "-" => !set,
                                ":+" => nonempty,
                                _ => set,
                            };
                            let alt = op.ends_with('+');
                            if use_word {
                                s.push_str(&self.expand(word));
                            } else if !alt {
                                s.push_str(val.unwrap_or(""));
                            }
                        }
                    }
                }
            }
        }
        s
    }

    fn note(&mut self, name: &str) {
        if !self.assigned.iter().any(|n| n == name) {
            self.assigned.push(name.to_string());
        }
    }

    fn assign(&mut self, name: &str, value: String) {
        self.note(name);
        if self.exported.get(name).is_some() {
            self.exported.set(name, &value);
        } else {
            self.shell.set(name, &value);
        }
    }

    fn export(&mut self, name: &str, value: Option<String>) {
        if value.is_some() {
            self.note(name);
        }
        let v = value.or_else(|| self.shell.get(name).map(str::to_string));
        self.shell.remove(name);
        // `export NAME` of an unset variable exports nothing visible.
        if let Some(v) = v {
            self.exported.set(name, &v);
        }
    }
}

/// `NAME=` prefix of a word, if its first literal part starts with one.
fn split_assignment(w: &[Part]) -> Option<(String, Word)> {
    let Some(Part::Lit(first)) = w.first() else {
        return None;
    };
    let eq = first.find('=')?;
    let name = &first[..eq];
    if name.is_empty()
        || !name.chars().all(is_name_char)
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return None;
    }
    let mut rest = vec![Part::Lit(first[eq + 1..].to_string())];
    rest.extend_from_slice(&w[1..]);
    Some((name.to_string(), rest))
}

fn literal(w: &[Part]) -> Option<&str> {
    match w {
        [Part::Lit(l)] => Some(l),
        _ => None,
    }
}

/// Variables bash sets itself (not taken from the environment): a script reading one needs
/// the interpreter, which has them.
pub const SHELL_VARS: &[&str] = &[
    "UID",
    "EUID",
    "PPID",
    "HOSTNAME",
    "HOSTTYPE",
    "OSTYPE",
    "MACHTYPE",
    "RANDOM",
    "SRANDOM",
    "SECONDS",
    "LINENO",
    "BASH",
    "BASHPID",
    "BASH_VERSION",
    "BASH_VERSINFO",
    "BASHOPTS",
    "SHELLOPTS",
    "GROUPS",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "IFS",
    "OPTIND",
    "EPOCHSECONDS",
    "EPOCHREALTIME",
    "FUNCNAME",
    "BASH_SOURCE",
    "PIPESTATUS",
];

/// Whether `text` reads one of [`SHELL_VARS`] (`$NAME` or `${NAME...`), anywhere, quoted or
/// not: a conservative test, a false hit only costs the interpreter's start.
pub fn mentions_shell_var(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(off) = text[i..].find('$') {
        let mut j = i + off + 1;
        if b.get(j) == Some(&b'{') {
            j += 1;
        }
        let end = b[j..]
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
            .map_or(b.len(), |n| j + n);
        if SHELL_VARS.contains(&&text[j..end]) {
            return true;
        }
        i = j.max(i + off + 1);
    }
    false
}

/// Native evaluation of the scripts of one launch in turn, as one shell sourcing them would:
/// plain (unexported) variables of one script are seen by the next.
#[derive(Debug, Clone, Default)]
pub struct NativeShell {
    pub exported: Vars,
    shell: Vars,
}

impl NativeShell {
    pub fn new(exported: Vars) -> NativeShell {
        NativeShell {
            exported,
            shell: Vars::default(),
        }
    }

    /// Evaluate one script; on [`Unsupported`] nothing changes.
    pub fn eval(&mut self, text: &str) -> Result<(), Unsupported> {
        if mentions_shell_var(text) {
            return Err(unsupported(
                1,
                "one of bash's own variables ($UID, $PWD, ...)",
            ));
        }
        let mut exported = self.exported.clone();
        let mut st = State {
            exported: &mut exported,
            shell: self.shell.clone(),
            assigned: Vec::new(),
        };
        run(text, &mut st)?;
        let shell = st.shell;
        self.shell = shell;
        self.exported = exported;
        Ok(())
    }
}

/// Evaluate an `--env-file`: `visible` (the host environment) can be read with `$VAR` but is not
/// part of the result; the result is every variable the file assigns, exported or not, with
/// its last value, in first-assignment order (Apptainer keeps both `A=1` and `export A=1`).
pub fn eval_assignments(text: &str, visible: &Vars) -> Result<Vars, Unsupported> {
    let mut exported = Vars::default();
    let mut st = State {
        exported: &mut exported,
        shell: visible.clone(),
        assigned: Vec::new(),
    };
    run(text, &mut st)?;
    let mut out = Vars::default();
    for name in &st.assigned {
        if let Some(v) = st.lookup(name) {
            out.set(name, v);
        }
    }
    Ok(out)
}

fn run(text: &str, st: &mut State<'_>) -> Result<(), Unsupported> {
    let commands = Lexer::new(text).commands()?;
    for (line, words) in commands {
        let mut i = 0;
        // Leading assignments.
        let mut assigns = Vec::new();
        while i < words.len() {
            match split_assignment(&words[i]) {
                Some(a) => assigns.push(a),
                None => break,
            }
            i += 1;
        }
        if i == words.len() {
            for (n, w) in assigns {
                let v = st.expand(&w);
                st.assign(&n, v);
            }
            continue;
        }
        if !assigns.is_empty() {
            return Err(unsupported(line, "an assignment before a command"));
        }
        let cmd = literal(&words[i]).ok_or_else(|| unsupported(line, "a computed command"))?;
        match cmd {
            "export" => {
                for w in &words[i + 1..] {
                    if let Some((n, val)) = split_assignment(w) {
                        let v = st.expand(&val);
                        st.export(&n, Some(v));
                    } else {
                        let name = st.expand(w);
                        if name == "-p" || name.is_empty() || !name.chars().all(is_name_char) {
                            return Err(unsupported(line, format!("`export {name}`")));
                        }
                        st.export(&name, None);
                    }
                }
            }
            "unset" => {
                for w in &words[i + 1..] {
                    let name = st.expand(w);
                    if name.starts_with('-') {
                        return Err(unsupported(line, format!("`unset {name}`")));
                    }
                    st.shell.remove(&name);
                    st.exported.remove(&name);
                    st.assigned.retain(|n| *n != name);
                }
            }
            ":" | "true" => {}
            other => return Err(unsupported(line, format!("the command `{other}`"))),
        }
    }
    Ok(())
}

/// A change to the environment made natively in place of a script (see [`builtin`]).
pub type Builtin = Box<dyn Fn(&mut Vars)>;

/// Scripts whose meaning the runtime defines itself, applied natively whatever their text.
/// `01-base.sh` is an empty placeholder; `99-base.sh` appends `/.singularity.d/libs` to
/// `LD_LIBRARY_PATH` and sets `PS1`; `99-runtimevars.sh` applies the user's PATH edits, which
/// [`crate::env::finish`] does instead; `95-apps.sh` selects the `--app` SCIF app, which
/// [`crate::apps::env_steps`] does instead. `94-appsbase.sh` (each app's `SCIF_*_<app>`
/// variables) is an ordinary script, sourced whether or not an app is selected.
pub fn builtin(file_name: &str) -> Option<fn(&mut Vars)> {
    match file_name {
        "01-base.sh" | "99-runtimevars.sh" | "95-apps.sh" => Some(|_| {}),
        "99-base.sh" => Some(|env| {
            let ld = match env.get("LD_LIBRARY_PATH") {
                Some(v) if !v.is_empty() => format!("{v}:/.singularity.d/libs"),
                _ => "/.singularity.d/libs".into(),
            };
            env.set("LD_LIBRARY_PATH", &ld);
            // As the stock script: only when the image's scripts left PS1 unset or empty.
            if env.get("PS1").is_none_or(str::is_empty) {
                env.set("PS1", "Apptainer> ");
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(p: &[(&str, &str)]) -> Vars {
        Vars::of(p)
    }

    fn eval(text: &str, start: &[(&str, &str)]) -> Result<Vars, Unsupported> {
        let mut n = NativeShell::new(vars(start));
        n.eval(text).map(|()| n.exported)
    }

    #[test]
    fn export_forms_of_percent_environment() {
        let v = eval(
            "#!/bin/sh\n# comment\nexport A=1\nB='two words'; export B\nexport C=\"$A-${B}\" D=x\nE=hidden\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            v,
            vars(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "1-two words"),
                ("D", "x")
            ])
        );
    }

    #[test]
    fn path_prepend_and_defaults() {
        let v = eval(
            "export PATH=/opt/x/bin:$PATH\nexport LANG=${LANG:-C.UTF-8}\nexport Q=${UNSET-dflt}\nexport R=${PATH:+set}",
            &[("PATH", "/usr/bin")],
        )
        .unwrap();
        assert_eq!(v.get("PATH"), Some("/opt/x/bin:/usr/bin"));
        assert_eq!(v.get("LANG"), Some("C.UTF-8"));
        assert_eq!(v.get("Q"), Some("dflt"));
        assert_eq!(v.get("R"), Some("set"));
    }

    #[test]
    fn assignment_to_exported_variable_stays_exported() {
        let v = eval(
            "PATH=/a:$PATH\nunset GONE",
            &[("PATH", "/b"), ("GONE", "1")],
        )
        .unwrap();
        assert_eq!(v, vars(&[("PATH", "/a:/b")]));
    }

    #[test]
    fn shell_constructs_are_reported_with_their_line() {
        let e = eval("export A=1\nif [ -z \"$A\" ]; then A=2; fi\n", &[]).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.what.contains("`if`"), "{e}");
        for (script, what) in [
            ("export A=$(uname)", "$("),
            (". /etc/profile", "`.`"),
            ("export A=`date`", "`"),
        ] {
            let e = eval(script, &[]).unwrap_err();
            assert_eq!(e.line, 1, "{script}: {e}");
            assert!(e.what.contains(what), "{script}: {e}");
        }
    }

    #[test]
    fn unsupported_script_leaves_environment_unchanged() {
        let mut n = NativeShell::new(vars(&[("A", "0")]));
        let e = n.eval("export A=1\nfoo bar\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert_eq!(n.exported, vars(&[("A", "0")]));
    }
}
