//! The network flags end to end (`-n/--net`, `--network`, `--network-args`, `--netns-path`,
//! `--dns`): the real binary on the probe sandbox made at test time, as root and as the
//! unprivileged test user, with the expectations of Apptainer 1.5.3's `e2e/actions`
//! (`actionNetwork`, `actionNetnsPath`) where it has them. Host-state: these start containers
//! and, as root, add and delete a network namespace with `ip netns`.

use std::path::{Path, PathBuf};

use sifr_testkit::{As, Fixture, TestOutput, runnable_identities as identities, stderr, stdout};

const EXIT_FAILURE: i32 = sifr_cli::exit::FAILURE as i32;

/// `sifr ARGS` as `who`, with the variables `vars`.
fn sifr(fx: &Fixture, who: As, vars: &[(&str, &str)], args: &[&str]) -> TestOutput {
    fx.command(env!("CARGO_BIN_EXE_sifr"), who)
        .args(args)
        .envs(vars.iter().copied())
        .output()
}

/// The interface names of a `/proc/net/dev` listing.
fn interfaces(dev: &str) -> Vec<String> {
    dev.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}

/// The host's network namespace, as `/proc/self/ns/net` names it (`net:[INODE]`).
fn host_netns() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `/proc/net/if_inet6` lists the addresses of interfaces that are up; `lo`'s `::1` is there
/// once `lo` is up. `None` where the kernel has no IPv6.
fn loopback_up_in(if_inet6: &str) -> Option<bool> {
    if !Path::new("/proc/net/if_inet6").exists() {
        return None;
    }
    Some(if_inet6.lines().any(|l| l.trim_end().ends_with(" lo")))
}

/// `actionNetwork/NoneNetwork`: `--net --network none` succeeds for a user, and the container
/// is in a namespace of its own with `lo` alone, brought up.
#[test]
fn net_with_network_none_has_only_a_loopback_that_is_up() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = sifr(
            &fx,
            who,
            &[],
            &[
                "exec",
                "--net",
                "--network",
                "none",
                img,
                "/bin/probe",
                "ns",
                "net",
            ],
        );
        assert!(o.status.success(), "{who:?}: {}", stderr(&o));
        let ns = stdout(&o);
        assert!(ns.starts_with("net:["), "{ns}");
        assert_ne!(
            ns.trim(),
            host_netns(),
            "{who:?}: the host's network namespace"
        );

        let o = sifr(
            &fx,
            who,
            &[],
            &[
                "exec",
                "-n",
                "--network",
                "none",
                img,
                "/bin/probe",
                "cat",
                "/proc/net/dev",
            ],
        );
        assert!(o.status.success(), "{who:?}: {}", stderr(&o));
        assert_eq!(interfaces(&stdout(&o)), ["lo"], "{who:?}: {}", stdout(&o));

        let o = sifr(
            &fx,
            who,
            &[],
            &[
                "exec",
                "--net",
                "--network",
                "none",
                img,
                "/bin/probe",
                "cat",
                "/proc/net/if_inet6",
            ],
        );
        match loopback_up_in(&stdout(&o)) {
            Some(up) => assert!(up, "{who:?}: lo is down: {}{}", stdout(&o), stderr(&o)),
            // A kernel built without IPv6 has no if_inet6 to read `lo`'s state from; the
            // interface list above is checked all the same.
            None => sifr_testkit::not_here("the kernel has no IPv6: whether lo is up is unread"),
        }
    }
}

/// Without a network flag the container keeps the host's namespace (Apptainer's default).
#[test]
fn no_network_flag_keeps_the_hosts_namespace() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = sifr(&fx, who, &[], &["exec", img, "/bin/probe", "ns", "net"]);
        assert_eq!(stdout(&o).trim(), host_netns(), "{who:?}: {}", stderr(&o));
    }
}

/// `--network` alone implies `--net`; so do the twins `APPTAINER_NETWORK` and
/// `APPTAINER_UNSHARE_NET` with `SINGULARITY_NETWORK`.
#[test]
fn network_and_the_twins_imply_net() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let dev = ["exec", img, "/bin/probe", "cat", "/proc/net/dev"];
    for who in identities() {
        let o = sifr(
            &fx,
            who,
            &[],
            &[
                "exec",
                "--network",
                "none",
                img,
                "/bin/probe",
                "cat",
                "/proc/net/dev",
            ],
        );
        assert_eq!(interfaces(&stdout(&o)), ["lo"], "{who:?}: {}", stderr(&o));
        for vars in [
            &[("APPTAINER_NETWORK", "none")][..],
            &[
                ("APPTAINER_UNSHARE_NET", "1"),
                ("SINGULARITY_NETWORK", "none"),
            ][..],
            &[("SIFR_NET", "true"), ("APPTAINER_NETWORK", "none")][..],
        ] {
            let o = sifr(&fx, who, vars, &dev);
            assert_eq!(
                interfaces(&stdout(&o)),
                ["lo"],
                "{who:?} {vars:?}: {}",
                stderr(&o)
            );
        }
    }
}

