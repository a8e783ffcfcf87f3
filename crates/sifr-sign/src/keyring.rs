//! Apptainer's OpenPGP keyring files, so keys move between the two tools: a directory (default
//! `~/.apptainer/keys`, or `APPTAINER_KEYSDIR`/`--keysdir`) holding `pgp-public` and
//! `pgp-secret`, binary concatenations of transferable keys, mode 0600 in a 0700 directory; the
//! administrator's global keyring is `global-pgp-public` in the configuration directory (public
//! keys only, mode 0644).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use pgp::composed::{SignedPublicKey, SignedSecretKey};

use crate::Error;
use crate::openpgp::{self, fingerprint_hex};

pub const PUBLIC_FILE: &str = "pgp-public";
pub const SECRET_FILE: &str = "pgp-secret";
pub const GLOBAL_PUBLIC_FILE: &str = "global-pgp-public";

/// One keyring: a directory, local or global.
#[derive(Debug, Clone)]
pub struct Keyring {
    pub dir: PathBuf,
    pub global: bool,
}

impl Keyring {
    pub fn local(dir: impl Into<PathBuf>) -> Keyring {
        Keyring {
            dir: dir.into(),
            global: false,
        }
    }

    pub fn global(confdir: impl Into<PathBuf>) -> Keyring {
        Keyring {
            dir: confdir.into(),
            global: true,
        }
    }

    pub fn public_path(&self) -> PathBuf {
        self.dir.join(if self.global {
            GLOBAL_PUBLIC_FILE
        } else {
            PUBLIC_FILE
        })
    }

    pub fn secret_path(&self) -> PathBuf {
        self.dir.join(SECRET_FILE)
    }

    fn read(path: &Path) -> Result<Vec<u8>, Error> {
        match fs::read(path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// The public keys (none if the file does not exist).
    pub fn public_keys(&self) -> Result<Vec<SignedPublicKey>, Error> {
        let p = self.public_path();
        openpgp::read_public_keys(&Self::read(&p)?)
            .map_err(|e| Error::Other(format!("{}: {e}", p.display())))
    }

    /// The secret keys (none if the file does not exist).
    pub fn secret_keys(&self) -> Result<Vec<SignedSecretKey>, Error> {
        if self.global {
            return Err(Error::Other(
                "operation not supported for global keyring".into(),
            ));
        }
        let p = self.secret_path();
        openpgp::read_secret_keys(&Self::read(&p)?)
            .map_err(|e| Error::Other(format!("{}: {e}", p.display())))
    }

    fn ensure_dir(&self) -> Result<(), Error> {
        if !self.dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(if self.global { 0o755 } else { 0o700 })
                .create(&self.dir)
                .map_err(|e| Error::io(&self.dir, e))?;
        }
        Ok(())
    }

    fn write(&self, path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
        self.ensure_dir()?;
        // A new file beside the old one, renamed over it: a crash leaves the old keyring.
        let tmp = path.with_extension("sifr-tmp");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    fn public_mode(&self) -> u32 {
        if self.global { 0o644 } else { 0o600 }
    }

    pub fn store_public(&self, keys: &[SignedPublicKey]) -> Result<(), Error> {
        self.write(
            &self.public_path(),
            &openpgp::public_bytes(keys),
            self.public_mode(),
        )
    }

    pub fn store_secret(&self, keys: &[SignedSecretKey]) -> Result<(), Error> {
        self.write(&self.secret_path(), &openpgp::secret_bytes(keys), 0o600)
    }

    /// Adds a public key; an existing key with its fingerprint is an error.
    pub fn add_public(&self, key: SignedPublicKey) -> Result<(), Error> {
        let mut keys = self.public_keys()?;
        let fp = fingerprint_hex(&key.primary_key);
        if keys.iter().any(|k| fingerprint_hex(&k.primary_key) == fp) {
            return Err(Error::KeyExists { fingerprint: fp });
        }
        keys.push(key);
        self.store_public(&keys)
    }

    /// Adds a secret key; an existing key with its fingerprint is an error.
    pub fn add_secret(&self, key: SignedSecretKey) -> Result<(), Error> {
        let mut keys = self.secret_keys()?;
        let fp = fingerprint_hex(&key.primary_key);
        if keys.iter().any(|k| fingerprint_hex(&k.primary_key) == fp) {
            return Err(Error::KeyExists { fingerprint: fp });
        }
        keys.push(key);
        self.store_secret(&keys)
    }

    /// Removes the public key with `fingerprint` (hex, any case).
    pub fn remove_public(&self, fingerprint: &str) -> Result<(), Error> {
        let fp = fingerprint.to_ascii_uppercase();
        let mut keys = self.public_keys()?;
        let before = keys.len();
        keys.retain(|k| fingerprint_hex(&k.primary_key) != fp);
        if keys.len() == before {
            return Err(Error::NoSuchKey {
                fingerprint: fp,
                path: self.public_path(),
            });
        }
        self.store_public(&keys)
    }

    /// Removes the secret key with `fingerprint`.
    pub fn remove_secret(&self, fingerprint: &str) -> Result<(), Error> {
        let fp = fingerprint.to_ascii_uppercase();
        let mut keys = self.secret_keys()?;
        let before = keys.len();
        keys.retain(|k| fingerprint_hex(&k.primary_key) != fp);
        if keys.len() == before {
            return Err(Error::NoSuchKey {
                fingerprint: fp,
                path: self.secret_path(),
            });
        }
        self.store_secret(&keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_pair_round_trips_through_the_files_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::local(dir.path().join("keys"));
        let key = openpgp::generate(&openpgp::NewPair {
            name: "Test".into(),
            email: "t@example.org".into(),
            comment: "c".into(),
            password: "pw".into(),
            bits: 2048,
        })
        .unwrap();
        ring.add_secret(key.clone()).unwrap();
        ring.add_public(key.to_public_key()).unwrap();
        let mode = fs::metadata(ring.secret_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = ring.secret_keys().unwrap();
        assert_eq!(back.len(), 1);
        assert!(openpgp::check_password(&back[0], "pw"));
        assert!(!openpgp::check_password(&back[0], "wrong"));
        let info = openpgp::KeyInfo::of(&ring.public_keys().unwrap()[0]);
        assert_eq!(info.user_ids, vec!["Test (c) <t@example.org>".to_string()]);
        assert_eq!(info.bits, 2048);
        assert!(matches!(
            ring.add_public(key.to_public_key()),
            Err(Error::KeyExists { .. })
        ));
        ring.remove_public(&info.fingerprint.to_lowercase())
            .unwrap();
        assert!(ring.public_keys().unwrap().is_empty());
    }
}
