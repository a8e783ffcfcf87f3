//! Attach an image's root filesystem for [`crate::exec`], in two halves around the namespace
//! change.
//!
//! [`stage`] runs on the host, before `unshare`, with the caller's ids: it opens the image,
//! binds a loop device (root), or extracts to a temporary sandbox (no usable FUSE). Extraction
//! runs single-threaded in the launcher, so the later `unshare(CLONE_NEWUSER)` is still allowed.
//!
//! [`Staged::mount_lower`] runs inside the new mount (and user) namespace, after `/` was made a
//! slave and the session tmpfs was mounted, *before* the `pivot_root` into it (the loop device
//! and `/dev/fuse` are still reachable by their host paths): it mounts the image on the
//! session's lower-layer directory. For FUSE it forks the server with `sifr_sys::process::fork_server`
//! (the launcher is single-threaded there) per the contract of `sifr_squashfs::fuse`.
//!
//! Teardown, when the launcher is done with the payload (drop order of [`Staged`] and
//! [`Server`]): the FUSE server is sent `SIGTERM` and reaped (it would also get its
//! parent-death signal); the loop device auto-clears when the private mount namespace, and with
//! it the mount, goes away; the extraction directory is removed through a directory fd opened
//! before the namespace change, since its host path no longer resolves in the container.
//! Must not: print, or leave any of these behind on the host.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::error::AttachError;
use crate::image::{Attach, Image};

/// An image prepared on the host, waiting to be mounted in the container's namespace.
#[derive(Debug)]
pub struct Staged {
    image: Image,
    kind: Kind,
    /// For a FUSE server: what to look up and decode ahead
    /// ([`sifr_squashfs::fuse::Options::prefetch`]).
    prefetch: sifr_squashfs::fuse::Prefetch,
}

#[derive(Debug)]
enum Kind {
    /// A host directory bound as the lower layer (a sandbox, or an extracted image).
    Dir(PathBuf),
    Loop(Option<sifr_sys::loopdev::LoopDevice>),
    Fuse(Option<File>),
}

/// The extraction directory, removed when dropped (on every path out of the launcher).
///
/// It is also `flock`ed for as long as any guard of it lives (copies share the lock): a launch
/// killed with `kill -9` cannot remove its tree, so the next extraction in the same temporary
/// directory removes the `sifr-extract-*` trees of this user whose lock nobody holds
/// ([`sweep_extractions`]), never one a live launch or holder uses. (The command of a launch
/// killed that way runs on without its launcher, outside a PID namespace; its tree can then go
/// under it, as a batch system that kills a job ends the whole job anyway.)
#[derive(Debug)]
pub struct Extracted {
    /// The temporary directory's parent, opened before the namespace change.
    parent: OwnedFd,
    name: String,
    /// The extraction directory itself, opened for reading and locked.
    lock: OwnedFd,
}

impl Extracted {
    /// A second guard of the same tree (for the process that is to remove it), or `None` if
    /// the directory fd cannot be duplicated.
    pub fn try_clone(&self) -> Option<Extracted> {
        Some(Extracted {
            parent: self.parent.try_clone().ok()?,
            name: self.name.clone(),
            lock: self.lock.try_clone().ok()?,
        })
    }

    /// The descriptors a process that takes the guard over must keep open (the parent the
    /// tree is removed through, and the lock).
    pub fn fds(&self) -> [std::os::fd::RawFd; 2] {
        use std::os::fd::AsRawFd as _;
        [self.parent.as_raw_fd(), self.lock.as_raw_fd()]
    }
}

/// How old an unlocked extraction must be before a sweep removes it: a launch locks its tree
/// right after creating it, so only a tree younger than this could be one not locked yet.
const SWEEP_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Remove the `sifr-extract-*` trees in `base` that belong to this user, are older than
/// [`SWEEP_AFTER`] and whose lock nobody holds: what launches killed with `kill -9` left.
fn sweep_extractions(base: &Path, parent: std::os::fd::BorrowedFd<'_>) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    let (uid, _) = sifr_sys::process::ids();
    for e in rd.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if !name.starts_with("sifr-extract-") {
            continue;
        }
        let Ok(md) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        let old = md
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > SWEEP_AFTER);
        if !md.is_dir() || md.uid() != uid || !old {
            continue;
        }
        let Ok(dir) = sifr_sys::fs::open_dir_at(parent, &name) else {
            continue;
        };
        if matches!(
            sifr_sys::ipc::lock_exclusive(dir.as_fd(), sifr_sys::ipc::LockWait::Try, &name),
            Ok(true)
        ) {
            match sifr_sys::remove::remove_tree_at(parent, &name, &name) {
                Ok(()) => tracing::info!("removed `{name}`, left by a killed launch"),
                Err(e) => tracing::debug!("cannot remove `{name}`: {e}"),
            }
        }
    }
}

