//! `build` flags that run definition sections (host-state: containers start for `%post` and
//! `%test`), as root and as an ordinary user: `--update` with `--section` into an existing
//! sandbox, `--json` definitions, `--mksquashfs-args`, `--writable-tmpfs`, `--mount`, and
//! `--no-cleanup` after a failure. The base image is the shared probe sandbox.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use sifr_testkit::{As, Fixture, stderr, stdout};

fn sifr() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sifr"))
}

struct Case {
    fx: Fixture,
    tmp: PathBuf,
}

impl Case {
    fn new() -> Option<Case> {
        let fx = Fixture::new();
        if !fx.has_shell {
            sifr_testkit::skip(
                "busybox is needed in the base image (apt-get install busybox-static)",
            );
            return None;
        }
        let tmp = fx.dir.path().join("buildtmp");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        for tool in ["cat", "echo", "touch", "test", "mkdir"] {
            let _ = std::os::unix::fs::symlink("busybox", fx.image.join("bin").join(tool));
        }
        Some(Case { fx, tmp })
    }

    fn write(&self, name: &str, text: &str) {
        let p = self.fx.work.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn sifr(&self, who: As, args: &[&str]) -> Output {
        self.fx
            .command(sifr(), who)
            .args(args)
            .env("SIFR_TMPDIR", &self.tmp)
            .output()
            .output
    }

    fn tmp_entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

fn builders() -> Vec<As> {
    sifr_testkit::identities()
        .into_iter()
        .filter(|w| match w {
            As::Root => true,
            As::User { .. } => match sifr_testkit::userns_available() {
                Ok(()) => true,
                Err(why) => {
                    sifr_testkit::skip(format_args!("as user: {why}"));
                    false
                }
            },
        })
        .collect()
}

fn read(dir: &Path, p: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(p)).ok()
}

/// e2e/imgbuild buildUpdateSandbox: `--update --sandbox` builds into the existing sandbox;
/// with `--section`, only the named sections run (Bundle.RunSection).
#[test]
fn update_builds_into_the_sandbox_and_section_picks_what_runs() {
    let Some(c) = Case::new() else { return };
    c.write(
        "base.def",
        "Bootstrap: localimage\nFrom: ../image\n\n%post\n    echo base > /base-post\n\n%labels\n    First one\n\n%runscript\n    echo first\n",
    );
    c.write(
        "more.def",
        "Bootstrap: localimage\nFrom: /nonexistent-never-bootstrapped\n\n%post\n    echo more > /more-post\n\n%labels\n    Second two\n\n%environment\n    export MORE=yes\n\n%runscript\n    echo second\n",
    );
    for who in builders() {
        let sb = format!("sb-{}", who.uid());
        let dir = c.fx.work.join(&sb);
        ok(
            &c.sifr(who, &["build", "--sandbox", &sb, "base.def"]),
            "base",
        );
        // Only %labels and %environment: no %post, runscript kept, bootstrap skipped.
        let o = c.sifr(
            who,
            &[
                "build",
                "--sandbox",
                "--update",
                "--section",
                "labels,environment",
                &sb,
                "more.def",
            ],
        );
        ok(&o, "update with sections");
        assert_eq!(read(&dir, "base-post").as_deref(), Some("base\n"));
        assert!(read(&dir, "more-post").is_none(), "%post did not run");
        assert!(
            read(&dir, ".singularity.d/runscript")
                .unwrap()
                .contains("first")
        );
        let labels = read(&dir, ".singularity.d/labels.json").unwrap();
        assert!(
            labels.contains("\"First\"") && labels.contains("\"Second\""),
            "{labels}"
        );
        assert!(
            read(&dir, ".singularity.d/env/90-environment.sh")
                .unwrap()
                .contains("MORE=yes")
        );
        // The twins: every section this time.
        let o =
            c.fx.command(sifr(), who)
                .args(["build", &sb, "more.def"])
                .env("SIFR_TMPDIR", &c.tmp)
                .env("APPTAINER_SANDBOX", "1")
                .env("APPTAINER_UPDATE", "1")
                .output()
                .output;
        ok(&o, "update through the twins");
        assert_eq!(read(&dir, "more-post").as_deref(), Some("more\n"));
        assert!(
            read(&dir, ".singularity.d/runscript")
                .unwrap()
                .contains("second")
        );
        assert!(c.tmp_entries().is_empty(), "left {:?}", c.tmp_entries());
    }
}

/// `--json`: Apptainer's JSON form of a definition builds like the text.
#[test]
fn a_json_definition_builds() {
    let Some(c) = Case::new() else { return };
    c.write(
        "def.json",
        r#"{"header": {"bootstrap": "localimage", "from": "../image"},
            "imageData": {"labels": {"Made": "json"},
                          "imageScripts": {"runScript": {"args": "", "script": "echo from-json \"$@\""}}},
            "buildData": {"buildScripts": {"post": {"args": "", "script": "echo posted > /posted"}}}}"#,
    );
    for who in builders() {
        let sif = format!("json-{}.sif", who.uid());
        ok(
            &c.sifr(who, &["build", "--json", &sif, "def.json"]),
            "build --json",
        );
        let run = c.sifr(who, &["run", &sif, "x"]);
        ok(&run, "run");
        assert_eq!(stdout(&run), "from-json x\n");
        let cat = c.sifr(who, &["exec", &sif, "/bin/cat", "/posted"]);
        assert_eq!(stdout(&cat), "posted\n");
        let labels = c.sifr(who, &["inspect", "--labels", &sif]);
        assert!(
            stdout(&labels).contains("Made: json"),
            "{}",
            stdout(&labels)
        );
    }
}

