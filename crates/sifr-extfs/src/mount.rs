//! Mounting with `mount(2)` on a `/dev/fuse` fd, serving in the forked child, and the handle
//! the launcher keeps. See the crate docs for the whole contract.

use std::ffi::CString;
use std::os::fd::{AsFd as _, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};
use rustix::pipe::PipeFlags;
use rustix::process::{Pid, Signal, WaitOptions};
use sifr_sys::ext2fs::Fs;

use crate::fs::{State, clamp_ttl};
use crate::ids::Owners;
use crate::ops::ExtFs;
use crate::{Error, Options, Result};

/// How long the handle lets a detached server end on its own (it does within milliseconds
/// once the kernel releases the filesystem) before sending `SIGTERM`.
const DETACH_GRACE: Duration = Duration::from_secs(1);
/// How long it then waits for the server to write the image back before `SIGKILL`.
const TERM_GRACE: Duration = Duration::from_secs(20);

/// A mounted filesystem whose server has not started yet: the state between [`mount()`] and the
/// caller's `fork`. Dropping it without serving or handing it over unmounts (lazily) and
/// closes the image cleanly.
#[derive(Debug)]
pub struct Mounted {
    fs: Option<Fs>,
    fuse: Option<OwnedFd>,
    ready_r: Option<OwnedFd>,
    ready_w: Option<OwnedFd>,
    writable: bool,
    opts: Options,
    launcher: Pid,
    mountpoint: Option<PathBuf>,
    owners: Owners,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(m) = self.mountpoint.take() {
            let _ = rustix::mount::unmount(&m, UnmountFlags::DETACH);
        }
        if let Some(mut fs) = self.fs.take() {
            fs.mark_clean();
            let _ = fs.close();
        }
    }
}

/// Opens the ext2/ext3 filesystem starting `offset` bytes into `image` (read-write when
/// `writable`), opens `/dev/fuse` and mounts it on `mountpoint` (type `fuse.sifr-extfs`,
/// `nosuid,nodev`, `ro` unless writable, `default_permissions`), and records the mount in
/// the superblock.
///
/// Call it single-threaded, in the user and mount namespaces the mount is for; it starts no
/// thread. Then fork: [`Mounted::serve`] in the child, [`Mounted::into_handle`] in the parent.
/// Accesses to the mountpoint block until the server answers `INIT`, so the parent must fork
/// before touching it (then [`MountHandle::wait_ready`]). An image whose journal needs
/// recovery is refused for writing ([`sifr_sys::ext2fs::OpenError::NeedsRecovery`]).
pub fn mount(
    image: &Path,
    offset: u64,
    writable: bool,
    mountpoint: impl AsRef<Path>,
    opts: &Options,
) -> Result<Mounted> {
    let mountpoint = mountpoint.as_ref().to_path_buf();
    let fs = Fs::open(image, offset, writable).map_err(|source| Error::Image {
        image: image.to_path_buf(),
        offset,
        source,
    })?;
    let mut m = Mounted {
        fs: Some(fs),
        fuse: None,
        ready_r: None,
        ready_w: None,
        writable,
        opts: opts.clone(),
        launcher: rustix::process::getpid(),
        mountpoint: None,
        owners: Owners::of_caller(),
    };
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
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV;
    if !writable {
        flags |= MountFlags::RDONLY;
    }
    rustix::mount::mount(
        fsname.as_str(),
        &mountpoint,
        "fuse.sifr-extfs",
        flags,
        data.as_c_str(),
    )
    .map_err(|e| mount_err(e.into()))?;
    m.mountpoint = Some(mountpoint.clone());
    m.fuse = Some(fuse);
    let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| Error::Pipe {
        mountpoint: mountpoint.clone(),
        source: e.into(),
    })?;
    m.ready_r = Some(r);
    m.ready_w = Some(w);
    if writable {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        if let Some(fs) = m.fs.as_mut() {
            fs.mark_mounted(now).map_err(|source| Error::MarkMounted {
                image: image.to_path_buf(),
                source,
            })?;
        }
    }
    Ok(m)
}

