//! Whole images kept in the cache directory: the SIF files that launches of image URIs
//! (`sifr exec docker://...`, `oras://`, `https://`) convert or download once and then run
//! from. Apptainer keeps them the same way, one directory per kind under the cache root
//! (`oci-tmp` for converted registry and archive images, `oras`, `net`), one file per entry
//! named by a key that changes whenever the source does (a manifest digest, mixed with the
//! platform where an index could give another image).
//!
//! An entry becomes visible only complete: it is written to a dot-file beside it and renamed.
//! Filling takes an advisory lock per key (`flock` on `.<key>.lock`), so concurrent first
//! launches of one image convert it once; the others wait and find the entry. Dot-files are
//! the cache's own bookkeeping, never entries; a filler killed mid-way leaves its `.<key>.tmp`,
//! which the next fill of the key replaces and [`ImageCache::sweep`] (`sifr cache clean`)
//! removes.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::cache::CacheError;
use crate::pathlock::{How, PathLock};

/// The directory of one kind of whole-image entries.
#[derive(Debug, Clone)]
pub struct ImageCache {
    dir: PathBuf,
}

/// A key from its parts: the hex SHA-256 of the parts, each followed by a NUL byte, so that
/// no two lists of parts give the same text to hash.
pub fn key(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether `key` can name an entry: no path separators, no dot-file, not empty.
fn valid_key(key: &str) -> bool {
    !key.is_empty() && !key.starts_with('.') && !key.contains('/')
}

impl ImageCache {
    /// The entries of `kind` (`oci-tmp`, `oras`, `net`) under the cache root `root`.
    pub fn new(root: &Path, kind: &str) -> Self {
        ImageCache {
            dir: root.join(kind),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry `key` lives, whether or not it is there.
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// The entry's path if it is complete.
    pub fn get(&self, key: &str) -> Option<PathBuf> {
        let p = self.path(key);
        p.is_file().then_some(p)
    }

    /// The entry `key`, filled first if it is missing: under the key's lock, `fill` writes
    /// the image to the path it is given (a fresh dot-file in the cache directory, so the
    /// rename that publishes it stays on one filesystem). Returns the entry and whether this
    /// call filled it. A failing `fill` leaves no entry and no temporary file.
    pub fn get_or_fill<E: From<CacheError>>(
        &self,
        key: &str,
        fill: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(PathBuf, bool), E> {
        let entry = self.path(key);
        if !valid_key(key) {
            return Err(CacheError::Io {
                path: entry,
                source: io::Error::new(io::ErrorKind::InvalidInput, "invalid cache key"),
            }
            .into());
        }
        if entry.is_file() {
            return Ok((entry, false));
        }
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let lock_path = self.dir.join(format!(".{key}.lock"));
        let wait = How {
            wait: true,
            create: true,
        };
        let lock = PathLock::acquire(&lock_path, wait).map_err(io_err(&lock_path))?;
        // Another process may have filled it while this one waited.
        if entry.is_file() {
            return Ok((entry, false));
        }
        // Whatever a killed filler left under this name is ours to replace: we hold the lock.
        let tmp = self.dir.join(format!(".{key}.tmp"));
        let _ = fs::remove_file(&tmp);
        let filled = fill(&tmp).and_then(|()| {
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&tmp))?;
            fs::rename(&tmp, &entry).map_err(io_err(&entry))?;
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err(&self.dir)(e).into())
        });
        if filled.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        drop(lock);
        filled.map(|()| (entry, true))
    }

    /// Remove what killed fillers left: each `.<key>.tmp`, and the files a filler wrote beside
    /// it (`..<key>.tmp.*`), whose key's lock nobody holds (a filler that is still running
    /// holds it). Returns how many were removed.
    pub fn sweep(&self) -> Result<usize, CacheError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut removed = 0;
        for e in rd {
            let name = e.map_err(io_err(&self.dir))?.file_name();
            // `.KEY.tmp`, and whatever a filler writes beside it to produce it (a SIF writer's
            // `..KEY.tmp.sifr-build-PID`): the fill of KEY's, held under KEY's lock.
            let Some(key) = name
                .to_str()
                .filter(|n| n.starts_with('.') && !n.ends_with(".lock"))
                .and_then(|n| n.trim_start_matches('.').split_once(".tmp"))
                .map(|(key, _)| key)
            else {
                continue;
            };
            let lock_path = self.dir.join(format!(".{key}.lock"));
            let free = How {
                wait: false,
                create: false,
            };
            if let Ok(Some(_held)) = PathLock::acquire(&lock_path, free)
                && fs::remove_file(self.dir.join(&name)).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Remove the entry `key` and its lock file (unlinked while held, see
    /// [`crate::pathlock`]); `Ok(false)` when there was none. A launch filling the key at
    /// that moment keeps its lock, and the entry it publishes stays.
    pub fn remove(&self, key: &str) -> Result<bool, CacheError> {
        let entry = self.path(key);
        let lock_path = self.dir.join(format!(".{key}.lock"));
        let free = How {
            wait: false,
            create: false,
        };
        let lock = PathLock::acquire(&lock_path, free).map_err(io_err(&lock_path))?;
        let removed = match fs::remove_file(&entry) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err(&entry)(e)),
        };
        if let Some(lock) = lock {
            lock.remove().map_err(io_err(&lock_path))?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_their_parts() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_eq!(key(&[b"x"]), key(&[b"x"]));
        assert_eq!(key(&[b"x"]).len(), 64);
    }

    #[test]
    fn an_entry_is_filled_once_and_a_failed_fill_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let c = ImageCache::new(d.path(), "oci-tmp");
        let failed: Result<_, CacheError> = c.get_or_fill("k", |tmp| {
            fs::write(tmp, b"half").unwrap();
            Err(CacheError::Io {
                path: tmp.to_path_buf(),
                source: io::Error::other("boom"),
            })
        });
        assert!(failed.is_err());
        assert!(c.get("k").is_none());
        let names: Vec<_> = fs::read_dir(c.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![".k.lock".to_string()]);

        let (p, filled) = c
            .get_or_fill::<CacheError>("k", |tmp| fs::write(tmp, b"image").map_err(io_err(tmp)))
            .unwrap();
        assert!(filled);
        assert_eq!(fs::read(&p).unwrap(), b"image");
        let (p2, filled) = c
            .get_or_fill::<CacheError>("k", |_| panic!("filled twice"))
            .unwrap();
        assert_eq!((p2, filled), (p, false));
        assert!(c.remove("k").unwrap());
        assert!(!c.remove("k").unwrap());
        assert!(fs::read_dir(c.dir()).unwrap().next().is_none());
    }

    #[test]
    fn a_killed_fillers_temporary_file_is_swept_but_a_running_ones_is_not() {
        let d = tempfile::tempdir().unwrap();
        let c = ImageCache::new(d.path(), "oci-tmp");
        fs::create_dir_all(c.dir()).unwrap();
        for k in ["dead", "alive"] {
            fs::write(c.dir().join(format!(".{k}.tmp")), b"half").unwrap();
            fs::write(c.dir().join(format!(".{k}.lock")), b"").unwrap();
        }
        let held = fs::OpenOptions::new()
            .write(true)
            .open(c.dir().join(".alive.lock"))
            .unwrap();
        held.lock().unwrap();
        fs::write(c.dir().join("..dead.tmp.sifr-build-42"), b"partial").unwrap();
        fs::write(c.dir().join("..alive.tmp.sifr-build-43"), b"partial").unwrap();
        assert_eq!(c.sweep().unwrap(), 2);
        assert!(!c.dir().join(".dead.tmp").exists());
        assert!(!c.dir().join("..dead.tmp.sifr-build-42").exists());
        assert!(c.dir().join("..alive.tmp.sifr-build-43").exists());
        assert!(c.dir().join(".alive.tmp").exists());
        drop(held);
        assert_eq!(c.sweep().unwrap(), 2);
        assert_eq!(ImageCache::new(d.path(), "none").sweep().unwrap(), 0);
    }

    #[test]
    fn concurrent_fillers_fill_once() {
        let d = tempfile::tempdir().unwrap();
        let c = ImageCache::new(d.path(), "net");
        let fills = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let (p, _) = c
                        .get_or_fill::<CacheError>("same", |tmp| {
                            fills.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            fs::write(tmp, b"one").map_err(io_err(tmp))
                        })
                        .unwrap();
                    assert_eq!(fs::read(p).unwrap(), b"one");
                });
            }
        });
        assert_eq!(fills.into_inner(), 1);
    }

    #[test]
    fn keys_that_would_leave_the_directory_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let c = ImageCache::new(d.path(), "net");
        for bad in ["", "../x", ".hidden", "a/b"] {
            assert!(
                c.get_or_fill::<CacheError>(bad, |_| Ok(())).is_err(),
                "{bad}"
            );
        }
    }
}
