//! The privilege flags end to end: what the container's command sees in `/proc/self/status`
//! (`CapEff`, `CapBnd`, `CapAmb`, `Uid`, `Gid`, `NoNewPrivs`) for `--keep-privs`, `--no-privs`,
//! `--add-caps`, `--drop-caps`, `--security`, `--allow-setuid` and `--boot`, as root and as
//! the unprivileged test user, on the probe sandbox. Expectations come from Apptainer's
//! `e2e/security/security.go` (`testSecurityPriv`, `testSecurityUnpriv`), named per test;
//! where sifr differs (a user's `--security uid:`), docs/compat.md says why.

use sifr_testkit::{As, Fixture, TestOutput, runnable_identities as identities, stderr, stdout};

const NET_RAW: u64 = 1 << 13;
const SYS_RAWIO: u64 = 1 << 17;
const SYS_ADMIN: u64 = 1 << 21;
const SYS_BOOT: u64 = 1 << 22;
/// sifr's own fatal errors.
const FAILURE: i32 = sifr_cli::exit::FAILURE as i32;

/// `sifr ARGS` as `who`, with the variables `vars`.
fn sifr(fx: &Fixture, who: As, vars: &[(&str, &str)], args: &[&str]) -> TestOutput {
    fx.command(env!("CARGO_BIN_EXE_sifr"), who)
        .args(args)
        .envs(vars.iter().copied())
        .output()
}

