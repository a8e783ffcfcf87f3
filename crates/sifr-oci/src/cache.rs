//! Content-addressed blob cache: `<cachedir>/blob/sha256/<hex>`, safe for many processes.
//!
//! An entry only ever appears by `rename` of a complete, fsynced and digest-verified file, so
//! a reader sees a blob whole or not at all. Writers of the same digest serialise on an
//! advisory lock (`flock` through `File::lock`) on `<hex>.lock`, so concurrent pulls of one
//! image fetch each blob once: the second process waits, then finds the entry. Download
//! progress lives in `<hex>.partial`, owned by whoever holds the lock, which is what lets an
//! interrupted download resume with an HTTP Range request — even from another process.
//!
//! A lock is taken through [`crate::pathlock`], which re-checks after locking that the file
//! is still the one the path names, so whoever holds it may remove the lock file too.
//!
//! `cache list` reads [`BlobCache::list`]; `cache clean` walks [`BlobCache::entries`] (a blob
//! and its partial download are one entry) and removes each with [`BlobCache::remove`], lock
//! file included, which leaves an entry whose lock a running pull holds.
//!
//! This module does no network I/O; the caller supplies the bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hasher, VerifyError};
use crate::pathlock::{How, PathLock};

/// Cache failures, naming the file or digest involved.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache I/O failed on `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob written to `{path}` failed verification")]
    Verify {
        path: PathBuf,
        #[source]
        source: VerifyError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory used when no cache directory is configured: `APPTAINER_CACHEDIR`, then
/// `SINGULARITY_CACHEDIR`, then `$HOME/.apptainer/cache` (Apptainer's order). `env` looks a
/// variable up, so callers and tests decide where settings come from.
pub fn default_dir(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    set("APPTAINER_CACHEDIR")
        .or_else(|| set("SINGULARITY_CACHEDIR"))
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|h| Path::new(&h).join(".apptainer/cache")))
}

/// A partially downloaded blob handed to the fill callback of [`BlobCache::fetch`].
pub struct Partial<'a> {
    /// Open for appending, positioned at `offset`.
    pub file: &'a mut File,
    /// Bytes already present from an earlier, interrupted attempt.
    pub offset: u64,
}

/// The blob cache rooted at a cache directory.
#[derive(Debug, Clone)]
pub struct BlobCache {
    dir: PathBuf,
}

impl BlobCache {
    /// The lock of the blob `hex` (its file created when missing), waited for or only tried:
    /// `None` when another process holds it and `wait` is false.
    fn lock(&self, hex: &str, wait: bool) -> Result<Option<PathLock>, CacheError> {
        let lock_path = self.dir.join(format!("{hex}.lock"));
        PathLock::acquire(&lock_path, How { wait, create: true }).map_err(io_err(&lock_path))
    }

    /// A cache under `cachedir` (created on first write).
    pub fn new(cachedir: impl Into<PathBuf>) -> Self {
        BlobCache {
            dir: cachedir.into().join("blob").join("sha256"),
        }
    }

    /// Where the blob with this digest lives (whether or not it is there yet).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// The blob's path if it is cached.
    pub fn get(&self, digest: &Digest) -> Option<PathBuf> {
        let p = self.path(digest);
        p.is_file().then_some(p)
    }

    /// Store small content (manifests, configs) after checking its digest.
    pub fn put(&self, digest: &Digest, data: &[u8]) -> Result<PathBuf, CacheError> {
        self.fetch::<CacheError>(digest, Some(data.len() as u64), |p| {
            p.file.set_len(0).map_err(io_err(&self.dir))?;
            p.file.seek(SeekFrom::Start(0)).map_err(io_err(&self.dir))?;
            p.file.write_all(data).map_err(io_err(&self.dir))
        })
    }

