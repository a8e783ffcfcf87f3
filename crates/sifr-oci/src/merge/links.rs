//! Hard links in the newest-first merge: a link names the inode its target had when the
//! link was made, which the image may no longer show at the target path (see the rules in
//! the parent module). Links wait here until that version is met.

use std::io::{self, Read};

use super::{DevicePolicy, EntryKind, EntryMeta, MergeError, Merger, RelPath, Result};

/// A hard link waiting for the version of its target it was made to.
pub(super) struct Waiting {
    pub(super) link: RelPath,
    pub(super) layer: usize,
    pub(super) layer_name: String,
    /// `Some(i)`: the target is the same layer's entry before entry `i` (found by a re-read);
    /// `None`: the target comes from a layer below `layer`.
    pub(super) before: Option<u64>,
}

impl Merger<'_> {
    /// Are links waiting for an earlier entry of layer `k`?
    pub(super) fn waiting_in(&self, k: usize) -> bool {
        self.deferred
            .values()
            .flatten()
            .any(|w| w.layer == k && w.before.is_some())
    }

    /// Remove and return the links waiting for `target` that `pick` accepts.
    pub(super) fn take_waiting(
        &mut self,
        target: &RelPath,
        pick: impl Fn(&Waiting) -> bool,
    ) -> Vec<Waiting> {
        let Some(list) = self.deferred.get_mut(target) else {
            return Vec::new();
        };
        let (taken, kept): (Vec<Waiting>, Vec<Waiting>) = list.drain(..).partition(|w| pick(w));
        if kept.is_empty() {
            self.deferred.remove(target);
        } else {
            *list = kept;
        }
        taken
    }

    /// `target` was just delivered as the inode the waiting links were made to.
    pub(super) fn link_waiting(
        &mut self,
        target: &RelPath,
        meta: &EntryMeta,
        waiting: Vec<Waiting>,
    ) -> Result<()> {
        for w in waiting {
            self.deliver(
                &w.link,
                &EntryKind::HardLink(target.clone()),
                meta,
                &mut io::empty(),
            )?;
        }
        Ok(())
    }

    /// Is `target` absent from what layer `k` saw when it was made (hidden by upper layers)?
    pub(super) fn hidden_for(&self, k: usize, target: &RelPath) -> bool {
        if self.whiteouts.contains(target) || self.opaque.contains(&RelPath::root()) {
            return true;
        }
        target.ancestors().any(|a| {
            self.whiteouts.contains(a)
                || self.opaque.contains(a)
                || self.seen.get(a).is_some_and(|n| !n.dir && n.layer > k)
        })
    }

    pub(super) fn link(
        &mut self,
        k: usize,
        layer: &str,
        path: RelPath,
        target: RelPath,
        meta: &EntryMeta,
    ) -> Result<()> {
        let missing = |path: RelPath, target: RelPath| MergeError::LinkTargetMissing {
            layer: layer.to_string(),
            path,
            target,
        };
        // Below a non-directory of this same layer (a symlink, typically) nothing exists:
        // links are never resolved through symlinks.
        let below_non_dir = target
            .ancestors()
            .any(|a| self.seen.get(a).is_some_and(|n| !n.dir && n.layer == k));
        if target.is_root() || target == path || below_non_dir {
            return Err(missing(path, target));
        }
        let before = if self.layer_paths.contains(&target) {
            // An earlier entry of this layer: link to it if it is what the image shows.
            match self.seen.get(&target).copied() {
                Some(n) if n.layer == k && n.dir => {
                    return Err(MergeError::LinkToDirectory {
                        layer: layer.to_string(),
                        path,
                        target,
                    });
                }
                Some(n) if n.layer == k && n.explicit && !self.hidden_for(k, &target) => {
                    let kind = EntryKind::HardLink(target);
                    self.deliver(&path, &kind, meta, &mut io::empty())?;
                    self.mark_non_dir(k, &path);
                    return Ok(());
                }
                // An upper layer replaced it: find it again by re-reading this layer.
                _ => {
                    self.reread = true;
                    Some(self.index)
                }
            }
        } else if self.pending_wh.contains(&target) {
            // This layer whited out the lower version before linking to it.
            return Err(missing(path, target));
        } else {
            // The version a lower layer has; not one this layer may add later.
            None
        };
        self.mark_non_dir(k, &path);
        self.deferred.entry(target).or_default().push(Waiting {
            link: path,
            layer: k,
            layer_name: layer.to_string(),
            before,
        });
        Ok(())
    }

    /// `kind` at `path` is the inode the `waiting` links were made to, but the image does
    /// not show it there: deliver its content at the first link's path, the other links
    /// pointing to that one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn resolve(
        &mut self,
        k: usize,
        layer: &str,
        path: &RelPath,
        kind: EntryKind,
        meta: &EntryMeta,
        data: &mut dyn Read,
        waiting: Vec<Waiting>,
    ) -> Result<()> {
        let first = waiting[0].link.clone();
        match kind {
            EntryKind::Directory => Err(MergeError::LinkToDirectory {
                layer: waiting[0].layer_name.clone(),
                path: first,
                target: path.clone(),
            }),
            EntryKind::HardLink(next) => {
                // A link to a link: wait for what this one names, as this layer had it here.
                let before = self.layer_paths.contains(&next).then_some(self.index);
                self.reread |= before.is_some();
                let list = self.deferred.entry(next).or_default();
                for w in waiting {
                    list.push(Waiting {
                        layer: k,
                        before,
                        ..w
                    });
                }
                Ok(())
            }
            EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. }
                if self.opts.devices != DevicePolicy::Keep =>
            {
                if self.opts.devices == DevicePolicy::Reject {
                    return Err(MergeError::Device {
                        layer: layer.to_string(),
                        path: path.clone(),
                    });
                }
                self.stats.devices_skipped += waiting.len() as u64;
                Ok(())
            }
            kind => {
                self.deliver(&first, &kind, meta, data)?;
                for w in &waiting[1..] {
                    let link = EntryKind::HardLink(first.clone());
                    self.deliver(&w.link, &link, meta, &mut io::empty())?;
                }
                Ok(())
            }
        }
    }
}
