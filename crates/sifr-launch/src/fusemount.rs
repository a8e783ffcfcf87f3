//! `--fusemount SPEC` (`APPTAINER_FUSESPEC`): a FUSE filesystem served by a program the user
//! names, mounted in the container, as Apptainer's `addFuseMount` and `startFuseDrivers`.
//!
//! A spec is `SIDE:PROGRAM ARGS... MOUNTPOINT`, split on white space, where `SIDE` is `host`
//! (the program runs with the host's filesystem as its root), `container` (it runs in the
//! container), or `host-daemon`/`container-daemon` (the same, but the program detaches itself
//! and is waited for until it does). The launcher opens `/dev/fuse` before any namespace
//! change, mounts a FUSE filesystem on that descriptor (`fd=N,rootmode=40000,user_id=,group_id=`)
//! in the session and binds it at `MOUNTPOINT` like any other mount, then starts
//! `PROGRAM ARGS... /dev/fd/3 [-f]` with the descriptor as its fd 3: libfuse 3 takes
//! `/dev/fd/N` as an already mounted session and serves it. Without `-daemon` the program gets
//! `-f` (foreground) and is stopped with SIGTERM when the command ends. `--fusemount` implies
//! `--pid`, as in Apptainer.
//!
//! Parsing and the plan's mounts are pure; [`Drivers::start`] runs in the launcher, inside the
//! container's namespaces (after `assemble::mount_all` for the host side, after the final
//! `pivot_root` for the container side).

use std::ffi::OsString;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use crate::assemble::{OLD_ROOT, Prepared};
use crate::error::{ExecError, step};
use crate::plan::types::{LaunchPlan, Mount, Source, Tag};

/// Where the FUSE program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// With the host's filesystem as its root (the host's programs and files).
    Host,
    /// In the container.
    Container,
}

/// One `--fusemount` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseMount {
    pub side: Side,
    /// `host-daemon:`/`container-daemon:`: the program detaches itself (no `-f`), and is waited
    /// for until it has.
    pub daemon: bool,
    /// The program and its arguments, without the mount point.
    pub program: Vec<String>,
    /// Where the filesystem appears in the container.
    pub mountpoint: PathBuf,
}

/// A `--fusemount` value that cannot be used; messages follow Apptainer's `SetFuseMount`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FuseMountError {
    #[error("invalid fusemount `{spec}`: no whitespace separators found in command `{spec}`")]
    NoCommand { spec: String },
    #[error("invalid fusemount `{spec}`: it begins with an unknown prefix `{prefix}`")]
    UnknownPrefix { spec: String, prefix: String },
    #[error("invalid fusemount `{spec}`: the mount point `{path}` is not an absolute path")]
    NotAbsolute { spec: String, path: String },
}

impl FuseMountError {
    pub fn hint(&self) -> String {
        match self {
            FuseMountError::NoCommand { .. } | FuseMountError::UnknownPrefix { .. } => {
                "the form is `host:PROGRAM ARGS MOUNTPOINT` (or `container:`, `host-daemon:`, \
                 `container-daemon:`)"
                    .into()
            }
            FuseMountError::NotAbsolute { .. } => "the mount point is a container path".into(),
        }
    }
}

/// Parse one spec; `Ok(None)` for a blank one (Apptainer skips it).
pub fn parse(spec: &str) -> Result<Option<FuseMount>, FuseMountError> {
    let mut words: Vec<&str> = spec.split_whitespace().collect();
    match words.len() {
        0 => return Ok(None),
        1 => return Err(FuseMountError::NoCommand { spec: spec.into() }),
        _ => {}
    }
    let (prefix, first) = words[0].split_once(':').unwrap_or((words[0], ""));
    let (side, daemon) = match prefix {
        "host" => (Side::Host, false),
        "host-daemon" => (Side::Host, true),
        "container" => (Side::Container, false),
        "container-daemon" => (Side::Container, true),
        other => {
            return Err(FuseMountError::UnknownPrefix {
                spec: spec.into(),
                prefix: other.into(),
            });
        }
    };
    words[0] = first;
    let mountpoint = words.pop().unwrap_or_default();
    if !mountpoint.starts_with('/') {
        return Err(FuseMountError::NotAbsolute {
            spec: spec.into(),
            path: mountpoint.into(),
        });
    }
    let program: Vec<String> = words
        .into_iter()
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect();
    if program.is_empty() {
        return Err(FuseMountError::NoCommand { spec: spec.into() });
    }
    Ok(Some(FuseMount {
        side,
        daemon,
        program,
        mountpoint: crate::bind::clean(Path::new(mountpoint)),
    }))
}

