//! The clap definitions: one tree that drives parsing, `--help`, shell completions and man pages.

use std::path::PathBuf;

use clap::{Args, FromArgMatches, Parser, Subcommand};

use crate::cmd;

#[derive(Debug, Parser)]
#[command(
    name = "sifr",
    about = "Containers for HPC clusters, compatible with Apptainer and Singularity images",
    long_about = "sifr builds and runs Apptainer-compatible SIF container images.\n\n\
        Installed (or linked) under the name `apptainer` or `singularity`, it behaves the same, \
        so existing job scripts keep working.",
    disable_version_flag = true,
    disable_help_subcommand = false,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// None only with `--version` (or no command at all, which is a usage error).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags accepted before the command, as Apptainer's global flags are. Like Apptainer's they
/// belong to the top level only (`sifr -d exec ...`), which leaves their short names free for
/// the commands' own flags (`inspect -d` is `--deffile`, `cache list -v` is `--verbose`).
#[derive(Debug, Default, Clone, Args)]
pub struct GlobalArgs {
    /// Print debugging information (the most detail). Before the command only, as
    /// Apptainer's: `inspect -d` is `--deffile`.
    #[arg(short, long)]
    pub debug: bool,
    /// Print more information about what sifr is doing.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print only errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print nothing, not even errors (the exit status still tells).
    #[arg(short, long)]
    pub silent: bool,
    /// Never colour the output.
    #[arg(long)]
    pub nocolor: bool,
    /// Print the version (`apptainer version X.Y.Z` under the name `apptainer`).
    #[arg(long)]
    pub version: bool,
    /// Use the configuration for building containers. Accepted for Apptainer's nested build
    /// calls; sifr's settings are the same for builds and runs, so it changes nothing.
    #[arg(long)]
    pub build_config: bool,
    /// Read settings from this TOML file instead of the default one.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
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
/// Each definition ends with [`crate::help::decorate`]: the examples after `--help`.
fn define(cmd: clap::Command, define: fn(clap::Command) -> clap::Command) -> clap::Command {
    if EAGER.with(std::cell::Cell::get) {
        define(cmd)
    } else {
        cmd.defer(define)
    }
}

/// One command's clap definition: `unit` (no options), `args` (options from an `Args` type)
/// or `subcommands` (from a `Subcommand` type, one of them required). The about text is applied
/// again after the options because an `Args` type's own doc comment would replace it.
macro_rules! definition {
    (unit, $name:literal, $about:literal) => {
        crate::help::decorate(clap::Command::new($name).about($about))
    };
    (args, $name:literal, $about:literal, $ty:ty) => {
        define(clap::Command::new($name).about($about), |c| {
            crate::help::decorate(<$ty as Args>::augment_args(c).about($about))
        })
    };
    (subcommands, $name:literal, $about:literal, $ty:ty) => {
        define(clap::Command::new($name).about($about), |c| {
            crate::help::decorate(
                <$ty as Subcommand>::augment_subcommands(c)
                    .about($about)
                    .subcommand_required(true)
                    .arg_required_else_help(true),
            )
        })
    };
}

/// The value of a variant from its command's matches.
macro_rules! value {
    ($variant:ident, $sub:ident) => {
        Command::$variant
    };
    ($variant:ident, $ty:ty, $sub:ident) => {
        Command::$variant(<$ty as FromArgMatches>::from_arg_matches_mut($sub)?)
    };
}

/// The command enum, its clap definitions in `--help` order and the parse back, from one table
/// (`Variant(Type) = kind("name", "about")`), so that they cannot drift apart.
macro_rules! commands {
    ($( $variant:ident $(($ty:ty))? = $kind:ident($name:literal, $about:literal)
        $(alias $alias:literal)?; )*) => {
        /// The commands. `Subcommand` is implemented here rather than derived so that each
        /// command's options are only built when that command runs: building the whole tree
        /// took 0.5 ms of every `sifr exec` (`clap::Command::defer`).
        #[derive(Debug)]
        pub enum Command {
            $( $variant $(($ty))?, )*
        }

        /// Every command, in `--help` order.
        fn commands() -> Vec<clap::Command> {
            vec![ $( definition!($kind, $name, $about $(, $ty)?) $(.alias($alias))?, )* ]
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
                    $( $name => value!($variant $(, $ty)?, sub), )*
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
    };
}

// stays literal: one entry per subcommand (name, help line, arguments), read top to bottom.
commands! {
    Version = unit(
        "version",
        "Show the version for Apptainer (under the name `sifr`, sifr's own and Apptainer's)"
    );
    Completion(cmd::completion::CompletionArgs) = args(
        "completion",
        "Print a shell completion script (bash, zsh, fish, elvish or powershell)"
    );
    Man(cmd::man::ManArgs) = args(
        "man",
        "Write man pages generated from the same definitions as `--help`"
    );
    Deffile(cmd::deffile::DeffileCommand) = subcommands(
        "deffile",
        "Work with definition files without building"
    );
    Sif(cmd::sif::SifCommand) = subcommands(
        "sif",
        "Inspect and edit the objects of a SIF image (as `apptainer sif`)"
    ) alias "siftool";
    Overlay(cmd::overlay::OverlayCommand) = subcommands(
        "overlay",
        "Manage an EXT3 writable overlay image (`overlay create`)"
    );
    Build(cmd::build::BuildArgs) = args(
        "build",
        "Build a SIF image (or a sandbox) from a definition file, a directory or an image"
    );
    Pull(cmd::pull::PullArgs) = args(
        "pull",
        "Download an image from a registry (or an OCI layout/archive) into a SIF file"
    );
    Push(cmd::push::PushArgs) = args("push", "Upload a SIF image to an OCI registry (oras://)");
    Registry(cmd::registry::RegistryCommand) = subcommands(
        "registry",
        "Log in to OCI registries, log out, list the stored logins"
    );
    Remote(cmd::remote::RemoteCommand) = subcommands(
        "remote",
        "Log in to or out of OCI registries (the older spelling of `registry login|logout`)"
    );
    Cache(cmd::cache::CacheCommand) = subcommands(
        "cache",
        "List or clean the cache of downloaded image blobs"
    );
    Inspect(cmd::inspect::InspectArgs) = args(
        "inspect",
        "Show an image's metadata: labels, definition file, scripts, environment"
    );
    RunHelp(cmd::inspect::RunHelpArgs) = args(
        "run-help",
        "Show an image's help text (its `%help` section)"
    );
    Exec(cmd::action::ExecArgs) = args("exec", "Run a command in a container");
    Run(cmd::action::RunArgs) = args("run", "Run the container's runscript");
    Shell(cmd::action::ShellArgs) = args("shell", "Start an interactive shell in a container");
    Test(cmd::action::RunArgs) = args("test", "Run the container's test script");
    Instance(cmd::instance::InstanceCommand) = subcommands(
        "instance",
        "Start, stop and list named background containers (`exec instance://NAME` joins one)"
    );
    Key(cmd::key::KeyCommand) = subcommands(
        "key",
        "Manage OpenPGP keys in Apptainer's keyrings (newpair, list, export, import, remove)"
    ) alias "keys";
    Keyserver(cmd::keyserver::KeyserverArgs) = args(
        "keyserver",
        "Manage the keyservers `key search|pull|push` and `verify` use"
    );
    Sign(cmd::sign::SignArgs) = args("sign", "Add signature objects to a SIF image (PGP or DSSE)");
    Verify(cmd::verify::VerifyArgs) = args(
        "verify",
        "Verify the signatures of a SIF image (PGP keyrings, or a PEM key for DSSE)"
    );
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn both_trees_pass_clap_checks_and_every_command_parses() {
        // The lazily defined tree (what a start parses with) and the full one (completions, man
        // pages), each built recursively, which applies every deferred definition.
        Cli::command().debug_assert();
        full_command().debug_assert();
        for (args, want) in [
            (&["sifr", "version"][..], "Version"),
            (&["sifr", "exec", "img.sif", "true"], "Exec"),
            (&["sifr", "test", "img.sif"], "Test"),
            (&["sifr", "siftool", "list", "img.sif"], "Sif"),
            (
                &["sifr", "overlay", "create", "-s", "128", "o.img"],
                "Overlay",
            ),
            (&["sifr", "cache", "list"], "Cache"),
            (&["sifr", "-d", "inspect", "-d", "img.sif"], "Inspect"),
        ] {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let got = format!("{:?}", cli.command.expect("a command"));
            assert!(got.starts_with(want), "{args:?}: {got}");
        }
    }

    /// Apptainer's parser stops at the image (`SetInterspersed(false)`): what follows reaches
    /// the container untouched, flags and all.
    #[test]
    fn options_stop_at_the_image() {
        let operands = |args: &[&str]| -> Vec<String> {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            match cli.command.expect("a command") {
                Command::Exec(a) => a.operands,
                Command::Run(a) | Command::Test(a) => a.operands,
                Command::Shell(a) => a.operands,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            operands(&[
                "sifr",
                "run",
                "--pid",
                "img.sif",
                "-c",
                "x",
                "--version",
                "-h"
            ]),
            ["img.sif", "-c", "x", "--version", "-h"]
        );
        assert_eq!(
            operands(&[
                "sifr", "exec", "-B", "/a", "img.sif", "ls", "--pid", "-B", "/b"
            ]),
            ["img.sif", "ls", "--pid", "-B", "/b"]
        );
        assert_eq!(
            operands(&["sifr", "test", "img.sif", "--help"]),
            ["img.sif", "--help"]
        );
        assert_eq!(
            operands(&["sifr", "shell", "-s", "/bin/zsh", "i.sif"]),
            ["i.sif"]
        );
        // Flags before the image still parse, short ones included.
        let Some(Command::Exec(a)) = Cli::try_parse_from(["sifr", "exec", "-c", "-e", "i", "true"])
            .unwrap()
            .command
        else {
            panic!("exec")
        };
        assert!(a.flags.contain && a.flags.cleanenv);
        // An unknown flag before the image is not taken for the image.
        let (image, _) = crate::cmd::action::split_operands(vec!["--no-such".into()]).map_or_else(
            |e| (e.to_string(), Vec::new()),
            |(p, r)| (p.display().to_string(), r),
        );
        assert_eq!(image, "unknown flag `--no-such`");
    }

    #[test]
    fn global_flags_are_top_level_and_version_is_a_flag() {
        let cli = Cli::try_parse_from(["apptainer", "-d", "-q", "--version"]).unwrap();
        assert!(cli.global.debug && cli.global.quiet && cli.global.version);
        assert!(cli.command.is_none());
        // After the command, `-d` is the command's (or unknown), never the global one.
        assert!(Cli::try_parse_from(["sifr", "version", "-d"]).is_err());
    }
}
