//! Loop devices: bind a window (offset, size) of an image file to a free `/dev/loopN`,
//! read-only and auto-clearing, so that the kernel can mount the filesystem inside a SIF.
//!
//! Runs in the privileged launcher (real root with `CAP_SYS_ADMIN`), in the host's namespaces or
//! the container's new mount namespace: loop devices are global, so either works.
//!
//! `LO_FLAGS_AUTOCLEAR` makes the kernel detach the device once its last user is gone: the
//! [`LoopDevice`] fd (closed on drop) and the mount made from it. Nothing has to be cleaned up
//! by hand, even when the launcher is killed.
//!
//! Must not: mount anything or choose which image to attach; `LOOP_CONFIGURE` (Linux 5.8) is
//! tried first, then the classic `LOOP_SET_FD` + `LOOP_SET_STATUS64` pair.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Result};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// Another launcher may grab the same free device between `GET_FREE` and `SET_FD`; many ranks
/// starting at once (`SIFR_SHARE=0`) can collide several times in a row, so each retry waits a
/// little longer (0.2 ms more each time, about 0.4 s over all attempts).
const ATTEMPTS: usize = 64;

/// `struct loop_info64` of `<linux/loop.h>` (not in the `libc` crate).
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device; the device is released when this is dropped and nothing (no mount)
/// uses it any more.
#[derive(Debug)]
pub struct LoopDevice {
    fd: OwnedFd,
    /// `/dev/loopN`.
    pub path: PathBuf,
}

impl AsFd for LoopDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn info(offset: u64, size: u64, writable: bool) -> LoopInfo64 {
    LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: offset,
        lo_sizelimit: size,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: if writable {
            LO_FLAGS_AUTOCLEAR
        } else {
            LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR
        },
        lo_file_name: [0; 64],
        lo_crypt_name: [0; 64],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    }
}

/// `ioctl(fd, req, arg)` returning the result or the errno.
///
/// SAFETY (for callers): `arg` must be what `req` expects: an integer, or a pointer to a live
/// struct of the right layout.
unsafe fn ioctl(fd: BorrowedFd<'_>, req: libc::c_ulong, arg: usize) -> std::io::Result<i32> {
    // SAFETY: forwarded to the caller's contract above; `fd` is a valid open descriptor.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Attach `size` bytes at `offset` of `file` (opened read-only) to a free loop device,
/// read-only and auto-clearing. `what` names the image in errors.
pub fn attach_ro(file: BorrowedFd<'_>, offset: u64, size: u64, what: &str) -> Result<LoopDevice> {
    attach(file, offset, size, false, what)
}

/// [`attach_ro`], or with `writable` a read-write device (`file` opened read-write): an ext3
/// overlay image that root's container writes through the kernel.
pub fn attach(
    file: BorrowedFd<'_>,
    offset: u64,
    size: u64,
    writable: bool,
    what: &str,
) -> Result<LoopDevice> {
    let subject = || format!("{what}, bytes {offset}..{}", offset.saturating_add(size));
    let ctl = rustix::fs::open(
        "/dev/loop-control",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::new("open /dev/loop-control for", subject(), e))?;
    let mut last = std::io::Error::from_raw_os_error(libc::EBUSY);
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_micros(200 * attempt as u64));
        }
        // SAFETY: LOOP_CTL_GET_FREE takes no argument.
        let n = unsafe { ioctl(ctl.as_fd(), LOOP_CTL_GET_FREE, 0) }
            .map_err(|e| Error::new("find a free loop device for", subject(), e))?;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let mode = if writable {
            OFlags::RDWR
        } else {
            OFlags::RDONLY
        };
        let dev = match rustix::fs::open(&path, mode | OFlags::CLOEXEC, Mode::empty()) {
            Ok(d) => d,
            Err(e) => return Err(Error::new("open loop device for", subject(), e)),
        };
        match configure(dev.as_fd(), file, offset, size, writable) {
            Ok(()) => return Ok(LoopDevice { fd: dev, path }),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
            Err(e) => return Err(Error::new("attach a loop device to", subject(), e)),
        }
    }
    Err(Error::new("attach a loop device to", subject(), last))
}

fn configure(
    dev: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    size: u64,
    writable: bool,
) -> std::io::Result<()> {
    let cfg = LoopConfig {
        fd: file.as_raw_fd() as u32,
        block_size: 0,
        info: info(offset, size, writable),
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, which `cfg` is (repr(C), same
    // layout as <linux/loop.h>), alive for the duration of the call.
    match unsafe { ioctl(dev, LOOP_CONFIGURE, &cfg as *const LoopConfig as usize) } {
        Ok(_) => return Ok(()),
        // Kernels before 5.8 do not know LOOP_CONFIGURE.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY)) => {}
        Err(e) => return Err(e),
    }
    // SAFETY: LOOP_SET_FD takes the backing file descriptor as an integer argument.
    unsafe { ioctl(dev, LOOP_SET_FD, file.as_raw_fd() as usize) }?;
    let inf = info(offset, size, writable);
    // SAFETY: LOOP_SET_STATUS64 reads a `struct loop_info64`, which `inf` is.
    if let Err(e) = unsafe { ioctl(dev, LOOP_SET_STATUS64, &inf as *const LoopInfo64 as usize) } {
        // SAFETY: LOOP_CLR_FD takes no argument; undo the half-made binding.
        let _ = unsafe { ioctl(dev, LOOP_CLR_FD, 0) };
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_match_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
