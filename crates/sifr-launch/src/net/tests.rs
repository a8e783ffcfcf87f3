//! The network decisions, case by case, against Apptainer 1.5.3's (`e2e/actions` `actionNetwork`
//! and `actionNetnsPath`, `launcher_linux.go`, `container_linux.go`).

use std::path::PathBuf;

use super::*;

const ROOT: Caller = Caller {
    root: true,
    userns: false,
    fakeroot: false,
};
const USER: Caller = Caller {
    root: false,
    userns: false,
    fakeroot: false,
};
const FAKEROOT: Caller = Caller {
    root: false,
    userns: false,
    fakeroot: true,
};

fn opts(net: bool, network: Option<&str>) -> Options {
    Options {
        net,
        network: network.map(str::to_string),
        ..Options::default()
    }
}

#[test]
fn no_flag_keeps_the_hosts_network() {
    let p = decide(&Options::default(), USER).unwrap();
    assert_eq!(p, Plan::default());
}

/// `actionNetwork/NoneNetwork`: `--net --network none` works for a user (exit 0).
#[test]
fn network_none_is_a_loopback_namespace_for_everyone() {
    for who in [ROOT, USER, FAKEROOT] {
        let p = decide(&opts(true, Some("none")), who).unwrap();
        assert_eq!(p.mode, Mode::Loopback, "{who:?}");
        assert!(p.notes.is_empty(), "{who:?}: {:?}", p.notes);
    }
}

/// `launcher_linux.go`: `--network` alone sets `--net`, with an info line.
#[test]
fn network_implies_net() {
    let p = decide(&opts(false, Some("none")), USER).unwrap();
    assert_eq!(p.mode, Mode::Loopback);
    assert_eq!(
        p.notes,
        [Note::Info(
            "setting `--net` (required by `--network`)".into()
        )]
    );
    let o = Options {
        network: Some("none".into()),
        network_args: vec!["portmap=8080:80/tcp".into()],
        ..Options::default()
    };
    let p = decide(&o, USER).unwrap();
    assert_eq!(p.mode, Mode::Loopback);
    assert!(
        matches!(&p.notes[..], [_, Note::Info(i)] if i.contains("ignoring `--network-args portmap=8080:80/tcp`")),
        "{:?}",
        p.notes
    );
}

/// `--network-args` alone sets `--net` too, whose default network (`bridge`) needs CNI.
#[test]
fn network_args_imply_net_with_the_default_network() {
    let o = Options {
        network_args: vec!["IP=10.0.0.2".into()],
        ..Options::default()
    };
    assert_eq!(
        decide(&o, USER).unwrap_err(),
        NetError::Unprivileged {
            network: "bridge".into()
        }
    );
}

