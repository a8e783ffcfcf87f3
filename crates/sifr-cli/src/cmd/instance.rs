//! `sifr instance start|run|stop|list` and the `instance://NAME` image of `exec`, `run` and
//! `shell`.
//!
//! An instance is a container whose launcher runs in the background: it runs the image's
//! `%startscript` (`instance start`) or its runscript (`instance run`), if any, and then stays,
//! keeping the container's namespaces, until `instance stop` signals it. Its record and logs are
//! described in `instance_state`; listing is `instance_list`, stopping `instance_stop`.
//! `instance://NAME` joins the namespaces of the launcher and runs the command there, with the
//! image's environment. Like every launch, an instance joins the node's holder of its image
//! (`sifr_launch::share`), so instances and ranks of one image share one attachment.
//!
//! Differences from Apptainer: no PID namespace by default (Apptainer adds one unless
//! `--sharens`); `--pid` is refused for now; DMTCP checkpoints are refused. `instance stats`
//! (`instance_stats.rs`) reads the cgroup an instance gets when the host can give one.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::action::ActionFlags;
pub use super::instance_list::ListArgs;
use super::instance_state::{self, Owner, State};
pub use super::instance_stop::StopArgs;
use crate::report::Hinted;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Start a named instance of an image: its %startscript runs in the background, and
    /// `exec|run|shell instance://NAME` run commands in it.
    Start(Box<StartArgs>),
    /// Start a named instance of an image that runs its runscript (as `run` does) in the
    /// background.
    Run(Box<StartArgs>),
    /// Stop instances: a signal (SIGINT unless --signal), then SIGKILL after the timeout.
    Stop(StopArgs),
    /// List the running instances of this user on this host.
    List(ListArgs),
    /// Show an instance's CPU, memory, block I/O and process counts (from its cgroup).
    Stats(super::instance_stats::StatsArgs),
}

// kept apart from action::RunArgs: NAME sits between the image and the script's arguments.
// Options stop at the image, as Apptainer's do: one positional takes the name and everything
// after it, whatever it looks like (`instance start img.sif web --port 80 -c x` gives the start
// script `--port 80 -c x`). clap stops parsing options only once the trailing positional has
// its first value; a separate NAME positional would leave `-h` or `-c` after the name to clap.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub flags: ActionFlags,
    #[command(flatten)]
    pub instance: InstanceFlags,
    /// The container: a SIF file, a squashfs image or a sandbox directory.
    pub image: PathBuf,
    /// The instance's name (letters, digits, `.`, `_` and `-`), then the arguments passed to the
    /// start script (or the runscript).
    #[arg(
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_names = ["NAME", "ARGS"]
    )]
    pub rest: Vec<String>,
}

impl StartArgs {
    /// The instance's name.
    pub fn name(&self) -> &str {
        &self.rest[0]
    }

    /// The script's arguments.
    pub fn args(&self) -> &[String] {
        &self.rest[1..]
    }
}

/// The flags of `instance start` and `instance run` that the other actions do not have.
#[derive(Debug, Clone, Default, Args)]
pub struct InstanceFlags {
    /// Write the instance's PID to this file (also APPTAINER_PID_FILE).
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Checkpoint the instance with DMTCP into this checkpoint (experimental in Apptainer; not
    /// supported by sifr) (also APPTAINER_DMTCP_LAUNCH).
    #[arg(long, value_name = "CHECKPOINT")]
    pub dmtcp_launch: Option<String>,
    /// Restart the instance from this DMTCP checkpoint (not supported by sifr) (also
    /// APPTAINER_DMTCP_RESTART).
    #[arg(long, value_name = "CHECKPOINT")]
    pub dmtcp_restart: Option<String>,
}

/// Which script an instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Start,
    Run,
}

pub fn run(c: InstanceCommand, s: &Settings) -> anyhow::Result<u8> {
    match c {
        InstanceCommand::Start(a) => start(*a, Script::Start, s),
        InstanceCommand::Run(a) => start(*a, Script::Run, s),
        InstanceCommand::Stop(a) => super::instance_stop::stop(a, s),
        InstanceCommand::List(a) => super::instance_list::list(a, s),
        InstanceCommand::Stats(a) => super::instance_stats::run(&a, s),
    }
}

