//! Apply a [`LaunchPlan`]: enter namespaces, assemble the root ([`crate::assemble`]),
//! `pivot_root`, build the environment, then fork the command and wait for it.
//!
//! Runs across the uid/namespace change. Order, and why:
//! 1. host-side work first (canonical bind sources), because after `unshare` the host is only
//!    reachable through `/oldroot` and NSS must not run in the new namespaces;
//!    The image is staged there too ([`crate::attach`]): loop device bound (root) or image
//!    extracted to a temporary sandbox (no usable FUSE);
//! 2. `unshare` (user+mount, or mount alone as root without `--userns`/`--fakeroot`) — the process must be single-threaded, which
//!    `sifr_sys::ns::unshare` checks; nothing on this path starts a thread;
//! 3. uid/gid maps (own ids to themselves; for `--fakeroot` root to the caller, through the
//!    `newuidmap`/`newgidmap` helpers forked just before step 2 when subordinate ids are
//!    configured, see [`crate::fakeroot`]), session tmpfs, the image mounted in it (kernel
//!    squashfs, or FUSE with its server forked here), mounts, `pivot_root`;
//! 4. the image's env scripts are read inside the container (their paths are container paths);
//! 5. `no_new_privs`, then fork: the child only restores the signal mask and `execve`s; the
//!    parent stays as a reaper in the container's namespaces, forwards SIGINT/SIGTERM/SIGHUP and
//!    friends, and returns the command's status (128+N when killed by signal N). With `--pid`
//!    the PID namespace is unshared only now (the first process forked after it is its PID 1),
//!    and the fork is an init ([`sifr_sys::process::spawn_init`]) that mounts the new `/proc` and
//!    forks the command in turn. The UTS namespace is named right after step 2, and a new
//!    network namespace's `lo` brought up there; `--netns-path` is joined before step 2.
//!
//! Must not: print (warnings go through `tracing`), or leave anything behind on the host: every
//! mount lives in the private mount namespace, which disappears with the last process in it
//! (taking an auto-clearing loop device with it); the FUSE server is terminated and the
//! extracted sandbox removed by this process before [`run_image`] returns.

