//! End-to-end: an ext3 image made by `mkfs.ext3 -d` and served by `sifr_extfs` is the upper
//! layer of a kernel overlayfs mount; files created, written, renamed, deleted (whiteouts),
//! linked, chmod'ed, truncated and given xattrs through the overlay are in the image after the
//! server ends, as `e2fsck -fn` and `debugfs` (the judges) see it, and a second mount shows the
//! same view. Also: the journal-needs-recovery refusal, and `SIGTERM` writing the image back.
//!
//! Its own harness (`harness = false`): the process stays single-threaded, so it can fork the
//! server the way the runtime does, through `sifr_sys::process::fork_server`. It re-executes
//! itself under `unshare --mount --propagation private`, so its mounts are its own and vanish
//! with it. As root only (it needs root to set up its namespaces); the unprivileged path
//! (`userxattr`, an ordinary uid mapped to itself) runs as such a uid with a 0666 node of
//! /dev/fuse bound over the host's inside the test's own mount namespace.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use sifr_extfs::{MountHandle, Options};

#[path = "overlay_upper/userns.rs"]
mod userns;
use userns::{self_mapped_overlay, userns_overlay, userns_step};

const ROLE: &str = "SIFR_EXTFS_TEST_ROLE";

type Case = fn(&Path) -> Result<(), String>;

const CASES: &[(&str, Case)] = &[
    (
        "kernel_overlayfs_writes_through_the_server_into_a_clean_image",
        overlay_round_trip,
    ),
    (
        "an_image_whose_journal_needs_recovery_is_refused_with_the_fix",
        dirty_journal,
    ),
    (
        "sigterm_while_mounted_writes_the_image_back_cleanly",
        sigterm_writes_back,
    ),
    (
        "an_image_at_an_offset_mounts_read_only",
        read_only_at_offset,
    ),
    (
        "in_a_user_namespace_overlayfs_uses_userxattr_and_the_requesters_ids",
        userns_overlay,
    ),
    (
        "a_user_mapped_to_itself_writes_its_own_directories_whose_group_is_unmapped",
        self_mapped_overlay,
    ),
    (
        "an_ext4_image_with_metadata_checksums_is_an_upper_layer_mount_after_mount",
        ext4_twice,
    ),
    (
        "the_launchers_death_ends_the_server_with_the_image_written_back",
        launcher_dies,
    ),
];

/// The uid and gid the user-namespace case runs as inside (mapped to root outside, which
/// lets it open /dev/fuse, 0600 here, as Apptainer's user opens a 0666 one).
const INNER_ID: u32 = 4321;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            for (name, _) in CASES {
                println!("{name}: test");
            }
        }
        return;
    }
    if std::env::var(ROLE).as_deref() == Ok("userns") {
        let dir = PathBuf::from(args.first().expect("the case directory"));
        match userns_step(&dir) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("in the user namespace: {e}");
                std::process::exit(1);
            }
        }
    }
    if std::env::var(ROLE).as_deref() != Ok("inner") {
        if !Path::new("/dev/fuse").exists() {
            sifr_testkit::skip("/dev/fuse does not exist (no FUSE in this kernel)");
            return;
        }
        if !rustix::process::geteuid().is_root() {
            sifr_testkit::skip("needs root (opens /dev/fuse, mounts overlayfs)");
            return;
        }
        if let Some(m) =
            sifr_testkit::missing(&["mkfs.ext3", "e2fsck", "debugfs", "unshare", "setpriv"])
        {
            sifr_testkit::skip(m);
            return;
        }
        // Re-run in a private mount namespace: nothing mounted here can leak to the host.
        let me = std::env::current_exe().expect("own path");
        let st = Command::new("unshare")
            .args(["--mount", "--propagation", "private"])
            .arg(me)
            .args(&args)
            .env(ROLE, "inner")
            .status()
            .expect("run unshare");
        std::process::exit(st.code().unwrap_or(1));
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let exact = args.iter().any(|a| a == "--exact");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut failed = 0;
    for (name, case) in CASES {
        if filter.is_some_and(|f| {
            if exact {
                name != f
            } else {
                !name.contains(f.as_str())
            }
        }) {
            continue;
        }
        let dir = tmp.path().join(name);
        fs::create_dir(&dir).expect("case dir");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&dir)))
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
        println!("{failed} case(s) failed");
        std::process::exit(1);
    }
}

