//! The build cache: a stage's root filesystem as it stood after a step of its build (the
//! bootstrap, `%setup`, `%files`, `%post`), kept under the cache root's `build/` directory and
//! named by a key that digests everything the step and the steps before it depended on (see
//! `cachekey`). A rebuild restores the latest step whose key is unchanged and runs only the
//! steps after it.
//!
//! One entry is one file, written to `.KEY.tmp` and renamed into place (so it is complete or
//! absent), made of the tree as SquashFS (owners, modes, links, devices and xattrs kept; times to
//! the second, as in the image the build ships), a JSON record of what the bootstrap produced
//! besides files, and a trailer holding the SHA-256 of both. The digest is checked before every
//! restore: a damaged entry is removed and the build goes on from an earlier step, never from
//! the damaged tree.
//!
//! The step's lock (`flock` on `.KEY.lock`, as `sifr_oci::images` locks its entries) is held
//! while a build computes it, so two builds of one definition at once run each step once: the
//! second waits and restores what the first stored. Entries are used least-recently first out
//! when the directory outgrows its size limit; an entry's modification time is its last use.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use sifr_oci::pathlock::{How, PathLock};

/// The cache root's directory of build steps (`cache list|clean --type build`).
pub const KIND: &str = "build";

/// The last bytes of every entry.
const MAGIC: &[u8; 8] = b"SIFRBLD1";
/// JSON length (u64 LE), SHA-256, magic.
const TRAILER: u64 = 8 + 32 + 8;

/// What a bootstrap produced besides files, kept with every entry of the stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryMeta {
    /// The step this entry ends with (`bootstrap`, `%setup`, `%files`, `%post`).
    pub step: String,
    /// The raw OCI image config of an OCI-based stage.
    pub oci_config: Option<String>,
    /// `(name, digest)` of the base image.
    pub base: Option<(String, String)>,
}

