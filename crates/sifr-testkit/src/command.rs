//! A command builder for tests, in the manner of ripgrep's `TestCommand`: each choice that
//! changes how a command runs (who runs it, where, with which environment, inside which
//! launcher) is a named method, so a test reads like the user's session instead of a row of
//! positional booleans. [`TestCommand::output`] runs it and gives a [`TestOutput`] with
//! assertion helpers that print both streams on failure.

use std::ffi::{OsStr, OsString};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::identity::{As, argv_as};

/// Prefixes of the caller's own settings that [`TestCommand::without_caller_settings`] drops.
const SETTING_PREFIXES: &[&str] = &["APPTAINER", "SINGULARITY", "SIFR_"];

/// Remove the caller's own `APPTAINER*`, `SINGULARITY*` and `SIFR_*` variables from `cmd`'s
/// environment, so they cannot change the result (for commands built by other means, such as
/// `assert_cmd`), and turn the build cache off as [`TestCommand`] does.
pub fn remove_caller_settings(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if SETTING_PREFIXES
            .iter()
            .any(|p| k.to_string_lossy().starts_with(p))
        {
            cmd.env_remove(k);
        }
    }
    cmd.env(NO_BUILD_CACHE.0, NO_BUILD_CACHE.1);
    cmd.env(NO_REGISTRY_CHECK.0, NO_REGISTRY_CHECK.1);
}

/// The variable and value that keep the build preflight from asking registries whether they
/// answer (the suites' definitions name registries they never pull from); the tests of that
/// check run sifr without it.
pub const NO_REGISTRY_CHECK: (&str, &str) = ("SIFR_NO_REGISTRY_CHECK", "1");

/// The variable and value that turn sifr's build cache off, which every [`TestCommand`] and
/// the suites' own `sifr` commands set unless a test of the cache says otherwise.
pub const NO_BUILD_CACHE: (&str, &str) = ("SIFR_BUILD_CACHE_SIZE", "0");

/// A command under test, assembled when it runs: `LAUNCHER... [setpriv ... --] PROGRAM ARGS`.
#[derive(Debug, Clone)]
pub struct TestCommand {
    launcher: Vec<OsString>,
    program: OsString,
    args: Vec<OsString>,
    who: Option<As>,
    dir: Option<PathBuf>,
    drop_prefixes: Vec<String>,
    drop_suffixes: Vec<String>,
    env: Vec<(OsString, Option<OsString>)>,
}