/// Whose instances `list` or `stop` (`verb`) works on: `--user`'s, which only root may name
/// (Apptainer's check and message), else the caller's.
pub(crate) fn owner_for(user: Option<&str>, verb: &str, s: &Settings) -> anyhow::Result<Owner> {
    match user.filter(|u| !u.is_empty()) {
        None => Owner::current(s),
        Some(u) if sifr_sys::process::ids().0 == 0 => Owner::named(u, s),
        Some(_) => Err(Hinted::new(
            format!("only root user can {verb} user's instances"),
            format!("leave out `--user` to {verb} your own instances"),
        )
        .into()),
    }
}

/// A switch completed from its variable (`SIFR_`/`APPTAINER_`/`SINGULARITY_` + a suffix of
/// `keys`) when the command line left it off, as the action flags' twins are.
pub(crate) fn switch_twin(given: bool, flag: &str, keys: &[&str]) -> anyhow::Result<bool> {
    if given {
        return Ok(true);
    }
    let Some(hit) = crate::settings::lookup_env(keys, &crate::settings::ProcessEnv) else {
        return Ok(false);
    };
    if let Some(w) = &hit.warning {
        tracing::warn!("{w}");
    }
    crate::settings::parse_bool_text(&hit.text).ok_or_else(|| {
        Hinted::new(
            format!(
                "invalid value `{}` for `--{flag}` (from environment variable `{}`): expected a boolean",
                hit.text, hit.name
            ),
            format!("set it to 1 or 0, or unset `{}`", hit.name),
        )
        .into()
    })
}

/// A value from its variable when the command line left it out; a blank variable counts as
/// unset.
/// The variables of `instance start|run`'s own flags (not in the action flags' tables), by
/// long flag: Apptainer's `EnvKeys`.
pub const START_TWINS: &[(&str, &[&str])] = &[
    ("pid-file", &["PID_FILE"]),
    ("dmtcp-launch", &["DMTCP_LAUNCH"]),
    ("dmtcp-restart", &["DMTCP_RESTART"]),
];

pub(crate) fn text_twin(keys: &[&str]) -> Option<String> {
    let hit = crate::settings::lookup_env(keys, &crate::settings::ProcessEnv)?;
    if let Some(w) = &hit.warning {
        tracing::warn!("{w}");
    }
    Some(hit.text.trim().to_string()).filter(|t| !t.is_empty())
}

