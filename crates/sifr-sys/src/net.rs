//! Network namespaces: joining an existing one by path (`--netns-path`, `setns(2)`) and
//! bringing up the loopback interface of a new one (`--net`, the `SIOCSIFFLAGS` ioctl).
//!
//! Runs across a namespace change. [`join_netns`] needs `CAP_SYS_ADMIN` over the namespace's
//! owning user namespace (root on the host for one made by `ip netns add`), so it is called
//! before any user namespace is entered. [`loopback_up`] runs after `unshare(CLONE_NEWNET)`,
//! where the caller holds `CAP_NET_ADMIN` over the new namespace (a new user namespace grants
//! it even before its id maps are written).
//!
//! Must not: decide which network a container gets (that is `sifr-launch`'s plan), or touch an
//! interface other than `lo`: a new namespace has nothing else, and the host's are never ours.

use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result, err};

/// Join the network namespace at `path` (a `/run/netns/NAME` bind, or `/proc/PID/ns/net`).
/// The kernel refuses a file that is not a network namespace (`EINVAL`).
pub fn join_netns(path: &Path) -> Result<()> {
    use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(err("open", path.display()))?;
    move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(err("join the network namespace", path.display()))
}

/// The name of the loopback interface.
const LOOPBACK: &[u8] = b"lo";

/// Set `IFF_UP` on `lo` in the caller's network namespace, keeping its other flags (Apptainer's
/// starter does the same in every new network namespace, so `127.0.0.1` works with
/// `--network none`).
pub fn loopback_up() -> Result<()> {
    let sock = loopback_socket()?;
    let mut req = loopback_request();
    flags_ioctl(&sock, libc::SIOCGIFFLAGS, &mut req)
        .map_err(|e| Error::new("read the flags of", "lo", e))?;
    // SAFETY: SIOCGIFFLAGS just filled the union's `ifru_flags` member.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    flags_ioctl(&sock, libc::SIOCSIFFLAGS, &mut req).map_err(|e| Error::new("bring up", "lo", e))
}

/// Whether `lo` is up in the caller's network namespace (`IFF_UP`).
pub fn loopback_is_up() -> Result<bool> {
    let sock = loopback_socket()?;
    let mut req = loopback_request();
    flags_ioctl(&sock, libc::SIOCGIFFLAGS, &mut req)
        .map_err(|e| Error::new("read the flags of", "lo", e))?;
    // SAFETY: SIOCGIFFLAGS just filled the union's `ifru_flags` member.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok(flags & libc::IFF_UP as libc::c_short != 0)
}

/// A socket for the interface ioctls (any family works; `AF_INET` is always built in).
fn loopback_socket() -> Result<OwnedFd> {
    rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .map_err(err("open a socket to configure", "lo"))
}

/// An `ifreq` naming `lo`, its other fields zero.
fn loopback_request() -> libc::ifreq {
    // SAFETY: `ifreq` is a plain C struct for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(LOOPBACK) {
        *dst = *src as libc::c_char;
    }
    req
}

/// `ioctl(sock, request, req)` for `SIOCGIFFLAGS`/`SIOCSIFFLAGS`.
fn flags_ioctl(
    sock: &OwnedFd,
    request: libc::c_ulong,
    req: &mut libc::ifreq,
) -> std::io::Result<()> {
    // SAFETY: `sock` is an open socket for the whole call; `req` is a valid, exclusively
    // borrowed `ifreq` whose name is NUL-terminated (the array is longer than "lo" and was
    // zeroed), which is all SIOCGIFFLAGS and SIOCSIFFLAGS read, and what SIOCGIFFLAGS writes.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request as _, req as *mut libc::ifreq) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joining_a_file_that_is_not_a_network_namespace_names_it() {
        let e = join_netns(Path::new("/nonexistent/netns")).unwrap_err();
        assert_eq!((e.op, e.subject.as_str()), ("open", "/nonexistent/netns"));
        // An ordinary file opens, and the kernel refuses it as a namespace.
        let e = join_netns(Path::new("/proc/self/status")).unwrap_err();
        assert_eq!(e.op, "join the network namespace");
    }

    /// A new network namespace has `lo` down until [`loopback_up`]. Namespaces belong to a
    /// task, so only this test's thread moves; needs root (no user namespace from a threaded
    /// process).
    #[test]
    fn loopback_comes_up_in_a_new_network_namespace() {
        if !rustix::process::geteuid().is_root() {
            sifr_testkit::skip("creating a network namespace without a user namespace needs root");
            return;
        }
        crate::ns::unshare(crate::ns::Namespaces {
            net: true,
            ..Default::default()
        })
        .unwrap();
        assert!(!loopback_is_up().unwrap());
        loopback_up().unwrap();
        assert!(loopback_is_up().unwrap());
    }
}
