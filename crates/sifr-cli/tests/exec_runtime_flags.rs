//! The action flags that shape how a container runs, end to end as root and as the test user:
//! options stopping at the image, `--compat`, `--no-init`, `--no-pid`, `--no-umask`,
//! `--unsquash`, `--no-env`, `--no-eval`, `--containlibs`, `shell --shell`, and the refusals.
//! Expectations name the Apptainer e2e test they come from where there is one.

mod images;

use images::Images;
use sifr_testkit::{As, Fixture, TestOutput, runnable_identities as identities, stderr, stdout};

fn run(fx: &Fixture, who: As, args: &[&str]) -> TestOutput {
    fx.command(env!("CARGO_BIN_EXE_sifr"), who)
        .args(args)
        .output()
}

fn ok(o: &TestOutput) -> String {
    assert!(o.status.success(), "{}", stderr(o));
    stdout(o)
}

/// e2e/actions (actionRun "arguments after the image"): Apptainer stops parsing options at the
/// image, so the runscript gets `-c x --version -h` verbatim.
#[test]
fn everything_after_the_image_reaches_the_container() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = run(&fx, who, &["run", img, "-c", "x", "--version", "-h"]);
        assert_eq!(ok(&o), "runscript: -c x --version -h\n");
        let o = run(&fx, who, &["test", img, "--pid", "-B", "/x"]);
        assert_eq!(ok(&o), "test: --pid -B /x\n");
        let o = run(&fx, who, &["exec", img, "probe", "args", "--contain", "-e"]);
        assert_eq!(ok(&o), "--contain\n-e\n");
        // An unknown flag before the image is a usage error (Apptainer exits 1), not an image.
        let o = run(&fx, who, &["exec", "--no-such-flag", img, "true"]);
        assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::USAGE)));
        assert!(stderr(&o).contains("--no-such-flag"), "{}", stderr(&o));
    }
}

/// e2e/actions (actionNoInit / PID namespace): with `--pid` the command is PID 2 under an init;
/// `--no-init` makes it PID 1. `--no-pid` undoes `--containall`'s PID namespace.
#[test]
fn no_init_makes_the_command_pid_1_and_no_pid_undoes_containall() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = run(&fx, who, &["exec", "--pid", img, "probe", "pid"]);
        assert_eq!(ok(&o), "pid=2 ppid=1\n");
        let o = run(
            &fx,
            who,
            &["exec", "--pid", "--no-init", img, "probe", "pid"],
        );
        assert_eq!(ok(&o), "pid=1 ppid=0\n");
        let o = run(
            &fx,
            who,
            &["exec", "--containall", "--no-pid", img, "probe", "pid"],
        );
        let line = ok(&o);
        assert!(
            !line.starts_with("pid=1 ") && !line.starts_with("pid=2 "),
            "{line}"
        );
        // The variable twin works the same way.
        let o = fx
            .command(env!("CARGO_BIN_EXE_sifr"), who)
            .env("APPTAINER_NOSHIMINIT", "1")
            .args(["exec", "--pid", img, "probe", "pid"])
            .output();
        assert_eq!(ok(&o), "pid=1 ppid=0\n");
    }
}

/// e2e/actions (actionUmask): the caller's umask reaches the command; `--no-umask` gives 0022.
#[test]
fn the_umask_is_the_callers_unless_no_umask() {
    let fx = Fixture::new();
    if !fx.has_shell {
        sifr_testkit::skip(
            "no busybox for a shell in the test image (apt-get install busybox-static)",
        );
        return;
    }
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        // The inner umask shows what a command started with: set to 0077 by the outer shell,
        // inherited, so this checks the harness itself first.
        let args = [
            "exec",
            img,
            "/bin/sh",
            "-c",
            "umask 0077; exec /bin/sh -c umask",
        ];
        assert_eq!(ok(&run(&fx, who, &args)).trim(), "0077");
        let args = ["exec", "--no-umask", img, "/bin/sh", "-c", "umask"];
        assert_eq!(ok(&run(&fx, who, &args)).trim(), "0022");
    }
}

/// `--compat` is --containall --no-init --no-umask --no-eval --writable-tmpfs (Apptainer's
/// `actionPreRun`): PID 1, a writable root that vanishes, a contained home.
#[test]
fn compat_stands_for_its_five_flags() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = run(&fx, who, &["exec", "--compat", img, "probe", "pid"]);
        assert_eq!(ok(&o), "pid=1 ppid=0\n");
        let o = run(
            &fx,
            who,
            &["exec", "--compat", img, "probe", "write", "/new-file"],
        );
        assert_eq!(ok(&o), "ok\n");
        assert!(!fx.image.join("new-file").exists());
    }
}