fn io<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{cmd:?} failed ({}): {text}", out.status))
    }
}

/// A 64 MiB ext3 image holding `upper/` and `work/`, as `overlay create` lays it out.
fn make_image(dir: &Path) -> Result<PathBuf, String> {
    make_image_owned(dir, None)
}

/// [`make_image`] with `upper/` and `work/` owned by `owner` (as `overlay create` run by that
/// user makes them).
fn make_image_owned(dir: &Path, owner: Option<u32>) -> Result<PathBuf, String> {
    let seed = dir.join("seed");
    fs::create_dir_all(seed.join("upper")).map_err(io("seed"))?;
    fs::create_dir_all(seed.join("work")).map_err(io("seed"))?;
    for d in ["upper", "work"] {
        std::os::unix::fs::chown(seed.join(d), owner, owner).map_err(io("chown seed"))?;
    }
    let img = dir.join("overlay.img");
    run(Command::new("mkfs.ext3")
        .args(["-q", "-F", "-d"])
        .arg(&seed)
        .arg(&img)
        .arg("64M"))?;
    Ok(img)
}

fn mount_forked(
    img: &Path,
    offset: u64,
    writable: bool,
    mnt: &Path,
) -> Result<MountHandle, String> {
    let mounted = sifr_extfs::mount(img, offset, writable, mnt, &Options::default())
        .map_err(|e| chain(&e))?;
    let (pid, mounted) = sifr_sys::process::fork_server(mounted, |m| {
        sifr_sys::process::close_fds_except(&m.fds());
        match m.serve() {
            Ok(()) => 0,
            Err(_) => 1,
        }
    })
    .map_err(|e| format!("fork the server: {e}"))?;
    let mut h = mounted.into_handle(pid);
    h.wait_ready().map_err(|e| chain(&e))?;
    Ok(h)
}

fn overlay(lower: &Path, m: &Path, merged: &Path) -> Result<(), String> {
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        m.join("upper").display(),
        m.join("work").display()
    );
    let c = std::ffi::CString::new(data.clone()).map_err(io("options"))?;
    rustix::mount::mount(
        "overlay",
        merged,
        "overlay",
        rustix::mount::MountFlags::empty(),
        c.as_c_str(),
    )
    .map_err(|e| {
        let log = Command::new("dmesg").output().ok().map(|o| {
            let t = String::from_utf8_lossy(&o.stdout).into_owned();
            t.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
        });
        format!(
            "mount overlay {data}: {e} (kernel: {})",
            log.unwrap_or_default()
        )
    })
}

fn umount(p: &Path) -> Result<(), String> {
    rustix::mount::unmount(p, rustix::mount::UnmountFlags::empty())
        .map_err(|e| format!("umount {}: {e}", p.display()))
}

/// Ends the server through its handle and checks it wrote the image back (exit 0).
fn finish(h: MountHandle) -> Result<(), String> {
    let st = h.unmount().map_err(|e| chain(&e))?;
    if !st.success() {
        return Err(format!("server ended with {st}"));
    }
    Ok(())
}

fn fsck_clean(img: &Path) -> Result<(), String> {
    run(Command::new("e2fsck").arg("-fn").arg(img)).map(drop)
}

fn debugfs(img: &Path, req: &str) -> Result<String, String> {
    run(Command::new("debugfs").args(["-R", req]).arg(img))
}

fn lower_tree(dir: &Path) -> Result<PathBuf, String> {
    let lower = dir.join("lower");
    for d in ["keep", "gone-dir/inner", "shared", "redo/old"] {
        fs::create_dir_all(lower.join(d)).map_err(io("lower"))?;
    }
    fs::set_permissions(lower.join("shared"), fs::Permissions::from_mode(0o1777))
        .map_err(io("chmod"))?;
    for (f, c) in [
        ("keep/a", "lower a\n"),
        ("gone", "to be deleted\n"),
        ("moved", "to be renamed\n"),
        ("gone-dir/inner/x", "x\n"),
    ] {
        fs::write(lower.join(f), c).map_err(io("lower file"))?;
    }
    Ok(lower)
}

