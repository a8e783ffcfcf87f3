//! Assemble the container's root filesystem from a plan's mounts, inside the new mount
//! namespace (and user namespace when unprivileged). Runs after the namespace change and before
//! the final `pivot_root`.
//!
//! Layout (bubblewrap's trick, chosen so that no host directory is created or left behind):
//! a session tmpfs is mounted over `/tmp`, and we `pivot_root` into it at once, keeping the host
//! root at `/oldroot` (where the host's real `/tmp` shows again). The container root is built at
//! `/newroot`; host sources are reached as `/oldroot/<canonical host path>`, resolved before the
//! namespace change so that absolute symlinks on the host cannot be misread in the session.
//!
//! Missing mount points: an overlay, not an underlay. Kernel overlayfs with the image (bound at
//! `/lower`) as lower layer and a tmpfs upper layer lets us create every missing mount point
//! without touching the image, costs one mount instead of one bind per top-level entry, and works
//! in a user namespace on kernels >= 5.11. An underlay would also hide nothing, but it needs one
//! bind per entry of the image root and cannot add entries below the top level. If the overlay
//! mount fails, the image is bound as is and missing mount points are skipped with a warning.
//! The overlay is read-only unless something is to be written (`--writable-tmpfs`,
//! `--overlay`): the session directory holding the mount points is then simply its top lower
//! layer, with no upper or work directory to set up. When no mount point is missing and nothing
//! is to be written, the image is bound as is: the overlay would add nothing but its cost.
//! With `--writable` there is no overlay either (mount points are never created in the image).
//!
//! Destinations are resolved inside `/newroot` with `openat2(RESOLVE_IN_ROOT)` and mounted with
//! `open_tree` + `mount_setattr` + `move_mount` on the resolved fd: a symlink in the image can
//! never redirect a bind onto a host path.
//!
//! Nested binds: a bind whose destination lies inside an earlier host directory bind and is
//! missing there gets its mount point created in that bind's host source, as Apptainer does
//! (and leaves behind); see [`mount_point_in_bind`].
//!
//! Must not: follow paths of the image by string joins, or create anything outside the session
//! tmpfs, the overlay's upper layer and (for nested binds) the enclosing bind's source tree.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use sifr_sys::fs::Leaf;
use sifr_sys::mount::{Attrs, Depth};

use crate::error::{ExecError, fuse_server_died, step};
use crate::plan::types::{LaunchPlan, Mount, Source, Tag};

/// Where the host's root is kept during assembly.
pub const OLD_ROOT: &str = "/oldroot";
/// Where the container's root is assembled.
pub const NEW_ROOT: &str = "/newroot";

/// A plan mount with what was learned about its host source before the namespace change.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub mount: Mount,
    /// Canonical host path, for [`Source::Host`].
    pub host_src: Option<PathBuf>,
    /// Whether the source is a directory (file binds need a file mount point).
    pub is_dir: bool,
    /// For [`Source::Fuse`]: the `/dev/fuse` descriptor, opened and mounted in [`mount_all`]
    /// and handed to the program ([`crate::fusemount::Drivers`]). It is opened in the
    /// container's user namespace: the kernel refuses a FUSE mount whose descriptor was opened
    /// in another one (Apptainer has its RPC server, in the namespace, open it likewise).
    pub fuse: Option<Arc<OnceLock<OwnedFd>>>,
}

