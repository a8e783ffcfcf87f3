//! The mutation suite (issue 24, deliverable 3): corrupted SIF images, SquashFS images (with
//! directory cycles and self-referencing tables), definition files, OCI layouts and archives,
//! overlay images and signed SIFs, fed to the commands that read them, as root and as the test
//! user. Each run must end with an exit status (no panic, no signal, no hang past a deadline):
//! 0, and then it really worked (the probe answered, the output exists), or sifr's failure
//! status with an `error:` report that names the input; and it must leave nothing behind
//! (mounts, loop devices, processes such as holders and FUSE servers, files in its private
//! `TMPDIR` or output directory), nor change its input.
//!
//! Bounded: a fixed seed and a fixed number of cases per input kind, each case running a few
//! of its kind's commands (a window that moves with the case number, so all are used).
//! `SIFR_MUTATION_SEED`, `SIFR_MUTATION_COUNT` (cases per kind), `SIFR_MUTATION_CASE` (that
//! case alone) and `SIFR_MUTATION_JOBS` (cases run at once, 2 by default) change that; every
//! failure prints the seed and case number that replay it.
#![allow(clippy::print_stdout)]

#[path = "mutation/harness.rs"]
mod harness;
#[path = "images/mod.rs"]
mod images;
#[path = "mutation/sif.rs"]
mod sif;
#[path = "mutation/sources.rs"]
mod sources;
#[path = "mutation/squashfs.rs"]
mod squashfs;

use std::path::{Path, PathBuf};

use harness::{Cmd, Expect, Input, Suite};

const fn cmd(args: &'static [&'static str], expect: Expect) -> Cmd {
    Cmd { args, expect }
}

/// The probe's `id` answer, and the runscript's (a copy of the probe) echo of its arguments.
const ID: Expect = Expect::Stdout("uid=");
const RUNSCRIPT: Expect = Expect::Stdout("runscript: x");

/// Every command that reads a SIF image.
const SIF_COMMANDS: &[Cmd] = &[
    cmd(&["exec", "{in}", "/bin/probe", "id"], ID),
    cmd(&["inspect", "{in}"], Expect::Ran),
    cmd(&["sif", "list", "{in}"], Expect::Ran),
    cmd(&["run", "{in}", "x"], RUNSCRIPT),
    cmd(&["inspect", "--deffile", "{in}"], Expect::Ran),
    cmd(&["sif", "header", "{in}"], Expect::Ran),
    cmd(&["build", "{out}", "{in}"], Expect::Created),
    cmd(&["inspect", "--all", "{in}"], Expect::Ran),
    cmd(&["sif", "info", "1", "{in}"], Expect::Ran),
    cmd(&["run-help", "{in}"], Expect::Ran),
    cmd(&["inspect", "--isa", "{in}"], Expect::Ran),
    cmd(&["sif", "dump", "1", "{in}"], Expect::Ran),
    cmd(&["build", "--sandbox", "{out}", "{in}"], Expect::Created),
    cmd(&["test", "{in}"], Expect::Ran),
];

/// Every command that reads the SquashFS root filesystem (in a SIF or bare).
const SQUASHFS_COMMANDS: &[Cmd] = &[
    cmd(&["exec", "{in}", "/bin/probe", "id"], ID),
    cmd(&["build", "--sandbox", "{out}", "{in}"], Expect::Created),
    cmd(&["inspect", "--runscript", "{in}"], Expect::Ran),
    cmd(&["run", "{in}", "x"], RUNSCRIPT),
    cmd(&["inspect", "--isa", "--rescan", "{in}"], Expect::Ran),
    cmd(&["build", "{out}", "{in}"], Expect::Created),
    cmd(&["inspect", "--all", "{in}"], Expect::Ran),
];

/// Every command that reads a signed SIF (sifr has no `verify`: see docs/architecture.md).
const SIGNED_COMMANDS: &[Cmd] = &[
    cmd(&["sif", "list", "{in}"], Expect::Ran),
    cmd(&["sif", "info", "1", "{in}"], Expect::Ran),
    cmd(&["inspect", "--all", "{in}"], Expect::Ran),
    cmd(&["sif", "header", "{in}"], Expect::Ran),
    cmd(&["exec", "{in}", "true"], Expect::Ran),
    cmd(&["sif", "dump", "2", "{in}"], Expect::Ran),
];

