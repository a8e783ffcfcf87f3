//! Who runs a command under test: root, or the unprivileged test user (created with `useradd`
//! when the tests run as root), and whether the kernel lets that user have a user namespace.
//! Switching to the test user goes through `setpriv`, so the test code needs no `unsafe`.

use std::path::Path;
use std::process::Command;

/// The unprivileged account the tests create (as root) and run sifr as.
pub const TEST_USER: &str = "sifrtest";

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
    id("-u") == 0
}

/// `id FLAG` of this process.
fn id(flag: &str) -> u32 {
    let out = Command::new("id").arg(flag).output().unwrap().stdout;
    String::from_utf8(out).unwrap().trim().parse().unwrap()
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
        return vec![As::User {
            uid: id("-u"),
            gid: id("-g"),
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

/// [`identities`] minus the unprivileged user where user namespaces are really off (a
/// [`skip`](crate::skip): it fails under `SIFR_TEST_STRICT`, CI has them).
pub fn runnable_identities() -> Vec<As> {
    let userns = userns_available();
    identities()
        .into_iter()
        .filter(|w| match (w, &userns) {
            (As::User { .. }, Err(why)) => {
                crate::skip(format_args!("uid {}: {why}", w.uid()));
                false
            }
            _ => true,
        })
        .collect()
}

/// A command running `program` as `who` (through `setpriv` when switching to the test user).
pub fn command_as(who: As, program: &Path) -> Command {
    let argv = argv_as(who, program.as_os_str());
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

/// The argument vector that starts `program` as `who`: `setpriv --reuid=UID --regid=GID
/// --init-groups -- PROGRAM` when root switches to the test user, else `PROGRAM` alone.
pub(crate) fn argv_as(who: As, program: &std::ffi::OsStr) -> Vec<std::ffi::OsString> {
    match who {
        As::User { uid, gid } if is_root() => vec![
            "setpriv".into(),
            format!("--reuid={uid}").into(),
            format!("--regid={gid}").into(),
            "--init-groups".into(),
            "--".into(),
            program.into(),
        ],
        _ => vec![program.into()],
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
