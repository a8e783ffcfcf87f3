//! `sifr cache list|clean`, as `apptainer cache list|clean` behave and print.
//!
//! The cache root is the cache directory (`APPTAINER_CACHEDIR`, else `~/.apptainer/cache`).
//! Apptainer keeps one directory per type under its root: `blob` (OCI blobs) and the "container
//! file" types `library`, `oci-tmp`, `shub`, `oras`, `ipfs`, `net` (whole images). sifr caches
//! blobs in `<root>/blob/sha256` through `sifr_oci::cache::BlobCache`, which keeps a blob that a
//! running pull is writing (`pull` itself streams layers straight into its SIF). The container
//! types are the directories of those names under the root, as Apptainer's are; sifr fills
//! `oci-tmp`, `oras` and `net` with the SIFs that launches of image URIs run
//! (`sifr_oci::images`), whose dot-files (a lock per entry, an entry being written) are
//! bookkeeping, not entries. A type given to `--type` is a
//! directory name, as in Apptainer: an unknown one (`oci`, which Apptainer's help mentions but
//! its code never matches) lists nothing and cleans nothing.
//!
//! Listing is data (stdout); cleaning reports each entry with an `INFO` line on stderr and,
//! unless `--force` or `--dry-run`, first asks on stdout and reads the answer from stdin.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Args, Subcommand};
use sifr_oci::cache::{BlobCache, Removal};

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List your local Apptainer cache: the OCI blobs sifr keeps, and any container files.
    List(ListArgs),
    /// Clean your local Apptainer cache (all of it unless --type or --days narrow it).
    Clean(CleanArgs),
}

/// The blob type, then the container file types, in Apptainer's order.
const BLOB: &str = "blob";
const FILE_TYPES: [&str; 6] = ["library", "oci-tmp", "shub", "oras", "ipfs", "net"];
/// sifr's own type: the trees a definition build keeps after its steps (`sifr_build::defbuild::cache`).
const BUILD: &str = sifr_build::defbuild::cache::KIND;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// A list of cache types to display, possible entries: library, oci, shub, blob(s), build,
    /// all.
    #[arg(
        short = 'T',
        long = "type",
        value_delimiter = ',',
        default_value = "all"
    )]
    pub types: Vec<String>,
    /// Include cache entries in the output.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Print the totals per type and every entry as JSON (sifr's addition).
    #[arg(long)]
    pub json: bool,
    /// Words after the command, which Apptainer ignores (`cache list all`).
    #[arg(hide = true)]
    pub ignored: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// A list of cache types to clean (possible values: library, oci, shub, blob, net, oras,
    /// build, all).
    #[arg(
        short = 'T',
        long = "type",
        value_delimiter = ',',
        default_value = "all"
    )]
    pub types: Vec<String>,
    /// Remove all cache entries older than specified number of days.
    #[arg(short = 'D', long, default_value_t = 0, allow_negative_numbers = true)]
    pub days: i64,
    /// Operate in dry run mode and do not actually clean the cache.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Suppress any prompts and clean the cache.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Words after the command, which Apptainer ignores.
    #[arg(hide = true)]
    pub ignored: Vec<String>,
}

pub fn run(c: CacheCommand, settings: &Settings) -> anyhow::Result<u8> {
    let root = crate::cmd::pull::cache_dir(settings)?;
    match c {
        CacheCommand::List(a) if a.json => {
            let value = list_json(&root, &a.types).with_context(|| {
                format!("An error occurred while listing cache `{}`", root.display())
            })?;
            crate::json::print(&value)?;
            Ok(crate::exit::OK)
        }
        CacheCommand::List(a) => {
            let text = list(&root, &a.types, a.verbose).with_context(|| {
                format!("An error occurred while listing cache `{}`", root.display())
            })?;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(crate::exit::OK)
        }
        CacheCommand::Clean(a) => clean(&root, &a, settings)
            .map_err(|e| e.context("Handle clean failed"))
            .map(|()| crate::exit::OK),
    }
}

/// One listed entry.
struct Listed {
    name: String,
    modified: Option<SystemTime>,
    size: u64,
}

