//! Options + image path + host facts -> [`LaunchPlan`]: plain data saying which namespaces to
//! create, which identity to keep, which mounts to make in which order, the environment rules,
//! the command and the working directory.
//!
//! Pure: no I/O, no system calls, no environment reads (the caller gathers [`HostFacts`], see
//! [`crate::host`]). Everything here can be unit-tested without privileges. Nothing here runs
//! across a namespace change; [`crate::exec`] applies the plan.
//!
//! The default mounts follow Apptainer's (`apptainer.conf` defaults and `container_linux.go`):
//! see [`SYSTEM_MOUNTS`] and [`HOST_FILES`].

use std::path::{Path, PathBuf};

use crate::bind::Bind;
use crate::env::{self, EnvPlan};
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
    /// `--overlay DIR` (absolute): a persistent writable upper layer over the image.
    pub overlay: Option<PathBuf>,
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
    pub ready_fd: Option<i32>,
}

/// Apptainer's `sessiondir max size`: the session tmpfs (generated files, `--contain` scratch
/// directories, the overlay's upper layer of `--writable-tmpfs`) may hold this many MiB.
pub const DEFAULT_SESSION_MIB: u64 = 64;

/// Root's home inside the container under `--fakeroot`.
pub const ROOT_HOME: &str = "/root";

/// The longest host name the kernel accepts (`HOST_NAME_MAX`).
pub const HOSTNAME_MAX: usize = 64;

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
    pub gpu: Vec<crate::gpu::Found>,
}

/// The command that runs in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `exec IMAGE CMD ARGS...`.
    Exec(Vec<String>),
    /// `run IMAGE ARGS...`: `/.singularity.d/runscript`, else `/singularity`, else `/bin/sh`.
    Run(Vec<String>),
    /// `shell IMAGE`: `/bin/bash --norc` if present, else `/bin/sh`.
    Shell,
    /// `test IMAGE ARGS...`: `/.singularity.d/test`; without one, nothing to do.
    Test(Vec<String>),
    /// `instance start IMAGE NAME ARGS...`: `/.singularity.d/startscript` if there is one, then
    /// the launcher stays, keeping the container for `instance://NAME`, until SIGTERM.
    Start(Vec<String>),
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
    /// `--nv`/`--rocm`: host driver libraries, programs, vendor files and devices.
    Gpu,
    Cwd,
    Identity,
    Hostname,
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
    Fakeroot { user: Option<String>, path: String },
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
    /// A persistent upper layer for the overlay (`--overlay DIR`), instead of the session's.
    pub overlay: Option<PathBuf>,
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
    pub ready_fd: Option<i32>,
    pub env: EnvPlan,
    pub action: Action,
    pub cwd: Cwd,
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
}

/// Host directories bound at the same path, always (`mount proc`, `mount sys`, `mount dev`).
/// `/dev` is a full recursive bind unless `--contain` (then a minimal staged `/dev`).
pub const SYSTEM_MOUNTS: &[(&str, &str)] = &[
    (
        "/proc",
        "host processes (a bind; with --pid a new procfs is mounted on top of it)",
    ),
    (
        "/sys",
        "sysfs (a bind: a new sysfs needs a network namespace)",
    ),
    (
        "/dev",
        "host devices, recursively (GPUs, interconnects, /dev/shm for MPI)",
    ),
];

/// Host files bound read-only at the same path (`bind path` defaults plus `config resolv_conf`).
/// Apptainer binds them writable; read-only keeps root in a container from editing the host's.
pub const HOST_FILES: &[(&str, &str)] = &[
    ("/etc/localtime", "the host's time zone"),
    ("/etc/hosts", "host name resolution as on the host"),
    ("/etc/resolv.conf", "DNS as on the host"),
];

