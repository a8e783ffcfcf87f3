//! Run a build section (`%post`, `%test`) inside the root filesystem being built, as
//! Apptainer's nested `apptainer --build-config exec --pwd / --writable --cleanenv ...` does
//! (reference section 3.1 step 9 and 3.2):
//!
//! - the caller is root (real, or the fakeroot of [`crate::fakeroot`]), so only a mount
//!   and a PID namespace (below) are new; host network and IPC are shared, so `apt` and `pip`
//!   work;
//! - `/proc` (a fresh one), `/sys`, `/dev` and the host's `/etc/resolv.conf`, `/etc/hosts` are
//!   bound; `/tmp`, `/var/tmp` and `/dev/shm` are the section's own, not the host's (Apptainer
//!   binds the host's `/tmp`: a base image with `/opt -> /tmp/x` then sends `%post`'s writes
//!   to the host); no home directory, no current directory (the cwd is `/`);
//! - the environment is clean (only `TERM` and proxy variables pass) plus the caller's
//!   variables (`APPTAINER_ENVIRONMENT`, `APPTAINER_LABELS`, compiler flags, ...).
//!
//! Unlike Apptainer's, the section runs in a PID namespace of its own, tied to the build: the
//! child that enters the container gets `SIGKILL` when the build dies (`PR_SET_PDEATHSIG`),
//! the namespace's init gets it when that child dies, and the kernel then kills every process
//! of the namespace. So nothing `%post` started (a `sleep`, a daemon it forgot, a double-forked
//! server) outlives the section, nor a build killed with `kill -9` (a subreaper could not do
//! that: it is the process being killed). `%post` sees its own processes in `/proc` (a fresh
//! one), which no package manager minds; `docs/build.md` says so.
//!
//! The container is entered in a forked child, so the build process itself stays on the host
//! and goes on afterwards; the child reports a failure to start through a pipe, so the caller
//! can tell "the script failed with status N" from "the container could not start".
//! Must be called while the process is single-threaded (checked by the fork).

