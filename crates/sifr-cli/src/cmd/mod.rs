//! One module per command. Each exposes its clap arguments and a `run` returning the exit code.

pub mod action;
pub mod action_cgroup;
pub mod action_env;
pub mod action_mounts;
pub mod action_net;
pub mod action_privs;
pub mod action_remote;
pub mod action_runtime;
pub mod build;
pub mod build_flags;
mod build_isa;
pub mod build_json;
pub mod cache;
pub mod completion;
pub mod deffile;
pub mod ecl;
pub mod image_uri;
pub mod inspect;
pub mod inspect_isa;
pub mod inspect_select;
mod inspect_slurm;
pub mod instance;
pub mod instance_list;
pub mod instance_state;
pub mod instance_stats;
pub mod instance_stop;
pub mod isa_check;
pub mod key;
pub mod keyserver;
pub mod library;
pub mod man;
mod man_sections;
pub mod oras;
pub mod overlay;
pub mod pull;
pub mod pull_build_env;
pub mod push;
pub mod registry;
pub mod remote;
pub mod sif;
pub mod sign;
pub mod verify;

use crate::args::Command;
use crate::settings::Settings;

/// Dispatch a parsed command.
pub fn run(command: Command, settings: &Settings) -> anyhow::Result<u8> {
    match command {
        // Answered by `main_entry`, as it depends on the name sifr was started under.
        Command::Version => Ok(crate::exit::OK),
        Command::Completion(args) => completion::run(&args),
        Command::Man(args) => man::run(&args),
        Command::Deffile(c) => deffile::run(c, settings),
        Command::Sif(c) => sif::run(c, settings),
        Command::Overlay(c) => overlay::run(c, settings),
        Command::Build(a) => build::run(a, settings),
        Command::Pull(a) => pull::run(a, settings),
        Command::Push(a) => push::run(a, settings),
        Command::Registry(c) => registry::run(c, settings),
        Command::Remote(c) => remote::run(c, settings),
        Command::Cache(c) => cache::run(c, settings),
        Command::Inspect(a) => inspect::run(a, settings),
        Command::RunHelp(a) => inspect::run_help(a, settings),
        Command::Exec(a) => action::exec(a, settings),
        Command::Run(a) => action::run(a, settings),
        Command::Shell(a) => action::shell(a, settings),
        Command::Test(a) => action::test(a, settings),
        Command::Instance(c) => instance::run(c, settings),
        Command::Key(c) => key::run(c, settings),
        Command::Keyserver(a) => keyserver::run(a, settings),
        Command::Sign(a) => sign::run(a, settings),
        Command::Verify(a) => verify::run(a, settings),
    }
}
