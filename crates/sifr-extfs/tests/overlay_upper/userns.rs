//! The user-namespace cases of `overlay_upper`: the server and kernel overlayfs with
//! `userxattr` as a uid mapped to root outside, and as an ordinary uid mapped to itself (how
//! sifr launches an unprivileged container).

use super::*;

/// Outside: the lower tree and the image; inside a user namespace where the test runs as
/// [`INNER_ID`] with its capabilities (as an unprivileged Apptainer launch does), the server
/// and kernel overlayfs with `userxattr`; outside again, the judges.
pub(crate) fn userns_overlay(dir: &Path) -> Result<(), String> {
    let img = make_image_owned(dir, Some(INNER_ID))?;
    let lower = dir.join("lower");
    fs::create_dir_all(lower.join("redo")).map_err(io("lower"))?;
    fs::write(lower.join("gone"), "x").map_err(io("lower"))?;
    fs::write(lower.join("redo/old"), "x").map_err(io("lower"))?;
    let id = INNER_ID.to_string();
    let me = std::env::current_exe().map_err(io("own path"))?;
    run(Command::new("unshare")
        .args([
            "--user",
            "--map-user",
            &id,
            "--map-group",
            &id,
            "--keep-caps",
        ])
        .args(["--mount", "--propagation", "private"])
        .arg(me)
        .arg(dir)
        .env(ROLE, "userns"))?;
    fsck_clean(&img)?;
    let st = debugfs(&img, "stat upper/new")?;
    if !st.contains(&format!("User:  {id}")) || !st.contains(&format!("Group:  {id}")) {
        return Err(format!("upper/new is not the requester's:\n{st}"));
    }
    let st = debugfs(&img, "stat upper/gone")?;
    if !st.contains("Type: character special") || !st.contains("Device major/minor number: 00:00") {
        return Err(format!("upper/gone is not a 0/0 whiteout:\n{st}"));
    }
    let ea = debugfs(&img, "ea_list upper/redo")?;
    if !ea.contains("user.overlay.opaque") {
        return Err(format!("upper/redo has no user.overlay.opaque:\n{ea}"));
    }
    Ok(())
}

pub(crate) fn userns_step(dir: &Path) -> Result<(), String> {
    let (m, merged) = (dir.join("m"), dir.join("merged"));
    fs::create_dir_all(&m).map_err(io("mkdir m"))?;
    fs::create_dir_all(&merged).map_err(io("mkdir merged"))?;
    let h = mount_forked(&dir.join("overlay.img"), 0, true, &m)?;
    let data = format!(
        "userxattr,lowerdir={},upperdir={},workdir={}",
        dir.join("lower").display(),
        m.join("upper").display(),
        m.join("work").display()
    );
    let c = std::ffi::CString::new(data.clone()).map_err(io("options"))?;
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::empty(),
        c.as_c_str(),
    )
    .map_err(|e| format!("mount overlay {data}: {e}"))?;
    let o = |p: &str| merged.join(p);
    fs::write(o("new"), "made in a user namespace\n").map_err(io("write new"))?;
    fs::remove_file(o("gone")).map_err(io("unlink gone"))?;
    fs::remove_dir_all(o("redo")).map_err(io("rm -r redo"))?;
    fs::create_dir(o("redo")).map_err(io("mkdir redo"))?;
    let seen = fs::read_dir(o("redo")).map_err(io("list redo"))?.count();
    umount(&merged)?;
    finish(h)?;
    if seen != 0 {
        return Err(format!(
            "redo: {seen} entries show through the opaque directory"
        ));
    }
    Ok(())
}

/// Issue 22: sifr's unprivileged launcher runs as an ordinary user in a user namespace that maps
/// only that user's uid and gid to themselves, keeping its capabilities there. An image whose
/// `upper/` and `work/` are the user's but whose group is root's (what `mkfs.ext3 -d` of the
/// user's own tree gives) must still be writable: the kernel refuses writes to inodes whose ids
/// the namespace cannot map (`EACCES` without asking the server), so overlayfs failed to create
/// `work/work` and went read-only. Here [`INNER_ID`] really is an ordinary uid on the host
/// (`setpriv` drops root first) that unshares its own namespace, as the launcher does; a
/// 0666 node of /dev/fuse is bound over the host's 0600 one inside this test's private mount
/// namespace only. The writes go through the same [`userns_step`] as [`userns_overlay`].
pub(crate) fn self_mapped_overlay(dir: &Path) -> Result<(), String> {
    let img = make_image_owned(dir, None)?;
    let seed = dir.join("seed");
    for d in ["upper", "work"] {
        std::os::unix::fs::chown(seed.join(d), Some(INNER_ID), Some(0)).map_err(io("chown"))?;
    }
    run(Command::new("mkfs.ext3")
        .args(["-q", "-F", "-d"])
        .arg(&seed)
        .arg(&img)
        .arg("64M"))?;
    let lower = dir.join("lower");
    fs::create_dir_all(lower.join("redo")).map_err(io("lower"))?;
    fs::write(lower.join("gone"), "x").map_err(io("lower"))?;
    fs::write(lower.join("redo/old"), "x").map_err(io("lower"))?;
    for p in [
        &img,
        dir,
        &lower,
        &lower.join("redo"),
        &lower.join("gone"),
        &lower.join("redo/old"),
    ] {
        std::os::unix::fs::chown(p, Some(INNER_ID), Some(INNER_ID)).map_err(io("chown"))?;
    }
    // The temporary directory above the case is root's 0700.
    if let Some(parent) = dir.parent() {
        fs::set_permissions(parent, fs::Permissions::from_mode(0o711)).map_err(io("chmod"))?;
    }
    let node = dir.join("fuse");
    run(Command::new("mknod")
        .arg(&node)
        .args(["-m", "0666", "c", "10", "229"]))?;
    run(Command::new("mount")
        .arg("--bind")
        .arg(&node)
        .arg("/dev/fuse"))?;
    let id = INNER_ID.to_string();
    let me = std::env::current_exe().map_err(io("own path"))?;
    let inside = run(Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups"])
        .args(["unshare", "--user", "--map-current-user", "--keep-caps"])
        .args(["--mount", "--propagation", "private"])
        .arg(me)
        .arg(dir)
        .env(ROLE, "userns"));
    let unbound = umount(Path::new("/dev/fuse"));
    inside?;
    unbound?;
    fsck_clean(&img)?;
    let st = debugfs(&img, "stat upper/new")?;
    if !st.contains(&format!("User:  {id}")) || !st.contains(&format!("Group:  {id}")) {
        return Err(format!("upper/new is not the requester's:\n{st}"));
    }
    // Shown as the user's group inside, but never written as such.
    let st = debugfs(&img, "stat upper")?;
    if !st.contains(&format!("User:  {id}")) || !st.contains("Group:     0") {
        return Err(format!("upper's owner changed in the image:\n{st}"));
    }
    let st = debugfs(&img, "stat upper/gone")?;
    if !st.contains("Type: character special") || !st.contains("Device major/minor number: 00:00") {
        return Err(format!("upper/gone is not a 0/0 whiteout:\n{st}"));
    }
    let ea = debugfs(&img, "ea_list upper/redo")?;
    if !ea.contains("user.overlay.opaque") {
        return Err(format!("upper/redo has no user.overlay.opaque:\n{ea}"));
    }
    let st = debugfs(&img, "stat work/work")?;
    if !st.contains("Type: directory") {
        return Err(format!("overlayfs made no work/work:\n{st}"));
    }
    Ok(())
}
