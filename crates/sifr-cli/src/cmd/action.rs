//! `sifr exec|run|shell|test IMAGE ...`: the container actions, for sandbox directories, SIF
//! files and bare squashfs images.
//!
//! Moves the action flags, completed from their environment twins and the settings, into one
//! `sifr_launch::Request`, and hands it to `sifr_launch::prepare`, which types it, gathers host
//! facts, opens and judges the image, plans the launch and chooses how to attach the image;
//! `Prepared::run` then enters the container's namespaces in *this* process: nothing here may
//! start a thread. This module keeps the clap flags, the rendering of the request's errors and
//! warnings, and the exit status, which is the command's. A costly attach choice (extraction
//! when FUSE is unusable) is announced with one `notice:` line on stderr.

use std::path::{Path, PathBuf};

use clap::Args;
use sifr_launch::{Origin, Prepared, RequestError, Sourced};

use super::isa_check::IsaCheck;
use crate::report::{AlreadyReported, Hinted};
use crate::settings::{Settings, Source};

/// Flags shared by every action (Apptainer's action flags, the subset supported so far). Each
/// has an environment twin, `APPTAINER_PID` for `--pid` and so on (`action_env::TABLES`).
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
    /// Layer PATH over the image: a directory, an ext3 image (`overlay create`), a SquashFS
    /// image or a SIF's overlay partition; the writable one keeps the container's changes, and
    /// `:ro` makes one read-only. Repeat it (or separate with commas) to stack several.
    #[arg(short = 'o', long, value_name = "PATH[:ro]", value_delimiter = ',')]
    pub overlay: Vec<String>,
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
    pub isa_check: Option<IsaCheck>,
    #[command(flatten)]
    pub gpu: GpuFlags,
    #[command(flatten)]
    pub runtime: super::action_runtime::RuntimeFlags,
    #[command(flatten)]
    pub remote: super::action_remote::RemoteFlags,
    #[command(flatten)]
    pub net: super::action_net::NetFlags,
    #[command(flatten)]
    pub privs: super::action_privs::PrivsFlags,
    #[command(flatten)]
    pub cgroup: super::action_cgroup::CgroupFlags,
    #[command(flatten)]
    pub mounts: super::action_mounts::MountFlags,
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
    /// Turn --nv off (where a setting or a variable turned it on).
    #[arg(long, hide = true)]
    pub no_nv: bool,
    /// Turn --rocm off (where a setting or a variable turned it on).
    #[arg(long, hide = true)]
    pub no_rocm: bool,
}

impl GpuFlags {
    /// Flags combined with the settings (either turns a vendor on).
    pub fn request(&self, s: &Settings) -> sifr_launch::gpu::Request {
        sifr_launch::gpu::Request {
            nvidia: (self.nv || s.nv) && !self.no_nv,
            nvccli: (self.nvccli || s.nvccli) && !self.no_nv,
            rocm: (self.rocm || s.rocm) && !self.no_rocm,
            config_dir: s.config_dir.clone(),
        }
    }

    /// Look at the host for the GPUs asked for, warning about anything a working driver would
    /// have had. Must run before any namespace change.
    pub fn discover(
        &self,
        s: &Settings,
        host_env: &[(String, String)],
        dev: sifr_launch::gpu::DevView,
    ) -> anyhow::Result<Vec<sifr_launch::gpu::Found>> {
        let req = self.request(s);
        if !req.any() {
            return Ok(Vec::new());
        }
        let found = sifr_launch::gpu::discover(&req, host_env, dev)?;
        for f in &found {
            for w in &f.warnings {
                tracing::warn!("{}: {w}", f.vendor.flag());
            }
        }
        Ok(found)
    }
}

/// `sifr exec`. Options stop at the image, as Apptainer's do: everything after it is the
/// command, verbatim (`exec img.sif ls -l --color`).
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub flags: ActionFlags,
    /// The container (a SIF file, a squashfs image, a sandbox directory or `instance://NAME`),
    /// then the command and its arguments.
    #[arg(
        required = true,
        num_args = 2..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_names = ["IMAGE", "COMMAND"]
    )]
    pub operands: Vec<String>,
}

