//! `rename` with its flags: `RENAME_NOREPLACE`, `RENAME_EXCHANGE`, and `RENAME_WHITEOUT`, the
//! one kernel overlayfs needs of an upper layer (the source name is left pointing at a new 0/0
//! character device, in the same step).
//!
//! ext2 has no rename of its own: the target entry is repointed in place (or added), the
//! source entry removed or repointed at the whiteout, a moved directory's `..` repointed, and
//! the link counts of both parents follow. Runs under the state's lock.

use std::time::SystemTime;

use fuser::{Errno, RenameFlags};
use sifr_sys::ext2fs::{Fs, Ino, S_IFCHR, Time, ft};

use crate::fs::{self as f, Index, State, errno};

/// Renames `name` in `from` to `newname` in `to`; a whiteout is owned by `owner` (uid, gid),
/// the requester, as the kernel's own whiteouts are.
pub(crate) fn rename(
    st: &mut State,
    owner: (u32, u32),
    from: Ino,
    name: &[u8],
    to: Ino,
    newname: &[u8],
    flags: RenameFlags,
) -> Result<(), Errno> {
    let now = SystemTime::now();

    if newname.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    // For a whiteout; taken before the filesystem is borrowed.
    let generation = st.generation();
    let (fs, ix) = st.parts()?;
    let src = f::existing(fs, ix, from, name)?;
    let si = fs.read_inode(src).map_err(errno)?;
    let src_ft = ft::of_mode(si.i_mode);
    let dst = ix.lookup(fs, to, newname)?;
    if flags.contains(RenameFlags::RENAME_EXCHANGE) {
        let dst = dst.ok_or(Errno::ENOENT)?;
        let di = fs.read_inode(dst).map_err(errno)?;
        fs.replace_entry(from, name, dst, ft::of_mode(di.i_mode))
            .map_err(errno)?;
        ix.added(from, name, dst);
        fs.replace_entry(to, newname, src, src_ft).map_err(errno)?;
        ix.added(to, newname, src);
        if si.is_dir() {
            reparent(fs, ix, src, from, to)?;
        }
        if di.is_dir() {
            reparent(fs, ix, dst, to, from)?;
        }
        for n in [src, dst] {
            f::update(fs, n, |i| i.set_time(Time::Change, now)).map_err(errno)?;
        }
        f::touch_dir(fs, from, now)?;
        return f::touch_dir(fs, to, now);
    }
    if dst.is_some() && flags.contains(RenameFlags::RENAME_NOREPLACE) {
        return Err(Errno::EEXIST);
    }
    if dst == Some(src) {
        // Two names of one inode: POSIX says do nothing.
        return Ok(());
    }
    if let Some(d) = dst {
        replaceable(fs, si.is_dir(), d)?;
        fs.replace_entry(to, newname, src, src_ft).map_err(errno)?;
    } else {
        fs.link(to, newname, src, src_ft).map_err(errno)?;
    }
    ix.added(to, newname, src);
    if flags.contains(RenameFlags::RENAME_WHITEOUT) {
        // The 0/0 character device overlayfs reads as "deleted here", owned by the
        // requester as the kernel's own whiteouts are.
        let w = fs.new_inode(from, S_IFCHR).map_err(errno)?;
        let mut wi = f::fresh(S_IFCHR, owner.0, owner.1, now, generation);
        wi.set_device(0, 0);
        fs.write_new_inode(w, &wi).map_err(errno)?;
        fs.inode_alloc_stats(w, 1, false);
        fs.replace_entry(from, name, w, ft::CHR).map_err(errno)?;
        ix.added(from, name, w);
    } else {
        fs.unlink(from, name, src).map_err(errno)?;
        ix.removed(from, name);
    }
    if si.is_dir() {
        reparent(fs, ix, src, from, to)?;
    }
    f::update(fs, src, |i| i.set_time(Time::Change, now)).map_err(errno)?;
    f::touch_dir(fs, from, now)?;
    if to != from {
        f::touch_dir(fs, to, now)?;
    }
    if let Some(d) = dst {
        if si.is_dir() {
            // The replaced directory's `..` link to the new parent goes with it.
            f::update(fs, to, |i| {
                i.i_links_count = i.i_links_count.saturating_sub(1)
            })
            .map_err(errno)?;
        }
        st.drop_link(d, now)?;
    }
    Ok(())
}

/// Whether renaming `src` over `dst` is allowed by their types and `dst`'s contents.
fn replaceable(fs: &Fs, src_dir: bool, dst: Ino) -> Result<(), Errno> {
    let d = fs.read_inode(dst).map_err(errno)?;
    match (src_dir, d.is_dir()) {
        (true, false) => Err(Errno::ENOTDIR),
        (false, true) => Err(Errno::EISDIR),
        (true, true) if f::has_children(fs, dst)? => Err(Errno::ENOTEMPTY),
        _ => Ok(()),
    }
}

/// A directory moved from `from` to `to`: its `..` and the two link counts follow.
fn reparent(fs: &mut Fs, ix: &mut Index, dir: Ino, from: Ino, to: Ino) -> Result<(), Errno> {
    if from == to {
        return Ok(());
    }
    fs.replace_entry(dir, b"..", to, ft::DIR).map_err(errno)?;
    ix.added(dir, b"..", to);
    f::update(fs, from, |i| {
        i.i_links_count = i.i_links_count.saturating_sub(1)
    })
    .map_err(errno)?;
    f::update(fs, to, |i| i.i_links_count += 1).map_err(errno)?;
    Ok(())
}