/// The fixture sandbox plus `loop/child/f` for the directory cycles, built into the suite's
/// valid SIF (`{good}`) by sifr itself, so it has every object a build writes. Without
/// busybox: the static probe answers every command here, and an image a third the size halves
/// the suite's time.
fn good_image(suite: &Suite) -> sifr_testkit::Fixture {
    let fx = sifr_testkit::Fixture::new();
    for p in ["bin/sh", "bin/busybox"] {
        let _ = std::fs::remove_file(fx.image.join(p));
    }
    std::fs::create_dir_all(fx.image.join("loop/child")).unwrap();
    std::fs::write(fx.image.join("loop/child/f"), "f\n").unwrap();
    let o = sifr_testkit::TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
        .without_caller_settings()
        .env("TMPDIR", suite.dir.path())
        .arg("build")
        .arg(&suite.good)
        .arg(&fx.image)
        .output();
    o.assert_success();
    harness::share_tree(suite.dir.path());
    fx
}

/// `name` in `dir` holding `bytes`.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn corrupted_sif_images_fail_cleanly_in_every_command() {
    let suite = Suite::new("sif", 36);
    let _fx = good_image(&suite);
    let base = std::fs::read(&suite.good).unwrap();
    suite.run(SIF_COMMANDS, 3, |rng, dir| {
        let mut b = base.clone();
        let mut what = vec![sif::mutate(rng, &mut b)];
        if rng.chance(25) {
            what.push(sif::mutate(rng, &mut b));
        }
        Input {
            path: write(dir, "image.sif", &b),
            what: what.join(", then "),
        }
    });
}

#[test]
fn corrupted_squashfs_images_with_cycles_and_self_references_fail_cleanly() {
    let suite = Suite::new("squashfs", 36);
    let fx = good_image(&suite);
    let base = squashfs::Base::new(&fx.image, suite.dir.path());
    suite.run(SQUASHFS_COMMANDS, 3, |rng, dir| {
        let (bytes, what) = squashfs::mutate(rng, &base);
        if rng.chance(50) {
            return Input {
                path: write(dir, "image.sqfs", &bytes),
                what,
            };
        }
        let raw = write(dir, "raw.sqfs", &bytes);
        let path = dir.join("image.sif");
        images::write_sif(&path, Some((&raw, sifr_sif::Arch::host())));
        std::fs::remove_file(raw).unwrap();
        Input {
            path,
            what: format!("{what}, in a SIF"),
        }
    });
}

/// Upstream's signed images (sylabs/sif's test images, PGP and DSSE signatures) with their
/// signatures or the data they sign damaged. Absent fixtures skip the test, saying so, except
/// under CI, where they are required.
#[test]
fn signed_sif_images_with_damaged_signatures_fail_cleanly() {
    let Some(fixtures) = sources::shared_fixture("sif/images") else {
        return;
    };
    let signed: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("-signed-"))
        .collect();
    assert!(
        !signed.is_empty(),
        "no signed images in {}",
        fixtures.display()
    );
    let mut signed = signed;
    signed.sort();
    let suite = Suite::new("signed", 24);
    suite.run(SIGNED_COMMANDS, 3, |rng, dir| {
        let src = rng.pick(&signed);
        let mut b = std::fs::read(src).unwrap();
        let what = sif::mutate_signed(rng, &mut b);
        let name = src.file_name().unwrap().to_str().unwrap();
        Input {
            path: write(dir, name, &b),
            what,
        }
    });
}

/// A build that fails on what its definition file says names that file: `%files at line 4`
/// alone did not say which file's line 4 (found by the suite: the error named only the
/// target).
#[test]
fn a_failing_build_names_its_definition_file() {
    let suite = Suite::new("named", 0);
    let _fx = good_image(&suite);
    for (name, body) in [
        (
            "files.def",
            format!(
                "Bootstrap: localimage\nFrom: {}\n\n%files\n    /no/such/file /opt/x\n",
                suite.good.display()
            ),
        ),
        (
            "from.def",
            "Bootstrap: localimage\nFrom: /no/such.sif\n".to_string(),
        ),
    ] {
        let def = write(suite.dir.path(), name, body.as_bytes());
        harness::share_tree(suite.dir.path());
        for who in sifr_testkit::runnable_identities() {
            let out = suite.dir.path().join(format!("out-{}.sif", who.uid()));
            let o = sifr_testkit::TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
                .as_user(who)
                .current_dir(suite.dir.path())
                .without_caller_settings()
                .env(
                    "TMPDIR",
                    suite.dir.path().join(format!("home-{}", who.uid())),
                )
                .args(["build".as_ref(), out.as_os_str(), def.as_os_str()])
                .output();
            o.assert_code(i32::from(sifr_cli::exit::FAILURE));
            o.assert_stderr_contains(&format!(
                "error: cannot build `{}` from `{}`",
                out.display(),
                def.display()
            ));
            assert!(!out.exists(), "{}", o.stderr_text());
        }
    }
}
