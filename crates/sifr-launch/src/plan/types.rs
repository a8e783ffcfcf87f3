//! The plan's data: what the user asked for ([`Options`]), what the host is ([`HostFacts`],
//! with what GPU discovery [`Found`]), and what [`super::build`] makes of them ([`LaunchPlan`]
//! and its parts, the environment rules ([`EnvPlan`]) among them). Plain data, no rules: the
//! modules that contribute to a plan or apply it ([`crate::gpu`], [`crate::env`],
//! [`crate::exec`]) depend on these types, not on the builder, and these depend on none of them.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::bind::Bind;
use crate::nomount::NoMount;

/// What the user asked for, typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `-B/--bind` values followed by `APPTAINER_BIND` ones (both apply).
    pub binds: Vec<Bind>,
    /// `-e/--cleanenv`.
    pub cleanenv: bool,
    /// `--env K=V`, in command-line order.
    pub env: Vec<(String, String)>,
    /// `-c/--contain`.
    pub contain: bool,
    /// `--no-home`.
    pub no_home: bool,
    /// `-H/--home src[:dst]`.
    pub home: Option<HomeSpec>,
    /// `--pwd`/`--cwd`.
    pub cwd: Option<PathBuf>,
    /// `-w/--writable`.
    pub writable: bool,
    /// `-p/--pid`: a new PID namespace, with a fresh `/proc`.
    pub pid: bool,
    /// `-i/--ipc`: a new IPC namespace.
    pub ipc: bool,
    /// `--uts`: a new UTS namespace (implied by `hostname`).
    pub uts: bool,
    /// `--hostname NAME`.
    pub hostname: Option<String>,
    /// `--no-mount` values.
    pub no_mount: Vec<NoMount>,
    /// A build section's scratch directory (absolute; not a flag): `/tmp` and `/var/tmp` are
    /// `DIR/tmp` and `DIR/var_tmp` (created), and `/dev/shm` a fresh tmpfs, never the host's,
    /// so a base image's symlink (`/opt -> /tmp/x`) cannot aim the build's writes at the host.
    pub build_scratch: Option<PathBuf>,
    /// `-W/--workdir DIR` (absolute): with `--contain`, `/tmp`, `/var/tmp` and the home come
    /// from `DIR/tmp`, `DIR/var_tmp` and `DIR/home` instead of the session tmpfs.
    pub workdir: Option<PathBuf>,
    /// `--writable-tmpfs`: the image root is writable through the overlay, changes live in the
    /// session tmpfs and vanish with the container.
    pub writable_tmpfs: bool,
    /// Size of the session tmpfs in MiB (`None`: [`DEFAULT_SESSION_MIB`]).
    pub session_mib: Option<u64>,
    /// The variables of the `--env-file` files, evaluated and merged ([`crate::envfile`]).
    pub env_file: Vec<(String, String)>,
    /// `--overlay PATH[:ro]` (absolute paths), in the order given ([`crate::overlay`]).
    pub overlay: Vec<crate::overlay::Spec>,
    /// `-f/--fakeroot`: root inside a user namespace (with the subordinate ids when the caller
    /// has a range), the caller's home at `/root`.
    pub fakeroot: bool,
    /// `-u/--userns`: a user namespace even for root, so the image is never mounted by the
    /// kernel (FUSE or extraction instead), as an unprivileged user would run it.
    pub userns: bool,
    /// Share the attached image and the user namespace with other launches of the same image
    /// by the same user on this node ([`crate::share`]), keeping the holder this long after the
    /// last launch left; `None`: attach the image for this launch alone.
    pub share_idle: Option<std::time::Duration>,
    /// An inherited fd to write one byte to once the container is assembled, just before the
    /// command starts (`instance start` waits for it).
    pub ready_fd: Option<ReadyFd>,
    /// `--no-init`: with a PID namespace, the command itself is PID 1 (no init above it).
    pub no_init: bool,
    /// The destinations of the `-B` binds (and the `bind` setting's), which the container sees
    /// as `APPTAINER_BIND`, comma-separated, as Apptainer sets it.
    pub bind_dsts: Vec<PathBuf>,
    /// `--runscript-timeout`: how long each environment script that needs `/bin/sh` may run.
    pub runscript_timeout: Option<std::time::Duration>,
    /// `--app`: the SCIF app whose environment and scripts the launch uses ([`crate::apps`]).
    pub app: Option<crate::apps::App>,
    /// `--no-umask`: the command starts with umask 0022 instead of the caller's.
    pub no_umask: bool,
    /// `--unsquash`: extract a SIF or squashfs image to a temporary sandbox rather than mount it.
    pub unsquash: bool,
    /// `--ignore-subuid`: `--fakeroot` maps root to the caller alone, even when
    /// `/etc/subuid`/`/etc/subgid` give the caller a range.
    pub ignore_subuid: bool,
    /// `--containlibs`: host library files bound into `/.singularity.d/libs`.
    pub containlibs: Vec<PathBuf>,
    /// `--no-env`: host variables never imported into the container.
    pub no_env: Vec<String>,
    /// `--no-eval`: `--env`/`APPTAINERENV_*` values are taken literally, not shell-expanded.
    pub no_eval: bool,
    /// Host device nodes added to a minimal `/dev` (`--contain`), such as the accelerators of
    /// `--intel-hpu`; with the host's `/dev` they are there already.
    pub devices: Vec<PathBuf>,
    /// `--net`, `--network`, `--network-args`, `--netns-path`, `--dns` ([`crate::net`]).
    pub net: crate::net::Options,
    /// The privilege flags, typed ([`crate::privs`]).
    pub privs: crate::privs::Privs,
    /// `-S/--scratch` and `--fusemount` ([`crate::mounts`]).
    pub extra_mounts: crate::mounts::ExtraMounts,
}

