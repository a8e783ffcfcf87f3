//! The privilege rules of [`super`]: capability names, the root and user policies, the
//! root-only flags and `--security`. Expectations name the Apptainer code or e2e test they
//! come from.

use super::*;

const NET_RAW: Mask = 1 << 13;
const SYS_RAWIO: Mask = 1 << 17;
const SYS_BOOT: Mask = 1 << 22;
const ROOT: u32 = 0;
const USER: u32 = 1000;

fn req() -> PrivsRequest {
    PrivsRequest::default()
}

/// `req` parsed for `caller` (not an instance), warnings checked to be none.
fn parsed(req: &PrivsRequest, caller: u32) -> Privs {
    let (p, warnings) = req.parse(caller, false).unwrap();
    assert_eq!(warnings, Vec::<String>::new());
    p
}

#[test]
fn capability_names_are_read_as_apptainer_normalises_them() {
    // pkg/util/capabilities: Split/Normalize.
    assert_eq!(parse_caps("CAP_NET_RAW"), (NET_RAW, vec![]));
    assert_eq!(parse_caps("net_raw"), (NET_RAW, vec![]));
    assert_eq!(
        parse_caps(" Cap_Net_Raw , sys_boot,"),
        (NET_RAW | SYS_BOOT, vec![])
    );
    assert_eq!(parse_caps(""), (0, vec![]));
    assert_eq!(parse_caps("all"), (ALL, vec![]));
    assert_eq!(parse_caps("bogus,CAP_ALL"), (ALL, vec![]));
    assert_eq!(
        parse_caps("net_raw,bogus,cap_bogus,other"),
        (
            NET_RAW,
            vec!["CAP_BOGUS".to_string(), "CAP_OTHER".to_string()]
        )
    );
    assert_eq!(parse_caps("checkpoint_restore").0, 1 << 40);
    assert_eq!(cap_names(NET_RAW | SYS_RAWIO), "CAP_NET_RAW,CAP_SYS_RAWIO");
    assert_eq!(ALL.count_ones() as usize, CAPABILITIES.len());
}

#[test]
fn root_gets_every_capability_unless_told_otherwise() {
    // prepare_linux.go prepareRootCaps; e2e/security testSecurityPriv capabilities_keep and
    // capabilities_drop.
    let full = parsed(&req(), ROOT).resolve(0, false);
    assert_eq!(full.caps, ALL);
    let keep = PrivsRequest {
        keep_privs: true,
        ..req()
    };
    assert_eq!(parsed(&keep, ROOT).resolve(0, false).caps, ALL);
    let drop = PrivsRequest {
        drop_caps: Some("CAP_NET_RAW".into()),
        ..req()
    };
    assert_eq!(parsed(&drop, ROOT).resolve(0, false).caps, ALL & !NET_RAW);
    let none = PrivsRequest {
        no_privs: true,
        ..req()
    };
    assert_eq!(parsed(&none, ROOT).resolve(0, false).caps, 0);
    // --no-privs wins over --keep-privs, and --add-caps adds to what is left.
    let both = PrivsRequest {
        no_privs: true,
        keep_privs: true,
        add_caps: Some("net_raw,sys_boot".into()),
        drop_caps: Some("sys_boot".into()),
        ..req()
    };
    assert_eq!(parsed(&both, ROOT).resolve(0, false).caps, NET_RAW);
}

#[test]
fn fakeroot_is_root_in_its_namespace() {
    // A user's --fakeroot: the container's uid is 0, in a user namespace: full set.
    let p = parsed(&req(), USER).resolve(0, true);
    assert_eq!(p.caps, ALL);
    let none = PrivsRequest {
        no_privs: true,
        ..req()
    };
    assert_eq!(parsed(&none, USER).resolve(0, true).caps, 0);
}

