//! End-to-end: images served by `sifr_squashfs::fuse` read back, through the kernel, exactly as the
//! tree they were made from: listing, stat fields, every byte, symlinks, hard links, xattrs.
//!
//! Its own harness (`harness = false`): the process stays single-threaded, so it can fork the
//! server the way the runtime does, through `sifr_sys::process::fork_server`. The unprivileged case re-runs
//! this binary as user `sifrtest` inside `unshare --user --map-current-user --keep-caps --mount`.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

mod fuse_common;

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use fuse_common::{Tree, mount_forked, verify};
use sifr_squashfs::fuse::{self, Owner};

const ROLE: &str = "SIFR_FUSE_TEST_ROLE";
const USER: &str = "sifrtest";

/// The cases, by name: listed for test runners (`--list`, as nextest asks) and filtered by name.
type Case = fn(&Tree) -> Result<(), String>;

const CASES: &[(&str, Case)] = &[
    (
        "root_mounts_writer_image_with_export_table_and_sees_the_image_owners",
        root_writer_image,
    ),
    (
        "root_mounts_mksquashfs_image_without_export_table_as_a_chosen_owner",
        root_mksquashfs_no_exports,
    ),
    (
        "unreadable_image_is_refused_before_anything_is_mounted",
        bad_image,
    ),
    (
        "image_inside_a_bigger_file_mounts_at_its_offset_and_drop_unmounts_and_reaps",
        drop_unmounts,
    ),
    (
        "unprivileged_user_in_a_user_namespace_mounts_and_reads_everything",
        unprivileged_in_userns,
    ),
    (
        "prefetched_files_are_in_the_page_cache_before_anyone_reads_them",
        prefetch_fills_the_page_cache,
    ),
];

