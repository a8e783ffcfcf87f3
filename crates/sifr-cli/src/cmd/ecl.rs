//! The execution control list before a launch: when the administrator's `ecl.toml` (Apptainer's
//! file and format, in sifr's configuration directory beside the config file) is activated, a
//! SIF image runs only if its signatures, checked with the global keyring, satisfy the rules of
//! its execgroup (`sifr_sign::ecl`). Sandboxes and other image types are not checked, as in
//! Apptainer.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context;
use sifr_sign::ecl::EclConfig;

use super::key::global_keyring;
use crate::settings::Settings;

pub const ECL_FILE: &str = "ecl.toml";

/// Refuses the launch of `image` when the ECL says so; no ECL file lets everything run.
pub fn check(image: &Path, settings: &Settings) -> anyhow::Result<()> {
    let path = settings.config_dir.join(ECL_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("while reading ECL configuration {}", path.display()));
        }
    };
    let ecl = EclConfig::parse(&text, &path).context("while validating ECL configuration")?;
    if !ecl.activated || !is_sif(image) {
        return Ok(());
    }
    let real = std::fs::canonicalize(image).with_context(|| {
        format!(
            "while checking container image with ECL: {}",
            image.display()
        )
    })?;
    let keys = global_keyring(settings)
        .public_keys()
        .context("while obtaining keyring for ECL")?;
    let sif = sifr_sif::Image::open(&real).with_context(|| {
        format!(
            "while checking container image with ECL: {}",
            real.display()
        )
    })?;
    ecl.check(&real, &sif, &keys)
        .context("while checking container image with ECL")?;
    Ok(())
}

/// A regular file with SIF's magic at offset 32.
fn is_sif(image: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(image) else {
        return false;
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; 42];
    f.read_exact(&mut head).is_ok() && head[32..42] == sifr_sif::MAGIC
}
