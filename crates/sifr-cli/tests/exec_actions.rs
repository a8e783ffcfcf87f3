//! `sifr exec|run|shell|test` end to end: the real binary, a sandbox made at test time around a
//! static probe, run as root and as the unprivileged test user (created with `useradd -m` when
//! the tests run as root). Deeper runtime checks live in `crates/sifr-launch/tests/namespaces.rs`.

use std::process::{Command, Stdio};

use sifr_testkit::{As, Fixture, TestOutput, runnable_identities as identities, stderr, stdout};

fn sifr_as(fx: &Fixture, who: As, args: &[&str]) -> Command {
    fx.command(env!("CARGO_BIN_EXE_sifr"), who)
        .args(args)
        .command()
}

fn run(fx: &Fixture, who: As, args: &[&str]) -> TestOutput {
    fx.command(env!("CARGO_BIN_EXE_sifr"), who)
        .args(args)
        .output()
}

/// `sifr exec FLAGS IMG /bin/probe ARGS` as `who`.
fn probe(fx: &Fixture, who: As, flags: &[&str], img: &str, args: &[&str]) -> TestOutput {
    let mut all = vec!["exec"];
    all.extend(flags);
    all.extend([img, "/bin/probe"]);
    all.extend(args);
    run(fx, who, &all)
}

#[test]
fn exec_keeps_the_callers_uid_and_passes_the_exit_status() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = probe(&fx, who, &[], img, &["id"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let (u, g) = (who.uid(), who.gid());
        assert_eq!(
            stdout(&o).trim(),
            format!("uid={u} gid={g} euid={u} egid={g}")
        );
        let o = run(&fx, who, &["exec", img, "probe", "exit", "42"]);
        assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    }
    assert!(sifr_testkit::host_mounts_mentioning(fx.dir.path()).is_empty());
    fx.assert_image_untouched();
}

#[test]
fn bind_flags_and_apptainer_bind_combine() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let data = fx.data.to_str().unwrap();
    for who in identities() {
        let flag = format!("{data}:/from-flag:ro");
        let mut c = sifr_as(
            &fx,
            who,
            &[
                "exec",
                "-B",
                &flag,
                img,
                "/bin/probe",
                "cat",
                "/from-flag/hello",
                "/from-env/hello",
            ],
        );
        c.env("APPTAINER_BIND", format!("{data}:/from-env"));
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "hello from the host\nhello from the host\n");
        let o = probe(
            &fx,
            who,
            &["--bind", &flag],
            img,
            &["write", "/from-flag/x"],
        );
        assert_eq!(stdout(&o).trim(), "error=EROFS");
    }
}

#[test]
fn env_and_cleanenv_flags() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let mut c = sifr_as(
            &fx,
            who,
            &[
                "exec",
                "--cleanenv",
                "--env",
                "A=1",
                img,
                "/bin/probe",
                "env",
            ],
        );
        c.env("HOST_ONLY", "x");
        let o = c.output().unwrap();
        let out = stdout(&o);
        assert!(out.lines().any(|l| l == "A=1"), "{out}");
        assert!(!out.contains("HOST_ONLY"), "{out}");
        assert!(out.lines().any(|l| l == "LANG=C"), "{out}");
    }
}

#[test]
fn run_test_and_shell_use_the_image_scripts_and_shell() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = run(&fx, who, &["run", img, "a", "-b"]);
        assert_eq!(stdout(&o), "runscript: a -b\n", "{}", stderr(&o));
        let o = run(&fx, who, &["test", img]);
        assert_eq!(stdout(&o), "test:\n", "{}", stderr(&o));
        assert!(
            fx.has_shell,
            "busybox-static provides the image's /bin/sh (apt-get install busybox-static)"
        );
        let mut c = sifr_as(&fx, who, &["shell", img]);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"echo shell-says $PS1; exit 5\n")
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(stdout(&o), "shell-says Apptainer>\n");
        assert_eq!(o.status.code(), Some(5));
    }
}

#[test]
fn missing_command_exits_127_with_its_name() {
    let fx = Fixture::new();
    let o = run(
        &fx,
        As::Root,
        &["exec", fx.image.to_str().unwrap(), "no-such-cmd"],
    );
    o.assert_code(127)
        .assert_stderr_contains("cannot execute `no-such-cmd`");
}

#[test]
fn files_that_are_neither_sif_nor_squashfs_are_refused_naming_the_file() {
    let fx = Fixture::new();
    let sif = fx.dir.path().join("lolcow.sif");
    std::fs::write(&sif, b"#!/usr/bin/env run-singularity\nSIF_MAGIC").unwrap();
    let o = run(&fx, As::Root, &["exec", sif.to_str().unwrap(), "true"]);
    assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "image `{}` is not a sandbox directory, a SIF file or a squashfs image",
            sif.display()
        )),
        "{err}"
    );
}

