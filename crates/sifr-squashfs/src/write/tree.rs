//! In-memory directory tree of the image being written: one small node per entry, built
//! from `add` calls in any order (parents are created on demand and filled in when their
//! own entry arrives).
//!
//! Nodes hold metadata only; file contents were already compressed and written by the
//! data pipeline, so a node refers to its data by an index into the pipeline's file table.
//! This module does no I/O.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::error::{Result, WriteError};
use crate::format::{INVALID_XATTR, MAX_NAME_LEN};

pub(crate) const ROOT: u32 = 0;

#[derive(Debug)]
pub(crate) enum NodeKind {
    Dir(Vec<u32>),
    /// Index into the data pipeline's file table.
    File(u32),
    Symlink(Box<[u8]>),
    /// Image path of the link's target, resolved when the image is finished.
    HardLink(Box<[u8]>),
    BlockDev(u32),
    CharDev(u32),
    Fifo,
    Socket,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub name: Box<[u8]>,
    pub parent: u32,
    pub kind: NodeKind,
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    pub xattr: u32,
}

/// The metadata of one entry, already normalised for the image.
pub(crate) struct Meta {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    pub xattr: u32,
}

pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    /// (parent, name) -> node: lets entries arrive in any order without scanning.
    index: HashMap<(u32, Box<[u8]>), u32>,
}

/// Split an image path into its names, refusing `..` and over-long names.
pub(crate) fn components(path: &Path) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => {
                let n = n.as_bytes();
                if n.len() > MAX_NAME_LEN {
                    return Err(WriteError::InvalidPath {
                        path: path.to_path_buf(),
                        reason: "a name is longer than 256 bytes",
                    });
                }
                out.push(n);
            }
            Component::ParentDir | Component::Prefix(_) => {
                return Err(WriteError::InvalidPath {
                    path: path.to_path_buf(),
                    reason: "`..` is not allowed",
                });
            }
        }
    }
    Ok(out)
}

impl Tree {
    pub(crate) fn new(root_meta: Meta) -> Self {
        Tree {
            nodes: vec![Node {
                name: Box::default(),
                parent: ROOT,
                kind: NodeKind::Dir(Vec::new()),
                mode: root_meta.mode,
                uid: root_meta.uid,
                gid: root_meta.gid,
                mtime: root_meta.mtime,
                xattr: root_meta.xattr,
            }],
            index: HashMap::new(),
        }
    }

    fn child(&self, parent: u32, name: &[u8]) -> Option<u32> {
        self.index.get(&(parent, Box::from(name))).copied()
    }

    /// Find or create the directory at `names`, creating missing parents with `implicit`.
    fn dir_at(&mut self, path: &Path, names: &[&[u8]], implicit: &Meta) -> Result<u32> {
        let mut cur = ROOT;
        for (i, name) in names.iter().enumerate() {
            cur = match self.child(cur, name) {
                Some(n) if matches!(self.nodes[n as usize].kind, NodeKind::Dir(_)) => n,
                Some(_) => {
                    let parent: PathBuf =
                        names[..=i].iter().map(|n| OsStr::from_bytes(n)).collect();
                    return Err(WriteError::ParentNotDirectory {
                        path: path.to_path_buf(),
                        parent,
                    });
                }
                None => self.push(cur, name, NodeKind::Dir(Vec::new()), implicit),
            };
        }
        Ok(cur)
    }

    fn push(&mut self, parent: u32, name: &[u8], kind: NodeKind, meta: &Meta) -> u32 {
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            name: Box::from(name),
            parent,
            kind,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
            xattr: meta.xattr,
        });
        self.index.insert((parent, Box::from(name)), id);
        if let NodeKind::Dir(children) = &mut self.nodes[parent as usize].kind {
            children.push(id);
        }
        id
    }

    /// Insert or replace the entry at `path`. A directory entry for an existing directory
    /// only updates its metadata (tar streams often name a directory after its contents);
    /// any other existing entry is replaced, dropping a replaced directory's subtree.
    pub(crate) fn insert(
        &mut self,
        path: &Path,
        kind: NodeKind,
        meta: Meta,
        implicit: &Meta,
    ) -> Result<u32> {
        let names = components(path)?;
        let Some((last, parents)) = names.split_last() else {
            if !matches!(kind, NodeKind::Dir(_)) {
                return Err(WriteError::RootNotDirectory {
                    path: path.to_path_buf(),
                });
            }
            self.set_meta(ROOT, meta);
            return Ok(ROOT);
        };
        let parent = self.dir_at(path, parents, implicit)?;
        if let Some(existing) = self.child(parent, last) {
            let node = &mut self.nodes[existing as usize];
            match (&node.kind, &kind) {
                (NodeKind::Dir(_), NodeKind::Dir(_)) => {}
                _ => node.kind = kind,
            }
            self.set_meta(existing, meta);
            return Ok(existing);
        }
        Ok(self.push(parent, last, kind, &meta))
    }

    fn set_meta(&mut self, id: u32, meta: Meta) {
        let n = &mut self.nodes[id as usize];
        n.mode = meta.mode;
        n.uid = meta.uid;
        n.gid = meta.gid;
        n.mtime = meta.mtime;
        n.xattr = meta.xattr;
    }

    /// Resolve an image path to a node, without creating anything.
    pub(crate) fn lookup(&self, path: &[u8]) -> Option<u32> {
        let mut cur = ROOT;
        for name in path
            .split(|&b| b == b'/')
            .filter(|n| !n.is_empty() && *n != b".")
        {
            cur = self.child(cur, name)?;
        }
        Some(cur)
    }

    /// Full image path of a node, for error messages.
    pub(crate) fn path_of(&self, mut id: u32) -> PathBuf {
        let mut names = Vec::new();
        while id != ROOT {
            let n = &self.nodes[id as usize];
            names.push(OsStr::from_bytes(&n.name).to_owned());
            id = n.parent;
        }
        let mut p = PathBuf::from("/");
        p.extend(names.iter().rev());
        p
    }

    /// Children that are still part of the tree, sorted by name bytes as squashfs requires.
    pub(crate) fn sorted_children(&self, dir: u32) -> Vec<u32> {
        let NodeKind::Dir(children) = &self.nodes[dir as usize].kind else {
            return Vec::new();
        };
        let mut v: Vec<u32> = children
            .iter()
            .copied()
            .filter(|&c| self.nodes[c as usize].parent == dir)
            .collect();
        v.sort_by(|a, b| {
            self.nodes[*a as usize]
                .name
                .cmp(&self.nodes[*b as usize].name)
        });
        v.dedup();
        v
    }

    /// Drop the lookup index once no more entries can arrive.
    pub(crate) fn seal(&mut self) {
        self.index = HashMap::new();
    }
}

impl Meta {
    pub(crate) fn implicit_dir(mtime: u32) -> Self {
        Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime,
            xattr: INVALID_XATTR,
        }
    }
}
