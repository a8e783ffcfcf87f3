//! Snapshots of `LaunchPlan`s for flag combinations: pure, no privileges needed.

use std::path::PathBuf;

use super::*;
use crate::bind::parse_list;

fn host(uid: u32) -> HostFacts {
    let (name, home) = if uid == 0 {
        ("root", "/root")
    } else {
        ("alice", "/home/alice")
    };
    HostFacts {
        uid,
        gid: uid,
        groups: vec![(uid, name.into())],
        group_name: Some(name.into()),
        user: Some(UserInfo {
            name: name.into(),
            gecos: String::new(),
            home: home.into(),
            shell: "/bin/bash".into(),
        }),
        cwd: PathBuf::from("/scratch/job"),
        env: vec![
            ("PATH".into(), "/usr/bin".into()),
            ("SLURM_JOB_ID".into(), "42".into()),
            ("APPTAINER_BIND".into(), "/x".into()),
            ("APPTAINERENV_FOO".into(), "bar".into()),
            ("TERM".into(), "xterm".into()),
        ],
        privileged: uid == 0,
        var_tmp_is_tmp: false,
        gpu: Vec::new(),
    }
}

/// The plan of `exec /images/lolcow true` for `uid`.
fn try_plan(opts: &Options, uid: u32) -> Result<LaunchPlan, PlanError> {
    build(
        opts,
        Path::new("/images/lolcow"),
        Action::Exec(vec!["true".into()]),
        &host(uid),
    )
}

/// [`try_plan`], rendered.
fn plan(opts: &Options, uid: u32) -> String {
    try_plan(opts, uid).unwrap().render()
}

/// Why [`try_plan`] refuses `opts` for uid 1000.
fn refused(opts: &Options) -> PlanError {
    try_plan(opts, 1000).unwrap_err()
}

/// The plan of `shell /i` on host `h`.
fn shell(opts: &Options, h: &HostFacts) -> Result<LaunchPlan, PlanError> {
    build(opts, Path::new("/i"), Action::Shell(None), h)
}

/// Options with `--no-mount list`.
fn no_mount(list: &str) -> Options {
    Options {
        no_mount: crate::nomount::parse_list(list).unwrap(),
        ..Options::default()
    }
}

/// Every one of `wants` is in the rendered plan `p`.
fn assert_has(p: &str, wants: &[&str]) {
    for want in wants {
        assert!(p.contains(want), "missing `{want}`:\n{p}");
    }
}

#[test]
fn unprivileged_defaults() {
    insta::assert_snapshot!(plan(&Options::default(), 1000));
}

#[test]
fn root_gets_only_a_mount_namespace() {
    let p = plan(&Options::default(), 0);
    assert!(p.contains("namespaces mount\n"), "{p}");
    assert!(p.contains("mount Home /root -> /root"), "{p}");
}

#[test]
fn cwd_under_a_same_path_bind_is_not_bound_again() {
    let mut h = host(1000);
    h.cwd = "/home/alice/project".into();
    let p = shell(&Options::default(), &h).unwrap();
    assert!(
        !p.mounts.iter().any(|m| m.tag == Tag::Cwd),
        "{}",
        p.render()
    );
    assert_eq!(p.cwd.path, PathBuf::from("/home/alice/project"));

    // With --no-home the cwd under home is still bound (Apptainer).
    let opts = Options {
        no_home: true,
        ..Options::default()
    };
    let p = shell(&opts, &h).unwrap();
    assert!(p.mounts.iter().any(|m| m.tag == Tag::Cwd && m.dst == h.cwd));
    assert!(!p.mounts.iter().any(|m| m.tag == Tag::Home));
}

#[test]
fn user_binds_come_after_defaults_shortest_destination_first() {
    let opts = Options {
        binds: parse_list("/data/a:/mnt/deep/dir:ro,/scratch:/tmp").unwrap(),
        ..Options::default()
    };
    let p = plan(&opts, 1000);
    let lines: Vec<&str> = p.lines().filter(|l| l.starts_with("mount")).collect();
    let tmp = lines
        .iter()
        .position(|l| l.starts_with("mount Tmp /tmp "))
        .unwrap();
    let user_tmp = lines
        .iter()
        .position(|l| l.contains("UserBind /scratch -> /tmp rw"))
        .unwrap();
    let deep = lines
        .iter()
        .position(|l| l.contains("UserBind /data/a -> /mnt/deep/dir ro,nosuid,nodev,required"))
        .unwrap();
    assert!(
        tmp < user_tmp,
        "a user bind on /tmp lands on top of the default one:\n{p}"
    );
    assert_eq!(
        deep,
        lines.len() - 1,
        "the deepest destination is mounted last:\n{p}"
    );
}

