//! `sifr inspect --isa IMAGE`: the CPU features the image's programs need, and whether this
//! host has them.
//!
//! Uses the facts stored at build time when the image has them; otherwise (sandboxes, bare
//! SquashFS, SIFs built by other tools) or with `--rescan` it scans the image: a directory
//! through `isa::DirTree`, an image file through the SquashFS reader in place, never
//! extracting it. The scan runs on rayon threads, which is fine here: this command never
//! enters a container. Progress goes to stderr on a terminal; the facts go to stdout.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, IsTerminal as _};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use isa::{Entry, HostFacts, ImageFacts, Tree};
use squashfs::read::{Archive, FileType, Inode};

use crate::settings::Settings;

/// A SquashFS root filesystem as an `isa::Tree`.
struct SquashTree {
    archive: Archive,
    files: HashMap<String, Inode>,
}

impl SquashTree {
    fn open(path: &Path) -> anyhow::Result<SquashTree> {
        let offset = super::inspect::squashfs_offset(path)?;
        let archive = Archive::open(File::open(path)?, offset)?;
        Ok(SquashTree {
            archive,
            files: HashMap::new(),
        })
    }

    /// Lists the image once, keeping each regular file's inode for [`Tree::read`].
    fn list(&mut self) -> anyhow::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let archive = &self.archive;
        let files = &mut self.files;
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
        Ok(out)
    }
}

/// [`SquashTree`] after listing: the entries are handed out once.
struct Listed {
    tree: SquashTree,
    entries: Mutex<Option<Vec<Entry>>>,
}

impl Tree for Listed {
    fn entries(&self) -> Result<Vec<Entry>, isa::Error> {
        Ok(self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default())
    }

    fn read(&self, path: &str, limit: Option<usize>) -> io::Result<Vec<u8>> {
        let inode = self
            .tree
            .files
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let size = inode.size() as usize;
        let mut buf = vec![0u8; limit.map_or(size, |l| l.min(size))];
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .tree
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

/// Scans the image at `path`, printing progress on a terminal unless quiet.
fn scan(path: &Path, settings: &Settings) -> anyhow::Result<ImageFacts> {
    let show = !settings.quiet && !settings.silent && io::stderr().is_terminal();
    let last = Mutex::new(Instant::now());
    let progress = |p: isa::Progress| {
        if !show {
            return;
        }
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < Duration::from_millis(200) && p.files_done < p.files_total {
            return;
        }
        *last = Instant::now();
        eprint!(
            "\rscanning: {}/{} files, {}/{} MiB",
            p.files_done,
            p.files_total,
            p.bytes_done >> 20,
            p.bytes_total >> 20
        );
    };
    let facts = if path.is_dir() {
        ImageFacts::scan_tree(&isa::DirTree::new(path), &progress)?
    } else {
        let mut tree = SquashTree::open(path)?;
        let entries = tree.list()?;
        let listed = Listed {
            tree,
            entries: Mutex::new(Some(entries)),
        };
        ImageFacts::scan_tree(&listed, &progress)?
    };
    if show {
        eprintln!();
    }
    Ok(facts)
}

pub fn run(image: &Path, json: bool, rescan: bool, settings: &Settings) -> anyhow::Result<u8> {
    let stored = if rescan || image.is_dir() {
        None
    } else {
        super::isa_check::stored_facts(image)
    };
    let started = Instant::now();
    let (facts, origin) = match stored {
        Some(f) => (f, "stored at build time".to_string()),
        None => {
            let f = scan(image, settings)
                .with_context(|| format!("cannot scan `{}`", image.display()))?;
            let origin = format!("scanned now ({:.1} s)", started.elapsed().as_secs_f64());
            (f, origin)
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&facts).context("cannot render the facts")?
        );
        return Ok(crate::exit::OK);
    }
    print!("{}", render(image, &facts, &origin, &HostFacts::detect()));
    Ok(crate::exit::OK)
}

fn names<'a>(fs: impl IntoIterator<Item = &'a isa::Feature>) -> String {
    let v: Vec<&str> = fs.into_iter().map(|f| f.name()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The human-readable report.
fn render(image: &Path, facts: &ImageFacts, origin: &str, host: &HostFacts) -> String {
    let s = &facts.summary;
    let mut o = String::new();
    let _ = writeln!(o, "Image:               {}", image.display());
    let _ = writeln!(o, "Facts:               {origin}");
    let arch = facts.arch.map_or("unknown", |a| a.go_name());
    let _ = writeln!(o, "Architecture:        {arch}");
    let _ = writeln!(
        o,
        "ELF files:           {} ({} executables, {} shared libraries, {:.1} MiB)",
        s.elf_files,
        s.executables,
        s.shared_libraries,
        s.elf_bytes as f64 / 1048576.0
    );
    if let Some(l) = s.max_level {
        let _ = writeln!(o, "Highest level:       {l}");
        let per: Vec<String> = s
            .files_per_level
            .iter()
            .map(|(l, n)| format!("{l}: {n}"))
            .collect();
        let _ = writeln!(o, "Files per level:     {}", per.join(", "));
    }
    let _ = writeln!(o, "Required features:   {}", names(&s.required_features));
    let _ = writeln!(o, "Used when available: {}", names(&s.uses_when_available));
    let above: Vec<&isa::FileFacts> = facts
        .files
        .iter()
        .filter(|f| !f.needs.features.is_empty() || f.needs.level > Some(isa::Level::V1))
        .collect();
    if !above.is_empty() {
        let _ = writeln!(o, "Files needing more than the baseline:");
        for f in above {
            let level = f.needs.level.map_or("-", |l| l.name());
            let _ = writeln!(o, "  {level:<10} /{}: {}", f.path, names(&f.needs.features));
        }
    }
    if !facts.skipped.is_empty() {
        let _ = writeln!(o, "Not examined:        {} files", facts.skipped.len());
        for sk in &facts.skipped {
            let _ = writeln!(o, "  /{}: {}", sk.path, sk.reason);
        }
    }
    let host_level = host.level.map_or(String::new(), |l| format!(", {l}"));
    let _ = write!(
        o,
        "This host:           {}{host_level}: ",
        host.arch.go_name()
    );
    if facts.arch.is_some_and(|a| a != host.arch) {
        let _ = writeln!(o, "another architecture, the image cannot run natively");
        return o;
    }
    let v = isa::judge_image(facts, host);
    if v.is_ok() {
        let _ = writeln!(o, "every program can run");
    } else {
        let _ = writeln!(
            o,
            "{} file{} need features it lacks: {}",
            v.offending_files.len(),
            if v.offending_files.len() == 1 {
                ""
            } else {
                "s"
            },
            names(&v.missing_features)
        );
        for f in &v.offending_files {
            let _ = writeln!(o, "  /{}: {}", f.path, names(&f.missing));
        }
    }
    o
}