/// The descriptor a launch writes one byte to, once, when the container is assembled
/// ([`Options::ready_fd`]). Owned from where it arrives (the `instance start` launcher) and
/// shared by the options and the plan made of them, which are plain, cloneable data; the first
/// [`ReadyFd::take`] gets it.
#[derive(Clone)]
pub struct ReadyFd(Arc<Mutex<Option<OwnedFd>>>);

impl ReadyFd {
    pub fn new(fd: OwnedFd) -> ReadyFd {
        ReadyFd(Arc::new(Mutex::new(Some(fd))))
    }

    /// The descriptor, for its one write; `None` once taken.
    pub fn take(&self) -> Option<OwnedFd> {
        self.0.lock().map_or(None, |mut fd| fd.take())
    }
}

impl std::fmt::Debug for ReadyFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.lock().as_deref() {
            Ok(Some(fd)) => write!(f, "ReadyFd({})", fd.as_raw_fd()),
            _ => f.write_str("ReadyFd(taken)"),
        }
    }
}

/// The same descriptor: clones of one [`ReadyFd`].
impl PartialEq for ReadyFd {
    fn eq(&self, other: &ReadyFd) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ReadyFd {}

/// Apptainer's `sessiondir max size`: the session tmpfs (generated files, `--contain` scratch
/// directories, the overlay's upper layer of `--writable-tmpfs`) may hold this many MiB.
pub const DEFAULT_SESSION_MIB: u64 = 64;

impl Options {
    /// `-C/--containall`: `--contain`, `--cleanenv`, and new PID and IPC namespaces, as in
    /// Apptainer.
    pub fn contain_all(&mut self) {
        self.contain = true;
        self.cleanenv = true;
        self.pid = true;
        self.ipc = true;
    }
}

/// `--home src[:dst]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeSpec {
    pub src: PathBuf,
    pub dst: PathBuf,
}

impl HomeSpec {
    /// Parse `src[:dst]`; both must be absolute.
    pub fn parse(value: &str) -> Result<HomeSpec, PlanError> {
        let (src, dst) = value.split_once(':').unwrap_or((value, value));
        let dst = if dst.is_empty() { src } else { dst };
        for p in [src, dst] {
            if !p.starts_with('/') {
                return Err(PlanError::RelativeHome {
                    value: value.into(),
                });
            }
        }
        Ok(HomeSpec {
            src: src.into(),
            dst: dst.into(),
        })
    }
}

