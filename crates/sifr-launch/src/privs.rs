//! Privileges of the container's command, as Apptainer 1.5.3 decides them: `--keep-privs`,
//! `--no-privs`, `--add-caps`, `--drop-caps`, `--security` (`uid:`, `gid:`, `seccomp:`,
//! `apparmor:`, `selinux:`), `--allow-setuid` and `--boot`.
//!
//! Three steps, one type each: the flags as given ([`PrivsRequest`], text), typed and checked
//! against the caller ([`PrivsRequest::parse`] -> [`Privs`]: capability names, root-only flags,
//! security options this host cannot honour), then resolved against the plan's identity
//! ([`Privs::resolve`] -> [`Resolved`], plain data in the [`crate::LaunchPlan`]): the one
//! capability set the command keeps in all five sets, the ids it switches to, the LSM label.
//! The command's child applies it just before `execve` (`sifr_sys::caps`), so the launcher,
//! which still mounts `/proc` for `--pid` and reaps, keeps its own.
//!
//! Apptainer's rules (`internal/pkg/runtime/engine/apptainer/prepare_linux.go`,
//! `prepareRootCaps` and `prepareUserCaps`; `launcher_linux.go`, `withPrivilege`):
//! - root in the container (real root, `--fakeroot`, root with `--userns`): every capability
//!   (`root default capabilities = full`), none with `--no-privs` or a target uid/gid, every one
//!   again with `--keep-privs`; then `--add-caps`, then `--drop-caps`;
//! - anyone else: only `--add-caps`, less `--drop-caps`. Apptainer checks a user's capabilities
//!   against `capability.json` only in its setuid mode; sifr always runs users in a user
//!   namespace, as Apptainer does without setuid, where the capabilities granted are those of
//!   the namespace and the request is taken as it is;
//! - `--keep-privs`, `--allow-setuid`, `--boot` need a root caller; `--security uid:`/`gid:`
//!   switch ids for a root caller.
//!
//! Must not print: warnings are returned to the caller.

use std::path::{Path, PathBuf};

use sifr_sys::caps::{self, Mask, TargetIds};

use crate::plan::Action;

/// The capabilities by name, Apptainer's table (`pkg/util/capabilities`), numbered as the
/// kernel numbers them. Literal: a name is part of the command line's interface.
pub const CAPABILITIES: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_LINUX_IMMUTABLE", 9),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_BROADCAST", 11),
    ("CAP_NET_ADMIN", 12),
    ("CAP_NET_RAW", 13),
    ("CAP_IPC_LOCK", 14),
    ("CAP_IPC_OWNER", 15),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_PACCT", 20),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_BOOT", 22),
    ("CAP_SYS_NICE", 23),
    ("CAP_SYS_RESOURCE", 24),
    ("CAP_SYS_TIME", 25),
    ("CAP_SYS_TTY_CONFIG", 26),
    ("CAP_MKNOD", 27),
    ("CAP_LEASE", 28),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_SETFCAP", 31),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_SYSLOG", 34),
    ("CAP_WAKE_ALARM", 35),
    ("CAP_BLOCK_SUSPEND", 36),
    ("CAP_AUDIT_READ", 37),
    ("CAP_PERFMON", 38),
    ("CAP_BPF", 39),
    ("CAP_CHECKPOINT_RESTORE", 40),
];

/// Every capability of [`CAPABILITIES`].
pub const ALL: Mask = caps::ALL;

/// The bit of capability `name` (exactly as in [`CAPABILITIES`]).
fn bit(name: &str) -> Option<Mask> {
    CAPABILITIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| 1 << v)
}

/// A comma-separated capability list as Apptainer reads it (`capabilities.Split`): each item
/// trimmed, upper-cased and prefixed with `CAP_` when it lacks it, so `net_raw`, `NET_RAW` and
/// `CAP_NET_RAW` are one capability; `all` (`CAP_ALL`) is every one and makes the list's unknown
/// names moot. Returns the set and the unknown names, in their order, without repeats.
pub fn parse_caps(list: &str) -> (Mask, Vec<String>) {
    let mut set = 0;
    let mut unknown: Vec<String> = Vec::new();
    for item in list.split(',') {
        let mut name = item.trim().to_ascii_uppercase();
        if name.is_empty() {
            continue;
        }
        if !name.starts_with("CAP_") {
            name.insert_str(0, "CAP_");
        }
        if name == "CAP_ALL" {
            return (ALL, Vec::new());
        }
        match bit(&name) {
            Some(b) => set |= b,
            None if !unknown.contains(&name) => unknown.push(name),
            None => {}
        }
    }
    (set, unknown)
}