use std::ffi::OsString;
use std::os::fd::{AsFd as _, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::assemble;
use crate::attach;
use crate::cmdpath::command_candidates;
use crate::env;
use crate::envscript;
use crate::error::{PROC_STEP, step};
use crate::fakeroot;
use crate::image::{Attach, Format, Image};
use crate::plan::types::{Action, IdMap, LaunchPlan, ReadyFd, Source};
use crate::share;
use crate::vars::{DEFAULT_PATH, Vars};

pub use crate::error::ExecError;

/// Run the plan on a sandbox directory (`plan.image`); returns the command's exit status. See
/// [`run_image`].
pub fn run(plan: &LaunchPlan) -> Result<i32, ExecError> {
    if !plan.image.is_dir() {
        return Err(ExecError::NotADirectory {
            path: plan.image.clone(),
        });
    }
    let image = Image {
        path: plan.image.clone(),
        format: Format::Sandbox,
        offset: 0,
        size: 0,
    };
    run_image(plan, &image, &Attach::Directory)
}

/// Run the plan with `image` attached as `how` (from [`crate::image::choose`]); returns the
/// command's exit status. Must be called from a single-threaded process (the user namespace
/// requires it); on success the process is left inside the container's namespaces and root, so
/// callers should exit with the returned status. Everything attached is released before this
/// returns (FUSE server reaped, extracted sandbox removed); mounts and loop devices go with the
/// mount namespace when the process exits.
pub fn run_image(plan: &LaunchPlan, image: &Image, how: &Attach) -> Result<i32, ExecError> {
    // Made on the host, before anything else; removed when this returns, error or not.
    let cgroup =
        crate::cgroup::Active::enter(plan.cgroup.as_ref()).inspect_err(|_| share::release())?;
    let cgroup = cgroup.as_ref().map(crate::cgroup::Active::procs);
    // Before any namespace change, which starting a holder makes in this process.
    let prepared = assemble::prepare(plan).inspect_err(|_| share::release())?;
    let layers = open_layers(plan, image).inspect_err(|_| share::release())?;
    let joined = match (plan.share, how) {
        (Some(idle), Attach::Loop | Attach::Fuse | Attach::Extract { .. }) => {
            let spec = share::Spec {
                image: image.clone(),
                attach: how.clone(),
                uid: plan.identity.uid,
                gid: plan.identity.gid,
                user_ns: plan.ids == IdMap::Own,
                owner: (plan.ids == IdMap::Own).then(|| own_owner(plan)),
                idle,
                prefetch: crate::prefetch::fuse_prefetch(how, plan),
            };
            match share::join_or_start(&spec) {
                Ok(j) => Some(j),
                Err(share::ShareError::Attach(e)) => {
                    share::release();
                    return Err(ExecError::Attach(e));
                }
                Err(e) => {
                    // The launch attaches the image itself, which reports any real problem
                    // with the image in its own words.
                    tracing::debug!(
                        "attaching `{}` for this launch alone: {e}",
                        image.path.display()
                    );
                    None
                }
            }
        }
        _ => None,
    };
    // A lock `share::find` kept for this launch must not outlive the attachment decision.
    share::release();
    match joined {
        Some(j) => {
            let image = j.image.clone();
            run_attached(
                plan,
                prepared,
                layers,
                &image,
                &Attach::Directory,
                Some(j),
                cgroup,
            )
        }
        None => run_attached(plan, prepared, layers, image, how, None, cgroup),
    }
}

/// The `--overlay` layers and the image's own overlay partition, opened and locked on the host
/// ([`crate::overlay::open`]); `--writable` on a SIF writes to its overlay partition.
fn open_layers(plan: &LaunchPlan, image: &Image) -> Result<crate::overlay::Layers, ExecError> {
    let writable_sif = plan.writable && image.format == Format::Sif;
    Ok(crate::overlay::open(
        image,
        &plan.overlay,
        writable_sif,
        plan.writable_tmpfs,
    )?)
}

/// Run the plan in the namespaces of the node's holder `joined` ([`crate::share`]), which has
/// the image attached already; see [`run_image`].
pub fn run_joined(plan: &LaunchPlan, joined: share::Joined) -> Result<i32, ExecError> {
    let image = joined.image.clone();
    let cgroup = crate::cgroup::Active::enter(plan.cgroup.as_ref())?;
    let prepared = assemble::prepare(plan)?;
    let layers = open_layers(plan, &image)?;
    let procs = cgroup.as_ref().map(crate::cgroup::Active::procs);
    run_attached(
        plan,
        prepared,
        layers,
        &image,
        &Attach::Directory,
        Some(joined),
        procs,
    )
}

/// [`run_image`]'s body, after [`assemble::prepare`]: with `joined`, `how` is unused and the
/// lower layer is the shared image mount.
#[allow(clippy::too_many_arguments)]
fn run_attached(
    plan: &LaunchPlan,
    prepared: Vec<assemble::Prepared>,
    mut layers: crate::overlay::Layers,
    image: &Image,
    how: &Attach,
    mut joined: Option<share::Joined>,
    cgroup: Option<BorrowedFd<'_>>,
) -> Result<i32, ExecError> {
    let lsm = open_lsm(plan)?;
    // Declared first so it is dropped last: the extracted tree outlives every use of it.
    let (mut staged, _extracted) = match &joined {
        None => attach::stage(image, how)?,
        Some(_) => (attach::Staged::nothing(image), None),
    };
    if joined.is_none() {
        staged.set_prefetch(crate::prefetch::fuse_prefetch(how, plan));
    }

    // The PID namespace comes last, just before the command: the first process forked after
    // `unshare(CLONE_NEWPID)` becomes its PID 1, and the FUSE server and the `/bin/sh` of env
    // scripts must not be that process (nor be visible in the container's /proc).
    let early = sifr_sys::ns::Namespaces {
        pid: false,
        ..plan.namespaces
    };
    // Fakeroot's id-map helpers are forked before the user namespace exists (they write its
    // maps from outside).
    let pending = match &plan.ids {
        IdMap::Fakeroot { user, path, subids } => {
            Some(fakeroot::prepare(user.as_deref(), path, *subids)?)
        }
        _ => None,
    };
    // Before any user namespace: joining a namespace that root made needs root's capabilities.
    if let crate::net::Mode::Join(path) = &plan.net.mode {
        sifr_sys::net::join_netns(path).map_err(step("join the network namespace"))?;
    }
    // The holder's image mount, cloned before the session tmpfs may hide its path.
    let mut shared_lower = None;
    if let Some(j) = joined.as_mut() {
        j.enter().map_err(ExecError::Share)?;
        sifr_sys::ns::unshare(sifr_sys::ns::Namespaces {
            user: false,
            ..early
        })
        .map_err(step("create the container namespaces"))?;
        let tree = match j.take_tree() {
            Some(tree) => tree,
            None => sifr_sys::mount::clone_tree(&j.mount)
                .map_err(step("clone the shared image mount"))?,
        };
        // A mount whose FUSE server was killed fails every access: better said now than as a
        // container that cannot find its own files.
        if let Err(source) = sifr_sys::fs::fs_answers_fd(tree.as_fd())
            && crate::error::fuse_server_died(source.raw_os_error())
        {
            return Err(ExecError::ImageGone {
                image: image.path.clone(),
                source,
            });
        }
        shared_lower = Some(tree);
        // Our copy of the holder's mount point goes, so the host `/tmp` bound into the
        // container does not show the image a second time.
        let _ = sifr_sys::mount::umount_detach(&j.mount);
    } else {
        sifr_sys::ns::unshare(early).map_err(step("create the container namespaces"))?;
    }
    // `pending` is `Some` exactly for fakeroot.
    let owner = match (pending, &plan.ids) {
        _ if joined.is_some() => None,
        (Some(p), _) => {
            let mode = p.apply()?;
            match &mode {
                fakeroot::Mode::Subids { .. } => tracing::debug!("{}", mode.describe()),
                fakeroot::Mode::RootOnly { .. } => tracing::info!("{}", mode.describe()),
            }
            match mode {
                fakeroot::Mode::Subids { .. } => None,
                fakeroot::Mode::RootOnly { .. } => Some(own_owner(plan)),
            }
        }
        (None, IdMap::Host) => None,
        (None, _) => {
            sifr_sys::ns::write_id_maps(plan.identity.uid, plan.identity.gid)
                .map_err(step("map the user's ids"))?;
            Some(own_owner(plan))
        }
    };
    if let Some(name) = &plan.hostname {
        sifr_sys::uts::set_hostname(name).map_err(step("set the container's host name"))?;
    }
    if plan.namespaces.net {
        sifr_sys::net::loopback_up().map_err(step("bring up the loopback interface"))?;
    }
    assemble::open_session(plan)?;
    // Dropped (server terminated) when this function returns, after the payload.
    let _server = match &shared_lower {
        Some(tree) => {
            let lower = sifr_sys::fs::open_root(Path::new(assemble::SESSION_LOWER))
                .map_err(step("open the session's lower directory"))?;
            sifr_sys::mount::attach(tree.as_fd(), lower.as_fd(), assemble::SESSION_LOWER)
                .map_err(step("mount the shared image"))?;
            None
        }
        None => staged.mount_lower(Path::new(assemble::SESSION_LOWER), owner)?,
    };
    drop(shared_lower);
    // Kept to tell, if the command dies of a signal, whether its image died under it first.
    let image_root = sifr_sys::fs::open_root(Path::new(assemble::SESSION_LOWER)).ok();
    // Stopped (their filesystems written back) when this function returns, after the payload.
    let _layers_served = crate::overlay_mount::mount_images(
        &mut layers,
        crate::overlay_mount::How {
            kernel: plan.kernel_mounts(),
            owner: (plan.ids == IdMap::Own).then(|| own_owner(plan)),
        },
    )?;
    assemble::pivot_session()?;
    let kind = assemble::mount_root(plan, &prepared, staged.host_dir(), &layers)?;
    let root = sifr_sys::fs::open_root(Path::new(assemble::NEW_ROOT))
        .map_err(step("open the container root"))?;
    assemble::mount_all(plan, &prepared, &root, kind)?;
    drop(root);
    // `--fusemount` programs: the host's while the host root is still at `/oldroot`, the
    // container's once in its root; stopped when the command has ended.
    let mut drivers = crate::fusemount::Drivers::default();
    drivers.start(plan, &prepared, crate::fusemount::Side::Host)?;
    assemble::enter_root()?;
    drivers.start(plan, &prepared, crate::fusemount::Side::Container)?;
    drop(prepared);
    run_command(plan, lsm, cgroup, image_root.as_ref().map(|fd| fd.as_fd()))
}

/// Run the plan's command in the namespaces of the running container whose launcher is `pid`
/// (an instance, `instance://NAME`): its mounts, binds and root are used as they are; the plan
/// gives the identity, environment, working directory and command. Must be called from a
/// single-threaded process, which is left inside the container's namespaces.
pub fn run_in_container(plan: &LaunchPlan, pid: i32) -> Result<i32, ExecError> {
    let lsm = open_lsm(plan)?;
    sifr_sys::ns::join_all(pid).map_err(step("join the instance's namespaces"))?;
    run_command(plan, lsm, None, None)
}

/// The LSM's `exec` attribute of this thread, opened while the host's `/proc` is reachable
/// ([`crate::privs::Resolved::open_lsm`]).
fn open_lsm(plan: &LaunchPlan) -> Result<Option<(std::fs::File, String)>, ExecError> {
    plan.privs.open_lsm().map_err(|e| {
        step("open the LSM exec attribute")(sifr_sys::Error::new(
            "open",
            "/proc/thread-self/attr",
            e,
        ))
    })
}

/// The part of a launch inside the assembled container: working directory, `no_new_privs`,
/// environment, then the command (for `instance start`, the start script, after which the
/// launcher stays until it is told to stop).
/// With `cgroup` (its `cgroup.procs`), the command's process moves itself into that cgroup.
/// `image_root` (the image's own mount) is asked, when the command dies of a signal, whether
/// the image stopped answering first.
fn run_command(
    plan: &LaunchPlan,
    lsm: Option<(std::fs::File, String)>,
    cgroup: Option<BorrowedFd<'_>>,
    image_root: Option<BorrowedFd<'_>>,
) -> Result<i32, ExecError> {
    if let Err(source) = sifr_sys::process::chdir(&plan.cwd.path) {
        if plan.cwd.explicit {
            return Err(ExecError::Cwd {
                path: plan.cwd.path.clone(),
                source,
            });
        }
        tracing::warn!(
            "cannot enter `{}` in the container ({}); using `/`",
            plan.cwd.path.display(),
            source.source
        );
        sifr_sys::process::chdir(Path::new("/")).map_err(step("enter `/` in the container"))?;
    }
    // `--allow-setuid` (root): setuid programs of the image may gain their owner's ids.
    if !plan.privs.allow_setuid {
        sifr_sys::process::set_no_new_privs().map_err(step("set no_new_privs"))?;
    }

    // `--app`: an app the image lacks ends the launch before its environment, as Apptainer's
    // `95-apps.sh` does.
    if let Some(app) = &plan.app {
        crate::apps::check(app, Path::new("/")).map_err(ExecError::App)?;
    }
    let (vars, env_plan) = image_environment(plan)?;
    let libs = crate::libpath::LibFacts {
        libs: crate::libpath::LibFacts::non_empty(crate::gpu::LIBS_DIR),
        libs32: crate::libpath::LibFacts::non_empty(crate::gpu::LIBS32_DIR),
        defaults: &|| crate::libpath::default_dirs(Path::new("/")),
    };
    let env = env::finish(&env_plan, vars, &libs);

    if let Some(fd) = plan.ready_fd.as_ref().and_then(ReadyFd::take) {
        // `instance start` waits for this byte: the container is assembled. `notify` writes
        // it and closes the descriptor.
        sifr_sys::process::notify(fd);
    }
    let app_argv = match &plan.app {
        Some(app) => {
            crate::apps::script_argv(app, &plan.action, Path::new("/")).map_err(ExecError::App)?
        }
        None => None,
    };
    let Some(argv) = app_argv.or_else(|| action_argv(&plan.action)) else {
        if plan.action.is_instance() {
            return keep_instance(None);
        }
        tracing::warn!("no test script found in the container, nothing to do");
        return Ok(0);
    };
    let mut candidates = command_candidates(&argv[0], env.get("PATH").unwrap_or(DEFAULT_PATH));
    let mut argv = argv;
    if let Some((c, a)) = crate::cmdpath::shell_fallback(&candidates, &argv, Path::new("/")) {
        (candidates, argv) = (c, a);
    }
    let argv_os: Vec<OsString> = argv.iter().map(OsString::from).collect();
    let privileges = plan
        .privs
        .for_spawn()
        .map_err(step("read the launcher's capabilities"))?;
    let spec = sifr_sys::process::ExecSpec::new(&argv[0], &candidates, &argv_os, &os_pairs(&env))?
        .with_privileges(privileges);
    // Last before the command: the label applies at the next `execve` of this process's
    // children, and nothing else is exec'd from here.
    crate::privs::arm_lsm(lsm).map_err(|e| {
        step("set the LSM label")(sifr_sys::Error::new("write", "/proc/thread-self/attr", e))
    })?;
    let pid_ns = if plan.namespaces.pid {
        sifr_sys::ns::unshare(sifr_sys::ns::Namespaces {
            pid: true,
            ..Default::default()
        })
        .map_err(step("create the PID namespace"))?;
        let proc_at = plan
            .mounts
            .iter()
            .find(|m| m.source == Source::Proc)
            .map(|m| m.dst.clone());
        Some(proc_at)
    } else {
        None
    };
    if plan.no_umask {
        // Apptainer's default passes the caller's umask in; `--no-umask` starts from 0022.
        sifr_sys::process::set_umask(0o022);
    }
    let status = spawn_and_wait(
        &spec,
        pid_ns.as_ref().map(|p| p.as_deref()),
        plan.no_init,
        cgroup,
    )?;
    if let (sifr_sys::process::ExitStatus::Signaled(sig), Some(fd)) = (status, image_root)
        && sifr_sys::fs::fs_answers_fd(fd)
            .is_err_and(|e| crate::error::fuse_server_died(e.raw_os_error()))
    {
        // A program whose mapped pages cannot be read back gets SIGBUS (or SIGSEGV) and dies
        // without a word: say why, and keep its status for the job script.
        tracing::error!(
            "the command was killed by signal {sig}: the mount of image `{}` stopped answering \
             while it ran (its FUSE server ended); run it again: the next launch attaches the \
             image anew",
            plan.image.display()
        );
    }
    if plan.action.is_instance() {
        return keep_instance(Some(status));
    }
    Ok(status.code())
}

/// An instance's launcher after its start script (if any) ended: it keeps the container's
/// namespaces alive for `instance://` until SIGTERM or SIGINT (`instance stop`), which ends it
/// at once if one came while the script ran.
fn keep_instance(script: Option<sifr_sys::process::ExitStatus>) -> Result<i32, ExecError> {
    match script {
        Some(st) => tracing::info!("the start script ended ({})", st.describe()),
        None => {
            tracing::info!("no start script in the container");
            sifr_sys::signal::forward_to(0).map_err(step("catch signals"))?;
        }
    }
    sifr_sys::signal::wait_for_stop().map_err(step("wait for `instance stop`"))?;
    Ok(0)
}

/// Who a FUSE-mounted image's files should belong to when only one id is mapped in the user
/// namespace (the caller's own, or root for fakeroot without subordinate ids): that id, as
/// Apptainer's `squashfuse -o uid=,gid=`. The image's other owners could not be mapped and would
/// show as the overflow id, so a `0700` directory of the image would be unreadable; the
/// extraction fallback gives the same view (extracted files belong to the caller). With
/// subordinate ids (fakeroot), the image's owners are kept: root's files are root's, `_apt`'s
/// are `_apt`'s, as a kernel mount would show them.
fn own_owner(plan: &LaunchPlan) -> sifr_squashfs::fuse::Owner {
    sifr_squashfs::fuse::Owner {
        uid: plan.identity.uid,
        gid: plan.identity.gid,
    }
}

/// Fork the command with forwarded signals blocked around the fork, then wait. With `pid_ns`
/// (a PID namespace was just created), an init is forked first and the command is its child;
/// the init mounts the new `/proc` at the path given, if any; with `no_init` it then becomes
/// the command (PID 1).
fn spawn_and_wait(
    spec: &sifr_sys::process::ExecSpec,
    pid_ns: Option<Option<&Path>>,
    no_init: bool,
    cgroup: Option<BorrowedFd<'_>>,
) -> Result<sifr_sys::process::ExitStatus, ExecError> {
    let mask = sifr_sys::signal::block_forwarded().map_err(step("block signals"))?;
    let opts = sifr_sys::process::SpawnOptions {
        stdout: None,
        mask: Some(mask),
        no_init,
        cgroup,
    };
    let spawned = match pid_ns {
        None => sifr_sys::process::spawn(spec, &opts).map_err(step("start the command")),
        Some(proc_at) => sifr_sys::process::spawn_init(spec, &opts, proc_at).map_err(|e| {
            if e.op == "mount proc on" {
                step(PROC_STEP)(e)
            } else {
                step("start the container's init")(e)
            }
        }),
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            sifr_sys::signal::restore_mask(&mask);
            return Err(e);
        }
    };
    let forwarding = sifr_sys::signal::forward_to(child.pid);
    sifr_sys::signal::restore_mask(&mask);
    forwarding.map_err(step("forward signals"))?;
    let exec = child.wait_exec(&spec.name);
    let status = child.wait();
    sifr_sys::signal::stop_forwarding();
    exec?;
    status.map_err(step("wait for the command"))
}

