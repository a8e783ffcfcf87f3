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

use crate::env;
use crate::nomount::NoMount;

pub mod types;

pub use types::{
    Action, Cwd, DEFAULT_SESSION_MIB, HomeSpec, HostFacts, IdMap, Identity, LaunchPlan, Mount,
    Options, PlanError, ReadyFd, Source, Tag, UserInfo,
};

/// Root's home inside the container under `--fakeroot`.
pub const ROOT_HOME: &str = "/root";

/// The longest host name the kernel accepts (`HOST_NAME_MAX`).
pub const HOSTNAME_MAX: usize = 64;

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
///
/// The checks come first (`check`), then the decisions the contributors share (id maps,
/// namespaces, the home); then each contributor adds its mounts in Apptainer's tag order, and
/// the mounts are sorted by depth.
pub fn build(
    opts: &Options,
    image: &Path,
    action: Action,
    host: &HostFacts,
) -> Result<LaunchPlan, PlanError> {
    let session_mib = check(opts, image, &action)?;
    let ids = id_map(opts, host);
    let net = crate::net::decide(
        &opts.net,
        crate::net::Caller {
            root: host.uid == 0,
            userns: opts.userns,
            fakeroot: opts.fakeroot,
        },
    )?;
    let namespaces = sifr_sys::ns::Namespaces {
        user: ids != IdMap::Host,
        mount: true,
        pid: opts.pid,
        ipc: opts.ipc,
        uts: opts.uts || opts.hostname.is_some(),
        net: net.mode == crate::net::Mode::Loopback,
    };
    let home = home_spec(opts, host)?;
    let cx = Contrib {
        opts,
        host,
        home: &home,
    };

    let mut mounts = Vec::new();
    cx.system_mounts(&mut mounts);
    cx.host_files(&mut mounts);
    cx.home(&mut mounts);
    cx.tmp(&mut mounts);
    // Before the user's binds, so that a user bind on the same path is on top.
    mounts.extend(crate::gpu::mounts(
        &host.gpu,
        crate::gpu::DevView::of(opts.contain),
    ));
    if opts.contain {
        for d in &opts.devices {
            mounts.push(Mount::host(Tag::Gpu, d, d));
        }
    }
    // `--containlibs` shares the libraries directory a GPU flag may already have made.
    for m in crate::gpu::lib_mounts(&opts.containlibs) {
        if !mounts.iter().any(|x: &Mount| x.dst == m.dst) {
            mounts.push(m);
        }
    }
    cx.user_binds(&mut mounts);
    mounts.extend(crate::scratch::mounts(
        &opts.extra_mounts.scratch,
        opts.workdir.as_deref(),
    ));
    mounts.extend(crate::fusemount::mounts(&opts.extra_mounts.fuse));
    let cwd = cx.cwd(&mut mounts);
    let identity = cx.identity();
    cx.identity_files(&mut mounts);
    cx.hostname(&mut mounts);
    crate::net::mounts(&net, opts.contain, &mut mounts);

    // Shortest destination first (Apptainer >= 1.2), so a parent never hides a child; equal
    // depths keep tag order, and a later user bind on the same path wins by being on top.
    mounts.sort_by_key(|m| m.dst.components().count());

    let env = env::plan(opts, host, image, &home.dst);
    // A fakeroot namespace maps other ids (and differs per launch); `--writable` writes to a
    // sandbox, which is never attached.
    let share = opts
        .share_idle
        .filter(|_| matches!(ids, IdMap::Host | IdMap::Own) && !opts.writable);
    let privs = opts.privs.resolve(identity.uid, ids != IdMap::Host);
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
        ready_fd: opts.ready_fd.clone(),
        no_init: opts.no_init,
        runscript_timeout: opts.runscript_timeout,
        app: opts.app.clone(),
        no_umask: opts.no_umask,
        net,
        env,
        action: opts.privs.action(action),
        cwd,
        privs,
        cgroup: None,
        fuse: crate::fusemount::FusePlan {
            specs: opts.extra_mounts.fuse.clone(),
            host_cwd: host.cwd.clone(),
        },
    })
}

