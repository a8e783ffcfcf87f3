//! The bash-compatible interpreter of the container's environment: `/.singularity.d/env/*.sh`
//! (the `%environment` section among them), the legacy `/environment`, and the values of
//! `APPTAINERENV_*`/`--env`/`--env-file`, which Apptainer evaluates as the body of a
//! double-quoted string.
//!
//! Apptainer evaluates these with a shell interpreter built into its runtime (mvdan.cc/sh, in
//! bash mode), never with the image's `/bin/sh`; so must sifr, or `source`, functions and
//! `conda activate` break on every Debian image (whose `/bin/sh` is dash) and every image
//! without a shell. The interpreter is brush-core (MIT; a bash-compatible shell in Rust, tested
//! by its authors against bash itself), with brush-builtins' bash set:
//!
//! - **Threads.** brush is async. It runs on a tokio runtime made here with two workers: the
//!   evaluation itself runs on the calling thread (`block_on`), what brush spawns (a process
//!   substitution's writer, builtins in a pipeline or subshell) on the workers, so a builtin
//!   that blocks on a pipe never starves the task feeding it. A [`Session`] only exists after
//!   the namespaces are set up and the root is pivoted (the thread rule in
//!   docs/architecture.md), and dropping it shuts the runtime down and joins its threads,
//!   before the PID namespace and the command.
//! - **Processes.** `$(...)`, backticks and every external command run as children of the
//!   launcher inside the container: its root, its user, the `PATH` the scripts have built.
//! - **What comes out** is the set of exported variables, as Apptainer's `getallenv`; the
//!   variables the interpreter itself exports at start (`SHLVL`, `OLDPWD`, `PWD`) are left out
//!   unless a script changed them. As in the environment bash gives a command, an exported
//!   array or a name exported before it has a value is not in it, and an exported function
//!   is (`BASH_FUNC_name%%`; [`Session::environment`], what the command gets, leaves the
//!   functions out as Apptainer does). `tests/env_bash.rs` compares all of this with bash;
//!   the corrections to brush's builtins it needed are in `interp/decl.rs` (declarations),
//!   `interp/dot.rs` (`source` searching `PATH`) and `interp/command.rs` (`command -v`); the
//!   differences sifr cannot correct are listed in `tests/env_corpus/KNOWN.md`.
//!
//! Speed: an image whose scripts are plain `export` lines never gets here
//! ([`crate::envscript`] evaluates those natively); starting a session costs under a
//! millisecond, sourcing a 300-line bashrc with functions about 7 ms, mostly brush's parser
//! and its pattern compilation (docs/benchmarks.md, "Environment scripts").

use std::path::Path;
use std::time::Duration;

use brush_core::extensions::{ErrorFormatter, ShellExtensionsImpl};

use crate::vars::Vars;

/// Errors of a command inside a script, reported as bash does (`FILE: line N: ...`), behind
/// sifr's warning prefix.
#[derive(Clone, Default)]
pub struct Warn;

impl ErrorFormatter for Warn {
    fn format_error(
        &self,
        error: &brush_core::Error,
        shell: &brush_core::Shell<impl brush_core::ShellExtensions>,
    ) -> String {
        let at = shell.call_stack().current_pos_as_source_info();
        let line = shell
            .call_stack()
            .current_frame()
            .and_then(|f| f.current_line());
        match line {
            Some(n) => format!("WARNING: {}: line {n}: {error:#}\n", at.source),
            None => format!("WARNING: {}: {error:#}\n", at.source),
        }
    }
}

type Ext = ShellExtensionsImpl<Warn>;

/// Why a session could not go on.
#[derive(Debug, thiserror::Error)]
pub enum InterpError {
    #[error("cannot start the environment interpreter: {0}")]
    Start(String),
    /// The whole evaluation ran past `--runscript-timeout`; its commands were killed.
    #[error("killed after {0:?}")]
    Timeout(Duration),
}

/// One interpreter for the whole environment of a launch: the scripts are sourced into it in
/// order, so functions and plain variables of one are seen by the next, as in Apptainer.
pub struct Session {
    // Declared before the runtime: dropped first.
    shell: brush_core::Shell<Ext>,
    /// `None` once given back after a timeout (see [`Drop`]).
    rt: Option<tokio::runtime::Runtime>,
    /// A step ran past the timeout: a worker may be stuck in a blocking builtin.
    stuck: bool,
    /// Variables the interpreter exported by itself at start, with their values then.
    own: Vars,
    /// The order of the variables given at start, kept in the output.
    order: Vec<String>,
    timeout: Option<Duration>,
}