#[test]
fn contain_uses_scratch_dirs_and_home_as_cwd() {
    let opts = Options {
        contain: true,
        ..Options::default()
    };
    let p = plan(&opts, 1000);
    assert_has(
        &p,
        &[
            "mount Dev <scratch> -> /dev rw,nosuid,required",
            "mount Dev /dev/null -> /dev/null rw,nosuid",
            "mount Dev <scratch> -> /dev/shm rw,nosuid,nodev,required",
            "mount Dev <devpts> -> /dev/pts rw,nosuid,required",
            "mount Tmp <scratch> -> /tmp rw,nosuid,nodev,required",
            "mount Home <scratch> -> /home/alice rw,nosuid,nodev,required",
            "cwd /home/alice\n",
        ],
    );
    assert!(!p.contains("mount Cwd"), "{p}");
    assert!(!p.contains("/tmp -> /tmp"), "{p}");
}

#[test]
fn home_flag_pwd_writable_and_cleanenv() {
    let opts = Options {
        home: Some(HomeSpec::parse("/scratch/alice:/home/me").unwrap()),
        cwd: Some("/opt".into()),
        writable: true,
        cleanenv: true,
        env: vec![
            ("PATH".into(), "/only".into()),
            ("A".into(), "1".into()),
            ("HOME".into(), "/x".into()),
        ],
        ..Options::default()
    };
    let p = plan(&opts, 1000);
    assert_has(
        &p,
        &[
            "root writable\n",
            "mount Home /scratch/alice -> /home/me rw,nosuid,nodev,required",
            "cwd /opt (explicit)",
            "env seed HOME=/home/me",
            "env override A=1",
            "env path-set /only",
            "env host TERM LANG\n",
        ],
    );
    assert!(
        !p.contains("override HOME"),
        "HOME cannot be overridden:\n{p}"
    );
}

#[test]
fn root_with_writable_keeps_the_image_passwd() {
    let opts = Options {
        writable: true,
        ..Options::default()
    };
    let p = plan(&opts, 0);
    assert!(!p.contains("<passwd>"), "{p}");
}

#[test]
fn bad_inputs_name_the_value() {
    let e = build(
        &Options::default(),
        Path::new("rel"),
        Action::Shell(None),
        &host(1),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "image path `rel` is not absolute");
    let e = build(
        &Options::default(),
        Path::new("/i"),
        Action::Exec(vec![]),
        &host(1),
    )
    .unwrap_err();
    assert_eq!(e, PlanError::NoCommand);
    let opts = Options {
        cwd: Some("here".into()),
        ..Options::default()
    };
    let e = shell(&opts, &host(1)).unwrap_err();
    assert!(e.to_string().contains("`here`"));
    assert!(matches!(
        HomeSpec::parse("rel:/x"),
        Err(PlanError::RelativeHome { .. })
    ));
    let mut h = host(1234);
    h.user = None;
    let e = shell(&Options::default(), &h).unwrap_err();
    assert_eq!(
        e.to_string(),
        "uid 1234 has no entry in the host user database, and no `--home` was given"
    );
}

#[test]
fn pid_namespace_mounts_a_fresh_proc_over_the_host_bind() {
    let opts = Options {
        pid: true,
        ..Options::default()
    };
    for (uid, ns) in [(1000, "user+mount+pid"), (0, "mount+pid")] {
        let p = plan(&opts, uid);
        assert!(p.contains(&format!("namespaces {ns}")), "{p}");
        let host = p.find("mount System /proc -> /proc rw,nosuid\n").unwrap();
        let fresh = p
            .find("mount System <proc> -> /proc rw,nosuid,nodev,required\n")
            .unwrap();
        // The kernel only lets a user namespace mount a procfs while another one is visible.
        assert!(host < fresh, "{p}");
    }
    assert!(!plan(&Options::default(), 1000).contains("<proc>"));
}

#[test]
fn ipc_and_uts_are_new_namespaces_only_when_asked() {
    let opts = Options {
        ipc: true,
        uts: true,
        ..Options::default()
    };
    let p = plan(&opts, 1000);
    assert!(p.contains("namespaces user+mount+ipc+uts ("), "{p}");
    assert!(!p.contains("hostname"), "--uts alone keeps the name: {p}");
}