/// The checks of the options alone, in the order their errors are reported; returns the size of
/// the session tmpfs.
fn check(opts: &Options, image: &Path, action: &Action) -> Result<u64, PlanError> {
    if !image.is_absolute() {
        return Err(PlanError::RelativeImage { path: image.into() });
    }
    if let Action::Exec(argv) = action
        && argv.is_empty()
    {
        return Err(PlanError::NoCommand);
    }
    if let Some(c) = &opts.cwd
        && !c.is_absolute()
    {
        return Err(PlanError::RelativeCwd { path: c.clone() });
    }
    for (flag, p) in [
        ("--workdir", &opts.workdir),
        ("the build's scratch directory", &opts.build_scratch),
    ] {
        if let Some(p) = p
            && !p.is_absolute()
        {
            return Err(PlanError::RelativePath {
                flag,
                path: p.clone(),
            });
        }
    }
    // `--overlay` goes with `--writable-tmpfs` when its layers are read-only and with
    // `--writable` never: `crate::overlay::open` says so, knowing which layers can be written.
    let writes = [
        ("--writable", opts.writable),
        ("--writable-tmpfs", opts.writable_tmpfs),
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
    Ok(session_mib)
}

/// Only a mount namespace as root; user+mount otherwise, own ids mapped to themselves (or
/// root to the caller with --fakeroot). PID, IPC and UTS are the host's unless asked for.
/// `--userns` and `--fakeroot` take the unprivileged path even for root, as in Apptainer.
fn id_map(opts: &Options, host: &HostFacts) -> IdMap {
    if opts.fakeroot {
        IdMap::Fakeroot {
            subids: !opts.ignore_subuid,
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
    }
}

/// The home: `--home`, else the passwd home (at root's under `--fakeroot`, as Apptainer does).
fn home_spec(opts: &Options, host: &HostFacts) -> Result<HomeSpec, PlanError> {
    Ok(match (&opts.home, &host.user) {
        (Some(h), _) => h.clone(),
        (None, Some(u)) if opts.fakeroot => HomeSpec {
            src: u.home.clone(),
            dst: ROOT_HOME.into(),
        },
        (None, Some(u)) => HomeSpec {
            src: u.home.clone(),
            dst: u.home.clone(),
        },
        (None, None) => return Err(PlanError::NoHome { uid: host.uid }),
    })
}

/// What the mount contributors of [`build`] read: the options, the host, and the home decided
/// before them. Each contributor appends its mounts, in the order they were asked for.
struct Contrib<'a> {
    opts: &'a Options,
    host: &'a HostFacts,
    home: &'a HomeSpec,
}

impl Contrib<'_> {
    /// Whether `--no-mount` names `n`.
    fn skip(&self, n: NoMount) -> bool {
        self.opts.no_mount.contains(&n)
    }

    /// A `--workdir` directory, created on the host when missing (Apptainer's modes).
    fn work(&self, tag: Tag, name: &str, dst: &Path, mode: u32) -> Option<Mount> {
        self.opts.workdir.as_ref().map(|w| Mount {
            nodev: true,
            required: true,
            create: Some(mode),
            ..Mount::host(tag, w.join(name), dst)
        })
    }

    /// [`SYSTEM_MOUNTS`] (those `--no-mount` leaves), `--contain`'s minimal `/dev` instead of
    /// the host's, and the new `/proc` of `--pid` over the host's.
    fn system_mounts(&self, mounts: &mut Vec<Mount>) {
        for (p, _) in SYSTEM_MOUNTS {
            let off = match *p {
                "/proc" => self.skip(NoMount::Proc),
                "/sys" => self.skip(NoMount::Sys),
                _ => self.skip(NoMount::Dev),
            };
            if off {
                continue;
            }
            if *p == "/dev" && self.opts.contain {
                self.contained_dev(mounts);
                continue;
            }
            let tag = if *p == "/dev" { Tag::Dev } else { Tag::System };
            mounts.push(Mount::host(tag, p, p));
            if *p == "/dev" && self.opts.build_scratch.is_some() {
                mounts.push(Mount::scratch(Tag::Dev, "/dev/shm"));
            }
            if *p == "/proc" && self.opts.pid {
                mounts.push(Mount {
                    source: Source::Proc,
                    ..Mount::scratch(Tag::System, "/proc")
                });
            }
        }
    }

    /// `--contain`'s `/dev`: a scratch directory with [`CONTAIN_DEVICES`], `/dev/shm` and a new
    /// devpts instance.
    fn contained_dev(&self, mounts: &mut Vec<Mount>) {
        mounts.push(Mount {
            nodev: false,
            ..Mount::scratch(Tag::Dev, "/dev")
        });
        for d in CONTAIN_DEVICES {
            mounts.push(Mount::host(Tag::Dev, d, d));
        }
        mounts.push(Mount::scratch(Tag::Dev, "/dev/shm"));
        if !self.skip(NoMount::Devpts) {
            mounts.push(Mount {
                source: Source::Devpts,
                nodev: false,
                ..Mount::scratch(Tag::Dev, "/dev/pts")
            });
        }
    }

    /// [`HOST_FILES`], read-only, unless `--no-mount` names them.
    fn host_files(&self, mounts: &mut Vec<Mount>) {
        for (p, _) in HOST_FILES {
            if self.skip(NoMount::BindPaths) || self.skip(NoMount::Path(PathBuf::from(p))) {
                continue;
            }
            mounts.push(Mount {
                readonly: true,
                nodev: true,
                ..Mount::host(Tag::HostFile, p, p)
            });
        }
    }

    /// The home: a scratch (or `--workdir`) directory with `--contain`, the host's otherwise;
    /// nothing with `--no-home` (`--no-mount home` is the same switch, in Apptainer too).
    fn home(&self, mounts: &mut Vec<Mount>) {
        if self.opts.no_home || self.skip(NoMount::Home) {
            return;
        }
        let home = self.home;
        if self.opts.contain && self.opts.home.is_none() {
            mounts.push(
                self.work(Tag::Home, "home", &home.dst, 0o700)
                    .unwrap_or_else(|| Mount {
                        dst: home.dst.clone(),
                        ..Mount::scratch(Tag::Home, "/")
                    }),
            );
        } else {
            mounts.push(Mount {
                nodev: true,
                // A user-named home must exist; the passwd home may not (e.g. `/nonexistent`).
                required: self.opts.home.is_some(),
                ..Mount::host(Tag::Home, &home.src, &home.dst)
            });
        }
    }

    /// `/tmp` and `/var/tmp`: a build section's own directories, scratch (or `--workdir`)
    /// directories with `--contain`, the host's otherwise (`/var/tmp` once when it is the host's `/tmp`); with `--no-mount tmp` neither,
    /// so the image's own directories (or none) show.
    fn tmp(&self, mounts: &mut Vec<Mount>) {
        if self.skip(NoMount::Tmp) {
            return;
        }
        if let Some(dir) = &self.opts.build_scratch {
            for (dst, name) in [("/tmp", "tmp"), ("/var/tmp", "var_tmp")] {
                mounts.push(Mount {
                    nodev: true,
                    required: true,
                    create: Some(0o1777),
                    ..Mount::host(Tag::Tmp, dir.join(name), dst)
                });
            }
            return;
        }
        if self.opts.contain {
            for (dst, name) in [("/tmp", "tmp"), ("/var/tmp", "var_tmp")] {
                mounts.push(
                    self.work(Tag::Tmp, name, Path::new(dst), 0o1777)
                        .unwrap_or_else(|| Mount::scratch(Tag::Tmp, dst)),
                );
            }
            return;
        }
        let dirs: &[&str] = if self.host.var_tmp_is_tmp {
            &["/tmp"]
        } else {
            &["/tmp", "/var/tmp"]
        };
        for p in dirs {
            mounts.push(Mount {
                nodev: true,
                ..Mount::host(Tag::Tmp, p, p)
            });
        }
    }

    /// `-B/--bind`: required, read-only when asked.
    fn user_binds(&self, mounts: &mut Vec<Mount>) {
        for b in &self.opts.binds {
            mounts.push(Mount {
                readonly: b.readonly,
                nodev: true,
                required: true,
                ..Mount::host(Tag::UserBind, &b.src, &b.dst)
            });
        }
    }

    /// The working directory: `--pwd`, else the home with `--contain`, else the host's, which
    /// is bound at the same path unless a same-path bind already shows it there.
    fn cwd(&self, mounts: &mut Vec<Mount>) -> Cwd {
        let (opts, host) = (self.opts, self.host);
        let cwd = match &opts.cwd {
            Some(c) => Cwd {
                path: c.clone(),
                explicit: true,
            },
            None => Cwd {
                path: if opts.contain {
                    self.home.dst.clone()
                } else {
                    host.cwd.clone()
                },
                explicit: false,
            },
        };
        if !opts.contain
            && !self.skip(NoMount::Cwd)
            && !covered(&host.cwd, mounts)
            && host.cwd != Path::new("/")
        {
            mounts.push(Mount {
                nodev: true,
                ..Mount::host(Tag::Cwd, &host.cwd, &host.cwd)
            });
        }
        cwd
    }

    /// Who the command runs as, for the generated `/etc/passwd` and `/etc/group`.
    fn identity(&self) -> Identity {
        let (opts, host) = (self.opts, self.host);
        if opts.fakeroot {
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
                home_dst: self.home.dst.clone(),
                group_name: Some("root".into()),
                groups: Vec::new(),
            }
        } else {
            Identity {
                uid: host.uid,
                gid: host.gid,
                user: host.user.clone(),
                home_dst: self.home.dst.clone(),
                group_name: host.group_name.clone(),
                groups: host.groups.clone(),
            }
        }
    }

    /// The generated `/etc/passwd` and `/etc/group`, except for root with `--writable` (as
    /// Apptainer: it would edit the image's).
    fn identity_files(&self, mounts: &mut Vec<Mount>) {
        if self.opts.writable && self.host.uid == 0 {
            return;
        }
        for (src, dst) in [
            (Source::Passwd, "/etc/passwd"),
            (Source::Group, "/etc/group"),
        ] {
            mounts.push(Mount::generated(Tag::Identity, src, dst));
        }
    }

    /// The generated `/etc/hostname` of `--hostname`.
    fn hostname(&self, mounts: &mut Vec<Mount>) {
        if self.opts.hostname.is_some() {
            mounts.push(Mount::generated(
                Tag::Hostname,
                Source::Hostname,
                "/etc/hostname",
            ));
        }
    }
}

/// Whether `path` is visible at the same path through a same-path host bind already planned.
fn covered(path: &Path, mounts: &[Mount]) -> bool {
    mounts.iter().any(|m| match &m.source {
        Source::Host(src) => src == &m.dst && path.starts_with(&m.dst) && m.dst != Path::new("/"),
        _ => false,
    })
}

#[cfg(test)]
mod tests;

mod render;