/// Whether `path` is a file someone may execute (Apptainer's action script asks `test -x`).
fn executable(path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The argv for an action, resolved inside the container (after `pivot_root`). `None` for
/// `test` without a test script.
fn action_argv(action: &Action) -> Option<Vec<String>> {
    let exists = |p: &str| Path::new(p).exists();
    let with = |cmd: &str, args: &[String]| {
        let mut v = vec![cmd.to_string()];
        v.extend(args.iter().cloned());
        v
    };
    match action {
        Action::Exec(argv) => Some(argv.clone()),
        Action::Run(args) | Action::InstanceRun(args) => Some(
            ["/.singularity.d/runscript", "/singularity"]
                .iter()
                .find(|p| exists(p))
                .map(|p| with(p, args))
                .unwrap_or_else(|| with("/bin/sh", args)),
        ),
        Action::Shell(Some(shell)) if executable(shell) => Some(vec![shell.clone()]),
        Action::Shell(_) => Some(if exists("/bin/bash") {
            vec!["/bin/bash".into(), "--norc".into()]
        } else {
            vec!["/bin/sh".into()]
        }),
        Action::Test(args) => {
            exists("/.singularity.d/test").then(|| with("/.singularity.d/test", args))
        }
        Action::Start(args) => {
            exists("/.singularity.d/startscript").then(|| with("/.singularity.d/startscript", args))
        }
    }
}

/// Where the image keeps its environment scripts: `/.singularity.d/env/*.sh` in lexical order,
/// or, in images made before Singularity 2.3 (no `/.singularity.d/env`), `/environment`.
fn env_scripts() -> Vec<PathBuf> {
    let dir = Path::new("/.singularity.d/env");
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut scripts: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sh") && p.is_file())
                .collect();
            scripts.sort();
            scripts
        }
        Err(_) if Path::new("/environment").is_file() => vec![PathBuf::from("/environment")],
        Err(_) => Vec::new(),
    }
}

