//! `sifr instance start|stop|list` and the `instance://NAME` image of `exec`, `run` and `shell`.
//!
//! An instance is a container whose launcher runs in the background: it runs the image's
//! `%startscript` (if any) and then stays, keeping the container's namespaces, until `instance
//! stop` sends it SIGTERM. Its state is one JSON file per instance in
//! `~/.apptainer/instances/sifr/HOST/` (the launcher's pid, the image, the owner), next to the
//! start script's `NAME.out` and `NAME.err`. `instance://NAME` joins the namespaces of that pid
//! and runs the command there, with the image's environment. Like every launch, an instance
//! joins the node's holder of its image (`sifr_launch::share`), so instances and ranks of one image
//! share one attachment.
//!
//! Differences from Apptainer: no PID namespace by default (Apptainer adds one unless
//! `--sharens`); `--pid` is refused for now; no `instance stats` and no cgroups.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::action::ActionFlags;
use crate::report::Hinted;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Start a named instance of an image: its %startscript runs in the background, and
    /// `exec|run|shell instance://NAME` run commands in it.
    Start(Box<StartArgs>),
    /// Stop instances (SIGTERM, then SIGKILL with --force after the timeout).
    Stop(StopArgs),
    /// List the running instances of this user on this host.
    List(ListArgs),
    /// Show an instance's CPU, memory, block I/O and process counts (from its cgroup).
    Stats(super::instance_stats::StatsArgs),
}

// kept apart: unlike action::RunArgs, NAME sits between image and the start script's arguments.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub flags: ActionFlags,
    /// The container: a SIF file, a squashfs image or a sandbox directory.
    pub image: PathBuf,
    /// The instance's name: letters, digits, `.`, `_` and `-`.
    pub name: String,
    /// Arguments passed to the start script.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The instance to stop.
    #[arg(required_unless_present = "all")]
    pub name: Option<String>,
    /// Stop every instance of this user on this host.
    #[arg(short, long)]
    pub all: bool,
    /// The signal to send: a name (`TERM`, `SIGINT`, `KILL`) or a number.
    #[arg(short, long, default_value = "TERM")]
    pub signal: String,
    /// Seconds to wait for the instance to end.
    #[arg(short, long, default_value_t = 10)]
    pub timeout: u64,
    /// Kill what is left (SIGKILL to the instance's process group) after the timeout.
    #[arg(short = 'F', long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this instance.
    pub name: Option<String>,
    /// Print JSON.
    #[arg(short, long)]
    pub json: bool,
}

/// What `instance start` records.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    name: String,
    /// The launcher, which holds the container's namespaces.
    pid: i32,
    image: PathBuf,
    uid: u32,
    /// Seconds since the epoch.
    started: u64,
}

pub fn run(c: InstanceCommand, s: &Settings) -> anyhow::Result<u8> {
    match c {
        InstanceCommand::Start(a) => start(*a, s),
        InstanceCommand::Stop(a) => stop(&a),
        InstanceCommand::List(a) => list(&a),
        InstanceCommand::Stats(a) => super::instance_stats::run(&a, s),
    }
}

/// `~/.apptainer/instances/sifr/HOST`: the state and logs of this user's instances on this host
/// (the home directory may be shared by the cluster's nodes).
fn state_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .or_else(|| {
            sifr_sys::user::user_by_uid(sifr_sys::process::ids().0).map(|u| PathBuf::from(u.home))
        })
        .context("cannot find the home directory for the instances' state (HOME is not set)")?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    Ok(home.join(".apptainer/instances/sifr").join(host))
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Hinted::new(
            format!("invalid instance name `{name}`"),
            "use letters, digits, `.`, `_` and `-`, starting with a letter or digit",
        )
        .into())
    }
}

/// The state of `name`, if it is recorded and its launcher still runs; a record whose process
/// is gone is removed.
fn running(dir: &Path, name: &str) -> Option<State> {
    let path = dir.join(format!("{name}.json"));
    let st: State = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    if alive(&st) {
        Some(st)
    } else {
        let _ = std::fs::remove_file(&path);
        None
    }
}

/// Whether the recorded launcher still runs: the pid exists and is a sifr launcher of ours.
fn alive(st: &State) -> bool {
    let Ok(md) = std::fs::metadata(format!("/proc/{}", st.pid)) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt as _;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", st.pid)).unwrap_or_default();
    md.uid() == st.uid && cmdline.windows(b"instance".len()).any(|w| w == b"instance")
}

