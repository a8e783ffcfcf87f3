//! Image scan: list a root filesystem (a directory here, or any [`Tree`] such as a SquashFS
//! image read in place), examine every ELF regular file in parallel (rayon), and summarise as
//! [`ImageFacts`], whose JSON form is stored in a SIF.
//!
//! The walk never follows symbolic links (a link inside an image may point anywhere on the
//! host); it lists only regular files and skips non-ELF files after reading 4 bytes. Links are
//! recorded as text (`links`) when they lead to an ELF file or to a directory holding one, so
//! that a command named at launch (`/bin/python3`, through the `/bin -> usr/bin` and
//! `python3 -> python3.11` links) can be resolved from the stored facts alone
//! ([`ImageFacts::resolve`]), confined to the image. It must not run on the launch path
//! before namespaces are set up: it starts rayon threads. Unreadable or malformed files are
//! recorded in `skipped`, they do not fail the scan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::elf::{Arch, FileKind};
use crate::error::Error;
use crate::facts::FileFacts;
use crate::feature::{Feature, FeatureSet, Level};

/// The name of the generic JSON object holding [`ImageFacts`] in a SIF.
pub const SIF_OBJECT_NAME: &str = "isa-facts.json";

/// Version of the JSON form; bump on incompatible changes.
pub const FACTS_VERSION: u32 = 1;

/// A file the scan could not examine, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Path relative to the root.
    pub path: String,
    /// The error, rendered without the path (a path on the building machine would make two
    /// builds of one image differ).
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
    /// Symbolic links that lead to an ELF file or to a directory holding one: path relative
    /// to the root -> the link's target as stored. Used by [`ImageFacts::resolve`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
    /// Totals. Keep `version` the first field and this the last: the check before a launch
    /// reads only the two ends of the stored JSON (`sifr_launch::isa_check::stored_summary`),
    /// and falls back to the whole object when they do not hold them.
    pub summary: Summary,
}

impl ImageFacts {
    /// Scans the tree under `root` (see the module docs).
    pub fn scan(root: &Path) -> Result<ImageFacts, Error> {
        ImageFacts::scan_tree(&DirTree::new(root), &|_| {})
    }

    /// Scans any [`Tree`], calling `progress` after each file examined (from several
    /// threads; the callback rate-limits itself if it prints).
    pub fn scan_tree(
        tree: &dyn Tree,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<ImageFacts, Error> {
        let mut paths = Vec::new();
        let mut links = BTreeMap::new();
        let mut bytes_total = 0u64;
        for e in tree.entries()? {
            match e {
                Entry::File { path, size } => {
                    bytes_total += size;
                    paths.push((path, size));
                }
                Entry::Symlink { path, target } => {
                    links.insert(path, target);
                }
            }
        }
        let files_total = paths.len();
        let files_done = AtomicUsize::new(0);
        let bytes_done = AtomicU64::new(0);
        let results: Vec<(String, Examined)> = paths
            .into_par_iter()
            .map(|(rel, size)| {
                let r = examine(tree, &rel);
                let p = Progress {
                    files_done: files_done.fetch_add(1, Ordering::Relaxed) + 1,
                    files_total,
                    bytes_done: bytes_done.fetch_add(size, Ordering::Relaxed) + size,
                    bytes_total,
                };
                progress(p);
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
                    reason: skip_reason(&e),
                }),
            }
        }
        let mut facts = ImageFacts::from_files(files, skipped, bytes);
        facts.links = useful_links(&links, &facts.files);
        Ok(facts)
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
            links: BTreeMap::new(),
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

    /// The path `path` names inside the image once every recorded link is followed, relative
    /// to the root; `None` for a loop of links. Never leaves the image: `..` at the root
    /// stays at the root and absolute targets start again from the root, as the kernel does
    /// inside a container.
    pub fn resolve(&self, path: &str) -> Option<String> {
        resolve_in(&self.links, path)
    }

    /// The facts of the file that `path` names (after [`ImageFacts::resolve`]).
    pub fn lookup(&self, path: &str) -> Option<&FileFacts> {
        self.file(&self.resolve(path)?)
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

/// Why a file was skipped, without the path on this machine (the entry names the file by its
/// path in the image): the facts are stored in the image, whose bytes must not depend on where
/// it was built.
fn skip_reason(e: &Error) -> String {
    match e {
        Error::Read { source, .. } => {
            let mut s = "cannot read it".to_string();
            let mut src: Option<&dyn std::error::Error> = Some(source);
            while let Some(c) = src {
                s.push_str(": ");
                s.push_str(&c.to_string());
                src = c.source();
            }
            s
        }
        Error::Elf { reason, .. } => format!("not a valid ELF file: {reason}"),
        Error::NotElf { .. } => "not an ELF file".to_string(),
    }
}

/// Follows `links` along `path`; see [`ImageFacts::resolve`].
fn resolve_in(links: &BTreeMap<String, String>, path: &str) -> Option<String> {
    // Linux gives up after 40 links; so do we.
    const MAX_HOPS: usize = 40;
    let mut todo: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => {}
            ".." => {
                cur.pop();
            }
            _ => {
                cur.push(c);
                if let Some(target) = links.get(&cur.join("/")) {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return None;
                    }
                    cur.pop();
                    if target.starts_with('/') {
                        cur.clear();
                    }
                    todo.extend(target.split('/').rev().map(str::to_owned));
                }
            }
        }
    }
    Some(cur.join("/"))
}

