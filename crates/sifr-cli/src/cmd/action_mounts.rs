//! The action flags for extra mounts, `-S/--scratch` and `--fusemount`, and their environment
//! twins ([`MOUNTS_TWINS`]: `APPTAINER_SCRATCH`/`APPTAINER_SCRATCHDIR`, `APPTAINER_FUSESPEC`).
//! The values go into `sifr_launch::Request::extra_mounts` as given; `sifr_launch` types them.

use clap::Args;
use sifr_launch::Sourced;
use sifr_launch::mounts::MountsRequest;

use super::action_env::{Applied, Slot, Twin};

/// `-S/--scratch` and `--fusemount`.
#[derive(Debug, Clone, Default, Args)]
pub struct MountFlags {
    /// An empty writable directory at DIR in the container, in the session's tmpfs, or in
    /// WORKDIR/scratch/DIR with -W (comma-separated, repeatable).
    #[arg(short = 'S', long = "scratch", value_name = "DIR")]
    pub scratch: Vec<String>,
    /// A FUSE filesystem: `host:PROGRAM ARGS MOUNTPOINT` or `container:...` (`host-daemon:`,
    /// `container-daemon:` for programs that detach); the program gets /dev/fd/3 as its mount
    /// point. Implies --pid (repeatable).
    #[arg(long = "fusemount", value_name = "SPEC")]
    pub fusemount: Vec<String>,
}

/// The twins of [`MountFlags`]; names are Apptainer's (`action_flags.go`).
pub const MOUNTS_TWINS: &[Twin] = &[
    Twin {
        flag: "scratch",
        keys: &["SCRATCH", "SCRATCHDIR"],
        doc: "Empty writable directories in the container.",
        slot: |f| Slot::List(&mut f.mounts.scratch),
    },
    Twin {
        flag: "fusemount",
        keys: &["FUSESPEC"],
        doc: "FUSE filesystems: `host:PROGRAM ARGS MOUNTPOINT`, comma-separated.",
        slot: |f| Slot::List(&mut f.mounts.fusemount),
    },
];

impl MountFlags {
    /// The flags as the launch request's field, each value with its origin.
    pub fn request(self, twins: &Applied) -> MountsRequest {
        let sourced = |flag: &str, values: Vec<String>| -> Vec<Sourced<String>> {
            values
                .into_iter()
                .enumerate()
                .map(|(i, value)| Sourced {
                    value,
                    origin: twins.source(flag, i),
                })
                .collect()
        };
        MountsRequest {
            scratch: sourced("scratch", self.scratch),
            fusemount: sourced("fusemount", self.fusemount),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::super::action::ActionFlags;
    use super::*;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        flags: ActionFlags,
    }

    fn parse(args: &[&str], env: &[(&str, &str)]) -> MountsRequest {
        let flags = T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .flags;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (f, twins) = super::super::action_env::completed(&flags, &env).unwrap();
        f.mounts.request(&twins)
    }

    #[test]
    fn flags_and_twins_reach_the_request() {
        let r = parse(&["-S", "/a,/b", "--scratch", "/c"], &[]);
        let v: Vec<_> = r.scratch.iter().map(|s| s.value.as_str()).collect();
        assert_eq!(v, ["/a,/b", "/c"]);
        let r = parse(&["--fusemount", "host:squashfuse /x.sqfs /m"], &[]);
        assert_eq!(r.fusemount[0].value, "host:squashfuse /x.sqfs /m");
        let r = parse(&[], &[("APPTAINER_SCRATCHDIR", "/s1,/s2")]);
        let v: Vec<_> = r.scratch.iter().map(|s| s.value.as_str()).collect();
        assert_eq!(v, ["/s1", "/s2"]);
        assert_eq!(
            r.scratch[0].origin,
            sifr_launch::Origin::EnvVar("APPTAINER_SCRATCHDIR".into())
        );
        let r = parse(&[], &[("SINGULARITY_FUSESPEC", "container:p /m")]);
        assert_eq!(r.fusemount[0].value, "container:p /m");
    }
}
