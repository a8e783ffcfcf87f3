//! cgroup v2 files through directory fds: open a cgroup directory, create and remove a child,
//! read and write its interface files (`memory.max`, `cgroup.procs`, `cgroup.kill`, ...), and
//! test access the way the kernel will check a migration.
//!
//! Everything is relative to a directory fd opened on the host before the launch changes
//! namespaces, so the files stay reachable after `pivot_root`, when `/sys/fs/cgroup` no longer
//! resolves. Moving the container's process in is done by the spawned child itself, which
//! writes `0` to the `cgroup.procs` fd handed to [`crate::process::spawn`]
//! ([`crate::process::SpawnOptions::cgroup`]).
//!
//! Must not: decide which cgroup or which limits (that is `sifr_launch::cgroup`).

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Access, AtFlags, Mode, OFlags};

use crate::error::{Error, Result, err};

/// The root of the unified (v2) hierarchy.
pub const ROOT: &str = "/sys/fs/cgroup";

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Open the cgroup directory at `path` (an absolute host path under [`ROOT`]).
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(path, DIR_FLAGS, Mode::empty()).map_err(err("open cgroup", path.display()))
}

/// Open the child cgroup `name` of `parent`.
pub fn open_child(parent: BorrowedFd<'_>, name: &str) -> Result<OwnedFd> {
    rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()).map_err(err("open cgroup", name))
}

/// Create the child cgroup `name` in `parent` (`mkdir`; the kernel fills in its files).
/// `EEXIST` is an error: a launch never shares its cgroup.
pub fn make_child(parent: BorrowedFd<'_>, name: &str) -> Result<()> {
    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755))
        .map_err(err("create cgroup", name))
}

/// Create the child cgroup `name` in `parent` unless it exists (a shared parent such as
/// `/sys/fs/cgroup/sifr`).
pub fn ensure_child(parent: BorrowedFd<'_>, name: &str) -> Result<()> {
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::new("create cgroup", name, e)),
    }
}

/// Remove the (empty) child cgroup `name` of `parent` (`rmdir`); a missing one is no error.
pub fn remove_child(parent: BorrowedFd<'_>, name: &str) -> Result<()> {
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::new("remove cgroup", name, e)),
    }
}

/// Write `value` to the interface file `file` of the cgroup `dir`, in one `write` (the kernel
/// parses each write as a whole).
pub fn write_file(dir: BorrowedFd<'_>, file: &str, value: &str) -> Result<()> {
    let fd = rustix::fs::openat(
        dir,
        file,
        OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(err("open cgroup file", file))?;
    let n = rustix::io::write(&fd, value.as_bytes()).map_err(err("write cgroup file", file))?;
    if n != value.len() {
        return Err(Error::new(
            "write cgroup file",
            file,
            std::io::Error::from(std::io::ErrorKind::WriteZero),
        ));
    }
    Ok(())
}

/// The contents of the interface file `file` of the cgroup `dir`.
pub fn read_file(dir: BorrowedFd<'_>, file: &str) -> Result<String> {
    let fd = rustix::fs::openat(
        dir,
        file,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(err("open cgroup file", file))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(&fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::new("read cgroup file", file, e)),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Whether `file` of the cgroup `dir` exists (a controller's files appear only when it is
/// enabled for the cgroup).
pub fn has_file(dir: BorrowedFd<'_>, file: &str) -> bool {
    rustix::fs::accessat(dir, file, Access::EXISTS, AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// Whether this process may write `file` of the cgroup `dir` (`.` for the directory itself),
/// by the effective ids, as the kernel checks a write to `cgroup.procs` or a `mkdir`.
pub fn writable(dir: BorrowedFd<'_>, file: &str) -> bool {
    rustix::fs::accessat(dir, file, Access::WRITE_OK, AtFlags::EACCESS).is_ok()
}

/// Open `cgroup.procs` of the cgroup `dir` for writing, for a spawned child to move itself in.
pub fn open_procs(dir: BorrowedFd<'_>) -> Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        "cgroup.procs",
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("open cgroup file", "cgroup.procs"))
}

#[cfg(test)]
mod tests {
    //! The fd-relative file operations, on a plain directory standing in for a cgroup.
    use std::os::fd::AsFd as _;

    use super::*;

    #[test]
    fn children_and_files_are_made_read_and_removed_through_fds() {
        let tmp = std::env::temp_dir().join(format!("sifr-sys-cgroup-{}", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        let parent = open_dir(&tmp).unwrap();
        make_child(parent.as_fd(), "sifr-1").unwrap();
        assert!(
            make_child(parent.as_fd(), "sifr-1").is_err(),
            "never shared"
        );
        ensure_child(parent.as_fd(), "sifr-1").unwrap();
        let dir = open_child(parent.as_fd(), "sifr-1").unwrap();
        std::fs::write(tmp.join("sifr-1/memory.max"), "max\n").unwrap();
        assert!(has_file(dir.as_fd(), "memory.max"));
        assert!(!has_file(dir.as_fd(), "pids.max"));
        write_file(dir.as_fd(), "memory.max", "67108864").unwrap();
        assert_eq!(read_file(dir.as_fd(), "memory.max").unwrap(), "67108864");
        let e = write_file(dir.as_fd(), "pids.max", "1").unwrap_err();
        assert_eq!(e.to_string(), "open cgroup file `pids.max` failed");
        assert!(writable(dir.as_fd(), "memory.max"));
        std::fs::remove_file(tmp.join("sifr-1/memory.max")).unwrap();
        remove_child(parent.as_fd(), "sifr-1").unwrap();
        remove_child(parent.as_fd(), "sifr-1").unwrap();
        assert!(!tmp.join("sifr-1").exists());
        std::fs::remove_dir(&tmp).unwrap();
    }
}
