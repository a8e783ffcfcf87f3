//! What the user asked for, as the command line and its environment gave it: one [`Request`],
//! filled at the edge (`cli`) by moving fields, and typed here into [`Options`] by the
//! parsers of this crate ([`crate::bind`], [`crate::nomount`], [`crate::envfile`],
//! [`HomeSpec`]).
//!
//! A request holds values that are typed but not yet resolved: bind specs as text, env files as
//! paths not yet read, relative paths not yet made absolute. Each value that may come from
//! somewhere other than its flag (a setting, an environment twin such as `APPTAINER_MOUNT`)
//! carries its [`Origin`], and a [`RequestError`] names the flag, the entry and the origin, so
//! the caller can say where a bad value came from. Nothing here prints or starts a thread.

use std::fmt;
use std::path::PathBuf;

use crate::bind::{self, BindError};
use crate::envfile::{self, EnvFileError};
use crate::gpu;
use crate::isa_check;
use crate::net;
use crate::nomount::{self, NoMountError};
use crate::plan::{Action, HomeSpec, Options, PlanError};

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// The command line: the flag itself names it.
    #[default]
    CommandLine,
    /// An environment variable (a setting's or a flag's twin), by name.
    EnvVar(String),
    /// A config file setting.
    ConfigFile(PathBuf),
    /// A setting of unknown source.
    Settings,
}

impl Origin {
    /// Whether an error in the value should name its origin (the command line goes unnamed).
    pub fn is_named(&self) -> bool {
        *self != Origin::CommandLine
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::CommandLine => f.write_str("the command line"),
            Origin::EnvVar(name) => write!(f, "environment variable `{name}`"),
            Origin::ConfigFile(p) => write!(f, "config file `{}`", p.display()),
            Origin::Settings => f.write_str("settings"),
        }
    }
}

/// A value with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Sourced<T> {
    /// A value given on the command line.
    pub fn flag(value: T) -> Self {
        Sourced {
            value,
            origin: Origin::CommandLine,
        }
    }
}

/// One launch as asked for: the image, the action, and every action flag, unparsed.
#[derive(Debug, Clone)]
pub struct Request {
    /// The container as named: a SIF file, a squashfs image or a sandbox directory.
    pub image: PathBuf,
    pub action: Action,
    /// `-B/--bind` values, then the `bind` setting's (`APPTAINER_BIND`); each may list several.
    pub binds: Vec<Sourced<String>>,
    /// `--mount` values; each may hold several specs, one a line.
    pub mounts: Vec<Sourced<String>>,
    /// `--no-mount` values; each may list several.
    pub no_mount: Vec<Sourced<String>>,
    /// `--env-file` paths, read in order (later files win).
    pub env_files: Vec<Sourced<PathBuf>>,
    /// `--env` values, `NAME=VALUE`.
    pub env: Vec<String>,
    /// `-H/--home` value, `src[:dst]`.
    pub home: Option<Sourced<String>>,
    /// `--pwd`/`--cwd`.
    pub cwd: Option<PathBuf>,
    /// `-W/--workdir`, made absolute against the current directory.
    pub workdir: Option<PathBuf>,
    /// `-o/--overlay` values, `PATH[:ro]` ([`crate::overlay::parse`]); paths are made
    /// absolute against the current directory.
    pub overlay: Vec<String>,
    pub hostname: Option<String>,
    pub cleanenv: bool,
    pub contain: bool,
    /// `-C/--containall` ([`Options::contain_all`]).
    pub containall: bool,
    pub no_home: bool,
    pub writable: bool,
    pub writable_tmpfs: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub fakeroot: bool,
    pub userns: bool,
    /// [`Options::session_mib`].
    pub session_mib: Option<u64>,
    /// [`Options::share_idle`].
    pub share_idle: Option<std::time::Duration>,
    /// [`Options::ready_fd`].
    pub ready_fd: Option<crate::plan::ReadyFd>,
    /// The instance this launch starts or enters: `APPTAINER_INSTANCE`, set after the `--env`
    /// values.
    pub instance: Option<String>,
    /// The GPUs asked for.
    pub gpu: gpu::Request,
    /// What to do when the program needs CPU features this host lacks.
    pub isa_check: isa_check::Policy,
    /// `--no-pid`: no PID namespace, even with `--containall`.
    pub no_pid: bool,
    /// [`Options::no_init`].
    pub no_init: bool,
    /// [`Options::runscript_timeout`].
    pub runscript_timeout: Option<std::time::Duration>,
    /// [`Options::no_umask`].
    pub no_umask: bool,
    /// [`Options::unsquash`].
    pub unsquash: bool,
    /// [`Options::ignore_subuid`].
    pub ignore_subuid: bool,
    /// [`Options::containlibs`], made absolute against the current directory.
    pub containlibs: Vec<PathBuf>,
    /// [`Options::no_env`]: variable names (each entry may list several, comma-separated).
    pub no_env: Vec<String>,
    /// [`Options::no_eval`].
    pub no_eval: bool,
    /// [`Options::devices`].
    pub devices: Vec<PathBuf>,
    /// The network flags ([`crate::net`]).
    pub net: net::Request,
    /// The privilege flags ([`crate::privs`]).
    pub privs: crate::privs::PrivsRequest,
    /// The cgroup limit flags (`--memory`, `--apply-cgroups`, ...).
    pub cgroup: crate::cgroup::Request,
    /// `-S/--scratch` and `--fusemount`.
    pub extra_mounts: crate::mounts::MountsRequest,
    /// `--app` ([`crate::apps`]).
    pub app: crate::apps::AppRequest,
}

