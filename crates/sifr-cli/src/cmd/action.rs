//! `sifr exec|run|shell|test IMAGE ...`: the container actions, for sandbox directories, SIF
//! files and bare squashfs images.
//!
//! Parses the action flags into `sifr_launch::Options`, gathers host facts, opens the image and
//! chooses how to attach it (`sifr_launch::image`), builds the plan and hands both to
//! `sifr_launch::run_image`, which enters the container's namespaces in *this* process: nothing here
//! may start a thread. The command's exit status becomes sifr's. A costly attach choice
//! (extraction when FUSE is unusable) is announced with one `notice:` line on stderr.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use crate::report::{AlreadyReported, Hinted};
use crate::settings::Settings;

/// Flags shared by every action (Apptainer's action flags, the subset supported so far). Each
/// has an environment twin, `APPTAINER_PID` for `--pid` and so on (`action_env::TWINS`).
#[derive(Debug, Clone, Args)]
pub struct ActionFlags {
    /// Bind a host path: `src[:dst[:ro|rw]]`, repeatable or comma-separated (also APPTAINER_BIND).
    #[arg(short = 'B', long = "bind", value_name = "SPEC")]
    pub bind: Vec<String>,
    /// Do not pass the host environment (TERM and proxy variables excepted).
    #[arg(short = 'e', long)]
    pub cleanenv: bool,
    /// Set a variable in the container, `NAME=VALUE` (repeatable; beats APPTAINERENV_NAME).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Use a minimal /dev and empty private /tmp, /var/tmp and home; do not bind the cwd.
    #[arg(short = 'c', long)]
    pub contain: bool,
    /// Do not mount the home directory.
    #[arg(long)]
    pub no_home: bool,
    /// Home directory to mount, `src[:dst]` (default: the user's home at the same path).
    #[arg(short = 'H', long, value_name = "SRC[:DST]")]
    pub home: Option<String>,
    /// Working directory inside the container.
    #[arg(long = "pwd", visible_alias = "cwd", value_name = "DIR")]
    pub pwd: Option<PathBuf>,
    /// Write into the image itself (sandbox directories only).
    #[arg(short = 'w', long)]
    pub writable: bool,
    /// Let the command write anywhere; the changes go to a tmpfs and vanish at exit.
    #[arg(long)]
    pub writable_tmpfs: bool,
    /// Keep the container's changes in DIR (an overlay upper layer over the image).
    #[arg(short = 'o', long, value_name = "DIR")]
    pub overlay: Option<PathBuf>,
    /// Run in a new PID namespace (the command is the child of a small init, PID 1).
    #[arg(short = 'p', long)]
    pub pid: bool,
    /// Run in a new IPC namespace.
    #[arg(short = 'i', long)]
    pub ipc: bool,
    /// Run in a new UTS namespace (own host name).
    #[arg(long)]
    pub uts: bool,
    /// Set the container's host name (implies --uts).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// --contain plus --cleanenv and new PID and IPC namespaces.
    #[arg(short = 'C', long)]
    pub containall: bool,
    /// With --contain, keep /tmp, /var/tmp and home in DIR/tmp, DIR/var_tmp and DIR/home.
    #[arg(short = 'W', long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Leave out default mounts: proc, sys, dev, devpts, home, tmp, hostfs, cwd, bind-paths, or
    /// the destination of a bind path entry (comma-separated, repeatable).
    #[arg(long = "no-mount", value_name = "LIST")]
    pub no_mount: Vec<String>,
    /// Docker-style bind: `type=bind,source=SRC,destination=DST[,readonly]` (repeatable).
    #[arg(long = "mount", value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Set variables from a file of `NAME=VALUE` lines (repeatable; later files win, --env wins).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Run as root inside a user namespace (with the subordinate ids of /etc/subuid and
    /// /etc/subgid when there is a range; the home directory is mounted at /root).
    #[arg(short = 'f', long)]
    pub fakeroot: bool,
    /// Run in a user namespace even as root (the image is mounted with FUSE or extracted).
    #[arg(short = 'u', long)]
    pub userns: bool,
    /// When the program needs CPU features this host lacks: warn, error (do not start it) or
    /// off (default: the `isa_check` setting, else warn).
    #[arg(long, value_name = "MODE")]
    pub isa_check: Option<super::isa_check::IsaCheck>,
    #[command(flatten)]
    pub gpu: GpuFlags,
}

