//! Capabilities and ids of a command about to be exec'd: the one set it keeps (bounding,
//! permitted, effective, inheritable and ambient all become that set, as Apptainer's starter
//! does), and the uid/gids it switches to (`--security uid:N,gid:N`, root only).
//!
//! [`Privileges::new`] is computed in the launcher, before the command's child exists; the
//! child then applies it with [`Privileges::apply`], which makes raw system calls only (no
//! allocation, no libc wrapper that talks to other threads), so it is sound in the
//! `clone(CLONE_VM | CLONE_VFORK)` child of [`crate::process::spawn`]. Reading the caller's
//! sets ([`current`]) and the kernel's last capability ([`last_cap`]) is for the launcher and
//! for tests.
//!
//! Runs across a uid change: after [`Privileges::apply`] with target ids the task is no longer
//! root, and keeps only the capabilities of the set (through `PR_SET_KEEPCAPS`, which `execve`
//! clears again).
//!
//! Must not decide which capabilities a container gets: that is `sifr_launch::privs`.

/// The highest capability number this code knows by name (`CAP_CHECKPOINT_RESTORE`, Linux
/// 5.9). Higher ones a newer kernel may have are never granted: Apptainer's table stops there
/// too.
pub const LAST_KNOWN: u32 = 40;

/// A capability set as a bit mask: bit N is capability N.
pub type Mask = u64;

/// Every capability up to [`LAST_KNOWN`].
pub const ALL: Mask = (1 << (LAST_KNOWN + 1)) - 1;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

/// The kernel's `struct __user_cap_header_struct`.
#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

/// The kernel's `struct __user_cap_data_struct` (one of two words).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The capability sets of the calling thread, as `/proc/self/status` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sets {
    pub effective: Mask,
    pub permitted: Mask,
    pub inheritable: Mask,
    pub bounding: Mask,
    pub ambient: Mask,
}

/// The calling thread's capability sets (`capget` and the `PR_CAPBSET_READ` /
/// `PR_CAP_AMBIENT_IS_SET` probes).
pub fn current() -> crate::Result<Sets> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: `header` and `data` are valid for the kernel to read and write (version 3 takes
    // two data structs), and live across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(crate::Error::new(
            "capget",
            "self",
            std::io::Error::last_os_error(),
        ));
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    let last = last_cap();
    let mut bounding = 0;
    let mut ambient = 0;
    for cap in 0..=last {
        // SAFETY: both prctl calls only read the calling thread's sets; the arguments are plain
        // integers.
        let (b, a) = unsafe {
            (
                libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0),
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong,
                    libc::c_ulong::from(cap),
                    0,
                    0,
                ),
            )
        };
        if b == 1 {
            bounding |= 1 << cap;
        }
        if a == 1 {
            ambient |= 1 << cap;
        }
    }
    Ok(Sets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
        bounding,
        ambient,
    })
}

/// The highest capability the running kernel knows: the last N for which
/// `prctl(PR_CAPBSET_READ, N)` is not `EINVAL`. Probed rather than read from
/// `/proc/sys/kernel/cap_last_cap`, because the launcher asks after `pivot_root`, where the
/// container may have no `/proc`.
pub fn last_cap() -> u32 {
    let mut last = 0;
    for cap in 0..64u32 {
        // SAFETY: reads the calling thread's bounding set; plain integer arguments.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
        if r < 0 {
            break;
        }
        last = cap;
    }
    last
}

/// The ids a command switches to before its `execve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetIds {
    /// The uid (real, effective and saved); `None` keeps the caller's.
    pub uid: Option<u32>,
    /// The gids: the first is the primary group, all of them the supplementary groups (as
    /// Apptainer's starter sets them); empty keeps the caller's.
    pub gids: Vec<u32>,
}

/// What the command's child applies before `execve`, computed in the launcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privileges {
    /// The one set, limited to what the kernel knows and the launcher holds.
    caps: Mask,
    /// The kernel's last capability.
    last: u32,
    ids: Option<TargetIds>,
    gids: Vec<libc::gid_t>,
}