/// The links worth storing: those that resolve to an ELF file or to a directory above one.
/// Every other link (documentation, `/etc/alternatives` for man pages, ...) only adds bytes.
fn useful_links(links: &BTreeMap<String, String>, files: &[FileFacts]) -> BTreeMap<String, String> {
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    for f in files {
        let mut p = f.path.as_str();
        wanted.insert(p);
        while let Some((parent, _)) = p.rsplit_once('/') {
            if !wanted.insert(parent) {
                break;
            }
            p = parent;
        }
        wanted.insert("");
    }
    links
        .iter()
        .filter(|(path, _)| resolve_in(links, path).is_some_and(|r| wanted.contains(r.as_str())))
        .map(|(p, t)| (p.clone(), t.clone()))
        .collect()
}

/// One object of a [`Tree`] that a scan looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file (`path` relative to the root, `/`-separated) and its size in bytes.
    File {
        /// Path relative to the root.
        path: String,
        /// Size in bytes, for progress.
        size: u64,
    },
    /// A symbolic link and its target as stored.
    Symlink {
        /// Path relative to the root.
        path: String,
        /// The target, unresolved.
        target: String,
    },
}

/// A root filesystem to scan. [`DirTree`] is a directory of this machine; the CLI reads
/// SquashFS images in place through the same trait.
pub trait Tree: Sync {
    /// Every regular file and symbolic link (directories are implied by the paths).
    fn entries(&self) -> Result<Vec<Entry>, Error>;
    /// The first `limit` bytes of the file (all of it when `None`).
    fn read(&self, path: &str, limit: Option<usize>) -> io::Result<Vec<u8>>;
    /// The path to show in errors about `path`.
    fn display_path(&self, path: &str) -> PathBuf {
        PathBuf::from(path)
    }
}

/// How far a scan has got, after each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Files examined so far.
    pub files_done: usize,
    /// Regular files in the tree.
    pub files_total: usize,
    /// Bytes of the files examined so far (whole sizes, read or not).
    pub bytes_done: u64,
    /// Bytes of all regular files.
    pub bytes_total: u64,
}

/// A directory of this machine as a [`Tree`].
#[derive(Debug, Clone)]
pub struct DirTree {
    root: PathBuf,
}

impl DirTree {
    /// The tree under `root`.
    pub fn new(root: &Path) -> DirTree {
        DirTree {
            root: root.to_owned(),
        }
    }
}

impl Tree for DirTree {
    fn entries(&self) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out)?;
        Ok(out)
    }

    fn read(&self, path: &str, limit: Option<usize>) -> io::Result<Vec<u8>> {
        // Entries come from `walk`, which lists regular files only, so joining is safe here:
        // the file was a regular file, not a link, when it was listed.
        let mut f = fs::File::open(self.root.join(path))?;
        let mut data = Vec::new();
        match limit {
            Some(n) => {
                f.take(n as u64).read_to_end(&mut data)?;
            }
            None => {
                f.read_to_end(&mut data)?;
            }
        }
        Ok(data)
    }

    fn display_path(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

/// Lists regular files and links under `dir`; never follows links.
fn walk(root: &Path, dir: &Path, out: &mut Vec<Entry>) -> Result<(), Error> {
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
        let rel = || {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        };
        if ft.is_dir() {
            // A subdirectory we cannot read is skipped, not fatal (only the root is).
            let _ = walk(root, &path, out);
        } else if ft.is_file() {
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(Entry::File { path: rel(), size });
        } else if ft.is_symlink()
            && let Ok(target) = fs::read_link(&path)
        {
            out.push(Entry::Symlink {
                path: rel(),
                target: target.to_string_lossy().into_owned(),
            });
        }
    }
    Ok(())
}

/// One file's outcome: its facts and size, `None` when it is not ELF, or why it failed.
type Examined = Result<Option<(FileFacts, u64)>, Error>;

/// Examines one file: `Ok(None)` if it is not ELF (decided from 4 bytes).
fn examine(tree: &dyn Tree, rel: &str) -> Examined {
    let read_err = |source| Error::Read {
        path: tree.display_path(rel),
        source,
    };
    let magic = tree.read(rel, Some(4)).map_err(read_err)?;
    if !crate::elf::is_elf(&magic) {
        return Ok(None);
    }
    let data = tree.read(rel, None).map_err(read_err)?;
    let facts = FileFacts::from_bytes(rel, &data).map_err(|e| match e {
        Error::Elf { reason, .. } => Error::Elf {
            path: tree.display_path(rel),
            reason,
        },
        other => other,
    })?;
    Ok(Some((facts, data.len() as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_files_reason_does_not_name_the_directory_scanned() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("bin")).unwrap();
        std::fs::write(t.path().join("bin/bad"), b"\x7fELF\x02\x01\x01\x00garbage").unwrap();
        let facts = ImageFacts::scan(t.path()).unwrap();
        assert_eq!(facts.skipped.len(), 1, "{:?}", facts.skipped);
        let sk = &facts.skipped[0];
        assert_eq!(sk.path, "bin/bad");
        assert!(
            sk.reason.starts_with("not a valid ELF file: "),
            "{}",
            sk.reason
        );
        let root = t.path().to_string_lossy();
        assert!(!sk.reason.contains(root.as_ref()), "{}", sk.reason);
    }

    fn links(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn resolution_stops_at_a_loop_and_never_climbs_above_the_root() {
        let l = links(&[
            ("a", "b"),
            ("b", "/a"),
            ("up", "../../.."),
            ("bin", "usr/bin"),
        ]);
        assert_eq!(resolve_in(&l, "/a"), None);
        assert_eq!(resolve_in(&l, "/up/etc"), Some("etc".into()));
        assert_eq!(resolve_in(&l, "bin/../lib/x"), Some("usr/lib/x".into()));
        assert_eq!(resolve_in(&l, "/"), Some(String::new()));
    }
}