/// `--nv`, `--nvccli`, `--rocm`: shared by the actions and `build`.
#[derive(Debug, Clone, Default, Args)]
pub struct GpuFlags {
    /// Bring the host's NVIDIA driver in: libraries into /.singularity.d/libs, nvidia-smi and
    /// friends into /usr/bin, vendor files, /dev/nvidia* under --contain (also APPTAINER_NV).
    #[arg(long)]
    pub nv: bool,
    /// Like --nv, with the driver's file list from nvidia-container-cli.
    #[arg(long)]
    pub nvccli: bool,
    /// Bring the host's AMD GPU driver in: its libraries and programs, /dev/kfd and /dev/dri
    /// under --contain (also APPTAINER_ROCM).
    #[arg(long)]
    pub rocm: bool,
}

impl GpuFlags {
    /// Flags combined with the settings (either turns a vendor on).
    pub fn request(&self, s: &Settings) -> sifr_launch::gpu::Request {
        sifr_launch::gpu::Request {
            nvidia: self.nv || s.nv,
            nvccli: self.nvccli || s.nvccli,
            rocm: self.rocm || s.rocm,
            config_dir: s.config_dir.clone(),
        }
    }

    /// Look at the host for the GPUs asked for, warning about anything a working driver would
    /// have had. Must run before any namespace change.
    pub fn discover(
        &self,
        s: &Settings,
        host_env: &[(String, String)],
        contain: bool,
    ) -> anyhow::Result<Vec<sifr_launch::gpu::Found>> {
        let req = self.request(s);
        if !req.any() {
            return Ok(Vec::new());
        }
        let found = sifr_launch::gpu::discover(&req, host_env, contain)?;
        for f in &found {
            for w in &f.warnings {
                tracing::warn!("{}: {w}", f.vendor.flag());
            }
        }
        Ok(found)
    }
}

/// `sifr exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub flags: ActionFlags,
    /// The container: a SIF file, a squashfs image or a sandbox directory.
    pub image: PathBuf,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

/// `sifr run` and `sifr test`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub flags: ActionFlags,
    /// The container: a SIF file, a squashfs image or a sandbox directory.
    pub image: PathBuf,
    /// Arguments passed to the runscript (or test script).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

/// `sifr shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub flags: ActionFlags,
    /// The container: a SIF file, a squashfs image or a sandbox directory.
    pub image: PathBuf,
}

pub fn exec(a: ExecArgs, s: &Settings) -> anyhow::Result<u8> {
    launch_action(&a.flags, &a.image, sifr_launch::Action::Exec(a.command), s)
}

pub fn run(a: RunArgs, s: &Settings) -> anyhow::Result<u8> {
    launch_action(&a.flags, &a.image, sifr_launch::Action::Run(a.args), s)
}

pub fn test(a: RunArgs, s: &Settings) -> anyhow::Result<u8> {
    launch_action(&a.flags, &a.image, sifr_launch::Action::Test(a.args), s)
}

pub fn shell(a: ShellArgs, s: &Settings) -> anyhow::Result<u8> {
    launch_action(&a.flags, &a.image, sifr_launch::Action::Shell, s)
}

/// The host environment as UTF-8 pairs (others are not forwarded: values are evaluated as text).
pub(crate) fn host_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

