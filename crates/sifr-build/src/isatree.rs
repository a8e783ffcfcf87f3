//! A SquashFS root filesystem (a bare image, or a SIF's partition at its offset) seen as an
//! `sifr_isa::Tree`, so the CPU-feature scan reads an image in place, never extracting it. Used by
//! `sifr inspect --isa` and by `pull`, which scans the image it has just written.
//!
//! Reads only; the scan itself runs on rayon threads, so callers must not be on the launch path.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Mutex;

use sifr_isa::{Entry, ImageFacts, Tree};
use sifr_squashfs::read::{Archive, FileType, Inode};

/// The image's regular files (with their inodes, for reading) and symlinks, listed once.
struct SquashTree {
    archive: Archive,
    files: HashMap<String, Inode>,
    entries: Mutex<Option<Vec<Entry>>>,
}

impl SquashTree {
    fn open(path: &Path, offset: u64) -> Result<SquashTree, ScanError> {
        let file = File::open(path).map_err(ScanError::Open)?;
        let archive = Archive::open(file, offset)?;
        let mut out = Vec::new();
        let mut files = HashMap::new();
        archive.walk_with(|p, inode| {
            let rel = p.to_string_lossy().into_owned();
            match inode.file_type() {
                FileType::File => {
                    out.push(Entry::File {
                        path: rel.clone(),
                        size: inode.size(),
                    });
                    files.insert(rel, inode.clone());
                }
                FileType::Symlink => {
                    if let Some(t) = inode.symlink_target() {
                        out.push(Entry::Symlink {
                            path: rel,
                            target: t.to_string_lossy().into_owned(),
                        });
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        Ok(SquashTree {
            archive,
            files,
            entries: Mutex::new(Some(out)),
        })
    }
}

impl Tree for SquashTree {
    fn entries(&self) -> Result<Vec<Entry>, sifr_isa::Error> {
        Ok(self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default())
    }

    fn read(&self, path: &str, limit: Option<usize>) -> io::Result<Vec<u8>> {
        let inode = self
            .files
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let size = inode.size() as usize;
        let mut buf = vec![0u8; limit.map_or(size, |l| l.min(size))];
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .archive
                .read_at(inode, done as u64, &mut buf[done..])
                .map_err(io::Error::other)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        Ok(buf)
    }
}

/// Why a SquashFS image could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot open the image")]
    Open(#[source] io::Error),
    #[error("cannot read the SquashFS image")]
    Read(#[from] sifr_squashfs::read::Error),
    #[error("cannot scan the image's programs")]
    Scan(#[from] sifr_isa::Error),
}

/// Scan the SquashFS image at `offset` in `path`.
pub fn scan_squashfs(
    path: &Path,
    offset: u64,
    progress: &(dyn Fn(sifr_isa::Progress) + Sync),
) -> Result<ImageFacts, ScanError> {
    let tree = SquashTree::open(path, offset)?;
    Ok(ImageFacts::scan_tree(&tree, progress)?)
}
