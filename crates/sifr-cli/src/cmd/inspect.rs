//! `sifr inspect [FLAGS] IMAGE`: show an image's metadata (as `apptainer inspect`).
//!
//! The metadata is read from the image's own files (`/.singularity.d/...`): from the directory
//! for a sandbox, and through the SquashFS reader for a SIF or a bare SquashFS image, without
//! mounting anything. `sifr_build::layout::inspect` does the reading; this module picks the fields
//! and prints them the way Apptainer does.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use sifr_build::layout::{ImageTree, InspectMetadata};
use sifr_squashfs::read::{Archive, FileType};

use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Show the labels for the image (the default).
    #[arg(short = 'l', long)]
    pub labels: bool,
    /// Show the definition file that was used to build the image. (Apptainer's `-d` short
    /// form is taken by the global `--debug` here.)
    #[arg(long)]
    pub deffile: bool,
    /// Show the runscript for the image.
    #[arg(short = 'r', long)]
    pub runscript: bool,
    /// Show the startscript for the image.
    #[arg(short = 's', long)]
    pub startscript: bool,
    /// Show the test script for the image.
    #[arg(short = 't', long)]
    pub test: bool,
    /// Show the environment settings for the image.
    #[arg(short = 'e', long)]
    pub environment: bool,
    /// Show the runscript help file, if it exists.
    #[arg(short = 'H', long)]
    pub helpfile: bool,
    /// Print structured JSON instead of sections.
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Show all available data (implies --json).
    #[arg(long)]
    pub all: bool,
    /// Show the CPU features the image's programs need and whether this host has them: the
    /// facts stored at build time, or a scan of the image when it has none (with --json, the
    /// facts themselves).
    #[arg(long)]
    pub isa: bool,
    /// With --isa: scan even when the image holds stored facts.
    #[arg(long, requires = "isa")]
    pub rescan: bool,
    /// The image: a sandbox directory, a SIF, or a SquashFS file.
    pub image: PathBuf,
}

/// Largest metadata file read from a packed image.
const MAX_FILE: u64 = 64 << 20;

/// A SquashFS root filesystem, read in place.
struct Squash(Archive);

impl ImageTree for Squash {
    type Error = anyhow::Error;

    fn is_dir(&self, rel: &str) -> anyhow::Result<bool> {
        Ok(self.0.lookup(rel)?.is_some_and(|i| i.is_dir()))
    }

    fn read(&self, rel: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(inode) = self.0.lookup(rel)? else {
            return Ok(None);
        };
        if inode.file_type() != FileType::File {
            return Ok(None);
        }
        if inode.size() > MAX_FILE {
            anyhow::bail!("/{rel}: {} bytes is too large", inode.size());
        }
        let mut buf = vec![0u8; inode.size() as usize];
        let mut done = 0;
        while done < buf.len() {
            let n = self.0.read_at(&inode, done as u64, &mut buf[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        Ok(Some(buf))
    }

    fn list(&self, rel: &str) -> anyhow::Result<Vec<String>> {
        let Some(dir) = self.0.lookup(rel)?.filter(|i| i.is_dir()) else {
            return Ok(Vec::new());
        };
        let mut names: Vec<String> = self
            .0
            .read_dir(&dir)?
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Where the root filesystem of the image file at `path` (a SIF or a bare SquashFS) starts.
pub(crate) fn squashfs_offset(path: &Path) -> anyhow::Result<u64> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path)?;
    let n = f.read(&mut magic)?;
    let offset = if n == 4 && &magic == b"hsqs" {
        0
    } else {
        let sif = sifr_sif::Image::open(path)?;
        let part = sif
            .primary_partition()
            .context("the SIF has no primary system partition")?;
        if part.partition().map(|p| p.fs) != Some(sifr_sif::FsType::Squash) {
            anyhow::bail!("the primary partition is not SquashFS");
        }
        part.offset()
    };
    Ok(offset)
}

/// Read the metadata of the image at `path`, whatever its format.
fn read_metadata(path: &Path) -> anyhow::Result<InspectMetadata> {
    let md = std::fs::metadata(path)?;
    if md.is_dir() {
        return Ok(sifr_build::layout::inspect(path)?);
    }
    let offset = squashfs_offset(path)?;
    let archive = Archive::open(File::open(path)?, offset)?;
    sifr_build::layout::inspect_tree(&Squash(archive))
}

pub fn run(args: InspectArgs, settings: &Settings) -> anyhow::Result<u8> {
    if args.isa {
        return super::inspect_isa::run(&args.image, args.json, args.rescan, settings);
    }
    let meta = read_metadata(&args.image)
        .with_context(|| format!("cannot inspect `{}`", args.image.display()))?;
    let json = args.json || args.all;
    let default = !(args.helpfile
        || args.deffile
        || args.runscript
        || args.startscript
        || args.test
        || args.environment);
    let mut out = InspectMetadata::default();
    let (a, b) = (&meta.attributes, &mut out.attributes);
    // Each attribute is copied when its flag (or `--all`) asks for it.
    let all = args.all;
    copy_if(all, &a.apps, &mut b.apps);
    copy_if(args.labels || default || all, &a.labels, &mut b.labels);
    copy_if(args.deffile || all, &a.deffile, &mut b.deffile);
    copy_if(args.helpfile || all, &a.helpfile, &mut b.helpfile);
    copy_if(args.runscript || all, &a.runscript, &mut b.runscript);
    copy_if(args.startscript || all, &a.startscript, &mut b.startscript);
    copy_if(args.test || all, &a.test, &mut b.test);
    copy_if(args.environment || all, &a.environment, &mut b.environment);
    print!("{}", render(&out, json));
    Ok(crate::exit::OK)
}

fn copy_if<T: Clone>(wanted: bool, from: &T, to: &mut T) {
    if wanted {
        *to = from.clone();
    }
}

/// `sifr run-help`.
#[derive(Debug, clap::Args)]
pub struct RunHelpArgs {
    /// The image: a SIF, a bare SquashFS file or a sandbox directory.
    pub image: std::path::PathBuf,
}

/// `sifr run-help IMAGE`: the image's `%help` text, as `apptainer run-help` prints it.
pub fn run_help(args: RunHelpArgs, _settings: &Settings) -> anyhow::Result<u8> {
    let meta = read_metadata(&args.image)
        .with_context(|| format!("cannot read the help of `{}`", args.image.display()))?;
    let help = &meta.attributes.helpfile;
    if help.trim().is_empty() {
        println!("No help sections were defined for this image");
    } else {
        print!("{help}");
        if !help.ends_with('\n') {
            println!();
        }
    }
    Ok(crate::exit::OK)
}

/// The text Apptainer prints for the selected metadata `m`.
fn render(m: &InspectMetadata, json: bool) -> String {
    if json {
        return m.to_json_pretty() + "\n";
    }
    let a = &m.attributes;
    let mut s = String::new();
    for v in [
        &a.deffile,
        &a.runscript,
        &a.startscript,
        &a.test,
        &a.helpfile,
    ] {
        if !v.is_empty() {
            s.push_str(v);
            s.push('\n');
        }
    }
    for (k, v) in &a.environment {
        s.push_str(&format!("=== {k} ===\n{v}\n\n"));
    }
    for (k, v) in &a.labels {
        s.push_str(&format!("{k}: {v}\n"));
    }
    s
}
