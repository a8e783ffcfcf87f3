//! `sifr inspect [FLAGS] IMAGE`: show an image's metadata, as `apptainer inspect` does.
//!
//! The metadata is read without mounting anything: from a SIF's `inspect-metadata.json` object
//! when it has one (as Apptainer does), else from the image's own files (`/.singularity.d`,
//! `/scif/apps/*/scif`): from the directory for a sandbox, and through the SquashFS reader for a
//! SIF or a bare SquashFS image. `sifr_build::layout::inspect_tree` reads the files;
//! [`super::inspect_select`] applies Apptainer's rules for the flags and prints.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use sifr_build::layout::{AppAttributes, Attributes, ImageTree, InspectMetadata};
use sifr_squashfs::read::{Archive, FileType};

use super::inspect_select::{self, Source, Want};
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Show the labels for the image (default).
    #[arg(short = 'l', long)]
    pub labels: bool,
    /// Show the Apptainer definition file that was used to generate the image.
    #[arg(short = 'd', long)]
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
    /// Inspect the runscript helpfile, if it exists.
    #[arg(short = 'H', long)]
    pub helpfile: bool,
    /// Print structured json instead of sections.
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Show all available data (imply --json option).
    #[arg(long)]
    pub all: bool,
    /// Inspect a specific app.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// List all apps in a container.
    #[arg(long)]
    pub list_apps: bool,
    /// Show the CPU features the image's programs need and whether this host has them: the
    /// facts stored at build time, or a scan of the image when it has none (with --json, the
    /// facts themselves).
    #[arg(long)]
    pub isa: bool,
    /// With --isa: scan even when the image holds stored facts.
    #[arg(long, requires = "isa")]
    pub rescan: bool,
    /// With --isa: judge the image against this CPU or level instead of this host
    /// (`x86-64-v3`, `haswell`, `skylake-avx512`, `zen3`, `neoverse-n1`, ...).
    #[arg(long, requires = "isa", value_name = "CPU")]
    pub target: Option<String>,
    /// With --isa: judge the image against each kind of node of this Slurm partition (their
    /// feature tags, else their /proc/cpuinfo through srun).
    #[arg(long, requires = "isa", value_name = "NAME", conflicts_with = "target")]
    pub partition: Option<String>,
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

/// Read the metadata of the image at `path` from its files, whatever its format.
fn read_metadata(path: &Path) -> anyhow::Result<InspectMetadata> {
    let md = std::fs::metadata(path)?;
    if md.is_dir() {
        return Ok(sifr_build::layout::inspect(path)?);
    }
    let offset = squashfs_offset(path)?;
    let archive = Archive::open(File::open(path)?, offset)?;
    sifr_build::layout::inspect_tree(&Squash(archive))
}

/// The SIF object Apptainer stores the metadata in.
const METADATA_OBJECT: &str = "inspect-metadata.json";

/// Where `inspect` takes the metadata of the image at `path` from (see `inspect_select`), and
/// the warnings met on the way.
fn source(path: &Path) -> anyhow::Result<(Source, Vec<String>)> {
    let mut warnings = Vec::new();
    let sif = if std::fs::metadata(path)?.is_dir() || is_bare_squashfs(path)? {
        None
    } else {
        Some(sifr_sif::Image::open(path)?)
    };
    let Some(sif) = sif else {
        let meta = read_metadata(path)?;
        return Ok((
            Source::Tree {
                meta,
                sif: false,
                deffile_object: None,
            },
            warnings,
        ));
    };
    // Apptainer looks at data objects only (partitions are not), the first of each kind.
    let objects: Vec<_> = sif
        .descriptors()
        .filter(|d| d.data_type() != sifr_sif::DataType::Partition)
        .cloned()
        .collect();
    let deffile = objects
        .iter()
        .find(|d| d.data_type() == sifr_sif::DataType::Deffile);
    if let Some(d) = objects.iter().find(|d| d.name() == METADATA_OBJECT) {
        match sif
            .read_object(d.id())
            .map_err(anyhow::Error::from)
            .and_then(|b| parse_stored(&b))
        {
            Ok(meta) => {
                return Ok((
                    Source::Stored {
                        meta,
                        has_deffile_object: deffile.is_some(),
                    },
                    warnings,
                ));
            }
            Err(e) => warnings.push(format!(
                "Unable to read {METADATA_OBJECT} SIF descriptor: {e:#}"
            )),
        }
    }
    let deffile_object = match deffile {
        Some(d) => Some(String::from_utf8_lossy(&sif.read_object(d.id())?).into_owned()),
        None => None,
    };
    let meta = read_metadata(path)?;
    Ok((
        Source::Tree {
            meta,
            sif: true,
            deffile_object,
        },
        warnings,
    ))
}

fn is_bare_squashfs(path: &Path) -> anyhow::Result<bool> {
    let mut magic = [0u8; 4];
    let n = File::open(path)?.read(&mut magic)?;
    Ok(n == 4 && &magic == b"hsqs")
}

