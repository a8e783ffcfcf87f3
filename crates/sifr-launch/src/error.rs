//! The errors of applying a plan: [`AttachError`] (attaching an image's root filesystem, alone
//! or for a node's holder), [`ShareError`] (joining or starting a node's holder, which may end
//! in the former) and [`ExecError`] (a whole launch, which includes both).
//!
//! They live apart from [`crate::exec`] so that the modules below it (`assemble`, `attach`,
//! [`crate::share`]) report in these types without importing the launch itself.

use std::path::PathBuf;

use crate::fakeroot::FakerootError;

/// Attaching an image: opening it, a loop device, a kernel or FUSE mount, an extraction, and
/// the namespace steps a holder of a shared image takes around them.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("cannot {step}")]
    Sys {
        step: &'static str,
        #[source]
        source: sifr_sys::Error,
    },
    #[error("cannot open image `{}`", path.display())]
    ImageFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot attach `{}` (offset {offset}) to a loop device", path.display())]
    Loop {
        path: PathBuf,
        offset: u64,
        #[source]
        source: sifr_sys::Error,
    },
    #[error("cannot mount the squashfs of `{}` (offset {offset})", path.display())]
    KernelMount {
        path: PathBuf,
        offset: u64,
        #[source]
        source: sifr_sys::Error,
    },
    #[error("cannot mount `{}` (offset {offset}) with FUSE", path.display())]
    Fuse {
        path: PathBuf,
        offset: u64,
        #[source]
        source: sifr_squashfs::fuse::Error,
    },
    #[error("cannot start the FUSE server for `{}`", path.display())]
    FuseFork {
        path: PathBuf,
        #[source]
        source: sifr_sys::process::ForkServerError,
    },
    #[error("cannot create a temporary directory in `{}`", path.display())]
    TempDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot extract `{}` (offset {offset}) to `{}`",
        path.display(),
        dest.display()
    )]
    Extract {
        path: PathBuf,
        offset: u64,
        dest: PathBuf,
        #[source]
        source: sifr_squashfs::read::Error,
    },
}