/// `sifr run` and `sifr test`: everything after the image reaches the runscript (test script)
/// untouched (`run img.sif -c 'import x' --version`).
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub flags: ActionFlags,
    /// The container (a SIF file, a squashfs image, a sandbox directory or `instance://NAME`),
    /// then the arguments passed to its runscript (or test script).
    #[arg(
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_names = ["IMAGE", "ARGS"]
    )]
    pub operands: Vec<String>,
}

/// The variable suffixes of `shell --shell` (`APPTAINER_SHELL`): a twin outside
/// [`ActionFlags`], as the flag is `shell`'s alone.
pub const SHELL_KEYS: &[&str] = &["SHELL"];

/// `sifr shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub flags: ActionFlags,
    /// The shell to start instead of the container's default (`/bin/bash`, else `/bin/sh`).
    #[arg(short = 's', long = "shell", value_name = "PATH")]
    pub shell: Option<String>,
    /// The container: a SIF file, a squashfs image, a sandbox directory or `instance://NAME`.
    /// Anything after it is ignored with a warning, as Apptainer does.
    #[arg(
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_names = ["IMAGE", "IGNORED"]
    )]
    pub operands: Vec<String>,
}

/// The image and what follows it. The operands' first value takes hyphens (so that whatever
/// follows the image is taken verbatim), which would also let an unknown flag before the
/// image pass as the image: that is refused here, as Apptainer's parser refuses it.
pub(crate) fn split_operands(operands: Vec<String>) -> anyhow::Result<(PathBuf, Vec<String>)> {
    let mut it = operands.into_iter();
    let image = it.next().unwrap_or_default();
    if image.starts_with('-') && image.len() > 1 {
        return Err(crate::report::Usage {
            message: format!("unknown flag `{image}`"),
            hint: "flags go before the image; see `--help` for this command's flags".into(),
        }
        .into());
    }
    Ok((PathBuf::from(image), it.collect()))
}

pub fn exec(a: ExecArgs, s: &Settings) -> anyhow::Result<u8> {
    let (image, command) = split_operands(a.operands)?;
    launch_action(&a.flags, &image, sifr_launch::Action::Exec(command), s)
}

pub fn run(a: RunArgs, s: &Settings) -> anyhow::Result<u8> {
    let (image, args) = split_operands(a.operands)?;
    launch_action(&a.flags, &image, sifr_launch::Action::Run(args), s)
}

pub fn test(a: RunArgs, s: &Settings) -> anyhow::Result<u8> {
    let (image, args) = split_operands(a.operands)?;
    launch_action(&a.flags, &image, sifr_launch::Action::Test(args), s)
}

pub fn shell(a: ShellArgs, s: &Settings) -> anyhow::Result<u8> {
    let (image, ignored) = split_operands(a.operands)?;
    if !ignored.is_empty() {
        tracing::warn!("Parameters to shell command are ignored");
    }
    // `--shell`, else its twin (`APPTAINER_SHELL`, ...).
    let shell = a.shell.or_else(|| {
        crate::settings::lookup_env(SHELL_KEYS, &crate::settings::ProcessEnv)
            .map(|hit| hit.text)
            .filter(|t| !t.trim().is_empty())
    });
    launch_action(&a.flags, &image, sifr_launch::Action::Shell(shell), s)
}

