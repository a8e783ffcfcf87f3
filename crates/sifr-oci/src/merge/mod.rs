//! Merge image layers newest-first into one stream of entries, applying OCI whiteouts,
//! without extracting anything to disk.
//!
//! Layers are given base-first (manifest order) and read top-down. The first time a path is
//! met it is final: every later (lower) entry for it is shadowed and skipped unread, which is
//! what lets the SquashFS writer take entries straight from the tar streams.
//!
//! Rules, in the order they are checked for an entry of layer `k`:
//! - names are normalised lexically ([`RelPath::normalise`]): a leading `/` is dropped (and
//!   counted), `..` above the root is an error, NUL is an error;
//! - `DIR/.wh.NAME` hides `DIR/NAME` and `DIR/.wh..wh..opq` hides all of `DIR`'s lower
//!   contents, both for layers below `k` only (OCI image spec, "Whiteouts"); other
//!   `.wh..wh.*` names (AUFS bookkeeping) are ignored; `.wh.` with no name is an error;
//! - an entry below a path that an upper layer made a non-directory is shadowed; below a
//!   path that the same layer made a non-directory (a symlink, then a file "through" it) it
//!   is an error — nothing is ever resolved through a symlink;
//! - a path already delivered from an upper layer is shadowed, except that a directory entry
//!   sets the metadata of a directory that was only implied by upper-layer children;
//! - a second entry for the same path within one layer is skipped and counted (first wins;
//!   tar extraction would let the last win, but honest layers never repeat a path, and
//!   first-wins never has to take back what was already streamed to the sink);
//! - a hard link names the inode its target had when the link was made: an earlier entry
//!   of the same layer, or else the version a lower layer provides (never one the same layer
//!   adds later). When the image shows that version at the target path, the link is
//!   delivered as a link to it; when an upper layer replaced or whited out the target, the
//!   old content is delivered at the link's path instead — found by re-reading the same
//!   layer (the only case that reads a layer twice) or further down. A link to a directory,
//!   to the root, through a non-directory, or to nothing is an error;
//! - an entry hidden by an upper whiteout still implies its parent directories (extraction
//!   would have created them), so those are delivered as plain directories if nothing else
//!   provides them; an upper layer's non-directory hides everything below it in lower
//!   layers, even when a still higher layer's directory hides that non-directory itself.
//!
//! Memory: the merger keeps paths, never file data: every delivered path and every parent it
//! implies (a key plus a few bytes), every whiteout and opaque directory, the paths of the
//! layer being read (for links to its earlier entries), and the hard links waiting for a
//! target. For an image of a million files that is on the order of 100 MiB. Tar metadata per entry (headers, long names, PAX records) is
//! capped by [`MergeOptions::max_metadata_bytes`] before the tar parser buffers it.

mod layer;
mod links;
mod path;
mod sink;
mod tar_entry;

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};

pub use layer::{Compression, FileLayer, Layer, MemoryLayer, decompress, newest_occurrences};
pub use path::{Normalised, PathError, RelPath};
pub use sink::{
    Duplicate, EntryKind, EntryMeta, MemEntry, MemorySink, Sink, SinkError, SquashfsSink,
};

use layer::MetaBudget;
use links::Waiting;
use tar_entry::{Parsed, meta_of};

/// What to do with character/block device nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DevicePolicy {
    /// Deliver them: inside a SquashFS image they are inert data (images are mounted nodev).
    #[default]
    Keep,
    /// Drop them (they still shadow lower layers); for unprivileged sandbox builds.
    Skip,
    /// Fail the merge naming the node.
    Reject,
}

/// Merge settings.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    pub devices: DevicePolicy,
    /// Cap on the tar metadata (headers, GNU long names, PAX records) read for one entry.
    pub max_metadata_bytes: u64,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            devices: DevicePolicy::Keep,
            // Linux paths are at most 4 KiB and xattrs 64 KiB each; 1 MiB leaves room for
            // many xattrs while keeping a hostile record from exhausting memory.
            max_metadata_bytes: 1 << 20,
        }
    }
}

/// What the merge did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Entries delivered to the sink.
    pub entries: u64,
    /// Entries skipped because an upper layer shadowed or whited them out.
    pub shadowed: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    /// Names that started with `/` and were taken relative to the root.
    pub absolute_names: u64,
    /// Repeated paths within one layer (skipped).
    pub duplicates: u64,
    pub devices_skipped: u64,
    /// Layers read a second time to find a hard link's replaced target.
    pub layers_reread: u64,
}