#[test]
fn hostname_implies_uts_and_generates_etc_hostname() {
    let opts = Options {
        hostname: Some("node-a".into()),
        ..Options::default()
    };
    let p = plan(&opts, 1000);
    assert!(p.contains("namespaces user+mount+uts ("), "{p}");
    assert!(p.contains("hostname node-a\n"), "{p}");
    assert!(
        p.contains("mount Hostname <hostname> -> /etc/hostname ro,nosuid,nodev\n"),
        "{p}"
    );
    for bad in ["", &"x".repeat(65)] {
        let opts = Options {
            hostname: Some(bad.to_string()),
            ..Options::default()
        };
        assert!(matches!(refused(&opts), PlanError::Hostname { .. }));
    }
}

#[test]
fn no_mount_leaves_out_each_named_default() {
    let cases: &[(&str, &[&str])] = &[
        ("proc", &["-> /proc "]),
        ("sys", &["-> /sys "]),
        ("dev", &["-> /dev "]),
        ("home", &["mount Home"]),
        ("tmp", &["-> /tmp ", "-> /var/tmp "]),
        ("cwd", &["mount Cwd"]),
        (
            "bind-paths",
            &["-> /etc/localtime", "-> /etc/hosts", "-> /etc/resolv.conf"],
        ),
        ("/etc/hosts", &["-> /etc/hosts"]),
        ("/etc/resolv.conf", &["-> /etc/resolv.conf"]),
    ];
    let all = plan(&Options::default(), 1000);
    for (name, gone) in cases {
        let p = plan(&no_mount(name), 1000);
        for g in *gone {
            assert!(all.contains(g), "`{g}` is a default:\n{all}");
            assert!(!p.contains(g), "--no-mount {name} keeps `{g}`:\n{p}");
        }
        // Nothing else goes.
        let removed = all.lines().count() - p.lines().count();
        assert_eq!(removed, gone.len(), "--no-mount {name}:\n{p}");
    }
    // /etc/hosts alone leaves the other bind path entries.
    assert!(plan(&no_mount("/etc/hosts"), 1000).contains("-> /etc/localtime"));
    // hostfs is accepted and changes nothing (sifr never binds host mount points).
    assert_eq!(plan(&no_mount("hostfs"), 1000), all);
}

#[test]
fn no_mount_devpts_and_dev_under_contain() {
    let mut opts = Options {
        contain: true,
        ..no_mount("devpts")
    };
    let p = plan(&opts, 1000);
    assert!(!p.contains("<devpts>"), "{p}");
    assert!(p.contains("<scratch> -> /dev rw"), "{p}");
    opts.no_mount = crate::nomount::parse_list("dev").unwrap();
    let p = plan(&opts, 1000);
    assert!(!p.contains("-> /dev"), "no /dev at all: {p}");
}

#[test]
fn containall_is_contain_cleanenv_pid_and_ipc() {
    let mut opts = Options::default();
    opts.contain_all();
    let p = plan(&opts, 1000);
    let contain = Options {
        contain: true,
        cleanenv: true,
        pid: true,
        ipc: true,
        ..Options::default()
    };
    assert_eq!(p, plan(&contain, 1000));
    assert!(p.contains("namespaces user+mount+pid+ipc ("), "{p}");
    assert!(p.contains("mount Tmp <scratch> -> /tmp"), "{p}");
    assert!(p.contains("env host TERM LANG\n"), "{p}");
}

#[test]
fn workdir_backs_tmp_var_tmp_and_home_only_with_contain() {
    let opts = Options {
        contain: true,
        workdir: Some("/scratch/w".into()),
        ..Options::default()
    };
    let p = plan(&opts, 1000);
    assert_has(
        &p,
        &[
            "mount Tmp /scratch/w/tmp -> /tmp rw,nosuid,nodev,required,create=1777\n",
            "mount Tmp /scratch/w/var_tmp -> /var/tmp rw,nosuid,nodev,required,create=1777\n",
            "mount Home /scratch/w/home -> /home/alice rw,nosuid,nodev,required,create=700\n",
        ],
    );
    // A user-named home stays what the user named.
    let opts = Options {
        home: Some(HomeSpec::parse("/data/me:/home/alice").unwrap()),
        ..opts
    };
    assert!(plan(&opts, 1000).contains("mount Home /data/me -> /home/alice"));
    // Without --contain the workdir is unused, as in Apptainer.
    let opts = Options {
        workdir: Some("/scratch/w".into()),
        ..Options::default()
    };
    assert_eq!(plan(&opts, 1000), plan(&Options::default(), 1000));
    let opts = Options {
        workdir: Some("w".into()),
        ..Options::default()
    };
    assert_eq!(
        refused(&opts).to_string(),
        "invalid `--workdir` value `w`: it must be an absolute path"
    );
}