/// Sharing an attached image with the other launches of a node ([`crate::share`]).
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("runtime directory `{}` is not a private directory of uid {uid}", path.display())]
    UnsafeDir { path: PathBuf, uid: u32 },
    #[error("cannot use runtime directory `{}`", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {step}")]
    Sys {
        step: &'static str,
        #[source]
        source: sifr_sys::Error,
    },
    #[error("cannot prepare `{}` to be shared: {message}", path.display())]
    Stage { path: PathBuf, message: String },
    #[error("cannot talk to the holder at `{}`", path.display())]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Attaching the image failed after this process entered the namespaces it was to share:
    /// the launch cannot go back to attaching the image on its own, so this is its error.
    #[error(transparent)]
    Attach(Box<AttachError>),
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("image `{}` is not a sandbox directory", path.display())]
    NotADirectory { path: PathBuf },
    /// `--writable`: a bind's destination is missing from the sandbox, which is not changed.
    #[error(
        "destination `{}` does not exist in the writable image `{}`",
        dst.display(),
        image.display()
    )]
    MissingMountPoint { dst: PathBuf, image: PathBuf },
    /// `--runscript-timeout`: Apptainer kills what the environment scripts run after this long.
    #[error(
        "environment script `{}` was killed after {}s timeout (`--runscript-timeout`)",
        script.display(),
        after.as_secs_f64()
    )]
    EnvTimeout {
        script: PathBuf,
        after: std::time::Duration,
    },
    /// The environment interpreter could not start or go on.
    #[error(transparent)]
    Interp(crate::interp::InterpError),
    #[error("cannot {step}")]
    Sys {
        step: &'static str,
        #[source]
        source: sifr_sys::Error,
    },
    #[error("bind source `{}` (for `{}`) is not accessible", src.display(), dst.display())]
    BindSource {
        src: PathBuf,
        dst: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot mount `{}` in the container", dst.display())]
    Mount {
        dst: PathBuf,
        #[source]
        source: sifr_sys::Error,
    },
    #[error("cannot prepare `{}` in the session directory", path.display())]
    Session {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot enter working directory `{}` in the container", path.display())]
    Cwd {
        path: PathBuf,
        #[source]
        source: sifr_sys::Error,
    },
    /// Transparent: its messages are the launch's own.
    #[error(transparent)]
    Attach(Box<AttachError>),
    /// The image's mount stopped answering while the launch set the container up (its FUSE
    /// server ended; for a launch that joined the node's shared mount, it is in the holder's
    /// namespaces and cannot attach anew).
    #[error("the mount of image `{}` stopped answering while the container was set up", image.display())]
    ImageGone {
        image: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the image writable with `--writable-tmpfs`: the overlay mount failed")]
    WritableTmpfs {
        #[source]
        source: sifr_sys::Error,
    },
    /// Opening the `--overlay` layers; transparent: its messages are Apptainer's.
    #[error(transparent)]
    Overlays(#[from] crate::overlay::OverlayError),
    #[error("cannot mount the overlay `{layer}`")]
    OverlayImage {
        layer: String,
        #[source]
        source: sifr_sys::Error,
    },
    #[error("cannot mount the ext3 overlay `{layer}`")]
    Ext3 {
        layer: String,
        #[source]
        source: Box<sifr_extfs::Error>,
    },
    #[error("cannot start the ext3 server for the overlay `{layer}`")]
    Ext3Start {
        layer: String,
        #[source]
        source: sifr_sys::process::ForkServerError,
    },
    #[error("cannot mount the overlay `{}` over the image", path.display())]
    Overlay {
        path: PathBuf,
        #[source]
        source: sifr_sys::Error,
    },
    #[error("cannot create `{}` (for `{}`)", path.display(), dst.display())]
    CreateSource {
        path: PathBuf,
        dst: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot create the mount point of `{}` in `{}`, the bind source that holds it",
        dst.display(),
        src.display()
    )]
    NestedMountPoint {
        dst: PathBuf,
        src: PathBuf,
        #[source]
        source: sifr_sys::Error,
    },
    #[error("cannot open `/dev/fuse` for the `--fusemount` at `{}`", dst.display())]
    DevFuse {
        dst: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the `--fusemount` program `{program}` failed ({status})")]
    FuseDaemon { program: String, status: String },
    #[error("could not start the `--fusemount` program `{program}`")]
    FuseStart {
        program: String,
        #[source]
        source: sifr_sys::process::ExecFailed,
    },
    #[error(transparent)]
    Fakeroot(#[from] FakerootError),
    #[error(transparent)]
    Share(ShareError),
    #[error("an argument or environment value contains a NUL byte")]
    Nul(#[from] sifr_sys::process::NulError),
    #[error(transparent)]
    Exec(#[from] sifr_sys::process::ExecFailed),
    /// `--app`: the app is not in the image, or lacks the action's script (status 1).
    #[error(transparent)]
    App(crate::apps::AppMissing),
    /// Apptainer's words, so that scripts grepping its messages find them.
    #[error("while applying cgroups config")]
    Cgroup(#[from] crate::cgroup::Unavailable),
}

impl ExecError {
    /// The exit status sifr should end with for this error (126/127 for a command that could
    /// not be executed, as shells do).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ExecError::Exec(e) => Some(e.exit_code()),
            // Apptainer's scripts `exit 1` there.
            ExecError::App(_) => Some(1),
            _ => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        let sys = match self {
            ExecError::Sys { source, .. } => Some(source),
            ExecError::Attach(e) => match &**e {
                AttachError::Sys { source, .. } => Some(source),
                _ => None,
            },
            _ => None,
        };
        if sys.is_some_and(|e| matches!(e.errno(), Some(EPERM | ENOSPC))) {
            return Some(
                "unprivileged user namespaces may be disabled (see `/proc/sys/user/max_user_namespaces`)"
                    .into(),
            );
        }
        match self {
            ExecError::Exec(e) if !e.in_cgroup => Some("check the command's name and the PATH inside the container".into()),
            ExecError::Cgroup(e) => e.hint(),
            ExecError::App(e) => Some(e.hint()),
            ExecError::MissingMountPoint { dst, .. } => Some(format!(
                "create `{}` in the sandbox first, or run without `--writable`",
                dst.display()
            )),
            ExecError::ImageGone { .. } => Some(
                "its FUSE server ended (killed, or out of memory); run the command again: the \
                 next launch attaches the image anew"
                    .into(),
            ),
            ExecError::EnvTimeout { .. } => Some(
                "give the script more time with `--runscript-timeout` (e.g. `5m`), or make it \
                 quicker"
                    .into(),
            ),
            ExecError::Fakeroot(e) => e.hint(),
            ExecError::DevFuse { .. } => Some(
                "`--fusemount` needs read and write access to `/dev/fuse` (mode 0666 on most systems)"
                    .into(),
            ),
            ExecError::NestedMountPoint { .. } => Some(
                "create the mount point in the bound directory first, or bind to a path that exists there"
                    .into(),
            ),
            ExecError::Overlays(e) => e.hint(),
            ExecError::Ext3 { source, .. } => Some(match source.as_ref() {
                sifr_extfs::Error::DevFuse(_) => "an ordinary user's ext3 overlay is served \
                     through FUSE, which needs read and write access to `/dev/fuse` (mode 0666 \
                     on most systems); a directory overlay needs neither, and root mounts ext3 \
                     with the kernel"
                    .into(),
                _ => "check the image with `e2fsck -f IMAGE` (its overlay partition: \
                     `sifr sif dump`)"
                    .into(),
            }),
            ExecError::WritableTmpfs { .. } | ExecError::Overlay { .. } => Some(
                "unprivileged overlay mounts need Linux >= 5.11; as root, check that the `overlay` module is available"
                    .into(),
            ),
            ExecError::Sys { step: PROC_STEP, .. } => Some(
                "in a user namespace the kernel mounts a new /proc only where the host's /proc is fully visible; try without `--pid`"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl From<AttachError> for ExecError {
    fn from(e: AttachError) -> ExecError {
        ExecError::Attach(Box::new(e))
    }
}

/// `EPERM`, the errno of a refused `unshare`/`mount` (same value on every Linux architecture).
const EPERM: i32 = 1;
/// `ENOTCONN`: every access to a FUSE mount whose server ended (same value on x86-64,
/// aarch64, ppc64le and riscv64).
pub(crate) const ENOTCONN: i32 = 107;
/// `ECONNABORTED`: what a request in flight to a FUSE server gets when the server dies (its
/// connection is aborted); later requests get [`ENOTCONN`]. Same value on those architectures.
pub(crate) const ECONNABORTED: i32 = 103;

/// Whether `errno` says the FUSE server behind a mount has died.
pub(crate) fn fuse_server_died(errno: Option<i32>) -> bool {
    matches!(errno, Some(ENOTCONN | ECONNABORTED))
}
/// `ENOSPC`, what `unshare(CLONE_NEWUSER)` returns when `max_user_namespaces` is 0.
const ENOSPC: i32 = 28;

/// The step named when the PID namespace's `/proc` cannot be mounted.
pub(crate) const PROC_STEP: &str = "mount /proc for the new PID namespace";

/// A `map_err` for a failed system call of the launch: "cannot `what`".
pub(crate) fn step(what: &'static str) -> impl FnOnce(sifr_sys::Error) -> ExecError {
    move |source| ExecError::Sys { step: what, source }
}

/// [`step`], for the steps of attaching an image.
pub(crate) fn attach_step(what: &'static str) -> impl FnOnce(sifr_sys::Error) -> AttachError {
    move |source| AttachError::Sys { step: what, source }
}

/// An error and its causes on one line, `error: cause: cause`, for messages that cross a pipe
/// or a log line rather than going through `sifr-cli`'s report.
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> sifr_sys::Error {
        sifr_sys::Error::new(
            "unshare",
            "user+mount",
            std::io::Error::from_raw_os_error(EPERM),
        )
    }

    #[test]
    fn one_line_joins_an_error_and_its_causes() {
        let e = ExecError::Sys {
            step: "create the shared namespaces",
            source: refused(),
        };
        let line = one_line(&e);
        assert!(line.starts_with(&e.to_string()), "{line}");
        // Every level: the step, the call, the OS error.
        assert!(line.contains(&refused().to_string()), "{line}");
        let os = std::io::Error::from_raw_os_error(EPERM).to_string();
        assert!(line.ends_with(&os), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn an_attach_step_reads_and_hints_as_a_launch_step() {
        let step = "create the shared namespaces";
        let direct = ExecError::Sys {
            step,
            source: refused(),
        };
        let attached = ExecError::from(AttachError::Sys {
            step,
            source: refused(),
        });
        assert_eq!(attached.to_string(), direct.to_string());
        assert_eq!(
            std::error::Error::source(&attached).map(ToString::to_string),
            std::error::Error::source(&direct).map(ToString::to_string)
        );
        assert!(
            direct
                .hint()
                .is_some_and(|h| h.contains("max_user_namespaces"))
        );
        assert_eq!(attached.hint(), direct.hint());
    }
}