/// The host environment as UTF-8 pairs (others are not forwarded: values are evaluated as text).
pub(crate) fn host_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// What the user asked for, as one `sifr_launch::Request`: the flags completed from their
/// environment twins (warnings and their sources logged here), plus the settings that add to
/// them, each value with where it came from. Nothing is parsed here but the twins.
pub(crate) fn request(
    flags: &ActionFlags,
    settings: &Settings,
    image: &Path,
    action: sifr_launch::Action,
    host_env: &[(String, String)],
) -> anyhow::Result<sifr_launch::Request> {
    // The flags' environment twins (`APPTAINER_PID`, ...) fill in what the command line left out.
    let (mut f, twins) = super::action_env::completed(flags, host_env)?;
    super::action_runtime::RuntimeFlags::expand_compat(&mut f);
    f.runtime.check()?;
    f.remote.note_unused(image);
    for w in &twins.warnings {
        tracing::warn!("{w}");
    }
    for (flag, var) in twins.sources() {
        tracing::debug!("--{flag} from environment variable `{var}`");
    }
    // `APPTAINER_BIND` and friends (resolved with the usual precedence) add to `-B`.
    let bind_origin = match settings.get("bind").map(|r| &r.source) {
        Some(Source::Env(name)) => Origin::EnvVar(name.clone()),
        Some(Source::ConfigFile(p)) => Origin::ConfigFile(p.clone()),
        _ => Origin::Settings,
    };
    let binds = f
        .bind
        .into_iter()
        .map(Sourced::flag)
        .chain(settings.bind.iter().map(|spec| Sourced {
            value: spec.clone(),
            origin: bind_origin.clone(),
        }));
    let sourced = |flag: &str, values: Vec<String>| -> Vec<Sourced<String>> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, value)| Sourced {
                value,
                origin: twins.source(flag, i),
            })
            .collect()
    };
    let mut env = f.env;
    if let sifr_launch::Action::Shell(Some(shell)) = &action {
        // Apptainer exports the chosen shell to the container under both prefixes.
        env.extend(["APPTAINER_SHELL", "SINGULARITY_SHELL"].map(|k| format!("{k}={shell}")));
    }
    let runtime = std::mem::take(&mut f.runtime);
    let mut req = sifr_launch::Request {
        image: image.to_path_buf(),
        action,
        binds: binds.collect(),
        mounts: sourced("mount", f.mount),
        no_mount: sourced("no-mount", f.no_mount),
        env_files: f
            .env_file
            .into_iter()
            .enumerate()
            .map(|(i, value)| Sourced {
                value,
                origin: twins.source("env-file", i),
            })
            .collect(),
        env,
        home: f.home.map(|value| Sourced {
            value,
            origin: twins.source("home", 0),
        }),
        cwd: f.pwd,
        workdir: f.workdir,
        overlay: f.overlay,
        hostname: f.hostname,
        cleanenv: f.cleanenv,
        contain: f.contain,
        containall: f.containall,
        no_home: f.no_home,
        writable: f.writable,
        writable_tmpfs: f.writable_tmpfs,
        pid: f.pid,
        ipc: f.ipc,
        uts: f.uts,
        fakeroot: f.fakeroot,
        userns: f.userns,
        session_mib: Some(settings.tmpfs_size_mib),
        share_idle: settings.share.then_some(settings.share_idle),
        ready_fd: None,
        instance: None,
        gpu: f.gpu.request(settings),
        isa_check: IsaCheck::policy(f.isa_check, settings),
        net: f.net.request(&twins),
        privs: f.privs.request(),
        cgroup: f.cgroup.request(),
        extra_mounts: f.mounts.request(&twins),
        app: runtime.app_request(&twins),
        ..sifr_launch::Request::new(image.to_path_buf(), sifr_launch::Action::Shell(None))
    };
    if runtime.sharens && req.share_idle.is_none() {
        req.share_idle = Some(settings.share_idle);
    }
    let hpu = if runtime.intel_hpu {
        super::action_runtime::intel_hpu_devices()
    } else {
        Vec::new()
    };
    runtime.fill(&mut req, hpu);
    Ok(req)
}