/// Why an entry could not be used or kept.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot use the build cache at `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("build cache entry `{}` is damaged ({why})", path.display())]
    Damaged { path: PathBuf, why: String },
    #[error("cannot write build cache entry `{}`", path.display())]
    Pack {
        path: PathBuf,
        #[source]
        source: sifr_squashfs::WriteError,
    },
    #[error("cannot restore build cache entry `{}`", path.display())]
    Restore {
        path: PathBuf,
        #[source]
        source: sifr_squashfs::read::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The build cache under a cache root.
#[derive(Debug, Clone)]
pub struct BuildCache {
    /// The directory's layout (`KEY`, `.KEY.lock`, `.KEY.tmp`) is `sifr_oci::images`'s, and so
    /// is the sweep of killed fills' temporary files.
    images: sifr_oci::images::ImageCache,
    /// Bytes the entries may take together; the least recently used go beyond it.
    max_bytes: u64,
    /// Compression threads for writing entries (0: one per core).
    threads: usize,
}

/// A step this build computes, locked so that no other build computes it meanwhile.
#[derive(Debug)]
pub struct Claim {
    key: String,
    _lock: PathLock,
}

impl Claim {
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// One entry, as `cache list` shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub last_used: Option<std::time::SystemTime>,
}

impl BuildCache {
    pub fn new(root: &Path, max_bytes: u64, threads: usize) -> Self {
        BuildCache {
            images: sifr_oci::images::ImageCache::new(root, KIND),
            max_bytes,
            threads,
        }
    }

    pub fn dir(&self) -> &Path {
        self.images.dir()
    }

    /// The directory, and any missing parent, made 0755 whatever the build's umask (0002, as
    /// Apptainer's): nobody but the owner may put an entry where a build would restore it.
    fn make_dir(&self) -> Result<(), CacheError> {
        use std::os::unix::fs::DirBuilderExt as _;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(self.dir())
            .map_err(io_err(self.dir()))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.images.path(key)
    }

    fn lock_path(&self, key: &str) -> PathBuf {
        self.dir().join(format!(".{key}.lock"))
    }

    /// Whether the entry `key` is there (complete; not checked).
    pub fn has(&self, key: &str) -> bool {
        self.path(key).is_file()
    }

    /// Take `key`'s lock without waiting: `None` when another build holds it (it is computing
    /// the step).
    pub fn try_claim(&self, key: &str) -> Result<Option<Claim>, CacheError> {
        self.claim_how(key, false)
    }

    /// Take `key`'s lock, waiting for the build that holds it.
    pub fn claim(&self, key: &str) -> Result<Claim, CacheError> {
        self.claim_how(key, true)?.ok_or_else(|| {
            io_err(&self.lock_path(key))(io::Error::other("lock not taken after waiting"))
        })
    }

    fn claim_how(&self, key: &str, wait: bool) -> Result<Option<Claim>, CacheError> {
        self.make_dir()?;
        let p = self.lock_path(key);
        let lock = PathLock::acquire(&p, How { wait, create: true }).map_err(io_err(&p))?;
        Ok(lock.map(|l| Claim {
            key: key.to_string(),
            _lock: l,
        }))
    }

    /// Store `rootfs` as the entry of the claimed step. The entry appears whole or not at all.
    pub fn store(&self, claim: &Claim, rootfs: &Path, meta: &EntryMeta) -> Result<u64, CacheError> {
        let entry = self.path(&claim.key);
        let tmp = self.dir().join(format!(".{}.tmp", claim.key));
        let _ = fs::remove_file(&tmp);
        let written = self.write_entry(&tmp, rootfs, meta).and_then(|size| {
            fs::rename(&tmp, &entry).map_err(io_err(&entry))?;
            Ok(size)
        });
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    fn write_entry(&self, tmp: &Path, rootfs: &Path, meta: &EntryMeta) -> Result<u64, CacheError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(tmp)
            .map_err(io_err(tmp))?;
        let opts = sifr_squashfs::Options {
            // Fast to write and to read back; an entry is read far more often than written.
            compression: sifr_squashfs::Compression::Zstd { level: 1 },
            threads: self.threads,
            exportable: false,
            ..sifr_squashfs::Options::default()
        };
        sifr_squashfs::from_dir(rootfs, io::BufWriter::new(&mut file), opts).map_err(|source| {
            CacheError::Pack {
                path: tmp.to_path_buf(),
                source,
            }
        })?;
        let json = serde_json::to_vec(meta).map_err(|e| io_err(tmp)(io::Error::other(e)))?;
        file.seek(SeekFrom::End(0)).map_err(io_err(tmp))?;
        file.write_all(&json).map_err(io_err(tmp))?;
        let body = file.stream_position().map_err(io_err(tmp))?;
        let digest = digest_of(&mut file, body).map_err(io_err(tmp))?;
        let mut trailer = Vec::with_capacity(TRAILER as usize);
        trailer.extend_from_slice(&(json.len() as u64).to_le_bytes());
        trailer.extend_from_slice(&digest);
        trailer.extend_from_slice(MAGIC);
        file.seek(SeekFrom::Start(body)).map_err(io_err(tmp))?;
        file.write_all(&trailer).map_err(io_err(tmp))?;
        file.sync_all().map_err(io_err(tmp))?;
        Ok(body + TRAILER)
    }

    /// Restore the entry `key` into `rootfs` (which must not exist or be empty), after checking
    /// its digest. A damaged entry is removed and reported as [`CacheError::Damaged`].
    pub fn restore(&self, key: &str, rootfs: &Path) -> Result<EntryMeta, CacheError> {
        let path = self.path(key);
        let mut file = File::open(&path).map_err(io_err(&path))?;
        let meta = match check(&mut file) {
            Ok(m) => m,
            Err(why) => {
                let _ = fs::remove_file(&path);
                return Err(CacheError::Damaged { path, why });
            }
        };
        // Its use is its age: the least recently used goes first.
        let _ = file.set_modified(std::time::SystemTime::now());
        let restore_err = |source| CacheError::Restore {
            path: path.clone(),
            source,
        };
        let archive = sifr_squashfs::read::Archive::open(file, 0).map_err(restore_err)?;
        let root = rustix::process::geteuid().is_root();
        let opts = sifr_squashfs::read::ExtractOptions {
            owners: root,
            // No device can be made in a user namespace, so a fakeroot build's tree has none.
            devices: root && sifr_launch::host::in_initial_user_namespace(),
            xattrs: true,
        };
        archive.extract_to(rootfs, &opts).map_err(restore_err)?;
        Ok(meta)
    }

    /// Every entry, by key.
    pub fn list(&self) -> Result<Vec<Listed>, CacheError> {
        let rd = match fs::read_dir(self.dir()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(self.dir())(e)),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(io_err(self.dir()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let Ok(md) = e.metadata() else { continue };
            if md.is_file() {
                out.push(Listed {
                    key: name,
                    size: md.len(),
                    last_used: md.modified().ok(),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Remove the entry `key` unless a build holds its lock. `Ok(false)`: busy or absent.
    pub fn remove(&self, key: &str) -> Result<bool, CacheError> {
        let lp = self.lock_path(key);
        let free = How {
            wait: false,
            create: true,
        };
        self.make_dir()?;
        let Some(lock) = PathLock::acquire(&lp, free).map_err(io_err(&lp))? else {
            return Ok(false);
        };
        let p = self.path(key);
        let removed = match fs::remove_file(&p) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err(&p)(e)),
        };
        let _ = fs::remove_file(self.dir().join(format!(".{key}.tmp")));
        lock.remove().map_err(io_err(&lp))?;
        Ok(removed)
    }

    /// Remove least-recently-used entries until the entries fit the size limit, keeping those
    /// named in `keep` (the steps this build stands on) and those a build holds. Returns the
    /// keys removed.
    pub fn evict(&self, keep: &[&str]) -> Result<Vec<String>, CacheError> {
        let mut entries = self.list()?;
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        if total <= self.max_bytes {
            return Ok(Vec::new());
        }
        entries.sort_by_key(|e| e.last_used);
        let mut removed = Vec::new();
        for e in entries {
            if total <= self.max_bytes {
                break;
            }
            if keep.contains(&e.key.as_str()) {
                continue;
            }
            if self.remove(&e.key)? {
                total = total.saturating_sub(e.size);
                removed.push(e.key);
            }
        }
        Ok(removed)
    }

    /// Remove what killed builds left: `.KEY.tmp` whose lock nobody holds (as the image cache
    /// sweeps), and lock files nobody holds (steps a killed build claimed and never stored).
    /// Returns how many files were removed.
    pub fn sweep(&self) -> Result<usize, CacheError> {
        let mut removed = self
            .images
            .sweep()
            .map_err(|e| io_err(self.dir())(io::Error::other(e)))?;
        let rd = match fs::read_dir(self.dir()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(io_err(self.dir())(e)),
        };
        for e in rd {
            let name = e.map_err(io_err(self.dir()))?.file_name();
            let Some(key) = name
                .to_str()
                .and_then(|n| n.strip_prefix('.'))
                .and_then(|n| n.strip_suffix(".lock"))
            else {
                continue;
            };
            let free = How {
                wait: false,
                create: false,
            };
            if let Ok(Some(lock)) = PathLock::acquire(&self.lock_path(key), free)
                && lock.remove().is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The SHA-256 of the first `len` bytes of `file`.
fn digest_of(file: &mut File, len: u64) -> io::Result<[u8; 32]> {
    file.seek(SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(h.finalize().into())
}

/// Check an entry's trailer and digest; its record if whole, else why not.
fn check(file: &mut File) -> Result<EntryMeta, String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len < TRAILER {
        return Err(format!("{len} bytes, shorter than its trailer"));
    }
    let mut trailer = [0u8; TRAILER as usize];
    file.seek(SeekFrom::Start(len - TRAILER))
        .and_then(|_| file.read_exact(&mut trailer))
        .map_err(|e| e.to_string())?;
    if &trailer[40..] != MAGIC {
        return Err("no build cache trailer".into());
    }
    let json_len = u64::from_le_bytes(trailer[..8].try_into().unwrap_or_default());
    let body = len - TRAILER;
    if json_len > body {
        return Err("its record is longer than the entry".into());
    }
    let digest = digest_of(file, body).map_err(|e| e.to_string())?;
    if digest[..] != trailer[8..40] {
        return Err(format!(
            "SHA-256 {} where {} was stored",
            hex::encode(digest),
            hex::encode(&trailer[8..40])
        ));
    }
    let mut json = vec![0u8; json_len as usize];
    file.seek(SeekFrom::Start(body - json_len))
        .and_then(|_| file.read_exact(&mut json))
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&json).map_err(|e| format!("unreadable record: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(d: &Path) -> PathBuf {
        let r = d.join("rootfs");
        if r.exists() {
            return r;
        }
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::write(r.join("etc/hello"), b"hello\n").unwrap();
        std::os::unix::fs::symlink("hello", r.join("etc/link")).unwrap();
        r
    }

    fn meta() -> EntryMeta {
        EntryMeta {
            step: "%post".into(),
            oci_config: Some("{}".into()),
            base: Some(("docker.io/x".into(), "sha256:00".into())),
        }
    }

    #[test]
    fn an_entry_round_trips_its_tree_and_record() {
        let d = tempfile::tempdir().unwrap();
        let c = BuildCache::new(d.path(), u64::MAX, 1);
        let claim = c.claim("k1").unwrap();
        c.store(&claim, &tree(d.path()), &meta()).unwrap();
        drop(claim);
        assert!(c.has("k1"));
        let out = d.path().join("out");
        assert_eq!(c.restore("k1", &out).unwrap(), meta());
        assert_eq!(fs::read(out.join("etc/hello")).unwrap(), b"hello\n");
        assert_eq!(
            fs::read_link(out.join("etc/link")).unwrap(),
            Path::new("hello")
        );
    }

    #[test]
    fn a_damaged_entry_is_refused_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let c = BuildCache::new(d.path(), u64::MAX, 1);
        let claim = c.claim("k1").unwrap();
        c.store(&claim, &tree(d.path()), &meta()).unwrap();
        drop(claim);
        let p = c.dir().join("k1");
        let mut bytes = fs::read(&p).unwrap();
        bytes[100] ^= 0x40;
        fs::write(&p, &bytes).unwrap();
        let err = c.restore("k1", &d.path().join("out")).unwrap_err();
        assert!(matches!(err, CacheError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("damaged"), "{err}");
        assert!(!c.has("k1"));
        // Truncated: no trailer.
        let claim = c.claim("k2").unwrap();
        c.store(&claim, &tree(d.path()), &meta()).unwrap();
        drop(claim);
        let p = c.dir().join("k2");
        let len = fs::metadata(&p).unwrap().len();
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        assert!(matches!(
            c.restore("k2", &d.path().join("out2")),
            Err(CacheError::Damaged { .. })
        ));
    }

    #[test]
    fn a_held_step_is_busy_and_neither_evicted_nor_removed() {
        let d = tempfile::tempdir().unwrap();
        let c = BuildCache::new(d.path(), 0, 1);
        let claim = c.claim("k1").unwrap();
        assert!(c.try_claim("k1").unwrap().is_none());
        c.store(&claim, &tree(d.path()), &meta()).unwrap();
        assert!(c.evict(&[]).unwrap().is_empty());
        assert!(!c.remove("k1").unwrap());
        drop(claim);
        assert!(c.try_claim("k1").unwrap().is_some());
    }

    #[test]
    fn eviction_takes_the_least_recently_used_first_and_spares_kept_ones() {
        let d = tempfile::tempdir().unwrap();
        let root = tree(d.path());
        let big = BuildCache::new(d.path(), u64::MAX, 1);
        for k in ["a", "b", "c"] {
            let claim = big.claim(k).unwrap();
            big.store(&claim, &root, &meta()).unwrap();
        }
        let size = fs::metadata(big.dir().join("a")).unwrap().len();
        let t = |s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        for (k, at) in [("a", 300), ("b", 100), ("c", 200)] {
            File::options()
                .write(true)
                .open(big.dir().join(k))
                .unwrap()
                .set_modified(t(at))
                .unwrap();
        }
        // Room for one entry: b (oldest) goes, then c; a stays (newest).
        let c = BuildCache::new(d.path(), size, 1);
        assert_eq!(c.evict(&[]).unwrap(), vec!["b", "c"]);
        // Room for none, but `a` is kept on request.
        let none = BuildCache::new(d.path(), 0, 1);
        assert!(none.evict(&["a"]).unwrap().is_empty());
        assert!(none.has("a"));
        // Restoring makes an entry the most recently used.
        let claim = big.claim("b").unwrap();
        big.store(&claim, &root, &meta()).unwrap();
        drop(claim);
        File::options()
            .write(true)
            .open(big.dir().join("b"))
            .unwrap()
            .set_modified(t(1))
            .unwrap();
        big.restore("b", &d.path().join("out")).unwrap();
        assert_eq!(c.evict(&[]).unwrap(), vec!["a"]);
    }

    #[test]
    fn sweep_removes_a_killed_builds_leftovers_only() {
        let d = tempfile::tempdir().unwrap();
        let c = BuildCache::new(d.path(), u64::MAX, 1);
        fs::create_dir_all(c.dir()).unwrap();
        fs::write(c.dir().join(".dead.tmp"), b"partial").unwrap();
        fs::write(c.dir().join(".dead.lock"), b"").unwrap();
        let live = c.claim("live").unwrap();
        fs::write(c.dir().join(".live.tmp"), b"partial").unwrap();
        assert_eq!(c.sweep().unwrap(), 2);
        assert!(!c.dir().join(".dead.tmp").exists());
        assert!(c.dir().join(".live.tmp").exists());
        drop(live);
    }
}
