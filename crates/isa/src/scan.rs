//! Image scan: walk a root filesystem directory, examine every ELF regular file in parallel
//! (rayon), and summarise as [`ImageFacts`], whose JSON form is stored in a SIF.
//!
//! The walk never follows symbolic links (a link inside an image may point anywhere on the
//! host); it lists only regular files and skips non-ELF files after reading 4 bytes. It must
//! not run on the launch path before namespaces are set up: it starts rayon threads.
//! Unreadable or malformed files are recorded in `skipped`, they do not fail the scan.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::elf::{Arch, FileKind};
use crate::error::Error;
use crate::facts::FileFacts;
use crate::feature::{Feature, FeatureSet, Level};

/// Version of the JSON form; bump on incompatible changes.
pub const FACTS_VERSION: u32 = 1;

/// A file the scan could not examine, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Path relative to the root.
    pub path: String,
    /// The error, rendered.
    pub reason: String,
}

/// Totals over an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// ELF files examined.
    pub elf_files: usize,
    /// Of which executables.
    pub executables: usize,
    /// Of which shared libraries.
    pub shared_libraries: usize,
    /// Bytes of ELF files read.
    pub elf_bytes: u64,
    /// Instructions decoded.
    pub instructions: u64,
    /// Highest `needs.level` of any x86 file (`None` if there is none).
    pub max_level: Option<Level>,
    /// Number of x86 files per required level.
    pub files_per_level: BTreeMap<Level, usize>,
    /// Union of required features.
    pub required_features: Vec<Feature>,
    /// Union of features used only when available.
    pub uses_when_available: Vec<Feature>,
}

/// Facts about a whole image. `files` is sorted by path, so the JSON form is stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFacts {
    /// [`FACTS_VERSION`].
    pub version: u32,
    /// The most common architecture among executables (among all ELF files if there is
    /// no executable).
    pub arch: Option<Arch>,
    /// One entry per ELF file.
    pub files: Vec<FileFacts>,
    /// Files that could not be examined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Totals.
    pub summary: Summary,
}

impl ImageFacts {
    /// Scans the tree under `root` (see the module docs).
    pub fn scan(root: &Path) -> Result<ImageFacts, Error> {
        let mut paths = Vec::new();
        walk(root, root, &mut paths)?;
        let results: Vec<(String, Examined)> = paths
            .into_par_iter()
            .map(|(abs, rel)| {
                let r = examine(&abs, &rel);
                (rel, r)
            })
            .collect();
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        let mut bytes = 0u64;
        for (rel, r) in results {
            match r {
                Ok(Some((f, n))) => {
                    bytes += n;
                    files.push(f);
                }
                Ok(None) => {}
                Err(e) => skipped.push(Skipped {
                    path: rel,
                    reason: error_chain(&e),
                }),
            }
        }
        Ok(ImageFacts::from_files(files, skipped, bytes))
    }

