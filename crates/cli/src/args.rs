//! The clap definitions: one tree that drives parsing, `--help`, shell completions and man pages.

use std::path::PathBuf;

use clap::{Args, FromArgMatches, Parser, Subcommand};

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

/// The commands. `Subcommand` is implemented by hand (below) rather than derived so that each
/// command's options are only built when that command runs: building the whole tree took
/// 0.5 ms of every `sifr exec` (`clap::Command::defer`).
#[derive(Debug)]
pub enum Command {
    Version,
    Completion(cmd::completion::CompletionArgs),
    Man(cmd::man::ManArgs),
    Deffile(cmd::deffile::DeffileCommand),
    Sif(cmd::sif::SifCommand),
    Build(cmd::build::BuildArgs),
    Pull(cmd::pull::PullArgs),
    Registry(cmd::registry::RegistryCommand),
    Cache(cmd::cache::CacheCommand),
    Inspect(cmd::inspect::InspectArgs),
    RunHelp(cmd::inspect::RunHelpArgs),
    Exec(cmd::action::ExecArgs),
    Run(cmd::action::RunArgs),
    Shell(cmd::action::ShellArgs),
    Test(cmd::action::RunArgs),
    Instance(cmd::instance::InstanceCommand),
}

thread_local! {
    static EAGER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The whole tree with every command's definition applied, for generators that walk it
/// (completions, man pages): clap builds its `help` subcommand from the commands' subcommands
/// before it applies deferred definitions.
pub fn full_command() -> clap::Command {
    use clap::CommandFactory as _;
    EAGER.with(|e| e.set(true));
    let cmd = Cli::command();
    EAGER.with(|e| e.set(false));
    cmd
}

/// `cmd` with `define` applied now ([`full_command`]) or when the command is first used.
fn define(cmd: clap::Command, define: fn(clap::Command) -> clap::Command) -> clap::Command {
    if EAGER.with(std::cell::Cell::get) {
        define(cmd)
    } else {
        cmd.defer(define)
    }
}

/// A command whose options come from `Args` type `$args`. The about text is applied again after
/// the options because an `Args` type's own doc comment would replace it.
macro_rules! with_args {
    ($name:literal, $about:literal, $args:ty) => {
        define(clap::Command::new($name).about($about), |c| {
            <$args as Args>::augment_args(c).about($about)
        })
    };
}

/// A command with subcommands from `Subcommand` type `$sub` (one of them is required).
macro_rules! with_subcommands {
    ($name:literal, $about:literal, $sub:ty) => {
        define(clap::Command::new($name).about($about), |c| {
            <$sub as Subcommand>::augment_subcommands(c)
                .about($about)
                .subcommand_required(true)
                .arg_required_else_help(true)
        })
    };
}

/// Every command, in `--help` order.
fn commands() -> [clap::Command; 16] {
    use cmd::{action, build, cache, completion, deffile, inspect, instance, man, pull, registry};
    [
        clap::Command::new("version").about("Show the version of sifr"),
        with_args!(
            "completion",
            "Print a shell completion script (bash, zsh, fish, elvish or powershell)",
            completion::CompletionArgs
        ),
        with_args!(
            "man",
            "Write man pages generated from the same definitions as `--help`",
            man::ManArgs
        ),
        with_subcommands!(
            "deffile",
            "Work with definition files without building",
            deffile::DeffileCommand
        ),
        with_subcommands!(
            "sif",
            "Inspect and edit the objects of a SIF image (as `apptainer sif`)",
            cmd::sif::SifCommand
        )
        .alias("siftool"),
        with_args!(
            "build",
            "Build a SIF image (or a sandbox) from a definition file, a directory or an image",
            build::BuildArgs
        ),
        with_args!(
            "pull",
            "Download an image from a registry (or an OCI layout/archive) into a SIF file",
            pull::PullArgs
        ),
        with_subcommands!(
            "registry",
            "Log in to OCI registries, log out, list the stored logins",
            registry::RegistryCommand
        ),
        with_subcommands!(
            "cache",
            "List or clean the cache of downloaded image blobs",
            cache::CacheCommand
        ),
        with_args!(
            "inspect",
            "Show an image's metadata: labels, definition file, scripts, environment",
            inspect::InspectArgs
        ),
        with_args!(
            "run-help",
            "Show an image's help text (its `%help` section)",
            inspect::RunHelpArgs
        ),
        with_args!("exec", "Run a command in a container", action::ExecArgs),
        with_args!("run", "Run the container's runscript", action::RunArgs),
        with_args!(
            "shell",
            "Start an interactive shell in a container",
            action::ShellArgs
        ),
        with_args!("test", "Run the container's test script", action::RunArgs),
        with_subcommands!(
            "instance",
            "Start, stop and list named background containers (`exec instance://NAME` joins one)",
            instance::InstanceCommand
        ),
    ]
}

impl Subcommand for Command {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        cmd.subcommands(commands())
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        commands()
            .iter()
            .any(|c| c.get_name() == name || c.get_all_aliases().any(|a| a == name))
    }
}

impl FromArgMatches for Command {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut m.clone())
    }

    fn from_arg_matches_mut(m: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, mut sub)) = m.remove_subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        let sub = &mut sub;
        Ok(match name.as_str() {
            "version" => Self::Version,
            "completion" => Self::Completion(FromArgMatches::from_arg_matches_mut(sub)?),
            "man" => Self::Man(FromArgMatches::from_arg_matches_mut(sub)?),
            "deffile" => Self::Deffile(FromArgMatches::from_arg_matches_mut(sub)?),
            "sif" => Self::Sif(FromArgMatches::from_arg_matches_mut(sub)?),
            "build" => Self::Build(FromArgMatches::from_arg_matches_mut(sub)?),
            "pull" => Self::Pull(FromArgMatches::from_arg_matches_mut(sub)?),
            "registry" => Self::Registry(FromArgMatches::from_arg_matches_mut(sub)?),
            "cache" => Self::Cache(FromArgMatches::from_arg_matches_mut(sub)?),
            "inspect" => Self::Inspect(FromArgMatches::from_arg_matches_mut(sub)?),
            "run-help" => Self::RunHelp(FromArgMatches::from_arg_matches_mut(sub)?),
            "exec" => Self::Exec(FromArgMatches::from_arg_matches_mut(sub)?),
            "run" => Self::Run(FromArgMatches::from_arg_matches_mut(sub)?),
            "shell" => Self::Shell(FromArgMatches::from_arg_matches_mut(sub)?),
            "test" => Self::Test(FromArgMatches::from_arg_matches_mut(sub)?),
            "instance" => Self::Instance(FromArgMatches::from_arg_matches_mut(sub)?),
            other => {
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::InvalidSubcommand,
                    format!("the subcommand `{other}` wasn't recognized"),
                ));
            }
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}