fn start(mut a: StartArgs, script: Script, s: &Settings) -> anyhow::Result<u8> {
    instance_state::check_name(a.name())?;
    a.instance.pid_file = a
        .instance
        .pid_file
        .or_else(|| text_twin(START_TWINS[0].1).map(PathBuf::from));
    a.instance.dmtcp_launch = a
        .instance
        .dmtcp_launch
        .or_else(|| text_twin(START_TWINS[1].1));
    a.instance.dmtcp_restart = a
        .instance
        .dmtcp_restart
        .or_else(|| text_twin(START_TWINS[2].1));
    // Their environment twins (`APPTAINER_PID=1`) count as the flags.
    let (f, _) = super::action_env::completed(&a.flags, &super::action::host_env())?;
    if f.pid || f.containall {
        return Err(Hinted::new(
            "`--pid` (and `--containall`, which implies it) is not supported with `instance start` yet",
            "start the instance without it; its processes then share the host's PID namespace",
        )
        .into());
    }
    // Root-only flags (`--boot`, `--keep-privs`) are refused before anything is created, as
    // Apptainer refuses them first.
    f.privs
        .request()
        .parse(sifr_sys::process::ids().0, true)
        .map_err(|e| super::action::request_error(e.into()))?;
    let owner = Owner::current(s)?;
    dmtcp(&a.instance, &owner)?;
    // The launcher runs in the caller's working directory, but the record must name the image
    // wherever `instance list` is run from.
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let dir = owner.state_dir();
    let log_dir = owner.log_dir();
    for d in [&dir, &log_dir] {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .with_context(|| format!("cannot create `{}`", d.display()))?;
    }
    if let Some(st) = owner.running(a.name()) {
        return Err(Hinted::new(
            format!("instance {} already exists (pid {})", a.name(), st.pid),
            format!("stop it first: sifr instance stop {}", a.name()),
        )
        .into());
    }
    // An image URI is fetched here, in the caller's terminal, once the name is known to be
    // free; the instance runs the SIF (a `--disable-cache` copy is removed once the instance
    // holds it open).
    let fetched = super::image_uri::fetch(&a.image, &f.remote, s)?;
    let image = match &fetched {
        Some(f) => f.path.clone(),
        None => cwd.join(&a.image),
    };
    // Fail here, in the caller's terminal, on an image that cannot be used at all.
    if !image.is_dir() {
        sifr_launch::image::open(&image).map_err(super::action::image_error)?;
    }
    // Appended to, as Apptainer does: the logs of earlier instances of the name stay.
    let log = |ext: &str| {
        let p = log_dir.join(format!("{}.{ext}", a.name()));
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&p)
            .with_context(|| format!("cannot open `{}`", p.display()))
            .map(|f| (p, f))
    };
    let (out_path, out) = log("out")?;
    let (err_path, err) = log("err")?;
    let err_start = err.metadata().map_or(0, |m| m.len());
    let (ready_r, ready_w) = sifr_sys::process::pipe().context("cannot create a pipe")?;
    use std::os::fd::AsRawFd as _;
    let keep = [ready_w.as_raw_fd(), out.as_raw_fd(), err.as_raw_fd()];
    let state = State {
        name: a.name().to_string(),
        pid: 0,
        image: std::fs::canonicalize(&image).unwrap_or_else(|_| image.clone()),
        uid: sifr_sys::process::ids().0,
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        start_ticks: None,
        ip: String::new(),
        log_out: out_path.clone(),
        log_err: err_path.clone(),
    };
    let state_path = dir.join(format!("{}.json", a.name()));
    let action = match script {
        Script::Start => sifr_launch::Action::Start(a.args().to_vec()),
        Script::Run => sifr_launch::Action::InstanceRun(a.args().to_vec()),
    };
    sifr_sys::process::spawn_daemon(&keep, || {
        let _ = sifr_sys::process::redirect_stdout(std::os::fd::AsFd::as_fd(&out));
        let _ = sifr_sys::process::redirect_stderr(std::os::fd::AsFd::as_fd(&err));
        // The daemon starts in `/`; the container starts where the caller is, and the flags'
        // relative paths are the caller's.
        if let Err(e) = std::env::set_current_dir(&cwd) {
            eprintln!("FATAL:   cannot enter `{}`: {e}", cwd.display());
            return 255;
        }
        let pid = std::process::id() as i32;
        // The daemon shares the group of the intermediate process it forked from; a group
        // of its own is what `instance stop` kills after its timeout.
        let _ = sifr_sys::process::own_process_group(0);
        let st = State {
            pid,
            start_ticks: instance_state::start_ticks(pid),
            ..state.clone()
        };
        if let Err(e) = instance_state::write_state(&state_path, &st) {
            eprintln!("FATAL:   cannot write `{}`: {e}", state_path.display());
            return 255;
        }
        // Held to the end of this body: a launch that fails has written its error first.
        let ready = sifr_launch::plan::ReadyFd::new(ready_w);
        let name = a.name().to_string();
        let r = super::action::launch_with(&a.flags, &image, action, s, |r| {
            r.ready_fd = Some(ready.clone());
            r.instance = Some(name);
        });
        let _ = std::fs::remove_file(&state_path);
        match r {
            Ok(code) => i32::from(code),
            Err(e) => {
                eprintln!(
                    "{}",
                    crate::report::render(&e, crate::report::Colour::Plain)
                );
                i32::from(crate::report::exit_code(&e))
            }
        }
    })
    .context("cannot start the instance's launcher")?;
    // `ready_w` went with the closure, dropped unrun here: only the launcher holds it now.
    let ready = sifr_sys::ipc::wait_readable(
        &[std::os::fd::AsFd::as_fd(&ready_r)],
        Some(Duration::from_secs(120)),
    )
    .context("cannot wait for the instance")?;
    let mut byte = [0u8; 1];
    let started = ready[0]
        && std::fs::File::from(ready_r)
            .read(&mut byte)
            .is_ok_and(|n| n == 1);
    if !started {
        anyhow::bail!(
            "instance `{}` failed to start{}",
            a.name(),
            log_tail(&err_path, err_start)
        );
    }
    if !s.quiet && !s.silent {
        eprintln!("INFO:    instance started successfully");
    }
    if let Some(file) = &a.instance.pid_file {
        match owner.running(a.name()) {
            Some(st) => {
                if let Err(e) = write_pid_file(file, st.pid) {
                    tracing::warn!("Failed to write pid file: {e:#}");
                }
            }
            None => tracing::warn!("Failed to write pid file: the instance is gone"),
        }
    }
    Ok(crate::exit::OK)
}