/// The names of the capabilities of `set`, comma-separated, in number order (for messages).
pub fn cap_names(set: Mask) -> String {
    CAPABILITIES
        .iter()
        .filter(|(_, v)| set & (1 << v) != 0)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// The privilege flags as the command line and their environment twins gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivsRequest {
    /// `--keep-privs`.
    pub keep_privs: bool,
    /// `--no-privs`.
    pub no_privs: bool,
    /// `--add-caps`, a comma-separated list.
    pub add_caps: Option<String>,
    /// `--drop-caps`, a comma-separated list.
    pub drop_caps: Option<String>,
    /// `--security` values, each `NAME:VALUE` (a value may hold several, comma-separated).
    pub security: Vec<String>,
    /// `--allow-setuid`.
    pub allow_setuid: bool,
    /// `--boot` (`instance start|run`).
    pub boot: bool,
}

/// A Linux security module's label for the command, set on its `execve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lsm {
    /// `apparmor:PROFILE`.
    AppArmor(String),
    /// `selinux:LABEL`.
    SeLinux(String),
}

/// The privilege flags, typed and checked against the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Privs {
    pub keep: bool,
    pub no: bool,
    pub add: Mask,
    pub drop: Mask,
    /// `--security uid:`/`gid:`, kept for a root caller only.
    pub ids: Option<TargetIds>,
    pub lsm: Option<Lsm>,
    pub allow_setuid: bool,
    /// `--boot` for an instance: `/sbin/init` as its command, `--contain`, a UTS namespace.
    pub boot: bool,
}

/// What the command runs with, decided for one plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The one set: bounding, permitted, effective, inheritable and ambient.
    pub caps: Mask,
    /// The ids the command switches to (root caller, no user namespace).
    pub ids: Option<TargetIds>,
    /// Image mounted without `nosuid` and no `no_new_privs` (root, no user namespace).
    pub allow_setuid: bool,
    pub lsm: Option<Lsm>,
}

/// A privilege flag that cannot be honoured.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrivsError {
    /// Apptainer: `Could not configure --keep-privs: --keep-privs requires root privileges`.
    #[error("`{flag}` requires root privileges")]
    RootOnly { flag: &'static str },
    #[error("invalid `--security` value `{value}`: the form is `NAME:VALUE`")]
    SecurityForm { value: String },
    #[error("invalid `--security` value `{value}`: `{id}` is not a {what}")]
    SecurityId {
        value: String,
        id: String,
        what: &'static str,
    },
    /// Apptainer built without libseccomp says `seccomp requested but not enabled, seccomp
    /// library is missing or too old`.
    #[error("seccomp requested (`{}`) but not enabled: sifr has no seccomp support", profile.display())]
    Seccomp { profile: PathBuf },
    #[error("{lsm} requested, but is not enabled or supported on this system")]
    LsmMissing { lsm: &'static str },
    #[error("an apparmor profile and a selinux label cannot be used together")]
    LsmBoth,
}

impl PrivsError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            PrivsError::RootOnly { .. } => Some("run as root, or leave the flag out"),
            PrivsError::SecurityForm { .. } | PrivsError::SecurityId { .. } => Some(
                "use `--security uid:N`, `gid:N[:N...]`, `seccomp:FILE`, `apparmor:PROFILE` \
                 or `selinux:LABEL`",
            ),
            PrivsError::Seccomp { .. } => {
                Some("leave out `--security seccomp:...` (and `APPTAINER_SECURITY`)")
            }
            PrivsError::LsmMissing { .. } | PrivsError::LsmBoth => None,
        }
    }
}

/// The `--security` entries, in order, split on commas as Apptainer's list flag splits them.
fn security_entries(values: &[String]) -> impl Iterator<Item = &str> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Whether the host runs the LSM: AppArmor's module parameter, SELinux's filesystem (the checks
/// of Apptainer's `apparmor.Enabled` and `selinux.Enabled`).
fn lsm_enabled(lsm: &Lsm) -> bool {
    match lsm {
        Lsm::AppArmor(_) => std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|d| d.first() == Some(&b'Y')),
        Lsm::SeLinux(_) => Path::new("/sys/fs/selinux/enforce").exists(),
    }
}