fn main() {
    if std::env::var(ROLE).as_deref() == Ok("userns") {
        let code = match userns_probe() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("userns probe: {e}");
                1
            }
        };
        std::process::exit(code);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // libtest's terse list format; there are no ignored cases.
        if !args.iter().any(|a| a == "--ignored") {
            for (name, _) in CASES {
                println!("{name}: test");
            }
        }
        return;
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    // FUSE and root are what CI has: a skip fails under SIFR_TEST_STRICT (a panic here ends
    // the binary with a failure).
    if !Path::new("/dev/fuse").exists() {
        sifr_testkit::skip("/dev/fuse does not exist (no FUSE in this kernel)");
        return;
    }
    if let Err(e) = File::options().read(true).write(true).open("/dev/fuse") {
        sifr_testkit::skip(format_args!(
            "cannot open /dev/fuse ({e}): FUSE is unavailable here"
        ));
        return;
    }
    if !rustix::process::geteuid().is_root() {
        sifr_testkit::skip(format_args!(
            "needs root (mounts in the host namespace, creates user `{USER}`)"
        ));
        return;
    }
    let tree = Tree::generate().expect("generate the source tree");
    let mut failed = 0;
    for (name, case) in CASES {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        // A case that panics (a strict skip among them) fails alone; the others still run.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&tree)))
            .unwrap_or_else(|_| Err("panicked (its message is above)".into()));
        match result {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                println!("test {name} ... FAILED\n    {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        println!("{failed} FUSE case(s) failed");
        std::process::exit(1);
    }
}

fn root_writer_image(t: &Tree) -> Result<(), String> {
    let img = t.dir.path().join("writer.sqfs");
    t.write_image(&img, true)?;
    let mnt = t.mountpoint("m-writer")?;
    let handle = mount_forked(&img, &mnt, &fuse::Options::default())?;
    verify(&t.src, &mnt, None)?;
    finish(handle, &mnt)
}

fn root_mksquashfs_no_exports(t: &Tree) -> Result<(), String> {
    let img = t.dir.path().join("mksquashfs.sqfs");
    t.mksquashfs(&img, &["-no-exports"])?;
    let mnt = t.mountpoint("m-mksquashfs")?;
    let owner = Owner {
        uid: 4242,
        gid: 4343,
    };
    let opts = fuse::Options {
        owner: Some(owner),
        threads: 3,
        ..Default::default()
    };
    let handle = mount_forked(&img, &mnt, &opts)?;
    verify(&t.src, &mnt, Some(owner))?;
    finish(handle, &mnt)
}

fn bad_image(t: &Tree) -> Result<(), String> {
    let img = t.dir.path().join("garbage.sqfs");
    std::fs::write(&img, vec![0x5a; 4096]).map_err(|e| e.to_string())?;
    let mnt = t.mountpoint("m-garbage")?;
    let file = File::open(&img).map_err(|e| e.to_string())?;
    match fuse::mount(file, 0, &mnt, &fuse::Options::default()) {
        Ok(_) => return Err("a garbage image was mounted".into()),
        Err(fuse::Error::Image { .. }) => {}
        Err(e) => return Err(format!("wrong error: {e}")),
    }
    fuse_common::assert_not_mounted(&mnt)
}

fn drop_unmounts(t: &Tree) -> Result<(), String> {
    // Like a SIF: 64 KiB of something else, then the image (without an export table).
    let raw = t.dir.path().join("drop.sqfs");
    t.write_image(&raw, false)?;
    let img = t.dir.path().join("drop.sif");
    let mut bytes = vec![0x53u8; 65536];
    bytes.extend(std::fs::read(&raw).map_err(|e| e.to_string())?);
    std::fs::write(&img, bytes).map_err(|e| e.to_string())?;
    let mnt = t.mountpoint("m-drop")?;
    let handle = fuse_common::mount_forked_at(&img, 65536, &mnt, &fuse::Options::default())?;
    verify(&t.src, &mnt, None)?;
    let pid = handle.pid();
    let leaf = std::fs::read(mnt.join("deep/a/b/c/d/e/leaf")).map_err(|e| e.to_string())?;
    if leaf != b"deep\n" {
        return Err(format!("leaf reads {leaf:?}"));
    }
    drop(handle);
    fuse_common::assert_not_mounted(&mnt)?;
    // Reaped, not a zombie: the pid is gone.
    if Path::new(&format!("/proc/{pid}")).exists() {
        return Err(format!(
            "server {pid} still exists after the handle was dropped"
        ));
    }
    Ok(())
}

/// `Options::prefetch` stores the files it names in the kernel's page cache and looks up the
/// paths it names: once its threads are done, the files read back whole even after the server
/// is killed (cached dentries and pages need no server), a looked-up directory stats and a
/// looked-up missing path is a cached miss, while a file nobody read and a path nobody looked
/// up fail. Alternatives are tried in order and symlinks followed.
fn prefetch_fills_the_page_cache(t: &Tree) -> Result<(), String> {
    let img = t.dir.path().join("prefetch.sqfs");
    t.write_image(&img, true)?;
    let mnt = t.mountpoint("m-prefetch")?;
    let big = format!("files/f-{}", 3 << 20);
    let opts = fuse::Options {
        prefetch: fuse::Prefetch {
            files: vec![
                vec!["/no/such/file".into(), "/links/rel".into()],
                vec![PathBuf::from("/").join(&big)],
            ],
            lookups: vec!["/deep/a/b/c".into(), "/empty/missing".into()],
        },
        idle_priority: Some(sifr_sys::process::set_idle_priority),
        ..Default::default()
    };
    let handle = mount_forked(&img, &mnt, &opts)?;
    let pid = handle.pid();
    // The kernel asks the server to open a file only until told it need not (the first
    // answer); read one small file so that later opens need no server.
    std::fs::read(mnt.join("files/f-100")).map_err(|e| format!("read f-100: {e}"))?;
    // The server starts its prefetch thread before its workers: once a worker exists, no
    // prefetch thread means they are done.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while threads_named(pid, "fuser-") == 0 || threads_named(pid, "sifr-prefetch") > 0 {
        if std::time::Instant::now() > deadline {
            return Err("the prefetch threads did not finish in 20 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).ok_or("no server pid")?,
        rustix::process::Signal::KILL,
    )
    .map_err(|e| format!("kill the server: {e}"))?;
    let mut handle = handle;
    handle.wait().map_err(|e| fuse_common::chain(&e))?;
    for (path, src) in [
        ("links/rel", "files/f-4096".to_string()),
        (big.as_str(), big.clone()),
    ] {
        let got = std::fs::read(mnt.join(path))
            .map_err(|e| format!("read prefetched {path} with the server gone: {e}"))?;
        let want = std::fs::read(t.src.join(&src)).map_err(|e| e.to_string())?;
        if got != want {
            return Err(format!(
                "{path}: {} bytes differ from the source",
                got.len()
            ));
        }
    }
    match std::fs::metadata(mnt.join("deep/a/b/c")) {
        Ok(md) if md.is_dir() => {}
        other => {
            return Err(format!(
                "looked-up deep/a/b/c with the server gone: {other:?}"
            ));
        }
    }
    match std::fs::metadata(mnt.join("empty/missing")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => {
            return Err(format!(
                "looked-up missing empty/missing with the server gone: {other:?}, not a cached miss"
            ));
        }
    }
    match std::fs::metadata(mnt.join("deep/a/b/c/d")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {}
        other => {
            return Err(format!(
                "deep/a/b/c/d, which nobody looked up, with the server gone: {other:?}"
            ));
        }
    }
    let other = format!("files/f-{}", (1 << 20) + 17);
    if std::fs::read(mnt.join(&other)).is_ok() {
        return Err(format!(
            "{other} was read with no server, though nobody asked for it"
        ));
    }
    handle.detach().map_err(|e| fuse_common::chain(&e))?;
    fuse_common::assert_not_mounted(&mnt)
}

/// Threads of process `pid` whose name starts with `prefix`.
fn threads_named(pid: i32, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with(prefix))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Detaches, reaps the server and checks that nothing is left behind.
fn finish(handle: fuse::MountHandle, mnt: &Path) -> Result<(), String> {
    let status = handle.unmount().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("server exited with {status}"));
    }
    fuse_common::assert_not_mounted(mnt)
}

