//! Running `%setup` on the host and `%post`/`%test` in the container being built, with
//! Apptainer's shell conventions: `/bin/sh -ex SCRIPT`, or `/bin/sh -ex -c "INTERP SCRIPT"`
//! for a section written `%post -c INTERP` (where, as in Apptainer, the inner interpreter does
//! not get `-e`).
//!
//! The scripts' standard error passes through a [`Tracer`] that hands every byte on and keeps
//! the last `+ command` line the shell traced, so a failure can name the command that failed.

use std::fmt;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use sifr_deffile::Script;

use super::{DefBuildError, DefBuildOptions};

/// A section that runs a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Setup,
    Post,
    Test,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Setup => "setup",
            Section::Post => "post",
            Section::Test => "test",
        })
    }
}

/// Where `%post` is written inside the root (removed afterwards), as Apptainer names it.
const POST_SCRIPT: &str = ".post.script";

/// The argv for running `script_path` as `section` with its header arguments.
pub(crate) fn shell_argv(script: Option<&Script>, script_path: &str) -> Vec<String> {
    let words = script.map(|s| s.arg_words()).unwrap_or_default();
    match words.iter().position(|w| w == "-c") {
        Some(i) if i + 1 < words.len() => vec![
            "/bin/sh".into(),
            "-ex".into(),
            "-c".into(),
            format!("{} {script_path}", words[i + 1..].join(" ")),
        ],
        _ => vec!["/bin/sh".into(), "-ex".into(), script_path.into()],
    }
}

/// Hands output on and remembers the last line the shell traced (`+ cmd`, `++ cmd`).
pub(crate) struct Tracer<'a> {
    out: &'a mut dyn FnMut(&[u8]),
    partial: Vec<u8>,
    last: Option<String>,
}

impl<'a> Tracer<'a> {
    pub(crate) fn new(out: &'a mut dyn FnMut(&[u8])) -> Self {
        Tracer {
            out,
            partial: Vec::new(),
            last: None,
        }
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        (self.out)(bytes);
        self.partial.extend_from_slice(bytes);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            self.note(&line[..line.len() - 1]);
        }
        // A runaway line without newlines must not grow without bound.
        if self.partial.len() > 1 << 16 {
            self.partial.clear();
        }
    }

    fn note(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let stripped = text.trim_start_matches('+');
        if stripped.len() < text.len() && stripped.starts_with(' ') {
            let cmd = stripped.trim();
            if !cmd.is_empty() {
                let mut c = cmd.to_string();
                if c.len() > 200 {
                    c.truncate(200);
                    c.push_str("...");
                }
                self.last = Some(c);
            }
        }
    }

    pub(crate) fn last(mut self) -> Option<String> {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.note(&rest);
        }
        self.last
    }
}

pub(super) struct Runner<'a> {
    pub stage: &'a str,
    pub rootfs: &'a Path,
    pub work: &'a Path,
    pub opts: &'a DefBuildOptions,
    pub hint: Option<String>,
}