impl Privileges {
    /// The privileges for a command that should keep exactly `wanted` (bounding, permitted,
    /// effective, inheritable and ambient) and, with `ids`, switch to them. Capabilities this
    /// process does not hold, or the kernel does not know, are left out: no process can give
    /// more than it has (Apptainer's starter fails instead; a root on a host whose own bounding
    /// set lacks one capability still starts here, with the rest).
    pub fn new(wanted: Mask, ids: Option<TargetIds>) -> crate::Result<Privileges> {
        let last = last_cap().min(LAST_KNOWN);
        let held = current()?.permitted;
        let known = if last >= 63 {
            u64::MAX
        } else {
            (1u64 << (last + 1)) - 1
        };
        let gids = ids.as_ref().map(|i| i.gids.clone()).unwrap_or_default();
        Ok(Privileges {
            caps: wanted & held & known,
            last,
            ids,
            gids,
        })
    }

    /// The set the command will have.
    pub fn caps(&self) -> Mask {
        self.caps
    }

    /// Apply the privileges to the calling task, in Apptainer's order: drop the bounding set,
    /// keep the permitted set across the uid change, switch gids then uid, set the three sets
    /// with `capset`, raise the ambient set (so that a non-root uid keeps them across
    /// `execve`). Raw system calls only: safe in a `CLONE_VM` child. On failure, the errno of
    /// the step that failed.
    pub(crate) fn apply(&self) -> Result<(), i32> {
        for cap in 0..=self.last {
            if self.caps & (1 << cap) == 0 {
                prctl(libc::PR_CAPBSET_DROP, cap.into(), 0)?;
            }
        }
        if let Some(ids) = &self.ids {
            prctl(libc::PR_SET_KEEPCAPS, 1, 0)?;
            if let Some(&gid) = self.gids.first() {
                raw(libc::SYS_setresgid, [gid.into(), gid.into(), gid.into()])?;
                let list = self.gids.as_ptr() as libc::c_ulong;
                raw(
                    libc::SYS_setgroups,
                    [self.gids.len() as libc::c_ulong, list, 0],
                )?;
            }
            if let Some(uid) = ids.uid {
                raw(libc::SYS_setresuid, [uid.into(), uid.into(), uid.into()])?;
            }
        }
        let lo = (self.caps & 0xffff_ffff) as u32;
        let hi = (self.caps >> 32) as u32;
        let header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let data = [
            Data {
                effective: lo,
                permitted: lo,
                inheritable: lo,
            },
            Data {
                effective: hi,
                permitted: hi,
                inheritable: hi,
            },
        ];
        let header_ptr = &header as *const Header as libc::c_ulong;
        raw(
            libc::SYS_capset,
            [header_ptr, data.as_ptr() as libc::c_ulong, 0],
        )?;
        let ambient = libc::PR_CAP_AMBIENT;
        prctl(ambient, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0)?;
        for cap in 0..=self.last {
            if self.caps & (1 << cap) != 0 {
                prctl(
                    ambient,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap.into(),
                )?;
            }
        }
        Ok(())
    }
}