#[test]
fn a_user_gets_only_the_capabilities_asked_for() {
    // prepareUserCaps without setuid (not enforced): the request is taken as it is;
    // e2e/security testSecurityUnpriv capabilities_keep-false and capabilities_drop.
    assert_eq!(parsed(&req(), USER).resolve(USER, true).caps, 0);
    let drop = PrivsRequest {
        drop_caps: Some("CAP_NET_RAW".into()),
        ..req()
    };
    assert_eq!(parsed(&drop, USER).resolve(USER, true).caps, 0);
    let add = PrivsRequest {
        add_caps: Some("net_raw,sys_rawio".into()),
        drop_caps: Some("sys_rawio".into()),
        ..req()
    };
    assert_eq!(parsed(&add, USER).resolve(USER, true).caps, NET_RAW);
    // --no-privs changes nothing for a user; it is no error either.
    let none = PrivsRequest {
        no_privs: true,
        ..req()
    };
    assert_eq!(parsed(&none, USER).resolve(USER, true).caps, 0);
}

#[test]
fn unknown_capabilities_are_warned_about_and_left_out() {
    let r = PrivsRequest {
        add_caps: Some("net_raw,flying".into()),
        drop_caps: Some("cap_walking".into()),
        ..req()
    };
    let (p, warnings) = r.parse(USER, false).unwrap();
    assert_eq!(p.add, NET_RAW);
    assert_eq!(
        warnings,
        [
            "won't add unknown capability: CAP_FLYING",
            "won't drop unknown capability: CAP_WALKING"
        ]
    );
}

#[test]
fn root_only_flags_are_refused_to_users() {
    // launcher_linux.go withPrivilege; e2e/security capabilities_keep_true (exit 255).
    for (r, flag) in [
        (
            PrivsRequest {
                keep_privs: true,
                ..req()
            },
            "--keep-privs",
        ),
        (
            PrivsRequest {
                allow_setuid: true,
                ..req()
            },
            "--allow-setuid",
        ),
    ] {
        assert_eq!(
            r.parse(USER, false).unwrap_err(),
            PrivsError::RootOnly { flag }
        );
        assert!(r.parse(ROOT, false).is_ok());
    }
    let boot = PrivsRequest {
        boot: true,
        ..req()
    };
    assert_eq!(
        boot.parse(USER, true).unwrap_err(),
        PrivsError::RootOnly { flag: "--boot" }
    );
    // --boot belongs to instances; elsewhere it means nothing.
    let (p, _) = boot.parse(USER, false).unwrap();
    assert!(!p.boot);
}

#[test]
fn a_booted_instance_runs_init_without_reboot_and_rawio() {
    // launcher_linux.go: --boot drops CAP_SYS_BOOT,CAP_SYS_RAWIO unless --keep-privs, and
    // runs /sbin/init.
    let boot = PrivsRequest {
        boot: true,
        ..req()
    };
    let (p, _) = boot.parse(ROOT, true).unwrap();
    assert_eq!(p.resolve(0, false).caps, ALL & !SYS_BOOT & !SYS_RAWIO);
    assert_eq!(
        p.action(Action::Start(vec!["a".into()])),
        Action::Exec(vec!["/sbin/init".into()])
    );
    let keep = PrivsRequest {
        keep_privs: true,
        ..boot
    };
    let (p, _) = keep.parse(ROOT, true).unwrap();
    assert_eq!(p.resolve(0, false).caps, ALL);
    let plain = parsed(&req(), ROOT);
    assert_eq!(plain.action(Action::Start(vec![])), Action::Start(vec![]));
}

#[test]
fn security_ids_switch_root_and_leave_it_no_capabilities() {
    // e2e/security testSecurityPriv Set_uid/Set_gid; prepareRootCaps: target ids -> "no".
    let r = PrivsRequest {
        security: vec!["uid:99,gid:98:97".into()],
        ..req()
    };
    let p = parsed(&r, ROOT).resolve(0, false);
    assert_eq!(
        p.ids,
        Some(TargetIds {
            uid: Some(99),
            gids: vec![98, 97]
        })
    );
    assert_eq!(p.caps, 0);
    // Separate values, the first of each name wins; --add-caps still adds.
    let r = PrivsRequest {
        security: vec!["gid:5".into(), "gid:6".into(), "uid:0".into()],
        add_caps: Some("net_raw".into()),
        ..req()
    };
    let p = parsed(&r, ROOT).resolve(0, false);
    assert_eq!(
        p.ids,
        Some(TargetIds {
            uid: Some(0),
            gids: vec![5]
        })
    );
    assert_eq!(p.caps, NET_RAW);
    // In a user namespace (--userns, --fakeroot) the target ids are not mapped.
    let r = PrivsRequest {
        security: vec!["uid:99".into()],
        ..req()
    };
    assert_eq!(parsed(&r, ROOT).resolve(0, true).ids, None);
    // The target uid is the one root-only flags are checked against, as in Apptainer.
    let r = PrivsRequest {
        security: vec!["uid:99".into()],
        keep_privs: true,
        ..req()
    };
    assert_eq!(
        r.parse(ROOT, false).unwrap_err(),
        PrivsError::RootOnly {
            flag: "--keep-privs"
        }
    );
}