/// What the merged view must show after the changes, checked through any mount of it.
fn check_view(merged: &Path) -> Result<(), String> {
    let read = |p: &str| fs::read(merged.join(p)).map_err(io(p));
    let absent = |p: &str| match fs::symlink_metadata(merged.join(p)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => Err(format!("{p} should be gone: {other:?}")),
    };
    if read("new")? != b"hello\n" {
        return Err("new: wrong contents".into());
    }
    let big = read("big")?;
    if big.len() != 5000 || big.iter().enumerate().any(|(i, b)| *b != (i % 251) as u8) {
        return Err(format!("big: wrong contents ({} bytes)", big.len()));
    }
    if read("keep/a")? != b"lower a\nand more\n" {
        return Err("keep/a: copy-up lost the write".into());
    }
    if read("renamed")? != b"to be renamed\n" {
        return Err("renamed: wrong contents".into());
    }
    absent("moved")?;
    absent("gone")?;
    absent("gone-dir")?;
    absent("nd/sub")?;
    // Made again after its removal: opaque, the lower contents hidden.
    let redo = fs::read_dir(merged.join("redo"))
        .map_err(io("list redo"))?
        .count();
    if redo != 0 {
        return Err(format!("redo: {redo} entries, the lower ones show through"));
    }
    if !merged.join("nd").is_dir() {
        return Err("nd: not a directory".into());
    }
    let link = fs::read_link(merged.join("sl")).map_err(io("readlink sl"))?;
    if link != Path::new("new") {
        return Err(format!("sl -> {}", link.display()));
    }
    let new = fs::metadata(merged.join("new")).map_err(io("stat new"))?;
    let hl = fs::metadata(merged.join("hl")).map_err(io("stat hl"))?;
    if new.ino() != hl.ino() || new.nlink() != 2 {
        return Err(format!(
            "hl: not a hard link of new ({} links)",
            new.nlink()
        ));
    }
    if new.mode() & 0o7777 != 0o600 || (new.uid(), new.gid()) != (1234, 5678) {
        return Err(format!(
            "new: mode {:o} owner {}:{}",
            new.mode(),
            new.uid(),
            new.gid()
        ));
    }
    let owned = fs::metadata(merged.join("shared/owned")).map_err(io("stat owned"))?;
    if (owned.uid(), owned.gid()) != (4321, 8765) {
        return Err(format!("owned: owner {}:{}", owned.uid(), owned.gid()));
    }
    for (p, want) in [("shared/suid", 0o777), ("suid2", 0o755)] {
        let mode = fs::metadata(merged.join(p)).map_err(io(p))?.mode() & 0o7777;
        if mode != want {
            return Err(format!("{p}: mode {mode:o}, set-ID bits kept"));
        }
    }
    let x = xattr_get(&merged.join("new"), "user.sifr")?;
    if x != b"value" {
        return Err(format!("user.sifr = {x:?}"));
    }
    let many = fs::read_dir(merged.join("many"))
        .map_err(io("list many"))?
        .count();
    if many != MANY - MANY / 20 {
        return Err(format!("many: {many} entries"));
    }
    // Looked up by name in a directory big enough for the server's name index.
    for i in (0..MANY).step_by(7) {
        let (old, new) = (
            merged.join(many_name(i)),
            merged.join(format!("many/moved-{i}")),
        );
        let want = match i % 20 {
            0 => (false, false),
            1 => (false, true),
            _ => (true, false),
        };
        if (old.exists(), new.exists()) != want {
            return Err(format!(
                "many: entry {i} is wrong: {:?}",
                (old.exists(), new.exists())
            ));
        }
    }
    if fs::read(merged.join(many_name(14))).map_err(io("read many"))? != b"14\n" {
        return Err("many: wrong contents".into());
    }
    Ok(())
}

/// Files in `many/`: enough (about 60 KiB of entries) that the server indexes their names.
const MANY: usize = 2000;

fn many_name(i: usize) -> String {
    format!("many/file-with-a-longer-name-{i:05}")
}

fn xattr_get(p: &Path, name: &str) -> Result<Vec<u8>, String> {
    let mut buf = vec![0; 256];
    let n = rustix::fs::getxattr(p, name, &mut buf).map_err(io("getxattr"))?;
    buf.truncate(n);
    Ok(buf)
}

