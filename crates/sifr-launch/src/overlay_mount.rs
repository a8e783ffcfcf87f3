//! Mounting the `--overlay` layers ([`crate::overlay`]) in the container's namespaces, in two
//! steps around the `pivot_root` into the session, and stopping what serves them at the end.
//!
//! [`mount_images`] runs before the pivot, while the image files' fds and `/dev/loop*` still
//! resolve as on the host: each image layer is mounted on the session's `ovl/N`.
//! - As real root (no user namespace): a loop device (read-write for the writable ext3 layer)
//!   and the kernel's ext3 or SquashFS.
//! - As an ordinary user (or `--fakeroot`): SquashFS with the in-tree FUSE server, ext3 with
//!   the in-tree ext3 server ([`sifr_extfs`], on the host's libext2fs), both forked here. The
//!   ext3 server answers what kernel overlayfs asks of an upper layer (`RENAME_WHITEOUT`,
//!   whiteouts, `user.overlay.*` attributes), so a writable ext3 image needs one FUSE server,
//!   where Apptainer stacks `fuse-overlayfs` on `fuse2fs`.
//!
//! [`layer_paths`] runs after the pivot: a directory layer is bound from `/oldroot` on its
//! `ovl/N`; then the layers' lower directories (topmost first) and the writable layer's
//! `upper`/`work` are returned for the root's overlay ([`crate::assemble::mount_root`]).
//!
//! Teardown ([`Mounted`]'s drop, after the command): each ext3 mount is synced (`syncfs`: the
//! kernel's cached writes reach the server), then its server gets `SIGTERM`, writes the image
//! back and is waited for, so `e2fsck -fn` finds the image clean once the launcher has
//! exited; the SquashFS servers are stopped the same way; loop devices clear themselves when
//! the namespace goes.

use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use crate::assemble::old;
use crate::error::ExecError;
use crate::overlay::{Kind, Layers};

/// Where layer `i` is mounted, relative to the session's root.
fn slot(i: usize) -> PathBuf {
    PathBuf::from(format!("ovl/{i}"))
}

/// What serves the mounted layers; stopped when dropped.
#[derive(Debug, Default)]
pub struct Mounted {
    /// In-tree ext3 servers with their mount's root (for `syncfs`), lowest layer first.
    ext3: Vec<(sifr_extfs::MountHandle, std::fs::File)>,
    /// In-tree SquashFS servers.
    servers: Vec<crate::attach::Server>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for (handle, root) in self.ext3.drain(..).rev() {
            if let Err(e) = sifr_sys::fs::syncfs(root.as_fd()) {
                tracing::warn!("cannot sync the overlay image: {e}");
            }
            match sifr_sys::process::terminate(handle.pid()) {
                Ok(st) => tracing::debug!("ext3 server ended ({})", st.describe()),
                Err(e) => tracing::warn!("cannot stop the ext3 server: {e}"),
            }
            // Reaped above; its own drop would detach its mountpoint *path*, which in the
            // container's root names something else. The namespace takes the mount.
            std::mem::forget(handle);
        }
        self.servers.clear();
    }
}

/// How [`mount_images`] mounts.
#[derive(Debug, Clone, Copy)]
pub struct How {
    /// Real root without a user namespace: loop devices and the kernel's filesystems.
    pub kernel: bool,
    /// Who the in-tree FUSE server presents files as owned by (`None`: the image's owners).
    pub owner: Option<sifr_squashfs::fuse::Owner>,
}

/// Mount the image layers on the session's `ovl/N`, before the pivot (the working directory is
/// the session's root). Directory layers wait for [`layer_paths`].
pub fn mount_images(layers: &mut Layers, how: How) -> Result<Mounted, ExecError> {
    let mut mounted = Mounted::default();
    if layers.is_empty() {
        return Ok(mounted);
    }
    std::fs::create_dir("ovl").map_err(|source| ExecError::Session {
        path: "ovl".into(),
        source,
    })?;
    for (i, l) in layers.layers.iter_mut().enumerate() {
        let at = slot(i);
        std::fs::create_dir(&at).map_err(|source| ExecError::Session {
            path: at.clone(),
            source,
        })?;
        let Some(file) = l.file.as_ref() else {
            continue;
        };
        let target = Path::new("/tmp").join(&at);
        match mount_one(l, file, &target, how, &mut mounted) {
            Err(e) if l.implicit => {
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                tracing::warn!(
                    "the overlay partition of {} is not used: {e}{cause}",
                    l.path.display()
                );
                l.skipped = true;
            }
            r => r?,
        }
    }
    Ok(mounted)
}