/// Start `sifr ARGS` (running `probe wait-signal`), send SIGTERM to sifr alone once the probe
/// is ready, and check the probe got it and its status is sifr's.
fn assert_sigterm_reaches_probe(fx: &Fixture, who: As, args: &[&str]) {
    sifr_testkit::assert_sigterm_reaches_probe(sifr_as(fx, who, args));
}

#[test]
fn sigterm_to_sifr_reaches_the_command() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        assert_sigterm_reaches_probe(&fx, who, &["exec", img, "/bin/probe", "wait-signal"]);
    }
}

/// The host's view of one of its own namespaces (`ipc:[4026531839]`).
fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .display()
        .to_string()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// Nothing mounted from the fixture and no probe process is left on the host.
fn assert_nothing_left(fx: &Fixture) {
    assert!(
        sifr_testkit::host_mounts_mentioning(fx.dir.path()).is_empty(),
        "{:?}",
        sifr_testkit::host_mounts_mentioning(fx.dir.path())
    );
    let left = sifr_testkit::settled(|| sifr_testkit::processes_mentioning(fx.dir.path()));
    assert!(left.is_empty(), "processes left: {left:?}");
    fx.assert_image_untouched();
}

#[test]
fn pid_namespace_runs_the_command_as_pid_2_under_an_init() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = probe(&fx, who, &["--pid"], img, &["pid"]);
        assert_eq!(stdout(&o), "pid=2 ppid=1\n", "{}", stderr(&o));
        // A fresh /proc: only the init and the command are visible.
        let o = probe(&fx, who, &["-p"], img, &["procs"]);
        assert_eq!(stdout(&o), "1\n2\n", "{}", stderr(&o));
        // Without --pid the host's processes show (at least this test and sifr).
        let o = probe(&fx, who, &[], img, &["procs"]);
        assert!(stdout(&o).lines().count() > 2, "{}", stdout(&o));
        let o = run(&fx, who, &["exec", "--pid", img, "probe", "exit", "42"]);
        assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
        let o = run(&fx, who, &["exec", "--pid", img, "no-such-cmd"]);
        assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    }
    assert_nothing_left(&fx);
}

#[test]
fn sigterm_reaches_the_command_through_the_pid_namespace_init() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        assert_sigterm_reaches_probe(
            &fx,
            who,
            &["exec", "--pid", img, "/bin/probe", "wait-signal"],
        );
    }
    assert_nothing_left(&fx);
}

#[test]
fn ipc_and_uts_namespaces_are_new_only_when_asked() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        for (ns, flag) in [("ipc", "--ipc"), ("uts", "--uts")] {
            let o = probe(&fx, who, &[], img, &["ns", ns]);
            assert_eq!(stdout(&o).trim(), host_ns(ns), "{}", stderr(&o));
            let o = probe(&fx, who, &[flag], img, &["ns", ns]);
            let inside = stdout(&o);
            assert!(inside.starts_with(&format!("{ns}:[")), "{inside}");
            assert_ne!(inside.trim(), host_ns(ns));
        }
        // --uts alone keeps the host's name in the new namespace.
        let o = probe(&fx, who, &["--uts"], img, &["uname"]);
        assert_eq!(stdout(&o).trim(), host_name());
    }
}

#[test]
fn hostname_names_the_container_and_leaves_the_host_alone() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let before = host_name();
    for who in identities() {
        let o = probe(&fx, who, &["--hostname", "sifr-node"], img, &["uname"]);
        assert_eq!(stdout(&o), "sifr-node\n", "{}", stderr(&o));
        let o = probe(
            &fx,
            who,
            &["--hostname", "sifr-node"],
            img,
            &["cat", "/etc/hostname"],
        );
        assert_eq!(stdout(&o), "sifr-node\n", "{}", stderr(&o));
        assert_eq!(host_name(), before);
    }
    assert_nothing_left(&fx);
}

#[test]
fn writable_tmpfs_lets_the_command_write_anywhere_and_forgets_it() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = probe(&fx, who, &[], img, &["write", "/newfile"]);
        assert_eq!(stdout(&o).trim(), "error=EROFS", "{}", stderr(&o));
        let o = probe(&fx, who, &["--writable-tmpfs"], img, &["write", "/newfile"]);
        assert_eq!(stdout(&o).trim(), "ok", "{}", stderr(&o));
        let o = probe(
            &fx,
            who,
            &["--writable-tmpfs"],
            img,
            &["write", "/bin/newfile"],
        );
        // The image's /bin belongs to root: the user's own permissions still apply.
        let want = if who == As::Root {
            "ok"
        } else {
            "error=EACCES"
        };
        assert_eq!(stdout(&o).trim(), want, "{}", stderr(&o));
        let o = probe(&fx, who, &[], img, &["exists", "/newfile"]);
        assert_eq!(stdout(&o), "/newfile no\n");
    }
    assert!(!fx.image.join("newfile").exists());
    assert!(!fx.image.join("bin/newfile").exists());
    assert_nothing_left(&fx);
}