pub(crate) fn options(
    flags: &ActionFlags,
    settings: &Settings,
    image: &Path,
    host_env: &[(String, String)],
) -> anyhow::Result<sifr_launch::Options> {
    // The flags' environment twins (`APPTAINER_PID`, ...) fill in what the command line left out.
    let (flags, twins) = super::action_env::completed(flags, host_env)?;
    for w in &twins.warnings {
        tracing::warn!("{w}");
    }
    for (flag, var) in twins.sources() {
        tracing::debug!("--{flag} from environment variable `{var}`");
    }
    let flags = &flags;
    let mut binds = Vec::new();
    for spec in &flags.bind {
        binds.extend(sifr_launch::bind::parse_list(spec).map_err(bind_error)?);
    }
    // `APPTAINER_BIND` and friends (resolved with the usual precedence) add to `-B`.
    let origin = match settings.get("bind").map(|r| &r.source) {
        Some(crate::settings::Source::Env(name)) => format!("environment variable `{name}`"),
        Some(crate::settings::Source::ConfigFile(p)) => format!("config file `{}`", p.display()),
        _ => "settings".to_string(),
    };
    for spec in &settings.bind {
        binds.extend(
            sifr_launch::bind::parse_list(spec)
                .map_err(bind_error)
                .with_context(|| format!("in {origin}"))?,
        );
    }
    let mut kv = Vec::new();
    for e in &flags.env {
        let Some((k, v)) = e.split_once('=') else {
            return Err(Hinted::new(
                format!("invalid `--env` value `{e}`"),
                "use `--env NAME=VALUE`",
            )
            .into());
        };
        kv.push((k.to_string(), v.to_string()));
    }
    // A spec may hold several mounts, one a line, as Apptainer's does (and `APPTAINER_MOUNT`).
    for (i, spec) in flags.mount.iter().enumerate() {
        for line in spec.lines().filter(|l| !l.trim().is_empty()) {
            let bind = sifr_launch::bind::parse_mount(line.trim()).map_err(bind_error);
            binds.push(twins.named("mount", i, bind)?);
        }
    }
    let mut no_mount = Vec::new();
    for (i, v) in flags.no_mount.iter().enumerate() {
        let list = sifr_launch::nomount::parse_list(v)
            .map_err(|e| Hinted::new(e.to_string(), e.hint()).into());
        no_mount.extend(twins.named("no-mount", i, list)?);
    }
    let mut files = Vec::new();
    for (i, path) in flags.env_file.iter().enumerate() {
        let file = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read environment file `{}`", path.display()))
            .and_then(|text| {
                sifr_launch::envfile::evaluate(path, &text, host_env, image)
                    .map_err(|e| Hinted::new(e.to_string(), e.hint()).into())
            });
        files.push(twins.named("env-file", i, file)?);
    }
    let home = flags
        .home
        .as_deref()
        .map(|h| {
            twins.named(
                "home",
                0,
                sifr_launch::plan::HomeSpec::parse(h).map_err(Into::into),
            )
        })
        .transpose()?;
    // Relative paths are taken from the current directory here, at the edge, as Apptainer does.
    let absolute = |p: &Option<PathBuf>, flag: &str| -> anyhow::Result<Option<PathBuf>> {
        p.as_deref()
            .map(|p| {
                std::path::absolute(p)
                    .with_context(|| format!("invalid `{flag}` value `{}`", p.display()))
            })
            .transpose()
    };
    let mut opts = sifr_launch::Options {
        binds,
        cleanenv: flags.cleanenv,
        env: kv,
        contain: flags.contain,
        no_home: flags.no_home,
        home,
        cwd: flags.pwd.clone(),
        writable: flags.writable,
        pid: flags.pid,
        ipc: flags.ipc,
        uts: flags.uts,
        hostname: flags.hostname.clone(),
        no_mount,
        workdir: absolute(&flags.workdir, "--workdir")?,
        writable_tmpfs: flags.writable_tmpfs,
        session_mib: Some(settings.tmpfs_size_mib),
        env_file: sifr_launch::envfile::merge(files),
        overlay: absolute(&flags.overlay, "--overlay")?,
        fakeroot: flags.fakeroot,
        userns: flags.userns,
        share_idle: settings.share.then_some(settings.share_idle),
        ready_fd: None,
    };
    if flags.containall {
        opts.contain_all();
    }
    Ok(opts)
}

fn bind_error(e: sifr_launch::bind::BindError) -> anyhow::Error {
    match e.hint() {
        Some(h) => Hinted::new(e.to_string(), h).into(),
        None => e.into(),
    }
}