use std::io::{Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use crate::bind::Bind;
use crate::plan::{self, Action, Options};

/// One section run.
#[derive(Debug, Clone)]
pub struct SectionRun {
    /// The root filesystem directory (absolute).
    pub rootfs: PathBuf,
    pub action: Action,
    /// Variables set in the container on top of the clean environment.
    pub env: Vec<(String, String)>,
    /// `%post` writes into the root; `%test` does not.
    pub writable: bool,
    /// `build --writable-tmpfs`: `%test` writes to a throw-away layer over the root.
    pub writable_tmpfs: bool,
    /// The section's own `/tmp` (`DIR/tmp`) and `/var/tmp` (`DIR/var_tmp`), created when
    /// missing, in the build's work directory: Apptainer binds the host's, where a base image's
    /// symlink (`/opt -> /tmp/x`) would send `%post`'s writes (absolute).
    pub scratch: PathBuf,
    /// User binds (`build -B`).
    pub binds: Vec<Bind>,
    /// `build --nv`/`--rocm`: the host GPU driver for the section.
    pub gpu: Vec<crate::gpu::Found>,
    /// The host environment (only `TERM` and proxies survive `--cleanenv`).
    pub host_env: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SectionError {
    #[error("cannot read the host facts for the build container")]
    Host(#[source] std::io::Error),
    #[error("cannot create the build container's /tmp in `{}`", path.display())]
    Scratch {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot plan the build container")]
    Plan(#[from] plan::PlanError),
    #[error("cannot start the build container")]
    Fork(#[from] sifr_sys::process::ForkServerError),
    #[error("cannot start the build container: {message}")]
    Start { message: String },
    #[error("cannot wait for the build container")]
    Wait(#[from] sifr_sys::Error),
}

/// What a section run ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The script's exit status (128+N when killed by signal N).
    pub status: i32,
}

/// Run the section. The container's standard error is handed to `on_stderr` chunk by chunk
/// as it arrives (the caller shows it and may watch for the shell's `+ command` trace lines);
/// standard output is the caller's.
pub fn run_section(
    run: &SectionRun,
    on_stderr: &mut dyn FnMut(&[u8]),
) -> Result<Outcome, SectionError> {
    let mut host = crate::host::gather(run.host_env.clone()).map_err(SectionError::Host)?;
    // Apptainer's build runs `--pwd /` and binds no current directory.
    host.cwd = PathBuf::from("/");
    // Root of the fakeroot user namespace holds every capability over its mount namespace and
    // the root directory; a nested user namespace would map only one id and hide the
    // subordinate owners that package managers set. So root, real or fake, is "privileged"
    // here: only a mount namespace is created.
    host.privileged = host.uid == 0;
    host.gpu = present_in(&run.rootfs, &run.gpu);
    let opts = Options {
        binds: run.binds.clone(),
        cleanenv: true,
        env: run.env.clone(),
        no_home: true,
        pid: true,
        build_scratch: Some(run.scratch.clone()),
        cwd: Some(PathBuf::from("/")),
        writable: run.writable,
        writable_tmpfs: run.writable_tmpfs && !run.writable,
        ..Options::default()
    };
    std::fs::create_dir_all(&run.scratch).map_err(|source| SectionError::Scratch {
        path: run.scratch.clone(),
        source,
    })?;
    let plan = plan::build(&opts, Path::new(&run.rootfs), run.action.clone(), &host)?;
    let (err_rd, err_wr) = sifr_sys::process::pipe()?;
    let (out_rd, out_wr) = sifr_sys::process::pipe()?;
    let err_wr = std::fs::File::from(err_wr);
    // The child writes into its copies of the write ends; the parent closes its own right
    // after the fork, so reading ends when the child (and everything it forked) is gone.
    let (child_err, child_out) = (&err_wr, &out_wr);
    let pid = sifr_sys::process::fork_tied_child(move || {
        // Its own process group, so an interrupt of the build reaches the whole container.
        let _ = sifr_sys::process::own_process_group(0);
        // Not in the terminal's foreground group, so it must not read the terminal (it would
        // stop): a prompt (`apt-get install` without `-y`) reads end-of-file and fails clearly
        // instead of hanging the build.
        let _ = sifr_sys::process::stdin_from_null();
        if sifr_sys::process::redirect_stderr(child_out.as_fd()).is_err() {
            return 255;
        }
        match crate::exec::run(&plan) {
            Ok(code) => code,
            Err(e) => {
                let mut msg = crate::error::one_line(&e);
                if let Some(h) = e.hint() {
                    msg.push_str(&format!(" (hint: {h})"));
                }
                let _ = (&*child_err).write_all(msg.as_bytes());
                255
            }
        }
    })?;
    let _ = sifr_sys::process::own_process_group(pid);
    sifr_sys::signal::set_step_group(pid);
    drop(err_wr);
    drop(out_wr);
    let mut stream = std::fs::File::from(out_rd);
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => on_stderr(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let mut message = String::new();
    let _ = std::fs::File::from(err_rd).read_to_string(&mut message);
    let status = sifr_sys::process::wait_pid(pid);
    sifr_sys::signal::set_step_group(0);
    let status = status?;
    if !message.is_empty() {
        return Err(SectionError::Start { message });
    }
    Ok(Outcome {
        status: status.code(),
    })
}

/// The GPU binds whose destination the root being built has. A build section runs on the
/// writable root itself, where missing mount points are not created (they would end up in the
/// image): the libraries go to `/.singularity.d/libs`, which the build lays out before `%post`,
/// and a program or vendor file is bound only over one the image already has.
fn present_in(rootfs: &Path, gpu: &[crate::gpu::Found]) -> Vec<crate::gpu::Found> {
    let Ok(root) = sifr_sys::fs::open_root(rootfs) else {
        return gpu.to_vec();
    };
    let has = |p: &Path| matches!(sifr_sys::fs::resolve_in_root(root.as_fd(), p), Ok(Some(_)));
    gpu.iter()
        .map(|f| crate::gpu::Found {
            programs: f
                .programs
                .iter()
                .filter(|(name, _)| has(&Path::new(crate::gpu::PROGRAMS_DIR).join(name)))
                .cloned()
                .collect(),
            files: f.files.iter().filter(|p| has(p)).cloned().collect(),
            ..f.clone()
        })
        .collect()
}

/// Keep the build process alive on SIGINT, SIGTERM and SIGHUP so it can remove its work
/// directory: the signal is passed to the process group (the running tool or container ends)
/// and recorded for [`interrupted`]. See `sifr_sys::signal::catch_interrupts`.
pub fn catch_interrupts() -> Result<(), sifr_sys::Error> {
    sifr_sys::signal::catch_interrupts()
}

/// Name the process group of a tool the build runs (`std::process::Command::process_group(0)`
/// makes one with the child's pid), so interrupts reach it; 0 when it has ended.
pub fn set_step_group(pgid: u32) {
    sifr_sys::signal::set_step_group(pgid as i32);
}

/// Tie a host tool the build runs (in a process group of its own, see [`set_step_group`]) to
/// the build: it gets `SIGKILL` when the build dies, `kill -9` included, instead of running on
/// orphaned. See `sifr_sys::process::tie_to_caller`.
pub fn tie_to_build(cmd: &mut std::process::Command) {
    sifr_sys::process::tie_to_caller(cmd);
}

/// The signal that interrupted the build, if any.
pub fn interrupted() -> Option<i32> {
    sifr_sys::signal::interrupted()
}