fn all_running(dir: &Path) -> Vec<State> {
    let mut v: Vec<State> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            running(dir, name.strip_suffix(".json")?)
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

fn start(a: StartArgs, s: &Settings) -> anyhow::Result<u8> {
    check_name(&a.name)?;
    // Their environment twins (`APPTAINER_PID=1`) count as the flags.
    let (f, _) = super::action_env::completed(&a.flags, &super::action::host_env())?;
    if f.pid || f.containall {
        return Err(Hinted::new(
            "`--pid` (and `--containall`, which implies it) is not supported with `instance start` yet",
            "start the instance without it; its processes then share the host's PID namespace",
        )
        .into());
    }
    let dir = state_dir()?;
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    if let Some(st) = running(&dir, &a.name) {
        return Err(Hinted::new(
            format!("instance `{}` already runs (pid {})", a.name, st.pid),
            format!("stop it first: sifr instance stop {}", a.name),
        )
        .into());
    }
    // Fail here, in the caller's terminal, on an image that cannot be used at all.
    if !a.image.is_dir() {
        sifr_launch::image::open(&a.image).map_err(super::action::image_error)?;
    }
    let log = |ext: &str| {
        let p = dir.join(format!("{}.{ext}", a.name));
        std::fs::File::create(&p)
            .with_context(|| format!("cannot create `{}`", p.display()))
            .map(|f| (p, f))
    };
    let (out_path, out) = log("out")?;
    let (err_path, err) = log("err")?;
    let (ready_r, ready_w) = sifr_sys::process::pipe().context("cannot create a pipe")?;
    use std::os::fd::AsRawFd as _;
    let ready_fd = ready_w.as_raw_fd();
    let keep = [ready_fd, out.as_raw_fd(), err.as_raw_fd()];
    let image = std::fs::canonicalize(&a.image).unwrap_or(a.image.clone());
    let state_path = dir.join(format!("{}.json", a.name));
    let name = a.name.clone();
    sifr_sys::process::spawn_daemon(&keep, || {
        let _ = sifr_sys::process::redirect_stdout(std::os::fd::AsFd::as_fd(&out));
        let _ = sifr_sys::process::redirect_stderr(std::os::fd::AsFd::as_fd(&err));
        let st = State {
            name: name.clone(),
            pid: std::process::id() as i32,
            image: image.clone(),
            uid: sifr_sys::process::ids().0,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        if write_state(&state_path, &st).is_err() {
            return 1;
        }
        let action = sifr_launch::Action::Start(a.args.clone());
        // Held to the end of this body: a launch that fails has written its error first.
        let ready = sifr_launch::plan::ReadyFd::new(ready_w);
        let r = super::action::launch_with(&a.flags, &a.image, action, s, |r| {
            r.ready_fd = Some(ready.clone());
            r.instance = Some(name.clone());
        });
        let _ = std::fs::remove_file(&state_path);
        match r {
            Ok(code) => i32::from(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                1
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
        let log = std::fs::read_to_string(&err_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(10).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        anyhow::bail!(
            "instance `{}` failed to start{}",
            a.name,
            if tail.is_empty() {
                String::new()
            } else {
                format!(":\n  {}", tail.join("\n  "))
            }
        );
    }
    if !s.quiet && !s.silent {
        eprintln!(
            "INFO:    instance `{}` started (logs: {}, {})",
            a.name,
            out_path.display(),
            err_path.display()
        );
    }
    Ok(crate::exit::OK)
}

/// Write `st` to `path` atomically (a sibling temporary file renamed over it).
fn write_state(path: &Path, st: &State) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(st).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

/// A signal by name (`TERM`, `SIGTERM`, any case) or number.
fn parse_signal(s: &str) -> anyhow::Result<i32> {
    sifr_sys::signal::number(s).ok_or_else(|| {
        Hinted::new(
            format!("invalid signal `{s}`"),
            "use a name such as TERM, INT, KILL, USR1, or a number",
        )
        .into()
    })
}

fn stop(a: &StopArgs) -> anyhow::Result<u8> {
    let sig = parse_signal(&a.signal)?;
    let dir = state_dir()?;
    let targets = if a.all {
        all_running(&dir)
    } else {
        let name = a.name.as_deref().unwrap_or_default();
        check_name(name)?;
        match running(&dir, name) {
            Some(st) => vec![st],
            None => {
                return Err(Hinted::new(
                    format!("no instance `{name}` runs"),
                    "`sifr instance list` shows the running instances",
                )
                .into());
            }
        }
    };
    let mut failed = Vec::new();
    for st in targets {
        let _ = sifr_sys::process::send_signal(st.pid, sig);
        let deadline = Instant::now() + Duration::from_secs(a.timeout);
        while alive(&st) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(&st) && a.force {
            // The launcher leads its own session and process group (a daemon): this reaches
            // the start script and what it started, unless they left the group.
            let _ = sifr_sys::process::send_signal(-st.pid, sifr_sys::signal::KILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while alive(&st) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if alive(&st) {
            failed.push(st.name.clone());
        } else {
            let _ = std::fs::remove_file(dir.join(format!("{}.json", st.name)));
            eprintln!("INFO:    instance `{}` stopped", st.name);
        }
    }
    if failed.is_empty() {
        Ok(crate::exit::OK)
    } else {
        Err(Hinted::new(
            format!(
                "instance `{}` did not stop within {} s",
                failed.join("`, `"),
                a.timeout
            ),
            "`sifr instance stop --force` kills it",
        )
        .into())
    }
}

fn list(a: &ListArgs) -> anyhow::Result<u8> {
    let dir = state_dir()?;
    let v: Vec<State> = all_running(&dir)
        .into_iter()
        .filter(|st| a.name.as_deref().is_none_or(|n| n == st.name))
        .collect();
    if a.json {
        let items: Vec<serde_json::Value> = v
            .iter()
            .map(|st| serde_json::json!({"instance": st.name, "pid": st.pid, "img": st.image}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "instances": items }))?
        );
    } else {
        println!("{:<16} {:<8} IMAGE", "INSTANCE NAME", "PID");
        for st in &v {
            println!("{:<16} {:<8} {}", st.name, st.pid, st.image.display());
        }
    }
    Ok(crate::exit::OK)
}

/// `exec|run|shell instance://NAME ...`: the command runs in the instance's namespaces.
pub fn enter(
    flags: &ActionFlags,
    name: &str,
    action: sifr_launch::Action,
    settings: &Settings,
) -> anyhow::Result<u8> {
    let dir = state_dir()?;
    let Some(st) = running(&dir, name) else {
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