/// `actionNetwork/UserBridgeNetwork` (exit 255), and `--net` alone as a user: the default
/// `bridge` network needs root in an unprivileged installation.
#[test]
fn a_cni_network_is_refused_to_a_user_with_apptainers_reason() {
    for o in [opts(true, None), opts(true, Some("bridge"))] {
        let e = decide(&o, USER).unwrap_err();
        assert_eq!(
            e,
            NetError::Unprivileged {
                network: "bridge".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "`--network bridge` needs root: an unprivileged user can only use `--network none`"
        );
    }
    let userns_root = Caller {
        userns: true,
        ..ROOT
    };
    assert!(matches!(
        decide(&opts(true, Some("ptp")), userns_root),
        Err(NetError::Unprivileged { .. })
    ));
}

/// `actionNetwork/BridgeNetwork` passes in Apptainer with its CNI plugins; sifr has none and
/// says so (`UnknownNetwork` exits 255 in both).
#[test]
fn a_cni_network_as_root_is_refused_because_sifr_runs_no_cni() {
    for n in ["bridge", "ptp", "unknown", "bridge,ptp", "none,bridge"] {
        assert_eq!(
            decide(&opts(true, Some(n)), ROOT).unwrap_err(),
            NetError::Cni { network: n.into() }
        );
    }
}

/// `actionNetwork/FakerootNetwork` (exit 0): an unprivileged installation falls back to `none`
/// with a warning, whatever network was asked for, and for root too.
#[test]
fn fakeroot_falls_back_to_none_with_a_warning() {
    for (net, network) in [
        (true, None),
        (true, Some("fakeroot")),
        (false, Some("bridge")),
    ] {
        for who in [
            FAKEROOT,
            Caller {
                fakeroot: true,
                ..ROOT
            },
        ] {
            let p = decide(&opts(net, network), who).unwrap();
            assert_eq!(p.mode, Mode::Loopback);
            assert!(
                p.notes
                    .iter()
                    .any(|n| matches!(n, Note::Warn(w) if w.contains("using `--network none`"))),
                "{:?}",
                p.notes
            );
        }
    }
}

/// `actionNetnsPath`: root joins (exit 0), a user, a userns user and a fakeroot user are
/// refused (exit 255).
#[test]
fn only_root_may_join_a_network_namespace() {
    let o = Options {
        netns_path: Some("/run/netns/e2e".into()),
        ..Options::default()
    };
    assert_eq!(
        decide(&o, ROOT).unwrap().mode,
        Mode::Join("/run/netns/e2e".into())
    );
    for who in [USER, FAKEROOT] {
        let e = decide(&o, who).unwrap_err();
        assert_eq!(
            e,
            NetError::NetnsNotRoot {
                path: "/run/netns/e2e".into()
            }
        );
        assert!(e.hint().is_some());
    }
}

/// `launcher_linux.go`: with `--net`, `--netns-path` still wins, with a warning, and no CNI
/// network is set up.
#[test]
fn netns_path_wins_over_net_with_a_warning() {
    let o = Options {
        net: true,
        network: Some("bridge".into()),
        netns_path: Some("/run/netns/x".into()),
        ..Options::default()
    };
    let p = decide(&o, ROOT).unwrap();
    assert_eq!(p.mode, Mode::Join("/run/netns/x".into()));
    assert!(
        matches!(&p.notes[..], [Note::Info(_), Note::Warn(w)] if w.contains("joining `/run/netns/x`"))
            || matches!(&p.notes[..], [Note::Warn(w)] if w.contains("joining `/run/netns/x`")),
        "{:?}",
        p.notes
    );
}

/// `files.ResolvConf`: spaces dropped, each entry an IP, blank means the host's file.
#[test]
fn dns_entries_are_ip_addresses() {
    let ips = parse_dns("1.1.1.1, 8.8.8.8,2001:4860:4860::8888").unwrap();
    assert_eq!(
        resolv_conf(&ips),
        "nameserver 1.1.1.1\nnameserver 8.8.8.8\nnameserver 2001:4860:4860::8888\n"
    );
    assert!(parse_dns(" ").unwrap().is_empty());
    let e = parse_dns("1.1.1.1,dns.google").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid `--dns` value `1.1.1.1,dns.google`: `dns.google` is not an IP address"
    );
    assert!(matches!(
        parse_dns("1.1.1.1,"),
        Err(NetError::Dns { entry, .. }) if entry.is_empty()
    ));
}

#[test]
fn a_bad_dns_value_names_its_origin() {
    let r = Request {
        dns: Some(Sourced {
            value: "x".into(),
            origin: Origin::EnvVar("APPTAINER_DNS".into()),
        }),
        ..Request::default()
    };
    let (origin, e) = r.options().unwrap_err();
    assert_eq!(origin, Origin::EnvVar("APPTAINER_DNS".into()));
    assert!(matches!(e, NetError::Dns { .. }));
    let r = Request {
        net: true,
        network: Some(Sourced::flag(" none ".into())),
        network_args: vec![Sourced::flag("portmap=80:80/tcp".into())],
        dns: Some(Sourced::flag("9.9.9.9".into())),
        ..Request::default()
    };
    let o = r.options().unwrap();
    assert_eq!(o.network.as_deref(), Some("none"));
    assert_eq!(o.dns, ["9.9.9.9".parse::<IpAddr>().unwrap()]);
}