    /// Return the cached blob, or take the per-digest lock and let `fill` append the rest of
    /// the blob to the partial file, then verify (digest, and `size` if known), fsync and
    /// publish it. A failing `fill` leaves the partial file for the next attempt to resume;
    /// a blob that fails verification is deleted, partial and all.
    pub fn fetch<E: From<CacheError>>(
        &self,
        digest: &Digest,
        size: Option<u64>,
        fill: impl FnOnce(&mut Partial<'_>) -> Result<(), E>,
    ) -> Result<PathBuf, E> {
        let final_path = self.path(digest);
        if final_path.is_file() {
            return Ok(final_path);
        }
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let lock = self.lock(&digest.hex(), true)?;
        // Another process may have finished while we waited.
        if final_path.is_file() {
            return Ok(final_path);
        }
        let partial_path = self.dir.join(format!("{}.partial", digest.hex()));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial_path)
            .map_err(io_err(&partial_path))?;
        let mut offset = file.metadata().map_err(io_err(&partial_path))?.len();
        if size.is_some_and(|s| offset > s) {
            file.set_len(0).map_err(io_err(&partial_path))?;
            offset = 0;
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(io_err(&partial_path))?;
        fill(&mut Partial {
            file: &mut file,
            offset,
        })?;
        file.flush().map_err(io_err(&partial_path))?;
        if let Err(source) = verify_file(&mut file, digest, size).map_err(io_err(&partial_path))? {
            let _ = fs::remove_file(&partial_path);
            return Err(CacheError::Verify {
                path: partial_path,
                source,
            }
            .into());
        }
        file.sync_all().map_err(io_err(&partial_path))?;
        drop(file);
        fs::rename(&partial_path, &final_path).map_err(io_err(&final_path))?;
        // Make the rename itself durable before anyone relies on the entry.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        drop(lock);
        Ok(final_path)
    }
}

/// One complete blob in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedBlob {
    pub digest: Digest,
    pub size: u64,
    pub modified: Option<std::time::SystemTime>,
}

/// What [`BlobCache::clean`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Complete blobs and partial downloads removed.
    pub removed: usize,
    pub bytes: u64,
    /// Blobs skipped because another process was writing them.
    pub busy: usize,
}

/// One entry of the cache as `cache clean` sees it: a digest with its complete blob, its
/// interrupted download, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The digest's hex, which names the entry's files.
    pub hex: String,
    /// Bytes of the complete blob and the partial download together.
    pub size: u64,
    /// The newest modification time of its files.
    pub modified: Option<std::time::SystemTime>,
}

/// What [`BlobCache::remove`] did to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Its files are gone: how many, and their bytes.
    Removed { files: usize, bytes: u64 },
    /// A running pull holds its lock; nothing was touched.
    Busy,
}

impl BlobCache {
    /// The complete blobs, sorted by digest; an absent cache is empty.
    pub fn list(&self) -> Result<Vec<CachedBlob>, CacheError> {
        let mut out = Vec::new();
        for (name, md) in self.read_dir()? {
            // Lock and partial files carry a suffix; only bare hex names are entries.
            let Ok(digest) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            if md.is_file() {
                out.push(CachedBlob {
                    digest,
                    size: md.len(),
                    modified: md.modified().ok(),
                });
            }
        }
        out.sort_by_key(|b| b.digest.hex());
        Ok(out)
    }

    /// Every digest with a complete blob or a partial download, sorted by hex; an absent cache
    /// is empty. Lock files are not entries (see the module docs).
    pub fn entries(&self) -> Result<Vec<Entry>, CacheError> {
        let mut out: Vec<Entry> = Vec::new();
        for (name, md) in self.read_dir()? {
            let hex = name.strip_suffix(".partial").unwrap_or(&name);
            if !md.is_file() || Digest::parse(&format!("sha256:{hex}")).is_err() {
                continue;
            }
            let modified = md.modified().ok();
            match out.iter_mut().find(|e| e.hex == hex) {
                Some(e) => {
                    e.size += md.len();
                    e.modified = e.modified.max(modified);
                }
                None => out.push(Entry {
                    hex: hex.to_string(),
                    size: md.len(),
                    modified,
                }),
            }
        }
        out.sort_by(|a, b| a.hex.cmp(&b.hex));
        Ok(out)
    }

