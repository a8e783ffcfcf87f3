//! A read-only FUSE server for SquashFS images, for unprivileged launches.
//!
//! Built on [`read::Archive`](crate::read::Archive) and the pure-Rust session of `fuser`
//! (no libfuse, no `fusermount3`: we mount with `mount(2)` ourselves and hand fuser the fd).
//!
//! # Who runs what, where
//!
//! A process that creates a user namespace must be single-threaded, and a FUSE server needs
//! threads, so mounting is split in two halves around a `fork` that the **caller** performs
//! (only the `sys` crate may call `fork`; this crate has no `unsafe`):
//!
//! 1. **Launcher, single-threaded, already inside its user + mount namespace**:
//!    [`mount()`] opens the image (validating its superblock and tables), opens `/dev/fuse`,
//!    mounts it read-only, `nosuid,nodev`, on the mountpoint and creates a readiness pipe.
//!    It starts no thread. It returns a [`Mounted`].
//! 2. The launcher forks (`sys`). **In the child**, [`Mounted::serve`] sets a parent-death
//!    signal, starts a new session (terminal signals go to the payload, not the server),
//!    changes directory to `/`, answers the kernel's `INIT`, reports readiness and
//!    starts the [`Options::prefetch`] threads, if any, and
//!    serves on [`Options::threads`] threads until the filesystem goes away; the child then
//!    `_exit`s with a status derived from the result. The child must do nothing else: it
//!    holds the only `/dev/fuse` fd and must never return into launcher code.
//! 3. **In the parent**, [`Mounted::into_handle`] closes the parent's copy of the fd (so only
//!    the server holds it) and returns a [`MountHandle`]; [`MountHandle::wait_ready`] blocks
//!    until the server has answered `INIT`. The parent stays single-threaded and may go on to
//!    `pivot_root`, change identity or exec.
//! 4. Teardown: [`MountHandle::detach`] lazily unmounts (`umount2(MNT_DETACH)`); the kernel
//!    releases the filesystem once nothing uses it, the server's reads then fail with
//!    `ENODEV` and it exits; [`MountHandle::wait`] reaps it. Dropping the handle does both,
//!    killing a server that has not exited after a grace period. A launcher that `exec`s the
//!    payload instead leaves teardown to the kernel: the server's parent-death signal ends it
//!    when the payload (the forking thread's successor) exits.
//!
//! # Identities
//!
//! `user_id=`/`group_id=` are the caller's real ids *in its current user namespace*; without
//! `allow_other` the kernel lets only processes with exactly those ids use the mount.
//! [`Options::allow_other`] is always permitted to a `mount(2)` caller (who holds
//! `CAP_SYS_ADMIN` in the mount's user namespace); inside a user namespace it only extends to
//! processes of that namespace and its descendants. `default_permissions` makes the kernel
//! check the mode bits, so [`Options::owner`] (Apptainer's `uid=`/`gid=`) decides who may
//! read `0700` directories: with the image's owners, ids not mapped into the user namespace
//! show up as the overflow id (65534) exactly as with a kernel mount.
//!
//! Nothing here prints; errors name the mountpoint.

mod fs;
mod mount;

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{Mode, OFlags, ResolveFlags};

pub use mount::{MountHandle, Mounted, mount};

use crate::read::{Archive, Inode};
use fs::{Presentation, SquashFs};

