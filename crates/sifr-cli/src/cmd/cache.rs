//! `sifr cache list|clean`: the blob cache that pulls fill (`APPTAINER_CACHEDIR`, else
//! `~/.apptainer/cache`). Listing is data (stdout); cleaning asks first unless `--force`,
//! as Apptainer's does, and leaves blobs that a running pull is writing.

use std::io::{BufRead as _, Write as _};

use anyhow::Context;
use clap::{Args, Subcommand};
use sifr_oci::cache::BlobCache;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the cached blobs (layers, configs) with their sizes.
    List(ListArgs),
    /// Remove every cached blob that no running pull is writing.
    Clean(CleanArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// One line per blob (`DIGEST SIZE`) instead of the summary.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub fn run(c: CacheCommand, settings: &Settings) -> anyhow::Result<u8> {
    let dir = crate::cmd::pull::cache_dir(settings)?;
    let cache = BlobCache::new(&dir);
    match c {
        CacheCommand::List(a) => {
            let blobs = cache
                .list()
                .with_context(|| format!("cannot list the cache in `{}`", dir.display()))?;
            let mut out = std::io::stdout().lock();
            if a.verbose {
                for b in &blobs {
                    writeln!(out, "{} {}", b.digest, b.size)?;
                }
            }
            let total: u64 = blobs.iter().map(|b| b.size).sum();
            writeln!(
                out,
                "There are {} blobs using {:.1} MiB in `{}`",
                blobs.len(),
                total as f64 / 1048576.0,
                dir.display()
            )?;
            Ok(crate::exit::OK)
        }
        CacheCommand::Clean(a) => {
            if !a.force {
                eprint!(
                    "This will delete everything in the cache `{}`. Do you want to continue? [y/N] ",
                    dir.display()
                );
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    eprintln!("INFO:    Cache cleanup cancelled");
                    return Ok(crate::exit::OK);
                }
            }
            let r = cache
                .clean()
                .with_context(|| format!("cannot clean the cache in `{}`", dir.display()))?;
            if !settings.quiet && !settings.silent {
                eprintln!(
                    "INFO:    Removed {} files, {:.1} MiB{}",
                    r.removed,
                    r.bytes as f64 / 1048576.0,
                    if r.busy > 0 {
                        format!("; {} in use by a running pull were kept", r.busy)
                    } else {
                        String::new()
                    }
                );
            }
            Ok(crate::exit::OK)
        }
    }
}