/// Resolve host sources (canonical paths, types) before any namespace change. Missing optional
/// sources are dropped with a warning; missing required ones (user binds, `--home`) are errors.
pub fn prepare(plan: &LaunchPlan) -> Result<Vec<Prepared>, ExecError> {
    let mut out = Vec::new();
    for m in &plan.mounts {
        let mut fuse = None;
        let (host_src, is_dir) = match &m.source {
            Source::Host(p) => match create_source(p, m.create, m.tag == Tag::Scratch)
                .map_err(|source| ExecError::CreateSource {
                    path: p.clone(),
                    dst: m.dst.clone(),
                    source,
                })
                .map(|()| std::fs::canonicalize(p))?
            {
                Ok(c) => {
                    let is_dir = c.is_dir();
                    (Some(c), is_dir)
                }
                Err(source) if m.required => {
                    return Err(ExecError::BindSource {
                        src: p.clone(),
                        dst: m.dst.clone(),
                        source,
                    });
                }
                Err(_) => {
                    tracing::debug!(src = %p.display(), "skipping mount of missing host path");
                    continue;
                }
            },
            Source::Scratch | Source::Devpts | Source::Proc => (None, true),
            Source::Passwd | Source::Group | Source::Hostname | Source::Text { .. } => {
                (None, false)
            }
            Source::Fuse(_) => {
                // Opened here too, where Apptainer opens it, so that a `/dev/fuse` the user may
                // not open fails the launch before any namespace exists.
                open_dev_fuse(Path::new("/dev/fuse"), &m.dst)?;
                fuse = Some(Arc::new(OnceLock::new()));
                (None, true)
            }
        };
        out.push(Prepared {
            mount: m.clone(),
            host_src,
            is_dir,
            fuse,
        });
    }
    Ok(out)
}

/// Create a missing `--workdir` directory with `mode` (exactly: the umask does not apply). Only
/// the last component is created, as Apptainer does: the work directory itself must exist.
/// With `parents` (the `--scratch` directories under the work directory, which Apptainer makes
/// with `MkdirAll`), missing parents are created too, with the same mode less the umask.
fn create_source(p: &Path, mode: Option<u32>, parents: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let Some(mode) = mode else {
        return Ok(());
    };
    if parents && let Some(parent) = p.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(parent)?;
    }
    match std::fs::create_dir(p) {
        Ok(()) => std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Where the image's lower layer is mounted before [`pivot_session`] (`/lower` afterwards).
pub const SESSION_LOWER: &str = "/tmp/lower";

/// Make `/` a slave, mount the session tmpfs over `/tmp` and create its directories. The
/// caller may then mount the image on [`SESSION_LOWER`] while host paths (`/dev/loopN`,
/// `/dev/fuse`) still resolve, and calls [`pivot_session`].
pub fn open_session(plan: &LaunchPlan) -> Result<(), ExecError> {
    sifr_sys::mount::make_rslave(Path::new("/")).map_err(step("isolate mount propagation"))?;
    let data = format!("mode=0755,size={}m", plan.session_mib);
    sifr_sys::mount::mount_tmpfs(Path::new("/tmp"), &data)
        .map_err(step("create the session tmpfs"))?;
    sifr_sys::process::chdir(Path::new("/tmp")).map_err(step("enter the session tmpfs"))?;
    for d in [
        "oldroot", "newroot", "lower", "upper", "work", "files", "scratch",
    ] {
        std::fs::create_dir(d).map_err(|source| ExecError::Session {
            path: PathBuf::from(d),
            source,
        })?;
    }
    Ok(())
}

/// Pivot into the session tmpfs; the host root is then at [`OLD_ROOT`].
pub fn pivot_session() -> Result<(), ExecError> {
    sifr_sys::mount::pivot_root(Path::new("."), Path::new("oldroot"))
        .map_err(step("enter the session tmpfs"))?;
    sifr_sys::process::chdir(Path::new("/")).map_err(step("enter the session tmpfs"))
}

/// How the root ended up being assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// Kernel overlayfs; `writable` when a layer takes writes (`--writable-tmpfs`, a writable
    /// `--overlay`).
    Overlay {
        writable: bool,
    },
    Bind,
    Writable,
}