/// Mount one image layer on `target`.
fn mount_one(
    l: &crate::overlay::Layer,
    file: &std::fs::File,
    target: &Path,
    how: How,
    mounted: &mut Mounted,
) -> Result<(), ExecError> {
    let mount_err = |source| ExecError::OverlayImage {
        layer: l.describe(),
        source,
    };
    match (l.kind, how.kernel) {
        (Kind::Dir, _) => {}
        (kind, true) => {
            let dev = sifr_sys::loopdev::attach(
                file.as_fd(),
                l.offset,
                l.size,
                l.writable,
                &l.path.display().to_string(),
            )
            .map_err(mount_err)?;
            let r = if kind == Kind::Ext3 {
                sifr_sys::mount::mount_ext3(&dev.path, target, l.writable)
            } else {
                sifr_sys::mount::mount_squashfs(&dev.path, target)
            };
            // The mount keeps the auto-clearing device alive.
            drop(dev);
            r.map_err(mount_err)?;
        }
        (Kind::Squashfs, false) => {
            let f = file.try_clone().map_err(|source| ExecError::Session {
                path: l.path.clone(),
                source,
            })?;
            let server = crate::attach::fuse_squashfs(
                &l.path,
                f,
                l.offset,
                target,
                how.owner,
                true,
                Default::default(),
            )?;
            mounted.servers.push(server);
        }
        (Kind::Ext3, false) => {
            let m = ext3_server(l, file, target)?;
            mounted.ext3.push(m);
        }
    }
    Ok(())
}

/// Mount the ext3 layer `l` on `target` with the in-tree server, forked here, and wait until
/// it answers. The image is opened through its held fd (`/proc/self/fd/N`): under the host's
/// `/tmp`, hidden by the session now, its path would not resolve.
fn ext3_server(
    l: &crate::overlay::Layer,
    file: &std::fs::File,
    target: &Path,
) -> Result<(sifr_extfs::MountHandle, std::fs::File), ExecError> {
    use std::os::fd::AsRawFd as _;
    let err = |source| ExecError::Ext3 {
        layer: l.describe(),
        source: Box::new(source),
    };
    let by_fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let opts = sifr_extfs::Options {
        fsname: format!("sifr-extfs:{}", l.path.display()),
        ..Default::default()
    };
    let mounted = sifr_extfs::mount(&by_fd, l.offset, l.writable, target, &opts).map_err(err)?;
    let (pid, mounted) = sifr_sys::process::fork_server(mounted, |m| {
        sifr_sys::process::close_fds_except(&m.fds());
        sifr_sys::process::set_name("sifr-extfs");
        match m.serve() {
            Ok(()) => 0,
            Err(_) => 1,
        }
    })
    .map_err(|source| ExecError::Ext3Start {
        layer: l.describe(),
        source,
    })?;
    let mut handle = mounted.into_handle(pid);
    handle.wait_ready().map_err(err)?;
    let root = std::fs::File::open(target).map_err(|source| ExecError::Session {
        path: target.to_path_buf(),
        source,
    })?;
    Ok((handle, root))
}

/// A writable layer's `upper` and `work` directories.
pub type UpperWork = (PathBuf, PathBuf);

/// The root's layers once in the session: the lower directories, topmost first, and the
/// writable layer's `(upper, work)`. Binds each directory layer from the host on its slot and
/// creates a writable layer's `upper` and `work` when missing.
pub fn layer_paths(layers: &Layers) -> Result<(Vec<PathBuf>, Option<UpperWork>), ExecError> {
    let mut lowers = Vec::new();
    let mut upper = None;
    for (i, l) in layers.layers.iter().enumerate() {
        if l.skipped {
            continue;
        }
        let at = Path::new("/").join(slot(i));
        if l.kind == Kind::Dir {
            sifr_sys::mount::rbind(&old(&l.path), &at).map_err(|source| {
                ExecError::OverlayImage {
                    layer: l.describe(),
                    source,
                }
            })?;
        }
        if l.writable {
            let (u, w) = (at.join("upper"), at.join("work"));
            for d in [&u, &w] {
                make_dir(d).map_err(|source| ExecError::CreateSource {
                    path: l.path.join(d.file_name().unwrap_or_default()),
                    dst: PathBuf::from("/"),
                    source,
                })?;
            }
            upper = Some((u, w));
            continue;
        }
        let lower = match l.kind {
            Kind::Squashfs => at,
            Kind::Dir | Kind::Ext3 if at.join("upper").is_dir() => at.join("upper"),
            Kind::Dir | Kind::Ext3 => at,
        };
        lowers.push(lower);
    }
    lowers.reverse();
    Ok((lowers, upper))
}

/// `mkdir` with mode 0755, an existing directory being fine.
fn make_dir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new().mode(0o755).create(p) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}