/// Why a merge failed; every variant names the layer and the entry.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("cannot open layer `{layer}`")]
    Open {
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot read layer `{layer}`")]
    Read {
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error("entry `{name}` in layer `{layer}` is rejected")]
    Name {
        layer: String,
        name: String,
        #[source]
        source: PathError,
    },
    #[error("hard link `{path}` in layer `{layer}` has a rejected target `{target}`")]
    LinkName {
        layer: String,
        path: RelPath,
        target: String,
        #[source]
        source: PathError,
    },
    #[error("symlink `{path}` in layer `{layer}` has a NUL byte in its target")]
    SymlinkNul { layer: String, path: RelPath },
    #[error(
        "entry `{path}` in layer `{layer}` lies under `{parent}`, which the same layer made a non-directory"
    )]
    ParentNotDirectory {
        layer: String,
        path: RelPath,
        parent: RelPath,
    },
    #[error("non-directory `{path}` in layer `{layer}` replaces a directory the same layer filled")]
    ReplacesDirectory { layer: String, path: RelPath },
    #[error("layer `{layer}` makes the image root a non-directory")]
    RootNotDirectory { layer: String },
    #[error("whiteout `{name}` in layer `{layer}` names no file")]
    BadWhiteout { layer: String, name: String },
    #[error("device node `{path}` in layer `{layer}` is not allowed")]
    Device { layer: String, path: RelPath },
    #[error(
        "hard link `{path}` in layer `{layer}` points to `{target}`, which is not in the image"
    )]
    LinkTargetMissing {
        layer: String,
        path: RelPath,
        target: RelPath,
    },
    #[error("hard link `{path}` in layer `{layer}` points to directory `{target}`")]
    LinkToDirectory {
        layer: String,
        path: RelPath,
        target: RelPath,
    },
    #[error("entry `{name}` in layer `{layer}` has unsupported tar type {kind:?}")]
    Unsupported {
        layer: String,
        name: String,
        kind: char,
    },
    #[error("bad header field of `{name}` in layer `{layer}`")]
    Header {
        layer: String,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot store `{path}`")]
    Sink {
        path: RelPath,
        #[source]
        source: SinkError,
    },
}

type Result<T, E = MergeError> = std::result::Result<T, E>;

/// Merge `layers` (base first, as listed in a manifest) into `sink`.
pub fn merge(
    layers: &[&dyn Layer],
    sink: &mut dyn Sink,
    opts: &MergeOptions,
) -> Result<MergeStats> {
    let mut m = Merger {
        sink,
        opts: opts.clone(),
        stats: MergeStats::default(),
        seen: HashMap::new(),
        whiteouts: HashSet::new(),
        opaque: HashSet::new(),
        pending_wh: HashSet::new(),
        pending_opq: Vec::new(),
        deferred: HashMap::new(),
        layer_paths: HashSet::new(),
        index: 0,
        reread: false,
    };
    for k in (0..layers.len()).rev() {
        m.layer(k, layers[k])?;
    }
    m.finish()
}

#[derive(Debug, Clone, Copy)]
struct Node {
    dir: bool,
    /// Index of the layer that delivered (or implied) it.
    layer: usize,
    /// Delivered by an entry of its own, not only implied by a child.
    explicit: bool,
}

enum Visibility {
    Visible,
    Hidden,
    Duplicate,
}

struct Merger<'s> {
    sink: &'s mut dyn Sink,
    opts: MergeOptions,
    stats: MergeStats,
    seen: HashMap<RelPath, Node>,
    /// Hidden for all layers below the one that recorded them.
    whiteouts: HashSet<RelPath>,
    opaque: HashSet<RelPath>,
    /// The current layer's whiteouts; they apply from the next (lower) layer on.
    pending_wh: HashSet<RelPath>,
    pending_opq: Vec<RelPath>,
    /// Target path → links waiting for it.
    deferred: HashMap<RelPath, Vec<Waiting>>,
    /// Every path the current layer has had so far (for links to earlier entries).
    layer_paths: HashSet<RelPath>,
    /// Position of the current entry in the current layer pass.
    index: u64,
    /// A link of the current layer waits for an earlier entry: re-read the layer at its end.
    reread: bool,
}

/// Which pass over a layer [`Merger::read_layer`] makes.
#[derive(Clone, Copy)]
enum Pass {
    /// The first: every entry is considered.
    Full,
    /// A re-read that only delivers hard links whose targets came later in the layer.
    ResolveOnly,
}

