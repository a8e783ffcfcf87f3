//! The action flags' environment twins end to end (`APPTAINER_PID=1 sifr exec ...` acts as
//! `--pid`): the real binary on a sandbox made at test time around the static probe, as root
//! and as the unprivileged test user. The harness strips the caller's own `APPTAINER*`,
//! `SINGULARITY*` and `SIFR_*` variables, so each test sets exactly the ones it is about.

use sifr_testkit::{As, Fixture, TestOutput, runnable_identities as identities, stderr, stdout};

/// `sifr ARGS` as `who` with the variables `vars` set.
fn run_with(fx: &Fixture, who: As, vars: &[(&str, &str)], args: &[&str]) -> TestOutput {
    fx.command(env!("CARGO_BIN_EXE_sifr"), who)
        .args(args)
        .envs(vars.iter().copied())
        .output()
}

#[test]
fn pid_variables_of_either_prefix_start_the_init_as_pid_does() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let pid = ["exec", img, "/bin/probe", "pid"];
    for who in identities() {
        for var in [
            "APPTAINER_PID",
            "SINGULARITY_PID",
            "SIFR_PID",
            "APPTAINER_UNSHARE_PID",
        ] {
            let o = run_with(&fx, who, &[(var, "1")], &pid);
            assert_eq!(stdout(&o), "pid=2 ppid=1\n", "{var}: {}", stderr(&o));
        }
        // APPTAINER_ wins over a contradicting legacy variable, and says so.
        let o = run_with(
            &fx,
            who,
            &[("APPTAINER_PID", "0"), ("SINGULARITY_PID", "1")],
            &pid,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_ne!(stdout(&o), "pid=2 ppid=1\n");
        assert!(
            stderr(&o)
                .contains("`SINGULARITY_PID` and `APPTAINER_PID` differ: using `APPTAINER_PID`"),
            "{}",
            stderr(&o)
        );
    }
    let o = run_with(&fx, As::Root, &[("APPTAINER_PID", "maybe")], &pid);
    o.assert_code(i32::from(sifr_cli::exit::FAILURE))
        .assert_stderr_contains(
            "FATAL:   invalid value `maybe` for `--pid` (from environment variable `APPTAINER_PID`): expected a boolean"
        );
    // `instance start` refuses `--pid` for now, and so its variable.
    let o = run_with(
        &fx,
        As::Root,
        &[("APPTAINER_PID", "1")],
        &["instance", "start", img, "twin-pid"],
    );
    o.assert_code(i32::from(sifr_cli::exit::FAILURE))
        .assert_stderr_contains("`--pid` (and `--containall`, which implies it) is not supported");
    let left = sifr_testkit::settled(|| sifr_testkit::processes_mentioning(fx.dir.path()));
    assert!(left.is_empty(), "processes left: {left:?}");
}

#[test]
fn containall_variable_drops_the_host_env_and_empties_tmp() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let vars = [("APPTAINER_CONTAINALL", "true"), ("HOST_ONLY", "x")];
        let o = run_with(&fx, who, &vars, &["exec", img, "/bin/probe", "env"]);
        let out = stdout(&o);
        assert!(out.lines().any(|l| l == "LANG=C"), "{out}{}", stderr(&o));
        assert!(!out.contains("HOST_ONLY"), "{out}");
        let o = run_with(&fx, who, &vars, &["exec", img, "/bin/probe", "ls", "/tmp"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "", "/tmp is empty");
        let o = run_with(&fx, who, &vars, &["exec", img, "/bin/probe", "pid"]);
        assert_eq!(stdout(&o), "pid=2 ppid=1\n", "{}", stderr(&o));
    }
}

#[test]
fn hostname_variable_names_the_container_and_the_flag_or_sifr_variable_beats_it() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let uname = ["exec", img, "/bin/probe", "uname"];
    for who in identities() {
        let o = run_with(&fx, who, &[("APPTAINER_HOSTNAME", "from-env")], &uname);
        assert_eq!(stdout(&o), "from-env\n", "{}", stderr(&o));
        let o = run_with(
            &fx,
            who,
            &[("APPTAINER_HOSTNAME", "from-env")],
            &[
                "exec",
                "--hostname",
                "from-flag",
                img,
                "/bin/probe",
                "uname",
            ],
        );
        assert_eq!(stdout(&o), "from-flag\n", "{}", stderr(&o));
        let o = run_with(
            &fx,
            who,
            &[
                ("APPTAINER_HOSTNAME", "from-env"),
                ("SIFR_HOSTNAME", "from-sifr"),
            ],
            &uname,
        );
        assert_eq!(stdout(&o), "from-sifr\n", "{}", stderr(&o));
    }
}