impl PrivsRequest {
    /// Type and check the flags for a caller with real uid `caller_uid`; `instance` says whether
    /// the launch starts an instance (`--boot` means nothing otherwise). Warnings (unknown
    /// capabilities, ids a non-root caller cannot switch to) are returned for the caller to
    /// log. Checks come in Apptainer's order: the target ids, `--allow-setuid`,
    /// `--keep-privs`, `--boot`, then the security modules.
    pub fn parse(
        &self,
        caller_uid: u32,
        instance: bool,
    ) -> Result<(Privs, Vec<String>), PrivsError> {
        let mut warnings = Vec::new();
        let mut ids: Option<TargetIds> = None;
        let mut lsm_apparmor = None;
        let mut lsm_selinux = None;
        let mut seccomp = None;
        // The first entry of each name wins, as Apptainer's `security.GetParam` reads them.
        let mut seen_uid = false;
        let mut seen_gid = false;
        for entry in security_entries(&self.security) {
            let Some((name, value)) = entry.split_once(':') else {
                return Err(PrivsError::SecurityForm {
                    value: entry.to_string(),
                });
            };
            let bad_id = |id: &str, what| PrivsError::SecurityId {
                value: entry.to_string(),
                id: id.to_string(),
                what,
            };
            match name {
                "uid" if !seen_uid => {
                    seen_uid = true;
                    let uid = value.parse::<u32>().map_err(|_| bad_id(value, "uid"))?;
                    ids.get_or_insert_with(|| TargetIds {
                        uid: None,
                        gids: Vec::new(),
                    })
                    .uid = Some(uid);
                }
                "gid" if !seen_gid => {
                    seen_gid = true;
                    let gids = value
                        .split(':')
                        .map(|g| g.parse::<u32>().map_err(|_| bad_id(g, "gid")))
                        .collect::<Result<Vec<_>, _>>()?;
                    ids.get_or_insert_with(|| TargetIds {
                        uid: None,
                        gids: Vec::new(),
                    })
                    .gids = gids;
                }
                "seccomp" if seccomp.is_none() => seccomp = Some(PathBuf::from(value)),
                "apparmor" if lsm_apparmor.is_none() => {
                    lsm_apparmor = Some(Lsm::AppArmor(value.to_string()));
                }
                "selinux" if lsm_selinux.is_none() => {
                    lsm_selinux = Some(Lsm::SeLinux(value.to_string()));
                }
                // Apptainer ignores names it does not know, and later repeats of known ones.
                _ => {}
            }
        }
        let root = caller_uid == 0;
        if let Some(t) = &ids
            && !root
        {
            // Apptainer without setuid maps the caller to the target ids in its user
            // namespace; sifr's namespace maps the caller to itself, so they are left alone.
            warnings.push(format!(
                "`--security {}` is ignored: only root can switch the container's ids",
                describe_ids(t)
            ));
            ids = None;
        }
        // Apptainer checks against the uid it will run as, the target one when given.
        let effective_root = ids.as_ref().and_then(|t| t.uid).map_or(root, |u| u == 0);
        let require_root = |on: bool, flag| {
            if on && !effective_root {
                Err(PrivsError::RootOnly { flag })
            } else {
                Ok(())
            }
        };
        require_root(self.allow_setuid, "--allow-setuid")?;
        require_root(self.keep_privs, "--keep-privs")?;
        let boot = self.boot && instance;
        require_root(boot, "--boot")?;
        let lsm = match (lsm_apparmor, lsm_selinux) {
            (Some(_), Some(_)) => return Err(PrivsError::LsmBoth),
            (a, s) => a.or(s),
        };
        if let Some(l) = &lsm
            && !lsm_enabled(l)
        {
            let name = match l {
                Lsm::AppArmor(_) => "apparmor",
                Lsm::SeLinux(_) => "selinux",
            };
            return Err(PrivsError::LsmMissing { lsm: name });
        }
        if let Some(profile) = seccomp {
            return Err(PrivsError::Seccomp { profile });
        }
        let (add, unknown) = parse_caps(self.add_caps.as_deref().unwrap_or(""));
        if !unknown.is_empty() {
            warnings.push(format!(
                "won't add unknown capability: {}",
                unknown.join(",")
            ));
        }
        let (mut drop, unknown) = parse_caps(self.drop_caps.as_deref().unwrap_or(""));
        if !unknown.is_empty() {
            warnings.push(format!(
                "won't drop unknown capability: {}",
                unknown.join(",")
            ));
        }
        // A booted system must not reboot the host nor poke at its hardware (Apptainer replaces
        // the `--drop-caps` list with these two; sifr adds them to it).
        if boot && !self.keep_privs {
            drop |= bit("CAP_SYS_BOOT").unwrap_or(0) | bit("CAP_SYS_RAWIO").unwrap_or(0);
        }
        Ok((
            Privs {
                keep: self.keep_privs,
                no: self.no_privs,
                add,
                drop,
                ids,
                lsm,
                allow_setuid: self.allow_setuid,
                boot,
            },
            warnings,
        ))
    }
}