impl Merger<'_> {
    fn layer(&mut self, k: usize, layer: &dyn Layer) -> Result<()> {
        let name = layer.describe();
        self.reread = false;
        self.read_layer(k, layer, &name, Pass::Full)?;
        // A chain of links can need another pass; three is plenty for real layers.
        let mut passes = 0;
        while self.reread && passes < 3 && self.waiting_in(k) {
            self.reread = false;
            passes += 1;
            // Later passes see the same whiteouts and names again: keep the first pass's
            // counters, only the delivered entries change.
            let counted = self.stats.clone();
            self.read_layer(k, layer, &name, Pass::ResolveOnly)?;
            self.stats = MergeStats {
                entries: self.stats.entries,
                devices_skipped: self.stats.devices_skipped,
                layers_reread: counted.layers_reread + 1,
                ..counted
            };
        }
        // Whatever no pass found in this layer is looked for below it.
        for w in self.deferred.values_mut().flatten() {
            if w.layer == k {
                w.before = None;
            }
        }
        self.layer_paths.clear();
        self.whiteouts.extend(self.pending_wh.drain());
        self.opaque.extend(self.pending_opq.drain(..));
        Ok(())
    }

    /// One pass over a layer; [`Pass::ResolveOnly`] is the re-read that only looks for
    /// deferred hard-link targets.
    fn read_layer(&mut self, k: usize, layer: &dyn Layer, name: &str, pass: Pass) -> Result<()> {
        let resolve_only = matches!(pass, Pass::ResolveOnly);
        let read_err = |source| MergeError::Read {
            layer: name.to_string(),
            source,
        };
        let raw = layer.open().map_err(|source| MergeError::Open {
            layer: name.to_string(),
            source,
        })?;
        let (_, stream) = decompress(raw).map_err(read_err)?;
        let budget = MetaBudget::default();
        let tail = layer::TailPad::default();
        let mut archive =
            tar::Archive::new(budget.guard(tail.wrap(stream), self.opts.max_metadata_bytes));
        let mut entries = archive.entries().map_err(read_err)?;
        let mut stopped_early = false;
        self.index = 0;
        loop {
            self.index += 1;
            budget.arm();
            let next = entries.next();
            budget.disarm();
            let Some(entry) = next else { break };
            let mut entry = entry.map_err(read_err)?;
            if resolve_only {
                if !self.waiting_in(k) {
                    stopped_early = true;
                    break;
                }
                if let Some(p) = self.parse(name, &mut entry)?
                    && let Some(kind) = p.kind
                {
                    let index = self.index;
                    let waiting = self.take_waiting(&p.path, |w| {
                        w.layer == k && w.before.is_some_and(|b| b > index)
                    });
                    if !waiting.is_empty() {
                        let meta = meta_of(name, &mut entry)?;
                        self.resolve(k, name, &p.path, kind, &meta, &mut entry, waiting)?;
                    }
                }
            } else {
                self.entry(k, name, &mut entry)?;
            }
            io::copy(&mut entry, &mut io::sink()).map_err(read_err)?;
            let physical = entry.header().entry_size().map_err(read_err)?;
            tail.entry_end(entry.raw_file_position(), physical);
        }
        if !stopped_early {
            // Read past the end-of-archive blocks to the end of the blob, so that a layer
            // verified by digest (see `FileLayer::verify`) is checked in full.
            io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(read_err)?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, k: usize, layer: &str, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let Some(Parsed {
            path,
            kind: Some(kind),
        }) = self.parse(layer, e)?
        else {
            return Ok(());
        };
        let meta = meta_of(layer, e)?;
        let is_dir = kind == EntryKind::Directory;
        let visibility = self.visibility(k, layer, &path, is_dir)?;
        self.layer_paths.insert(path.clone());
        // Links from upper layers made to this layer's (or a lower) version of this path.
        let mut waiting = self.take_waiting(&path, |w| w.before.is_none() && w.layer > k);
        if !waiting.is_empty() && !matches!(visibility, Visibility::Visible) {
            let waiting = std::mem::take(&mut waiting);
            self.resolve(k, layer, &path, kind.clone(), &meta, e, waiting)?;
        }
        match visibility {
            Visibility::Hidden => {
                self.stats.shadowed += 1;
                // A non-directory here replaced whatever lower layers had below this path,
                // even though an upper layer's directory hides the entry itself.
                if !is_dir && self.seen.get(&path).is_some_and(|n| n.dir && n.layer > k) {
                    self.pending_opq.push(path.clone());
                }
                return self.materialise_parents(k, &path);
            }
            Visibility::Duplicate => {
                self.stats.duplicates += 1;
                return Ok(());
            }
            Visibility::Visible => {}
        }
        if is_dir && let Some(w) = waiting.first() {
            return Err(MergeError::LinkToDirectory {
                layer: w.layer_name.clone(),
                path: w.link.clone(),
                target: path,
            });
        }
        if let EntryKind::HardLink(target) = &kind {
            self.link(k, layer, path.clone(), target.clone(), &meta)?;
            return self.link_waiting(&path, &meta, waiting);
        }
        if matches!(
            kind,
            EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. }
        ) {
            match self.opts.devices {
                DevicePolicy::Keep => {}
                DevicePolicy::Skip => {
                    self.stats.devices_skipped += 1 + waiting.len() as u64;
                    self.mark_non_dir(k, &path);
                    return Ok(());
                }
                DevicePolicy::Reject => {
                    return Err(MergeError::Device {
                        layer: layer.to_string(),
                        path,
                    });
                }
            }
        }
        self.deliver(&path, &kind, &meta, e)?;
        self.mark(k, &path, is_dir);
        self.link_waiting(&path, &meta, waiting)
    }

    fn visibility(
        &self,
        k: usize,
        layer: &str,
        path: &RelPath,
        is_dir: bool,
    ) -> Result<Visibility> {
        if path.is_root() {
            if !is_dir {
                return Err(MergeError::RootNotDirectory {
                    layer: layer.to_string(),
                });
            }
        } else {
            if self.opaque.contains(&RelPath::root()) {
                return Ok(Visibility::Hidden);
            }
            for a in path.ancestors() {
                if let Some(n) = self.seen.get(a)
                    && !n.dir
                {
                    if n.layer > k {
                        return Ok(Visibility::Hidden);
                    }
                    return Err(MergeError::ParentNotDirectory {
                        layer: layer.to_string(),
                        path: path.clone(),
                        parent: RelPath::new(&String::from_utf8_lossy(a)).unwrap_or_default(),
                    });
                }
                if self.whiteouts.contains(a) || self.opaque.contains(a) {
                    return Ok(Visibility::Hidden);
                }
            }
            if self.whiteouts.contains(path) {
                return Ok(Visibility::Hidden);
            }
        }
        Ok(match self.seen.get(path) {
            None => Visibility::Visible,
            Some(n) if n.dir && !n.explicit => {
                if is_dir {
                    Visibility::Visible
                } else if n.layer > k {
                    Visibility::Hidden
                } else {
                    return Err(MergeError::ReplacesDirectory {
                        layer: layer.to_string(),
                        path: path.clone(),
                    });
                }
            }
            Some(n) if n.layer > k => Visibility::Hidden,
            Some(_) => Visibility::Duplicate,
        })
    }

    /// An entry hidden by an upper whiteout still made its layer create its missing
    /// parents (extraction would `mkdir -p` them); deliver those above the hiding point
    /// that nothing else provides, as plain `0755` root-owned directories. A lower layer's
    /// own entry for one of them still sets its metadata. Only tars that omit parent
    /// entries get here.
    fn materialise_parents(&mut self, k: usize, path: &RelPath) -> Result<()> {
        if self.opaque.contains(&RelPath::root()) {
            return Ok(());
        }
        let mut missing = Vec::new();
        for a in path.ancestors() {
            if self.whiteouts.contains(a) {
                break;
            }
            match self.seen.get(a) {
                Some(n) if !n.dir => break,
                Some(_) => {}
                None => missing.push(RelPath::new(&String::from_utf8_lossy(a)).unwrap_or_default()),
            }
            if self.opaque.contains(a) {
                break;
            }
        }
        let meta = EntryMeta {
            mode: 0o755,
            ..EntryMeta::default()
        };
        for a in missing {
            self.deliver(&a, &EntryKind::Directory, &meta, &mut io::empty())?;
            self.seen.insert(
                a,
                Node {
                    dir: true,
                    layer: k,
                    explicit: false,
                },
            );
        }
        Ok(())
    }

    fn deliver(
        &mut self,
        path: &RelPath,
        kind: &EntryKind,
        meta: &EntryMeta,
        data: &mut dyn Read,
    ) -> Result<()> {
        self.sink
            .entry(path, kind, meta, data)
            .map_err(|source| MergeError::Sink {
                path: path.clone(),
                source,
            })?;
        self.stats.entries += 1;
        Ok(())
    }

    /// [`Merger::mark`] for an entry that is not a directory.
    fn mark_non_dir(&mut self, k: usize, path: &RelPath) {
        self.mark(k, path, false);
    }

    /// Record `path` as taken by layer `k`, and its parents as implied directories.
    fn mark(&mut self, k: usize, path: &RelPath, dir: bool) {
        let node = Node {
            dir,
            layer: k,
            explicit: true,
        };
        if let Some(n) = self.seen.get_mut(path) {
            *n = node;
        } else {
            self.seen.insert(path.clone(), node);
        }
        let mut cur = path.parent();
        while let Some(p) = cur {
            if p.is_root() || self.seen.contains_key(&p) {
                break;
            }
            cur = p.parent();
            self.seen.insert(
                p,
                Node {
                    dir: true,
                    layer: k,
                    explicit: false,
                },
            );
        }
    }

    fn finish(self) -> Result<MergeStats> {
        let first = self
            .deferred
            .into_iter()
            .filter(|(_, l)| !l.is_empty())
            .min_by(|a, b| a.0.cmp(&b.0));
        if let Some((target, list)) = first {
            let w = &list[0];
            return Err(MergeError::LinkTargetMissing {
                layer: w.layer_name.clone(),
                path: w.link.clone(),
                target,
            });
        }
        Ok(self.stats)
    }
}