#[test]
fn root_is_a_plain_bind_unless_mount_points_are_missing_or_writes_are_wanted() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    // A copy of the image that already has every mount point of a default launch (home and
    // cwd left out with --no-mount).
    let full = fx.copy_image("full");
    for d in ["proc", "sys", "dev", "tmp", "var/tmp"] {
        std::fs::create_dir_all(full.join(d)).unwrap();
    }
    for f in [
        "etc/hosts",
        "etc/resolv.conf",
        "etc/localtime",
        "etc/passwd",
        "etc/group",
    ] {
        std::fs::write(full.join(f), "").unwrap();
    }
    let full_s = full.to_str().unwrap();
    let mountinfo = |who: As, flags: &[&str], image: &str| {
        let mut args = vec!["exec", "--no-mount", "home,cwd"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[image, "/bin/probe", "cat", "/proc/self/mountinfo"]);
        let o = run(&fx, who, &args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let info = stdout(&o);
        let (fstype, opts) = sifr_testkit::root_mount(&info);
        let opts: Vec<String> = opts.into_iter().map(String::from).collect();
        (fstype.to_string(), opts)
    };
    for who in identities() {
        let (fstype, opts) = mountinfo(who, &[], full_s);
        assert_ne!(fstype, "overlay", "{who:?}: nothing was missing");
        assert!(opts.iter().any(|o| o == "ro"), "{who:?}: {opts:?}");
        // /proc, /dev, ... are missing from the test image: a read-only overlay provides them.
        let (fstype, opts) = mountinfo(who, &[], img);
        assert_eq!(fstype, "overlay", "{who:?}");
        assert!(opts.iter().any(|o| o == "ro"), "{who:?}: {opts:?}");
        let (fstype, opts) = mountinfo(who, &["--writable-tmpfs"], full_s);
        assert_eq!(fstype, "overlay", "{who:?}");
        assert!(opts.iter().any(|o| o == "rw"), "{who:?}: {opts:?}");
    }
    assert_nothing_left(&fx);
}

#[test]
fn tmpfs_size_setting_bounds_what_writable_tmpfs_can_hold() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let script = "dd if=/dev/zero of=/big bs=1M count=3 2>/dev/null && echo fits || echo full";
    for who in identities() {
        for (size, want) in [("2", "full\n"), ("8", "fits\n")] {
            let mut c = sifr_as(
                &fx,
                who,
                &["exec", "--writable-tmpfs", img, "/bin/sh", "-c", script],
            );
            c.env("SIFR_TMPFS_SIZE", size);
            let o = c.output().unwrap();
            assert_eq!(stdout(&o), want, "size {size}: {}", stderr(&o));
        }
    }
}

#[test]
fn no_mount_leaves_out_home_tmp_and_cwd() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let home = if who == As::Root {
            "/root".to_string()
        } else {
            format!("/home/{}", sifr_testkit::TEST_USER)
        };
        let work = fx.work.to_str().unwrap();
        let o = probe(&fx, who, &[], img, &["exists", &home, "/tmp", work]);
        assert_eq!(
            stdout(&o),
            format!("{home} yes\n/tmp yes\n{work} yes\n"),
            "{}",
            stderr(&o)
        );
        let o = probe(
            &fx,
            who,
            &["--no-mount", "home,tmp", "--no-mount", "cwd"],
            img,
            &["exists", &home, "/tmp", work],
        );
        assert_eq!(
            stdout(&o),
            format!("{home} no\n/tmp no\n{work} no\n"),
            "{}",
            stderr(&o)
        );
    }
    let o = run(&fx, As::Root, &["exec", "--no-mount", "hme", img, "true"]);
    o.assert_code(i32::from(sifr_cli::exit::FAILURE))
        .assert_stderr_contains("FATAL:   invalid `--no-mount` value `hme`");
}