/// `--no-env` keeps named host variables out; `--no-eval` takes `--env` values literally
/// (e2e/env "noeval": `$HOME` stays `$HOME`).
#[test]
fn no_env_blocks_host_variables_and_no_eval_keeps_values_literal() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let env_of = |flags: &[&str]| {
            let mut c = fx
                .command(env!("CARGO_BIN_EXE_sifr"), who)
                .env("XTEST_KEEP", "kept")
                .env("XTEST_DROP", "dropped")
                .arg("exec");
            c = c.args(flags);
            ok(&c.args([img, "probe", "env"]).output())
        };
        let all = env_of(&[]);
        assert!(all.contains("XTEST_DROP=dropped") && all.contains("XTEST_KEEP=kept"));
        let some = env_of(&["--no-env", "XTEST_DROP,OTHER"]);
        assert!(!some.contains("XTEST_DROP") && some.contains("XTEST_KEEP=kept"));
        // `IMG_VAR` is set by the image's environment script.
        let evaluated = env_of(&["--env", "V=$IMG_VAR"]);
        assert!(evaluated.contains("\nV=image\n"), "{evaluated}");
        let literal = env_of(&["--no-eval", "--env", "V=$IMG_VAR"]);
        assert!(literal.contains("\nV=$IMG_VAR\n"), "{literal}");
    }
}

/// `--containlibs` binds host files into /.singularity.d/libs, read-only.
#[test]
fn containlibs_binds_host_libraries() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    let lib = fx.data.join("libsifrtest.so.1");
    std::fs::write(&lib, "not really a library\n").unwrap();
    for who in identities() {
        let o = run(
            &fx,
            who,
            &[
                "exec",
                "--containlibs",
                lib.to_str().unwrap(),
                img,
                "probe",
                "cat",
                "/.singularity.d/libs/libsifrtest.so.1",
            ],
        );
        assert_eq!(ok(&o), "not really a library\n");
    }
}

/// `shell --shell PROGRAM` (and `APPTAINER_SHELL`) runs that program, which sees
/// `APPTAINER_SHELL` set, as Apptainer's action script does; extra operands are ignored with a
/// warning.
#[test]
fn shell_runs_the_shell_asked_for() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = run(&fx, who, &["shell", "--shell", "/bin/probe", img]);
        // probe without a command prints its usage error: it ran.
        assert!(stderr(&o).contains("probe"), "{}", stderr(&o));
        let o = fx
            .command(env!("CARGO_BIN_EXE_sifr"), who)
            .env("APPTAINER_SHELL", "/.singularity.d/runscript")
            .args(["shell", img, "ignored"])
            .output();
        assert_eq!(ok(&o), "runscript:\n");
        assert!(stderr(&o).contains("Parameters to shell command are ignored"));
    }
}

/// `--unsquash` extracts a SIF instead of mounting it, without a notice, and leaves nothing.
#[test]
fn unsquash_extracts_instead_of_mounting() {
    let _serial = images::SERIAL.lock();
    let im = Images::new();
    let sif = im.sif.to_str().unwrap();
    for who in identities() {
        let o = run(
            &im.fx,
            who,
            &["-d", "exec", "--unsquash", sif, "probe", "id"],
        );
        ok(&o);
        let err = stderr(&o);
        assert!(err.contains("attach Extract"), "{err}");
        assert!(!err.contains("notice:"), "{err}");
    }
    images::assert_nothing_left(&im);
}

/// What sifr cannot do is refused before anything starts, exit 255 and a hint.
#[test]
fn unsupported_flags_are_refused_with_a_hint() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for args in [
        // An app name that is not one path component (an unknown app is the container's
        // status 1 instead, as in Apptainer: tests/apps.rs).
        &["exec", "--app", "../foo", img, "true"][..],
        &["exec", "--device", "nvidia.com/gpu=all", img, "true"],
        &["exec", "--runscript-timeout", "soon", img, "true"],
    ] {
        let o = run(&fx, As::Root, args);
        assert_eq!(o.status.code(), Some(i32::from(sifr_cli::exit::FAILURE)));
        assert!(stderr(&o).contains("hint:"), "{}", stderr(&o));
    }
}
