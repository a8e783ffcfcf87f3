//! Lock files that can be removed safely: an advisory lock (`flock`) on a file named by a
//! path, re-checked once held to be the file the path still names. A process that opened the
//! file just before another removed it would otherwise lock an unlinked file while a third
//! process creates and locks a new one, and both would think they held the lock. With the
//! check, whoever holds the lock may unlink the file ([`PathLock::remove`]): a process that
//! then locks its stale descriptor sees another file (or none) under the path, and opens
//! again. So `sifr cache clean` removes lock files too, and a cache it cleaned is empty.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// A held lock on the file at `path`; released when dropped.
#[derive(Debug)]
pub struct PathLock {
    _file: File,
    path: PathBuf,
}

/// Whether to wait for the lock, and whether to create the lock file when it is missing.
#[derive(Debug, Clone, Copy)]
pub struct How {
    pub wait: bool,
    pub create: bool,
}

impl PathLock {
    /// Lock the file at `path`: `Ok(None)` when it is held elsewhere and `how.wait` is false,
    /// or when it does not exist and `how.create` is false.
    pub fn acquire(path: &Path, how: How) -> io::Result<Option<PathLock>> {
        loop {
            let file = match OpenOptions::new()
                .create(how.create)
                .truncate(false)
                .write(true)
                .open(path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !how.create => return Ok(None),
                Err(e) => return Err(e),
            };
            if how.wait {
                file.lock()?;
            } else {
                match file.try_lock() {
                    Ok(()) => {}
                    Err(TryLockError::WouldBlock) => return Ok(None),
                    Err(TryLockError::Error(e)) => return Err(e),
                }
            }
            let held = file.metadata()?;
            match fs::metadata(path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Some(PathLock {
                        _file: file,
                        path: path.to_path_buf(),
                    }));
                }
                // Removed (or replaced) by its holder before we got it: open what is there now.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !how.create {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Unlink the lock file, still holding the lock, then release it.
    pub fn remove(self) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: How = How {
        wait: true,
        create: true,
    };
    const TRY: How = How {
        wait: false,
        create: true,
    };

    #[test]
    fn a_held_lock_is_busy_for_another_description_and_free_after_drop() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let held = PathLock::acquire(&p, WAIT).unwrap().unwrap();
        assert!(PathLock::acquire(&p, TRY).unwrap().is_none());
        drop(held);
        assert!(PathLock::acquire(&p, TRY).unwrap().is_some());
    }

    #[test]
    fn a_lock_on_a_removed_file_is_not_taken_for_the_new_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        // A process opened the file (without locking it yet) when the holder removed it.
        let stale = File::open({
            fs::write(&p, b"").unwrap();
            &p
        })
        .unwrap();
        let held = PathLock::acquire(&p, WAIT).unwrap().unwrap();
        held.remove().unwrap();
        assert!(!p.exists());
        // The stale descriptor can be locked, but a new acquirer gets the new file, and a
        // holder of the new file excludes the next one.
        stale.try_lock().unwrap();
        let fresh = PathLock::acquire(&p, TRY).unwrap().unwrap();
        assert!(p.exists());
        assert!(PathLock::acquire(&p, TRY).unwrap().is_none());
        drop(fresh);
        let no_create = How {
            wait: false,
            create: false,
        };
        assert!(
            PathLock::acquire(&d.path().join("absent.lock"), no_create)
                .unwrap()
                .is_none()
        );
    }
}