/// The user as the host's user database knows them (looked up before any namespace change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub gecos: String,
    pub home: PathBuf,
    pub shell: String,
}

/// Facts about the host the plan depends on, gathered by [`crate::host::gather`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups with their names (for the generated `/etc/group`).
    pub groups: Vec<(u32, String)>,
    /// The primary group's name.
    pub group_name: Option<String>,
    /// `None` when the uid has no passwd entry.
    pub user: Option<UserInfo>,
    /// The current directory as the user sees it (`$PWD` when it names the same directory).
    pub cwd: PathBuf,
    /// The host environment, in order.
    pub env: Vec<(String, String)>,
    /// Whether the caller is root in the initial user namespace (can mount without a userns).
    pub privileged: bool,
    /// Whether host `/var/tmp` resolves to the same directory as `/tmp`.
    pub var_tmp_is_tmp: bool,
    /// What `--nv`/`--rocm` found on the host ([`crate::gpu::discover`]); empty without them.
    pub gpu: Vec<Found>,
}

/// The command that runs in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `exec IMAGE CMD ARGS...`.
    Exec(Vec<String>),
    /// `run IMAGE ARGS...`: `/.singularity.d/runscript`, else `/singularity`, else `/bin/sh`.
    Run(Vec<String>),
    /// `shell IMAGE`: the `--shell` program if given and executable in the container, else
    /// `/bin/bash --norc` if present, else `/bin/sh` (Apptainer's action script). The program
    /// is also exported as `APPTAINER_SHELL`/`SINGULARITY_SHELL`.
    Shell(Option<String>),
    /// `test IMAGE ARGS...`: `/.singularity.d/test`; without one, nothing to do.
    Test(Vec<String>),
    /// `instance start IMAGE NAME ARGS...`: `/.singularity.d/startscript` if there is one, then
    /// the launcher stays, keeping the container for `instance://NAME`, until SIGTERM.
    Start(Vec<String>),
    /// `instance run IMAGE NAME ARGS...`: the runscript, as `run` finds it, then the launcher
    /// stays as for [`Action::Start`].
    InstanceRun(Vec<String>),
}

impl Action {
    /// Whether the launch is an instance's, whose launcher outlives its script.
    pub fn is_instance(&self) -> bool {
        matches!(self, Action::Start(_) | Action::InstanceRun(_))
    }
}

/// Why a mount is there: the order of tags is Apptainer's tag order, and messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tag {
    System,
    Dev,
    HostFile,
    Home,
    UserBind,
    Tmp,
    /// `-S/--scratch` directories.
    Scratch,
    /// `--nv`/`--rocm`: host driver libraries, programs, vendor files and devices.
    Gpu,
    Cwd,
    Identity,
    Hostname,
    /// `--fusemount` filesystems (Apptainer's `OtherTag`, its last).
    Fuse,
}

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path (a recursive bind).
    Host(PathBuf),
    /// A fresh empty directory in the session tmpfs (`--contain`'s `/tmp`, home, `/dev`).
    Scratch,
    /// The generated `/etc/passwd`.
    Passwd,
    /// The generated `/etc/group`.
    Group,
    /// A new devpts instance (`--contain`'s `/dev/pts`).
    Devpts,
    /// A new procfs for the container's PID namespace. Mounted by the namespace's init, from
    /// inside it (a procfs shows the PID namespace of the process that mounts it), on top of
    /// the host `/proc` bind that the kernel requires to exist before an unprivileged user may
    /// mount a procfs.
    Proc,
    /// The generated `/etc/hostname` (`--hostname`).
    Hostname,
    /// A generated file of the session, `/files/NAME` holding `text` (`--dns`'s
    /// `/etc/resolv.conf`, the default `/etc/hosts` of a contained network namespace).
    Text { name: &'static str, text: String },
    /// The FUSE filesystem of `--fusemount` spec N ([`crate::fusemount`]).
    Fuse(usize),
}