    /// Remove the blob and the partial download of `hex` unless a process is writing it: its
    /// lock is taken without waiting. A pull that already resolved the blob and is about to
    /// read it may then fail and is simply run again (`clean` is a user's explicit request, as
    /// with Apptainer). The lock file goes last, still locked (see the module docs).
    pub fn remove(&self, hex: &str) -> Result<Removal, CacheError> {
        // The name comes from the caller; only a digest's hex may become a path here.
        if Digest::parse(&format!("sha256:{hex}")).is_err() {
            return Ok(Removal::Removed { files: 0, bytes: 0 });
        }
        let Some(lock) = self.lock(hex, false)? else {
            return Ok(Removal::Busy);
        };
        let (mut files, mut bytes) = (0, 0);
        for p in [self.dir.join(hex), self.dir.join(format!("{hex}.partial"))] {
            let size = fs::symlink_metadata(&p).map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(&p) {
                Ok(()) => {
                    files += 1;
                    bytes += size;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(CacheError::Io { path: p, source }),
            }
        }
        let lock_path = self.dir.join(format!("{hex}.lock"));
        lock.remove().map_err(io_err(&lock_path))?;
        Ok(Removal::Removed { files, bytes })
    }

    /// Remove the lock files that guard nothing (no blob, no partial download beside them:
    /// what pulls killed before writing, or an earlier `clean`, left) and that no process
    /// holds. Returns how many went.
    pub fn sweep_locks(&self) -> Result<usize, CacheError> {
        let mut removed = 0;
        for (name, _) in self.read_dir()? {
            let Some(hex) = name.strip_suffix(".lock") else {
                continue;
            };
            if Digest::parse(&format!("sha256:{hex}")).is_err() {
                continue;
            }
            let lock_path = self.dir.join(&name);
            let free = How {
                wait: false,
                create: false,
            };
            let Some(lock) = PathLock::acquire(&lock_path, free).map_err(io_err(&lock_path))?
            else {
                continue;
            };
            // Checked under the lock: a pull that held it may have just published the blob.
            let guards = [self.dir.join(hex), self.dir.join(format!("{hex}.partial"))];
            if guards.iter().all(|p| !p.exists()) {
                lock.remove().map_err(io_err(&lock_path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Remove every blob and partial download that no process is writing ([`Self::remove`]
    /// for each of [`Self::entries`]).
    pub fn clean(&self) -> Result<CleanReport, CacheError> {
        let mut report = CleanReport::default();
        for e in self.entries()? {
            match self.remove(&e.hex)? {
                Removal::Removed { files, bytes } => {
                    report.removed += files;
                    report.bytes += bytes;
                }
                Removal::Busy => report.busy += 1,
            }
        }
        Ok(report)
    }

    /// The names and metadata (not following symlinks) in the blob directory; an absent one
    /// is empty. Names that are not UTF-8 are no entry of ours.
    fn read_dir(&self) -> Result<Vec<(String, fs::Metadata)>, CacheError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CacheError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(io_err(&self.dir))?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let md = match fs::symlink_metadata(e.path()) {
                Ok(md) => md,
                // Removed by a concurrent clean or publish between listing and stat.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(CacheError::Io {
                        path: e.path(),
                        source,
                    });
                }
            };
            out.push((name, md));
        }
        Ok(out)
    }

    /// The directory holding the blobs (`<cachedir>/blob/sha256`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Hash a whole file from the start; `Ok(Err(_))` when it does not match.
fn verify_file(
    file: &mut File,
    digest: &Digest,
    size: Option<u64>,
) -> io::Result<Result<(), VerifyError>> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let len = hasher.len();
    if let Some(expected) = size.filter(|&s| s != len) {
        return Ok(Err(VerifyError::Size {
            digest: *digest,
            expected,
            actual: len,
        }));
    }
    let actual = hasher.finish();
    if actual != *digest {
        return Ok(Err(VerifyError::Digest {
            expected: *digest,
            actual,
        }));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn default_dir_follows_apptainer_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| vars.iter().find(|v| v.0 == k).map(|v| v.1.to_string())
        };
        assert_eq!(
            default_dir(env(&[
                ("APPTAINER_CACHEDIR", "/a"),
                ("SINGULARITY_CACHEDIR", "/s")
            ])),
            Some("/a".into())
        );
        assert_eq!(
            default_dir(env(&[
                ("APPTAINER_CACHEDIR", ""),
                ("SINGULARITY_CACHEDIR", "/s")
            ])),
            Some("/s".into())
        );
        assert_eq!(
            default_dir(env(&[("HOME", "/h")])),
            Some("/h/.apptainer/cache".into())
        );
        assert_eq!(default_dir(env(&[])), None);
    }

    #[test]
    fn put_then_get_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let d = Digest::of(b"blob");
        assert!(cache.get(&d).is_none());
        let p = cache.put(&d, b"blob").unwrap();
        assert_eq!(p, dir.path().join("blob/sha256").join(d.hex()));
        assert_eq!(fs::read(cache.get(&d).unwrap()).unwrap(), b"blob");
    }