/// One line of a `/proc/PID/status` text, after its `NAME:`, whitespace collapsed.
fn field(status: &str, name: &str) -> String {
    let head = format!("{name}:");
    let line = status
        .lines()
        .find(|l| l.starts_with(&head))
        .unwrap_or_else(|| panic!("no {name} in:\n{status}"));
    line[head.len()..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn mask(status: &str, name: &str) -> u64 {
    u64::from_str_radix(&field(status, name), 16).unwrap()
}

/// The command's sets inside a container started with `flags` by `who`.
struct Seen {
    eff: u64,
    bnd: u64,
    amb: u64,
    status: String,
}

fn seen(fx: &Fixture, who: As, flags: &[&str]) -> Seen {
    let img = fx.image.to_str().unwrap();
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend([img, "/bin/probe", "cat", "/proc/self/status"]);
    let o = sifr(fx, who, &[], &args);
    assert!(o.status.success(), "{flags:?} as {who:?}: {}", stderr(&o));
    let status = stdout(&o);
    Seen {
        eff: mask(&status, "CapEff"),
        bnd: mask(&status, "CapBnd"),
        amb: mask(&status, "CapAmb"),
        status,
    }
}

/// The capabilities root holds here (Apptainer's e2e reads them the same way): all a root
/// container can get.
fn root_full() -> u64 {
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        field(&own, "Uid").split(' ').next(),
        Some("0"),
        "run as root"
    );
    mask(&own, "CapPrm") & ((1 << 41) - 1)
}

/// Every capability the kernel knows (up to `CAP_CHECKPOINT_RESTORE`): what root has in a
/// fresh user namespace.
fn kernel_full() -> u64 {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (1u64 << (last.min(40) + 1)) - 1
}

fn user() -> Option<As> {
    identities()
        .into_iter()
        .find(|w| matches!(w, As::User { .. }))
}

#[test]
fn root_keeps_every_capability_unless_dropped() {
    // e2e/security testSecurityPriv: capabilities_keep (full CapEff), capabilities_drop (full
    // less CAP_NET_RAW).
    let fx = Fixture::new();
    let full = root_full();
    for flags in [&[][..], &["--keep-privs"]] {
        let s = seen(&fx, As::Root, flags);
        assert_eq!((s.eff, s.bnd, s.amb), (full, full, full), "{flags:?}");
    }
    let s = seen(&fx, As::Root, &["--drop-caps", "CAP_NET_RAW"]);
    assert_eq!((s.eff, s.bnd), (full & !NET_RAW, full & !NET_RAW));
    let s = seen(&fx, As::Root, &["--drop-caps", "net_raw, sys_admin"]);
    assert_eq!(s.eff, full & !NET_RAW & !SYS_ADMIN);
    let s = seen(&fx, As::Root, &["--no-privs"]);
    assert_eq!((s.eff, s.bnd, s.amb), (0, 0, 0));
    assert_eq!(field(&s.status, "Uid"), "0 0 0 0");
    let s = seen(&fx, As::Root, &["--no-privs", "--add-caps", "net_raw"]);
    assert_eq!((s.eff, s.bnd, s.amb), (NET_RAW, NET_RAW, NET_RAW));
}

#[test]
fn a_user_has_no_capability_unless_added() {
    // e2e/security testSecurityUnpriv: capabilities_keep-false and capabilities_drop (empty
    // CapEff); Apptainer without setuid grants --add-caps in the user namespace.
    let Some(who) = user() else { return };
    let fx = Fixture::new();
    for flags in [&[][..], &["--drop-caps", "CAP_NET_RAW"], &["--no-privs"]] {
        let s = seen(&fx, who, flags);
        assert_eq!((s.eff, s.bnd, s.amb), (0, 0, 0), "{flags:?}");
    }
    let s = seen(&fx, who, &["--add-caps", "CAP_NET_RAW"]);
    assert_eq!((s.eff, s.bnd, s.amb), (NET_RAW, NET_RAW, NET_RAW));
    assert_eq!(
        field(&s.status, "Uid").split(' ').next(),
        Some(who.uid().to_string().as_str())
    );
    let s = seen(&fx, who, &["--add-caps", "all", "--drop-caps", "sys_admin"]);
    assert_eq!(s.eff, kernel_full() & !SYS_ADMIN);
}

#[test]
fn fakeroot_is_root_with_every_capability_of_its_namespace() {
    let Some(who) = user() else { return };
    let fx = Fixture::new();
    let s = seen(&fx, who, &["--fakeroot"]);
    assert_eq!((s.eff, s.bnd), (kernel_full(), kernel_full()));
    let s = seen(&fx, who, &["--fakeroot", "--drop-caps", "net_raw"]);
    assert_eq!(s.eff, kernel_full() & !NET_RAW);
    let s = seen(&fx, who, &["--fakeroot", "--no-privs"]);
    assert_eq!((s.eff, s.bnd), (0, 0));
}

#[test]
fn root_only_flags_fail_for_a_user() {
    // e2e/security testSecurityUnpriv capabilities_keep_true: Apptainer exits 255 (sifr's
    // FAILURE); launcher_linux.go withPrivilege for the others.
    let Some(who) = user() else { return };
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for flag in ["--keep-privs", "--allow-setuid"] {
        sifr(&fx, who, &[], &["exec", flag, img, "/bin/probe", "id"])
            .assert_code(FAILURE)
            .assert_stderr_contains(&format!("`{flag}` requires root privileges"));
    }
    sifr(
        &fx,
        who,
        &[("APPTAINER_KEEP_PRIVS", "1")],
        &["exec", img, "/bin/probe", "id"],
    )
    .assert_code(FAILURE)
    .assert_stderr_contains("`--keep-privs` requires root privileges");
    sifr(
        &fx,
        who,
        &[],
        &["instance", "start", "--boot", img, "privs-boot"],
    )
    .assert_code(FAILURE)
    .assert_stderr_contains("`--boot` requires root privileges");
}

#[test]
fn security_ids_switch_roots_command_only() {
    // e2e/security testSecurityPriv Set_uid/Set_gid: `id -u` and `id -g` print 99.
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let o = sifr(
        &fx,
        As::Root,
        &[],
        &[
            "exec",
            "--security",
            "uid:99,gid:99",
            img,
            "/bin/probe",
            "id",
        ],
    );
    assert_eq!(
        stdout(&o),
        "uid=99 gid=99 euid=99 egid=99\n",
        "{}",
        stderr(&o)
    );
    let s = seen(
        &fx,
        As::Root,
        &["--security", "uid:99", "--security", "gid:98:97"],
    );
    assert_eq!(field(&s.status, "Uid"), "99 99 99 99");
    assert_eq!(field(&s.status, "Gid"), "98 98 98 98");
    assert_eq!(field(&s.status, "Groups"), "97 98");
    // A target id leaves root's command no capability, unless added.
    assert_eq!((s.eff, s.bnd), (0, 0));
    let s = seen(
        &fx,
        As::Root,
        &["--security", "uid:99", "--add-caps", "net_raw"],
    );
    assert_eq!((s.eff, s.amb), (NET_RAW, NET_RAW));
    // The twin, a comma-separated list.
    let o = sifr(
        &fx,
        As::Root,
        &[("APPTAINER_SECURITY", "uid:98,gid:97")],
        &["exec", img, "/bin/probe", "id"],
    );
    assert_eq!(
        stdout(&o),
        "uid=98 gid=97 euid=98 egid=97\n",
        "{}",
        stderr(&o)
    );
    // e2e/security testSecurityUnpriv Set_uid with a user namespace: exit 0 (sifr keeps the
    // user's ids and says so).
    if let Some(who) = user() {
        let o = sifr(
            &fx,
            who,
            &[],
            &["exec", "--security", "uid:99", img, "/bin/probe", "id"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stdout(&o).starts_with(&format!("uid={} ", who.uid())),
            "{}",
            stdout(&o)
        );
        assert!(
            stderr(&o).contains("is ignored: only root can switch"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn bad_security_values_and_seccomp_are_errors() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        sifr(
            &fx,
            who,
            &[],
            &["exec", "--security", "uid:me", img, "/bin/probe", "id"],
        )
        .assert_code(FAILURE)
        .assert_stderr_contains("invalid `--security` value `uid:me`: `me` is not a uid");
        // sifr has no seccomp, as an Apptainer built without libseccomp (which fails the
        // launch: "seccomp requested but not enabled").
        sifr(
            &fx,
            who,
            &[],
            &[
                "exec",
                "--security",
                "seccomp:/none.json",
                img,
                "/bin/probe",
                "id",
            ],
        )
        .assert_code(FAILURE)
        .assert_stderr_contains("seccomp requested (`/none.json`) but not enabled");
    }
    let apparmor = std::fs::read("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|d| d.first() == Some(&b'Y'));
    if !apparmor {
        sifr(
            &fx,
            As::Root,
            &[],
            &[
                "exec",
                "--security",
                "apparmor:/usr/bin/man",
                img,
                "/bin/probe",
                "id",
            ],
        )
        .assert_code(FAILURE)
        .assert_stderr_contains("apparmor requested, but is not enabled or supported");
    }
}

#[test]
fn unknown_capabilities_are_warned_about() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let o = sifr(
        &fx,
        As::Root,
        &[],
        &["exec", "--add-caps", "flying", img, "/bin/probe", "id"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("won't add unknown capability: CAP_FLYING"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn no_new_privs_is_lifted_by_allow_setuid_for_root_only() {
    let fx = Fixture::new();
    let s = seen(&fx, As::Root, &[]);
    assert_eq!(field(&s.status, "NoNewPrivs"), "1");
    let s = seen(&fx, As::Root, &["--allow-setuid"]);
    assert_eq!(field(&s.status, "NoNewPrivs"), "0");
    // The image root is mounted without nosuid.
    let img = fx.image.to_str().unwrap();
    let o = sifr(
        &fx,
        As::Root,
        &[],
        &[
            "exec",
            "--allow-setuid",
            img,
            "/bin/probe",
            "cat",
            "/proc/self/mounts",
        ],
    );
    let root = stdout(&o)
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(!root.is_empty() && !root.contains("nosuid"), "{root}");
    // In a user namespace setuid bits cannot work: --userns keeps no_new_privs.
    let s = seen(&fx, As::Root, &["--userns", "--allow-setuid"]);
    assert_eq!(field(&s.status, "NoNewPrivs"), "1");
}

/// The status of the first child of instance `name`'s launcher (its command), read from the
/// host.
fn instance_command_status(fx: &Fixture, name: &str) -> String {
    let o = sifr(fx, As::Root, &[], &["instance", "list", "--json", name]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("instance list --json");
    let pid = v["instances"][0]["pid"]
        .as_i64()
        .expect("the instance's pid");
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let child = children
        .split_whitespace()
        .next()
        .expect("the instance's command");
    std::fs::read_to_string(format!("/proc/{child}/status")).unwrap()
}

#[test]
fn a_booted_instance_runs_init_without_reboot_and_rawio() {
    // launcher_linux.go: --boot runs /sbin/init, contained, named after the instance, without
    // CAP_SYS_BOOT and CAP_SYS_RAWIO unless --keep-privs; e2e/instance/regressions.go
    // issue5033: a booted instance can be joined (`exec instance://NAME`).
    let fx = Fixture::new();
    if !fx.has_shell {
        sifr_testkit::skip(
            "/sbin/init is a script: busybox is needed for its /bin/sh (apt-get install busybox-static)",
        );
        return;
    }
    let img = fx.copy_image("boot-image");
    std::fs::create_dir_all(img.join("sbin")).unwrap();
    std::fs::write(
        img.join("sbin/init"),
        "#!/bin/sh\nexec /bin/probe wait-signal\n",
    )
    .unwrap();
    std::fs::set_permissions(
        img.join("sbin/init"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let img = img.to_str().unwrap();
    let full = root_full();
    for (flags, want) in [
        (&["--boot"][..], full & !SYS_BOOT & !SYS_RAWIO),
        (&["--boot", "--keep-privs"], full),
        (
            &["--boot", "--drop-caps", "net_raw"],
            full & !SYS_BOOT & !SYS_RAWIO & !NET_RAW,
        ),
    ] {
        let name = "privs-boot";
        let mut args = vec!["instance", "start"];
        args.extend_from_slice(flags);
        args.extend([img, name]);
        sifr(&fx, As::Root, &[], &args).assert_success();
        let status = instance_command_status(&fx, name);
        let o = sifr(
            &fx,
            As::Root,
            &[],
            &["exec", &format!("instance://{name}"), "/bin/probe", "uname"],
        );
        sifr(&fx, As::Root, &[], &["instance", "stop", name]).assert_success();
        assert_eq!(mask(&status, "CapBnd"), want, "{flags:?}");
        assert_eq!(mask(&status, "CapEff"), want, "{flags:?}");
        // The UTS namespace is named after the instance.
        assert_eq!(stdout(&o), format!("{name}\n"), "{}", stderr(&o));
    }
    let left = sifr_testkit::settled(|| sifr_testkit::processes_mentioning(fx.dir.path()));
    assert!(left.is_empty(), "processes left: {left:?}");
}