/// A request's error as sifr renders it: the message, `in <origin>` above it when the value
/// came from a variable or a config file rather than its flag, and the hint where one is known.
pub(crate) fn request_error(e: RequestError) -> anyhow::Error {
    let within = |origin: &Origin, e: anyhow::Error| {
        if origin.is_named() {
            e.context(format!("in {origin}"))
        } else {
            e
        }
    };
    match e {
        RequestError::Bind { origin, error, .. } | RequestError::Mount { origin, error, .. } => {
            within(&origin, bind_error(error))
        }
        RequestError::Env { value } => Hinted::new(
            format!("invalid `--env` value `{value}`"),
            "use `--env NAME=VALUE`",
        )
        .into(),
        RequestError::NoMount { origin, error, .. } => {
            within(&origin, Hinted::new(error.to_string(), error.hint()).into())
        }
        RequestError::EnvFileRead {
            origin,
            path,
            source,
            ..
        } => within(
            &origin,
            anyhow::Error::new(source)
                .context(format!("cannot read environment file `{}`", path.display())),
        ),
        RequestError::EnvFile { origin, error, .. } => {
            within(&origin, Hinted::new(error.to_string(), error.hint()).into())
        }
        RequestError::Home { origin, error } => within(&origin, error.into()),
        RequestError::Absolute { flag, path, source } => anyhow::Error::new(source)
            .context(format!("invalid `{flag}` value `{}`", path.display())),
        RequestError::Net { origin, error } => within(&origin, net_error(error)),
        RequestError::Plan(sifr_launch::plan::PlanError::Net(e)) => net_error(e),
        RequestError::Gpu(e) => e.into(),
        RequestError::Host(e) => anyhow::Error::new(e).context("cannot read the current directory"),
        RequestError::Image(e) => image_error(e),
        RequestError::Plan(e) => e.into(),
        RequestError::Isa(e) => Hinted::new(e.to_string(), e.hint()).into(),
        RequestError::Privs(e) => match e.hint() {
            Some(h) => Hinted::new(e.to_string(), h).into(),
            None => e.into(),
        },
        RequestError::Cgroup(e) => match e.hint() {
            Some(h) => Hinted::new(e.to_string(), h).into(),
            None => anyhow::Error::new(e),
        },
        RequestError::App(e) => within(&e.origin, Hinted::new(e.to_string(), e.hint()).into()),
        RequestError::Mounts(e) => {
            let (origin, message) = e.cause();
            within(&origin, Hinted::new(message, e.hint()).into())
        }
    }
}

