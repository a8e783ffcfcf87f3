//! The sandbox image the end-to-end tests run: made at test time around a static probe binary
//! (`probe/probe.c` of this crate, built with `gcc -static`), plus host directories for binds,
//! all in one temporary directory readable by the test user.
//!
//! The sandbox deliberately lacks `/proc`, `/sys`, `/dev`, `/tmp`, `/home` and `/etc/hosts`, so
//! every default mount point must be created by the runtime without touching the image.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{As, TestCommand};

/// The probe's C source, kept in this crate.
pub fn probe_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("probe/probe.c")
        .canonicalize()
        .expect("probe.c is in crates/sifr-testkit/probe")
}

/// The upstream SIF fixture folder (`shared/fixtures/sif` beside the checkout), or `None` when
/// it is absent (a [`skip`](crate::skip): it fails under `SIFR_TEST_STRICT`).
pub fn sif_fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/sif");
    if dir.join("images").is_dir() {
        Some(dir)
    } else {
        crate::skip(format_args!("SIF fixtures not found at {}", dir.display()));
        None
    }
}

/// Build the static probe binary at `dest`; panics with gcc's output on failure.
pub fn build_probe(dest: &Path) {
    crate::tools::run_tool(
        Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(dest)
            .arg(probe_source()),
        "gcc is needed to build the test probe (apt-get install gcc)",
        "gcc -static",
    );
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A sandbox image plus host directories for binds, in one temporary directory readable by
/// the test user.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub image: PathBuf,
    /// A directory both root and the test user can use as cwd.
    pub work: PathBuf,
    /// Host directory with a file `hello` ("hello from the host"), for binds.
    pub data: PathBuf,
    /// Whether `/bin/sh` in the image is a real shell (busybox).
    pub has_shell: bool,
}

const ENV_90: &str = r#"#!/bin/sh
# %environment, in the forms Apptainer users write
export IMG_PATHVAR=/opt/img
export PATH=/opt/img/bin:$PATH
IMG_VAR=image; export IMG_VAR
export DEF="${UNSET_FOR_TEST:-dflt}" QUOTED='single quoted'
export EMPTIED=
"#;

const ENV_91: &str = r#"#!/bin/sh
# not plain exports: evaluated by sifr's bash-compatible interpreter
if [ -n "$IMG_VAR" ]; then
    export FROM_SHELL="yes-$IMG_VAR"
fi
"#;

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("sifr-test-")
            .tempdir()
            .unwrap();
        chmod(dir.path(), 0o755);
        let image = dir.path().join("image");
        for d in ["bin", "etc", ".singularity.d/env"] {
            std::fs::create_dir_all(image.join(d)).unwrap();
        }
        let probe = image.join("bin/probe");
        build_probe(&probe);
        std::fs::copy(&probe, image.join(".singularity.d/runscript")).unwrap();
        std::fs::copy(&probe, image.join(".singularity.d/test")).unwrap();
        let has_shell = Path::new("/bin/busybox").exists();
        if has_shell {
            std::fs::copy("/bin/busybox", image.join("bin/busybox")).unwrap();
            std::os::unix::fs::symlink("busybox", image.join("bin/sh")).unwrap();
        }
        std::fs::write(image.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(image.join("etc/group"), "root:x:0:\n").unwrap();
        let env = image.join(".singularity.d/env");
        std::fs::write(env.join("01-base.sh"), "#!/bin/sh\n# placeholder\n").unwrap();
        std::fs::write(env.join("90-environment.sh"), ENV_90).unwrap();
        std::fs::write(env.join("91-environment.sh"), ENV_91).unwrap();
        std::fs::write(env.join("99-base.sh"), "#!/bin/sh\nif true; then :; fi\n").unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        chmod(&work, 0o777);
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("hello"), "hello from the host\n").unwrap();
        chmod(&data, 0o777);
        Fixture {
            dir,
            image,
            work,
            data,
            has_shell,
        }
    }

    /// `program` (the sifr binary) run as `who` in the fixture's work directory, with the
    /// caller's own `APPTAINER*`/`SINGULARITY*`/`SIFR_*` settings removed so they cannot change
    /// the result; arguments and variables are added by the caller.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, who: As) -> TestCommand {
        TestCommand::new(program)
            .as_user(who)
            .current_dir(&self.work)
            .without_caller_settings()
    }

    /// `cp -a` of the image into the fixture's directory as `name` (a sandbox to change).
    pub fn copy_image(&self, name: &str) -> PathBuf {
        let dst = self.dir.path().join(name);
        let st = Command::new("cp")
            .arg("-a")
            .arg(&self.image)
            .arg(&dst)
            .status()
            .unwrap();
        assert!(st.success(), "cp -a of the image: {st}");
        dst
    }

    /// Paths the runtime must never create in the image.
    pub fn assert_image_untouched(&self) {
        for p in [
            "proc",
            "sys",
            "dev",
            "tmp",
            "var",
            "home",
            "root",
            "etc/hosts",
            "etc/resolv.conf",
        ] {
            assert!(
                !self.image.join(p).exists(),
                "the runtime created `{p}` in the image"
            );
        }
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}
