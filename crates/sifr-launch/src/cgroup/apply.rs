//! Where a launch's cgroup goes, its creation with the limits, and its removal ([`Active`]).
//!
//! cgroup v2 only. As root, the cgroup is `/sys/fs/cgroup/sifr/PID` (Apptainer's cgroupfs
//! manager uses `/apptainer/PID` likewise). Unprivileged, sifr needs no systemd D-Bus call: it
//! uses the cgroup tree the user was delegated, found from the launching process's own cgroup
//! (`/proc/self/cgroup`): the container's cgroup `sifr-PID` is made next to it, in its parent,
//! which must be writable by the user (as `systemd-run --user --scope -p Delegate=yes` or a
//! desktop session's `user@UID.service` tree give). The kernel lets a process move between two
//! cgroups only when it may write `cgroup.procs` of their common ancestor, which is that parent.
//!
//! Runs in the launching process, before any namespace change (paths under `/sys/fs/cgroup`
//! must resolve on the host); the directory fds kept in [`Active`] let the launcher remove the
//! cgroup after `pivot_root`. The command's process moves itself in (`sifr_sys::process::
//! SpawnOptions::cgroup`), so sifr's own process and the FUSE server stay out of its limits.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sifr_sys::cgroup as cg;

use super::{Limits, Write, blkio_to_io_weight};

/// Why the container's cgroup could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// Apptainer's wording (`cannot use cgroups - REASON`) for a host that cannot give one.
    #[error("cannot use cgroups - {reason}")]
    Host { reason: String, unprivileged: bool },
    #[error(
        "cannot use cgroups - the `{controller}` controller is not available in `{}`",
        parent.display()
    )]
    Controller { controller: String, parent: PathBuf },
    #[error("cannot set up the container's cgroup in `{}`", parent.display())]
    Sys {
        parent: PathBuf,
        #[source]
        source: sifr_sys::Error,
    },
    #[error("while setting cgroup limits: cannot write `{value}` to `{file}`")]
    Write {
        file: String,
        value: String,
        #[source]
        source: sifr_sys::Error,
    },
}

impl Unavailable {
    pub fn hint(&self) -> Option<String> {
        match self {
            Unavailable::Host {
                unprivileged: true, ..
            } => Some(
                "run sifr in a cgroup delegated to you, e.g. `systemd-run --user --scope -p Delegate=yes sifr ...`"
                    .into(),
            ),
            Unavailable::Controller { controller, .. } => Some(format!(
                "the controller must be delegated, e.g. `systemd-run --user --scope -p Delegate=\"{controller}\" ...`"
            )),
            Unavailable::Write { source, .. } if source.errno() == Some(libc_einval()) => {
                Some("the kernel rejected the value; check its range and format".into())
            }
            _ => None,
        }
    }
}

const fn libc_einval() -> i32 {
    22
}

/// A launch's cgroup, made and holding its limits; removed (with anything left running in it)
/// when dropped. Dropping works from inside the container's namespaces.
#[derive(Debug)]
pub struct Active {
    parent: OwnedFd,
    name: String,
    dir: OwnedFd,
    procs: OwnedFd,
    /// The cgroup's host path, for messages.
    pub path: PathBuf,
}