impl std::os::fd::AsRawFd for Extracted {
    /// The directory fd the guard removes the tree through (a daemon that takes the guard
    /// over must keep it open).
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.parent.as_raw_fd()
    }
}

impl Drop for Extracted {
    fn drop(&mut self) {
        if let Err(e) =
            sifr_sys::remove::remove_tree_at(self.parent.as_fd(), &self.name, &self.name)
        {
            tracing::warn!(
                "cannot remove the extracted image `{}`: {e}: {}",
                self.name,
                e.source
            );
        }
    }
}

/// A forked FUSE server; terminated and reaped when dropped.
#[derive(Debug)]
pub struct Server {
    handle: Option<sifr_squashfs::fuse::MountHandle>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = sifr_sys::process::terminate(h.pid());
            // Reaped above; the handle's own drop would detach its mountpoint *path*, which in
            // the container's root now names something else. The namespace takes the mount.
            std::mem::forget(h);
        }
    }
}

/// Host-side half: see the module docs. Returns the staged image and, for extraction, the
/// guard that removes the temporary sandbox.
pub fn stage(image: &Image, attach: &Attach) -> Result<(Staged, Option<Extracted>), AttachError> {
    let open = || {
        File::open(&image.path).map_err(|source| AttachError::ImageFile {
            path: image.path.clone(),
            source,
        })
    };
    let staged = |kind| Staged {
        image: image.clone(),
        kind,
        prefetch: sifr_squashfs::fuse::Prefetch::default(),
    };
    Ok(match attach {
        Attach::Directory => (staged(Kind::Dir(image.path.clone())), None),
        Attach::Loop => {
            let f = open()?;
            let dev = sifr_sys::loopdev::attach_ro(
                f.as_fd(),
                image.offset,
                image.size,
                &image.path.display().to_string(),
            )
            .map_err(|source| AttachError::Loop {
                path: image.path.clone(),
                offset: image.offset,
                source,
            })?;
            (staged(Kind::Loop(Some(dev))), None)
        }
        Attach::Fuse => (staged(Kind::Fuse(Some(open()?))), None),
        Attach::Extract { .. } => {
            let (root, guard) = extract(image, open()?)?;
            (staged(Kind::Dir(root)), Some(guard))
        }
    })
}

/// Extract the image into a new `0700` directory under the temporary directory.
fn extract(image: &Image, file: File) -> Result<(PathBuf, Extracted), AttachError> {
    let base = std::env::temp_dir();
    let base_err = |source| AttachError::TempDir {
        path: base.clone(),
        source,
    };
    let parent = sifr_sys::fs::open_root(&base).map_err(|e| base_err(e.source))?;
    sweep_extractions(&base, parent.as_fd());
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("sifr-extract-{}-{stamp:08x}", std::process::id());
    let dir = base.join(&name);
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| AttachError::TempDir {
                path: dir.clone(),
                source,
            })?;
    }
    let lock = sifr_sys::fs::open_dir_at(parent.as_fd(), &name).and_then(|fd| {
        sifr_sys::ipc::lock_exclusive(fd.as_fd(), sifr_sys::ipc::LockWait::Block, &name).map(|_| fd)
    });
    let lock = match lock {
        Ok(fd) => fd,
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            return Err(AttachError::TempDir {
                path: dir.clone(),
                source: std::io::Error::other(e.to_string()),
            });
        }
    };
    // From here on, the guard removes the directory on every path.
    let guard = Extracted { parent, name, lock };
    let root = dir.join("root");
    let extract_err = |source| AttachError::Extract {
        path: image.path.clone(),
        offset: image.offset,
        dest: root.clone(),
        source,
    };
    let archive = sifr_squashfs::read::Archive::open(file, image.offset).map_err(extract_err)?;
    let opts = sifr_squashfs::read::ExtractOptions {
        owners: false,
        devices: false,
        xattrs: false,
    };
    archive.extract_to(&root, &opts).map_err(extract_err)?;
    Ok((root, guard))
}

impl Staged {
    /// Nothing to attach: the image is mounted already (a joined holder's, [`crate::share`]).
    pub fn nothing(image: &Image) -> Staged {
        Staged {
            image: image.clone(),
            kind: Kind::Loop(None),
            prefetch: sifr_squashfs::fuse::Prefetch::default(),
        }
    }

    /// What a FUSE server started by [`Staged::mount_lower`] or [`Staged::mount_detached`]
    /// looks up and decodes before it is asked ([`sifr_squashfs::fuse::Options::prefetch`]).
    pub fn set_prefetch(&mut self, prefetch: sifr_squashfs::fuse::Prefetch) {
        self.prefetch = prefetch;
    }

