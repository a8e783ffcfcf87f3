//! The execution control list (ECL), Apptainer's `ecl.toml`: which images may run, by the keys
//! that signed them. The file's format is Apptainer's (`activated`, `legacyinsecure`, and
//! `[[execgroup]]` tables with `tagname`, `mode`, `dirpath`, `keyfp`), so an administrator's
//! existing file works unchanged.
//!
//! An image belongs to the group whose `dirpath` is its directory, else to the group without
//! a `dirpath`; an image in no group may not run. Its signatures are verified with the global
//! keyring; a signature whose key is missing or does not verify only makes that signer
//! "unvalidated", but any other failure (no signature, a changed object) refuses the image.
//! Then, by the group's mode: `whitelist`, one listed key signed every part of the image;
//! `whitestrict`, every listed key did; `blacklist`, no listed key signed any part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pgp::composed::SignedPublicKey;
use serde::Deserialize;
use sifr_sif::{Image, Link, ReadAt};

use crate::verify::{self, Failure, Keys, Options};

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct EclConfig {
    #[serde(default)]
    pub activated: bool,
    #[serde(default, rename = "legacyinsecure")]
    pub legacy: bool,
    #[serde(default, rename = "execgroup")]
    pub exec_groups: Vec<ExecGroup>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ExecGroup {
    #[serde(default, rename = "tagname")]
    pub tag_name: String,
    #[serde(default, rename = "mode")]
    pub mode: String,
    #[serde(default, rename = "dirpath")]
    pub dir_path: String,
    #[serde(default, rename = "keyfp")]
    pub key_fps: Vec<String>,
}

/// Why the ECL refuses an image, or is itself unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EclError {
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{image} not part of any execgroup")]
    NoGroup { image: PathBuf },
    #[error("image signature not valid: {0}")]
    NotValid(String),
    #[error("image prohibited by ECL: not signed by the key(s) execgroup `{group}` requires")]
    NotSignedByRequired { group: String },
    #[error("image prohibited by ECL: signed by a key execgroup `{group}` forbids")]
    SignedByForbidden { group: String },
}

impl EclConfig {
    /// Parses and validates `text` (read from `path`), as Apptainer's `ValidateConfig`.
    pub fn parse(text: &str, path: &Path) -> Result<EclConfig, EclError> {
        let bad = |reason: String| EclError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let c: EclConfig = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut seen = Vec::new();
        for g in &c.exec_groups {
            if seen.contains(&g.dir_path) {
                return Err(bad(format!(
                    "a specific dirpath can only appear in one execgroup: {}",
                    g.dir_path
                )));
            }
            seen.push(g.dir_path.clone());
            if !g.dir_path.is_empty() {
                let real = std::fs::canonicalize(&g.dir_path)
                    .map_err(|e| bad(format!("dirpath {}: {e}", g.dir_path)))?;
                if real != Path::new(&g.dir_path) {
                    return Err(bad(format!(
                        "all execgroup dirpath`s should be fully cleaned with symlinks resolved: {}",
                        g.dir_path
                    )));
                }
            }
            if !matches!(g.mode.as_str(), "whitelist" | "whitestrict" | "blacklist") {
                return Err(bad(format!(
                    "execgroup `{}`: the mode field can only be either: whitelist, whitestrict, blacklist (not `{}`)",
                    g.tag_name, g.mode
                )));
            }
            // An empty list would make a whitelist refuse everything and, worse, a
            // whitestrict one pass images whose only fault is an unknown signer.
            if g.key_fps.is_empty() && g.mode != "blacklist" {
                return Err(bad(format!(
                    "execgroup `{}`: a {} needs at least one key fingerprint",
                    g.tag_name, g.mode
                )));
            }
            for k in &g.key_fps {
                if hex::decode(k).map(|d| d.len()) != Ok(20) {
                    return Err(bad(format!(
                        "execgroup `{}`: expecting a 40 chars hex fingerprint string, not `{k}`",
                        g.tag_name
                    )));
                }
            }
        }
        Ok(c)
    }

    /// The group an image at `path` (absolute, symlinks resolved) belongs to.
    pub fn group_of(&self, path: &Path) -> Option<&ExecGroup> {
        let dir = path.parent().map(|d| d.to_string_lossy().into_owned());
        self.exec_groups
            .iter()
            .find(|g| dir.as_deref() == Some(g.dir_path.as_str()))
            .or_else(|| self.exec_groups.iter().find(|g| g.dir_path.is_empty()))
    }

    /// Whether the image at `path` may run, checked with the global keyring `keys`.
    pub fn check<S: ReadAt>(
        &self,
        path: &Path,
        image: &Image<S>,
        keys: &[SignedPublicKey],
    ) -> Result<(), EclError> {
        if !self.activated {
            return Ok(());
        }
        let group = self.group_of(path).ok_or_else(|| EclError::NoGroup {
            image: path.to_path_buf(),
        })?;
        let mut opts = Options::default();
        if self.legacy {
            let primary = image
                .primary_partition()
                .ok_or_else(|| EclError::NotValid("no primary system partition".into()))?;
            opts.legacy = true;
            opts.objects = vec![primary.id];
        }
        let ks = Keys {
            pgp: Some(keys.to_vec()),
            dsse: None,
        };
        let results =
            verify::verify(image, &ks, &opts).map_err(|e| EclError::NotValid(e.to_string()))?;
        // Signers per task (group or object), from the descriptors, as upstream counts them.
        let mut per_task: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        let mut unvalidated = Vec::new();
        for r in &results {
            let task = match r.target {
                Link::Group(g) => g,
                Link::Object(id) => id | 0x8000_0000,
                Link::None => 0,
            };
            let entry = per_task.entry(task).or_default();
            let fp = r
                .signature
                .and_then(|id| image.descriptor(id).ok())
                .and_then(|d| d.signature())
                .and_then(|m| m.fingerprint)
                .map(hex::encode_upper);
            if let Some(fp) = &fp {
                entry.push(fp.clone());
            }
            match &r.failure {
                None => {}
                Some(Failure::SignatureNotValid { .. }) => unvalidated.extend(fp),
                Some(f) => return Err(EclError::NotValid(f.to_string())),
            }
        }
        let tasks = per_task.len();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for fps in per_task.values_mut() {
            fps.sort();
            fps.dedup();
            for fp in fps.iter() {
                *counts.entry(fp.clone()).or_default() += 1;
            }
        }
        let all_signed_by = |fp: &str| counts.get(fp).is_some_and(|&n| n == tasks);
        let any_signed_by = |fp: &str| counts.contains_key(fp);
        let valid = |fp: &str| !unvalidated.iter().any(|u| u == fp);
        let listed: Vec<String> = group
            .key_fps
            .iter()
            .map(|k| k.to_ascii_uppercase())
            .collect();
        let name = group.tag_name.clone();
        match group.mode.as_str() {
            "whitelist" => {
                if listed.iter().any(|k| all_signed_by(k) && valid(k)) {
                    Ok(())
                } else {
                    Err(EclError::NotSignedByRequired { group: name })
                }
            }
            "whitestrict" => {
                if listed.iter().all(|k| all_signed_by(k) && valid(k)) {
                    Ok(())
                } else {
                    Err(EclError::NotSignedByRequired { group: name })
                }
            }
            _ => {
                if listed.iter().any(|k| any_signed_by(k)) {
                    Err(EclError::SignedByForbidden { group: name })
                } else {
                    Ok(())
                }
            }
        }
    }
}