/// Restores the mode of `/dev/fuse` on drop.
struct DevFuseMode(u32);

impl Drop for DevFuseMode {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(self.0));
    }
}

fn unprivileged_in_userns(t: &Tree) -> Result<(), String> {
    let have_user = Command::new("id")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_user {
        let ok = Command::new("useradd")
            .args(["-m", USER])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            sifr_testkit::skip(format_args!("cannot create user `{USER}` (useradd failed)"));
            return Ok(());
        }
    }
    // HPC nodes ship /dev/fuse as 0666 (udev rule); this machine has no udev.
    let old = std::fs::metadata("/dev/fuse")
        .map_err(|e| e.to_string())?
        .permissions()
        .mode()
        & 0o7777;
    let _restore = DevFuseMode(old);
    std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("chmod /dev/fuse: {e}"))?;

    let img = t.dir.path().join("userns.sqfs");
    t.write_image(&img, true)?;
    let mnt = t.mountpoint("m-userns")?;
    let (uid, _) = fuse_common::user_ids(USER)?;
    rustix::fs::chown(&mnt, Some(rustix::fs::Uid::from_raw(uid)), None)
        .map_err(|e| e.to_string())?;
    // A copy of this binary the user can reach regardless of the checkout's permissions.
    let exe = t.dir.path().join("fuse-probe");
    std::fs::copy(std::env::current_exe().map_err(|e| e.to_string())?, &exe)
        .map_err(|e| e.to_string())?;
    let out = Command::new("setpriv")
        .args(["--reuid", USER, "--regid", USER, "--init-groups"])
        // --keep-caps: the runtime unshares and mounts in one process; here `unshare` execs
        // the probe, and an exec as a non-zero uid would drop the namespace's capabilities.
        .args([
            "unshare",
            "--user",
            "--map-current-user",
            "--keep-caps",
            "--mount",
        ])
        .arg(&exe)
        .env(ROLE, "userns")
        .env("SIFR_FUSE_IMAGE", &img)
        .env("SIFR_FUSE_SRC", &t.src)
        .env("SIFR_FUSE_MNT", &mnt)
        .output()
        .map_err(|e| format!("run setpriv: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        if text.contains("unshare failed") {
            sifr_testkit::skip(format_args!("user namespaces unavailable: {}", text.trim()));
            return Ok(());
        }
        return Err(format!("probe as `{USER}` failed ({}): {text}", out.status));
    }
    print!("{text}");
    fuse_common::assert_not_mounted(&mnt)
}

/// Runs as `sifrtest`, root of its own user namespace only, in a private mount namespace.
fn userns_probe() -> Result<(), String> {
    let var = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .ok_or(format!("{k} unset"))
    };
    let (img, src, mnt) = (
        var("SIFR_FUSE_IMAGE")?,
        var("SIFR_FUSE_SRC")?,
        var("SIFR_FUSE_MNT")?,
    );
    let owner = Owner {
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
    };
    let opts = fuse::Options {
        owner: Some(owner),
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let handle = mount_forked(&img, &mnt, &opts)?;
    let ready = start.elapsed();
    verify(&src, &mnt, Some(owner))?;
    println!(
        "    as uid {} in a user namespace: mounted and ready in {:.2} ms, tree verified",
        owner.uid,
        ready.as_secs_f64() * 1e3
    );
    finish(handle, &mnt)
}
