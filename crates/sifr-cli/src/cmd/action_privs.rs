//! The privilege and security flags of the actions (`exec`, `run`, `shell`, `test`,
//! `instance start`): [`PrivsFlags`], flattened into `ActionFlags`, and their environment
//! twins [`PRIVS_TWINS`] (names from Apptainer's `EnvKeys`). Values are moved as text into
//! `sifr_launch::privs::PrivsRequest`; the capability names, the root-only checks and
//! `--security` are read there, not here.

use clap::Args;

use super::action::ActionFlags;
use super::action_env::{Slot, Twin};

/// `--keep-privs`, `--no-privs`, `--add-caps`, `--drop-caps`, `--security`, `--allow-setuid`,
/// `--boot`.
#[derive(Debug, Clone, Default, Args)]
pub struct PrivsFlags {
    /// Let root keep every capability in the container (root only).
    #[arg(long)]
    pub keep_privs: bool,
    /// Drop every capability of root in the container.
    #[arg(long)]
    pub no_privs: bool,
    /// Capabilities to add, comma-separated (`CAP_NET_RAW`, `net_raw`, `all`).
    #[arg(long, value_name = "LIST")]
    pub add_caps: Option<String>,
    /// Capabilities to drop, comma-separated (`CAP_NET_RAW`, `net_raw`, `all`).
    #[arg(long, value_name = "LIST")]
    pub drop_caps: Option<String>,
    /// Security options, comma-separated or repeated: `uid:N`, `gid:N[:N...]` (root only),
    /// `apparmor:PROFILE`, `selinux:LABEL`, `seccomp:FILE` (not supported).
    #[arg(long, value_name = "LIST")]
    pub security: Vec<String>,
    /// Allow setuid programs of the image to run as their owner (root only).
    #[arg(long)]
    pub allow_setuid: bool,
    /// Run /sbin/init as the instance's command, contained, with its own host name
    /// (`instance start` only; root only).
    #[arg(long)]
    pub boot: bool,
}

impl PrivsFlags {
    /// The flags (already completed from their twins) as the launch's request.
    pub fn request(&self) -> sifr_launch::privs::PrivsRequest {
        sifr_launch::privs::PrivsRequest {
            keep_privs: self.keep_privs,
            no_privs: self.no_privs,
            add_caps: self.add_caps.clone(),
            drop_caps: self.drop_caps.clone(),
            security: self.security.clone(),
            allow_setuid: self.allow_setuid,
            boot: self.boot,
        }
    }
}

/// The twins of [`PrivsFlags`], from the `EnvKeys` of Apptainer's
/// `cmd/internal/cli/action_flags.go`.
pub const PRIVS_TWINS: &[Twin] = &[
    Twin {
        flag: "keep-privs",
        keys: &["KEEP_PRIVS"],
        doc: "Let root keep every capability (root only).",
        slot: |f: &mut ActionFlags| Slot::Switch(&mut f.privs.keep_privs),
    },
    Twin {
        flag: "no-privs",
        keys: &["NO_PRIVS"],
        doc: "Drop every capability of root.",
        slot: |f: &mut ActionFlags| Slot::Switch(&mut f.privs.no_privs),
    },
    Twin {
        flag: "add-caps",
        keys: &["ADD_CAPS"],
        doc: "Capabilities to add.",
        slot: |f: &mut ActionFlags| Slot::Text(&mut f.privs.add_caps),
    },
    Twin {
        flag: "drop-caps",
        keys: &["DROP_CAPS"],
        doc: "Capabilities to drop.",
        slot: |f: &mut ActionFlags| Slot::Text(&mut f.privs.drop_caps),
    },
    Twin {
        flag: "security",
        keys: &["SECURITY"],
        doc: "Security options (uid, gid, apparmor, selinux, seccomp).",
        slot: |f: &mut ActionFlags| Slot::List(&mut f.privs.security),
    },
    Twin {
        flag: "allow-setuid",
        keys: &["ALLOW_SETUID"],
        doc: "Allow setuid programs of the image (root only).",
        slot: |f: &mut ActionFlags| Slot::Switch(&mut f.privs.allow_setuid),
    },
    Twin {
        flag: "boot",
        keys: &["BOOT"],
        doc: "Boot the instance with /sbin/init (root only).",
        slot: |f: &mut ActionFlags| Slot::Switch(&mut f.privs.boot),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        flags: ActionFlags,
    }

    fn completed(args: &[&str], env: &[(&str, &str)]) -> sifr_launch::privs::PrivsRequest {
        let flags = T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .flags;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (f, _) = super::super::action_env::completed(&flags, &env).unwrap();
        f.privs.request()
    }

    #[test]
    fn the_flags_reach_the_request_as_given() {
        let r = completed(
            &[
                "--keep-privs",
                "--no-privs",
                "--add-caps",
                "net_raw,CAP_CHOWN",
                "--drop-caps",
                "all",
                "--security",
                "uid:1,gid:2",
                "--security",
                "seccomp:/p",
                "--allow-setuid",
                "--boot",
            ],
            &[],
        );
        assert_eq!(
            r,
            sifr_launch::privs::PrivsRequest {
                keep_privs: true,
                no_privs: true,
                add_caps: Some("net_raw,CAP_CHOWN".into()),
                drop_caps: Some("all".into()),
                security: vec!["uid:1,gid:2".into(), "seccomp:/p".into()],
                allow_setuid: true,
                boot: true,
            }
        );
    }

    #[test]
    fn the_twins_fill_in_what_the_command_line_left_out() {
        let r = completed(
            &["--add-caps", "chown"],
            &[
                ("APPTAINER_ADD_CAPS", "net_raw"),
                ("SINGULARITY_DROP_CAPS", "sys_admin"),
                ("APPTAINER_NO_PRIVS", "1"),
                ("APPTAINER_SECURITY", "uid:5, gid:6"),
                ("SIFR_ALLOW_SETUID", "true"),
                ("APPTAINER_BOOT", "yes"),
                ("APPTAINER_KEEP_PRIVS", "0"),
            ],
        );
        assert_eq!(r.add_caps.as_deref(), Some("chown"));
        assert_eq!(r.drop_caps.as_deref(), Some("sys_admin"));
        assert!(r.no_privs && r.allow_setuid && r.boot && !r.keep_privs);
        assert_eq!(r.security, ["uid:5", "gid:6"]);
    }
}