/// How the filesystem is mounted and served.
#[derive(Debug, Clone)]
pub struct Options {
    /// Present every object as owned by this uid/gid (in the caller's user namespace), as
    /// Apptainer's `squashfuse -o uid=,gid=` does, instead of the owners stored in the image.
    pub owner: Option<Owner>,
    /// Server threads; 0 = one per available CPU, at most 8 (metadata requests are short,
    /// more threads mostly add wake-ups).
    pub threads: usize,
    /// How long the kernel may cache entries, attributes and negative lookups. The image is
    /// immutable, so the default is a day.
    pub ttl: Duration,
    /// Mount with `allow_other` (see the module docs for when that is permitted and what it
    /// means in a user namespace).
    pub allow_other: bool,
    /// Source shown in `/proc/self/mountinfo`.
    pub fsname: String,
    /// End the server with `SIGTERM` when the launcher thread that forked it exits.
    pub die_with_parent: bool,
    /// What to look up and put in the kernel's page cache before anyone asks (see
    /// [`Prefetch`]).
    pub prefetch: Prefetch,
    /// Called first by each prefetch thread to make it yield to every other thread (the
    /// runtime passes `sifr_sys::process::set_idle_priority`, `SCHED_IDLE`; this crate makes no
    /// raw system calls). Without it, or if it fails, the threads run at nice 19, which the
    /// scheduler may still let finish a time slice while a request waits.
    pub idle_priority: Option<fn() -> io::Result<()>>,
}

/// Paths to look up, and files to put in the kernel's page cache, before anyone asks, by
/// background threads at the lowest priority once the server is ready. A launch names the
/// files it reads and the mount points it looks up itself, then its command and the dynamic
/// loader and C library nearly every command maps first: over a fresh mount each lookup and
/// each block would otherwise be a request the launch waits for. Best effort: unreadable data
/// is skipped (a real read reports it).
#[derive(Debug, Clone, Default)]
pub struct Prefetch {
    /// Files whose data is stored, in this order, at most [`PREFETCH_BYTES`] in all. Each entry
    /// lists alternative paths in the image (symlinks followed), of which the first that is a
    /// regular file is looked up through the mount and read. These are looked up first, so
    /// their blocks are decoded while [`Prefetch::lookups`] are looked up.
    pub files: Vec<Vec<PathBuf>>,
    /// Paths only looked up through the mount (symlinks followed), so the kernel knows their
    /// entries and attributes, or caches the miss of a missing one.
    pub lookups: Vec<PathBuf>,
}

impl Prefetch {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.lookups.is_empty()
    }
}

/// Most bytes [`Options::prefetch`] reads ahead.
pub const PREFETCH_BYTES: u64 = 8 << 20;
/// Most threads decoding for [`Options::prefetch`] (fewer on fewer CPUs).
const PREFETCH_THREADS: usize = 4;

/// An owner to present every object as having.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            owner: None,
            threads: 0,
            ttl: Duration::from_secs(24 * 60 * 60),
            allow_other: true,
            fsname: "sifr".into(),
            die_with_parent: true,
            prefetch: Prefetch::default(),
            idle_priority: None,
        }
    }
}

impl Options {
    fn server_threads(&self) -> usize {
        match self.threads {
            0 => cpus().min(8),
            n => n,
        }
    }

    fn presentation(&self) -> Presentation {
        Presentation {
            owner: self.owner.map(|o| (o.uid, o.gid)),
            ttl: self.ttl,
        }
    }
}

/// CPUs this process may run on (4 if that cannot be told). One system call, where
/// `available_parallelism` also reads cgroup files: this runs while a launch waits.
fn cpus() -> usize {
    rustix::thread::sched_getaffinity(None).map_or(4, |set| set.count() as usize)
}