/// A request that cannot be launched, with the value at fault and where it came from.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("invalid bind from {origin}")]
    Bind {
        /// The entry of [`Request::binds`].
        index: usize,
        origin: Origin,
        #[source]
        error: BindError,
    },
    #[error("invalid `--env` value `{value}`")]
    Env { value: String },
    #[error("invalid `--mount` value from {origin}")]
    Mount {
        /// The entry of [`Request::mounts`].
        index: usize,
        origin: Origin,
        #[source]
        error: BindError,
    },
    #[error("invalid `--no-mount` value from {origin}")]
    NoMount {
        /// The entry of [`Request::no_mount`].
        index: usize,
        origin: Origin,
        #[source]
        error: NoMountError,
    },
    #[error("cannot read environment file `{}` (from {origin})", path.display())]
    EnvFileRead {
        /// The entry of [`Request::env_files`].
        index: usize,
        origin: Origin,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid environment file from {origin}")]
    EnvFile {
        /// The entry of [`Request::env_files`].
        index: usize,
        origin: Origin,
        #[source]
        error: EnvFileError,
    },
    #[error("invalid `--home` value from {origin}")]
    Home {
        origin: Origin,
        #[source]
        error: PlanError,
    },
    #[error("invalid `{flag}` value `{}`", path.display())]
    Absolute {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid network request from {origin}")]
    Net {
        origin: Origin,
        #[source]
        error: net::NetError,
    },
    #[error("cannot discover the GPUs asked for")]
    Gpu(#[source] gpu::GpuError),
    #[error("cannot read the current directory")]
    Host(#[source] std::io::Error),
    #[error("cannot open the image")]
    Image(#[source] crate::image::ImageError),
    #[error("cannot plan the launch")]
    Plan(#[source] PlanError),
    #[error("invalid cgroup limits")]
    Cgroup(#[source] crate::cgroup::CgroupError),
    /// Boxed: a finding is large, and every `Result` of this module carries the error's size.
    #[error("refused by the ISA check")]
    Isa(#[source] Box<isa_check::Refused>),
    #[error(transparent)]
    Privs(#[from] crate::privs::PrivsError),
    #[error(transparent)]
    Mounts(#[from] crate::mounts::MountsError),
    #[error(transparent)]
    App(#[from] crate::apps::InvalidName),
}

impl Request {
    /// A request for `action` in `image` with no flag given and no setting applied.
    pub fn new(image: PathBuf, action: Action) -> Request {
        Request {
            image,
            action,
            binds: Vec::new(),
            mounts: Vec::new(),
            no_mount: Vec::new(),
            env_files: Vec::new(),
            env: Vec::new(),
            home: None,
            cwd: None,
            workdir: None,
            overlay: Vec::new(),
            hostname: None,
            cleanenv: false,
            contain: false,
            containall: false,
            no_home: false,
            writable: false,
            writable_tmpfs: false,
            pid: false,
            ipc: false,
            uts: false,
            fakeroot: false,
            userns: false,
            session_mib: None,
            share_idle: None,
            ready_fd: None,
            instance: None,
            gpu: gpu::Request::default(),
            isa_check: isa_check::Policy::default(),
            no_pid: false,
            no_init: false,
            runscript_timeout: None,
            no_umask: false,
            unsquash: false,
            ignore_subuid: false,
            containlibs: Vec::new(),
            no_env: Vec::new(),
            no_eval: false,
            devices: Vec::new(),
            net: net::Request::default(),
            privs: crate::privs::PrivsRequest::default(),
            cgroup: crate::cgroup::Request::default(),
            extra_mounts: crate::mounts::MountsRequest::default(),
            app: crate::apps::AppRequest::default(),
        }
    }

    /// The request typed into [`Options`], entry by entry in the order the flags are listed
    /// (the first bad value is the one reported). Env files are read and evaluated here, with
    /// `host_env` and the image path as their variables' context.
    pub fn options(&self, host_env: &[(String, String)]) -> Result<Options, RequestError> {
        let mut binds = Vec::new();
        for (index, spec) in self.binds.iter().enumerate() {
            binds.extend(
                bind::parse_list(&spec.value).map_err(|error| RequestError::Bind {
                    index,
                    origin: spec.origin.clone(),
                    error,
                })?,
            );
        }
        // What the container sees as `APPTAINER_BIND`: the destinations of `-B` and of the
        // `bind` setting, not those of `--mount` (Apptainer's regression tests 5599, 3501).
        let bind_dsts: Vec<PathBuf> = binds.iter().map(|b: &bind::Bind| b.dst.clone()).collect();
        let mut env = Vec::new();
        for e in &self.env {
            let Some((k, v)) = e.split_once('=') else {
                return Err(RequestError::Env { value: e.clone() });
            };
            env.push((k.to_string(), v.to_string()));
        }
        // A spec may hold several mounts, one a line, as Apptainer's does (and `APPTAINER_MOUNT`).
        for (index, spec) in self.mounts.iter().enumerate() {
            for line in spec.value.lines().filter(|l| !l.trim().is_empty()) {
                binds.push(bind::parse_mount(line.trim()).map_err(|error| {
                    RequestError::Mount {
                        index,
                        origin: spec.origin.clone(),
                        error,
                    }
                })?);
            }
        }
        // Relative bind sources are taken from the working directory, as Apptainer's
        // `filepath.Abs` does (`-B data:/data`, `--mount src=data,...`, `APPTAINER_BIND`).
        if binds.iter().any(|b| b.src.is_relative()) {
            let cwd = std::env::current_dir().map_err(RequestError::Host)?;
            binds = binds.into_iter().map(|b| b.absolute(&cwd)).collect();
        }
        let mut no_mount = Vec::new();
        for (index, v) in self.no_mount.iter().enumerate() {
            no_mount.extend(nomount::parse_list(&v.value).map_err(|error| {
                RequestError::NoMount {
                    index,
                    origin: v.origin.clone(),
                    error,
                }
            })?);
        }
        let mut files = Vec::new();
        for (index, path) in self.env_files.iter().enumerate() {
            let origin = || path.origin.clone();
            let text = std::fs::read_to_string(&path.value).map_err(|source| {
                RequestError::EnvFileRead {
                    index,
                    origin: origin(),
                    path: path.value.clone(),
                    source,
                }
            })?;
            files.push(
                envfile::evaluate(&path.value, &text, host_env, &self.image).map_err(|error| {
                    RequestError::EnvFile {
                        index,
                        origin: origin(),
                        error,
                    }
                })?,
            );
        }
        let home = self
            .home
            .as_ref()
            .map(|h| {
                HomeSpec::parse(&h.value).map_err(|error| RequestError::Home {
                    origin: h.origin.clone(),
                    error,
                })
            })
            .transpose()?;
        // Relative paths are taken from the current directory here, at the edge, as Apptainer
        // does.
        let absolute = |p: &Option<PathBuf>, flag: &'static str| {
            p.as_deref()
                .map(|p| {
                    std::path::absolute(p).map_err(|source| RequestError::Absolute {
                        flag,
                        path: p.to_path_buf(),
                        source,
                    })
                })
                .transpose()
        };
        env.extend(
            self.instance
                .iter()
                .map(|name| ("APPTAINER_INSTANCE".to_string(), name.clone())),
        );
        let extra_mounts = self.extra_mounts.typed()?;
        let mut opts = Options {
            binds,
            cleanenv: self.cleanenv,
            env,
            contain: self.contain,
            no_home: self.no_home,
            home,
            cwd: self.cwd.clone(),
            writable: self.writable,
            // `--fusemount` implies `--pid`, as in Apptainer (its launcher sets it).
            pid: self.pid || !extra_mounts.fuse.is_empty(),
            ipc: self.ipc,
            uts: self.uts,
            hostname: self.hostname.clone(),
            no_mount,
            workdir: absolute(&self.workdir, "--workdir")?,
            build_scratch: None,
            writable_tmpfs: self.writable_tmpfs,
            session_mib: self.session_mib,
            env_file: envfile::merge(files),
            overlay: self
                .overlay
                .iter()
                .map(|v| {
                    let mut spec = crate::overlay::parse(v);
                    spec.path = absolute(&Some(spec.path), "--overlay")?.unwrap_or_default();
                    Ok(spec)
                })
                .collect::<Result<_, RequestError>>()?,
            fakeroot: self.fakeroot,
            userns: self.userns,
            share_idle: self.share_idle,
            ready_fd: self.ready_fd.clone(),
            no_init: self.no_init,
            bind_dsts,
            runscript_timeout: self.runscript_timeout,
            app: crate::apps::App::from_request(&self.app)?,
            no_umask: self.no_umask,
            unsquash: self.unsquash,
            ignore_subuid: self.ignore_subuid,
            containlibs: self
                .containlibs
                .iter()
                .map(|p| absolute(&Some(p.clone()), "--containlibs").map(Option::unwrap_or_default))
                .collect::<Result<_, _>>()?,
            no_env: self
                .no_env
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect(),
            no_eval: self.no_eval,
            devices: self.devices.clone(),
            net: self
                .net
                .options()
                .map_err(|(origin, error)| RequestError::Net { origin, error })?,
            privs: crate::privs::Privs::default(),
            extra_mounts,
        };
        if self.containall {
            opts.contain_all();
        }
        if self.no_pid {
            opts.pid = false;
        }
        self.privileges(&mut opts)?;
        Ok(opts)
    }
}

impl Request {
    /// The privilege flags typed into `opts` ([`crate::privs`]), their warnings logged, and
    /// `--boot`'s implications: `--contain`, a UTS namespace named after the instance.
    fn privileges(&self, opts: &mut Options) -> Result<(), RequestError> {
        let instance = matches!(self.action, Action::Start(_));
        let (privs, warnings) = self.privs.parse(sifr_sys::process::ids().0, instance)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        if privs.boot {
            opts.contain = true;
            opts.uts = true;
            if opts.hostname.is_none() {
                opts.hostname = self.instance.clone();
            }
        }
        opts.privs = privs;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request::new("/img.sif".into(), Action::Exec(vec!["true".into()]))
    }

    #[test]
    fn flags_and_settings_become_options_in_order() {
        let mut r = request();
        r.binds = vec![
            Sourced::flag("/a:/b:ro,/c".into()),
            Sourced {
                value: "/s".into(),
                origin: Origin::EnvVar("APPTAINER_BIND".into()),
            },
        ];
        r.mounts = vec![Sourced::flag(
            "type=bind,src=/m,dst=/n\n\n type=bind,src=/o,dst=/p \n".into(),
        )];
        r.env = vec!["A=1=2".into()];
        r.instance = Some("web".into());
        r.no_mount = vec![Sourced::flag("home,tmp".into())];
        r.home = Some(Sourced::flag("/h:/home/u".into()));
        r.containall = true;
        let o = r.options(&[]).unwrap();
        let dsts: Vec<_> = o.binds.iter().map(|b| b.dst.to_str().unwrap()).collect();
        assert_eq!(dsts, ["/b", "/c", "/s", "/n", "/p"]);
        assert_eq!(
            o.env,
            [
                ("A".to_string(), "1=2".to_string()),
                ("APPTAINER_INSTANCE".to_string(), "web".to_string())
            ]
        );
        assert_eq!(o.no_mount.len(), 2);
        assert_eq!(o.home.unwrap().dst, PathBuf::from("/home/u"));
        assert!(o.contain && o.cleanenv && o.pid && o.ipc);
    }

    #[test]
    fn a_bad_value_names_its_entry_and_origin() {
        let mut r = request();
        let twin = Origin::EnvVar("APPTAINER_MOUNT".into());
        r.mounts = vec![
            Sourced::flag("type=bind,src=/a,dst=/a".into()),
            Sourced {
                value: "type=volume".into(),
                origin: twin.clone(),
            },
        ];
        match r.options(&[]).unwrap_err() {
            RequestError::Mount { index, origin, .. } => {
                assert_eq!((index, origin), (1, twin));
            }
            e => panic!("{e:?}"),
        }
        let mut r = request();
        r.env = vec!["NOVALUE".into()];
        assert!(matches!(
            r.options(&[]).unwrap_err(),
            RequestError::Env { value } if value == "NOVALUE"
        ));
        let mut r = request();
        r.env_files = vec![Sourced::flag("/nonexistent/sifr.env".into())];
        assert!(matches!(
            r.options(&[]).unwrap_err(),
            RequestError::EnvFileRead { index: 0, .. }
        ));
    }

    #[test]
    fn origins_read_as_the_messages_name_them() {
        assert_eq!(
            Origin::EnvVar("APPTAINER_BIND".into()).to_string(),
            "environment variable `APPTAINER_BIND`"
        );
        assert_eq!(
            Origin::ConfigFile("/etc/sifr.conf".into()).to_string(),
            "config file `/etc/sifr.conf`"
        );
        assert!(!Origin::CommandLine.is_named());
    }
}
