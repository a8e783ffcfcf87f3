//! The network flags of the actions (`-n/--net`, `--network`, `--network-args`,
//! `--netns-path`, `--dns`), their environment twins ([`NET_TWINS`]), and their move into
//! `sifr_launch::net::Request` with where each value came from. What they mean is decided in
//! `sifr_launch::net`; nothing is parsed here.

use std::path::PathBuf;

use clap::Args;
use sifr_launch::Sourced;

use super::action_env::{Applied, Slot, Twin};

/// Apptainer's network flags, flattened into `ActionFlags`.
#[derive(Debug, Clone, Default, Args)]
pub struct NetFlags {
    /// Run in a new network namespace; sifr sets up `--network none` (loopback only), other
    /// networks need CNI plugins, which sifr does not run.
    #[arg(short = 'n', long)]
    pub net: bool,
    /// The network of --net, comma-separated (implies --net; only `none` is set up by sifr).
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// Arguments for the CNI plugins, e.g. `portmap=8080:80/tcp` (implies --net; unused
    /// without a CNI network).
    #[arg(long = "network-args", value_name = "ARGS", value_delimiter = ',')]
    pub network_args: Vec<String>,
    /// Join the network namespace at PATH (root only).
    #[arg(long = "netns-path", value_name = "PATH")]
    pub netns_path: Option<PathBuf>,
    /// Nameservers for the container's /etc/resolv.conf, comma-separated IP addresses (the
    /// file then lists only these).
    #[arg(long, value_name = "IPS")]
    pub dns: Option<String>,
}

impl NetFlags {
    /// The flags as a launch request, each value with its origin (`twins` says which came from
    /// a variable).
    pub fn request(&self, twins: &Applied) -> sifr_launch::net::Request {
        let sourced = |flag: &str, index: usize, value| Sourced {
            value,
            origin: twins.source(flag, index),
        };
        sifr_launch::net::Request {
            net: self.net,
            network: self.network.clone().map(|v| sourced("network", 0, v)),
            network_args: self
                .network_args
                .iter()
                .enumerate()
                .map(|(i, v)| sourced("network-args", i, v.clone()))
                .collect(),
            netns_path: self.netns_path.clone().map(|value| Sourced {
                value,
                origin: twins.source("netns-path", 0),
            }),
            dns: self.dns.clone().map(|v| sourced("dns", 0, v)),
        }
    }
}

/// The network flags' variables, Apptainer's `EnvKeys` for them.
pub const NET_TWINS: &[Twin] = &[
    Twin {
        flag: "net",
        keys: &["NET", "UNSHARE_NET"],
        doc: "A new network namespace.",
        slot: |f| Slot::Switch(&mut f.net.net),
    },
    Twin {
        flag: "network",
        keys: &["NETWORK"],
        doc: "The network of --net (sifr sets up `none`).",
        slot: |f| Slot::Text(&mut f.net.network),
    },
    Twin {
        flag: "network-args",
        keys: &["NETWORK_ARGS"],
        doc: "Arguments for CNI plugins.",
        slot: |f| Slot::List(&mut f.net.network_args),
    },
    Twin {
        flag: "netns-path",
        keys: &["NETNS_PATH"],
        doc: "A network namespace to join (root only).",
        slot: |f| Slot::Path(&mut f.net.netns_path),
    },
    Twin {
        flag: "dns",
        keys: &["DNS"],
        doc: "Nameservers of the container's /etc/resolv.conf.",
        slot: |f| Slot::Text(&mut f.net.dns),
    },
];

#[cfg(test)]
mod tests {
    use super::super::action::ActionFlags;
    use super::super::action_env::apply;
    use clap::Parser as _;

    fn flags(args: &[&str], env: &[(&str, &str)]) -> (ActionFlags, super::Applied) {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            flags: ActionFlags,
        }
        let mut f = T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .flags;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let a = apply(&mut f, &env.as_slice()).unwrap();
        (f, a)
    }

    #[test]
    fn flags_parse_as_apptainers() {
        let (f, _) = flags(
            &[
                "-n",
                "--network",
                "none",
                "--network-args",
                "portmap=8080:80/tcp,IP=10.0.0.2",
                "--network-args",
                "x=1",
                "--dns",
                "1.1.1.1,8.8.8.8",
                "--netns-path",
                "/run/netns/a",
            ],
            &[],
        );
        assert!(f.net.net);
        assert_eq!(f.net.network.as_deref(), Some("none"));
        assert_eq!(
            f.net.network_args,
            ["portmap=8080:80/tcp", "IP=10.0.0.2", "x=1"]
        );
        assert_eq!(f.net.dns.as_deref(), Some("1.1.1.1,8.8.8.8"));
        assert_eq!(
            f.net.netns_path.as_deref(),
            Some(std::path::Path::new("/run/netns/a"))
        );
    }

    /// A bad `--dns` renders with its hint, and names the variable it came from.
    #[test]
    fn a_bad_dns_value_renders_with_its_origin_and_hint() {
        let (f, _) = flags(&[], &[]);
        let env = vec![(
            "APPTAINER_DNS".to_string(),
            "1.1.1.1,dns.google".to_string(),
        )];
        let action = sifr_launch::Action::Exec(vec!["true".into()]);
        let s = crate::settings::Settings::default();
        let req = super::super::action::request(&f, &s, std::path::Path::new("/img"), action, &env)
            .unwrap();
        let e = req.options(&env).unwrap_err();
        let text = crate::report::render(
            &super::super::action::request_error(e),
            crate::report::Colour::Plain,
        );
        assert_eq!(
            text,
            "FATAL:   in environment variable `APPTAINER_DNS`\n         caused by: invalid `--dns` value \
             `1.1.1.1,dns.google`: `dns.google` is not an IP address\n         \
             hint: list addresses separated by commas: `--dns 1.1.1.1,8.8.8.8`"
        );
    }

    #[test]
    fn twins_fill_in_and_name_their_origin() {
        let (f, a) = flags(
            &[],
            &[
                ("APPTAINER_UNSHARE_NET", "1"),
                ("SINGULARITY_NETWORK", "none"),
                ("APPTAINER_DNS", "9.9.9.9"),
            ],
        );
        let r = f.net.request(&a);
        assert!(r.net);
        assert_eq!(r.network.unwrap().value, "none");
        let dns = r.dns.unwrap();
        assert_eq!(dns.value, "9.9.9.9");
        assert_eq!(
            dns.origin,
            sifr_launch::Origin::EnvVar("APPTAINER_DNS".into())
        );
    }
}