/// `--network-args` only configure CNI plugins: with `none` they are accepted and unused.
#[test]
fn network_args_are_accepted_with_network_none() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = sifr(
            &fx,
            who,
            &[],
            &[
                "exec",
                "--net",
                "--network",
                "none",
                "--network-args",
                "portmap=8080:80/tcp",
                img,
                "/bin/probe",
                "cat",
                "/proc/net/dev",
            ],
        );
        assert!(o.status.success(), "{who:?}: {}", stderr(&o));
        assert_eq!(interfaces(&stdout(&o)), ["lo"]);
    }
}

/// `actionNetwork/UserBridgeNetwork` (255 in Apptainer): a CNI network is refused to a user,
/// and `--net` alone means `bridge`; as root sifr refuses it too, having no CNI plugins
/// (`UnknownNetwork` fails in Apptainer as well).
#[test]
fn cni_networks_are_refused_with_the_reason() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        for args in [
            &["exec", "--net", img, "/bin/probe", "id"][..],
            &[
                "exec",
                "--net",
                "--network",
                "bridge",
                img,
                "/bin/probe",
                "id",
            ][..],
            &["exec", "--network", "unknown", img, "/bin/probe", "id"][..],
        ] {
            let o = sifr(&fx, who, &[], args);
            o.assert_code(EXIT_FAILURE);
            assert_eq!(stdout(&o), "", "the command must not run");
            let expected = match who {
                As::Root => "sifr does not run CNI plugins",
                As::User { .. } => "an unprivileged user can only use `--network none`",
            };
            o.assert_stderr_contains(expected)
                .assert_stderr_contains("hint: use `--net --network none`");
        }
    }
}

/// `actionNetwork/FakerootNetwork` (0 in Apptainer): an unprivileged installation falls back
/// to `none` with a warning, whatever network was asked for.
#[test]
fn fakeroot_net_falls_back_to_loopback_only_with_a_warning() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        for network in [
            &[][..],
            &["--network", "fakeroot"][..],
            &["--network", "bridge"][..],
        ] {
            let mut args = vec!["exec", "--fakeroot", "--net"];
            args.extend_from_slice(network);
            args.extend_from_slice(&[img, "/bin/probe", "cat", "/proc/net/dev"]);
            let o = sifr(&fx, who, &[], &args);
            assert!(o.status.success(), "{who:?} {network:?}: {}", stderr(&o));
            assert_eq!(interfaces(&stdout(&o)), ["lo"]);
            o.assert_stderr_contains("using `--network none`");
        }
    }
}

/// A network namespace made with `ip netns add`, deleted on drop.
struct NetNs {
    name: String,
    path: PathBuf,
}

impl NetNs {
    fn add() -> NetNs {
        let name = format!("sifr-test-{}", std::process::id());
        sifr_testkit::run_ok(std::process::Command::new("ip").args(["netns", "add", &name]));
        let path = Path::new("/run/netns").join(&name);
        NetNs { name, path }
    }