#[test]
fn mount_flag_binds_docker_style_and_read_only() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let spec = format!(
        "type=bind,source={},destination=/in,readonly",
        fx.data.display()
    );
    for who in identities() {
        let o = probe(&fx, who, &["--mount", &spec], img, &["cat", "/in/hello"]);
        assert_eq!(stdout(&o), "hello from the host\n", "{}", stderr(&o));
        let o = probe(&fx, who, &["--mount", &spec], img, &["write", "/in/x"]);
        assert_eq!(stdout(&o).trim(), "error=EROFS");
    }
    let o = run(
        &fx,
        As::Root,
        &["exec", "--mount", "type=volume,src=/a,dst=/b", img, "true"],
    );
    assert!(
        stderr(&o).contains("invalid mount `type=volume,src=/a,dst=/b`: unsupported type"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn env_file_beats_image_and_apptainerenv_and_loses_to_env() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let file = fx.dir.path().join("job.env");
    std::fs::write(
        &file,
        "# comment\nIMG_VAR=from-file\nFOO=from-file\nBAR=from-file\nexport BAZ=\"$HOST_ONLY-x\"\n",
    )
    .unwrap();
    let bad = fx.dir.path().join("bad.env");
    std::fs::write(&bad, "A=1\nB=$(hostname)\n").unwrap();
    for who in identities() {
        let mut c = sifr_as(
            &fx,
            who,
            &[
                "exec",
                "--env-file",
                file.to_str().unwrap(),
                "--env",
                "BAR=from-flag",
                img,
                "/bin/probe",
                "env",
            ],
        );
        c.env("APPTAINERENV_FOO", "from-apptainerenv")
            .env("HOST_ONLY", "host");
        let o = c.output().unwrap();
        let out = stdout(&o);
        for want in [
            "IMG_VAR=from-file",
            "FOO=from-file",
            "BAR=from-flag",
            "BAZ=host-x",
            // The image's %environment still applies to what the file does not set.
            "IMG_PATHVAR=/opt/img",
        ] {
            assert!(out.lines().any(|l| l == want), "no `{want}` in:\n{out}");
        }
        let o = run(
            &fx,
            who,
            &["exec", "--env-file", bad.to_str().unwrap(), img, "true"],
        );
        assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
        assert!(
            stderr(&o).contains(&format!("invalid environment file `{}:2`", bad.display())),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn containall_drops_the_host_env_and_gives_an_empty_tmp_and_own_pids() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        for args in [
            vec!["/bin/probe", "env"],
            vec!["/bin/probe", "ls", "/tmp"],
            vec!["/bin/probe", "pid"],
            vec!["/bin/probe", "ns", "ipc"],
        ] {
            let mut full = vec!["exec", "--containall", img];
            full.extend(&args);
            let mut c = sifr_as(&fx, who, &full);
            c.env("HOST_ONLY", "x");
            let o = c.output().unwrap();
            let out = stdout(&o);
            match args[1] {
                "env" => {
                    assert!(!out.contains("HOST_ONLY"), "{out}");
                    assert!(out.lines().any(|l| l == "LANG=C"), "{out}");
                }
                "ls" => assert_eq!(out, "", "/tmp is empty"),
                "pid" => assert_eq!(out, "pid=2 ppid=1\n"),
                _ => assert_ne!(out.trim(), host_ns("ipc")),
            }
        }
    }
    assert_nothing_left(&fx);
}

#[test]
fn workdir_keeps_contained_tmp_and_home_on_the_host() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let wd = fx.dir.path().join(format!("wd-{}", who.uid()));
        std::fs::create_dir(&wd).unwrap();
        Command::new("chmod").arg("777").arg(&wd).status().unwrap();
        for target in ["/tmp/t", "/var/tmp/v"] {
            let o = probe(
                &fx,
                who,
                &["--contain", "--workdir", wd.to_str().unwrap()],
                img,
                &["write", target],
            );
            assert_eq!(stdout(&o).trim(), "ok", "{}", stderr(&o));
        }
        assert!(wd.join("tmp/t").is_file());
        assert!(wd.join("var_tmp/v").is_file());
        assert!(wd.join("home").is_dir());
    }
    assert_nothing_left(&fx);
}

#[test]
fn overlay_dir_keeps_changes_between_runs_outside_the_image() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let ov = fx.dir.path().join(format!("overlay-{}", who.uid()));
        std::fs::create_dir(&ov).unwrap();
        Command::new("chmod").arg("777").arg(&ov).status().unwrap();
        let ov_s = ov.to_str().unwrap();
        let o = probe(&fx, who, &["--overlay", ov_s], img, &["write", "/kept"]);
        assert_eq!(stdout(&o).trim(), "ok", "{}", stderr(&o));
        let o = probe(&fx, who, &["--overlay", ov_s], img, &["cat", "/kept"]);
        assert_eq!(stdout(&o), "written\n", "{}", stderr(&o));
        assert!(ov.join("upper/kept").is_file());
        // The mount points sifr creates never land in the user's overlay.
        assert!(!ov.join("upper/proc").exists());
    }
    assert!(!fx.image.join("kept").exists());
    assert_nothing_left(&fx);
}