#[test]
fn writable_and_writable_tmpfs_exclude_each_other_and_overlays_show_in_the_plan() {
    let tmpfs = Options {
        writable_tmpfs: true,
        ..Options::default()
    };
    let p = plan(&tmpfs, 1000);
    assert!(p.contains("root writable-tmpfs\n"), "{p}");
    let ov = Options {
        overlay: vec![
            crate::overlay::parse("/data/ov"),
            crate::overlay::parse("/data/b.sqfs:ro"),
        ],
        ..Options::default()
    };
    let p = plan(&ov, 1000);
    assert!(p.contains("root overlay /data/ov,/data/b.sqfs:ro\n"), "{p}");
    let both = Options {
        writable: true,
        ..tmpfs
    };
    assert_eq!(
        refused(&both).to_string(),
        "`--writable` and `--writable-tmpfs` cannot be used together"
    );
    // `--overlay` with `--writable-tmpfs` is allowed for read-only layers, as in Apptainer:
    // `overlay::open` decides, knowing which layers can be written.
    let with_tmpfs = Options {
        writable_tmpfs: true,
        ..ov
    };
    let p = plan(&with_tmpfs, 1000);
    assert!(p.contains("+ writable-tmpfs\n"), "{p}");
}

#[test]
fn session_tmpfs_size_is_apptainers_64_mib_unless_set() {
    let p = try_plan(&Options::default(), 1000).unwrap();
    assert_eq!(p.session_mib, DEFAULT_SESSION_MIB);
    let opts = Options {
        session_mib: Some(512),
        writable_tmpfs: true,
        ..Options::default()
    };
    assert!(plan(&opts, 1000).contains("session 512 MiB\n"));
    let opts = Options {
        session_mib: Some(0),
        ..Options::default()
    };
    assert!(matches!(refused(&opts), PlanError::SessionSize { .. }));
}

#[test]
fn mount_flag_binds_are_user_binds() {
    let opts = Options {
        binds: vec![crate::bind::parse_mount("type=bind,src=/data,dst=/in,readonly").unwrap()],
        ..Options::default()
    };
    let p = plan(&opts, 1000);
    assert!(
        p.contains("mount UserBind /data -> /in ro,nosuid,nodev,required\n"),
        "{p}"
    );
}

#[test]
fn env_file_sits_between_apptainerenv_and_env() {
    // host(): APPTAINERENV_FOO=bar.
    let opts = Options {
        env_file: vec![
            ("FOO".into(), "file".into()),
            ("BAR".into(), "file".into()),
            ("PREPEND_PATH".into(), "/pre".into()),
        ],
        env: vec![("BAR".into(), "flag".into())],
        ..Options::default()
    };
    let p = plan(&opts, 1000);
    assert!(p.contains("env override FOO=file\n"), "{p}");
    assert!(p.contains("env override BAR=flag\n"), "{p}");
    assert!(!p.contains("FOO=bar"), "{p}");
    assert!(!p.contains("BAR=file"), "{p}");
    assert!(p.contains("env path-prepend /pre\n"), "{p}");
}

#[test]
fn fakeroot_is_root_with_the_callers_home_at_root_in_a_user_namespace() {
    for uid in [1000, 0] {
        let opts = Options {
            fakeroot: true,
            ..Default::default()
        };
        let p = try_plan(&opts, uid).unwrap();
        assert!(p.namespaces.user, "uid {uid}");
        assert!(!p.kernel_mounts(), "uid {uid}");
        let name = if uid == 0 { "root" } else { "alice" };
        assert_eq!(
            p.ids,
            IdMap::Fakeroot {
                user: Some(name.into()),
                path: "/usr/bin".into(),
                subids: true,
            }
        );
        assert_eq!((p.identity.uid, p.identity.gid), (0, 0));
        assert!(p.identity.groups.is_empty());
        let home = if uid == 0 { "/root" } else { "/home/alice" };
        let r = p.render();
        assert!(
            r.contains(&format!("mount Home {home} -> /root rw,nosuid,nodev\n")),
            "{r}"
        );
        assert!(r.contains("env seed HOME=/root\n"), "{r}");
        assert!(r.contains("mount Identity <passwd> -> /etc/passwd"), "{r}");
    }
}

