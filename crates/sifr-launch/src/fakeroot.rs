//! Fakeroot: make the calling process root inside a new user namespace, the way an
//! unprivileged `sifr build` runs and `sifr exec --fakeroot` starts a container (Apptainer's
//! "fakeroot" mode, section 3.4 of the reference notes).
//!
//! Two mappings, tried in this order:
//! 1. **Subordinate ids**: root inside maps to the caller, and ids 1..=N to the caller's range
//!    in `/etc/subuid`/`/etc/subgid` (at least 65536 ids, as Apptainer requires), written by the
//!    setuid `newuidmap`/`newgidmap`. Package managers can then `chown` to system users.
//! 2. **Root only** (`unshare -r`): one id each. Enough for `scratch`, `localimage` and
//!    copying files; `apt`/`dpkg` fail as soon as they `chown` to another user, and the build
//!    says why (see [`Mode::explain_failure`]).
//!
//! Unlike Apptainer, no LD_PRELOAD `fakeroot` command is injected in the second mode: it breaks
//! whenever the host glibc is newer than the image's, the most reported fakeroot failure.
//!
//! Runs across the user-namespace change, in two halves: [`prepare`] before `unshare` (it forks
//! the helpers, so the process must be single-threaded, which is checked) and
//! [`Pending::apply`] right after it. [`enter`] does both for a build, which stays in the
//! namespaces afterwards with its own private mount namespace; the runtime calls the halves
//! around its own `unshare`, which also creates the mount, IPC and UTS namespaces it needs.

use std::path::{Path, PathBuf};

/// The smallest subordinate range Apptainer accepts for fakeroot.
pub const MIN_SUBIDS: u32 = 65536;

/// How root was faked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// 0 → the caller, 1..=count → the subordinate ranges starting at `uid_start`/`gid_start`.
    Subids {
        uid_start: u32,
        gid_start: u32,
        count: u32,
    },
    /// Only root, mapped to the caller.
    RootOnly { reason: String },
}

impl Mode {
    /// One line for the user.
    pub fn describe(&self) -> String {
        match self {
            Mode::Subids {
                uid_start, count, ..
            } => format!(
                "fakeroot: root and {count} subordinate ids (from {uid_start}) in a user namespace"
            ),
            Mode::RootOnly { reason } => {
                format!("fakeroot: only root is mapped in the user namespace ({reason})")
            }
        }
    }

