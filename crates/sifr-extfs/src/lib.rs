//! A FUSE server for ext2/ext3 image files, read-write or read-only, on libext2fs: the fast
//! path for ext3 overlay images used by an ordinary user.
//!
//! Apptainer mounts an overlay image unprivileged with `fuse2fs` and, because kernel overlayfs
//! refuses fuse2fs as an upper layer, stacks `fuse-overlayfs` on top: two FUSE hops per write.
//! This server answers everything kernel overlayfs asks of a "remote" upper filesystem (entry
//! types in `readdir`, `RENAME_WHITEOUT`, the 0/0 character device of a whiteout, `user.*` and
//! `trusted.*` extended attributes), so the runtime mounts the image here and kernel overlayfs
//! straight on top (`upperdir=M/upper,workdir=M/work`): one FUSE hop.
//!
//! # Who runs what, where
//!
//! As in `sifr_squashfs::fuse` (a user namespace needs a single-threaded process; the server
//! needs threads):
//!
//! 1. **Launcher, single-threaded, inside the user + mount namespace of the mount**:
//!    [`mount()`] opens the filesystem (an image whose journal needs recovery is refused
//!    here, with the `e2fsck` to run), opens `/dev/fuse` and mounts it (`nosuid,nodev`,
//!    `ro` unless writable, `default_permissions`: the kernel checks permissions) and
//!    creates a readiness pipe. It starts no thread.
//! 2. The caller forks (`sifr_sys::process::fork_server`); **the child** calls
//!    [`Mounted::serve`] (after `close_fds_except(&mounted.fds())` if it closes
//!    descriptors) and `_exit`s with its result.
//! 3. **The parent** calls [`Mounted::into_handle`] and [`MountHandle::wait_ready`].
//! 4. Teardown: unmount whatever is stacked on the mount (the overlay) first, then drop the
//!    [`MountHandle`] (or call [`MountHandle::unmount`]): it detaches the mount, lets the
//!    server finish on its own for a moment, then sends `SIGTERM` and waits. The server
//!    writes the superblock, bitmaps and group counts and closes the image whenever it ends:
//!    on the filesystem's release, on `SIGTERM`/`SIGINT`/`SIGHUP`, and on the launcher's
//!    death (its parent-death signal is `SIGTERM`). So `e2fsck -fn IMAGE` is clean once the
//!    handle is dropped.
//!
//! # Semantics
//!
//! Writes go straight through libext2fs, without journaling (as `fuse2fs` does); while
//! mounted, the superblock says "not cleanly unmounted", so an image whose server was killed
//! is checked by the next `e2fsck`. New inodes belong to the requester's uid and gid as the
//! kernel sends them (already mapped into the mount's user namespace), or the parent
//! directory's group where it is set-group-ID. An owner the mount's user namespace cannot
//! map (root's group in the unprivileged launcher's namespace, which maps only the user's own
//! ids) is shown as the mount's owner, since the kernel refuses any write to an inode with an
//! unmapped id (see `ids.rs`); the image keeps the stored ids. An inode whose last name goes
//! while the kernel still holds it (an open file) is freed when the kernel forgets it, or at
//! the end.
//!
//! Round trips are what an overlay write costs, so the server asks for few: no `open`,
//! `release` or `flush` where the kernel supports going without (`FUSE_NO_OPEN_SUPPORT`),
//! long entry and attribute lifetimes (it is the image's only writer), and the kernel's
//! writeback cache. A new small file through kernel overlayfs still takes about nine
//! (overlayfs's own lookups and `trusted.overlay.*`/`security.capability` reads among them).
//! Large directories get an in-memory name index, so that overlayfs's lookups of each new
//! name do not scan every block of an ext3 directory. libext2fs is not thread-safe, so one
//! thread serves.
//!
//! Also read-only, and ext4 (extents, `metadata_csum`) images: whatever libext2fs writes.
//! Nothing here prints; errors name the image or the mountpoint.

mod fs;
mod ids;
mod mount;
mod ops;
mod rename;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use mount::{MountHandle, Mounted, mount};

/// How the filesystem is mounted and served.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the kernel may cache entries, attributes and negative lookups. The server is
    /// the image's only writer, so the default is long (an hour).
    pub ttl: Duration,
    /// Mount with `allow_other` (always permitted to a `mount(2)` caller; in a user namespace
    /// it extends to that namespace's processes).
    pub allow_other: bool,
    /// Source shown in `/proc/self/mountinfo`.
    pub fsname: String,
    /// Let the kernel cache writes and send them in large batches (`FUSE_WRITEBACK_CACHE`);
    /// dirty pages reach the server at the latest when the file is closed or the filesystem
    /// unmounted.
    pub writeback_cache: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ttl: Duration::from_secs(3600),
            allow_other: true,
            fsname: "sifr-extfs".into(),
            writeback_cache: true,
        }
    }
}

/// What went wrong while mounting, serving or unmounting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the ext3 image `{}` at offset {offset}", image.display())]
    Image {
        image: PathBuf,
        offset: u64,
        #[source]
        source: sifr_sys::ext2fs::OpenError,
    },
    #[error("cannot record the mount in the superblock of `{}`", image.display())]
    MarkMounted {
        image: PathBuf,
        #[source]
        source: sifr_sys::ext2fs::Error,
    },
    #[error("cannot open `/dev/fuse`")]
    DevFuse(#[source] io::Error),
    #[error("cannot mount the ext3 image on `{}`", mountpoint.display())]
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
    #[error("cannot write the ext3 image served on `{}` back", mountpoint.display())]
    Close {
        mountpoint: PathBuf,
        #[source]
        source: sifr_sys::ext2fs::Error,
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