impl Runner<'_> {
    fn io(&self, section: Section, e: std::io::Error) -> DefBuildError {
        DefBuildError::Run {
            stage: self.stage.to_string(),
            section,
            source: Box::new(e),
        }
    }

    fn failed(
        &self,
        section: Section,
        line: usize,
        status: i32,
        command: Option<String>,
    ) -> DefBuildError {
        DefBuildError::Script {
            stage: self.stage.to_string(),
            section,
            line,
            status,
            command,
            hint: if section == Section::Post {
                self.hint.clone()
            } else {
                None
            },
        }
    }

    /// `%setup`: on the host, with the host environment plus `APPTAINER_ROOTFS` (and the
    /// `SINGULARITY_` twin) and `APPTAINER_ENVIRONMENT` pointing into the root.
    pub fn host_setup(
        &self,
        script: &Script,
        on_output: &mut dyn FnMut(&[u8]),
    ) -> Result<(), DefBuildError> {
        let path = self.work.join("setup.script");
        std::fs::write(&path, &script.body).map_err(|e| self.io(Section::Setup, e))?;
        let argv = shell_argv(Some(script), &path.to_string_lossy());
        let env_file = self.rootfs.join(".singularity.d/env/91-environment.sh");
        let mut cmd = Command::new(&argv[0]);
        // The shell dies with the build (what it started does not: see `tie_to_build`).
        sifr_launch::buildrun::tie_to_build(&mut cmd);
        let mut child = cmd
            .args(&argv[1..])
            .current_dir(&self.opts.context)
            .env("APPTAINER_ROOTFS", self.rootfs)
            .env("SINGULARITY_ROOTFS", self.rootfs)
            .env("APPTAINER_ENVIRONMENT", &env_file)
            .env("SINGULARITY_ENVIRONMENT", &env_file)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| self.io(Section::Setup, e))?;
        sifr_launch::buildrun::set_step_group(child.id());
        let mut tracer = Tracer::new(on_output);
        if let Some(mut err) = child.stderr.take() {
            let mut buf = [0u8; 8192];
            loop {
                match err.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => tracer.feed(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        let status = child.wait();
        sifr_launch::buildrun::set_step_group(0);
        let status = status.map_err(|e| self.io(Section::Setup, e))?;
        let code = status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        });
        if code != 0 {
            return Err(self.failed(Section::Setup, script.line, code, tracer.last()));
        }
        Ok(())
    }

    fn in_container(
        &self,
        section: Section,
        line: usize,
        action: sifr_launch::Action,
        writable: bool,
        env: Vec<(String, String)>,
        on_output: &mut dyn FnMut(&[u8]),
    ) -> Result<(), DefBuildError> {
        let run = sifr_launch::buildrun::SectionRun {
            rootfs: self.rootfs.to_path_buf(),
            action,
            env,
            writable,
            writable_tmpfs: self.opts.writable_tmpfs,
            scratch: std::path::absolute(self.work.join("section-tmp"))
                .unwrap_or_else(|_| self.work.join("section-tmp")),
            binds: self.opts.binds.clone(),
            gpu: self.opts.gpu.clone(),
            host_env: self.opts.host_env.clone(),
        };
        let mut tracer = Tracer::new(on_output);
        let outcome =
            sifr_launch::buildrun::run_section(&run, &mut |b| tracer.feed(b)).map_err(|e| {
                DefBuildError::Run {
                    stage: self.stage.to_string(),
                    section,
                    source: Box::new(e),
                }
            })?;
        if outcome.status != 0 {
            return Err(self.failed(section, line, outcome.status, tracer.last()));
        }
        Ok(())
    }

    /// `%post` (with the `%appinstall` scripts appended) in the container, writable.
    pub fn post(
        &self,
        script: Option<&Script>,
        apps: &str,
        on_output: &mut dyn FnMut(&[u8]),
    ) -> Result<(), DefBuildError> {
        let body = format!("{}{apps}", script.map_or("", |s| s.body.as_str()));
        write_in_root(self.rootfs, POST_SCRIPT, body.as_bytes())
            .map_err(|e| self.io(Section::Post, e))?;
        let argv = shell_argv(script, &format!("/{POST_SCRIPT}"));
        let mut env: Vec<(String, String)> = Vec::new();
        for prefix in ["APPTAINER", "SINGULARITY"] {
            env.push((
                format!("{prefix}_ENVIRONMENT"),
                "/.singularity.d/env/91-environment.sh".into(),
            ));
            env.push((format!("{prefix}_LABELS"), "/.build.labels".into()));
        }
        env.extend(self.opts.post_env.iter().cloned());
        let result = self.in_container(
            Section::Post,
            script.map_or(0, |s| s.line),
            sifr_launch::Action::Exec(argv),
            true,
            env,
            on_output,
        );
        let _ = remove_in_root(self.rootfs, POST_SCRIPT);
        result
    }

    /// `%test` in the container, read-only, through the image's own test script.
    pub fn test(&self, line: usize, on_output: &mut dyn FnMut(&[u8])) -> Result<(), DefBuildError> {
        self.in_container(
            Section::Test,
            line,
            sifr_launch::Action::Test(Vec::new()),
            false,
            Vec::new(),
            on_output,
        )
    }
}

/// Write `name` at the top of `root`, replacing (never following) whatever is there.
fn write_in_root(root: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = rustix::fs::openat(
        &dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o755),
    )?;
    std::io::Write::write_all(&mut std::fs::File::from(fd), data)
}

fn remove_in_root(root: &Path, name: &str) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(rustix::fs::unlinkat(&dir, name, AtFlags::empty())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(args: &str) -> Script {
        Script {
            args: args.into(),
            body: "true\n".into(),
            line: 3,
        }
    }

    #[test]
    fn sections_run_under_sh_ex_or_wrapped_for_an_interpreter() {
        assert_eq!(
            shell_argv(Some(&script("")), "/.post.script"),
            ["/bin/sh", "-ex", "/.post.script"]
        );
        assert_eq!(
            shell_argv(Some(&script("-c /bin/bash # comment")), "/.post.script"),
            ["/bin/sh", "-ex", "-c", "/bin/bash /.post.script"]
        );
    }

    #[test]
    fn the_tracer_keeps_the_last_traced_command_across_chunks() {
        let mut seen = Vec::new();
        let mut sink = |b: &[u8]| seen.extend_from_slice(b);
        let mut t = Tracer::new(&mut sink);
        t.feed(b"+ apt-get update\nHit:1 x\n+ pip ins");
        t.feed(b"tall -r req.txt\nERROR: no such package\n");
        assert_eq!(t.last().as_deref(), Some("pip install -r req.txt"));
        assert!(seen.ends_with(b"no such package\n"));
    }
}