/// Mount the image at [`NEW_ROOT`]: a writable bind, or an overlay whose upper layer already
/// holds the missing mount points (falling back to a plain bind). `host_dir` is the host
/// directory to use as the image (a sandbox or an extracted image); `None` when the image is
/// already mounted on `/lower` (loop device or FUSE, never writable).
pub fn mount_root(
    plan: &LaunchPlan,
    prepared: &[Prepared],
    host_dir: Option<&Path>,
    layers: &crate::overlay::Layers,
) -> Result<RootKind, ExecError> {
    let new_root = Path::new(NEW_ROOT);
    let lower = Path::new("/lower");
    let session_upper = Path::new("/upper");
    match host_dir {
        Some(dir) if plan.writable => {
            sifr_sys::mount::rbind(&old(dir), new_root).map_err(step("mount the image"))?;
            return Ok(RootKind::Writable);
        }
        Some(dir) => sifr_sys::mount::rbind(&old(dir), lower).map_err(step("mount the image"))?,
        None => {}
    }
    // Mount points are created in the upper layer *before* the overlay is mounted: through the
    // merged view, an unprivileged user could not create `/etc/hosts` in the image's `/etc`
    // (owned by a uid that is not mapped in the user namespace), and changing a layer under a
    // mounted overlay is undefined.
    let lower_fd = sifr_sys::fs::open_root(lower).map_err(step("open the image"))?;
    let upper_fd = sifr_sys::fs::open_root(session_upper).map_err(step("open the session"))?;
    let mut created = false;
    for p in prepared {
        match mount_point_in_upper(&lower_fd, &upper_fd, p) {
            Ok(made) => created |= made,
            Err(e) => tracing::warn!("cannot create mount point `{}`: {e}", p.mount.dst.display()),
        }
    }
    drop((lower_fd, upper_fd));
    if !created && layers.is_empty() && !plan.writable_tmpfs {
        // Every mount point exists in the image and nothing will be written: a read-only bind
        // of the image serves the same view without an overlay's mount and lookup costs
        // (about 5 % of a start on a directory image).
        sifr_sys::mount::rbind(lower, new_root).map_err(step("mount the image"))?;
        return Ok(RootKind::Bind);
    }
    if !layers.is_empty() {
        // `--overlay` layers (and a SIF's own overlay partition) above the session's layer of
        // mount points, as Apptainer stacks them above its session's lower directory; the
        // writable one takes the writes, or with `--writable-tmpfs` the session's upper layer.
        let (ovl, upper) = crate::overlay_mount::layer_paths(layers)?;
        let mut lowers: Vec<&Path> = ovl.iter().map(PathBuf::as_path).collect();
        // Without a writable layer the session's upper layer is the overlay's upper one all
        // the same, and the root is made read-only afterwards unless `--writable-tmpfs`
        // ([`mount_all`]): a read-only overlay whose topmost layer is a FUSE filesystem (a
        // user's SquashFS layer) fails every lookup in the image below it with EACCES.
        let writes = match &upper {
            Some((u, w)) => Some((u.as_path(), w.as_path())),
            None => Some((session_upper, Path::new("/work"))),
        };
        let writable = upper.is_some() || plan.writable_tmpfs;
        if upper.is_some() {
            lowers.push(session_upper);
        }
        lowers.push(lower);
        let named = layers
            .writable()
            .or(layers.layers.last())
            .map(|l| l.path.clone())
            .unwrap_or_default();
        // A writable ext3 image of a user namespace is served by `sifr_extfs`: overlayfs may
        // only write `user.overlay.*` marks there.
        let userxattr = !plan.kernel_mounts()
            && layers
                .writable()
                .is_some_and(|l| l.kind == crate::overlay::Kind::Ext3);
        sifr_sys::mount::mount_overlay_with(&lowers, writes, new_root, userxattr).map_err(
            |source| ExecError::Overlay {
                path: named,
                source,
            },
        )?;
        return Ok(RootKind::Overlay { writable });
    }
    let mounted = if plan.writable_tmpfs {
        let writes = Some((session_upper, Path::new("/work")));
        sifr_sys::mount::mount_overlay(&[lower], writes, new_root)
    } else {
        // Read-only root: the session's upper layer holding the mount points is just another
        // lower layer, and the overlay needs no work directory (cheaper to mount).
        sifr_sys::mount::mount_overlay(&[session_upper, lower], None, new_root)
    };
    match mounted {
        Ok(()) => Ok(RootKind::Overlay {
            writable: plan.writable_tmpfs,
        }),
        // Without the overlay there is nowhere to keep the writes: refuse rather than run with a
        // read-only root the user did not ask for.
        Err(source) if plan.writable_tmpfs => Err(ExecError::WritableTmpfs { source }),
        // The image itself died under the launch (its FUSE server ended): a bind of it would
        // give a container whose every file fails.
        Err(e) if fuse_server_died(e.errno()) => Err(ExecError::ImageGone {
            image: plan.image.clone(),
            source: std::io::Error::from_raw_os_error(e.errno().unwrap_or_default()),
        }),
        Err(e) => {
            // Its own path (`/newroot`) is sifr's staging, not the user's business.
            tracing::warn!(
                "overlay unavailable ({}); missing mount points in the image will be skipped",
                e.source
            );
            sifr_sys::mount::rbind(lower, new_root).map_err(step("mount the image"))?;
            Ok(RootKind::Bind)
        }
    }
}