/// The stored `inspect-metadata.json` (`{"data":{"attributes":{...}},"type":"container"}`),
/// read as Go's decoder reads it: unknown keys ignored, missing or null ones empty.
fn parse_stored(bytes: &[u8]) -> anyhow::Result<InspectMetadata> {
    #[derive(serde::Deserialize, Default)]
    struct App {
        environment: Option<BTreeMap<String, String>>,
        labels: Option<BTreeMap<String, String>>,
        runscript: Option<String>,
        startscript: Option<String>,
        test: Option<String>,
        helpfile: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    struct Attrs {
        apps: Option<BTreeMap<String, Option<App>>>,
        environment: Option<BTreeMap<String, String>>,
        labels: Option<BTreeMap<String, String>>,
        runscript: Option<String>,
        test: Option<String>,
        helpfile: Option<String>,
        deffile: Option<String>,
        startscript: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    struct Data {
        attributes: Option<Attrs>,
    }
    #[derive(serde::Deserialize)]
    struct Stored {
        data: Option<Data>,
    }
    let s: Stored = serde_json::from_slice(bytes).context("while decoding inspect metadata")?;
    let a = s.data.and_then(|d| d.attributes).unwrap_or_default();
    let apps = a
        .apps
        .unwrap_or_default()
        .into_iter()
        .map(|(name, x)| {
            let x = x.unwrap_or_default();
            let app = AppAttributes {
                environment: x.environment.unwrap_or_default(),
                labels: x.labels.unwrap_or_default(),
                runscript: x.runscript.unwrap_or_default(),
                startscript: x.startscript.unwrap_or_default(),
                test: x.test.unwrap_or_default(),
                helpfile: x.helpfile.unwrap_or_default(),
            };
            (name, app)
        })
        .collect();
    Ok(InspectMetadata {
        attributes: Attributes {
            apps,
            environment: a.environment.unwrap_or_default(),
            labels: a.labels.unwrap_or_default(),
            runscript: a.runscript.unwrap_or_default(),
            test: a.test.unwrap_or_default(),
            helpfile: a.helpfile.unwrap_or_default(),
            deffile: a.deffile.unwrap_or_default(),
            startscript: a.startscript.unwrap_or_default(),
        },
    })
}

pub fn run(mut args: InspectArgs, settings: &Settings) -> anyhow::Result<u8> {
    // `inspect docker://...` inspects the cached SIF a launch of the URI would run.
    let fetched = super::image_uri::fetch_with_env(&args.image, settings)?;
    if let Some(f) = &fetched {
        args.image = f.path.clone();
    }
    if args.isa {
        let judges = super::inspect_isa::Judges {
            target: args.target.clone(),
            partition: args.partition.clone(),
        };
        return super::inspect_isa::run(&args.image, args.json, args.rescan, &judges, settings);
    }
    let want = Want {
        labels: args.labels,
        deffile: args.deffile,
        helpfile: args.helpfile,
        runscript: args.runscript,
        startscript: args.startscript,
        test: args.test,
        environment: args.environment,
        list_apps: args.list_apps,
        all: args.all,
        json: args.json,
        app: args.app.filter(|a| !a.is_empty()),
    }
    .resolve();
    let (source, mut warnings) = source(&args.image)
        .with_context(|| format!("cannot inspect `{}`", args.image.display()))?;
    warnings.extend(unknown_app(&want, &source));
    let selected = inspect_select::select(&want, &source);
    warnings.extend(selected.warnings);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    print!("{}", inspect_select::render(&selected.meta, &want));
    Ok(crate::exit::OK)
}

/// `sifr run-help`.
#[derive(Debug, clap::Args)]
pub struct RunHelpArgs {
    /// Show the help for an app.
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// The image: a SIF, a bare SquashFS file or a sandbox directory.
    pub image: std::path::PathBuf,
}

/// `sifr run-help IMAGE`: the image's `%help` text, as `apptainer run-help` prints it.
pub fn run_help(mut args: RunHelpArgs, settings: &Settings) -> anyhow::Result<u8> {
    let fetched = super::image_uri::fetch_with_env(&args.image, settings)?;
    if let Some(f) = &fetched {
        args.image = f.path.clone();
    }
    if let Some(app) = args.app.filter(|a| !a.is_empty()) {
        return run_help_app(&args.image, app);
    }
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

/// `sifr run-help --app NAME IMAGE`: what `inspect --helpfile --app NAME` prints, as Apptainer's
/// `run-help` runs it; an app without help (or not in the image) gets Apptainer's line, status
/// 0 (its e2e `AppFakeHelp`), and sifr warns which apps the image has.
fn run_help_app(image: &Path, app: String) -> anyhow::Result<u8> {
    let want = Want {
        helpfile: true,
        app: Some(app),
        ..Want::default()
    }
    .resolve();
    let (source, warnings) =
        source(image).with_context(|| format!("cannot read the help of `{}`", image.display()))?;
    for w in warnings.iter().chain(&unknown_app(&want, &source)) {
        tracing::warn!("{w}");
    }
    let text = inspect_select::render(&inspect_select::select(&want, &source).meta, &want);
    if text.trim().is_empty() {
        println!("No help sections were defined for this image");
    } else {
        print!("{text}");
    }
    Ok(crate::exit::OK)
}

/// sifr's warning when `--app` names an app the image lacks (Apptainer prints nothing then).
fn unknown_app(want: &Want, source: &Source) -> Option<String> {
    let name = want.app.as_deref()?;
    let apps = match source {
        Source::Stored { meta, .. } | Source::Tree { meta, .. } => &meta.attributes.apps,
    };
    if apps.contains_key(name) {
        return None;
    }
    Some(if apps.is_empty() {
        format!("the image has no SCIF apps, so none called `{name}`")
    } else {
        let names: Vec<&str> = apps.keys().map(String::as_str).collect();
        format!(
            "the image has no app `{name}`; its apps: {}",
            names.join(", ")
        )
    })
}
