//! The execution control list before a launch: when the administrator's `ecl.toml` (Apptainer's
//! file and format, in sifr's configuration directory beside the config file) is activated, a
//! SIF image runs only if its signatures, checked with the global keyring, satisfy the rules of
//! its execgroup (`sifr_sign::ecl`). Sandboxes and other image types are not checked, as in
//! Apptainer.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context;
use sifr_sign::ecl::EclConfig;

use crate::settings::Settings;

pub const ECL_FILE: &str = "ecl.toml";

/// Refuses the launch of `image` when an ECL says so; no ECL file lets everything run.
///
/// The system's ECL (beside the default config file, with the global keyring there) always
/// applies: a user's `-c/--config` or `SIFR_CONFIG` names other settings, never a way around
/// the administrator's list (Apptainer reads its ECL from the fixed system directory). A
/// configuration directory named that way may hold an ECL of its own, which applies too.
pub fn check(image: &Path, settings: &Settings) -> anyhow::Result<()> {
    let system = Path::new(crate::settings::DEFAULT_CONFIG_FILE)
        .parent()
        .unwrap_or(Path::new("/"));
    check_in(image, system)?;
    if settings.config_dir != system {
        check_in(image, &settings.config_dir)?;
    }
    Ok(())
}

/// [`check`] against the ECL and global keyring of the configuration directory `dir`.
fn check_in(image: &Path, dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(ECL_FILE);
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
    let keys = sifr_sign::keyring::Keyring::global(dir)
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