#[test]
fn userns_takes_the_unprivileged_path_as_root() {
    let opts = Options {
        userns: true,
        ..Default::default()
    };
    let p = try_plan(&opts, 0).unwrap();
    assert!(p.namespaces.user);
    assert_eq!(p.ids, IdMap::Own);
    assert!(!p.kernel_mounts());
    assert!(
        p.render()
            .contains("namespaces user+mount (uid 0->0, gid 0->0)")
    );
    let p = try_plan(&Options::default(), 0).unwrap();
    assert_eq!(p.ids, IdMap::Host);
    assert!(p.kernel_mounts());
}

#[test]
fn gpu_mounts_join_the_plan_with_devices_only_under_contain_and_selection_survives_cleanenv() {
    let mut h = host(1000);
    h.env.push(("CUDA_VISIBLE_DEVICES".into(), "1".into()));
    h.gpu = vec![crate::gpu::Found {
        vendor: crate::gpu::Vendor::Nvidia,
        libs: vec![crate::gpu::Lib {
            name: "libcuda.so.1".into(),
            path: "/usr/lib64/libcuda.so.1".into(),
            bits32: false,
        }],
        programs: vec![("nvidia-smi".into(), "/usr/bin/nvidia-smi".into())],
        files: Vec::new(),
        devices: vec!["/dev/nvidia1".into(), "/dev/nvidiactl".into()],
        env: Vec::new(),
        warnings: Vec::new(),
    }];
    let mut opts = Options::default();
    opts.contain_all();
    let p = shell(&opts, &h).unwrap().render();
    let gpu: Vec<&str> = p.lines().filter(|l| l.contains(" Gpu ")).collect();
    assert_eq!(
        gpu,
        vec![
            "mount Gpu <scratch> -> /.singularity.d/libs ro,nosuid,nodev,required",
            "mount Gpu /dev/nvidia1 -> /dev/nvidia1 rw,nosuid",
            "mount Gpu /dev/nvidiactl -> /dev/nvidiactl rw,nosuid",
            "mount Gpu /usr/lib64/libcuda.so.1 -> /.singularity.d/libs/libcuda.so.1 ro,nosuid,nodev",
            "mount Gpu /usr/bin/nvidia-smi -> /usr/bin/nvidia-smi ro,nosuid,nodev",
        ]
    );
    // The minimal /dev comes first, the nodes are bound into it.
    let dev = p.find("mount Dev <scratch> -> /dev ").unwrap();
    assert!(dev < p.find("/dev/nvidia1 ->").unwrap(), "{p}");
    assert!(
        p.contains("env host TERM CUDA_VISIBLE_DEVICES LANG\n"),
        "{p}"
    );

    let p = shell(&Options::default(), &h).unwrap().render();
    assert!(
        !p.contains("/dev/nvidia1"),
        "the full /dev shows the nodes:\n{p}"
    );
}

#[test]
fn scratch_and_fusemount_join_the_plan() {
    let opts = Options {
        extra_mounts: crate::mounts::ExtraMounts {
            scratch: vec!["/scratch".into(), "/deep/s".into()],
            fuse: vec![
                crate::fusemount::parse("host:squashfuse /d/x.sqfs /mnt/sq")
                    .unwrap()
                    .unwrap(),
            ],
        },
        ..Options::default()
    };
    let p = plan(&opts, 1000);
    assert_has(
        &p,
        &[
            "mount Scratch <scratch> -> /scratch rw,nosuid,nodev,required\n",
            "mount Scratch <scratch> -> /deep/s rw,nosuid,nodev,required\n",
            "mount Fuse <fuse 0> -> /mnt/sq rw,nosuid,nodev,required\n",
            "fuse 0 Host: squashfuse /d/x.sqfs /dev/fd/3 -f\n",
        ],
    );
    // With -W, the scratch directories are kept in WORK/scratch.
    let opts = Options {
        workdir: Some("/w".into()),
        ..opts
    };
    assert_has(
        &plan(&opts, 1000),
        &["mount Scratch /w/scratch/deep/s -> /deep/s rw,nosuid,nodev,required,create=750\n"],
    );
}