/// Device nodes bound into the minimal `/dev` of `--contain`.
pub const CONTAIN_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// Build the plan. `image` must be absolute (the caller canonicalises it).
pub fn build(
    opts: &Options,
    image: &Path,
    action: Action,
    host: &HostFacts,
) -> Result<LaunchPlan, PlanError> {
    if !image.is_absolute() {
        return Err(PlanError::RelativeImage { path: image.into() });
    }
    if let Action::Exec(argv) = &action
        && argv.is_empty()
    {
        return Err(PlanError::NoCommand);
    }
    if let Some(c) = &opts.cwd
        && !c.is_absolute()
    {
        return Err(PlanError::RelativeCwd { path: c.clone() });
    }
    for (flag, p) in [("--workdir", &opts.workdir), ("--overlay", &opts.overlay)] {
        if let Some(p) = p
            && !p.is_absolute()
        {
            return Err(PlanError::RelativePath {
                flag,
                path: p.clone(),
            });
        }
    }
    let writes = [
        ("--writable", opts.writable),
        ("--writable-tmpfs", opts.writable_tmpfs),
        ("--overlay", opts.overlay.is_some()),
    ];
    let on: Vec<&'static str> = writes.iter().filter(|w| w.1).map(|w| w.0).collect();
    if let [a, b, ..] = on[..] {
        return Err(PlanError::Conflict { a, b });
    }
    if let Some(h) = &opts.hostname
        && (h.is_empty() || h.len() > HOSTNAME_MAX)
    {
        return Err(PlanError::Hostname { name: h.clone() });
    }
    let session_mib = opts.session_mib.unwrap_or(DEFAULT_SESSION_MIB);
    if session_mib == 0 {
        return Err(PlanError::SessionSize { mib: 0 });
    }
    let skip = |n: NoMount| opts.no_mount.contains(&n);
    // `--no-mount home` is `--no-home` (one switch in Apptainer too).
    let no_home = opts.no_home || skip(NoMount::Home);

    // Only a mount namespace as root; user+mount otherwise, own ids mapped to themselves (or
    // root to the caller with --fakeroot). PID, IPC and UTS are the host's unless asked for.
    // `--userns` and `--fakeroot` take the unprivileged path even for root, as in Apptainer.
    let ids = if opts.fakeroot {
        IdMap::Fakeroot {
            user: host.user.as_ref().map(|u| u.name.clone()),
            path: host
                .env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        }
    } else if opts.userns || !host.privileged {
        IdMap::Own
    } else {
        IdMap::Host
    };
    let namespaces = sifr_sys::ns::Namespaces {
        user: ids != IdMap::Host,
        mount: true,
        pid: opts.pid,
        ipc: opts.ipc,
        uts: opts.uts || opts.hostname.is_some(),
    };

    let home = match (&opts.home, &host.user) {
        (Some(h), _) => h.clone(),
        // Fakeroot shows the caller's home at root's, as Apptainer does.
        (None, Some(u)) if opts.fakeroot => HomeSpec {
            src: u.home.clone(),
            dst: ROOT_HOME.into(),
        },
        (None, Some(u)) => HomeSpec {
            src: u.home.clone(),
            dst: u.home.clone(),
        },
        (None, None) => return Err(PlanError::NoHome { uid: host.uid }),
    };

    let mut mounts = Vec::new();
    let host_mount = |tag, src: &Path, dst: &Path, ro, nodev, required| Mount {
        tag,
        source: Source::Host(src.into()),
        dst: dst.into(),
        readonly: ro,
        nosuid: true,
        nodev,
        required,
        create: None,
    };
    let scratch = |tag, dst: &str| Mount {
        tag,
        source: Source::Scratch,
        dst: dst.into(),
        readonly: false,
        nosuid: true,
        nodev: true,
        required: true,
        create: None,
    };
    // A `--workdir` directory, created on the host when missing (Apptainer's modes).
    let work = |tag, name: &str, dst: &Path, mode: u32| {
        opts.workdir.as_ref().map(|w| Mount {
            create: Some(mode),
            ..host_mount(tag, &w.join(name), dst, false, true, true)
        })
    };

    for (p, _) in SYSTEM_MOUNTS {
        let off = match *p {
            "/proc" => skip(NoMount::Proc),
            "/sys" => skip(NoMount::Sys),
            _ => skip(NoMount::Dev),
        };
        if off {
            continue;
        }
        if *p == "/dev" && opts.contain {
            mounts.push(Mount {
                nodev: false,
                ..scratch(Tag::Dev, "/dev")
            });
            for d in CONTAIN_DEVICES {
                mounts.push(host_mount(
                    Tag::Dev,
                    Path::new(d),
                    Path::new(d),
                    false,
                    false,
                    false,
                ));
            }
            mounts.push(scratch(Tag::Dev, "/dev/shm"));
            if !skip(NoMount::Devpts) {
                mounts.push(Mount {
                    source: Source::Devpts,
                    nodev: false,
                    ..scratch(Tag::Dev, "/dev/pts")
                });
            }
            continue;
        }
        let tag = if *p == "/dev" { Tag::Dev } else { Tag::System };
        mounts.push(host_mount(
            tag,
            Path::new(p),
            Path::new(p),
            false,
            false,
            false,
        ));
        if *p == "/proc" && opts.pid {
            mounts.push(Mount {
                source: Source::Proc,
                nodev: true,
                ..scratch(Tag::System, "/proc")
            });
        }
    }
    for (p, _) in HOST_FILES {
        if skip(NoMount::BindPaths) || skip(NoMount::Path(PathBuf::from(p))) {
            continue;
        }
        mounts.push(host_mount(
            Tag::HostFile,
            Path::new(p),
            Path::new(p),
            true,
            true,
            false,
        ));
    }
    if !no_home {
        if opts.contain && opts.home.is_none() {
            mounts.push(
                work(Tag::Home, "home", &home.dst, 0o700).unwrap_or_else(|| Mount {
                    dst: home.dst.clone(),
                    ..scratch(Tag::Home, "/")
                }),
            );
        } else {
            // A user-named home must exist; the passwd home may not (e.g. `/nonexistent`).
            let required = opts.home.is_some();
            mounts.push(host_mount(
                Tag::Home,
                &home.src,
                &home.dst,
                false,
                true,
                required,
            ));
        }
    }
    if skip(NoMount::Tmp) {
        // Neither /tmp nor /var/tmp: the image's own directories (or none) show.
    } else if opts.contain {
        for (dst, name) in [("/tmp", "tmp"), ("/var/tmp", "var_tmp")] {
            mounts.push(
                work(Tag::Tmp, name, Path::new(dst), 0o1777)
                    .unwrap_or_else(|| scratch(Tag::Tmp, dst)),
            );
        }
    } else {
        mounts.push(host_mount(
            Tag::Tmp,
            Path::new("/tmp"),
            Path::new("/tmp"),
            false,
            true,
            false,
        ));
        if !host.var_tmp_is_tmp {
            let p = Path::new("/var/tmp");
            mounts.push(host_mount(Tag::Tmp, p, p, false, true, false));
        }
    }
    // Before the user's binds, so that a user bind on the same path is on top.
    mounts.extend(crate::gpu::mounts(&host.gpu, opts.contain));
    for b in &opts.binds {
        mounts.push(host_mount(
            Tag::UserBind,
            &b.src,
            &b.dst,
            b.readonly,
            true,
            true,
        ));
    }

    let cwd = if let Some(c) = &opts.cwd {
        Cwd {
            path: c.clone(),
            explicit: true,
        }
    } else if opts.contain {
        Cwd {
            path: home.dst.clone(),
            explicit: false,
        }
    } else {
        Cwd {
            path: host.cwd.clone(),
            explicit: false,
        }
    };
    // The host cwd is bound at the same path unless a same-path bind already shows it there.
    if !opts.contain
        && !skip(NoMount::Cwd)
        && !covered(&host.cwd, &mounts)
        && host.cwd != Path::new("/")
    {
        mounts.push(host_mount(
            Tag::Cwd,
            &host.cwd,
            &host.cwd,
            false,
            true,
            false,
        ));
    }

    let identity = if opts.fakeroot {
        // Root's entries: the image's `root` line is kept (name and shell), the host's
        // supplementary groups are not mapped in the namespace and are left out.
        Identity {
            uid: 0,
            gid: 0,
            user: Some(UserInfo {
                name: "root".into(),
                gecos: "root".into(),
                home: ROOT_HOME.into(),
                shell: "/bin/sh".into(),
            }),
            home_dst: home.dst.clone(),
            group_name: Some("root".into()),
            groups: Vec::new(),
        }
    } else {
        Identity {
            uid: host.uid,
            gid: host.gid,
            user: host.user.clone(),
            home_dst: home.dst.clone(),
            group_name: host.group_name.clone(),
            groups: host.groups.clone(),
        }
    };
    // Apptainer skips the generated files for root with --writable (it would edit the image's).
    if !(opts.writable && host.uid == 0) {
        for (src, dst) in [
            (Source::Passwd, "/etc/passwd"),
            (Source::Group, "/etc/group"),
        ] {
            mounts.push(Mount {
                tag: Tag::Identity,
                source: src,
                dst: dst.into(),
                readonly: true,
                nosuid: true,
                nodev: true,
                required: false,
                create: None,
            });
        }
    }
    if opts.hostname.is_some() {
        mounts.push(Mount {
            tag: Tag::Hostname,
            source: Source::Hostname,
            dst: "/etc/hostname".into(),
            readonly: true,
            nosuid: true,
            nodev: true,
            required: false,
            create: None,
        });
    }

    // Shortest destination first (Apptainer >= 1.2), so a parent never hides a child; equal
    // depths keep tag order, and a later user bind on the same path wins by being on top.
    mounts.sort_by_key(|m| m.dst.components().count());

    let env = env::plan(opts, host, image, &home.dst);
    // A fakeroot namespace maps other ids (and differs per launch); `--writable` writes to a
    // sandbox, which is never attached.
    let share = opts
        .share_idle
        .filter(|_| matches!(ids, IdMap::Host | IdMap::Own) && !opts.writable);
    Ok(LaunchPlan {
        image: image.into(),
        namespaces,
        ids,
        identity,
        writable: opts.writable,
        writable_tmpfs: opts.writable_tmpfs,
        overlay: opts.overlay.clone(),
        session_mib,
        hostname: opts.hostname.clone(),
        mounts,
        share,
        ready_fd: opts.ready_fd,
        env,
        action,
        cwd,
    })
}

/// Whether `path` is visible at the same path through a same-path host bind already planned.
fn covered(path: &Path, mounts: &[Mount]) -> bool {
    mounts.iter().any(|m| match &m.source {
        Source::Host(src) => src == &m.dst && path.starts_with(&m.dst) && m.dst != Path::new("/"),
        _ => false,
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

#[path = "plan_render.rs"]
mod render;
