//! The owners the kernel is told about: an inode owned by an id that the mount's user
//! namespace does not map is shown as owned by the mount's owner.
//!
//! The kernel reads the uid and gid of a FUSE reply in the user namespace that mounted the
//! filesystem. An id that namespace does not map becomes the invalid id (shown as 65534), and
//! the VFS then refuses every write to that inode with `EACCES` before asking the server
//! (`inode_permission`: "unmapped ids" cannot be written back), whatever the mode, the owner or
//! the capabilities. sifr's unprivileged launcher maps only the user's own uid and gid to
//! themselves, so a directory the user owns but whose group is root's (what `mkfs -d` of a
//! user's tree gives, or a root-made image) could not be written, and kernel overlayfs could
//! not create its `work/work`.
//!
//! Showing such ids as the mount's owner (`user_id`/`group_id`, the launcher's ids) grants
//! nothing new: in such a namespace the user owns the image file and could rewrite any inode
//! of it directly. Ids the namespace maps (all of them in the initial namespace, the
//! subordinate ranges under fakeroot) are shown as stored; the image itself is never changed
//! by this, only a `chown` the user asks for writes ids.

use fuser::FileAttr;
use sifr_sys::ns::IdRange;

/// Which ids the mount's namespace maps, and whom to show instead of the others.
#[derive(Debug, Clone, Default)]
pub(crate) struct Owners {
    /// `None`: every id is shown as stored.
    maps: Option<(Vec<IdRange>, Vec<IdRange>)>,
    uid: u32,
    gid: u32,
}

impl Owners {
    /// For a mount made by the calling process: its own namespace's maps and ids. In the
    /// initial namespace, or where the maps cannot be read, ids are shown as stored.
    pub(crate) fn of_caller() -> Self {
        let maps = if sifr_sys::ns::in_initial_user_namespace() {
            None
        } else {
            sifr_sys::ns::own_id_maps().ok()
        };
        Owners {
            maps,
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        }
    }

    #[cfg(test)]
    fn new(uids: Vec<IdRange>, gids: Vec<IdRange>, uid: u32, gid: u32) -> Self {
        Owners {
            maps: Some((uids, gids)),
            uid,
            gid,
        }
    }

    /// `a` with its uid and gid replaced by the mount owner's where the namespace cannot
    /// name them.
    pub(crate) fn shown(&self, mut a: FileAttr) -> FileAttr {
        if let Some((uids, gids)) = &self.maps {
            if !uids.iter().any(|r| r.maps_inside(a.uid)) {
                a.uid = self.uid;
            }
            if !gids.iter().any(|r| r.maps_inside(a.gid)) {
                a.gid = self.gid;
            }
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sifr_sys::ns::parse_id_map;

    fn attr(uid: u32, gid: u32) -> FileAttr {
        FileAttr {
            uid,
            gid,
            ..crate::fs::negative()
        }
    }

    #[test]
    fn ids_a_self_mapped_namespace_cannot_name_are_shown_as_the_owner() {
        // The unprivileged launcher's namespace: 1001 -> 1001 only.
        let o = Owners::new(
            parse_id_map("1001 1001 1"),
            parse_id_map("1001 1001 1"),
            1001,
            1001,
        );
        let a = o.shown(attr(1001, 0));
        assert_eq!((a.uid, a.gid), (1001, 1001));
        let a = o.shown(attr(0, 0));
        assert_eq!((a.uid, a.gid), (1001, 1001));
        let a = o.shown(attr(1001, 1001));
        assert_eq!((a.uid, a.gid), (1001, 1001));
    }

    #[test]
    fn mapped_ids_are_shown_as_stored() {
        // Fakeroot: root to the user, then a subordinate range.
        let m = "0 1001 1\n1 100000 65536\n";
        let o = Owners::new(parse_id_map(m), parse_id_map(m), 0, 0);
        let a = o.shown(attr(0, 5));
        assert_eq!((a.uid, a.gid), (0, 5));
        let a = o.shown(attr(70000, 42));
        assert_eq!((a.uid, a.gid), (0, 42));
        // The initial namespace (or unreadable maps): nothing is replaced.
        let a = Owners::default().shown(attr(7, 8));
        assert_eq!((a.uid, a.gid), (7, 8));
    }
}