fn overlay_round_trip(dir: &Path) -> Result<(), String> {
    let img = make_image(dir)?;
    let lower = lower_tree(dir)?;
    let (m, merged) = (dir.join("m"), dir.join("merged"));
    fs::create_dir_all(&m).map_err(io("mkdir m"))?;
    fs::create_dir_all(&merged).map_err(io("mkdir merged"))?;

    let h = mount_forked(&img, 0, true, &m)?;
    overlay(&lower, &m, &merged)?;
    let o = |p: &str| merged.join(p);
    fs::write(o("new"), "hello\n").map_err(io("write new"))?;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(o("big"), &data).map_err(io("write big"))?;
    fs::File::options()
        .write(true)
        .open(o("big"))
        .and_then(|f| f.set_len(5000))
        .map_err(io("truncate big"))?;
    fs::OpenOptions::new()
        .append(true)
        .open(o("keep/a"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"and more\n"))
        .map_err(io("append keep/a"))?;
    fs::rename(o("moved"), o("renamed")).map_err(io("rename"))?;
    fs::remove_file(o("gone")).map_err(io("unlink gone"))?;
    fs::remove_dir_all(o("gone-dir")).map_err(io("rm -r gone-dir"))?;
    fs::create_dir_all(o("nd/sub")).map_err(io("mkdir nd/sub"))?;
    fs::remove_dir_all(o("redo")).map_err(io("rm -r redo"))?;
    fs::create_dir(o("redo")).map_err(io("mkdir redo"))?;
    fs::remove_dir(o("nd/sub")).map_err(io("rmdir nd/sub"))?;
    symlink("new", o("sl")).map_err(io("symlink"))?;
    fs::hard_link(o("new"), o("hl")).map_err(io("link"))?;
    fs::set_permissions(o("new"), fs::Permissions::from_mode(0o600)).map_err(io("chmod"))?;
    std::os::unix::fs::chown(o("new"), Some(1234), Some(5678)).map_err(io("chown"))?;
    rustix::fs::setxattr(
        o("new"),
        "user.sifr",
        b"value",
        rustix::fs::XattrFlags::CREATE,
    )
    .map_err(io("setxattr"))?;
    // A file made by another user: the request's ids become the owner.
    run(Command::new("setpriv")
        .args(["--reuid=4321", "--regid=8765", "--clear-groups", "touch"])
        .arg(o("shared/owned")))?;
    // Set-ID bits go when another user writes and on chown (the kernel asks for it with a
    // mode change).
    fs::write(o("shared/suid"), "#!/bin/sh\n").map_err(io("write suid"))?;
    fs::set_permissions(o("shared/suid"), fs::Permissions::from_mode(0o6777))
        .map_err(io("chmod suid"))?;
    run(Command::new("setpriv")
        .args(["--reuid=4321", "--regid=8765", "--clear-groups", "sh", "-c"])
        .arg(format!("echo more >> {}", o("shared/suid").display())))?;
    fs::write(o("suid2"), "x").map_err(io("write suid2"))?;
    fs::set_permissions(o("suid2"), fs::Permissions::from_mode(0o4755)).map_err(io("chmod"))?;
    std::os::unix::fs::chown(o("suid2"), Some(1), Some(1)).map_err(io("chown suid2"))?;
    // Enough entries that the directory grows by many blocks and the server indexes its
    // names; some removed, some renamed.
    fs::create_dir(o("many")).map_err(io("mkdir many"))?;
    for i in 0..MANY {
        fs::write(o(&many_name(i)), format!("{i}\n")).map_err(io("many"))?;
    }
    for i in 0..MANY {
        match i % 20 {
            0 => fs::remove_file(o(&many_name(i))).map_err(io("rm many"))?,
            1 => fs::rename(o(&many_name(i)), o(&format!("many/moved-{i}")))
                .map_err(io("mv many"))?,
            _ => {}
        }
    }
    // A temporary file, written and removed while open.
    {
        let mut f = fs::File::create(o("tmp-open")).map_err(io("create tmp-open"))?;
        fs::remove_file(o("tmp-open")).map_err(io("unlink tmp-open"))?;
        std::io::Write::write_all(&mut f, &data).map_err(io("write unlinked"))?;
    }
    check_view(&merged)?;
    umount(&merged)?;
    finish(h)?;

    fsck_clean(&img)?;
    let st = debugfs(&img, "stat upper/gone")?;
    if !st.contains("Type: character special") || !st.contains("Device major/minor number: 00:00") {
        return Err(format!("upper/gone is not a 0/0 whiteout:\n{st}"));
    }
    let st = debugfs(&img, "stat upper/new")?;
    if !st.contains("User:  1234") || !st.contains("Group:  5678") {
        return Err(format!("upper/new owner:\n{st}"));
    }
    let cat = debugfs(&img, "cat upper/keep/a")?;
    if !cat.contains("lower a\nand more\n") {
        return Err(format!("upper/keep/a:\n{cat}"));
    }
    let st = debugfs(&img, "stat upper/gone-dir")?;
    if !st.contains("Type: character special") {
        return Err(format!("upper/gone-dir is not a whiteout:\n{st}"));
    }
    let opaque = debugfs(&img, "ea_list upper/redo")?;
    if !opaque.contains("trusted.overlay.opaque") {
        return Err(format!("upper/redo is not opaque:\n{opaque}"));
    }

    // Mounted again: the same view.
    let h = mount_forked(&img, 0, true, &m)?;
    overlay(&lower, &m, &merged).map_err(|e| format!("again: {e}"))?;
    let view = check_view(&merged);
    umount(&merged)?;
    finish(h)?;
    view?;
    fsck_clean(&img)?;
    assert_not_mounted(&m)
}