/// Whether an injected value means anything to the shell inside double quotes.
fn needs_shell(value: &str) -> bool {
    value.contains(['$', '`', '\\'])
}

/// Steps 1 to 3 of the precedence in [`crate::env`]: the seed, every environment script of the
/// image ([`env_scripts`]), then the injected values (`APPTAINERENV_*`, `--env-file`, `--env`
/// and the `PATH` edit), evaluated as Apptainer evaluates them unless `--no-eval`. Returns the
/// variables after the scripts and the plan with the injected values as they came out.
///
/// Plain `export` scripts and literal values are handled natively ([`envscript::NativeShell`]);
/// anything else makes the whole evaluation go to the bash-compatible interpreter
/// ([`crate::interp`]), which never needs a shell in the image.
fn image_environment(plan: &LaunchPlan) -> Result<(Vars, crate::plan::types::EnvPlan), ExecError> {
    let seed = Vars(plan.env.seed.clone());
    let mut scripts = env_scripts();
    let legacy = scripts
        .first()
        .is_some_and(|p| p == Path::new("/environment"));
    let mut texts: Vec<(Option<envscript::Builtin>, Option<String>)> =
        Vec::with_capacity(scripts.len());
    for script in &scripts {
        let name = script
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let builtin = if legacy {
            None
        } else {
            envscript::builtin(&name)
        };
        // An unreadable script is skipped with a warning, natively and in the interpreter.
        let text = match builtin {
            Some(_) => None,
            None => std::fs::read(script)
                .inspect_err(|e| tracing::warn!("cannot read `{}`: {e}", script.display()))
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
        };
        texts.push((builtin.map(|f| Box::new(f) as envscript::Builtin), text));
    }
    // `--app`: the app's environment where `95-apps.sh` is (an image from before Singularity
    // 2.3 has no apps' scripts to run).
    if let Some(app) = plan.app.as_ref().filter(|_| !legacy) {
        let at = crate::apps::env_position(&scripts);
        for (i, step) in crate::apps::env_steps(app, Path::new("/"))
            .into_iter()
            .enumerate()
        {
            let (path, entry) = match step {
                crate::apps::Step::Builtin(f) => (PathBuf::from(app.name()), (Some(f), None)),
                crate::apps::Step::Script(p, text) => (p, (None, text)),
            };
            scripts.insert(at + i, path);
            texts.insert(at + i, entry);
        }
    }
    let mut env_plan = plan.env.clone();
    let inject_literal = env_plan.no_eval
        || (env_plan.overrides.iter().all(|(_, v)| !needs_shell(v))
            && env_plan.path_set.as_deref().is_none_or(|v| !needs_shell(v)));

    if inject_literal {
        let mut native = envscript::NativeShell::new(seed.clone());
        let all_native = texts.iter().all(|(builtin, text)| match (builtin, text) {
            (Some(f), _) => {
                f(&mut native.exported);
                true
            }
            (None, Some(t)) => native.eval(t).is_ok(),
            (None, None) => true,
        });
        if all_native {
            let mut vars = native.exported;
            if legacy {
                crate::vars::fix_path(&mut vars);
            }
            env_plan.no_eval = true;
            return Ok((vars, env_plan));
        }
    }

    let mut session =
        crate::interp::Session::new(&seed, plan.runscript_timeout).map_err(ExecError::Interp)?;
    let timeout = |script: &Path| {
        let script = script.to_path_buf();
        move |e: crate::interp::InterpError| match e {
            crate::interp::InterpError::Timeout(after) => ExecError::EnvTimeout { script, after },
            other => ExecError::Interp(other),
        }
    };
    for (script, (builtin, text)) in scripts.iter().zip(&texts) {
        match (builtin, text) {
            (Some(f), _) => session.apply(f),
            (None, Some(t)) => session.source_text(script, t).map_err(timeout(script))?,
            (None, None) => {}
        }
    }
    if legacy {
        session.apply(crate::vars::fix_path);
    }
    let vars = session.environment();
    if !env_plan.no_eval {
        let injected = Path::new("the injected environment (APPTAINERENV_*, --env, --env-file)");
        for (k, v) in env_plan.overrides.iter_mut() {
            *v = session.export_evaluated(k, v).map_err(timeout(injected))?;
        }
        if let Some(p) = env_plan.path_set.as_mut() {
            *p = session
                .export_evaluated("PATH", p)
                .map_err(timeout(injected))?;
        }
        env_plan.no_eval = true;
    }
    // Shuts the interpreter's runtime down (joining any thread it started) before the PID
    // namespace and the command.
    drop(session);
    Ok((vars, env_plan))
}

/// The variables as an `execve` environment.
fn os_pairs(vars: &Vars) -> Vec<(OsString, OsString)> {
    vars.0
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}
