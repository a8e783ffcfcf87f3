//! The network of a launch, as Apptainer 1.5.3 decides it (`launcher_linux.go`'s
//! `setNamespaces`, the engine's `prepareNetworkSetup`, `joinNetns` and `addResolvConfMount`):
//! `-n/--net`, `--network`, `--network-args`, `--netns-path` and `--dns`.
//!
//! Three steps, each plain data: the CLI fills a [`Request`] (text, with origins);
//! [`Request::options`] types it into [`Options`] (the `--dns` addresses checked);
//! [`decide`], called by the plan's builder with who the caller is, makes the [`Plan`]: the
//! host's network, a new namespace with only a loopback interface, or an existing namespace to
//! join; and [`mounts`] replaces the host's `/etc/resolv.conf` (and `/etc/hosts` under
//! `--contain`) by generated files. [`crate::exec`] applies the plan through `sifr_sys::net`.
//!
//! sifr runs no CNI plugins (it is an unprivileged installation with no setuid starter), so a
//! new namespace only ever has `lo`: `--network none` works for everyone, `--fakeroot` falls
//! back to it as Apptainer's unprivileged installation does, and any other network is refused
//! with Apptainer's reason. Nothing here prints or does I/O; warnings are returned as
//! [`Note`]s for the caller to log once.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::plan::types::{Mount, Source, Tag};
use crate::request::{Origin, Sourced};

/// The network flags as given, unparsed ([`crate::Request::net`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `-n/--net`: a new network namespace.
    pub net: bool,
    /// `--network NAME[,NAME...]`: the CNI networks (Apptainer's default is `bridge`).
    pub network: Option<Sourced<String>>,
    /// `--network-args` entries, for the CNI plugins.
    pub network_args: Vec<Sourced<String>>,
    /// `--netns-path PATH`: join this network namespace.
    pub netns_path: Option<Sourced<PathBuf>>,
    /// `--dns IP[,IP...]`: the container's nameservers.
    pub dns: Option<Sourced<String>>,
}

/// The network flags, typed ([`crate::plan::Options::net`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--net` as given.
    pub net: bool,
    /// `--network` as given, trimmed; `None` when absent or blank.
    pub network: Option<String>,
    /// `--network-args` entries, each `[NETWORK:]KEY=VALUE[;KEY=VALUE...]`, kept for the CNI
    /// plugins that would read them.
    pub network_args: Vec<String>,
    pub netns_path: Option<PathBuf>,
    /// `--dns` addresses, in order.
    pub dns: Vec<IpAddr>,
}

/// Apptainer's network for `--net` without `--network`.
pub const DEFAULT_NETWORK: &str = "bridge";

/// The one network sifr sets up: a namespace with only the loopback interface.
pub const NONE: &str = "none";

/// Who launches, as far as the network rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Root (uid 0) on the host.
    pub root: bool,
    /// `-u/--userns`: a user namespace even for root.
    pub userns: bool,
    /// `-f/--fakeroot`.
    pub fakeroot: bool,
}

/// Which network the container has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Mode {
    /// The host's (no network namespace): Apptainer's default.
    #[default]
    Host,
    /// A new network namespace with `lo` up and nothing else (`--network none`).
    Loopback,
    /// The existing namespace at this path (`--netns-path`).
    Join(PathBuf),
}

/// Something the caller should log once (a plan may be built twice, so [`decide`] logs nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Apptainer's `INFO` lines.
    Info(String),
    /// Apptainer's `WARNING` lines.
    Warn(String),
}

/// The network part of a [`crate::plan::LaunchPlan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    /// The nameservers of the generated `/etc/resolv.conf`; empty: the host's file.
    pub dns: Vec<IpAddr>,
    pub notes: Vec<Note>,
}

/// A network request that cannot be honoured.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NetError {
    #[error("invalid `--dns` value `{value}`: `{entry}` is not an IP address")]
    Dns { value: String, entry: String },
    #[error("`--network {network}` needs root: an unprivileged user can only use `--network none`")]
    Unprivileged { network: String },
    #[error("`--network {network}` is a CNI network, and sifr does not run CNI plugins")]
    Cni { network: String },
    #[error(
        "cannot join the network namespace `{}`: only root may use `--netns-path`",
        path.display()
    )]
    NetnsNotRoot { path: PathBuf },
}

impl NetError {
    /// What to do instead, where something can be done.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            NetError::Dns { .. } => {
                Some("list addresses separated by commas: `--dns 1.1.1.1,8.8.8.8`")
            }
            NetError::Unprivileged { .. } => Some(
                "use `--net --network none` for a private network with loopback only, or \
                 `--fakeroot --net`",
            ),
            NetError::Cni { .. } => Some(
                "use `--net --network none` for a private network with loopback only, or \
                 prepare a namespace (e.g. with `ip netns add`) and join it with `--netns-path`",
            ),
            NetError::NetnsNotRoot { .. } => Some(
                "sifr runs without setuid, so an ordinary user cannot enter a namespace root \
                 made; `--net --network none` gives a private one",
            ),
        }
    }
}