/// One mount of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub tag: Tag,
    pub source: Source,
    /// Absolute path inside the container.
    pub dst: PathBuf,
    pub readonly: bool,
    pub nosuid: bool,
    pub nodev: bool,
    /// Whether a missing host source is an error (user binds) or a skip with a warning.
    pub required: bool,
    /// Create the host source directory with this mode when it is missing (the `--workdir`
    /// directories, which Apptainer creates too; their parent must exist).
    pub create: Option<u32>,
}

impl Mount {
    /// A bind of the host's `src` at `dst`: writable, `nosuid`, device nodes usable, a missing
    /// source skipped with a warning. Other flags are set by name over it
    /// (`Mount { readonly: true, ..Mount::host(..) }`).
    pub fn host(tag: Tag, src: impl Into<PathBuf>, dst: impl Into<PathBuf>) -> Mount {
        Mount {
            tag,
            source: Source::Host(src.into()),
            dst: dst.into(),
            readonly: false,
            nosuid: true,
            nodev: false,
            required: false,
            create: None,
        }
    }

    /// A fresh directory of the session tmpfs at `dst`: writable, `nosuid`, `nodev`, required.
    pub fn scratch(tag: Tag, dst: impl Into<PathBuf>) -> Mount {
        Mount {
            tag,
            source: Source::Scratch,
            dst: dst.into(),
            readonly: false,
            nosuid: true,
            nodev: true,
            required: true,
            create: None,
        }
    }

    /// A generated file (`source`) at `dst`: read-only, `nosuid`, `nodev`, never missing.
    pub fn generated(tag: Tag, source: Source, dst: impl Into<PathBuf>) -> Mount {
        Mount {
            tag,
            source,
            dst: dst.into(),
            readonly: true,
            nosuid: true,
            nodev: true,
            required: false,
            create: None,
        }
    }
}

/// Data for the generated `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub user: Option<UserInfo>,
    /// The home directory as the container sees it.
    pub home_dst: PathBuf,
    pub group_name: Option<String>,
    pub groups: Vec<(u32, String)>,
}

/// The working directory of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cwd {
    pub path: PathBuf,
    /// From `--pwd`: failing to enter it is an error (otherwise a warning and `/`).
    pub explicit: bool,
}

/// How ids are mapped into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMap {
    /// No user namespace: root on the host, kernel mounts allowed.
    Host,
    /// A user namespace mapping the caller's uid and gid to themselves (one id each).
    Own,
    /// `--fakeroot`: root inside is the caller, plus the subordinate ids of `user` (the host
    /// login name) when `/etc/subuid`/`/etc/subgid` give a range and the helpers are found in
    /// `path` (the host `PATH`); decided at launch by [`crate::fakeroot::prepare`].
    /// `subids` false (`--ignore-subuid`) maps root alone whatever the files say.
    Fakeroot {
        user: Option<String>,
        path: String,
        subids: bool,
    },
}