impl TestCommand {
    /// `program` run by this process's own identity, in its working directory and environment.
    pub fn new(program: impl AsRef<OsStr>) -> TestCommand {
        TestCommand {
            launcher: Vec::new(),
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            who: None,
            dir: None,
            drop_prefixes: Vec::new(),
            drop_suffixes: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Run it as `who`: through `setpriv` when root switches to the test user, directly
    /// otherwise (see [`crate::command_as`]).
    pub fn as_user(mut self, who: As) -> TestCommand {
        self.who = Some(who);
        self
    }

    /// Run it in `dir`, with `PWD` saying so.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> TestCommand {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Drop the caller's own `APPTAINER*`, `SINGULARITY*` and `SIFR_*` variables, so they
    /// cannot change the result (variables set with [`TestCommand::env`] stay).
    pub fn without_caller_settings(mut self) -> TestCommand {
        self.drop_prefixes
            .extend(SETTING_PREFIXES.iter().map(|p| p.to_string()));
        self
    }

    /// Drop the caller's variables whose names end with `suffix` (`_VISIBLE_DEVICES`, ...).
    pub fn without_caller_env_ending_with(mut self, suffix: &str) -> TestCommand {
        self.drop_suffixes.push(suffix.to_owned());
        self
    }

    /// Start it through `launcher` (a program and its arguments, the command's argv after
    /// them), as `unshare ... sh -c SCRIPT sh` does for a command run in a prepared namespace.
    pub fn launcher<I, S>(mut self, launcher: I) -> TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.launcher = launcher
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .collect();
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> TestCommand {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> TestCommand {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> TestCommand
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> TestCommand {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// The `std` command this describes, to spawn or to change further.
    pub fn command(&self) -> Command {
        let mut argv = self.launcher.clone();
        argv.extend(match self.who {
            Some(who) => argv_as(who, &self.program),
            None => vec![self.program.clone()],
        });
        argv.extend(self.args.iter().cloned());
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        if let Some(dir) = &self.dir {
            c.current_dir(dir).env("PWD", dir);
        }
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy();
            if self
                .drop_prefixes
                .iter()
                .any(|p| name.starts_with(p.as_str()))
                || self
                    .drop_suffixes
                    .iter()
                    .any(|s| name.ends_with(s.as_str()))
            {
                c.env_remove(&k);
            }
        }
        // No build cache unless the test asks for one (`.env("SIFR_BUILD_CACHE_SIZE", ..)`): a
        // reused step does not run, so a test of what `%post` prints or does would pass once
        // and fail when its binary runs again.
        c.env(NO_BUILD_CACHE.0, NO_BUILD_CACHE.1);
        c.env(NO_REGISTRY_CHECK.0, NO_REGISTRY_CHECK.1);
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    /// Run it to completion, capturing both streams.
    pub fn output(&self) -> TestOutput {
        let mut c = self.command();
        let output = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
        TestOutput {
            output,
            command: format!("{c:?}"),
        }
    }
}

/// What a [`TestCommand`] did: the `std` output (by `Deref`), its streams as text, and checks
/// that say the command and both streams when they fail.
#[derive(Debug)]
pub struct TestOutput {
    pub output: Output,
    /// The command line, for failure messages.
    pub command: String,
}

impl Deref for TestOutput {
    type Target = Output;
    fn deref(&self) -> &Output {
        &self.output
    }
}

impl TestOutput {
    pub fn stdout_text(&self) -> String {
        stdout(&self.output)
    }

    pub fn stderr_text(&self) -> String {
        stderr(&self.output)
    }

    /// Panic, saying the command and both streams, unless it exited with status 0.
    pub fn assert_success(&self) -> &TestOutput {
        assert!(
            self.status.success(),
            "{} failed ({}):\n--- stdout\n{}--- stderr\n{}",
            self.command,
            self.status,
            self.stdout_text(),
            self.stderr_text()
        );
        self
    }

    /// Panic, saying the command and both streams, unless it exited with status `code`.
    pub fn assert_code(&self, code: i32) -> &TestOutput {
        assert_eq!(
            self.status.code(),
            Some(code),
            "{}:\n--- stdout\n{}--- stderr\n{}",
            self.command,
            self.stdout_text(),
            self.stderr_text()
        );
        self
    }
}

impl TestOutput {
    /// Panic, saying both streams, unless stderr contains `needle`.
    pub fn assert_stderr_contains(&self, needle: &str) -> &TestOutput {
        let err = self.stderr_text();
        assert!(err.contains(needle), "stderr lacks `{needle}`:\n{err}");
        self
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(c: &Command) -> Vec<String> {
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_launcher_comes_first_then_the_program_and_its_arguments() {
        let c = TestCommand::new("/bin/sifr")
            .launcher(["unshare", "--mount", "sh", "-c", "exec \"$@\"", "sh"])
            .as_user(As::Root)
            .args(["exec", "img"])
            .arg("true")
            .command();
        assert_eq!(
            argv(&c),
            [
                "unshare",
                "--mount",
                "sh",
                "-c",
                "exec \"$@\"",
                "sh",
                "/bin/sifr",
                "exec",
                "img",
                "true"
            ]
        );
    }

    #[test]
    fn the_directory_sets_pwd_and_set_variables_survive_the_scrub() {
        let c = TestCommand::new("prog")
            .current_dir("/tmp")
            .without_caller_settings()
            .without_caller_env_ending_with("_VISIBLE_DEVICES")
            .env("SIFR_CONFIG", "/etc/x")
            .env_remove("HOME")
            .command();
        assert_eq!(c.get_current_dir(), Some(Path::new("/tmp")));
        let envs: Vec<(String, Option<String>)> = c
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert!(envs.contains(&("PWD".into(), Some("/tmp".into()))));
        assert!(envs.contains(&("SIFR_CONFIG".into(), Some("/etc/x".into()))));
        assert!(envs.contains(&("HOME".into(), None)));
        // The suite's one default: no build cache.
        assert!(envs.contains(&(NO_BUILD_CACHE.0.into(), Some(NO_BUILD_CACHE.1.into()))));
        for (k, v) in &envs {
            if k != "SIFR_CONFIG"
                && k != NO_BUILD_CACHE.0
                && k != NO_REGISTRY_CHECK.0
                && v.is_some()
            {
                assert!(!k.starts_with("SIFR_") && !k.ends_with("_VISIBLE_DEVICES"));
            }
        }
    }
}