pub(crate) fn image_error(e: sifr_launch::image::ImageError) -> anyhow::Error {
    match e.hint() {
        Some(h) => Hinted::new(e.to_string(), h).into(),
        None => e.into(),
    }
}

fn launch_action(
    flags: &ActionFlags,
    image: &Path,
    action: sifr_launch::Action,
    settings: &Settings,
) -> anyhow::Result<u8> {
    if let Some(name) = image.to_str().and_then(|s| s.strip_prefix("instance://")) {
        return super::instance::enter(flags, name, action, settings);
    }
    launch_with(flags, image, action, settings, |_| {})
}

/// A launch of `image`, with `tweak` applied to the options first (`instance start` sets its
/// readiness fd and name there).
pub(crate) fn launch_with(
    flags: &ActionFlags,
    image: &Path,
    action: sifr_launch::Action,
    settings: &Settings,
    tweak: impl FnOnce(&mut sifr_launch::Options),
) -> anyhow::Result<u8> {
    let env = host_env();
    let mut opts = options(flags, settings, image, &env)?;
    tweak(&mut opts);
    let gpu = flags.gpu.discover(settings, &env, opts.contain)?;
    let mut host = sifr_launch::host::gather(env).context("cannot read the current directory")?;
    host.gpu = gpu;
    if let Some((plan, joined)) = join_holder(&opts, image, &action, &host)? {
        // The launch that attached the image on this node checked it (format, architecture,
        // CPU features); this one does not even open the file.
        tracing::debug!(
            "launch plan:\n{}attach: joined the node's holder",
            plan.render()
        );
        let path = joined.image.path.clone();
        return finish(sifr_launch::exec::run_joined(&plan, joined), &path);
    }
    let img = sifr_launch::image::open(image).map_err(image_error)?;
    super::isa_check::before_launch(&img, &action, flags.isa_check, settings)?;
    let plan = sifr_launch::build(&opts, &img.path, action, &host)?;
    let attach = sifr_launch::image::choose(&img, plan.kernel_mounts(), opts.writable)
        .map_err(image_error)?;
    tracing::debug!("launch plan:\n{}attach {attach:?}", plan.render());
    if let Some(n) = attach.notice(&img) {
        eprintln!("notice: {n}");
    }
    finish(sifr_launch::run_image(&plan, &img, &attach), &img.path)
}

/// A running holder of this image on this node, joined, with the plan to run in it
/// (`sifr_launch::share`); `None` when sharing is off, the image is a directory, or no holder runs.
fn join_holder(
    opts: &sifr_launch::Options,
    image: &Path,
    action: &sifr_launch::Action,
    host: &sifr_launch::HostFacts,
) -> anyhow::Result<Option<(sifr_launch::LaunchPlan, sifr_launch::share::Joined)>> {
    if opts.share_idle.is_none() {
        return Ok(None);
    }
    let Ok(path) = std::fs::canonicalize(image) else {
        return Ok(None);
    };
    if path.is_dir() {
        return Ok(None);
    }
    let plan = sifr_launch::build(opts, &path, action.clone(), host)?;
    if plan.share.is_none() {
        return Ok(None);
    }
    let user_ns = plan.ids == sifr_launch::plan::IdMap::Own;
    Ok(
        sifr_launch::share::find(&path, plan.identity.uid, plan.identity.gid, user_ns)
            .map(|j| (plan, j)),
    )
}

/// The launch's result as sifr's exit status or error.
pub(crate) fn finish(
    result: Result<i32, sifr_launch::ExecError>,
    image: &Path,
) -> anyhow::Result<u8> {
    match result {
        Ok(code) => Ok(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            if let Some(code) = e.exit_code() {
                let summary = match std::error::Error::source(&e) {
                    Some(src) => format!("{e}: {src}"),
                    None => e.to_string(),
                };
                return Err(AlreadyReported {
                    summary,
                    code: u8::try_from(code).unwrap_or(255),
                }
                .into());
            }
            let context = format!("cannot start a container from `{}`", image.display());
            Err(match e.hint() {
                Some(h) => anyhow::Error::new(e).context(Hinted::new(context, h)),
                None => anyhow::Error::new(e).context(context),
            })
        }
    }
}