/// A host path as the user knows it: without the `/oldroot` it is reached through after the
/// pivot (messages never name sifr's own staging).
fn host_path(p: &Path) -> std::borrow::Cow<'_, Path> {
    match p.strip_prefix(OLD_ROOT) {
        Ok(rest) => Path::new("/").join(rest).into(),
        Err(_) => p.into(),
    }
}

/// Create `p`'s destination in the upper layer when the image lacks it. The longest existing
/// prefix is resolved in the image (symlinks followed inside it) and its canonical in-image path
/// is read back from `/proc/self/fd`, so a missing `/var/run/x` under an image symlink
/// `/var/run -> /run` is created as `/run/x`, never as a directory that would hide the symlink.
/// Returns whether it created anything.
fn mount_point_in_upper(lower: &OwnedFd, upper: &OwnedFd, p: &Prepared) -> Result<bool, String> {
    let comps: Vec<&std::ffi::OsStr> = p
        .mount
        .dst
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    let mut found = None;
    for k in (0..=comps.len()).rev() {
        let prefix: PathBuf = std::iter::once(std::ffi::OsStr::new("/"))
            .chain(comps[..k].iter().copied())
            .collect();
        if let Some(fd) =
            sifr_sys::fs::resolve_in_root(lower.as_fd(), &prefix).map_err(|e| e.to_string())?
        {
            found = Some((k, fd));
            break;
        }
    }
    let Some((k, fd)) = found else {
        return Err("the image root cannot be resolved".into());
    };
    if k == comps.len() {
        return Ok(false);
    }
    if !sifr_sys::fs::is_dir(fd.as_fd()).map_err(|e| e.to_string())? {
        return Err("a parent in the image is not a directory".into());
    }
    let link = old(Path::new(&format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    )));
    let host = std::fs::read_link(&link).map_err(|e| format!("{}: {e}", link.display()))?;
    let canon = host
        .strip_prefix("/lower")
        .map_err(|_| format!("`{}` resolves outside the image", host.display()))?;
    let mut target = PathBuf::from("/").join(canon);
    target.extend(&comps[k..]);
    let leaf = if p.is_dir { Leaf::Dir } else { Leaf::File };
    sifr_sys::fs::create_in_root(upper.as_fd(), &target, leaf)
        .map_err(|e| format!("{e}: {}", e.source))?;
    Ok(true)
}

/// `/oldroot` + an absolute host path.
pub fn old(p: &Path) -> PathBuf {
    Path::new(OLD_ROOT).join(p.strip_prefix("/").unwrap_or(p))
}