/// What a launch plan holds of the `--fusemount` specs: the specs (indexed by
/// [`Source::Fuse`]) and the host working directory the host-side programs start in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FusePlan {
    pub specs: Vec<FuseMount>,
    pub host_cwd: PathBuf,
}

/// The plan's mounts: the filesystem of `fuse[i]` ([`Source::Fuse`]) at its mount point,
/// `nosuid,nodev` as Apptainer mounts it.
pub fn mounts(fuse: &[FuseMount]) -> Vec<Mount> {
    fuse.iter()
        .enumerate()
        .map(|(i, f)| Mount {
            tag: Tag::Fuse,
            source: Source::Fuse(i),
            dst: f.mountpoint.clone(),
            readonly: false,
            nosuid: true,
            nodev: true,
            required: true,
            create: None,
        })
        .collect()
}

/// The argv a driver runs: the program and its arguments, `/dev/fd/3`, and `-f` unless it is
/// a daemon (Apptainer's order).
pub fn argv(f: &FuseMount) -> Vec<String> {
    let mut v = f.program.clone();
    v.push("/dev/fd/3".into());
    if !f.daemon {
        v.push("-f".into());
    }
    v
}

/// The FUSE programs started for a launch; those in the foreground are sent SIGTERM and reaped
/// when this is dropped (after the command ended), as Apptainer's `stopFuseDrivers`.
///
/// Before that, every `--fusemount` mount point is detached: the programs run in the
/// container's mount namespace (Apptainer's host programs run in the host's), which lives as
/// long as any of them does, so a daemon would otherwise keep serving a mount nobody can reach,
/// forever. With its last mount gone the kernel ends the FUSE connection, and the program's
/// next read of `/dev/fuse` tells it to leave, as the end of Apptainer's container does.
#[derive(Debug, Default)]
pub struct Drivers {
    running: Vec<(String, i32)>,
    /// The mount points to detach, as the launcher sees them once in the container's root.
    mountpoints: Vec<PathBuf>,
}

impl Drivers {
    /// Start the drivers of `side`: with the host's root (`/oldroot`, so call it before the
    /// final `pivot_root`) and the host's working directory `host_cwd` for [`Side::Host`], in
    /// the current root for [`Side::Container`]. A daemon is waited for; a failure to start
    /// (the program missing, or a daemon that exits non-zero) is an error.
    pub fn start(
        &mut self,
        plan: &LaunchPlan,
        prepared: &[Prepared],
        side: Side,
    ) -> Result<(), ExecError> {
        for p in prepared {
            let (Source::Fuse(i), Some(fd)) =
                (&p.mount.source, p.fuse.as_ref().and_then(|f| f.get()))
            else {
                continue;
            };
            let Some(f) = plan.fuse.specs.get(*i).filter(|f| f.side == side) else {
                continue;
            };
            self.mountpoints.push(f.mountpoint.clone());
            let argv = argv(f);
            let path_var =
                std::env::var("PATH").unwrap_or_else(|_| crate::vars::DEFAULT_PATH.into());
            let candidates = crate::cmdpath::command_candidates(&argv[0], &path_var);
            let argv_os: Vec<OsString> = argv.iter().map(OsString::from).collect();
            let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
            let spec = sifr_sys::process::ExecSpec::new(&argv[0], &candidates, &argv_os, &env)?;
            let (root, cwd) = match side {
                Side::Host => (
                    Some(Path::new(OLD_ROOT)),
                    Some(plan.fuse.host_cwd.as_path()),
                ),
                Side::Container => (None, None),
            };
            let mut child = sifr_sys::process::spawn_with_fd3(&spec, fd.as_fd(), root, cwd)
                .map_err(step("start a `--fusemount` program"))?;
            if let Err(source) = child.wait_exec(&spec.name) {
                let _ = child.wait();
                return Err(ExecError::FuseStart {
                    program: argv.join(" "),
                    source,
                });
            }
            if f.daemon {
                let status = child
                    .wait()
                    .map_err(step("wait for a `--fusemount` daemon"))?;
                if status.code() != 0 {
                    return Err(ExecError::FuseDaemon {
                        program: argv.join(" "),
                        status: status.describe(),
                    });
                }
            } else {
                self.running.push((argv.join(" "), child.pid));
            }
        }
        Ok(())
    }
}