/// The entries of container file type `kind`'s directory, sorted by name (Apptainer lists
/// every entry there, whatever it is; sifr's dot-files are left out); a missing directory is
/// empty.
fn file_type_entries(root: &Path, kind: &str) -> anyhow::Result<Vec<Listed>> {
    let dir = root.join(kind);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| {
                format!("unable to open cache {kind} at directory {}", dir.display())
            });
        }
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.with_context(|| format!("unable to read {}", dir.display()))?;
        if e.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let md = std::fs::symlink_metadata(e.path()).with_context(|| {
            format!("unable to get info for cache entry {}", e.path().display())
        })?;
        out.push(Listed {
            name: e.file_name().to_string_lossy().into_owned(),
            modified: md.modified().ok(),
            size: md.len(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The blobs, as Apptainer lists its `blob` type: one entry per digest, named by its hex.
fn blob_entries(root: &Path) -> anyhow::Result<Vec<Listed>> {
    Ok(BlobCache::new(root)
        .list()?
        .into_iter()
        .map(|b| Listed {
            name: b.digest.hex(),
            modified: b.modified,
            size: b.size,
        })
        .collect())
}

/// Whether `kind` is selected by `--type` (`all` selects every type).
fn selected(types: &[String], kind: &str) -> bool {
    types.iter().any(|t| t == "all" || t == kind)
}

/// The text of `cache list`: Apptainer's verbose table (`NAME DATE CREATED SIZE TYPE`, the blob
/// type first), then its summary of container files and OCI blobs, naming only the groups that
/// `types` selected.
/// `cache list --json`: `{"types": {TYPE: {"count", "bytes"}}, "total_bytes", "entries":
/// [{"name", "type", "bytes", "modified"}]}`, the same selection as the text.
fn list_json(root: &Path, types: &[String]) -> anyhow::Result<serde_json::Value> {
    let mut kinds: Vec<&str> = vec![BLOB];
    kinds.extend(FILE_TYPES.iter().copied());
    kinds.push(BUILD);
    let mut per_type = serde_json::Map::new();
    let mut entries = Vec::new();
    let mut total = 0u64;
    for kind in kinds.into_iter().filter(|k| selected(types, k)) {
        let listed = if kind == BLOB {
            blob_entries(root)?
        } else {
            file_type_entries(root, kind)?
        };
        let bytes: u64 = listed.iter().map(|e| e.size).sum();
        total += bytes;
        per_type.insert(
            kind.to_string(),
            serde_json::json!({"count": listed.len(), "bytes": bytes}),
        );
        for e in listed {
            let modified = e
                .modified
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            entries.push(serde_json::json!({
                "name": e.name,
                "type": kind,
                "bytes": e.size,
                "modified": modified,
            }));
        }
    }
    Ok(serde_json::json!({
        "types": per_type,
        "total_bytes": total,
        "entries": entries,
    }))
}

fn list(root: &Path, types: &[String], verbose: bool) -> anyhow::Result<String> {
    let mut out = String::new();
    let row = |out: &mut String, name: &str, date: &str, size: &str, kind: &str| {
        let name: String = name.chars().take(22).collect();
        out.push_str(&format!("{name:<24} {date:<22} {size:<16} {kind}\n"));
    };
    if verbose {
        row(&mut out, "NAME", "DATE CREATED", "SIZE", "TYPE");
    }
    let mut groups = Vec::new();
    let mut total = 0u64;
    // (shown, count, bytes) for the container files and the blobs.
    let mut containers = (false, 0usize, 0u64);
    let mut blobs = (false, 0usize, 0u64);
    if selected(types, BLOB) {
        groups.push((BLOB, blob_entries(root)?));
        blobs.0 = true;
    }
    for kind in FILE_TYPES {
        if selected(types, kind) {
            groups.push((kind, file_type_entries(root, kind)?));
            containers.0 = true;
        }
    }
    // Listed only when asked for or present, so Apptainer's lines stay as they are otherwise.
    let mut builds = (false, 0usize, 0u64);
    if selected(types, BUILD) {
        let entries = file_type_entries(root, BUILD)?;
        builds.0 = types.iter().any(|t| t == BUILD) || !entries.is_empty();
        groups.push((BUILD, entries));
    }
    for (kind, entries) in groups {
        for e in &entries {
            if verbose {
                let date = e.modified.map(local_date).unwrap_or_default();
                row(&mut out, &e.name, &date, &human_size(e.size), kind);
            }
            let sum = if kind == BLOB {
                &mut blobs
            } else if kind == BUILD {
                &mut builds
            } else {
                &mut containers
            };
            sum.1 += 1;
            sum.2 += e.size;
            total += e.size;
        }
    }
    if verbose {
        out.push('\n');
    }
    let apptainers = containers.0 || blobs.0 || !builds.0;
    if apptainers {
        out.push_str("There are");
    }
    if containers.0 {
        out.push_str(&format!(
            " {} container file(s) using {}",
            containers.1,
            human_size(containers.2)
        ));
    }
    if containers.0 && blobs.0 {
        out.push_str(" and");
    }
    if blobs.0 {
        out.push_str(&format!(
            " {} oci blob file(s) using {}",
            blobs.1,
            human_size(blobs.2)
        ));
    }
    if apptainers {
        out.push_str(" of space\n");
    }
    if builds.0 {
        out.push_str(&format!(
            "There are {} build step(s) using {} of space\n",
            builds.1,
            human_size(builds.2)
        ));
    }
    out.push_str(&format!("Total space used: {}\n", human_size(total)));
    Ok(out)
}

/// `cache clean`: the dry-run notice, the question, then each selected type in turn.
fn clean(root: &Path, a: &CleanArgs, settings: &Settings) -> anyhow::Result<()> {
    let info = |msg: &str| {
        if !settings.quiet && !settings.silent {
            eprintln!("INFO:    {msg}");
        }
    };
    if a.dry_run {
        println!("User requested a dry run. Not actually deleting any data!");
    }
    if !a.force && !a.dry_run {
        let yes = confirm(&mut std::io::stdin().lock()).context("could not prompt user")?;
        if !yes {
            info("Handle cleanup canceled");
            return Ok(());
        }
    }
    let kinds: Vec<&str> = if a.types.is_empty() || a.types.iter().any(|t| t == "all") {
        std::iter::once(BLOB)
            .chain(FILE_TYPES)
            .chain([BUILD])
            .collect()
    } else {
        a.types.iter().map(String::as_str).collect()
    };
    let now = SystemTime::now();
    // Apptainer keeps an entry younger than `days` days; a negative count keeps none.
    let keep = |modified: Option<SystemTime>| {
        a.days >= 0
            && modified.is_some_and(|m| {
                now.duration_since(m).unwrap_or_default()
                    < Duration::from_secs(a.days.unsigned_abs() * 86_400)
            })
    };
    let mut failed = 0usize;
    for kind in kinds {
        tracing::debug!("Cleaning {kind} cache...");
        if kind == BLOB {
            failed += clean_blobs(root, a.dry_run, &keep, &info);
        } else {
            if !a.dry_run && !kind.contains('/') && kind != "." && kind != ".." {
                // What an image-URI launch killed mid-fetch left behind; first, while the
                // entries' locks (which `clean_file_type` removes with them) still say who
                // is filling.
                let swept = if kind == BUILD {
                    // Killed builds' partial entries, and locks of steps that never got one.
                    sifr_build::defbuild::cache::BuildCache::new(root, 0, 1)
                        .sweep()
                        .map_err(anyhow::Error::from)
                } else {
                    sifr_oci::images::ImageCache::new(root, kind)
                        .sweep()
                        .map_err(anyhow::Error::from)
                };
                match swept {
                    Ok(0) => {}
                    Ok(n) => info(&format!(
                        "Removed {n} unfinished {kind} cache file(s) of interrupted fetches"
                    )),
                    Err(e) => tracing::debug!("cannot sweep the {kind} cache: {e}"),
                }
            }
            failed += clean_file_type(root, kind, a.dry_run, &keep, &info)?;
        }
    }
    if failed > 0 {
        anyhow::bail!("could not clean cache: failed to remove {failed} cache entries");
    }
    Ok(())
}

/// Clean sifr's blobs; returns how many could not be removed. A blob that a running pull is
/// writing is kept and said so.
fn clean_blobs(
    root: &Path,
    dry_run: bool,
    keep: &dyn Fn(Option<SystemTime>) -> bool,
    info: &dyn Fn(&str),
) -> usize {
    let cache = BlobCache::new(root);
    if !dry_run && let Err(e) = cache.sweep_locks() {
        tracing::debug!("cannot sweep the blob cache's lock files: {e}");
    }
    let entries = match cache.entries() {
        Ok(e) => e,
        Err(e) => {
            error(&format!("Could not read the blob cache: {e:#}"));
            return 1;
        }
    };
    if entries.is_empty() {
        info(&format!(
            "No cached files to remove at {}",
            root.join(BLOB).display()
        ));
        return 0;
    }
    let mut failed = 0;
    for e in entries {
        if keep(e.modified) {
            tracing::debug!("Skipping {}: younger than the --days limit", e.hex);
            continue;
        }
        if dry_run {
            info(&format!("Removing {BLOB} cache entry: {}", e.hex));
            continue;
        }
        match cache.remove(&e.hex) {
            Ok(Removal::Removed { .. }) => info(&format!("Removing {BLOB} cache entry: {}", e.hex)),
            Ok(Removal::Busy) => info(&format!(
                "Keeping {BLOB} cache entry {}: a running pull is writing it",
                e.hex
            )),
            Err(err) => {
                error(&format!(
                    "Could not remove cache entry '{}': {err:#}",
                    e.hex
                ));
                failed += 1;
            }
        }
    }
    failed
}

/// Clean the container file type `kind` (entries of `<root>/<kind>`, as Apptainer removes
/// them: files, or whole directories left by older versions); returns how many could not be
/// removed.
fn clean_file_type(
    root: &Path,
    kind: &str,
    dry_run: bool,
    keep: &dyn Fn(Option<SystemTime>) -> bool,
    info: &dyn Fn(&str),
) -> anyhow::Result<usize> {
    // A type is a directory name; one that would leave the root names no cache.
    let dir: PathBuf = root.join(kind);
    let bad = kind.is_empty() || kind.contains('/') || kind == "." || kind == "..";
    let entries = if bad {
        Vec::new()
    } else {
        file_type_entries(root, kind).unwrap_or_default()
    };
    if entries.is_empty() {
        info(&format!("No cached files to remove at {}", dir.display()));
        return Ok(0);
    }
    let mut failed = 0;
    for e in entries {
        if keep(e.modified) {
            tracing::debug!("Skipping {}: younger than the --days limit", e.name);
            continue;
        }
        info(&format!("Removing {kind} cache entry: {}", e.name));
        if dry_run {
            continue;
        }
        let p = dir.join(&e.name);
        // The entry's lock, if sifr made one; a filler holding it keeps its open copy.
        let _ = std::fs::remove_file(dir.join(format!(".{}.lock", e.name)));
        let r = match std::fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => std::fs::remove_dir_all(&p),
            Ok(_) => std::fs::remove_file(&p),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = r {
            error(&format!("Could not remove cache entry '{}': {err}", e.name));
            failed += 1;
        }
    }
    Ok(failed)
}

fn error(msg: &str) {
    eprintln!("ERROR:   {msg}");
}

/// Apptainer's question before a clean, printed on stdout; only `y` (either case) followed by
/// the end of the line is yes. An input that ends before a line does is an error, as Apptainer
/// reads it.
fn confirm(input: &mut dyn std::io::BufRead) -> anyhow::Result<bool> {
    print!(
        "This will delete everything in your cache (containers from all sources and OCI blobs).\n\
         Hint: You can see exactly what would be deleted by canceling and using the --dry-run option.\n\
         Do you want to continue? [y/N] "
    );
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("could not read user's input")?;
    if !line.ends_with('\n') {
        anyhow::bail!("could not read user's input: EOF");
    }
    Ok(line.to_lowercase() == "y\n")
}

/// Apptainer's human size (`fs.FindSize`): two decimals in KiB below 1 MiB, then MiB, GiB, TiB.
fn human_size(size: u64) -> String {
    const KIB: f64 = 1024.0;
    let (factor, unit) = match size {
        s if s < 1 << 20 => (KIB, "KiB"),
        s if s < 1 << 30 => (KIB * KIB, "MiB"),
        s if s < 1 << 40 => (KIB * KIB * KIB, "GiB"),
        _ => (KIB * KIB * KIB * KIB, "TiB"),
    };
    format!("{:.2} {unit}", size as f64 / factor)
}

/// A time as Go's `2006-01-02 15:04:05` layout writes it in the local time zone.
fn local_date(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    date_at(secs + sifr_sys::time::local_utc_offset(secs))
}

/// `YYYY-MM-DD HH:MM:SS` of seconds since the epoch, already shifted to the wanted zone.
fn date_at(secs: i64) -> String {
    let (y, m, d) = sifr_sif::render::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