/// Stage generated files, then perform every mount in plan order.
pub fn mount_all(
    plan: &LaunchPlan,
    prepared: &[Prepared],
    root: &OwnedFd,
    kind: RootKind,
) -> Result<(), ExecError> {
    let passwd_ok = stage_rewritten(root, "/etc/passwd", "/files/passwd", |image| {
        crate::identity::passwd(image, &plan.identity)
    })?;
    let group_ok = stage_rewritten(root, "/etc/group", "/files/group", |image| {
        crate::identity::group(image, &plan.identity)
    })?;
    for (i, p) in prepared.iter().enumerate() {
        let m = &p.mount;
        let src = match &m.source {
            Source::Host(_) => old(p.host_src.as_deref().unwrap_or(Path::new("/"))),
            Source::Scratch => stage_scratch(i, m, prepared)?,
            Source::Devpts => {
                let dir = PathBuf::from(format!("/scratch/devpts-{i}"));
                std::fs::create_dir_all(&dir).map_err(|source| ExecError::Session {
                    path: dir.clone(),
                    source,
                })?;
                sifr_sys::mount::mount_devpts(&dir).map_err(|source| ExecError::Mount {
                    dst: m.dst.clone(),
                    source,
                })?;
                dir
            }
            Source::Passwd if passwd_ok => PathBuf::from("/files/passwd"),
            Source::Group if group_ok => PathBuf::from("/files/group"),
            Source::Passwd | Source::Group => continue,
            // Mounted later, from inside the PID namespace, by its init (see `crate::exec`).
            Source::Proc => continue,
            Source::Fuse(n) => stage_fuse(i, *n, p, plan)?,
            Source::Hostname => {
                let name = plan.hostname.as_deref().unwrap_or_default();
                write_session("/files/hostname", &format!("{name}\n"))?;
                PathBuf::from("/files/hostname")
            }
            Source::Text { name, text } => {
                let path = format!("/files/{name}");
                write_session(&path, text)?;
                PathBuf::from(path)
            }
        };
        let mut found = sifr_sys::fs::resolve_in_root(root.as_fd(), &m.dst)
            .map_err(step("resolve a mount point"))?;
        if found.is_none() && mount_point_in_bind(prepared, i)? {
            found = sifr_sys::fs::resolve_in_root(root.as_fd(), &m.dst)
                .map_err(step("resolve a mount point"))?;
        }
        let Some(dst) = found else {
            // A writable sandbox gets no overlay to make the mount point in: Apptainer fails
            // on a user's bind there (e2e `SimpleDirWritableKO`), sifr too.
            if plan.writable && m.tag == Tag::UserBind {
                return Err(ExecError::MissingMountPoint {
                    dst: m.dst.clone(),
                    image: plan.image.clone(),
                });
            }
            tracing::warn!(
                "skipping mount of `{}`: `{}` does not exist in the container",
                host_path(&src).display(),
                m.dst.display()
            );
            continue;
        };
        let dst_is_dir =
            sifr_sys::fs::is_dir(dst.as_fd()).map_err(step("resolve a mount point"))?;
        if dst_is_dir != p.is_dir {
            tracing::warn!(
                "skipping mount of `{}`: `{}` in the container is {} a directory",
                host_path(&src).display(),
                m.dst.display(),
                if dst_is_dir { "" } else { "not" }
            );
            continue;
        }
        let tree = sifr_sys::mount::clone_tree(&src).map_err(|source| ExecError::Mount {
            dst: m.dst.clone(),
            source,
        })?;
        if let Source::Fuse(_) = m.source {
            // The copy at the mount point is the only one left, so that detaching it ends the
            // filesystem (see `crate::fusemount::Drivers`).
            sifr_sys::mount::umount_detach(&src).map_err(|source| ExecError::Mount {
                dst: m.dst.clone(),
                source,
            })?;
        }
        let attrs = Attrs {
            readonly: m.readonly,
            nosuid: m.nosuid,
            nodev: m.nodev,
        };
        let what = m.dst.display().to_string();
        sifr_sys::mount::set_attrs(tree.as_fd(), attrs, Depth::Tree, &what)
            .and_then(|()| sifr_sys::mount::attach(tree.as_fd(), dst.as_fd(), &what))
            .map_err(|source| ExecError::Mount {
                dst: m.dst.clone(),
                source,
            })?;
    }
    // Every image mount is nosuid,nodev (as Apptainer mounts images); read-only unless
    // --writable, or --writable-tmpfs on the overlay (whose upper layer takes the writes). Not
    // recursive: the binds below keep the flags chosen for them.
    let r = sifr_sys::mount::open_mount(Path::new(NEW_ROOT))
        .map_err(step("restrict the image mount"))?;
    let writable = match kind {
        RootKind::Writable => true,
        RootKind::Overlay { writable } => writable,
        RootKind::Bind => false,
    };
    let attrs = Attrs {
        readonly: !writable,
        nosuid: true,
        nodev: true,
    };
    sifr_sys::mount::set_attrs(r.as_fd(), attrs, Depth::Top, "/")
        .map_err(step("restrict the image mount"))?;
    // `--allow-setuid` (root, no user namespace): Apptainer mounts the image without `nosuid`.
    if plan.privs.allow_setuid {
        sifr_sys::mount::clear_nosuid(r.as_fd(), "/").map_err(step("allow setuid in the image"))?;
    }
    Ok(())
}