/// The errno of the last failed call.
fn errno() -> i32 {
    // SAFETY: `__errno_location` returns the calling thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

/// `prctl(op, a, b, 0, 0)` on the calling task; the errno when it fails.
fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> Result<(), i32> {
    // SAFETY: every `op` passed here (bounding drop, keepcaps, ambient clear/raise) takes plain
    // integers and changes only the calling task; glibc's `prctl` is a bare system call.
    let r = unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// A raw three-argument system call on the calling task; the errno when it fails. Used instead
/// of glibc's `setresuid`, `setresgid` and `setgroups`, which signal every thread of the
/// process to change them all: a `CLONE_VM` child must change its own credentials only.
fn raw(nr: libc::c_long, args: [libc::c_ulong; 3]) -> Result<(), i32> {
    // SAFETY: the callers pass `setresuid`/`setresgid` (integers), `setgroups` with a pointer
    // to a live `Vec<gid_t>` of the given length, and `capset` with pointers to a live header
    // and two data structs; none of them allocates or takes a lock.
    let r = unsafe { libc::syscall(nr, args[0], args[1], args[2]) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_knows_the_classic_capabilities() {
        // CAP_AUDIT_READ (37) is in every kernel since 3.16.
        assert!(last_cap() >= 37, "{}", last_cap());
    }

    #[test]
    fn the_sets_read_back_match_proc_self_status() {
        let sets = current().unwrap();
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
        };
        assert_eq!(sets.effective, field("CapEff:"));
        assert_eq!(sets.permitted, field("CapPrm:"));
        assert_eq!(sets.bounding, field("CapBnd:"));
        assert_eq!(sets.ambient, field("CapAmb:"));
    }

    #[test]
    fn privileges_never_ask_for_more_than_the_process_holds() {
        let held = current().unwrap().permitted;
        let p = Privileges::new(ALL, None).unwrap();
        assert_eq!(p.caps() & !held, 0);
        assert_eq!(p.caps(), held & ALL);
        assert_eq!(Privileges::new(0, None).unwrap().caps(), 0);
    }

    /// `CAP_SETPCAP`, which dropping from the bounding set needs.
    const SETPCAP: u32 = 8;
    const NET_RAW: u32 = 13;

    /// `grep ^Cap /proc/self/status` started with `p`: its five sets.
    fn spawned_sets(p: Privileges) -> Sets {
        spawned(p).0
    }

    /// The five sets of a command started with `p`, and its `Uid:`, `Gid:` and `Groups:` lines.
    fn spawned(p: Privileges) -> (Sets, [String; 3]) {
        use std::io::Read as _;
        let argv: Vec<std::ffi::OsString> = [
            "/bin/sh",
            "-c",
            "grep -E '^(Cap|Uid|Gid|Groups)' /proc/self/status",
        ]
        .iter()
        .map(Into::into)
        .collect();
        let spec = crate::process::ExecSpec::new("sh", &["/bin/sh".into()], &argv, &[])
            .unwrap()
            .with_privileges(p);
        let (rd, wr) = crate::process::pipe().unwrap();
        let opts = crate::process::SpawnOptions {
            stdout: Some(std::os::fd::AsFd::as_fd(&wr)),
            ..Default::default()
        };
        let mut child = crate::process::spawn(&spec, &opts).unwrap();
        drop(wr);
        let mut out = String::new();
        std::fs::File::from(rd).read_to_string(&mut out).unwrap();
        child.wait_exec("sh").unwrap();
        assert_eq!(child.wait().unwrap(), crate::process::ExitStatus::Exited(0));
        let field = |name: &str| {
            let line = out.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
        };
        let text = |name: &str| {
            let line = out.lines().find(|l| l.starts_with(name)).unwrap();
            line[name.len()..]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        let sets = Sets {
            effective: field("CapEff:"),
            permitted: field("CapPrm:"),
            inheritable: field("CapInh:"),
            bounding: field("CapBnd:"),
            ambient: field("CapAmb:"),
        };
        (sets, [text("Uid:"), text("Gid:"), text("Groups:")])
    }

    #[test]
    fn a_command_keeps_exactly_the_set_in_all_five() {
        let held = current().unwrap();
        if held.effective & (1 << SETPCAP) == 0 || held.permitted & (1 << NET_RAW) == 0 {
            sifr_testkit::skip("needs CAP_SETPCAP and CAP_NET_RAW (run as root)");
            return;
        }
        let one = 1 << NET_RAW;
        let s = spawned_sets(Privileges::new(one, None).unwrap());
        assert_eq!(
            s,
            Sets {
                effective: one,
                permitted: one,
                inheritable: one,
                bounding: one,
                ambient: one,
            }
        );
        let none = spawned_sets(Privileges::new(0, None).unwrap());
        assert_eq!(none, Sets::default());
        // The launcher keeps its own.
        assert_eq!(current().unwrap().bounding, held.bounding);
    }

    #[test]
    fn target_ids_switch_the_command_and_keep_its_set_through_ambient() {
        let held = current().unwrap();
        if rustix::process::getuid().as_raw() != 0 || held.permitted & (1 << NET_RAW) == 0 {
            sifr_testkit::skip("needs root");
            return;
        }
        let one = 1 << NET_RAW;
        let ids = TargetIds {
            uid: Some(99),
            gids: vec![98, 97],
        };
        let (sets, ids) = spawned(Privileges::new(one, Some(ids)).unwrap());
        assert_eq!(
            (sets.effective, sets.bounding, sets.ambient),
            (one, one, one)
        );
        assert_eq!(&ids[..2], ["99 99 99 99", "98 98 98 98"]);
        // The kernel lists the supplementary groups sorted.
        assert_eq!(ids[2], "97 98");
        // Without a capability, a switched command is an ordinary user.
        let ids = TargetIds {
            uid: Some(99),
            gids: Vec::new(),
        };
        let (sets, ids) = spawned(Privileges::new(0, Some(ids)).unwrap());
        assert_eq!(sets, Sets::default());
        assert_eq!(ids[0], "99 99 99 99");
    }
}