/// The last lines the launcher wrote to its stderr log from `from` on, indented for an error.
fn log_tail(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        use std::io::Seek as _;
        let _ = f.seek(std::io::SeekFrom::Start(from));
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(10)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(":\n  {}", tail.join("\n  "))
    }
}

/// `--pid-file`: the pid and a newline, in a file created or truncated, never through a
/// symbolic link (Apptainer's `O_NOFOLLOW`).
fn write_pid_file(path: &Path, pid: i32) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("could not create pid file `{}`", path.display()))?;
    writeln!(f, "{pid}").with_context(|| format!("could not write pid file `{}`", path.display()))
}

/// `open(2)`'s `O_NOFOLLOW` for this architecture (its value differs on arm64).
const O_NOFOLLOW: i32 = sifr_sys::fs::OFlags::NOFOLLOW.bits() as i32;

/// `--dmtcp-launch`/`--dmtcp-restart`: what Apptainer does where DMTCP cannot work. It warns
/// when `dmtcp_launch` is not on `PATH`, needs the checkpoint directory `checkpoint create` made
/// (`<configdir>/checkpoint/dmtcp/NAME`), and its instance then fails at the start because
/// `dmtcp_launch` is not there to run; sifr, which cannot inject DMTCP, fails before starting.
fn dmtcp(f: &InstanceFlags, owner: &Owner) -> anyhow::Result<()> {
    let (flag, name) = match (&f.dmtcp_restart, &f.dmtcp_launch) {
        (Some(n), _) => ("--dmtcp-restart", n),
        (None, Some(n)) => ("--dmtcp-launch", n),
        (None, None) => return Ok(()),
    };
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("dmtcp_launch").is_file()));
    if !on_path {
        tracing::warn!(
            "Unable to locate a dmtcp installation, some functionality may not work as expected. Please ensure a dmtcp installation exists or install it following instructions here: https://github.com/dmtcp/dmtcp/blob/master/INSTALL.md"
        );
    }
    if name.is_empty() {
        anyhow::bail!("checkpoint name must not be empty");
    }
    let dir = owner.config_dir.join("checkpoint/dmtcp").join(name);
    if !dir.is_dir() {
        return Err(Hinted::new(
            format!(
                "`{flag}`: no checkpoint `{name}` (`{}` does not exist)",
                dir.display()
            ),
            "`apptainer checkpoint create NAME` creates one; sifr does not support DMTCP",
        )
        .into());
    }
    Err(Hinted::new(
        format!("`{flag}`: DMTCP checkpointing is not supported by sifr"),
        "start the instance without it, or with Apptainer",
    )
    .into())
}