#[test]
fn security_ids_of_a_user_are_ignored_with_a_warning() {
    // e2e/security testSecurityUnpriv Set_uid with a user namespace: exit 0.
    let r = PrivsRequest {
        security: vec!["uid:99".into()],
        ..req()
    };
    let (p, warnings) = r.parse(USER, false).unwrap();
    assert_eq!(p.ids, None);
    assert_eq!(
        warnings,
        ["`--security uid:99` is ignored: only root can switch the container's ids"]
    );
}

#[test]
fn bad_security_values_name_the_entry() {
    let bad = |v: &str| {
        PrivsRequest {
            security: vec![v.into()],
            ..req()
        }
        .parse(ROOT, false)
        .unwrap_err()
    };
    assert_eq!(
        bad("uid"),
        PrivsError::SecurityForm {
            value: "uid".into()
        }
    );
    assert_eq!(
        bad("uid:me"),
        PrivsError::SecurityId {
            value: "uid:me".into(),
            id: "me".into(),
            what: "uid"
        }
    );
    assert_eq!(
        bad("gid:1:x"),
        PrivsError::SecurityId {
            value: "gid:1:x".into(),
            id: "x".into(),
            what: "gid"
        }
    );
    // Names Apptainer does not know are ignored.
    assert!(
        PrivsRequest {
            security: vec!["other:1".into()],
            ..req()
        }
        .parse(USER, false)
        .is_ok()
    );
}

#[test]
fn seccomp_is_refused_as_by_an_apptainer_built_without_libseccomp() {
    // internal/pkg/security: "seccomp requested but not enabled".
    let r = PrivsRequest {
        security: vec!["seccomp:/p.json".into()],
        ..req()
    };
    let e = r.parse(ROOT, false).unwrap_err();
    assert_eq!(
        e,
        PrivsError::Seccomp {
            profile: "/p.json".into()
        }
    );
    assert!(e.hint().is_some());
}

#[test]
fn lsm_labels_need_the_lsm_and_only_one_of_them() {
    let both = PrivsRequest {
        security: vec!["apparmor:x,selinux:y".into()],
        ..req()
    };
    assert_eq!(both.parse(ROOT, false).unwrap_err(), PrivsError::LsmBoth);
    for (v, lsm, name) in [
        (
            "apparmor:/usr/bin/man",
            Lsm::AppArmor("/usr/bin/man".into()),
            "apparmor",
        ),
        (
            "selinux:u:r:t:s0",
            Lsm::SeLinux("u:r:t:s0".into()),
            "selinux",
        ),
    ] {
        let r = PrivsRequest {
            security: vec![v.into()],
            ..req()
        };
        if lsm_enabled(&lsm) {
            assert_eq!(parsed(&r, USER).resolve(USER, true).lsm, Some(lsm));
        } else {
            assert_eq!(
                r.parse(USER, false).unwrap_err(),
                PrivsError::LsmMissing { lsm: name }
            );
        }
    }
}

#[test]
fn allow_setuid_holds_for_root_outside_a_user_namespace_only() {
    // container_linux.go: nosuid is lifted only when `GetAllowSUID() && !c.userNS`.
    let r = PrivsRequest {
        allow_setuid: true,
        ..req()
    };
    let p = parsed(&r, ROOT);
    assert!(p.resolve(0, false).allow_setuid);
    assert!(!p.resolve(0, true).allow_setuid);
    assert!(!parsed(&req(), ROOT).resolve(0, false).allow_setuid);
}