#[test]
fn mount_variable_adds_one_bind_a_line_to_the_flags() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let data = fx.data.display();
    let flag = format!("type=bind,source={data},destination=/m0");
    let var = format!("type=bind,src={data},dst=/m1\ntype=bind,src={data},dst=/m2,ro\n");
    for who in identities() {
        let o = run_with(
            &fx,
            who,
            &[("APPTAINER_MOUNT", &var)],
            &[
                "exec",
                "--mount",
                &flag,
                img,
                "/bin/probe",
                "cat",
                "/m0/hello",
                "/m1/hello",
                "/m2/hello",
            ],
        );
        assert_eq!(
            stdout(&o),
            "hello from the host\n".repeat(3),
            "{}",
            stderr(&o)
        );
        let o = run_with(
            &fx,
            who,
            &[("SINGULARITY_MOUNT", &var)],
            &["exec", img, "/bin/probe", "write", "/m2/x"],
        );
        assert_eq!(stdout(&o).trim(), "error=EROFS", "{}", stderr(&o));
    }
    let o = run_with(
        &fx,
        As::Root,
        &[("APPTAINER_MOUNT", "type=volume,src=/a,dst=/b")],
        &["exec", img, "true"],
    );
    assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
    let err = stderr(&o);
    assert!(
        err.contains("FATAL:   in environment variable `APPTAINER_MOUNT`")
            && err.contains("invalid mount `type=volume,src=/a,dst=/b`"),
        "{err}"
    );
    assert!(sifr_testkit::host_mounts_mentioning(fx.dir.path()).is_empty());
}

#[test]
fn env_file_writable_tmpfs_and_no_mount_variables_act_as_their_flags() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let file = fx.dir.path().join("job.env");
    std::fs::write(&file, "FOO=from-env-file\n").unwrap();
    let other = fx.dir.path().join("other.env");
    std::fs::write(&other, "FOO=from-flag-file\n").unwrap();
    let file_var = [("APPTAINER_ENV_FILE", file.to_str().unwrap())];
    for who in identities() {
        let o = run_with(&fx, who, &file_var, &["exec", img, "/bin/probe", "env"]);
        assert!(
            stdout(&o).lines().any(|l| l == "FOO=from-env-file"),
            "{}{}",
            stdout(&o),
            stderr(&o)
        );
        let o = run_with(
            &fx,
            who,
            &file_var,
            &[
                "exec",
                "--env-file",
                other.to_str().unwrap(),
                img,
                "/bin/probe",
                "env",
            ],
        );
        assert!(
            stdout(&o).lines().any(|l| l == "FOO=from-flag-file"),
            "{}",
            stdout(&o)
        );

        let o = run_with(
            &fx,
            who,
            &[("APPTAINER_WRITABLE_TMPFS", "1")],
            &["exec", img, "/bin/probe", "write", "/newfile"],
        );
        assert_eq!(stdout(&o).trim(), "ok", "{}", stderr(&o));

        let o = run_with(
            &fx,
            who,
            &[("APPTAINER_NO_MOUNT", "tmp, cwd")],
            &[
                "exec",
                img,
                "/bin/probe",
                "exists",
                "/tmp",
                fx.work.to_str().unwrap(),
            ],
        );
        assert_eq!(
            stdout(&o),
            format!("/tmp no\n{} no\n", fx.work.display()),
            "{}",
            stderr(&o)
        );
    }
    assert!(!fx.image.join("newfile").exists());
    let o = run_with(
        &fx,
        As::Root,
        &[("APPTAINER_NO_MOUNT", "hme")],
        &["exec", img, "true"],
    );
    o.assert_code(i32::from(sifr_cli::exit::FAILURE))
        .assert_stderr_contains("FATAL:   in environment variable `APPTAINER_NO_MOUNT`");
}
