//! Mounting with `mount(2)` on a `/dev/fuse` fd, and the handle the launcher keeps.
//!
//! [`mount()`] runs in the single-threaded launcher, inside the user + mount namespace the mount
//! belongs to, and starts no thread. [`Mounted::serve`] runs only in the child the caller
//! forked (threads start there); [`Mounted::into_handle`] and everything on [`MountHandle`]
//! run in the parent. See the module docs of [`super`] for the whole contract.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};
use rustix::pipe::PipeFlags;
use rustix::process::{Pid, Signal, WaitOptions};

use super::{Error, Options, Result};
use crate::read::Archive;

/// How long dropping a [`MountHandle`] waits for the server to leave after the detach before
/// killing it. A server whose filesystem is released exits within milliseconds; a longer wait
/// means something still uses the mount (it then fails with `ENOTCONN`).
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A mounted filesystem whose server has not started yet: the state between [`mount()`] and the
/// caller's `fork`. Dropping it without serving or handing it over unmounts (lazily).
#[derive(Debug)]
pub struct Mounted {
    archive: Archive,
    fuse: OwnedFd,
    ready_r: OwnedFd,
    ready_w: OwnedFd,
    opts: Options,
    launcher: Pid,
    guard: DetachGuard,
}

/// Lazily unmounts on drop unless disarmed.
#[derive(Debug)]
struct DetachGuard(Option<PathBuf>);

impl DetachGuard {
    fn disarm(&mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for DetachGuard {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            let _ = rustix::mount::unmount(&m, UnmountFlags::DETACH);
        }
    }
}

/// Opens the image starting `offset` bytes into `archive_file`, opens `/dev/fuse` and mounts
/// it read-only (`ro,nosuid,nodev`, type `fuse.sifr`, `default_permissions`) on `mountpoint`.
///
/// Call it single-threaded, in the user and mount namespaces the mount is for; it starts no
/// thread. Then fork: [`Mounted::serve`] in the child, [`Mounted::into_handle`] in the parent.
/// Until the server answers `INIT`, accesses to the mountpoint block, so the parent must fork
/// before touching it (then [`MountHandle::wait_ready`]).
pub fn mount(
    archive_file: File,
    offset: u64,
    mountpoint: impl AsRef<Path>,
    opts: &Options,
) -> Result<Mounted> {
    let mountpoint = mountpoint.as_ref().to_path_buf();
    let image_err = |source| Error::Image { offset, source };
    let archive = Archive::open(archive_file, offset).map_err(image_err)?;
    // Fail here, in the launcher, rather than in a server nobody hears from.
    archive.root().map_err(image_err)?;

    let fuse = rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::DevFuse(e.into()))?;
    let data = format!(
        "fd={},rootmode=40000,user_id={},group_id={},default_permissions{}",
        fuse.as_raw_fd(),
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
        if opts.allow_other { ",allow_other" } else { "" },
    );
    let mount_err = |source: std::io::Error| Error::Mount {
        mountpoint: mountpoint.clone(),
        source,
    };
    let data = CString::new(data).map_err(|e| mount_err(e.into()))?;
    let fsname = opts.fsname.replace(['\0', ' ', ','], "_");
    rustix::mount::mount(
        fsname.as_str(),
        &mountpoint,
        "fuse.sifr",
        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
        data.as_c_str(),
    )
    .map_err(|e| mount_err(e.into()))?;
    let guard = DetachGuard(Some(mountpoint.clone()));

    let (ready_r, ready_w) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| Error::Pipe {
            mountpoint: mountpoint.clone(),
            source: e.into(),
        })?;
    Ok(Mounted {
        archive,
        fuse,
        ready_r,
        ready_w,
        opts: opts.clone(),
        launcher: rustix::process::getpid(),
        guard,
    })
}