    /// Builds the image facts from already examined files (sorts them by path).
    pub fn from_files(
        mut files: Vec<FileFacts>,
        mut skipped: Vec<Skipped>,
        elf_bytes: u64,
    ) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        let mut s = Summary {
            elf_files: files.len(),
            elf_bytes,
            ..Summary::default()
        };
        let mut req = FeatureSet::EMPTY;
        let mut when = FeatureSet::EMPTY;
        let mut arch_count: BTreeMap<(bool, Arch), usize> = BTreeMap::new();
        for f in &files {
            s.instructions += f.instructions;
            match f.kind {
                FileKind::Executable => s.executables += 1,
                FileKind::SharedLibrary => s.shared_libraries += 1,
                _ => {}
            }
            *arch_count
                .entry((f.kind == FileKind::Executable, f.arch))
                .or_default() += 1;
            if let Some(l) = f.needs.level {
                *s.files_per_level.entry(l).or_default() += 1;
                s.max_level = s.max_level.max(Some(l));
            }
            req = req.union(f.required());
            when = when.union(f.uses_when_available.iter().copied().collect());
        }
        s.required_features = req.to_vec();
        s.uses_when_available = when.difference(req).to_vec();
        // Executables win over libraries; then the larger count; ties broken by arch order.
        let arch = arch_count
            .iter()
            .max_by_key(|((exe, arch), n)| (*exe, **n, std::cmp::Reverse(*arch)))
            .map(|((_, a), _)| *a);
        ImageFacts {
            version: FACTS_VERSION,
            arch,
            files,
            skipped,
            summary: s,
        }
    }

    /// The stable JSON form (compact).
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings, numbers and enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses the JSON form.
    pub fn from_json(s: &str) -> Result<ImageFacts, serde_json::Error> {
        serde_json::from_str(s)
    }

    /// The file at `path` (relative to the root, with or without a leading `/`).
    pub fn file(&self, path: &str) -> Option<&FileFacts> {
        let path = path.trim_start_matches('/');
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// The libraries `program` loads, transitively: `DT_NEEDED` names resolved against the
    /// image's files by soname, then by file name, same architecture only.
    ///
    /// Libraries under `glibc-hwcaps/` are never chosen: the loader only picks them on CPUs
    /// that support their level, so they cannot cause an illegal instruction. When several
    /// files match a name, the first by path wins (a lexical stand-in for the loader's search
    /// order; good enough for a warning).
    pub fn libraries_for(&self, program: &FileFacts) -> Vec<&FileFacts> {
        let mut by_name: HashMap<&str, &FileFacts> = HashMap::new();
        for f in &self.files {
            if f.kind != FileKind::SharedLibrary
                || f.arch != program.arch
                || f.path.contains("glibc-hwcaps/")
            {
                continue;
            }
            let base = f.path.rsplit('/').next().unwrap_or(&f.path);
            by_name.entry(base).or_insert(f);
            if let Some(so) = &f.soname {
                by_name.entry(so.as_str()).or_insert(f);
            }
        }
        let mut out: Vec<&FileFacts> = Vec::new();
        let mut queue: Vec<&str> = program.needed_libs.iter().map(String::as_str).collect();
        while let Some(name) = queue.pop() {
            let base = name.rsplit('/').next().unwrap_or(name);
            if let Some(lib) = by_name.get(base)
                && !out.iter().any(|l| l.path == lib.path)
            {
                out.push(lib);
                queue.extend(lib.needed_libs.iter().map(String::as_str));
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

fn error_chain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Lists regular files under `dir` as (absolute, relative) paths; never follows links.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<(), Error> {
    let rd = fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in rd {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_owned(),
            source,
        })?;
        // DirEntry::file_type does not follow symlinks.
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        if ft.is_dir() {
            // A subdirectory we cannot read is skipped, not fatal (only the root is).
            let _ = walk(root, &path, out);
        } else if ft.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((path, rel));
        }
    }
    Ok(())
}

/// One file's outcome: its facts and size, `None` when it is not ELF, or why it failed.
type Examined = Result<Option<(FileFacts, u64)>, Error>;

/// Examines one file: `Ok(None)` if it is not ELF (decided from 4 bytes).
fn examine(abs: &Path, rel: &str) -> Examined {
    let read_err = |source| Error::Read {
        path: abs.to_owned(),
        source,
    };
    let mut f = fs::File::open(abs).map_err(read_err)?;
    let mut magic = [0u8; 4];
    if f.read_exact(&mut magic).is_err() || !crate::elf::is_elf(&magic) {
        return Ok(None);
    }
    let mut data = magic.to_vec();
    f.read_to_end(&mut data).map_err(read_err)?;
    let facts = FileFacts::from_bytes(rel, &data).map_err(|e| match e {
        Error::Elf { reason, .. } => Error::Elf {
            path: abs.to_owned(),
            reason,
        },
        other => other,
    })?;
    Ok(Some((facts, data.len() as u64)))
}