    #[test]
    fn corrupt_content_is_never_published() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let d = Digest::of(b"good");
        let e = cache.put(&d, b"evil").unwrap_err();
        assert!(matches!(e, CacheError::Verify { .. }), "{e}");
        assert!(cache.get(&d).is_none());
        assert!(
            !dir.path()
                .join(format!("blob/sha256/{}.partial", d.hex()))
                .exists()
        );
    }

    #[test]
    fn interrupted_fill_resumes_at_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let data = b"0123456789abcdef";
        let d = Digest::of(data);
        let r = cache.fetch::<CacheError>(&d, Some(16), |p| {
            assert_eq!(p.offset, 0);
            p.file.write_all(&data[..6]).unwrap();
            Err(CacheError::Io {
                path: "network".into(),
                source: io::Error::other("connection reset"),
            })
        });
        assert!(
            matches!(&r, Err(CacheError::Io { path, .. }) if path.as_os_str() == "network"),
            "{r:?}"
        );
        assert!(
            cache.get(&d).is_none(),
            "nothing visible after a failed fill"
        );
        let p = cache
            .fetch::<CacheError>(&d, Some(16), |p| {
                assert_eq!(p.offset, 6);
                p.file.write_all(&data[6..]).unwrap();
                Ok(())
            })
            .unwrap();
        assert_eq!(fs::read(p).unwrap(), data);
    }

    #[test]
    fn list_shows_complete_blobs_and_clean_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        assert_eq!(cache.list().unwrap(), vec![], "an absent cache is empty");
        let a = Digest::of(b"aaaa");
        cache.put(&a, b"aaaa").unwrap();
        let b = Digest::of(b"half");
        let _ = cache.fetch::<CacheError>(&b, Some(4), |p| {
            p.file.write_all(b"ha").unwrap();
            Err(CacheError::Io {
                path: "network".into(),
                source: io::Error::other("cut"),
            })
        });
        let listed = cache.list().unwrap();
        assert_eq!(listed.len(), 1, "partial downloads are not listed");
        assert_eq!((listed[0].digest, listed[0].size), (a, 4));
        let r = cache.clean().unwrap();
        assert_eq!((r.removed, r.bytes, r.busy), (2, 6, 0));
        assert!(cache.list().unwrap().is_empty());
        assert!(cache.get(&a).is_none());
    }

    #[test]
    fn entries_join_a_blob_and_its_partial_and_remove_takes_both() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let a = Digest::of(b"aaaa");
        cache.put(&a, b"aaaa").unwrap();
        // A leftover partial beside a complete blob (a crash after an older attempt).
        fs::write(cache.dir().join(format!("{}.partial", a.hex())), b"aa").unwrap();
        // Strangers in the directory are no entries and are never removed.
        fs::write(cache.dir().join("notes.txt"), b"x").unwrap();
        let e = cache.entries().unwrap();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].hex.as_str(), e[0].size), (a.hex().as_str(), 6));
        assert!(e[0].modified.is_some());
        assert_eq!(
            cache.remove(&a.hex()).unwrap(),
            Removal::Removed { files: 2, bytes: 6 }
        );
        assert!(cache.entries().unwrap().is_empty());
        assert!(cache.dir().join("notes.txt").exists());
        assert_eq!(
            cache.remove("../notes.txt").unwrap(),
            Removal::Removed { files: 0, bytes: 0 },
            "only a digest names a file"
        );
        assert!(cache.dir().join("notes.txt").exists());
    }

    #[test]
    fn remove_reports_a_blob_being_written_as_busy() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let d = Digest::of(b"slow");
        cache
            .fetch::<CacheError>(&d, Some(4), |p| {
                p.file.write_all(b"slow").unwrap();
                let other = BlobCache::new(dir.path());
                assert_eq!(other.remove(&d.hex()).unwrap(), Removal::Busy);
                Ok(())
            })
            .unwrap();
        assert!(cache.get(&d).is_some());
    }

    #[test]
    fn clean_leaves_a_blob_that_is_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let d = Digest::of(b"slow");
        let r = cache.fetch::<CacheError>(&d, Some(4), |p| {
            p.file.write_all(b"sl").unwrap();
            // Another process (a separate lock description) cleans meanwhile.
            let report = BlobCache::new(dir.path()).clean().unwrap();
            assert_eq!((report.removed, report.busy), (0, 1));
            p.file.write_all(b"ow").unwrap();
            Ok(())
        });
        assert!(r.is_ok());
        assert!(cache.get(&d).is_some());
    }

    #[test]
    fn concurrent_fetchers_fill_each_blob_once() {
        let dir = tempfile::tempdir().unwrap();
        let data: Arc<Vec<u8>> = Arc::new((0..200_000u32).map(|i| (i % 251) as u8).collect());
        let d = Digest::of(&data);
        let fills = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (root, data, fills) = (dir.path().to_path_buf(), data.clone(), fills.clone());
                std::thread::spawn(move || {
                    // A cache value per thread: separate lock file descriptions, as with
                    // separate processes.
                    let cache = BlobCache::new(root);
                    let p = cache
                        .fetch::<CacheError>(&d, Some(data.len() as u64), |p| {
                            fills.fetch_add(1, Ordering::SeqCst);
                            for chunk in data.chunks(4096) {
                                p.file.write_all(chunk).unwrap();
                                std::thread::yield_now();
                            }
                            Ok(())
                        })
                        .unwrap();
                    assert_eq!(
                        fs::read(p).unwrap().len(),
                        data.len(),
                        "never a half-written entry"
                    );
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(fills.load(Ordering::SeqCst), 1);
    }
}