impl Mounted {
    /// Every descriptor the server needs (`/dev/fuse`, the image as libext2fs opened it, the
    /// readiness pipe): a forked server that closes all others must keep these.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut v: Vec<BorrowedFd<'_>> = [&self.fuse, &self.ready_r, &self.ready_w]
            .into_iter()
            .flatten()
            .map(|fd| fd.as_fd())
            .collect();
        if let Some(fs) = &self.fs {
            v.extend(fs.fds());
        }
        v
    }

    /// Where the filesystem is mounted.
    pub fn mountpoint(&self) -> &Path {
        self.mountpoint.as_deref().unwrap_or(Path::new(""))
    }

    /// **Child side of the fork**: serves until the filesystem is released (unmounted and
    /// unused), a termination signal arrives or the launcher exits; writes the image back and
    /// closes it in every case. Starts threads. The caller must `_exit` afterwards (0 on
    /// `Ok`), never return into launcher code.
    pub fn serve(mut self) -> Result<()> {
        let mountpoint = self.mountpoint.take().unwrap_or_default();
        let serve_err = |source: std::io::Error| Error::Serve {
            mountpoint: mountpoint.clone(),
            source,
        };
        let (Some(fs), Some(fuse), Some(ready_w)) =
            (self.fs.take(), self.fuse.take(), self.ready_w.take())
        else {
            return Err(serve_err(std::io::Error::other("served twice")));
        };
        drop(self.ready_r.take());
        let block_size = fs.block_size();
        let state = Arc::new(Mutex::new(State::new(fs)));
        // Before any other thread (they inherit the blocked mask): a termination signal,
        // the launcher's death among them, closes the image between two requests and ends
        // the process.
        let for_signal = Arc::clone(&state);
        sifr_sys::signal::exit_on_termination(move |_| {
            let _ = for_signal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .close();
        })
        .map_err(|e| serve_err(std::io::Error::other(e)))?;
        rustix::process::set_parent_process_death_signal(Some(Signal::TERM))
            .map_err(|e| serve_err(e.into()))?;
        // The launcher may have died between fork and prctl; the signal would never come.
        if rustix::process::getppid() != Some(self.launcher) {
            let _ = state.lock().unwrap_or_else(PoisonError::into_inner).close();
            return Err(serve_err(std::io::Error::other(
                "the launcher exited before the server started",
            )));
        }
        // Terminal signals go to the payload; do not pin the launcher's working directory.
        let _ = rustix::process::setsid();
        let _ = rustix::process::chdir("/");

        let ext = ExtFs {
            state: Arc::clone(&state),
            ttl: clamp_ttl(self.opts.ttl),
            writable: self.writable,
            writeback: self.opts.writeback_cache,
            block_size,
            no_open: false,
            owners: std::mem::take(&mut self.owners),
        };
        let mut config = fuser::Config::default();
        // libext2fs is not thread-safe: every request takes one lock, so more threads would
        // only wait on it.
        config.n_threads = Some(1);
        config.clone_fd = false;
        config.acl = fuser::SessionACL::All;
        let run = fuser::Session::from_fd(ext, fuse, fuser::SessionACL::All, config).and_then(
            |session| {
                // A launcher that stopped listening is not the server's problem.
                let _ = rustix::io::write(&ready_w, &[1]);
                session.run()
            },
        );
        // `destroy` has closed the image already when the session ended normally.
        let closed = state.lock().unwrap_or_else(PoisonError::into_inner).close();
        run.map_err(serve_err)?;
        closed.map_err(|source| Error::Close { mountpoint, source })
    }

    /// **Parent side of the fork**: drops the parent's copies of the filesystem (without
    /// writing anything: the server owns the image now) and of the `/dev/fuse` fd, and returns
    /// the handle for the server `pid`.
    pub fn into_handle(mut self, pid: i32) -> MountHandle {
        if let Some(fs) = self.fs.take() {
            fs.abandon();
        }
        drop(self.fuse.take());
        drop(self.ready_w.take());
        MountHandle {
            pid: Pid::from_raw(pid),
            mountpoint: self.mountpoint.take().unwrap_or_default(),
            ready: self.ready_r.take(),
            detached: false,
            status: None,
        }
    }
}

/// The launcher's handle on a mounted image and its server process.
///
/// Dropping it detaches the mount and ends the server: it waits a moment for the server to
/// leave on its own, then sends `SIGTERM` (the server writes the image back and exits), and
/// kills it only if that takes longer than 20 seconds.
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

    /// Blocks until the server has answered the kernel's `INIT`. If the server died first,
    /// reaps it and says how it ended.
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

    /// Lazily unmounts the mountpoint path (once). Unmount what is stacked on it first (an
    /// overlay keeps the filesystem, and the server, alive).
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

    /// Detaches the mount and ends the server as dropping does, returning how it ended (a
    /// server that wrote the image back exits 0).
    pub fn unmount(mut self) -> Result<ExitStatus> {
        self.detach()?;
        self.finish()
    }

    /// Waits for the server to leave, sending `SIGTERM` after [`DETACH_GRACE`] and
    /// `SIGKILL` after [`TERM_GRACE`] more.
    fn finish(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.wait_for(DETACH_GRACE)? {
            return Ok(s);
        }
        if let Some(pid) = self.pid {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
        if let Some(s) = self.wait_for(TERM_GRACE)? {
            return Ok(s);
        }
        if let Some(pid) = self.pid {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
        self.wait()
    }

    fn wait_for(&mut self, grace: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + grace;
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
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
        let _ = self.detach();
        if self.status.is_none() && self.pid.is_some() {
            let _ = self.finish();
        }
    }
}
