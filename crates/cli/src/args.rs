//! The clap definitions: one tree that drives parsing, `--help`, shell completions and man pages.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cmd;

#[derive(Debug, Parser)]
#[command(
    name = "sifr",
    version,
    about = "Containers for HPC clusters, compatible with Apptainer and Singularity images",
    long_about = "sifr builds and runs Apptainer-compatible SIF container images.\n\n\
        Installed (or linked) under the name `apptainer` or `singularity`, it behaves the same, \
        so existing job scripts keep working.",
    propagate_version = true,
    disable_help_subcommand = false,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted before any command, as Apptainer's are.
#[derive(Debug, Default, Clone, Args)]
pub struct GlobalArgs {
    /// Print debugging information (the most detail).
    #[arg(short, long, global = true)]
    pub debug: bool,
    /// Print more information about what sifr is doing.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print nothing, not even errors (the exit status still tells).
    #[arg(short, long)]
    pub silent: bool,
    /// Never colour the output.
    #[arg(long, global = true)]
    pub nocolor: bool,
    /// Read settings from this TOML file instead of the default one.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the version of sifr.
    Version,
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    Completion(cmd::completion::CompletionArgs),
    /// Write man pages generated from the same definitions as `--help`.
    Man(cmd::man::ManArgs),
    /// Work with definition files without building.
    #[command(subcommand)]
    Deffile(cmd::deffile::DeffileCommand),
    /// Inspect and edit the objects of a SIF image (as `apptainer sif`).
    #[command(subcommand, alias = "siftool")]
    Sif(cmd::sif::SifCommand),
    /// Build a SIF image (or a sandbox) from a definition file, a directory or an image.
    Build(cmd::build::BuildArgs),
    /// Download an image from a registry (or an OCI layout/archive) into a SIF file.
    Pull(cmd::pull::PullArgs),
    /// Log in to OCI registries, log out, list the stored logins.
    #[command(subcommand)]
    Registry(cmd::registry::RegistryCommand),
    /// List or clean the cache of downloaded image blobs.
    #[command(subcommand)]
    Cache(cmd::cache::CacheCommand),
    /// Show an image's metadata: labels, definition file, scripts, environment.
    Inspect(cmd::inspect::InspectArgs),
    /// Show an image's help text (its `%help` section).
    RunHelp(cmd::inspect::RunHelpArgs),
    /// Run a command in a container.
    Exec(cmd::action::ExecArgs),
    /// Run the container's runscript.
    Run(cmd::action::RunArgs),
    /// Start an interactive shell in a container.
    Shell(cmd::action::ShellArgs),
    /// Run the container's test script.
    Test(cmd::action::RunArgs),
    /// Start, stop and list named background containers (`exec instance://NAME` joins one).
    #[command(subcommand)]
    Instance(cmd::instance::InstanceCommand),
}