impl Drop for Drivers {
    fn drop(&mut self) {
        for m in &self.mountpoints {
            if let Err(e) = sifr_sys::mount::umount_detach(m) {
                tracing::debug!("cannot detach the `--fusemount` at `{}`: {e}", m.display());
            }
        }
        for (program, pid) in self.running.drain(..) {
            match sifr_sys::process::terminate(pid) {
                Ok(st) => tracing::debug!("FUSE program `{program}` ended ({})", st.describe()),
                Err(e) => tracing::warn!("cannot stop FUSE program `{program}`: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str) -> FuseMount {
        parse(spec).unwrap().unwrap()
    }

    #[test]
    fn specs_parse_as_apptainer_splits_them() {
        let f = ok("host:squashfuse -o ro /data/x.sqfs /mnt/x");
        assert_eq!(
            f,
            FuseMount {
                side: Side::Host,
                daemon: false,
                program: vec![
                    "squashfuse".into(),
                    "-o".into(),
                    "ro".into(),
                    "/data/x.sqfs".into()
                ],
                mountpoint: "/mnt/x".into(),
            }
        );
        assert_eq!(
            argv(&f),
            ["squashfuse", "-o", "ro", "/data/x.sqfs", "/dev/fd/3", "-f"]
        );
        let d = ok("  container-daemon:sshfs  10.0.0.1:/  /sshfs/ ");
        assert_eq!((d.side, d.daemon), (Side::Container, true));
        assert_eq!(argv(&d), ["sshfs", "10.0.0.1:/", "/dev/fd/3"]);
        assert_eq!(d.mountpoint, PathBuf::from("/sshfs"));
        assert_eq!(ok("host-daemon:p /m").side, Side::Host);
        assert!(!ok("container:p /m").daemon);
        assert_eq!(parse("   ").unwrap(), None);
    }

    #[test]
    fn bad_specs_name_what_is_wrong() {
        assert_eq!(
            parse("host:squashfuse").unwrap_err(),
            FuseMountError::NoCommand {
                spec: "host:squashfuse".into()
            }
        );
        assert_eq!(
            parse("squashfuse x /m").unwrap_err().to_string(),
            "invalid fusemount `squashfuse x /m`: it begins with an unknown prefix `squashfuse`"
        );
        assert!(matches!(
            parse("host:squashfuse x m"),
            Err(FuseMountError::NotAbsolute { path, .. }) if path == "m"
        ));
        assert!(matches!(
            parse("host: /m"),
            Err(FuseMountError::NoCommand { .. })
        ));
    }

    #[test]
    fn each_spec_is_a_required_nosuid_nodev_mount() {
        let m = mounts(&[ok("host:p /a"), ok("container:q /b")]);
        assert_eq!(m[1].source, Source::Fuse(1));
        assert_eq!(m[1].dst, PathBuf::from("/b"));
        assert!(m[0].nosuid && m[0].nodev && m[0].required && !m[0].readonly);
    }
}
