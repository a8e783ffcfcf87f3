//! `sifr exec|run|shell|test` end to end: the real binary, a sandbox made at test time around a
//! static probe, run as root and as the unprivileged test user (created with `useradd -m` when
//! the tests run as root). Deeper runtime checks live in `crates/launch/tests/namespaces.rs`.
// A skipped identity is reported on stdout, as libtest shows it with the test.
#![allow(clippy::print_stdout)]

#[path = "../../launch/tests/support/mod.rs"]
mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};

use support::{As, Fixture, stderr, stdout};

fn sifr_as(fx: &Fixture, who: As, args: &[&str]) -> Command {
    support::sifr_command(
        std::path::Path::new(env!("CARGO_BIN_EXE_sifr")),
        fx,
        who,
        args,
    )
}

fn run(fx: &Fixture, who: As, args: &[&str]) -> Output {
    sifr_as(fx, who, args).output().unwrap()
}

/// Root and the test user, minus the unprivileged one where user namespaces are really off.
fn identities() -> Vec<As> {
    support::identities()
        .into_iter()
        .filter(|w| match (w, support::userns_available()) {
            (As::User { .. }, Err(why)) => {
                println!("skipping uid {}: {why}", w.uid());
                false
            }
            _ => true,
        })
        .collect()
}

#[test]
fn exec_keeps_the_callers_uid_and_passes_the_exit_status() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let o = run(&fx, who, &["exec", img, "/bin/probe", "id"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let (u, g) = (who.uid(), who.gid());
        assert_eq!(
            stdout(&o).trim(),
            format!("uid={u} gid={g} euid={u} egid={g}")
        );
        let o = run(&fx, who, &["exec", img, "probe", "exit", "42"]);
        assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    }
    assert!(support::host_mounts_mentioning(fx.dir.path()).is_empty());
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
        let o = run(
            &fx,
            who,
            &[
                "exec",
                "--bind",
                &flag,
                img,
                "/bin/probe",
                "write",
                "/from-flag/x",
            ],
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
    assert_eq!(o.status.code(), Some(127));
    assert!(
        stderr(&o).contains("cannot execute `no-such-cmd`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn files_that_are_neither_sif_nor_squashfs_are_refused_naming_the_file() {
    let fx = Fixture::new();
    let sif = fx.dir.path().join("lolcow.sif");
    std::fs::write(&sif, b"#!/usr/bin/env run-singularity\nSIF_MAGIC").unwrap();
    let o = run(&fx, As::Root, &["exec", sif.to_str().unwrap(), "true"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "image `{}` is not a sandbox directory, a SIF file or a squashfs image",
            sif.display()
        )),
        "{err}"
    );
}

#[test]
fn sigterm_to_sifr_reaches_the_command() {
    let fx = Fixture::new();
    let img = fx.image.to_str().unwrap();
    for who in identities() {
        let mut child = sifr_as(&fx, who, &["exec", img, "/bin/probe", "wait-signal"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(lines.next().unwrap().unwrap(), "got signal 15");
        assert_eq!(child.wait().unwrap().code(), Some(115));
    }
}