/// `exec|run|shell instance://NAME ...`: the command runs in the instance's namespaces.
pub fn enter(
    flags: &ActionFlags,
    name: &str,
    action: sifr_launch::Action,
    settings: &Settings,
) -> anyhow::Result<u8> {
    instance_state::check_name(name)?;
    let Some(st) = Owner::current(settings)?.running(name) else {
        return Err(Hinted::new(
            format!("no instance `{name}` runs"),
            "`sifr instance list` shows the running instances; `sifr instance start IMAGE NAME` starts one",
        )
        .into());
    };
    let env = super::action::host_env();
    let mut req = super::action::request(flags, settings, &st.image, action, &env)?;
    req.instance = Some(st.name.clone());
    let plan = sifr_launch::plan_in_container(req, env).map_err(super::action::request_error)?;
    super::action::finish(
        sifr_launch::exec::run_in_container(&plan, st.pid),
        &st.image,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct T {
        #[command(subcommand)]
        c: InstanceCommand,
    }

    fn start_args(args: &[&str]) -> Result<StartArgs, clap::Error> {
        let t = T::try_parse_from(["instance", "start"].iter().chain(args))?;
        match t.c {
            InstanceCommand::Start(a) => Ok(*a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_stop_at_the_image_and_everything_after_the_name_reaches_the_script() {
        let a = start_args(&["-c", "img.sif", "web", "--foo", "-c", "x", "--bind", "y"]).unwrap();
        assert!(a.flags.contain);
        assert_eq!(a.image, Path::new("img.sif"));
        assert_eq!(a.name(), "web");
        assert_eq!(a.args(), ["--foo", "-c", "x", "--bind", "y"]);
        let a = start_args(&["img.sif", "web", "-h", "--help", "--version"]).unwrap();
        assert!(!a.flags.contain);
        assert_eq!(a.args(), ["-h", "--help", "--version"]);
        let a = start_args(&["--pid-file", "p", "img.sif", "web", "--", "a"]).unwrap();
        assert_eq!(a.instance.pid_file.as_deref(), Some(Path::new("p")));
        assert_eq!(a.args(), ["--", "a"]);
        let a = start_args(&["img.sif", "web", "-c", "-p"]).unwrap();
        assert!(!a.flags.contain && !a.flags.pid);
        assert_eq!(a.args(), ["-c", "-p"]);
        let a = start_args(&["img.sif", "web"]).unwrap();
        assert!(a.args().is_empty());
        assert!(start_args(&["--no-such-flag", "img.sif", "web"]).is_err());
        assert!(start_args(&["img.sif"]).is_err());
    }

    #[test]
    fn instance_run_takes_the_same_arguments() {
        let t = T::try_parse_from([
            "instance",
            "run",
            "--dmtcp-launch",
            "ck",
            "img.sif",
            "web",
            "-x",
        ])
        .unwrap();
        let InstanceCommand::Run(a) = t.c else {
            panic!("not run")
        };
        assert_eq!(a.instance.dmtcp_launch.as_deref(), Some("ck"));
        assert_eq!(a.args(), ["-x"]);
    }

    #[test]
    fn stop_and_list_take_apptainers_flags() {
        let t = T::try_parse_from([
            "instance", "stop", "-a", "-F", "-s", "USR1", "-t", "3", "-u", "bob", "web*",
        ])
        .unwrap();
        let InstanceCommand::Stop(a) = t.c else {
            panic!("not stop")
        };
        assert!(a.all && a.force);
        assert_eq!(a.signal.as_deref(), Some("USR1"));
        assert_eq!(a.timeout, 3);
        assert_eq!(a.user.as_deref(), Some("bob"));
        assert_eq!(a.name.as_deref(), Some("web*"));
        let t =
            T::try_parse_from(["instance", "list", "-j", "-l", "-a", "-u", "bob", "w?b"]).unwrap();
        let InstanceCommand::List(a) = t.c else {
            panic!("not list")
        };
        assert!(a.json && a.logs && a.all);
        assert_eq!(a.user.as_deref(), Some("bob"));
        assert_eq!(a.name.as_deref(), Some("w?b"));
    }

    #[test]
    fn pid_files_hold_the_pid_and_refuse_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pid");
        std::fs::write(&p, "old content that is longer\n").unwrap();
        write_pid_file(&p, 4242).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "4242\n");
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(write_pid_file(&link, 1).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "4242\n");
    }

    #[test]
    fn the_log_tail_is_what_the_launcher_wrote_this_time() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("web.err");
        std::fs::write(&p, "old run\n").unwrap();
        let from = 8;
        assert_eq!(log_tail(&p, from), "");
        std::fs::write(&p, "old run\nerror: no image\n").unwrap();
        assert_eq!(log_tail(&p, from), ":\n  error: no image");
    }
}