/// What went wrong while mounting, serving or unmounting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the squashfs image at offset {offset}")]
    Image {
        offset: u64,
        #[source]
        source: crate::read::Error,
    },
    #[error("cannot read the root directory of the image for `{}`", mountpoint.display())]
    Root {
        mountpoint: PathBuf,
        #[source]
        source: crate::read::Error,
    },
    #[error("cannot open `/dev/fuse`")]
    DevFuse(#[source] io::Error),
    #[error("cannot mount the image on `{}`", mountpoint.display())]
    Mount {
        mountpoint: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create the readiness pipe for `{}`", mountpoint.display())]
    Pipe {
        mountpoint: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("FUSE session for `{}` failed", mountpoint.display())]
    Serve {
        mountpoint: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("FUSE server for `{}` exited before it was ready ({status})", mountpoint.display())]
    NotReady {
        mountpoint: PathBuf,
        status: std::process::ExitStatus,
    },
    #[error("cannot unmount `{}`", mountpoint.display())]
    Unmount {
        mountpoint: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot wait for the FUSE server (pid {pid}) of `{}`", mountpoint.display())]
    Wait {
        pid: i32,
        mountpoint: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Serves `archive` on an already mounted `/dev/fuse` fd in the calling process until the
/// filesystem is unmounted or the fd is closed by the kernel. Starts threads: call it only in
/// a process that will never create a user namespace (a forked server, or a daemon).
/// `mountpoint` is only used in errors.
pub fn serve_blocking(
    fd: OwnedFd,
    archive: Archive,
    opts: &Options,
    mountpoint: impl Into<PathBuf>,
) -> Result<()> {
    serve(fd, archive, opts, mountpoint.into(), |_| {})
}

/// The body of every server: handshake, `ready()`, then the worker threads.
fn serve(
    fd: OwnedFd,
    archive: Archive,
    opts: &Options,
    mountpoint: PathBuf,
    ready: impl FnOnce(&Path),
) -> Result<()> {
    let archive = Arc::new(archive);
    let fs =
        SquashFs::new(Arc::clone(&archive), opts.presentation()).map_err(|source| Error::Root {
            mountpoint: mountpoint.clone(),
            source,
        })?;
    let mut config = fuser::Config::default();
    config.n_threads = Some(opts.server_threads());
    // One fd shared by all threads (as libfuse's default loop does) rather than
    // FUSE_DEV_IOC_CLONE per thread: cloning re-opens `/dev/fuse` by path after the launcher
    // may already have pivoted the shared mount namespace's root away from `/dev`.
    config.clone_fd = false;
    // The kernel enforces who may use the mount (user_id=/allow_other); fuser's own uid
    // filter would only repeat it, and wrongly for `allow_other` mounts.
    config.acl = fuser::SessionACL::All;
    let serve_err = |source| Error::Serve {
        mountpoint: mountpoint.clone(),
        source,
    };
    let session =
        fuser::Session::from_fd(fs, fd, fuser::SessionACL::All, config).map_err(serve_err)?;
    // Opened before `ready`: once told, the launcher may `pivot_root`, which moves this
    // process's root too, and the path would name something else.
    let prefetch = (!opts.prefetch.is_empty()).then(|| Prefetcher {
        archive: Arc::clone(&archive),
        mount_root: rustix::fs::open(
            &mountpoint,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok(),
        notifier: session.notifier(),
        wanted: opts.prefetch.clone(),
        idle_priority: opts.idle_priority,
    });
    ready(&mountpoint);
    if let Some(p) = prefetch {
        // Detached: it ends on its own, or with the process when the filesystem goes.
        let _ = std::thread::Builder::new()
            .name("sifr-prefetch".into())
            .spawn(move || p.run());
    }
    session.run().map_err(serve_err)
}

/// Which of `alternatives` [`Prefetch::files`] reads: the first that is a regular file.
fn pick<'a>(archive: &Archive, alternatives: &'a [PathBuf]) -> Option<(&'a PathBuf, Inode)> {
    alternatives.iter().find_map(|p| {
        let i = archive.resolve(p).ok()??;
        (i.file_type() == crate::read::FileType::File).then_some((p, i))
    })
}

/// The [`Options::prefetch`] threads' state.
///
/// The kernel keeps data a server stores (`FUSE_NOTIFY_STORE`) only for inodes it knows, so
/// the first thread looks each file up through the mount itself (answered by the workers,
/// like any client) and holds an `O_PATH` fd on it while storing. Blocks are decoded into a
/// buffer per thread, not the archive's cache: that would evict blocks real reads use, and
/// fresh memory per block costs page faults and TLB shootdowns in a threaded process. A
/// thread storing a page waits only for a concurrent read of the same page; nothing waits
/// for it (`SCHED_IDLE`, see [`Options::idle_priority`]).
struct Prefetcher {
    archive: Arc<Archive>,
    /// The mount's root, through which the thread looks each path up: the kernel stores data
    /// only for inodes it knows (`FUSE_NOTIFY_STORE`).
    mount_root: Option<OwnedFd>,
    notifier: fuser::Notifier,
    wanted: Prefetch,
    idle_priority: Option<fn() -> io::Result<()>>,
}

impl Prefetcher {
    /// Looks up each wanted file, then, while helpers decode and store their blocks in order,
    /// the other paths; then decodes too, on up to [`PREFETCH_THREADS`] threads in all.
    /// Nothing is done without a mount root.
    fn run(self) {
        // First, before the lookups and before the helpers are spawned (they inherit the
        // policy): a thread that becomes idle only later keeps the time slice it was given
        // at normal priority, and traces showed it holding a CPU for 2 ms against a FUSE
        // request thread the launcher was waiting on. (Nice applies to the calling thread
        // alone on Linux, so the fallback is repeated in each helper.)
        let idle = || {
            if self.idle_priority.is_none_or(|f| f().is_err()) {
                let _ = rustix::process::setpriority_process(None, 19);
            }
        };
        idle();
        let (Ok(root), Some(mount_root)) = (self.archive.root(), self.mount_root.as_ref()) else {
            return;
        };
        // What the kernel remembers of a lookup through the mount: entries, attributes and
        // misses, symlinks followed as the launcher's own lookups follow them.
        let look_up = |path: &Path| {
            rustix::fs::openat2(
                mount_root,
                path,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )
            .ok()
        };
        let block = u64::from(self.archive.superblock().block_size);
        let mut budget = PREFETCH_BYTES;
        let mut files = Vec::new();
        let mut jobs = Vec::new();
        for alternatives in &self.wanted.files {
            let Some((path, inode)) = pick(&self.archive, alternatives) else {
                continue;
            };
            let ino = fs::to_fuse(root.number, inode.number);
            // Held while storing: the kernel keeps the inode as long as the fd is open.
            let Some(held) =
                look_up(path).filter(|fd| rustix::fs::fstat(fd).is_ok_and(|st| st.st_ino == ino))
            else {
                continue;
            };
            // Whole blocks (the last one, the tail), while the budget lasts.
            let blocks = inode.size().div_ceil(block);
            for index in 0..blocks {
                let len = (inode.size() - index * block).min(block);
                if len > budget {
                    break;
                }
                jobs.push((files.len(), index));
                budget -= len;
            }
            files.push((inode, ino, held));
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            // A request the kernel waits on, and the launcher, always run before this
            // guesswork.
            idle();
            let mut buf = Vec::new();
            while let Some(&(f, index)) =
                jobs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            {
                let (inode, ino, _held) = &files[f];
                match self.archive.read_block_into(inode, index, &mut buf) {
                    Ok(off) if !buf.is_empty() => {
                        let _ = self.notifier.store(fuser::INodeNo(*ino), off, &buf);
                    }
                    _ => {}
                }
                // Even `SCHED_IDLE` is not always preempted at once when a request thread or
                // the launcher wakes on this CPU: traces showed them waiting up to 2 ms.
                // Offering the CPU after each block bounds that wait to one block's decode.
                std::thread::yield_now();
            }
        };
        let helpers = cpus().min(PREFETCH_THREADS).saturating_sub(1);
        std::thread::scope(|s| {
            for _ in 0..helpers {
                let _ = std::thread::Builder::new()
                    .name("sifr-prefetch".into())
                    .spawn_scoped(s, work);
            }
            for path in &self.wanted.lookups {
                drop(look_up(path));
            }
            work();
        });
    }
}