/// `uid:N,gid:N:M` as the user wrote it, for messages.
fn describe_ids(t: &TargetIds) -> String {
    let mut parts = Vec::new();
    if let Some(u) = t.uid {
        parts.push(format!("uid:{u}"));
    }
    if !t.gids.is_empty() {
        let gids: Vec<String> = t.gids.iter().map(u32::to_string).collect();
        parts.push(format!("gid:{}", gids.join(":")));
    }
    parts.join(",")
}

impl Privs {
    /// The privileges of a command that runs as `uid` in the container, in a user namespace
    /// or not (see the module docs for the rules).
    pub fn resolve(&self, uid: u32, user_ns: bool) -> Resolved {
        // Switching ids needs a root caller outside any user namespace, where the target ids
        // exist; in a namespace (`--userns`, `--fakeroot`) only the mapped ones do.
        let ids = self.ids.clone().filter(|_| !user_ns);
        let caps = if uid == 0 {
            let default = if self.no || (ids.is_some() && !self.keep) {
                0
            } else {
                ALL
            };
            (default | self.add) & !self.drop
        } else {
            self.add & !self.drop
        };
        Resolved {
            caps,
            ids,
            allow_setuid: self.allow_setuid && uid == 0 && !user_ns,
            lsm: self.lsm.clone(),
        }
    }

    /// The command of a launch: `/sbin/init` for a booted instance, `action` otherwise.
    pub fn action(&self, action: Action) -> Action {
        match action {
            Action::Start(_) if self.boot => Action::Exec(vec!["/sbin/init".into()]),
            a => a,
        }
    }
}

impl Resolved {
    /// The privileges for `sifr_sys`'s spawn, computed in the launcher just before the command
    /// starts (what it holds then bounds what the command can get).
    pub fn for_spawn(&self) -> sifr_sys::Result<caps::Privileges> {
        caps::Privileges::new(self.caps, self.ids.clone())
    }

    /// Open the calling thread's `exec` attribute of the LSM, if a label was asked for. Done
    /// before any namespace change, on the host's `/proc`: the container may have none when
    /// the command starts (`--pid` mounts its own in the init, `--no-mount proc`).
    pub fn open_lsm(&self) -> std::io::Result<Option<(std::fs::File, String)>> {
        let Some(lsm) = &self.lsm else {
            return Ok(None);
        };
        let (paths, text): (&[&str], String) = match lsm {
            // The AppArmor-specific file first (Linux 5.1 and later), the shared one else.
            Lsm::AppArmor(p) => (
                &[
                    "/proc/thread-self/attr/apparmor/exec",
                    "/proc/thread-self/attr/exec",
                ],
                format!("exec {p}"),
            ),
            Lsm::SeLinux(l) => (&["/proc/thread-self/attr/exec"], l.clone()),
        };
        let mut last = None;
        for p in paths {
            match std::fs::OpenOptions::new().write(true).open(p) {
                Ok(f) => return Ok(Some((f, text))),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()))
    }
}

/// Write the label opened by [`Resolved::open_lsm`]: the kernel applies it at the next
/// `execve` of this thread or of a child forked after this (the command's).
pub fn arm_lsm(opened: Option<(std::fs::File, String)>) -> std::io::Result<()> {
    use std::io::Write as _;
    match opened {
        Some((mut f, text)) => f.write_all(text.as_bytes()),
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "privs_tests.rs"]
mod tests;