/// Create the missing mount point of `prepared[i]` in the host directory bound over it by an
/// earlier mount, as Apptainer does for nested binds (its session layout creates the entry in
/// the overriding bind source, and leaves it there: e2e `NestedBindFile`, `NestedBindDir`,
/// `MultipleNestedBindDir`). The enclosing bind is the last earlier host directory mount whose
/// destination holds this one: mounts are in plan order (shortest first), so it is the one on
/// top. Only the mounts whose directory Apptainer lets stand in for the image's (its session's
/// `OverrideDir`: user binds, the home, `/tmp` and `/var/tmp`, `--scratch` under `-W`) count:
/// never the host's `/dev`, `/proc` or `/sys`, where a mount point must not be created. The path is created inside the bind's *source*, opened as a root, with every component
/// resolved `RESOLVE_IN_ROOT`: a symlink in the bound tree cannot lead the creation out of it,
/// and a read-only bind still gets its mount point (Apptainer creates it before mounting too).
/// Returns whether it created the mount point; `false` when no earlier bind holds it.
fn mount_point_in_bind(prepared: &[Prepared], i: usize) -> Result<bool, ExecError> {
    let p = &prepared[i];
    // Only what the user asked to mount there gets a mount point made: a system file such as
    // `/etc/localtime` under a user's bind of `/etc` is left out, as before the user's bind.
    if !matches!(
        p.mount.source,
        Source::Host(_) | Source::Scratch | Source::Fuse(_)
    ) || !matches!(
        p.mount.tag,
        Tag::UserBind | Tag::Home | Tag::Tmp | Tag::Scratch | Tag::Fuse
    ) {
        return Ok(false);
    }
    let enclosing = prepared[..i].iter().rev().find(|e| {
        matches!(e.mount.source, Source::Host(_))
            && matches!(
                e.mount.tag,
                Tag::UserBind | Tag::Home | Tag::Tmp | Tag::Scratch
            )
            && e.is_dir
            && e.host_src.is_some()
            && p.mount.dst.starts_with(&e.mount.dst)
            && p.mount.dst != e.mount.dst
    });
    let Some(e) = enclosing else {
        return Ok(false);
    };
    let src = e.host_src.as_deref().unwrap_or(Path::new("/"));
    let rel = p
        .mount
        .dst
        .strip_prefix(&e.mount.dst)
        .unwrap_or(&p.mount.dst);
    let failed = |source| ExecError::NestedMountPoint {
        dst: p.mount.dst.clone(),
        src: src.to_path_buf(),
        source,
    };
    let bound = sifr_sys::fs::open_root(&old(src)).map_err(failed)?;
    let leaf = if p.is_dir { Leaf::Dir } else { Leaf::File };
    sifr_sys::fs::create_in_root(bound.as_fd(), rel, leaf).map_err(failed)?;
    tracing::debug!(
        "created the mount point of `{}` in `{}`",
        p.mount.dst.display(),
        src.join(rel).display()
    );
    Ok(true)
}

/// Mount the FUSE filesystem of `--fusemount` spec `n` (the `i`th mount) on a directory of the
/// session, as Apptainer mounts it on its session's `/fuse/N`; the directory is then bound at
/// the mount point like any other source. Nothing is read from the filesystem here: its program
/// is not started yet, and any access would wait for it. With `--fakeroot` others may use it
/// (`allow_other`), as in Apptainer.
fn stage_fuse(i: usize, n: usize, p: &Prepared, plan: &LaunchPlan) -> Result<PathBuf, ExecError> {
    let dir = PathBuf::from(format!("/scratch/fuse-{i}"));
    std::fs::create_dir_all(&dir).map_err(|source| ExecError::Session {
        path: dir.clone(),
        source,
    })?;
    let fd = open_dev_fuse(&old(Path::new("/dev/fuse")), &p.mount.dst)?;
    let fd = match &p.fuse {
        Some(slot) => slot.get_or_init(|| fd),
        None => &fd,
    };
    let (uid, gid) = sifr_sys::process::ids();
    let fakeroot = matches!(plan.ids, crate::plan::types::IdMap::Fakeroot { .. });
    tracing::debug!(
        "mounting the FUSE filesystem of `--fusemount` {n} for `{}`",
        p.mount.dst.display()
    );
    sifr_sys::mount::mount_fuse(&dir, fd.as_fd(), uid, gid, fakeroot).map_err(|source| {
        ExecError::Mount {
            dst: p.mount.dst.clone(),
            source,
        }
    })?;
    Ok(dir)
}

