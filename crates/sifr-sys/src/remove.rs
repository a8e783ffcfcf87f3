//! Recursive removal of a directory tree relative to a directory fd (`unlinkat`), never by path
//! string: used to delete an extracted image after the payload exits, when the launcher is
//! already inside the container's mount namespace and root, where the host path no longer
//! resolves but an fd opened before the namespace change still does.
//!
//! Runs on either side of the namespace change, with the caller's ids. Symlinks are removed,
//! never followed (`O_NOFOLLOW` on every directory opened). Read-only directories of the tree
//! are made writable (`fchmod 0700`) first so that an image's `0555` directories can be
//! emptied. Must not: cross into another filesystem on purpose (it does not check `st_dev`:
//! the tree is one the caller created and owns, with no mount inside it).

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};

use crate::error::{Error, Result};

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Deepest nesting removed; deeper trees fail rather than exhausting the stack.
const MAX_DEPTH: usize = 1024;

/// Remove `name` (a plain entry name) in `parent`, recursively. `what` names it in errors.
pub fn remove_tree_at(parent: BorrowedFd<'_>, name: &str, what: &str) -> Result<()> {
    remove_entry(parent, name.as_bytes(), what, 0)
}

fn remove_entry(parent: BorrowedFd<'_>, name: &[u8], what: &str, depth: usize) -> Result<()> {
    let fail = |op, e: rustix::io::Errno| Error::new(op, what, e);
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::ISDIR | rustix::io::Errno::PERM) => {}
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(fail("remove an entry of", e)),
    }
    if depth >= MAX_DEPTH {
        return Err(fail("remove (too deep)", rustix::io::Errno::LOOP));
    }
    let dir = rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())
        .map_err(|e| fail("open a directory of", e))?;
    let _ = rustix::fs::fchmod(&dir, Mode::RWXU);
    let mut names = Vec::new();
    let entries = Dir::read_from(&dir).map_err(|e| fail("read a directory of", e))?;
    for ent in entries {
        let ent = ent.map_err(|e| fail("read a directory of", e))?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        names.push((n.to_vec(), ent.file_type() == FileType::Directory));
    }
    for (n, is_dir) in names {
        if is_dir {
            remove_entry(dir.as_fd(), &n, what, depth + 1)?;
        } else {
            match rustix::fs::unlinkat(&dir, n.as_slice(), AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(rustix::io::Errno::ISDIR) => remove_entry(dir.as_fd(), &n, what, depth + 1)?,
                Err(e) => return Err(fail("remove an entry of", e)),
            }
        }
    }
    drop(dir);
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(|e| fail("remove", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn removes_read_only_trees_and_symlinks_without_following_them() {
        let base = std::env::temp_dir().join(format!("sys-remove-{}", std::process::id()));
        let outside = base.join("outside");
        let tree = base.join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        std::fs::write(tree.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        std::fs::set_permissions(tree.join("a"), std::fs::Permissions::from_mode(0o555)).unwrap();
        let fd = rustix::fs::open(&base, DIR_FLAGS, Mode::empty()).unwrap();
        remove_tree_at(fd.as_fd(), "tree", "tree").unwrap();
        assert!(!tree.exists());
        assert!(outside.join("keep").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
