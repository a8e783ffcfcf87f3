//! `sifr build TARGET SOURCE`: pack a sandbox directory into a SIF.

use clap::Args;

use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct BuildArgs {}

pub fn run(_args: BuildArgs, _settings: &Settings) -> anyhow::Result<u8> {
    anyhow::bail!("not wired yet")
}
