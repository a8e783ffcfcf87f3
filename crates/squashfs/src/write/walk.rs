//! Directory-walk front end: feeds a host directory tree into a `Writer`.
//!
//! Every entry is read with lstat (symlinks are stored, never followed) and llistxattr/
//! lgetxattr; names are visited in byte order so the image does not depend on readdir
//! order. Files sharing a (device, inode) pair become hard links to the first path seen.
//! A directory's own entries are added before its subdirectories are descended into, so
//! only one directory listing is held at a time per level. It must not change the source.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::data;
use super::error::{Result, WriteError};
use super::{Entry, EntryKind, FileSource, Options, Summary, Writer, Xattr};

/// Most bytes of small files read ahead per batch (bounds the walk's memory).
const PREFETCH_BATCH: u64 = 32 << 20;

/// What the walk reads besides names and contents.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Read extended attributes (errors other than "not supported" are fatal).
    pub xattrs: bool,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions { xattrs: true }
    }
}

/// Pack the directory `src` into a new image written to `out`.
pub fn from_dir<W: Write + Seek>(src: &Path, out: W, opts: Options) -> Result<Summary> {
    let walk = WalkOptions {
        xattrs: opts.xattrs,
    };
    let mut w = Writer::new(out, opts)?;
    w.add_tree(src, &walk)?;
    w.finish()
}

fn major(rdev: u64) -> u32 {
    (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32
}

fn minor(rdev: u64) -> u32 {
    ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32
}

fn read_xattrs(path: &Path) -> Result<Vec<Xattr>> {
    let err = |source| WriteError::Xattr {
        path: path.to_path_buf(),
        source,
    };
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(err(e)),
    };
    let mut out = Vec::new();
    for name in names {
        // A value removed between list and get is simply gone.
        if let Some(value) = xattr::get(path, &name).map_err(err)? {
            out.push(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            });
        }
    }
    Ok(out)
}

impl<W: Write + Seek> Writer<W> {
    /// Add the contents of host directory `src` as the image root (`src`'s own metadata
    /// becomes the root directory's).
    pub fn add_tree(&mut self, src: &Path, walk: &WalkOptions) -> Result<()> {
        let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
        self.add_host_entry(src, Path::new("/"), walk, &mut links, None)?;
        // Depth-first, each directory's entries in byte order.
        let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = src.join(&rel);
            let rd = fs::read_dir(&dir).map_err(|e| WriteError::read(&dir, e))?;
            let mut names: Vec<OsString> = Vec::new();
            for ent in rd {
                names.push(ent.map_err(|e| WriteError::read(&dir, e))?.file_name());
            }
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let mut subdirs = Vec::new();
            // Batches of names: small regular files in a batch are read and hashed on the
            // worker pool first (bounded to PREFETCH_BATCH bytes), then every entry is added
            // in name order, so the image is the same as a one-by-one walk.
            let mut start = 0;
            while start < names.len() {
                let mut end = start;
                let mut bytes = 0u64;
                let mut want: Vec<(usize, PathBuf)> = Vec::new();
                while end < names.len() && bytes < PREFETCH_BATCH && end - start < 4096 {
                    let host = dir.join(&names[end]);
                    if let Ok(md) = fs::symlink_metadata(&host) {
                        let fresh = md.nlink() < 2 || !links.contains_key(&(md.dev(), md.ino()));
                        if md.is_file() && md.len() <= data::PREFETCH_SMALL_FILE && fresh {
                            bytes += md.len();
                            want.push((end, host));
                        }
                    }
                    end += 1;
                }
                let paths: Vec<&Path> = want.iter().map(|(_, p)| p.as_path()).collect();
                let mut loaded = data::prefetch(&self.data, &paths).into_iter();
                let mut want = want.iter().map(|(i, _)| *i).peekable();
                for (i, name) in names[start..end].iter().enumerate() {
                    let pre = if want.peek() == Some(&(start + i)) {
                        want.next();
                        loaded.next().flatten()
                    } else {
                        None
                    };
                    let child = rel.join(name);
                    let host = src.join(&child);
                    let pre = match pre {
                        Some(Ok(v)) => Some(v),
                        Some(Err(e)) => return Err(WriteError::read(&host, e)),
                        None => None,
                    };
                    if self.add_host_entry(&host, &child, walk, &mut links, pre)? {
                        subdirs.push(child);
                    }
                }
                start = end;
            }
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    /// Add one host entry at `image_path`; returns whether it is a directory to descend.
    fn add_host_entry(
        &mut self,
        host: &Path,
        image_path: &Path,
        walk: &WalkOptions,
        links: &mut HashMap<(u64, u64), PathBuf>,
        pre: Option<(Vec<u8>, [u8; 32])>,
    ) -> Result<bool> {
        let md = fs::symlink_metadata(host).map_err(|e| WriteError::read(host, e))?;
        let ft = md.file_type();
        let xattrs = if walk.xattrs {
            read_xattrs(host)?
        } else {
            Vec::new()
        };
        let entry = |kind| Entry {
            kind,
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            xattrs: xattrs.clone(),
        };
        if !ft.is_dir() && md.nlink() > 1 {
            match links.get(&(md.dev(), md.ino())) {
                Some(first) => {
                    let target = first.clone();
                    self.add(image_path, entry(EntryKind::HardLink(target)))?;
                    return Ok(false);
                }
                None => {
                    links.insert((md.dev(), md.ino()), image_path.to_path_buf());
                }
            }
        }
        let rdev = md.rdev();
        let e = if ft.is_dir() {
            entry(EntryKind::Directory)
        } else if ft.is_file() {
            entry(EntryKind::File(FileSource::Path(host)))
        } else if ft.is_symlink() {
            let t = fs::read_link(host).map_err(|e| WriteError::read(host, e))?;
            entry(EntryKind::Symlink(t))
        } else if ft.is_block_device() {
            entry(EntryKind::BlockDevice {
                major: major(rdev),
                minor: minor(rdev),
            })
        } else if ft.is_char_device() {
            entry(EntryKind::CharDevice {
                major: major(rdev),
                minor: minor(rdev),
            })
        } else if ft.is_fifo() {
            entry(EntryKind::Fifo)
        } else if ft.is_socket() {
            entry(EntryKind::Socket)
        } else {
            return Err(WriteError::read(
                host,
                io::Error::other("unknown file type"),
            ));
        };
        // Use read-ahead contents only if the entry is still the regular file that was read.
        let loaded = match (&pre, ft.is_file()) {
            (Some((data, hash)), true) if data.len() as u64 == md.len() => {
                Some((&data[..], *hash, host))
            }
            _ => None,
        };
        self.add_impl(image_path, e, loaded)?;
        Ok(ft.is_dir())
    }
}