fn open_dev_fuse(path: &Path, dst: &Path) -> Result<OwnedFd, ExecError> {
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| ExecError::DevFuse {
            dst: dst.to_path_buf(),
            source,
        })?;
    Ok(OwnedFd::from(fd))
}

/// A fresh directory of the session for a [`Source::Scratch`] mount, with the mount points of
/// the plan's later mounts below it already created (they cannot be created in the image).
fn stage_scratch(i: usize, m: &Mount, prepared: &[Prepared]) -> Result<PathBuf, ExecError> {
    let dir = PathBuf::from(format!("/scratch/{i}"));
    let mk = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|source| ExecError::Session {
            path: p.to_path_buf(),
            source,
        })
    };
    mk(&dir)?;
    if m.tag == Tag::Tmp {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).map_err(
            |source| ExecError::Session {
                path: dir.clone(),
                source,
            },
        )?;
    }
    if m.dst == Path::new("/dev") {
        // The pty multiplexer of the new devpts instance, as in every minimal /dev.
        let ptmx = dir.join("ptmx");
        std::os::unix::fs::symlink("pts/ptmx", &ptmx)
            .map_err(|source| ExecError::Session { path: ptmx, source })?;
    }
    for later in &prepared[i + 1..] {
        let Ok(rel) = later.mount.dst.strip_prefix(&m.dst) else {
            continue;
        };
        let target = dir.join(rel);
        if later.is_dir {
            mk(&target)?;
        } else {
            if let Some(parent) = target.parent() {
                mk(parent)?;
            }
            std::fs::write(&target, b"").map_err(|source| ExecError::Session {
                path: target.clone(),
                source,
            })?;
        }
    }
    Ok(dir)
}

/// Write the session file `session` as `rewrite` makes it from the image's file `path`;
/// false when the image has no such file (then nothing is mounted over it).
fn stage_rewritten(
    root: &OwnedFd,
    path: &str,
    session: &str,
    rewrite: impl FnOnce(&str) -> String,
) -> Result<bool, ExecError> {
    let Some(image) = read_image(root, path)? else {
        return Ok(false);
    };
    write_session(session, &rewrite(&image))?;
    Ok(true)
}

fn read_image(root: &OwnedFd, path: &str) -> Result<Option<String>, ExecError> {
    let bytes = sifr_sys::fs::read_in_root(root.as_fd(), Path::new(path))
        .map_err(step("read the image"))?;
    Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

fn write_session(path: &str, text: &str) -> Result<(), ExecError> {
    std::fs::write(path, text).map_err(|source| ExecError::Session {
        path: PathBuf::from(path),
        source,
    })
}

/// Pivot into [`NEW_ROOT`] and detach the session and host trees from view.
pub fn enter_root() -> Result<(), ExecError> {
    sifr_sys::process::chdir(Path::new(NEW_ROOT)).map_err(step("enter the container root"))?;
    sifr_sys::mount::pivot_root(Path::new("."), Path::new("."))
        .map_err(step("enter the container root"))?;
    sifr_sys::mount::umount_detach(Path::new(".")).map_err(step("detach the host root"))?;
    sifr_sys::process::chdir(Path::new("/")).map_err(step("enter the container root"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_host_paths_without_the_pivots_staging() {
        assert_eq!(
            host_path(Path::new("/oldroot/home/me")),
            Path::new("/home/me")
        );
        assert_eq!(host_path(Path::new("/oldroot")), Path::new("/"));
        assert_eq!(
            host_path(Path::new("/oldrootx/a")),
            Path::new("/oldrootx/a")
        );
        assert_eq!(host_path(Path::new("/data")), Path::new("/data"));
    }
}
