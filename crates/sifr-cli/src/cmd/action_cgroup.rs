//! The cgroup resource-limit flags of the actions (`--memory`, `--cpus`, `--pids-limit`,
//! `--apply-cgroups FILE`, ...), Apptainer's, with their environment twins ([`CGROUP_TWINS`]).
//!
//! Values stay text here: `sifr_launch::cgroup` types and checks them, so a value from a
//! variable goes through exactly the flag's parsing and its errors name the flag.

use std::path::PathBuf;

use clap::Args;

use super::action_env::{Slot, Twin};

/// Resource limits for the container's processes, applied through a cgroup v2 (as root, or
/// unprivileged inside a cgroup delegated to the user).
#[derive(Debug, Clone, Default, Args)]
pub struct CgroupFlags {
    /// Apply cgroup limits from a TOML file (OCI LinuxResources layout).
    #[arg(long, value_name = "FILE")]
    pub apply_cgroups: Option<PathBuf>,
    /// Number of CPUs available to the container (fractions allowed, e.g. 0.5).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// CPU shares for the container (cgroup v1 scale, converted to cpu.weight).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpu_shares: Option<String>,
    /// Host CPUs the container may use (e.g. 0-3,6).
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Host memory nodes the container may use.
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Memory limit, e.g. 500M or 2G.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Memory soft limit (memory.low).
    #[arg(long, value_name = "SIZE")]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Disable the OOM killer (cgroup v1 only: no effect on cgroup v2).
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// Limit the number of container processes; -1 for unlimited.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Block IO relative weight in range 10-1000, 0 to disable.
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<String>,
    /// Device-specific block IO relative weight, DEVICE:WEIGHT (repeatable).
    #[arg(long, value_name = "DEVICE:WEIGHT")]
    pub blkio_weight_device: Vec<String>,
}

impl CgroupFlags {
    /// The flags as the launch's request, moved.
    pub fn request(self) -> sifr_launch::cgroup::Request {
        sifr_launch::cgroup::Request {
            apply_cgroups: self.apply_cgroups,
            cpus: self.cpus,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus,
            cpuset_mems: self.cpuset_mems,
            memory: self.memory,
            memory_reservation: self.memory_reservation,
            memory_swap: self.memory_swap,
            oom_kill_disable: self.oom_kill_disable,
            pids_limit: self.pids_limit,
            blkio_weight: self.blkio_weight,
            blkio_weight_device: self.blkio_weight_device,
        }
    }
}

/// The twins of the cgroup flags, Apptainer's `EnvKeys` (`cmd/internal/cli/action_flags.go`)
/// but for `--cpus`, which Apptainer reads from `CPU_SHARES` too (so `APPTAINER_CPU_SHARES=512`
/// also asks for 512 CPUs there); here it is `CPUS` (docs/compat.md, Cgroups).
pub const CGROUP_TWINS: &[Twin] = &[
    Twin {
        flag: "apply-cgroups",
        keys: &["APPLY_CGROUPS"],
        doc: "A TOML file of cgroup limits.",
        slot: |f| Slot::Path(&mut f.cgroup.apply_cgroups),
    },
    Twin {
        flag: "cpus",
        keys: &["CPUS"],
        doc: "Number of CPUs available to the container.",
        slot: |f| Slot::Text(&mut f.cgroup.cpus),
    },
    Twin {
        flag: "cpu-shares",
        keys: &["CPU_SHARES"],
        doc: "CPU shares for the container.",
        slot: |f| Slot::Text(&mut f.cgroup.cpu_shares),
    },
    Twin {
        flag: "cpuset-cpus",
        keys: &["CPUSET_CPUS"],
        doc: "Host CPUs the container may use.",
        slot: |f| Slot::Text(&mut f.cgroup.cpuset_cpus),
    },
    Twin {
        flag: "cpuset-mems",
        keys: &["CPUSET_MEMS"],
        doc: "Host memory nodes the container may use.",
        slot: |f| Slot::Text(&mut f.cgroup.cpuset_mems),
    },
    Twin {
        flag: "memory",
        keys: &["MEMORY"],
        doc: "Memory limit.",
        slot: |f| Slot::Text(&mut f.cgroup.memory),
    },
    Twin {
        flag: "memory-reservation",
        keys: &["MEMORY_RESERVATION"],
        doc: "Memory soft limit.",
        slot: |f| Slot::Text(&mut f.cgroup.memory_reservation),
    },
    Twin {
        flag: "memory-swap",
        keys: &["MEMORY_SWAP"],
        doc: "Memory plus swap limit.",
        slot: |f| Slot::Text(&mut f.cgroup.memory_swap),
    },
    Twin {
        flag: "oom-kill-disable",
        keys: &["OOM_KILL_DISABLE"],
        doc: "Disable the OOM killer (cgroup v1).",
        slot: |f| Slot::Switch(&mut f.cgroup.oom_kill_disable),
    },
    Twin {
        flag: "pids-limit",
        keys: &["PIDS_LIMIT"],
        doc: "Limit on the number of processes.",
        slot: |f| Slot::Text(&mut f.cgroup.pids_limit),
    },
    Twin {
        flag: "blkio-weight",
        keys: &["BLKIO_WEIGHT"],
        doc: "Block IO relative weight.",
        slot: |f| Slot::Text(&mut f.cgroup.blkio_weight),
    },
    Twin {
        flag: "blkio-weight-device",
        keys: &["BLKIO_WEIGHT_DEVICE"],
        doc: "Device-specific block IO weights.",
        slot: |f| Slot::List(&mut f.cgroup.blkio_weight_device),
    },
];

#[cfg(test)]
mod tests {
    use super::super::action::ActionFlags;
    use super::super::action_env::apply;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        flags: ActionFlags,
    }

    fn parsed(args: &[&str], env: &[(&str, &str)]) -> sifr_launch::cgroup::Request {
        let mut f = T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .flags;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        apply(&mut f, &env.as_slice()).unwrap();
        f.cgroup.request()
    }

    #[test]
    fn flags_and_twins_reach_the_request_as_text() {
        let r = parsed(
            &[
                "--memory",
                "64M",
                "--pids-limit",
                "-1",
                "--oom-kill-disable",
            ],
            &[
                ("APPTAINER_MEMORY", "1G"),
                ("APPTAINER_CPUS", "0.5"),
                (
                    "SINGULARITY_BLKIO_WEIGHT_DEVICE",
                    "/dev/sda:100,/dev/sdb:200",
                ),
            ],
        );
        assert_eq!(r.memory.as_deref(), Some("64M"));
        assert_eq!(r.pids_limit.as_deref(), Some("-1"));
        assert!(r.oom_kill_disable);
        assert_eq!(r.cpus.as_deref(), Some("0.5"));
        assert_eq!(r.blkio_weight_device, ["/dev/sda:100", "/dev/sdb:200"]);
    }

    #[test]
    fn a_twin_value_is_checked_as_the_flag_s() {
        let r = parsed(&[], &[("APPTAINER_PIDS_LIMIT", "lots")]);
        assert_eq!(
            r.resolve().unwrap_err().to_string(),
            "invalid `--pids-limit` value `lots`: not an integer"
        );
    }
}
