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
    // As root, `--userns` attaches through the FUSE server instead of a loop device.
    cmd(&["exec", "--userns", "{in}", "/bin/probe", "id"], ID),
    cmd(&["instance", "start", "{in}", "{name}"], Expect::Instance),
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
    // The FUSE server (as root; a user without `/dev/fuse` extracts) walking into a cycle.
    cmd(
        &[
            "exec",
            "--userns",
            "{in}",
            "/bin/probe",
            "ls",
            "/loop/child/child",
        ],
        Expect::Ran,
    ),
];

/// Every command that reads a signed SIF. `verify --local` has no key of the upstream signers
/// in the test's keyring, so it must fail cleanly even on an undamaged image.
const SIGNED_COMMANDS: &[Cmd] = &[
    cmd(&["verify", "--local", "{in}"], Expect::Refused),
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
    let suite = Suite::new("sif", 30);
    let _fx = good_image(&suite);
    let base = std::fs::read(&suite.good).unwrap();
    suite.run(SIF_COMMANDS, 3, true, |rng, dir, damage| {
        let mut b = base.clone();
        if !damage {
            return Input {
                path: write(dir, "image.sif", &b),
                what: "none".into(),
            };
        }
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
    let suite = Suite::new("squashfs", 30);
    let fx = good_image(&suite);
    let base = squashfs::Base::new(&fx.image, suite.dir.path());
    suite.run(SQUASHFS_COMMANDS, 3, true, |rng, dir, damage| {
        let (bytes, what) = if damage {
            squashfs::mutate(rng, &base)
        } else {
            (base.plain.clone(), "none".into())
        };
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
    let suite = Suite::new("signed", 20);
    // No baseline: upstream's images are for 386 and have no root filesystem to run.
    suite.run(SIGNED_COMMANDS, 3, false, |rng, dir, _| {
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

/// Every command that reads a definition file.
const DEFFILE_COMMANDS: &[Cmd] = &[
    cmd(&["build", "{out}", "{in}"], Expect::Created),
    cmd(&["deffile", "check", "{in}"], Expect::Ran),
    cmd(&["build", "--sandbox", "{out}", "{in}"], Expect::Created),
    cmd(&["deffile", "check", "--json", "{in}"], Expect::Ran),
];

#[test]
fn corrupted_definition_files_fail_cleanly_in_check_and_build() {
    let suite = Suite::new("deffile", 20);
    let _fx = good_image(&suite);
    let data = write(suite.dir.path(), "data.txt", b"data\n");
    harness::share_tree(suite.dir.path());
    let texts = [
        sources::deffile(&suite.good, &data, false),
        sources::deffile(&suite.good, &data, true),
    ];
    suite.run(DEFFILE_COMMANDS, 2, true, |rng, dir, damage| {
        let text = &texts[usize::from(rng.chance(30))];
        let (bytes, what) = if damage {
            sources::mutate_deffile(rng, text, &suite.good)
        } else {
            (text.clone().into_bytes(), "none".into())
        };
        Input {
            path: write(dir, "image.def", &bytes),
            what,
        }
    });
}

/// The fixture as a two-layer OCI image: the sandbox, then a layer with busybox as `/bin/sh`
/// (the runscript made from an OCI config is a shell script).
fn oci_base(fx: &sifr_testkit::Fixture) -> sources::OciBase {
    let top = fx.dir.path().join("top");
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(top.join("etc/top"), "top\n").unwrap();
    if fx.has_shell {
        std::fs::create_dir_all(top.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", top.join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", top.join("bin/sh")).unwrap();
    }
    sources::OciBase {
        layers: vec![sources::tar_of(&fx.image), sources::tar_of(&top)],
        arch: sifr_sif::Arch::host().go_name().into(),
    }
}

/// Every command that reads an OCI layout directory.
const OCI_LAYOUT_COMMANDS: &[Cmd] = &[
    cmd(&["build", "{out}", "oci:{in}"], Expect::Created),
    cmd(&["exec", "oci:{in}", "/bin/probe", "id"], ID),
    cmd(&["pull", "{out}", "oci:{in}:v1"], Expect::Created),
];

#[test]
fn corrupted_oci_layouts_fail_cleanly_in_build_pull_and_exec() {
    let suite = Suite::new("oci-layout", 14);
    let fx = good_image(&suite);
    let base = oci_base(&fx);
    suite.run(OCI_LAYOUT_COMMANDS, 2, true, |rng, dir, damage| {
        let (files, what) = sources::oci_layout(rng, &base, damage);
        let path = dir.join("layout");
        sources::write_layout(&path, &files);
        Input { path, what }
    });
}

/// Every command that reads an OCI archive.
const OCI_ARCHIVE_COMMANDS: &[Cmd] = &[
    cmd(&["build", "{out}", "oci-archive:{in}"], Expect::Created),
    cmd(&["run", "oci-archive:{in}"], ID),
    cmd(&["pull", "{out}", "oci-archive:{in}"], Expect::Created),
    cmd(&["exec", "oci-archive:{in}", "/bin/probe", "id"], ID),
];

#[test]
fn corrupted_oci_archives_fail_cleanly_in_build_pull_and_run() {
    let suite = Suite::new("oci-archive", 14);
    let fx = good_image(&suite);
    let base = oci_base(&fx);
    let commands: Vec<Cmd> = OCI_ARCHIVE_COMMANDS
        .iter()
        .filter(|c| fx.has_shell || c.args[0] != "run")
        .copied()
        .collect();
    if !fx.has_shell {
        sources::skip("`run oci-archive:`: no /bin/busybox to be the image's /bin/sh");
    }
    suite.run(&commands, 2, true, |rng, dir, damage| {
        let (path, what) = sources::oci_archive(rng, &base, dir, damage);
        Input { path, what }
    });
}

/// Every command that takes an overlay image file, read-only: a writable overlay is written by
/// design (the suite checks that the input is left unchanged); `tests/overlay.rs` has those.
const OVERLAY_COMMANDS: &[Cmd] = &[
    cmd(
        &["exec", "--overlay", "{in}:ro", "{good}", "/bin/probe", "id"],
        ID,
    ),
    cmd(&["run", "--overlay", "{in}:ro", "{good}", "x"], RUNSCRIPT),
];

#[test]
fn corrupted_overlay_images_fail_cleanly() {
    let suite = Suite::new("overlay", 8);
    let _fx = good_image(&suite);
    let Some(ext3) = sources::ext3_image(suite.dir.path()) else {
        return;
    };
    // No baseline: the undamaged image (a bare `mkfs.ext3`, without `upper/` and `work/`) is
    // root's; the cases check that damage fails cleanly, naming the file, or runs.
    suite.run(OVERLAY_COMMANDS, 2, false, |rng, dir, _| {
        let mut b = ext3.clone();
        let what = sources::mutate_ext3(rng, &mut b);
        Input {
            path: write(dir, "overlay.img", &b),
            what,
        }
    });
}

/// Every command that reads a SIF with an overlay partition.
const SIF_OVERLAY_COMMANDS: &[Cmd] = &[
    cmd(&["exec", "{in}", "/bin/probe", "id"], ID),
    cmd(&["sif", "list", "{in}"], Expect::Ran),
    // Not `--writable`: it writes the overlay partition by design (`tests/overlay.rs`).
    cmd(&["inspect", "--all", "{in}"], Expect::Ran),
    cmd(&["run", "{in}", "x"], RUNSCRIPT),
];

/// A SIF holding `sqfs` as its root filesystem and `ext3` as an overlay partition, as
/// `apptainer sif add --partfs 2 --parttype 4` (or `overlay create`) makes one.
fn write_sif_with_overlay(path: &Path, sqfs: &[u8], ext3: &[u8]) {
    use std::io::Write as _;
    let file = std::fs::File::create(path).unwrap();
    let mut c = sifr_sif::Creator::new(file, sifr_sif::CreateOptions::apptainer()).unwrap();
    for (bytes, fs, part) in [
        (sqfs, sifr_sif::FsType::Squash, sifr_sif::PartType::PrimSys),
        (ext3, sifr_sif::FsType::Ext3, sifr_sif::PartType::Overlay),
    ] {
        let meta = sifr_sif::PartitionMeta {
            fs,
            part,
            arch: sifr_sif::Arch::host(),
        };
        c.add_partition_with::<sifr_sif::Error>("", meta, |sink| {
            sink.write_all(bytes).map_err(sifr_sif::Error::Source)
        })
        .unwrap();
    }
    c.finish().unwrap();
}

#[test]
fn sif_images_with_corrupted_overlay_partitions_fail_cleanly() {
    let suite = Suite::new("sif-overlay", 8);
    let fx = good_image(&suite);
    let Some(ext3) = sources::ext3_image(suite.dir.path()) else {
        return;
    };
    let sqfs_path = suite.dir.path().join("root.sqfs");
    sifr_testkit::mksquashfs(&fx.image, &sqfs_path, &[]);
    let sqfs = std::fs::read(&sqfs_path).unwrap();
    suite.run(SIF_OVERLAY_COMMANDS, 2, true, |rng, dir, damage| {
        let mut b = ext3.clone();
        let what = if damage {
            sources::mutate_ext3(rng, &mut b)
        } else {
            "none".into()
        };
        let path = dir.join("image.sif");
        write_sif_with_overlay(&path, &sqfs, &b);
        Input {
            path,
            what: format!("overlay partition: {what}"),
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
            let tmp = suite.dir.path().join(format!("tmp-{}", who.uid()));
            harness::make_dir(&tmp, Some(who));
            let o = sifr_testkit::TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
                .as_user(who)
                .current_dir(suite.dir.path())
                .without_caller_settings()
                .env("TMPDIR", &tmp)
                .args(["build".as_ref(), out.as_os_str(), def.as_os_str()])
                .output();
            o.assert_code(i32::from(sifr_cli::exit::FAILURE));
            // Found before the build starts (`FILE:LINE: ...`), or by the build (`cannot
            // build OUT from FILE`): either way the report names the file.
            let err = o.stderr_text();
            let before = format!("FATAL:   {}:", def.display());
            let during = format!(
                "FATAL:   cannot build `{}` from `{}`",
                out.display(),
                def.display()
            );
            assert!(err.contains(&before) || err.contains(&during), "{err}");
            assert!(!out.exists(), "{}", o.stderr_text());
        }
    }
}

/// `kill -9` of a build while it copies a base sandbox (`Bootstrap: localimage` from a
/// directory) ends the copy too. `cp` runs in a process group of its own (so that the build's
/// handler can pass Ctrl-C on) and, orphaned, went on copying (found by the suite: a deadline's
/// kill of a build `From: /` left `cp` copying the host's root filesystem for minutes).
#[test]
fn a_killed_build_takes_its_base_copy_with_it() {
    let suite = Suite::new("killed-copy", 0);
    let d = suite.dir.path();
    let base = d.join("base");
    for i in 0..100 {
        let sub = base.join(format!("d{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        for j in 0..200 {
            std::fs::write(sub.join(format!("f{j}")), "").unwrap();
        }
    }
    let def = write(
        d,
        "image.def",
        format!("Bootstrap: localimage\nFrom: {}\n", base.display()).as_bytes(),
    );
    harness::share_tree(d);
    let copying = || {
        sifr_testkit::processes_mentioning(&base)
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"cp\0"))
            })
            .collect::<Vec<_>>()
    };
    for who in sifr_testkit::runnable_identities() {
        let work = d.join(format!("work-{}", who.uid()));
        harness::make_dir(&work, Some(who));
        let mut child = sifr_testkit::TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
            .as_user(who)
            .current_dir(&work)
            .without_caller_settings()
            .env("TMPDIR", &work)
            .args([
                "build".as_ref(),
                work.join("out.sif").as_os_str(),
                def.as_os_str(),
            ])
            .command()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while copying().is_empty() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the build ended before its copy of the base was seen"
            );
            assert!(
                started.elapsed().as_secs() < 30,
                "no copy of the base started"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let left = sifr_testkit::settled(copying);
        for pid in &left {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        assert!(
            left.is_empty(),
            "uid {}: `cp` outlived the killed build: {left:?}",
            who.uid()
        );
    }
}

/// An overlay file that is no image (neither ext3, SquashFS nor SIF) is refused naming it, with
/// Apptainer's words, not as "cannot create `FILE/upper`: Not a directory" (the suite's overlay
/// cases).
#[test]
fn an_overlay_file_of_unknown_format_is_refused_naming_it() {
    let suite = Suite::new("overlay-file", 0);
    let _fx = good_image(&suite);
    let img = write(suite.dir.path(), "overlay.img", &[0u8; 4096]);
    harness::share_tree(suite.dir.path());
    for who in sifr_testkit::runnable_identities() {
        let tmp = suite.dir.path().join(format!("tmp-{}", who.uid()));
        harness::make_dir(&tmp, Some(who));
        let o = sifr_testkit::TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
            .as_user(who)
            .current_dir(suite.dir.path())
            .without_caller_settings()
            .env("TMPDIR", &tmp)
            .args(["exec", "--overlay"])
            .args([img.as_os_str(), suite.good.as_os_str()])
            .args(["/bin/probe", "id"])
            .output();
        o.assert_code(i32::from(sifr_cli::exit::FAILURE));
        o.assert_stderr_contains(&format!(
            "`{}`: overlay image with unknown format",
            img.display()
        ));
        o.assert_stderr_contains("sifr overlay create");
    }
}