fn assert_not_mounted(mnt: &Path) -> Result<(), String> {
    let info = fs::read_to_string("/proc/self/mountinfo").map_err(io("mountinfo"))?;
    let m = mnt.to_string_lossy();
    if let Some(line) = info.lines().find(|l| l.split(' ').nth(4) == Some(&*m)) {
        return Err(format!("still mounted: {line}"));
    }
    Ok(())
}

fn dirty_journal(dir: &Path) -> Result<(), String> {
    let img = make_image(dir)?;
    run(Command::new("debugfs")
        .args(["-w", "-R", "feature needs_recovery"])
        .arg(&img))?;
    let m = dir.join("m");
    fs::create_dir_all(&m).map_err(io("mkdir m"))?;
    let err = match sifr_extfs::mount(&img, 0, true, &m, &Options::default()) {
        Ok(_) => return Err("mounted an image whose journal needs recovery".into()),
        Err(e) => chain(&e),
    };
    let name = img.display().to_string();
    if !err.contains(&format!("e2fsck -fy {name}")) || !err.contains("needs recovery") {
        return Err(format!("unclear error: {err}"));
    }
    assert_not_mounted(&m)
}

fn sigterm_writes_back(dir: &Path) -> Result<(), String> {
    let img = make_image(dir)?;
    let m = dir.join("m");
    fs::create_dir_all(&m).map_err(io("mkdir m"))?;
    let mut h = mount_forked(&img, 0, true, &m)?;
    fs::write(m.join("upper/direct"), "written directly\n").map_err(io("write"))?;
    fs::create_dir(m.join("upper/d")).map_err(io("mkdir"))?;
    // Still mounted: the server must write everything back on SIGTERM alone.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(h.pid()).ok_or("no pid")?,
        rustix::process::Signal::TERM,
    )
    .map_err(io("kill"))?;
    let st = h.wait().map_err(|e| chain(&e))?;
    if !st.success() {
        return Err(format!("server ended with {st} on SIGTERM"));
    }
    drop(h);
    fsck_clean(&img)?;
    let cat = debugfs(&img, "cat upper/direct")?;
    if !cat.contains("written directly") {
        return Err(format!("upper/direct:\n{cat}"));
    }
    assert_not_mounted(&m)
}

fn read_only_at_offset(dir: &Path) -> Result<(), String> {
    let img = make_image(dir)?;
    let seeded = fs::read(&img).map_err(io("read image"))?;
    let offset = 1 << 20;
    let mut data = vec![0x5au8; offset];
    data.extend(seeded);
    let packed = dir.join("packed.bin");
    fs::write(&packed, &data).map_err(io("write packed"))?;
    let m = dir.join("m");
    fs::create_dir_all(&m).map_err(io("mkdir m"))?;
    let h = mount_forked(&packed, offset as u64, false, &m)?;
    let listed: Vec<_> = fs::read_dir(&m)
        .map_err(io("list"))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    let write = fs::write(m.join("upper/no"), "x");
    finish(h)?;
    if !listed.iter().any(|n| n == "upper") || !listed.iter().any(|n| n == "work") {
        return Err(format!("listing: {listed:?}"));
    }
    match write {
        Err(e) if e.raw_os_error() == Some(libc_erofs()) => {}
        other => return Err(format!("write on a read-only mount: {other:?}")),
    }
    // Nothing written: the bytes are as they were.
    if fs::read(&packed).map_err(io("reread"))? != data {
        return Err("the read-only mount changed the file".into());
    }
    assert_not_mounted(&m)
}