    /// The namespace as `/proc/PID/ns/net` would name it.
    fn id(&self) -> String {
        use std::os::unix::fs::MetadataExt as _;
        format!("net:[{}]", std::fs::metadata(&self.path).unwrap().ino())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// `actionNetnsPath`: root joins the namespace (the container's `/proc/self/ns/net` is its
/// inode); the user is refused (255 in Apptainer), `--fakeroot` or not.
#[test]
fn netns_path_is_joined_by_root_and_refused_to_a_user() {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("`ip netns add` needs root");
        return;
    }
    if let Some(why) = sifr_testkit::missing(&["ip"]) {
        sifr_testkit::skip(format_args!(
            "{why} not installed (apt-get install iproute2)"
        ));
        return;
    }
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let ns = NetNs::add();
    let path = ns.path.to_str().unwrap();
    for who in identities() {
        let o = sifr(
            &fx,
            who,
            &[],
            &["exec", "--netns-path", path, img, "/bin/probe", "ns", "net"],
        );
        match who {
            As::Root => assert_eq!(stdout(&o).trim(), ns.id(), "{}", stderr(&o)),
            As::User { .. } => {
                o.assert_code(EXIT_FAILURE)
                    .assert_stderr_contains("only root may use `--netns-path`");
                let o = sifr(
                    &fx,
                    who,
                    &[],
                    &[
                        "exec",
                        "--fakeroot",
                        "--netns-path",
                        path,
                        img,
                        "/bin/probe",
                        "id",
                    ],
                );
                o.assert_code(EXIT_FAILURE)
                    .assert_stderr_contains("only root may use `--netns-path`");
            }
        }
    }
    // As root with `--userns`: joined before the user namespace is made. The variable, and
    // `--net` beside the path (the path wins, with a warning).
    let o = sifr(
        &fx,
        As::Root,
        &[("APPTAINER_NETNS_PATH", path)],
        &["exec", "--userns", img, "/bin/probe", "ns", "net"],
    );
    assert_eq!(stdout(&o).trim(), ns.id(), "{}", stderr(&o));
    let o = sifr(
        &fx,
        As::Root,
        &[],
        &[
            "exec",
            "--net",
            "--netns-path",
            path,
            img,
            "/bin/probe",
            "ns",
            "net",
        ],
    );
    assert_eq!(stdout(&o).trim(), ns.id(), "{}", stderr(&o));
    o.assert_stderr_contains("`--net` and `--netns-path` both given");
    let o = sifr(
        &fx,
        As::Root,
        &[],
        &[
            "exec",
            "--netns-path",
            "/nonexistent/netns",
            img,
            "/bin/probe",
            "id",
        ],
    );
    o.assert_code(EXIT_FAILURE)
        .assert_stderr_contains("/nonexistent/netns");
}

/// `--dns`: `/etc/resolv.conf` lists exactly these nameservers, for every user, with or
/// without `--net`; `APPTAINER_DNS` does the same; a bad entry is named.
#[test]
fn dns_replaces_resolv_conf_for_everyone() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let want = "nameserver 1.1.1.1\nnameserver 8.8.8.8\n";
    for who in identities() {
        let o = sifr(
            &fx,
            who,
            &[],
            &[
                "exec",
                "--dns",
                "1.1.1.1,8.8.8.8",
                img,
                "/bin/probe",
                "cat",
                "/etc/resolv.conf",
            ],
        );
        assert_eq!(stdout(&o), want, "{who:?}: {}", stderr(&o));
        let o = sifr(
            &fx,
            who,
            &[("APPTAINER_DNS", "1.1.1.1, 8.8.8.8")],
            &[
                "exec",
                "--net",
                "--network",
                "none",
                img,
                "/bin/probe",
                "cat",
                "/etc/resolv.conf",
            ],
        );
        assert_eq!(stdout(&o), want, "{who:?}: {}", stderr(&o));
        let o = sifr(
            &fx,
            who,
            &[],
            &[
                "exec",
                "--dns",
                "1.1.1.1,dns.google",
                img,
                "/bin/probe",
                "id",
            ],
        );
        o.assert_code(EXIT_FAILURE)
            .assert_stderr_contains("`dns.google` is not an IP address");
    }
}

/// `--contain` in a network namespace: Apptainer's minimal `/etc/hosts` replaces the host's.
#[test]
fn contain_with_net_has_the_default_hosts_file() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = sifr(
            &fx,
            who,
            &[],
            &[
                "exec",
                "-c",
                "--network",
                "none",
                img,
                "/bin/probe",
                "cat",
                "/etc/hosts",
            ],
        );
        assert_eq!(
            stdout(&o),
            sifr_launch::net::DEFAULT_HOSTS,
            "{who:?}: {}",
            stderr(&o)
        );
    }
}

/// An instance started with `--net --network none` keeps its namespace, and
/// `exec instance://NAME` runs in it.
#[test]
fn instance_exec_joins_the_instances_network_namespace() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let home = fx.dir.path().join(format!("home-{}", who.uid()));
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(who.uid()), Some(who.gid())).unwrap();
        let run = |args: &[&str]| {
            fx.command(env!("CARGO_BIN_EXE_sifr"), who)
                .args(args)
                .env("HOME", &home)
                .output()
        };
        let o = run(&[
            "instance",
            "start",
            "--net",
            "--network",
            "none",
            img,
            "netinst",
        ]);
        assert!(o.status.success(), "{who:?}: {}", stderr(&o));
        let o = run(&[
            "exec",
            "instance://netinst",
            "/bin/probe",
            "cat",
            "/proc/net/dev",
        ]);
        let listed = interfaces(&stdout(&o));
        let stop = run(&["instance", "stop", "netinst"]);
        assert!(stop.status.success(), "{}", stderr(&stop));
        assert_eq!(listed, ["lo"], "{who:?}: {}", stderr(&o));
    }
    let left = sifr_testkit::settled(|| sifr_testkit::processes_mentioning(fx.dir.path()));
    assert!(left.is_empty(), "processes left: {left:?}");
}