impl Session {
    /// A session whose exported variables are `vars`. With `timeout`, each evaluation step is
    /// bounded by it (`--runscript-timeout`).
    pub fn new(vars: &Vars, timeout: Option<Duration>) -> Result<Session, InterpError> {
        // Workers for what brush spawns: a builtin that blocks the evaluating thread (`read`
        // from a process substitution, whose writer is a task of the same runtime) must not
        // starve the task it waits for.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sifr-env")
            .enable_all()
            .build()
            .map_err(|e| InterpError::Start(e.to_string()))?;
        let shell = rt
            .block_on(
                brush_core::Shell::builder_with_extensions::<Ext>()
                    .builtins(builtins::table())
                    .do_not_inherit_env(true)
                    .no_editing(true)
                    .profile(brush_core::ProfileLoadBehavior::Skip)
                    .rc(brush_core::RcLoadBehavior::Skip)
                    .shell_name("sifr".to_string())
                    .build(),
            )
            .map_err(|e| InterpError::Start(e.to_string()))?;
        let mut s = Session {
            shell,
            rt: Some(rt),
            stuck: false,
            own: Vars::default(),
            order: vars.0.iter().map(|(k, _)| k.clone()).collect(),
            timeout,
        };
        s.own = s.all_exported();
        for (k, v) in &vars.0 {
            s.set(k, v);
        }
        s.own.0.retain(|(k, _)| vars.get(k).is_none());
        Ok(s)
    }

    fn set(&mut self, k: &str, v: &str) {
        let mut var = brush_core::ShellVariable::new(v.to_string());
        var.export();
        if let Err(e) = self.shell.env_mut().set_global(k, var) {
            tracing::warn!("cannot set `{k}` in the environment interpreter: {e}");
        }
    }

    fn all_exported(&self) -> Vars {
        // As bash's environment of a command: set scalars only (an exported array or a name
        // exported before it has a value is not in it), and the exported functions.
        let mut v: Vec<(String, String)> = self
            .shell
            .env()
            .iter_exported()
            .filter(|(_, var)| var.value().is_set() && !var.value().is_array())
            .map(|(k, var)| (k.clone(), var.value().to_cow_str(&self.shell).into_owned()))
            .collect();
        v.extend(
            self.shell
                .funcs()
                .iter()
                .filter(|(_, f)| f.is_exported())
                .map(|(name, f)| {
                    (
                        format!("BASH_FUNC_{name}%%"),
                        format!("() {}", f.definition().body),
                    )
                }),
        );
        v.sort();
        v.dedup_by(|a, b| a.0 == b.0);
        Vars(v)
    }

    /// The exported variables now: those given at start in their order, then new ones by name.
    pub fn exported(&self) -> Vars {
        let all = self.all_exported();
        let mut out = Vars::default();
        for k in &self.order {
            if let Some(v) = all.get(k) {
                out.0.push((k.clone(), v.to_string()));
            }
        }
        for (k, v) in all.0 {
            if self.order.contains(&k) || self.own.get(&k) == Some(v.as_str()) {
                continue;
            }
            out.0.push((k, v));
        }
        out
    }

    /// What reaches the container's command: [`Session::exported`] without the names that are
    /// not variable names, as Apptainer's `getallenv` leaves out exported bash functions
    /// (`BASH_FUNC_module%%`): a `shell` does not get the `conda` or `module` function of
    /// `%environment`, with sifr as with Apptainer.
    pub fn environment(&self) -> Vars {
        let mut v = self.exported();
        v.0.retain(|(k, _)| {
            k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !k.starts_with(|c: char| c.is_ascii_digit())
        });
        v
    }

    /// Apply a change made outside the interpreter (a built-in script of
    /// [`crate::envscript::builtin`]) to its exported variables.
    pub fn apply(&mut self, f: impl FnOnce(&mut Vars)) {
        let before = self.exported();
        let mut after = before.clone();
        f(&mut after);
        for (k, _) in &before.0 {
            if after.get(k).is_none() {
                let _ = self.shell.env_mut().unset(k);
            }
        }
        for (k, v) in &after.0 {
            if before.get(k) != Some(v.as_str()) {
                self.set(k, v);
                if !self.order.contains(k) {
                    self.order.push(k.clone());
                }
            }
        }
    }

    /// Source `path` as bash's `source` would. A script that does not parse is reported with
    /// its file, line and text, and skipped whole (as Apptainer's interpreter skips it); a
    /// failing command inside is reported by the interpreter and the script goes on.
    pub fn source(&mut self, path: &Path) -> Result<(), InterpError> {
        match std::fs::read(path) {
            Ok(b) => self.source_text(path, &String::from_utf8_lossy(&b)),
            Err(e) => {
                tracing::warn!("cannot read `{}`: {e}", path.display());
                Ok(())
            }
        }
    }

    /// [`Session::source`] of a script whose `text` the caller has read already.
    pub fn source_text(&mut self, path: &Path, text: &str) -> Result<(), InterpError> {
        if let Err(e) = self.shell.parse_string(text) {
            tracing::warn!("{}", syntax_error(path, text, &e));
            return Ok(());
        }
        let result = self.run(Job::Source(path.to_path_buf()))?;
        match result {
            Ok(r) => {
                let status = u8::from(r.exit_code);
                if status != 0 {
                    tracing::debug!("`{}` ended with status {status}", path.display());
                }
            }
            Err(e) => tracing::warn!("`{}`: {e:#}", path.display()),
        }
        Ok(())
    }