fn libc_erofs() -> i32 {
    30
}

/// ext4 (extents, `metadata_csum`): directories made by the server get their generation
/// without breaking their block checksums, and overlayfs remakes `work/work` at each mount.
fn ext4_twice(dir: &Path) -> Result<(), String> {
    let seed = dir.join("seed");
    fs::create_dir_all(seed.join("upper")).map_err(io("seed"))?;
    fs::create_dir_all(seed.join("work")).map_err(io("seed"))?;
    let img = dir.join("ext4.img");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-O", "metadata_csum", "-d"])
        .arg(&seed)
        .arg(&img)
        .arg("64M"))?;
    let lower = dir.join("lower");
    fs::create_dir_all(&lower).map_err(io("lower"))?;
    fs::write(lower.join("gone"), "x").map_err(io("lower"))?;
    let (m, merged) = (dir.join("m"), dir.join("merged"));
    fs::create_dir_all(&m).map_err(io("mkdir m"))?;
    fs::create_dir_all(&merged).map_err(io("mkdir merged"))?;
    for round in 0..2 {
        let h = mount_forked(&img, 0, true, &m)?;
        overlay(&lower, &m, &merged).map_err(|e| format!("round {round}: {e}"))?;
        let d = merged.join(format!("d{round}"));
        let r = fs::create_dir(&d)
            .and_then(|()| fs::write(d.join("f"), "data"))
            .and_then(|()| {
                if round == 0 {
                    fs::remove_file(merged.join("gone"))
                } else {
                    Ok(())
                }
            })
            .map_err(io("write through the overlay"));
        umount(&merged)?;
        finish(h)?;
        r?;
        fsck_clean(&img)?;
    }
    let cat = debugfs(&img, "cat upper/d1/f")?;
    if !cat.contains("data") {
        return Err(format!("upper/d1/f:\n{cat}"));
    }
    Ok(())
}

/// A launcher that forks the server and then dies without teardown (killed, or a payload it
/// exec'd that exits): the server's parent-death signal makes it write the image back.
fn launcher_dies(dir: &Path) -> Result<(), String> {
    let img = make_image(dir)?;
    let m = dir.join("m");
    fs::create_dir_all(&m).map_err(io("mkdir m"))?;
    let pid_file = dir.join("server.pid");
    let launcher = sifr_sys::process::fork_child(|| {
        let Ok(h) = mount_forked(&img, 0, true, &m) else {
            return 2;
        };
        if fs::write(m.join("upper/before-death"), "kept\n").is_err()
            || fs::write(&pid_file, h.pid().to_string()).is_err()
        {
            return 3;
        }
        // No teardown: the handle is never dropped.
        std::mem::forget(h);
        0
    })
    .map_err(|e| format!("fork the launcher: {e}"))?;
    let (_, status) = rustix::process::waitpid(
        rustix::process::Pid::from_raw(launcher),
        rustix::process::WaitOptions::empty(),
    )
    .map_err(io("wait for the launcher"))?
    .ok_or("no launcher status")?;
    if status.exit_status() != Some(0) {
        return Err(format!("launcher failed: {status:?}"));
    }
    let server = fs::read_to_string(&pid_file).map_err(io("server pid"))?;
    let proc_dir = PathBuf::from(format!("/proc/{}", server.trim()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // Not our child (the launcher's, now gone): watch for it to disappear.
    while proc_dir.exists()
        && !fs::read_to_string(proc_dir.join("stat")).is_ok_and(|s| s.contains(") Z "))
    {
        if std::time::Instant::now() > deadline {
            return Err(format!("server {} still running", server.trim()));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH).map_err(io("detach"))?;
    fsck_clean(&img)?;
    let cat = debugfs(&img, "cat upper/before-death")?;
    if !cat.contains("kept") {
        return Err(format!("upper/before-death:\n{cat}"));
    }
    assert_not_mounted(&m)
}