/// Everything [`crate::exec::run`] needs, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// Absolute host path of the sandbox directory.
    pub image: PathBuf,
    pub namespaces: sifr_sys::ns::Namespaces,
    /// The id maps of the user namespace (`Host` when there is none).
    pub ids: IdMap,
    pub identity: Identity,
    /// Write into the image instead of an overlay; the image root is read-only otherwise.
    pub writable: bool,
    /// Keep the overlay root writable (`--writable-tmpfs`); the overlay is then required.
    pub writable_tmpfs: bool,
    /// The `--overlay` layers asked for ([`crate::overlay`]), lowest first.
    pub overlay: Vec<crate::overlay::Spec>,
    /// Size of the session tmpfs in MiB.
    pub session_mib: u64,
    /// The UTS namespace's host name (`--hostname`).
    pub hostname: Option<String>,
    /// In mount order.
    pub mounts: Vec<Mount>,
    /// Join (or start) the node's holder of this image, which stays this long after its last
    /// launch ([`crate::share`]); `None` for launches that cannot share (fakeroot, `--writable`).
    pub share: Option<std::time::Duration>,
    /// See [`Options::ready_fd`].
    pub ready_fd: Option<ReadyFd>,
    /// See [`Options::no_init`].
    pub no_init: bool,
    /// See [`Options::runscript_timeout`].
    pub runscript_timeout: Option<std::time::Duration>,
    /// See [`Options::app`].
    pub app: Option<crate::apps::App>,
    /// See [`Options::no_umask`].
    pub no_umask: bool,
    /// The network: the host's, a loopback-only namespace, or one to join ([`crate::net`]).
    pub net: crate::net::Plan,
    pub env: EnvPlan,
    pub action: Action,
    pub cwd: Cwd,
    /// The command's capabilities, ids and LSM label ([`crate::privs`]).
    pub privs: crate::privs::Resolved,
    /// The cgroup limits to run the command under ([`crate::cgroup`]); set by `prepare`.
    pub cgroup: Option<crate::cgroup::Limits>,
    /// The `--fusemount` programs ([`crate::fusemount`]).
    pub fuse: crate::fusemount::FusePlan,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("image path `{}` is not absolute", path.display())]
    RelativeImage { path: PathBuf },
    #[error("invalid `--home` value `{value}`: paths must be absolute")]
    RelativeHome { value: String },
    #[error("invalid `--pwd` value `{}`: it must be an absolute path", path.display())]
    RelativeCwd { path: PathBuf },
    #[error("no command given to run in the container")]
    NoCommand,
    #[error("uid {uid} has no entry in the host user database, and no `--home` was given")]
    NoHome { uid: u32 },
    #[error("`{a}` and `{b}` cannot be used together")]
    Conflict { a: &'static str, b: &'static str },
    #[error("invalid `{flag}` value `{}`: it must be an absolute path", path.display())]
    RelativePath { flag: &'static str, path: PathBuf },
    #[error("invalid `--hostname` value `{name}`: it must have 1 to 64 bytes")]
    Hostname { name: String },
    #[error("invalid session tmpfs size `{mib}` MiB: it must be at least 1")]
    SessionSize { mib: u64 },
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
}

/// The environment rules of a launch, as data (made by [`crate::env::plan`], applied by
/// [`crate::env::finish`]; the steps are [`crate::env`]'s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvPlan {
    /// Step 1: set before the image's scripts run.
    pub seed: Vec<(String, String)>,
    /// Step 3: overrides, applied in order (later wins); values are evaluated unless
    /// `no_eval`.
    pub overrides: Vec<(String, String)>,
    /// `--no-eval`: the overrides are taken literally.
    pub no_eval: bool,
    /// Step 4.
    pub path_set: Option<String>,
    pub path_prepend: Option<String>,
    pub path_append: Option<String>,
    /// Step 5: host variables restored when the image did not set them.
    pub host: Vec<(String, String)>,
}

/// The GPU vendor a `--nv` or `--rocm` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Nvidia,
    Amd,
}

/// A host library to bind: `name` is the file name in the container (the name the loader
/// searches for, e.g. `libcuda.so.1`), `path` the host file it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lib {
    pub name: String,
    pub path: PathBuf,
    pub bits32: bool,
}

/// What GPU discovery found for one vendor ([`crate::gpu::discover`]): plain data for
/// [`crate::gpu::mounts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub vendor: Vendor,
    pub libs: Vec<Lib>,
    /// Program name and host path.
    pub programs: Vec<(String, PathBuf)>,
    /// Vendor files and sockets bound at their own path.
    pub files: Vec<PathBuf>,
    /// Device nodes (and node directories like `/dev/dri`) for `--contain`'s minimal `/dev`.
    pub devices: Vec<PathBuf>,
    /// Variables given to the container unless the host or the image sets them.
    pub env: Vec<(String, String)>,
    /// What a working driver would have had and this host lacks, one message each.
    pub warnings: Vec<String>,
}