/// `addResolvConfMount` replaces the host's file; `addHostsMount` stages default hosts under
/// `--contain` in a network namespace; a file `--no-mount` dropped is not brought back.
#[test]
fn generated_files_replace_the_host_binds() {
    let host = |p: &str| Mount::host(Tag::HostFile, p, p);
    let mut ms = vec![host("/etc/hosts"), host("/etc/resolv.conf")];
    let plan = Plan {
        mode: Mode::Loopback,
        dns: parse_dns("1.1.1.1").unwrap(),
        notes: Vec::new(),
    };
    mounts(&plan, false, &mut ms);
    assert_eq!(ms[0].source, Source::Host("/etc/hosts".into()));
    assert_eq!(
        ms[1].source,
        Source::Text {
            name: "resolv.conf",
            text: "nameserver 1.1.1.1\n".into()
        }
    );
    mounts(&plan, true, &mut ms);
    assert_eq!(
        ms[0].source,
        Source::Text {
            name: "hosts",
            text: DEFAULT_HOSTS.into()
        }
    );
    let mut only_hosts = vec![host("/etc/hosts")];
    mounts(&plan, false, &mut only_hosts);
    assert_eq!(only_hosts.len(), 1);
    let host_net = Plan {
        mode: Mode::Host,
        ..plan
    };
    let mut ms = vec![host("/etc/hosts")];
    mounts(&host_net, true, &mut ms);
    assert_eq!(ms[0].source, Source::Host("/etc/hosts".into()));
}

/// A user with a home, for whole plans.
fn user_host() -> crate::plan::HostFacts {
    crate::plan::HostFacts {
        uid: 1000,
        gid: 1000,
        groups: Vec::new(),
        group_name: None,
        user: Some(crate::plan::UserInfo {
            name: "alice".into(),
            gecos: String::new(),
            home: "/home/alice".into(),
            shell: "/bin/sh".into(),
        }),
        cwd: PathBuf::from("/scratch"),
        env: Vec::new(),
        privileged: false,
        var_tmp_is_tmp: false,
        gpu: Vec::new(),
    }
}

/// The plan carries the decision: the namespace to create, the generated files, the lines
/// `--debug` shows; a refused network is the plan's error.
#[test]
fn the_plan_has_the_network_namespace_and_its_files() {
    let action = crate::plan::Action::Exec(vec!["true".into()]);
    let image = std::path::Path::new("/images/x");
    let contained = crate::plan::Options {
        contain: true,
        net: Options {
            network: Some("none".into()),
            dns: parse_dns("1.1.1.1").unwrap(),
            ..Options::default()
        },
        ..crate::plan::Options::default()
    };
    let plan = crate::plan::build(&contained, image, action.clone(), &user_host()).unwrap();
    assert!(plan.namespaces.net && plan.namespaces.user);
    assert_eq!(plan.namespaces.describe(), "user+mount+net");
    let text = plan.render();
    for line in [
        "network none (loopback only)",
        "dns 1.1.1.1",
        "mount HostFile <hosts> -> /etc/hosts",
        "mount HostFile <resolv.conf> -> /etc/resolv.conf",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    let plain = crate::plan::build(
        &crate::plan::Options::default(),
        image,
        action.clone(),
        &user_host(),
    )
    .unwrap();
    assert!(!plain.namespaces.net);
    assert!(!plain.render().contains("network"));
    let refused = crate::plan::Options {
        net: opts(true, None),
        ..crate::plan::Options::default()
    };
    assert_eq!(
        crate::plan::build(&refused, image, action, &user_host()).unwrap_err(),
        crate::plan::PlanError::Net(NetError::Unprivileged {
            network: "bridge".into()
        })
    );
}
