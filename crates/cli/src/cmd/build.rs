//! `sifr build TARGET SOURCE`: pack a sandbox directory into a SIF.
//!
//! Argument parsing and progress lines only; packing is `build::pack_dir`. Definition-file
//! builds are not implemented yet and are refused with a clear message.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use squashfs::Compression;

use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The SIF image to create.
    pub target: PathBuf,
    /// The root filesystem directory (sandbox) to pack.
    pub source: PathBuf,
    /// SquashFS compression: gzip, zstd, xz or lz4, with an optional level (`gzip:9`,
    /// `zstd:19`). zstd needs Apptainer/SingularityCE hosts with a zstd-capable kernel or
    /// squashfuse; use gzip for the oldest runtimes.
    #[arg(long, value_name = "CODEC[:LEVEL]", default_value = "zstd:3")]
    pub compression: Compression,
    /// Overwrite the target image if it exists.
    #[arg(short = 'F', long)]
    pub force: bool,
    /// Store every file as owned by root (uid 0, gid 0).
    #[arg(long)]
    pub all_root: bool,
    /// Compression threads (0 = one per core); the image is identical for any value.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
}

pub fn run(args: BuildArgs, settings: &Settings) -> anyhow::Result<u8> {
    if args.source.is_file() {
        anyhow::bail!(
            "building from a definition file (`{}`) is not supported yet; pass a sandbox directory",
            args.source.display()
        );
    }
    let opts = build::PackOptions {
        compression: args.compression,
        all_root: args.all_root,
        force: args.force,
        threads: args.threads,
        arch: None,
    };
    let started = std::time::Instant::now();
    let report = build::pack_dir(&args.source, &args.target, &opts).with_context(|| {
        format!(
            "cannot build `{}` from `{}`",
            args.target.display(),
            args.source.display()
        )
    })?;
    if let build::ArchSource::Host = report.arch.source
        && !settings.quiet
        && !settings.silent
    {
        eprintln!(
            "INFO:    no ELF executable in `{}`; architecture set to the host's ({})",
            args.source.display(),
            report.arch.arch.go_name()
        );
    }
    if !settings.quiet && !settings.silent {
        let s = &report.squashfs;
        eprintln!(
            "INFO:    Build complete: {} ({} inodes, {:.1} MiB from {:.1} MiB, {}, {} duplicate files, {:.1} s)",
            args.target.display(),
            s.inodes,
            report.sif_size as f64 / 1048576.0,
            s.data.bytes_in as f64 / 1048576.0,
            args.compression,
            s.data.duplicate_files,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(crate::exit::OK)
}
