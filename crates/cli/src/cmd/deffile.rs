//! `sifr deffile check`: validate definition files without building. Owned by the deffile work.

use clap::Subcommand;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum DeffileCommand {}

pub fn run(c: DeffileCommand, _settings: &Settings) -> anyhow::Result<u8> {
    match c {}
}