    /// The host directory to bind as the lower layer, when the image is one.
    pub fn host_dir(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Dir(p) => Some(p),
            _ => None,
        }
    }

    /// Namespace-side half: mount the image on `lower` (an empty directory of the session)
    /// unless it is a host directory (then the caller binds it). Returns the FUSE server to
    /// keep until the payload exits. `owner`: who a FUSE mount presents every file as owned by
    /// (`None`: the image's owners).
    pub fn mount_lower(
        &mut self,
        lower: &Path,
        owner: Option<sifr_squashfs::fuse::Owner>,
    ) -> Result<Option<Server>, AttachError> {
        self.mount(lower, owner, true)
    }

    /// Like [`Staged::mount_lower`], for a holder of a shared image ([`crate::share`]): a FUSE
    /// server gets no parent-death signal and is not tracked; it ends when no mount namespace
    /// holds the mount any more, so launches that joined outlive a holder that dies.
    pub fn mount_detached(
        &mut self,
        at: &Path,
        owner: Option<sifr_squashfs::fuse::Owner>,
    ) -> Result<(), AttachError> {
        if let Some(h) = self
            .mount(at, owner, false)?
            .and_then(|mut s| s.handle.take())
        {
            std::mem::forget(h);
        }
        Ok(())
    }

    fn mount(
        &mut self,
        lower: &Path,
        owner: Option<sifr_squashfs::fuse::Owner>,
        die_with_parent: bool,
    ) -> Result<Option<Server>, AttachError> {
        let path = self.image.path.clone();
        let offset = self.image.offset;
        match &mut self.kind {
            Kind::Dir(_) => Ok(None),
            Kind::Loop(dev) => {
                let Some(dev) = dev.take() else {
                    return Ok(None);
                };
                let r = sifr_sys::mount::mount_squashfs(&dev.path, lower);
                // Our fd goes; the mount keeps the auto-clearing device alive.
                drop(dev);
                r.map_err(|source| AttachError::KernelMount {
                    path,
                    offset,
                    source,
                })?;
                Ok(None)
            }
            Kind::Fuse(file) => {
                let Some(file) = file.take() else {
                    return Ok(None);
                };
                let prefetch = std::mem::take(&mut self.prefetch);
                let server =
                    fuse_squashfs(&path, file, offset, lower, owner, die_with_parent, prefetch)?;
                // One listing of the root (`READDIRPLUS`) makes the kernel know every
                // top-level entry: the dozen lookups that assembling the container and
                // starting its command make there (proc, etc, home, usr, bin, lib64, ...)
                // then need no round trip to the server each. Best effort.
                let _ = std::fs::read_dir(lower).map(Iterator::count);
                Ok(Some(server))
            }
        }
    }
}

/// Mount the SquashFS at `offset` of `file` (the image at `path`) on `at` with the in-tree FUSE
/// server, forked here (the launcher is single-threaded), and wait until it answers. Also
/// used for a SquashFS overlay layer ([`crate::overlay_mount`]).
pub(crate) fn fuse_squashfs(
    path: &Path,
    file: File,
    offset: u64,
    at: &Path,
    owner: Option<sifr_squashfs::fuse::Owner>,
    die_with_parent: bool,
    prefetch: sifr_squashfs::fuse::Prefetch,
) -> Result<Server, AttachError> {
    let fuse_err = |source| AttachError::Fuse {
        path: path.to_path_buf(),
        offset,
        source,
    };
    let opts = sifr_squashfs::fuse::Options {
        fsname: format!("sifr:{}", file_name(path)),
        owner,
        die_with_parent,
        prefetch,
        idle_priority: Some(sifr_sys::process::set_idle_priority),
        ..Default::default()
    };
    let mounted = sifr_squashfs::fuse::mount(file, offset, at, &opts).map_err(fuse_err)?;
    let (pid, mounted) = sifr_sys::process::fork_server(mounted, |m| {
        // Nothing of the launcher's: a detached server outlives it, and an
        // inherited pipe held open would keep `mpirun` waiting.
        sifr_sys::process::close_fds_except(&m.fds());
        sifr_sys::process::set_name("sifr-fuse");
        match m.serve() {
            Ok(()) => 0,
            Err(_) => 1,
        }
    })
    .map_err(|source| AttachError::FuseFork {
        path: path.to_path_buf(),
        source,
    })?;
    let mut server = Server {
        handle: Some(mounted.into_handle(pid)),
    };
    if let Some(h) = server.handle.as_mut() {
        h.wait_ready().map_err(fuse_err)?;
    }
    Ok(server)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