impl Mounted {
    /// Every descriptor the server needs (`/dev/fuse`, the image file, the readiness pipe): a
    /// forked server that outlives the launcher closes all others, so that it keeps no pipe or
    /// socket the launcher inherited or made open.
    pub fn fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd as _;
        vec![
            self.fuse.as_fd(),
            self.archive.image_fd(),
            self.ready_r.as_fd(),
            self.ready_w.as_fd(),
        ]
    }

    /// Where the filesystem is mounted.
    pub fn mountpoint(&self) -> &Path {
        self.guard.0.as_deref().unwrap_or(Path::new(""))
    }

    /// **Child side of the fork**: serves until the filesystem is released (unmounted and
    /// unused) or the launcher exits (with [`Options::die_with_parent`]). Starts threads.
    /// The caller must `_exit` afterwards (0 on `Ok`), never return into launcher code.
    pub fn serve(mut self) -> Result<()> {
        let mountpoint = self.guard.disarm();
        drop(self.ready_r);
        if self.opts.die_with_parent {
            let gone = || Error::Serve {
                mountpoint: mountpoint.clone(),
                source: std::io::Error::other("the launcher exited before the server started"),
            };
            rustix::process::set_parent_process_death_signal(Some(Signal::TERM)).map_err(|e| {
                Error::Serve {
                    mountpoint: mountpoint.clone(),
                    source: e.into(),
                }
            })?;
            // The launcher may have died between fork and prctl; the signal would never come.
            if rustix::process::getppid() != Some(self.launcher) {
                return Err(gone());
            }
        }
        // Leave the launcher's session and process group: Ctrl-C and a hang-up on the
        // terminal go to the payload, which may still read files while it handles them; the
        // server ends with the mount or with the launcher (parent-death signal), not before.
        let _ = rustix::process::setsid();
        // Do not pin the launcher's working directory (it may be inside a mount that the
        // launcher wants to detach later).
        let _ = rustix::process::chdir("/");
        let ready_w = self.ready_w;
        super::serve(self.fuse, self.archive, &self.opts, mountpoint, move |_| {
            // A launcher that stopped listening is not the server's problem.
            let _ = rustix::io::write(&ready_w, &[1]);
        })
    }

    /// **Parent side of the fork**: closes the parent's copies of the `/dev/fuse` fd and the
    /// image, and returns the handle for the server `pid`.
    pub fn into_handle(mut self, pid: i32) -> MountHandle {
        let mountpoint = self.guard.disarm();
        MountHandle {
            pid: Pid::from_raw(pid),
            mountpoint,
            ready: Some(self.ready_r),
            detached: false,
            status: None,
        }
    }
}

/// The launcher's handle on a mounted filesystem and its server process.
///
/// Dropping it detaches the mount and reaps the server (killing it after a grace period if
/// something still holds the filesystem).
#[derive(Debug)]
pub struct MountHandle {
    pid: Option<Pid>,
    mountpoint: PathBuf,
    ready: Option<OwnedFd>,
    detached: bool,
    status: Option<ExitStatus>,
}

impl MountHandle {
    /// The server's process id.
    pub fn pid(&self) -> i32 {
        self.pid.map_or(0, |p| p.as_raw_nonzero().get())
    }

    /// The path given to [`mount()`].
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Blocks until the server has answered the kernel's `INIT` (accesses no longer block on
    /// it). If the server died first, reaps it and says how it ended.
    pub fn wait_ready(&mut self) -> Result<()> {
        let Some(fd) = self.ready.take() else {
            return Ok(());
        };
        let mut b = [0u8; 1];
        let n = loop {
            match rustix::io::read(&fd, &mut b) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other,
            }
        };
        if n == Ok(1) {
            return Ok(());
        }
        let status = self.wait()?;
        Err(Error::NotReady {
            mountpoint: self.mountpoint.clone(),
            status,
        })
    }

    /// Lazily unmounts (`umount2(MNT_DETACH)`) the mountpoint path, unless done already. The
    /// kernel releases the filesystem, and the server exits, once nothing uses it. Must run
    /// in the mount namespace of [`mount()`], with the mountpoint still reachable by the same
    /// path (after a `pivot_root` into the mount, leave teardown to the namespace instead).
    pub fn detach(&mut self) -> Result<()> {
        if self.detached {
            return Ok(());
        }
        rustix::mount::unmount(&self.mountpoint, UnmountFlags::DETACH).map_err(|e| {
            Error::Unmount {
                mountpoint: self.mountpoint.clone(),
                source: e.into(),
            }
        })?;
        self.detached = true;
        Ok(())
    }

    /// Blocks until the server exits and reaps it (once; later calls repeat the status).
    pub fn wait(&mut self) -> Result<ExitStatus> {
        self.wait_with(WaitOptions::empty())
            .map(|s| s.unwrap_or_else(|| ExitStatus::from_raw(0)))
    }

    /// Reaps the server if it has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.wait_with(WaitOptions::NOHANG)
    }

    /// Detaches the mount and waits for the server to exit.
    pub fn unmount(mut self) -> Result<ExitStatus> {
        self.detach()?;
        self.wait()
    }

    fn wait_with(&mut self, how: WaitOptions) -> Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let Some(pid) = self.pid else {
            return Ok(None);
        };
        loop {
            match rustix::process::waitpid(Some(pid), how) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(Error::Wait {
                        pid: pid.as_raw_nonzero().get(),
                        mountpoint: self.mountpoint.clone(),
                        source: e.into(),
                    });
                }
                Ok(None) => return Ok(None),
                Ok(Some((_, s))) => {
                    let s = ExitStatus::from_raw(s.as_raw());
                    self.status = Some(s);
                    return Ok(Some(s));
                }
            }
        }
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        if self.status.is_some() || self.pid.is_none() {
            if !self.detached {
                let _ = self.detach();
            }
            return;
        }
        let _ = self.detach();
        let deadline = Instant::now() + EXIT_GRACE;
        while Instant::now() < deadline {
            match self.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                _ => return,
            }
        }
        if let Some(pid) = self.pid {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
        let _ = self.wait();
    }
}
