//! Mount operations: propagation changes, tmpfs and overlay mounts, detached bind trees
//! (`open_tree` + `mount_setattr` + `move_mount`), `pivot_root` and lazy unmounts.
//!
//! Runs inside the container's new mount namespace (and user namespace when unprivileged); none
//! of these calls should ever be made in the host's mount namespace, which the caller guarantees
//! by unsharing first and making `/` a slave.
//!
//! Must not: resolve destinations inside the image by joining strings (use
//! [`crate::fs::resolve_in_root`] and pass the fd), or choose flags: the caller says ro/nosuid.
//! Kernel needs: `open_tree`/`move_mount` (5.2), `mount_setattr` (5.12), unprivileged overlayfs
//! (5.11).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::mount::{
    MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};

use crate::error::{Error, Result, err};

/// Per-mount attributes a caller may add. Attributes are only ever added, never cleared, so this
/// works on trees that contain mounts locked by a less privileged user namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    pub readonly: bool,
    pub nosuid: bool,
    pub nodev: bool,
}

impl Attrs {
    fn bits(self) -> u64 {
        [
            (self.readonly, libc::MOUNT_ATTR_RDONLY),
            (self.nosuid, libc::MOUNT_ATTR_NOSUID),
            (self.nodev, libc::MOUNT_ATTR_NODEV),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .fold(0, |b, (_, bit)| b | bit)
    }
}

/// `mount --make-rslave /`: mounts from the host still propagate in, ours never propagate out
/// (Apptainer's `mount slave = yes`).
pub fn make_rslave(path: &Path) -> Result<()> {
    rustix::mount::mount_change(
        path,
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(err("make-rslave", path.display()))
}

/// `mount --make-rprivate PATH`.
pub fn make_rprivate(path: &Path) -> Result<()> {
    rustix::mount::mount_change(
        path,
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(err("make-rprivate", path.display()))
}

/// Mount a new tmpfs at `target` with `nosuid,nodev` and the given data (`mode=0755,size=…`).
pub fn mount_tmpfs(target: &Path, data: &str) -> Result<()> {
    let data_c = std::ffi::CString::new(data).map_err(err("mount tmpfs", target.display()))?;
    rustix::mount::mount(
        "tmpfs",
        target,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        data_c.as_c_str(),
    )
    .map_err(err("mount tmpfs on", target.display()))
}

/// Mount a FUSE filesystem at `target`, served through the `/dev/fuse` descriptor `fuse` by a
/// program started afterwards (`--fusemount`): `nosuid,nodev`, a directory root, `user_id` and
/// `group_id` the ids that may use it (plus everyone with `allow_other`). Allowed inside a user
/// namespace. Until the program answers the kernel's `INIT`, accesses below `target` block.
pub fn mount_fuse(
    target: &Path,
    fuse: std::os::fd::BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    allow_other: bool,
) -> Result<()> {
    use std::os::fd::AsRawFd as _;
    let data = format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid}{}",
        fuse.as_raw_fd(),
        if allow_other { ",allow_other" } else { "" }
    );
    let data_c = std::ffi::CString::new(data).map_err(err("mount fuse", target.display()))?;
    rustix::mount::mount(
        "fuse",
        target,
        "fuse",
        MountFlags::NOSUID | MountFlags::NODEV,
        data_c.as_c_str(),
    )
    .map_err(err("mount fuse on", target.display()))
}

/// Mount a new devpts instance at `target` (`newinstance,ptmxmode=0666,mode=0620`), as the
/// minimal `/dev` of `--contain` needs for terminals. Allowed inside a user namespace.
pub fn mount_devpts(target: &Path) -> Result<()> {
    rustix::mount::mount(
        "devpts",
        target,
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        c"newinstance,ptmxmode=0666,mode=0620",
    )
    .map_err(err("mount devpts on", target.display()))
}

/// Mount a new procfs at `target` (`nosuid,nodev,noexec`). It shows the PID namespace of the
/// *calling process*, so a caller that wants the container's processes must already be inside
/// the new PID namespace (see [`crate::process::spawn_init`]). In a user namespace the kernel
/// also requires an unobstructed procfs to be mounted somewhere in the mount namespace already.
pub fn mount_proc(target: &Path) -> Result<()> {
    rustix::mount::mount(
        "proc",
        target,
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        c"",
    )
    .map_err(err("mount proc on", target.display()))
}

/// Mount a kernel overlayfs at `target` with lower layers `lowers` (topmost first) and, with
/// `writes = Some((upper, work))`, a writable upper layer and overlayfs's work directory. With
/// `None` the overlay is read-only and needs at least two lower layers; the kernel then skips
/// the work directory's setup and its feature probes. Paths must not contain `,` or `:` (the
/// caller checks or stages them under fixed names).
pub fn mount_overlay(
    lowers: &[&Path],
    writes: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<()> {
    mount_overlay_with(lowers, writes, target, false)
}

/// [`mount_overlay`], with `userxattr` when asked: overlayfs then keeps its whiteouts' and
/// opaque directories' marks in `user.overlay.*` attributes, which a user namespace may write,
/// instead of `trusted.overlay.*` (a FUSE upper layer must take them, or the mount fails).
pub fn mount_overlay_with(
    lowers: &[&Path],
    writes: Option<(&Path, &Path)>,
    target: &Path,
    userxattr: bool,
) -> Result<()> {
    let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let mut data = format!("lowerdir={}", lower.join(":"));
    if userxattr {
        data.push_str(",userxattr");
    }
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV;
    match writes {
        Some((upper, work)) => {
            data.push_str(&format!(
                ",upperdir={},workdir={}",
                upper.display(),
                work.display()
            ));
        }
        None => flags |= MountFlags::RDONLY,
    }
    let data_c = std::ffi::CString::new(data).map_err(err("mount overlay", target.display()))?;
    rustix::mount::mount("overlay", target, "overlay", flags, data_c.as_c_str())
        .map_err(err("mount overlay on", target.display()))
}

/// `mount --rbind src target` with the classic API.
pub fn rbind(src: &Path, target: &Path) -> Result<()> {
    rustix::mount::mount_bind_recursive(src, target).map_err(err(
        "bind mount",
        format!("{}` on `{}", src.display(), target.display()),
    ))
}

/// A detached copy of the mount tree at `src` (recursive), ready for [`set_attrs`] and
/// [`attach`]. Symlinks in `src` are followed.
pub fn clone_tree(src: &Path) -> Result<OwnedFd> {
    rustix::mount::open_tree(
        rustix::fs::CWD,
        src,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(err("clone mount tree of", src.display()))
}

/// Which mounts [`set_attrs`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Only the mount the descriptor refers to.
    Top,
    /// That mount and every mount below it (`AT_RECURSIVE`).
    Tree,
}

/// Add attributes to the mount `fd` refers to (and, at [`Depth::Tree`], to every mount below
/// it) through `mount_setattr(2)`. `what` names the mount in errors.
pub fn set_attrs(fd: BorrowedFd<'_>, attrs: Attrs, depth: Depth, what: &str) -> Result<()> {
    if attrs.bits() == 0 {
        return Ok(());
    }
    mount_setattr(fd, attrs.bits(), 0, depth, what)
}

/// Clear `nosuid` from the mount `fd` refers to (alone): setuid programs on it run as their
/// owner again. For root outside any user namespace (`--allow-setuid`); a mount locked by a
/// less privileged namespace refuses with `EPERM`.
pub fn clear_nosuid(fd: BorrowedFd<'_>, what: &str) -> Result<()> {
    mount_setattr(fd, 0, libc::MOUNT_ATTR_NOSUID, Depth::Top, what)
}

/// `mount_setattr(2)` on `fd` itself: `set` added, `clr` cleared.
fn mount_setattr(fd: BorrowedFd<'_>, set: u64, clr: u64, depth: Depth, what: &str) -> Result<()> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if depth == Depth::Tree {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: mount_setattr reads `size` bytes from `&attr`, a live, properly laid out
    // `struct mount_attr`; the path is a static empty C string and `fd` is a valid borrowed fd
    // for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc == -1 {
        return Err(Error::new(
            "set mount attributes on",
            what,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Attach the detached tree `tree` on top of the object `target` refers to (an `O_PATH` fd from
/// [`crate::fs::resolve_in_root`]). `what` names the destination in errors.
pub fn attach(tree: BorrowedFd<'_>, target: BorrowedFd<'_>, what: &str) -> Result<()> {
    rustix::mount::move_mount(
        tree,
        c"",
        target,
        c"",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(err("mount on", what))
}

/// Open the mount at `path` as an `O_PATH` fd, for [`set_attrs`] on an attached mount.
pub fn open_mount(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .map_err(err("open", path.display()))
}

/// `pivot_root(new_root, put_old)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> Result<()> {
    rustix::process::pivot_root(new_root, put_old).map_err(err(
        "pivot_root into",
        format!(
            "{}` keeping the old root at `{}",
            new_root.display(),
            put_old.display()
        ),
    ))
}

/// `umount2(path, MNT_DETACH)`.
pub fn umount_detach(path: &Path) -> Result<()> {
    rustix::mount::unmount(path, UnmountFlags::DETACH).map_err(err("unmount", path.display()))
}

/// Mount the ext3 filesystem on the block device `device` (a loop device) at `target`,
/// `nosuid,nodev`, read-only unless `writable`: an overlay image as real root. The kernel's ext4
/// driver serves ext3 (`ext3` is its alias where `CONFIG_EXT3_FS` is not built separately, so
/// `ext4` is tried when `ext3` is unknown or refuses the image). Needs `CAP_SYS_ADMIN` in the initial user namespace.
pub fn mount_ext3(device: &Path, target: &Path, writable: bool) -> Result<()> {
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV;
    if !writable {
        flags |= MountFlags::RDONLY;
    }
    let what = || format!("{}` on `{}", device.display(), target.display());
    // `ext3` refuses an image without a journal (`mkfs.ext3` leaves it out of a small one:
    // an ext2 image, which overlay images may be); the ext4 driver takes all three.
    match rustix::mount::mount(device, target, "ext3", flags, c"") {
        Err(rustix::io::Errno::NODEV | rustix::io::Errno::INVAL) => {
            rustix::mount::mount(device, target, "ext4", flags, c"")
                .map_err(err("mount ext3", what()))
        }
        r => r.map_err(err("mount ext3", what())),
    }
}

/// Mount the squashfs filesystem on the block device `device` (a loop device) at `target`,
/// `ro,nosuid,nodev`. Needs `CAP_SYS_ADMIN` in the initial user namespace.
pub fn mount_squashfs(device: &Path, target: &Path) -> Result<()> {
    rustix::mount::mount(
        device,
        target,
        "squashfs",
        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
        c"",
    )
    .map_err(err(
        "mount squashfs",
        format!("{}` on `{}", device.display(), target.display()),
    ))
}
