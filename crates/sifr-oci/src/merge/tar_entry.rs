//! Reading one tar member: its name normalised, whiteouts recorded, its type and metadata
//! classified. Nothing here decides visibility.

use std::io::{self, Read};

use super::{EntryKind, EntryMeta, MergeError, Merger, RelPath, Result};

/// An entry read from a tar, classified.
pub(super) struct Parsed {
    pub(super) path: RelPath,
    pub(super) kind: Option<EntryKind>,
}

impl Merger<'_> {
    /// Normalise the name and handle whiteouts; `None` when the entry was a whiteout or is
    /// to be ignored.
    pub(super) fn parse<R: Read>(
        &mut self,
        layer: &str,
        e: &mut tar::Entry<'_, R>,
    ) -> Result<Option<Parsed>> {
        let raw = e.path_bytes().into_owned();
        let lossy = || String::from_utf8_lossy(&raw).into_owned();
        let etype = e.header().entry_type();
        if etype.is_pax_global_extensions() {
            return Ok(None);
        }
        let n = RelPath::normalise(&raw).map_err(|source| MergeError::Name {
            layer: layer.to_string(),
            name: lossy(),
            source,
        })?;
        if n.was_absolute {
            self.stats.absolute_names += 1;
        }
        let path = n.path;
        if let Some(hidden) = path.file_name().and_then(|f| f.strip_prefix(b".wh.")) {
            let parent = path.parent().unwrap_or_default();
            if hidden == b".wh..opq" {
                self.pending_opq.push(parent);
                self.stats.opaque_dirs += 1;
            } else if hidden.starts_with(b".wh.") {
                // AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): meaningless in OCI.
            } else {
                let target = parent.join(hidden).ok_or_else(|| MergeError::BadWhiteout {
                    layer: layer.to_string(),
                    name: lossy(),
                })?;
                self.pending_wh.insert(target);
                self.stats.whiteouts += 1;
            }
            return Ok(None);
        }
        let h = e.header();
        let kind = match etype {
            tar::EntryType::Regular | tar::EntryType::Continuous if raw.ends_with(b"/") => {
                Some(EntryKind::Directory)
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                Some(EntryKind::File { size: e.size() })
            }
            tar::EntryType::Directory => Some(EntryKind::Directory),
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if target.contains(&0) {
                    return Err(MergeError::SymlinkNul {
                        layer: layer.to_string(),
                        path,
                    });
                }
                Some(EntryKind::Symlink(target))
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let t = RelPath::normalise(&target).map_err(|source| MergeError::LinkName {
                    layer: layer.to_string(),
                    path: path.clone(),
                    target: String::from_utf8_lossy(&target).into_owned(),
                    source,
                })?;
                Some(EntryKind::HardLink(t.path))
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let field = |r: io::Result<Option<u32>>| {
                    r.map(Option::unwrap_or_default)
                        .map_err(|source| MergeError::Header {
                            layer: layer.to_string(),
                            name: lossy(),
                            source,
                        })
                };
                let (major, minor) = (field(h.device_major())?, field(h.device_minor())?);
                Some(if etype == tar::EntryType::Char {
                    EntryKind::CharDevice { major, minor }
                } else {
                    EntryKind::BlockDevice { major, minor }
                })
            }
            tar::EntryType::Fifo => Some(EntryKind::Fifo),
            other => {
                return Err(MergeError::Unsupported {
                    layer: layer.to_string(),
                    name: lossy(),
                    kind: other.as_byte() as char,
                });
            }
        };
        Ok(Some(Parsed { path, kind }))
    }
}

pub(super) fn meta_of<R: Read>(layer: &str, e: &mut tar::Entry<'_, R>) -> Result<EntryMeta> {
    let name = || String::from_utf8_lossy(&e.path_bytes()).into_owned();
    let bad = |source: io::Error| (layer.to_string(), source);
    let h = e.header();
    let fields = (|| -> io::Result<(u32, u64, u64, u64)> {
        Ok((h.mode()?, h.uid()?, h.gid()?, h.mtime()?))
    })();
    let (mode, uid, gid, mtime) = fields.map_err(|source| {
        let (layer, source) = bad(source);
        MergeError::Header {
            layer,
            name: name(),
            source,
        }
    })?;
    let id = |v: u64| {
        u32::try_from(v).map_err(|_| MergeError::Header {
            layer: layer.to_string(),
            name: name(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("owner id {v} exceeds 32 bits"),
            ),
        })
    };
    let (uid, gid) = (id(uid)?, id(gid)?);
    let mut xattrs = Vec::new();
    let name_owned = name();
    if let Some(exts) = e.pax_extensions().map_err(|source| MergeError::Header {
        layer: layer.to_string(),
        name: name_owned.clone(),
        source,
    })? {
        for ext in exts {
            let ext = ext.map_err(|source| MergeError::Header {
                layer: layer.to_string(),
                name: name_owned.clone(),
                source,
            })?;
            if let Some(x) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((x.to_vec(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(EntryMeta {
        mode: mode & 0o7777,
        uid,
        gid,
        mtime: mtime.min(i64::MAX as u64) as i64,
        xattrs,
    })
}