fn net_error(e: sifr_launch::net::NetError) -> anyhow::Error {
    match e.hint() {
        Some(h) => Hinted::new(e.to_string(), h).into(),
        None => e.into(),
    }
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

/// A launch of `image`, with `tweak` applied to the request first (`instance start` sets its
/// readiness fd and name there).
pub(crate) fn launch_with(
    flags: &ActionFlags,
    image: &Path,
    action: sifr_launch::Action,
    settings: &Settings,
    tweak: impl FnOnce(&mut sifr_launch::Request),
) -> anyhow::Result<u8> {
    let env = host_env();
    // An image URI is fetched (or found in the cache) first; the launch runs the SIF.
    let fetched = match super::image_uri::kind(&image.to_string_lossy())? {
        super::image_uri::Kind::Local => None,
        _ => {
            let (completed, _) = super::action_env::completed(flags, &env)?;
            super::image_uri::fetch(image, &completed.remote, settings)?
        }
    };
    let image = fetched.as_ref().map_or(image, |f| f.path.as_path());
    super::ecl::check(image, settings)?;
    let mut req = request(flags, settings, image, action, &env)?;
    tweak(&mut req);
    let prepared = sifr_launch::prepare(req, env, |finding, image| {
        super::isa_check::warn(finding, image, settings);
    })
    .map_err(request_error)?;
    match &prepared {
        Prepared::Joined { plan, .. } => tracing::debug!(
            "launch plan:\n{}attach: joined the node's holder",
            plan.render()
        ),
        Prepared::Attached {
            plan,
            image,
            attach,
        } => {
            tracing::debug!("launch plan:\n{}attach {attach:?}", plan.render());
            if let Some(n) = attach.notice(image) {
                eprintln!("notice: {n}");
            }
        }
    }
    let path = prepared.image_path().to_path_buf();
    finish(prepared.run(), &path)
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
                let mut summary = match std::error::Error::source(&e) {
                    Some(src) => format!("{e}: {src}"),
                    None => e.to_string(),
                };
                // `--app`: the status is Apptainer's (1), and the hint names the image's apps.
                if let (sifr_launch::ExecError::App(_), Some(h)) = (&e, e.hint()) {
                    summary.push_str(&format!("\n{}hint: {h}", crate::report::INDENT));
                }
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

#[cfg(test)]
mod tests {
    //! A request's errors render as they did when the CLI parsed the flags itself: the same
    //! message, `in <origin>` above it for a value from a variable or a setting, the same hint.
    use super::*;
    use clap::Parser as _;

    /// `sifr exec ARGS /img true` with `env` as the environment, typed: the rendered error.
    fn error(args: &[&str], env: &[(&str, &str)], settings: &Settings) -> String {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            flags: ActionFlags,
        }
        let flags = T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .flags;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let action = sifr_launch::Action::Exec(vec!["true".into()]);
        let req = request(&flags, settings, Path::new("/img"), action, &env).unwrap();
        let e = req.options(&env).unwrap_err();
        crate::report::render(&request_error(e), crate::report::Colour::Plain)
    }

    #[test]
    fn flag_errors_render_with_their_hints() {
        let s = Settings::default();
        assert_eq!(
            error(&["--env", "NOVAL"], &[], &s),
            "FATAL:   invalid `--env` value `NOVAL`\n         hint: use `--env NAME=VALUE`"
        );
        assert_eq!(
            error(&["-B", "a:b"], &[], &s),
            "FATAL:   invalid bind `a:b`: the destination `b` is not an absolute path\n         \
             hint: container paths must start with `/`"
        );
        assert_eq!(
            error(&["-B", ":/b"], &[], &s),
            "FATAL:   invalid bind `:/b`: the source is empty"
        );
        assert_eq!(
            error(&["--env-file", "/nonexistent/sifr.env"], &[], &s),
            "FATAL:   cannot read environment file `/nonexistent/sifr.env`\n         \
             caused by: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn values_from_variables_and_settings_name_their_origin() {
        let s = Settings {
            bind: vec!["/x:/y:zz".into()],
            ..Settings::default()
        };
        assert_eq!(
            error(&[], &[], &s),
            "FATAL:   in settings\n         caused by: invalid bind `/x:/y:zz`: unknown option `zz`\n         \
             hint: the form is `src[:dst[:ro|rw]]`; separate several binds with commas"
        );
        let s = Settings::default();
        assert_eq!(
            error(
                &["--mount", "type=bind,src=/a,dst=/a"],
                &[("APPTAINER_MOUNT", "type=volume,src=/a,dst=/b")],
                &s
            ),
            "FATAL:   in environment variable `APPTAINER_MOUNT`\n         caused by: invalid mount \
             `type=volume,src=/a,dst=/b`: unsupported type `volume`, only `bind` is\n         \
             hint: the form is `type=bind,source=/host/path,destination=/container/path[,readonly]`"
        );
        assert_eq!(
            error(&[], &[("APPTAINER_HOME", "rel")], &s),
            "FATAL:   in environment variable `APPTAINER_HOME`\n         \
             caused by: invalid `--home` value `rel`: paths must be absolute"
        );
        let no_mount = error(&[], &[("SINGULARITY_NO_MOUNT", "hme")], &s);
        assert!(
            no_mount.starts_with(
                "FATAL:   in environment variable `SINGULARITY_NO_MOUNT`\n         caused by: \
                 invalid `--no-mount` value `hme`: not a mount name nor an absolute path\n         hint: "
            ),
            "{no_mount}"
        );
    }
}
