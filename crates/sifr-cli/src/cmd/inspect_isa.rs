//! `sifr inspect --isa IMAGE`: the CPU features the image's programs need, and whether this
//! host has them.
//!
//! Uses the facts stored at build time when the image has them; otherwise (sandboxes, bare
//! SquashFS, SIFs built by other tools) or with `--rescan` it scans the image: a directory
//! through `sifr_isa::DirTree`, an image file through the SquashFS reader in place, never
//! extracting it. The scan runs on rayon threads, which is fine here: this command never
//! enters a container. Progress goes to stderr on a terminal; the facts go to stdout.

use std::fmt::Write as _;
use std::io::{self, IsTerminal as _};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sifr_isa::{HostFacts, ImageFacts};

use crate::settings::Settings;

/// Scans the image at `path`, printing progress on a terminal unless quiet.
fn scan(path: &Path, settings: &Settings) -> anyhow::Result<ImageFacts> {
    let show = !settings.quiet && !settings.silent && io::stderr().is_terminal();
    let last = Mutex::new(Instant::now());
    let progress = |p: sifr_isa::Progress| {
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
        ImageFacts::scan_tree(&sifr_isa::DirTree::new(path), &progress)?
    } else {
        let offset = super::inspect::squashfs_offset(path)?;
        sifr_build::isatree::scan_squashfs(path, offset, &progress)?
    };
    if show {
        eprintln!();
    }
    Ok(facts)
}

/// Whom the image is judged against: this host, a named CPU (`--target`), or each kind of
/// node of a Slurm partition (`--partition`).
#[derive(Debug, Default)]
pub struct Judges {
    pub target: Option<String>,
    pub partition: Option<String>,
}

impl Judges {
    /// `(who, their CPU)` for each judge; a kind of node whose CPU is unknown has `Err(why)`.
    fn resolve(&self) -> anyhow::Result<Vec<(String, Result<HostFacts, String>)>> {
        if let Some(name) = &self.target {
            let facts = sifr_isa::cpus::named(name).map_err(|e| {
                anyhow::Error::new(crate::report::Hinted::new(e.to_string(), e.hint()))
            })?;
            return Ok(vec![(format!("Target {name}"), Ok(facts))]);
        }
        if let Some(p) = &self.partition {
            return Ok(super::inspect_slurm::node_kinds(p)?
                .into_iter()
                .map(|k| (k.label(), k.facts))
                .collect());
        }
        let host = HostFacts::detect();
        Ok(vec![("This host".to_string(), Ok(host))])
    }
}

pub fn run(
    image: &Path,
    json: bool,
    rescan: bool,
    judges: &Judges,
    settings: &Settings,
) -> anyhow::Result<u8> {
    // The judges first: a wrong CPU name or partition fails before a long scan.
    let judges = judges.resolve()?;
    let stored = if rescan || image.is_dir() {
        None
    } else {
        sifr_launch::isa_check::stored_facts(image)
    };
    let started = Instant::now();
    let (facts, origin) = match stored {
        Some(f) => (f, "stored in the image (at build or pull)".to_string()),
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
    print!("{}", render(image, &facts, &origin));
    for (who, cpu) in &judges {
        print!("{}", verdict(&facts, who, cpu));
    }
    Ok(crate::exit::OK)
}

fn names<'a>(fs: impl IntoIterator<Item = &'a sifr_isa::Feature>) -> String {
    let v: Vec<&str> = fs.into_iter().map(|f| f.name()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The human-readable report of the facts.
fn render(image: &Path, facts: &ImageFacts, origin: &str) -> String {
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
    let above: Vec<&sifr_isa::FileFacts> = facts
        .files
        .iter()
        .filter(|f| !f.needs.features.is_empty() || f.needs.level > Some(sifr_isa::Level::V1))
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
    o
}

/// One judge's verdict: `who` (`This host`, `Target haswell`, a kind of node) and its CPU.
fn verdict(facts: &ImageFacts, who: &str, cpu: &Result<HostFacts, String>) -> String {
    let mut o = String::new();
    let label = format!("{who}:");
    let host = match cpu {
        Ok(h) => h,
        Err(why) => {
            let _ = writeln!(o, "{label:<20} {why}");
            return o;
        }
    };
    let host_level = host.level.map_or(String::new(), |l| format!(", {l}"));
    let _ = write!(o, "{label:<20} {}{host_level}: ", host.arch.go_name());
    if facts.arch.is_some_and(|a| a != host.arch) {
        let _ = writeln!(o, "another architecture, the image cannot run natively");
        return o;
    }
    let v = sifr_isa::judge_image(facts, host);
    if v.is_ok() {
        let _ = writeln!(o, "every program can run");
    } else {
        let _ = writeln!(
            o,
            "{} file{} features it lacks: {}",
            v.offending_files.len(),
            if v.offending_files.len() == 1 {
                " needs"
            } else {
                "s need"
            },
            names(&v.missing_features)
        );
        for f in &v.offending_files {
            let _ = writeln!(o, "  /{}: {}", f.path, names(&f.missing));
        }
    }
    o
}