    /// `export NAME="VALUE"`: the value evaluated as the body of a double-quoted string
    /// (Apptainer's injection of `APPTAINERENV_*`/`--env`; only `"` is escaped, so `$VAR`,
    /// `$(...)`, backticks and `\$` keep their meaning). Returns the value it got.
    pub fn export_evaluated(&mut self, name: &str, value: &str) -> Result<String, InterpError> {
        let quoted = value.replace('"', "\\\"");
        let line = format!("export {name}=\"{quoted}\"");
        if self.shell.parse_string(line.as_str()).is_err() {
            tracing::warn!(
                "the value of {name} ({value:?}) is not a valid double-quoted shell string; \
                 it is taken literally (use --no-eval to take every value literally)"
            );
            self.set(name, value);
        } else {
            let r = self.run(Job::Line(line, format!("the value of {name}")))?;
            if let Err(e) = r {
                tracing::warn!("evaluating the value of {name}: {e:#}");
            }
        }
        if !self.order.iter().any(|k| k == name) {
            self.order.push(name.to_string());
        }
        Ok(self
            .shell
            .env_str(name)
            .map(|c| c.into_owned())
            .unwrap_or_default())
    }
}

/// One evaluation step, run on a worker of the session's runtime.
enum Job {
    Source(std::path::PathBuf),
    /// Text and the name it is reported under.
    Line(String, String),
}

type StepResult = Result<brush_core::ExecutionResult, brush_core::Error>;

impl Session {
    fn runtime(&self) -> Result<&tokio::runtime::Runtime, InterpError> {
        match (&self.rt, self.stuck) {
            (Some(rt), false) => Ok(rt),
            _ => Err(InterpError::Start(
                "the environment interpreter was stopped after a timeout".into(),
            )),
        }
    }

    /// Run `job` with the session's shell, bounded by the timeout. The evaluation runs on
    /// this thread (`block_on`); what brush spawns (a process substitution's writer, builtins in
    /// a pipeline) runs on the runtime's workers, so a builtin blocking this thread on a pipe
    /// does not starve the task that feeds it.
    fn run(&mut self, job: Job) -> Result<StepResult, InterpError> {
        let rt = self.runtime()?.handle().clone();
        let timeout = self.timeout;
        let shell = &mut self.shell;
        let step = async move {
            let params = shell.default_exec_params();
            match job {
                Job::Source(path) => {
                    shell
                        .source_script(&path, std::iter::empty::<String>(), &params)
                        .await
                }
                Job::Line(text, origin) => {
                    let origin = brush_core::SourceInfo::from(origin.as_str());
                    shell.run_string(text, &origin, &params).await
                }
            }
        };
        match timeout {
            None => Ok(rt.block_on(step)),
            Some(t) => match rt.block_on(async { tokio::time::timeout(t, step).await }) {
                Ok(r) => Ok(r),
                Err(_) => {
                    kill_children();
                    self.stuck = true;
                    Err(InterpError::Timeout(t))
                }
            },
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // After a timeout a worker may never return from a blocking call: leave it behind
        // rather than wait for it (the launch fails and the process ends). Otherwise the
        // runtime's drop joins every thread it started.
        if self.stuck
            && let Some(rt) = self.rt.take()
        {
            rt.shutdown_background();
        }
    }
}

/// `FILE: line N: syntax error ...` with the line's text under it.
fn syntax_error(path: &Path, text: &str, e: &brush_core::parser::ParseError) -> String {
    use brush_core::parser::ParseError as P;
    let line = match e {
        P::ParsingNear(pos) => Some(pos.line),
        P::Tokenizing { position, .. } => position.as_ref().map(|p| p.line),
        P::ParsingAtEndOfInput => Some(text.lines().count().max(1)),
    };
    let what = match e {
        P::ParsingNear(_) => "syntax error".to_string(),
        P::ParsingAtEndOfInput => "syntax error: unexpected end of file".to_string(),
        P::Tokenizing { inner, .. } => format!("syntax error: {inner}"),
    };
    match line {
        Some(n) => {
            let shown = text
                .lines()
                .nth(n.saturating_sub(1))
                .unwrap_or("")
                .trim_end();
            format!(
                "{}: line {n}: {what}; the script is skipped\n    {n} | {shown}",
                path.display()
            )
        }
        None => format!("{}: {what}; the script is skipped", path.display()),
    }
}

/// Kill the launcher's own children (the commands a timed-out script started: brush runs
/// subshells in-process, so every external command is a direct child) and reap them.
fn kill_children() {
    let me = std::process::id();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(me) {
            let _ = sifr_sys::process::send_signal(pid, sifr_sys::signal::KILL);
            let _ = sifr_sys::process::wait_pid(pid);
        }
    }
}

mod builtins;
mod command;
mod decl;
mod dot;

#[cfg(test)]
mod tests;