/// e2e/imgbuild buildExtraArgs (`-comp`), testWritableTmpfs (%test writes to a throw-away
/// layer) and buildBindMount (`--mount` in %post).
#[test]
fn mksquashfs_args_writable_tmpfs_and_mount_reach_the_build() {
    let Some(c) = Case::new() else { return };
    c.write(
        "t.def",
        // The bind's destination must exist in the image, as in Apptainer (whose test binds
        // over the /mnt its images have): %setup makes it.
        "Bootstrap: localimage\nFrom: ../image\n\n%setup\n    mkdir -p \"$APPTAINER_ROOTFS/mnt/hostdata\"\n\n%post\n    cat /mnt/hostdata/hello > /copied\n\n%test\n    touch /var/test-wrote\n",
    );
    let spec = format!(
        "type=bind,source={},destination=/mnt/hostdata,ro",
        c.fx.data.display()
    );
    for who in builders() {
        let sif = format!("t-{}.sif", who.uid());
        let o = c.sifr(
            who,
            &[
                "build",
                "--mksquashfs-args",
                "-comp gzip -b 1M",
                "--writable-tmpfs",
                "--mount",
                &spec,
                &sif,
                "t.def",
            ],
        );
        ok(&o, "build");
        assert!(stderr(&o).contains("ignores: -b 1M"), "{}", stderr(&o));
        // gzip is SquashFS compressor 1, at byte 20 of the superblock.
        let bytes = std::fs::read(c.fx.work.join(&sif)).unwrap();
        let sb = bytes.windows(4).position(|w| w == b"hsqs").unwrap();
        assert_eq!(u16::from_le_bytes([bytes[sb + 20], bytes[sb + 21]]), 1);
        let cat = c.sifr(who, &["exec", &sif, "/bin/cat", "/copied"]);
        assert_eq!(stdout(&cat), "hello from the host\n");
        let ls = c.sifr(who, &["exec", &sif, "/bin/test", "-e", "/var/test-wrote"]);
        assert!(!ls.status.success(), "%test's write was thrown away");
    }
}

/// `--no-cleanup` keeps the work directory of a failed build; without it nothing is left.
#[test]
fn no_cleanup_keeps_a_failed_builds_work() {
    let Some(c) = Case::new() else { return };
    c.write(
        "fail.def",
        "Bootstrap: localimage\nFrom: ../image\n\n%post\n    exit 3\n",
    );
    for who in builders() {
        let o = c.sifr(who, &["build", "--no-cleanup", "f.sif", "fail.def"]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("no clean up"), "{}", stderr(&o));
        let left = c.tmp_entries();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].starts_with("build-temp-"), "{left:?}");
        let _ = std::process::Command::new("rm")
            .arg("-rf")
            .arg(c.tmp.join(&left[0]))
            .status();
        let o = c.sifr(who, &["build", "f.sif", "fail.def"]);
        assert!(!o.status.success());
        assert!(c.tmp_entries().is_empty(), "{:?}", c.tmp_entries());
    }
}