impl Active {
    /// Make the cgroup `limits` asks for, for the launching process `pid`. `Ok(None)` when
    /// there is nothing to do, or when the launch is an instance asking for no limit and the
    /// host has no cgroup to give (Apptainer then only says stats will not be available).
    pub fn enter(limits: Option<&Limits>) -> Result<Option<Active>, Unavailable> {
        let Some(limits) = limits else {
            return Ok(None);
        };
        match Active::create(limits, std::process::id()) {
            Ok(a) => Ok(Some(a)),
            Err(e) if limits.instance && limits.writes.is_empty() => {
                tracing::info!("Instance stats will not be available - {e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `cgroup.procs` of the cgroup, for the command's process to move itself in.
    pub fn procs(&self) -> BorrowedFd<'_> {
        self.procs.as_fd()
    }

    fn create(limits: &Limits, pid: u32) -> Result<Active, Unavailable> {
        let euid = rustix_euid();
        if !unified() {
            let reason = if euid == 0 {
                "sifr supports cgroups v2 (unified mode) only, and this host mounts cgroups v1"
            } else {
                "system is not configured for cgroups v2 in unified mode"
            };
            // No hint: no delegation helps on a cgroup v1 host.
            return Err(Unavailable::Host {
                reason: reason.into(),
                unprivileged: false,
            });
        }
        if euid == 0 && !full_uid_map() {
            return Err(Unavailable::Host {
                reason: "rootless cgroups is not usable in fakeroot mode".into(),
                unprivileged: true,
            });
        }
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let place = place(pid, euid == 0, &own).ok_or_else(|| Unavailable::Host {
            reason: "could not find cgroups v2 unified path".into(),
            unprivileged: euid != 0,
        })?;
        let sys = |parent: &Path| {
            let parent = parent.to_path_buf();
            move |source| Unavailable::Sys { parent, source }
        };
        let controllers = limits.controllers();
        let parent = if euid == 0 {
            let root = cg::open_dir(Path::new(cg::ROOT)).map_err(sys(Path::new(cg::ROOT)))?;
            enable(root.as_fd(), Path::new(cg::ROOT), &controllers)?;
            cg::ensure_child(root.as_fd(), ROOT_PARENT).map_err(sys(&place.parent))?;
            cg::open_child(root.as_fd(), ROOT_PARENT).map_err(sys(&place.parent))?
        } else {
            let parent = cg::open_dir(&place.parent).map_err(sys(&place.parent))?;
            let delegated = ["cgroup.procs", "cgroup.subtree_control", "."]
                .iter()
                .all(|f| cg::writable(parent.as_fd(), f));
            if !delegated {
                return Err(Unavailable::Host {
                    reason: format!(
                        "no cgroup is delegated to this user: `{}`, the parent of this process's cgroup, is not writable",
                        place.parent.display()
                    ),
                    unprivileged: true,
                });
            }
            parent
        };
        enable(parent.as_fd(), &place.parent, &controllers)?;
        warn_unapplied(limits, euid == 0);
        sweep(parent.as_fd(), &place);
        cg::make_child(parent.as_fd(), &place.name).map_err(sys(&place.parent))?;
        let path = place.parent.join(&place.name);
        let dir = match cg::open_child(parent.as_fd(), &place.name) {
            Ok(d) => d,
            Err(e) => {
                let _ = cg::remove_child(parent.as_fd(), &place.name);
                return Err(sys(&place.parent)(e));
            }
        };
        let written = write_limits(dir.as_fd(), limits)
            .and_then(|()| cg::open_procs(dir.as_fd()).map_err(sys(&path)));
        match written {
            Ok(procs) => {
                tracing::debug!("cgroup `{}` made with its limits", path.display());
                Ok(Active {
                    parent,
                    name: place.name,
                    dir,
                    procs,
                    path,
                })
            }
            Err(e) => {
                drop(dir);
                let _ = cg::remove_child(parent.as_fd(), &place.name);
                Err(e)
            }
        }
    }
}

impl Drop for Active {
    /// Kill what the command left in its cgroup (`cgroup.kill`, else SIGKILL to each member),
    /// wait for it to empty, and remove it.
    fn drop(&mut self) {
        let populated = |dir: BorrowedFd<'_>| {
            cg::read_file(dir, "cgroup.events")
                .map(|t| t.lines().any(|l| l.trim() == "populated 1"))
                .unwrap_or(false)
        };
        if populated(self.dir.as_fd())
            && cg::write_file(self.dir.as_fd(), "cgroup.kill", "1").is_err()
        {
            for pid in cg::read_file(self.dir.as_fd(), "cgroup.procs")
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
            {
                let _ = sifr_sys::process::send_signal(pid, sifr_sys::signal::KILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match cg::remove_child(self.parent.as_fd(), &self.name) {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    tracing::warn!(
                        "cannot remove the cgroup `{}`: {}",
                        self.path.display(),
                        e.source
                    );
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// The shared parent of root's container cgroups, under [`cg::ROOT`]; left in place (others may
/// be using it), as Apptainer leaves `/apptainer`.
const ROOT_PARENT: &str = "sifr";

/// Where a launch's cgroup goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub parent: PathBuf,
    pub name: String,
}

/// The cgroup of launcher `pid`: `/sys/fs/cgroup/sifr/PID` as root, else `sifr-PID` next to
/// the launcher's own cgroup (from `own`, the text of its `/proc/PID/cgroup`).
pub fn place(pid: u32, root: bool, own: &str) -> Option<Place> {
    if root {
        return Some(Place {
            parent: Path::new(cg::ROOT).join(ROOT_PARENT),
            name: pid.to_string(),
        });
    }
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    // The root cgroup has no parent: it is its own (and never delegated).
    let rel = Path::new(rel);
    let rel = rel.parent().unwrap_or(rel);
    let parent = Path::new(cg::ROOT).join(rel.strip_prefix("/").unwrap_or(rel));
    Some(Place {
        parent,
        name: format!("sifr-{pid}"),
    })
}

/// Remove the empty cgroups that launchers killed before they could clean up left next to
/// `place` (named like it, for a pid that no longer runs, or for this very pid, which a
/// dead launcher had before), so a reused pid does not find its name taken. A cgroup with
/// processes in it cannot be removed (`EBUSY`) and is left alone.
fn sweep(parent: BorrowedFd<'_>, place: &Place) {
    let prefix = place.name.trim_end_matches(|c: char| c.is_ascii_digit());
    let Ok(entries) = std::fs::read_dir(&place.parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(prefix) else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if name == place.name || !Path::new("/proc").join(pid).exists() {
            let _ = cg::remove_child(parent, &name);
        }
    }
}

/// The cgroup of the running instance whose launcher is `pid`, if it has one: where [`place`]
/// puts it, as root or not.
pub fn instance_cgroup(pid: i32) -> Option<PathBuf> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    [true, false]
        .iter()
        .filter_map(|root| place(pid as u32, *root, &own))
        .map(|p| p.parent.join(p.name))
        .find(|p| p.join("cgroup.procs").exists())
}

fn unified() -> bool {
    Path::new(cg::ROOT).join("cgroup.controllers").exists()
}

fn rustix_euid() -> u32 {
    sifr_sys::process::ids().0
}

/// Whether this process's user namespace maps every uid to itself (the initial namespace).
fn full_uid_map() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

/// Enable `controllers` for the children of the cgroup `dir` (`+memory` in its
/// `cgroup.subtree_control`), each only if missing; one the cgroup does not have is an error.
fn enable(dir: BorrowedFd<'_>, path: &Path, controllers: &[&str]) -> Result<(), Unavailable> {
    let enabled = cg::read_file(dir, "cgroup.subtree_control").unwrap_or_default();
    let available = cg::read_file(dir, "cgroup.controllers").unwrap_or_default();
    for c in controllers {
        if enabled.split_whitespace().any(|e| e == *c) {
            continue;
        }
        let missing = || Unavailable::Controller {
            controller: c.to_string(),
            parent: path.to_path_buf(),
        };
        if !available.split_whitespace().any(|a| a == *c) {
            return Err(missing());
        }
        cg::write_file(dir, "cgroup.subtree_control", &format!("+{c}")).map_err(|_| missing())?;
    }
    Ok(())
}

/// The warnings of what cannot be applied (Apptainer's for device rules when rootless).
fn warn_unapplied(limits: &Limits, root: bool) {
    if limits.device_rules {
        if root {
            tracing::warn!("Device limits are not supported by sifr and will not be applied");
        } else {
            tracing::warn!("Device limits will not be applied with rootless cgroups");
        }
    }
    for what in &limits.ignored {
        tracing::warn!("cgroups: `{what}` has no cgroup v2 equivalent and is ignored");
    }
}

/// Write the limits to the new cgroup `dir`, in order.
fn write_limits(dir: BorrowedFd<'_>, limits: &Limits) -> Result<(), Unavailable> {
    for w in &limits.writes {
        let (file, value) = match w {
            Write::File { file, value } => (file.clone(), value.clone()),
            Write::IoWeight { device, weight } => {
                let bfq = cg::has_file(dir, "io.bfq.weight");
                match (device, bfq) {
                    (None, true) => ("io.bfq.weight".into(), weight.to_string()),
                    (None, false) => ("io.weight".into(), blkio_to_io_weight(*weight).to_string()),
                    (Some((maj, min)), true) => {
                        ("io.bfq.weight".into(), format!("{maj}:{min} {weight}"))
                    }
                    (Some((maj, min)), false) => {
                        tracing::debug!(
                            "per-device weight {maj}:{min} skipped: only the BFQ scheduler has them"
                        );
                        continue;
                    }
                }
            }
        };
        tracing::debug!("cgroup: `{value}` into `{file}`");
        cg::write_file(dir, &file, &value).map_err(|source| Unavailable::Write {
            file: file.clone(),
            value: value.clone(),
            source,
        })?;
    }
    Ok(())
}