impl Request {
    /// The flags typed; a bad value comes back with where it came from.
    pub fn options(&self) -> Result<Options, (Origin, NetError)> {
        let dns = match &self.dns {
            Some(d) => parse_dns(&d.value).map_err(|e| (d.origin.clone(), e))?,
            None => Vec::new(),
        };
        Ok(Options {
            net: self.net,
            network: self
                .network
                .as_ref()
                .map(|n| n.value.trim().to_string())
                .filter(|n| !n.is_empty()),
            network_args: self.network_args.iter().map(|a| a.value.clone()).collect(),
            netns_path: self.netns_path.as_ref().map(|p| p.value.clone()),
            dns,
        })
    }
}

/// `--dns`'s addresses: spaces are ignored and a blank value means none, as in Apptainer;
/// every comma-separated entry must be an IPv4 or IPv6 address.
pub fn parse_dns(value: &str) -> Result<Vec<IpAddr>, NetError> {
    let compact: String = value.chars().filter(|c| *c != ' ').collect();
    if compact.is_empty() {
        return Ok(Vec::new());
    }
    compact
        .split(',')
        .map(|entry| {
            entry.parse().map_err(|_| NetError::Dns {
                value: value.to_string(),
                entry: entry.to_string(),
            })
        })
        .collect()
}

/// Decide the network, in Apptainer's order: `--network` and `--network-args` imply `--net`,
/// whose default network is [`DEFAULT_NETWORK`]; `--netns-path` wins over `--net` (with a
/// warning); `--fakeroot` falls back to [`NONE`], since the `fakeroot` CNI network needs a
/// setuid installation; [`NONE`] is a namespace with `lo` alone; any other network needs CNI,
/// which Apptainer refuses to unprivileged callers and sifr does not run.
pub fn decide(opts: &Options, who: Caller) -> Result<Plan, NetError> {
    let mut notes = Vec::new();
    let mut new_ns = opts.net;
    if !new_ns && opts.network.is_some() {
        notes.push(Note::Info(
            "setting `--net` (required by `--network`)".into(),
        ));
        new_ns = true;
    }
    if !new_ns && !opts.network_args.is_empty() {
        notes.push(Note::Info(
            "setting `--net` (required by `--network-args`)".into(),
        ));
        new_ns = true;
    }
    let mut network = opts
        .network
        .as_deref()
        .unwrap_or(DEFAULT_NETWORK)
        .to_string();
    if new_ns && who.fakeroot && network != NONE {
        notes.push(Note::Warn(format!(
            "`--fakeroot`: the `fakeroot` CNI network needs a setuid installation, which sifr \
             is not; using `--network none` instead of `{network}` (loopback only)"
        )));
        network = NONE.to_string();
    }
    let mode = if let Some(path) = &opts.netns_path {
        if new_ns {
            notes.push(Note::Warn(format!(
                "`--net` and `--netns-path` both given: joining `{}` rather than creating a \
                 new network namespace",
                path.display()
            )));
        }
        if !who.root {
            return Err(NetError::NetnsNotRoot { path: path.clone() });
        }
        Mode::Join(path.clone())
    } else if !new_ns {
        Mode::Host
    } else if network == NONE {
        Mode::Loopback
    } else if who.userns || !who.root {
        return Err(NetError::Unprivileged { network });
    } else {
        return Err(NetError::Cni { network });
    };
    // Apptainer hands them to CNI plugins only, and neither a loopback-only namespace nor a
    // joined one runs any.
    if mode != Mode::Host && !opts.network_args.is_empty() {
        notes.push(Note::Info(format!(
            "ignoring `--network-args {}`: no CNI network is set up",
            opts.network_args.join(",")
        )));
    }
    Ok(Plan {
        mode,
        dns: opts.dns.clone(),
        notes,
    })
}

/// Apptainer's `/etc/hosts` for a contained container in its own network namespace, where the
/// host's names mean nothing (`files.DefaultHosts`).
pub const DEFAULT_HOSTS: &str = "127.0.0.1   localhost
::1         localhost ip6-localhost ip6-loopback
ff02::1     ip6-allnodes
ff02::2     ip6-allrouters
";

/// The `/etc/resolv.conf` of `--dns`: one `nameserver` line an address, nothing else (Apptainer
/// replaces the host's file rather than adding to it).
pub fn resolv_conf(dns: &[IpAddr]) -> String {
    dns.iter().map(|ip| format!("nameserver {ip}\n")).collect()
}

/// Replace the host-file binds of `/etc/resolv.conf` (with `--dns`) and `/etc/hosts` (with
/// `--contain` in a network namespace) by generated files. A file `--no-mount` left out stays
/// out, as in Apptainer.
pub fn mounts(plan: &Plan, contain: bool, mounts: &mut [Mount]) {
    for m in mounts.iter_mut().filter(|m| m.tag == Tag::HostFile) {
        let text = match m.dst.to_str() {
            Some("/etc/resolv.conf") if !plan.dns.is_empty() => resolv_conf(&plan.dns),
            Some("/etc/hosts") if contain && plan.mode != Mode::Host => DEFAULT_HOSTS.to_string(),
            _ => continue,
        };
        let name = if m.dst.ends_with("hosts") {
            "hosts"
        } else {
            "resolv.conf"
        };
        m.source = Source::Text { name, text };
    }
}

#[cfg(test)]
mod tests;
