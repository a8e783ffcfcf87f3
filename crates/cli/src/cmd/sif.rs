//! `sifr sif ...`: raw SIF manipulation, option- and output-compatible with `apptainer sif`.

use clap::Subcommand;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum SifCommand {}

pub fn run(c: SifCommand, _settings: &Settings) -> anyhow::Result<u8> {
    match c {}
}
