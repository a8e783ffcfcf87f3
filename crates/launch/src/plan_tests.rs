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
    }
}

fn plan(opts: &Options, uid: u32) -> String {
    build(
        opts,
        Path::new("/images/lolcow"),
        Action::Exec(vec!["true".into()]),
        &host(uid),
    )
    .unwrap()
    .render()
}

#[test]
fn unprivileged_defaults() {
    assert_eq!(
        plan(&Options::default(), 1000),
        "\
image /images/lolcow
namespaces user+mount (uid 1000->1000, gid 1000->1000)
root read-only
mount System /proc -> /proc rw,nosuid
mount System /sys -> /sys rw,nosuid
mount Dev /dev -> /dev rw,nosuid
mount Tmp /tmp -> /tmp rw,nosuid,nodev
mount HostFile /etc/localtime -> /etc/localtime ro,nosuid,nodev
mount HostFile /etc/hosts -> /etc/hosts ro,nosuid,nodev
mount HostFile /etc/resolv.conf -> /etc/resolv.conf ro,nosuid,nodev
mount Home /home/alice -> /home/alice rw,nosuid,nodev
mount Tmp /var/tmp -> /var/tmp rw,nosuid,nodev
mount Cwd /scratch/job -> /scratch/job rw,nosuid,nodev
mount Identity <passwd> -> /etc/passwd ro,nosuid,nodev
mount Identity <group> -> /etc/group ro,nosuid,nodev
cwd /scratch/job
action Exec([\"true\"])
env seed PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
env seed HOME=/home/alice
env seed APPTAINER_CONTAINER=/images/lolcow
env seed APPTAINER_NAME=lolcow
env seed APPTAINER_ENVIRONMENT=/.singularity.d/env/91-environment.sh
env seed SINGULARITY_CONTAINER=/images/lolcow
env seed SINGULARITY_NAME=lolcow
env seed SINGULARITY_ENVIRONMENT=/.singularity.d/env/91-environment.sh
env override FOO=bar
env host SLURM_JOB_ID TERM
"
    );
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
    let p = build(&Options::default(), Path::new("/i"), Action::Shell, &h).unwrap();
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
    let p = build(&opts, Path::new("/i"), Action::Shell, &h).unwrap();
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
    for want in [
        "mount Dev <scratch> -> /dev rw,nosuid,required",
        "mount Dev /dev/null -> /dev/null rw,nosuid",
        "mount Dev <scratch> -> /dev/shm rw,nosuid,nodev,required",
        "mount Dev <devpts> -> /dev/pts rw,nosuid,required",
        "mount Tmp <scratch> -> /tmp rw,nosuid,nodev,required",
        "mount Home <scratch> -> /home/alice rw,nosuid,nodev,required",
        "cwd /home/alice\n",
    ] {
        assert!(p.contains(want), "missing `{want}`:\n{p}");
    }
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
    for want in [
        "root writable\n",
        "mount Home /scratch/alice -> /home/me rw,nosuid,nodev,required",
        "cwd /opt (explicit)",
        "env seed HOME=/home/me",
        "env override A=1",
        "env path-set /only",
        "env host TERM LANG\n",
    ] {
        assert!(p.contains(want), "missing `{want}`:\n{p}");
    }
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
        Action::Shell,
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
    let e = build(&opts, Path::new("/i"), Action::Shell, &host(1)).unwrap_err();
    assert!(e.to_string().contains("`here`"));
    assert!(HomeSpec::parse("rel:/x").is_err());
    let mut h = host(1234);
    h.user = None;
    let e = build(&Options::default(), Path::new("/i"), Action::Shell, &h).unwrap_err();
    assert_eq!(
        e.to_string(),
        "uid 1234 has no entry in the host user database, and no `--home` was given"
    );
}