    /// A hint for a failed `%post` under this mode: with only root mapped, package managers
    /// that change owners cannot work.
    pub fn explain_failure(&self) -> Option<String> {
        match self {
            Mode::Subids { .. } => None,
            Mode::RootOnly { .. } => Some(
                "this build runs with only root mapped in its user namespace, so `apt`, `dpkg` or \
                 `chown` to any other user fail; ask an administrator for a subordinate id range \
                 (`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER`) and \
                 install `uidmap` (newuidmap/newgidmap), or build as root"
                    .into(),
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FakerootError {
    #[error("cannot create a user namespace for fakeroot")]
    Unshare(#[source] sifr_sys::Error),
    #[error("cannot map root to uid {uid} in the user namespace")]
    Maps {
        uid: u32,
        #[source]
        source: sifr_sys::Error,
    },
    #[error("cannot map the subordinate ids of uid {uid}")]
    Helpers {
        uid: u32,
        #[source]
        source: sifr_sys::ns::HelperMapError,
    },
    #[error("cannot make the build's mount namespace private")]
    Private(#[source] sifr_sys::Error),
}

impl FakerootError {
    pub fn hint(&self) -> Option<String> {
        match self {
            FakerootError::Unshare(_) => Some(
                "unprivileged user namespaces may be disabled (see `/proc/sys/user/max_user_namespaces` \
                 and `kernel.unprivileged_userns_clone`); build as root otherwise"
                    .into(),
            ),
            FakerootError::Helpers { .. } => Some(
                "check the user's lines in `/etc/subuid` and `/etc/subgid` and that `newuidmap` and \
                 `newgidmap` are setuid root"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// One `name_or_uid:start:count` line's range for `user`/`uid`, from the text of
/// `/etc/subuid` or `/etc/subgid`; the first range of at least [`MIN_SUBIDS`] ids.
pub fn subid_range(text: &str, user: Option<&str>, uid: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        let mine = Some(who) == user || who.parse::<u32>().ok() == Some(uid);
        let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
        (mine && count >= MIN_SUBIDS).then_some((start, count))
    })
}

/// Find an executable named `name` in the directories of `path`.
fn find_in_path(name: &str, path: &str) -> Option<PathBuf> {
    path.split(':')
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Root prepared for a user namespace that does not exist yet: the id-map helpers already
/// forked (they must run outside the namespace, on this process), or the one-id maps to write.
/// Made by [`prepare`] before `unshare(CLONE_NEWUSER)`, finished by [`Pending::apply`] right
/// after it. `sifr build` ([`enter`]) and `exec --fakeroot` ([`crate::exec`]) share it.
#[derive(Debug)]
pub struct Pending {
    uid: u32,
    gid: u32,
    mode: Mode,
    helpers: Option<sifr_sys::ns::HelperMaps>,
}

/// Decide the mapping for the caller (`user` is their login name, looked up on the host before
/// calling; `path` the host `PATH` for finding the helpers) and, for subordinate ids, fork the
/// helpers. Must be called while single-threaded, before the user namespace is created.
///
/// `subids` false (`--ignore-subuid`) skips the subordinate ids: root alone is mapped.
pub fn prepare(user: Option<&str>, path: &str, subids: bool) -> Result<Pending, FakerootError> {
    let (uid, gid) = sifr_sys::process::ids();
    match decide(user, path, subids, uid) {
        Decision::Subids {
            uid_start,
            ucount,
            gid_start,
            gcount,
            newuidmap,
            newgidmap,
        } => {
            let count = ucount.min(gcount);
            let maps = |own: u32, start: u32| {
                [
                    sifr_sys::ns::IdRange {
                        inside: 0,
                        outside: own,
                        count: 1,
                    },
                    sifr_sys::ns::IdRange {
                        inside: 1,
                        outside: start,
                        count,
                    },
                ]
            };
            let pending = sifr_sys::ns::HelperMaps::prepare(
                &newuidmap,
                &newgidmap,
                &maps(uid, uid_start),
                &maps(gid, gid_start),
            )
            .map_err(|source| FakerootError::Helpers { uid, source })?;
            Ok(Pending {
                uid,
                gid,
                mode: Mode::Subids {
                    uid_start,
                    gid_start,
                    count,
                },
                helpers: Some(pending),
            })
        }
        Decision::RootOnly(reason) => Ok(Pending {
            uid,
            gid,
            mode: Mode::RootOnly { reason },
            helpers: None,
        }),
    }
}

/// What [`prepare`] chooses for `uid`, before anything is forked.
enum Decision {
    Subids {
        uid_start: u32,
        ucount: u32,
        gid_start: u32,
        gcount: u32,
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
    /// Why only root can be mapped.
    RootOnly(String),
}

fn decide(user: Option<&str>, path: &str, subids: bool, uid: u32) -> Decision {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let ranges = if subids {
        (
            subid_range(&read("/etc/subuid"), user, uid),
            subid_range(&read("/etc/subgid"), user, uid),
        )
    } else {
        (None, None)
    };
    let helpers = (
        find_in_path("newuidmap", path),
        find_in_path("newgidmap", path),
    );
    match (ranges, helpers) {
        (
            (Some((uid_start, ucount)), Some((gid_start, gcount))),
            (Some(newuidmap), Some(newgidmap)),
        ) => Decision::Subids {
            uid_start,
            ucount,
            gid_start,
            gcount,
            newuidmap,
            newgidmap,
        },
        ((u, g), (h1, h2)) => {
            // Both ranges and both helpers present is the first arm, so one of these holds.
            Decision::RootOnly(if !subids {
                "`--ignore-subuid` given".to_string()
            } else if u.is_none() || g.is_none() {
                format!("no range of {MIN_SUBIDS} ids for uid {uid} in /etc/subuid and /etc/subgid")
            } else {
                debug_assert!(h1.is_none() || h2.is_none());
                "newuidmap/newgidmap not installed".to_string()
            })
        }
    }
}

/// The mapping an unprivileged build by the caller would get, decided as [`prepare`] decides
/// it but without forking anything: for checks made before a build starts
/// (`sifr deffile check`). `None` for root, who needs no fakeroot.
pub fn predict(user: Option<&str>, path: &str) -> Option<Mode> {
    let (uid, _) = sifr_sys::process::ids();
    if uid == 0 {
        return None;
    }
    Some(match decide(user, path, true, uid) {
        Decision::Subids {
            uid_start,
            ucount,
            gid_start,
            gcount,
            ..
        } => Mode::Subids {
            uid_start,
            gid_start,
            count: ucount.min(gcount),
        },
        Decision::RootOnly(reason) => Mode::RootOnly { reason },
    })
}

impl Pending {
    /// The mapping that [`Pending::apply`] will write.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Write the maps of the user namespace the caller has just created (release the helpers,
    /// or write the root-only maps). Dropping a `Pending` instead reaps the helpers unused.
    pub fn apply(self) -> Result<Mode, FakerootError> {
        let uid = self.uid;
        match self.helpers {
            Some(h) => h
                .apply()
                .map_err(|source| FakerootError::Helpers { uid, source })?,
            None => sifr_sys::ns::write_root_maps(uid, self.gid)
                .map_err(|source| FakerootError::Maps { uid, source })?,
        }
        Ok(self.mode)
    }
}

/// Become root in a new user + mount namespace. `user` is the caller's login name (looked up
/// on the host before calling), `path` the host `PATH` for finding the helpers.
pub fn enter(user: Option<&str>, path: &str) -> Result<Mode, FakerootError> {
    let ns = sifr_sys::ns::Namespaces {
        user: true,
        mount: true,
        ..Default::default()
    };
    let pending = prepare(user, path, true)?;
    sifr_sys::ns::unshare(ns).map_err(FakerootError::Unshare)?;
    let mode = pending.apply()?;
    sifr_sys::mount::make_rprivate(Path::new("/")).map_err(FakerootError::Private)?;
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_ranges_match_by_name_or_uid_and_need_65536_ids() {
        let text = "alice:100000:65536\n1002:300000:65536\nbob:200000:1000\n";
        assert_eq!(
            subid_range(text, Some("alice"), 1001),
            Some((100000, 65536))
        );
        assert_eq!(
            subid_range(text, Some("carol"), 1002),
            Some((300000, 65536))
        );
        assert_eq!(
            subid_range(text, Some("bob"), 1003),
            None,
            "too small a range"
        );
        assert_eq!(subid_range(text, None, 1004), None);
        assert_eq!(subid_range("garbage\n::\n", Some("alice"), 1), None);
    }

    #[test]
    fn root_only_mode_explains_package_manager_failures() {
        let m = Mode::RootOnly { reason: "x".into() };
        assert!(
            m.explain_failure().unwrap().contains("/etc/subuid")
                || m.explain_failure().unwrap().contains("subordinate")
        );
        let s = Mode::Subids {
            uid_start: 1,
            gid_start: 1,
            count: 65536,
        };
        assert!(s.explain_failure().is_none());
    }
}
