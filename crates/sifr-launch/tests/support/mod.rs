//! Test fixtures shared by the launch namespace tests and the CLI `exec_*` tests (included with
//! `#[path]`): a sandbox image made at test time around a static probe binary, the unprivileged
//! test user, and commands run as root or as that user.
//!
//! The sandbox deliberately lacks `/proc`, `/sys`, `/dev`, `/tmp`, `/home` and `/etc/hosts`, so
//! every default mount point must be created by the runtime without touching the image.
#![allow(dead_code, clippy::print_stdout, clippy::print_stderr)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The unprivileged account the tests create (as root) and run sifr as.
pub const TEST_USER: &str = "sifrtest";

/// The probe's C source, kept next to this file.
pub fn probe_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sifr-launch/tests/probe/probe.c")
        .canonicalize()
        .expect("probe.c is in crates/sifr-launch/tests/probe")
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
# needs a real shell: evaluated with the image's /bin/sh
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
        let out = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(&probe)
            .arg(probe_source())
            .output()
            .expect("gcc is needed to build the test probe (apt-get install gcc)");
        assert!(
            out.status.success(),
            "gcc -static failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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

/// Who runs the command under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Root,
    User { uid: u32, gid: u32 },
}

impl As {
    pub fn uid(self) -> u32 {
        match self {
            As::Root => 0,
            As::User { uid, .. } => uid,
        }
    }
    pub fn gid(self) -> u32 {
        match self {
            As::Root => 0,
            As::User { gid, .. } => gid,
        }
    }
}

pub fn is_root() -> bool {
    // `id -u` rather than getuid(2): test code stays free of `unsafe` and of a libc dependency.
    String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        == "0"
}

fn ids_of(user: &str) -> Option<(u32, u32)> {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .ok()?;
    let line = String::from_utf8(out.stdout).ok()?;
    let f: Vec<&str> = line.trim().split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// The identities to test: root and the unprivileged test user when running as root (the user
/// is created with `useradd -m` if missing); only the caller otherwise.
pub fn identities() -> Vec<As> {
    if !is_root() {
        let out = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
        let gid = String::from_utf8(Command::new("id").arg("-g").output().unwrap().stdout).unwrap();
        return vec![As::User {
            uid: out.trim().parse().unwrap(),
            gid: gid.trim().parse().unwrap(),
        }];
    }
    // Tests of one binary run on several threads: create the user once. Another binary may
    // race us: status 9 is "already exists", 10 "passwd file locked" (then retry).
    static CREATE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = CREATE.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..50 {
        if ids_of(TEST_USER).is_some() {
            break;
        }
        let st = Command::new("useradd")
            .args(["-m", TEST_USER])
            .status()
            .expect("useradd");
        match st.code() {
            Some(0 | 9) => break,
            Some(10) => std::thread::sleep(std::time::Duration::from_millis(100)),
            _ => panic!("useradd -m {TEST_USER} failed: {st}"),
        }
    }
    let (uid, gid) = ids_of(TEST_USER).expect("test user exists");
    vec![As::Root, As::User { uid, gid }]
}

/// [`identities`] minus the unprivileged user where user namespaces are really off (said on
/// stdout, which libtest shows with the test).
pub fn runnable_identities() -> Vec<As> {
    let userns = userns_available();
    identities()
        .into_iter()
        .filter(|w| match (w, &userns) {
            (As::User { .. }, Err(why)) => {
                println!("skipping uid {}: {why}", w.uid());
                false
            }
            _ => true,
        })
        .collect()
}

/// A command running `program` as `who` (through `setpriv` when switching to the test user).
pub fn command_as(who: As, program: &Path) -> Command {
    match who {
        As::User { uid, gid } if is_root() => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--init-groups")
                .arg("--")
                .arg(program);
            c
        }
        _ => Command::new(program),
    }
}

/// Whether unprivileged user namespaces are available (the one kernel feature that may be off).
pub fn userns_available() -> Result<(), String> {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        return Err("user namespaces are disabled (/proc/sys/user/max_user_namespaces = 0)".into());
    }
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        && v.trim() == "0"
    {
        return Err(
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)"
                .into(),
        );
    }
    Ok(())
}

/// Mount lines of the host that mention `needle` (to prove nothing is left mounted).
pub fn host_mounts_mentioning(needle: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle.to_str().unwrap()))
        .map(str::to_string)
        .collect()
}

/// Host mount count, to compare before and after a suite.
pub fn host_mount_count() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// Pids of live processes whose command line mentions `needle` (to prove none is left behind).
/// `f()` once it is empty, polling for up to 3 s: what a launch leaves to wind down after it
/// exits (the node's holder of a shared image retires, its FUSE server sees the mount go, loop
/// devices auto-clear) goes asynchronously, within milliseconds.
pub fn settled<T>(f: impl Fn() -> Vec<T>) -> Vec<T> {
    for _ in 0..150 {
        let v = f();
        if v.is_empty() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}

pub fn processes_mentioning(needle: &Path) -> Vec<u32> {
    let me = std::process::id();
    let n = needle.to_str().unwrap().as_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.windows(n.len()).any(|w| w == n))
                .unwrap_or(false)
        })
        .collect()
}

/// `program` (the sifr binary) run as `who` in the fixture's work directory, with the caller's
/// own `APPTAINER*`/`SINGULARITY*`/`SIFR_*` settings removed so they cannot change the result.
pub fn sifr_command(program: &Path, fx: &Fixture, who: As, args: &[&str]) -> Command {
    let mut c = command_as(who, program);
    c.args(args).current_dir(&fx.work).env("PWD", &fx.work);
    for (k, _) in std::env::vars() {
        if k.starts_with("APPTAINER") || k.starts_with("SINGULARITY") || k.starts_with("SIFR_") {
            c.env_remove(k);
        }
    }
    c
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Start `cmd` (a launch of `probe wait-signal`), send SIGTERM to it once the probe is ready,
/// and check that the probe got it and that its status (115) is the launch's.
pub fn assert_sigterm_reaches_probe(mut cmd: std::process::Command) {
    use std::io::{BufRead as _, BufReader};
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(lines.next().unwrap().unwrap(), "got signal 15");
    assert_eq!(child.wait().unwrap().code(), Some(115));
}

/// The filesystem type and per-mount options of the container's `/` (its last mount there) in
/// a mountinfo text.
pub fn root_mount(mountinfo: &str) -> (&str, Vec<&str>) {
    let line = mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no mount at / in:\n{mountinfo}"));
    let opts = line.split(' ').nth(5).unwrap().split(',').collect();
    let fstype = line.split(" - ").nth(1).unwrap().split(' ').next().unwrap();
    (fstype, opts)
}
