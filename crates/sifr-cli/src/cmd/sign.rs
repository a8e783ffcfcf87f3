//! `sifr sign IMAGE`, as `apptainer sign`: adds one signature object per object group (or for
//! the group or object given), made with a PGP secret key from the local keyring (`--keyidx`,
//! else the only key, else the one the user picks) or with PEM private keys (`--key`, DSSE).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use sifr_sign::openpgp::KeyInfo;
use sifr_sign::sign::{self, SigningKey};

use super::key::{KeyringArgs, choose, local_keyring, unlock};
use crate::settings::{ProcessEnv, Settings, lookup_env};

#[derive(Debug, Args)]
pub struct SignArgs {
    /// sign objects with the specified group ID
    #[arg(short = 'g', long = "group-id", value_name = "ID")]
    pub group_id: Option<u32>,
    /// sign objects with the specified group ID
    #[arg(long = "groupid", value_name = "ID", hide = true)]
    pub groupid: Option<u32>,
    /// sign object with the specified ID
    #[arg(short = 'i', long = "sif-id", value_name = "ID")]
    pub sif_id: Option<u32>,
    /// sign object with the specified ID
    #[arg(long = "id", value_name = "ID", hide = true)]
    pub id: Option<u32>,
    /// private key to use (index from 'key list --secret')
    #[arg(short = 'k', long = "keyidx", value_name = "N")]
    pub keyidx: Option<usize>,
    /// sign all objects (now the default behavior)
    #[arg(short = 'a', long, hide = true)]
    pub all: bool,
    /// path to the private key file
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub ring: KeyringArgs,
    /// The SIF image to sign.
    pub image: PathBuf,
}

pub fn run(mut a: SignArgs, settings: &Settings) -> anyhow::Result<u8> {
    if a.key.is_none() {
        a.key = lookup_env(&["SIGN_KEY"], &ProcessEnv)
            .filter(|h| !h.text.is_empty())
            .map(|h| PathBuf::from(h.text));
    }
    if a.all {
        tracing::warn!("--all is deprecated, signing all objects is now the default behavior");
    }
    let key = match &a.key {
        Some(pem_path) => {
            tracing::info!(
                "Signing image with key material from '{}'",
                pem_path.display()
            );
            let pem = std::fs::read_to_string(pem_path)
                .with_context(|| format!("Failed to load key material: {}", pem_path.display()))?;
            let k = sifr_sign::dsse::PrivateKey::from_pem(&pem)
                .with_context(|| format!("Failed to load key material: {}", pem_path.display()))?;
            SigningKey::Dsse(vec![k])
        }
        None => {
            tracing::info!("Signing image with PGP key material");
            let ring = local_keyring(settings, &a.ring)?;
            let keys = ring
                .secret_keys()
                .context("Failed to sign container: could not load the private keyring")?;
            let i = match a.keyidx {
                Some(i) if i < keys.len() => i,
                Some(i) => bail!(
                    "Failed to sign container: --keyidx {i}: index out of range (the keyring {} has {} key(s); see `sifr key list --secret`)",
                    ring.secret_path().display(),
                    keys.len()
                ),
                None => {
                    let infos: Vec<KeyInfo> = keys
                        .iter()
                        .map(|k| KeyInfo::of(&k.to_public_key()))
                        .collect();
                    choose(&infos, "private", &ring.secret_path())
                        .context("Failed to sign container")?
                }
            };
            let key = keys.into_iter().nth(i).expect("index checked");
            let password = unlock(&key).context("Failed to sign container")?;
            SigningKey::Pgp {
                key: Box::new(key),
                password,
            }
        }
    };
    let opts = sign::Options {
        groups: a.group_id.or(a.groupid).into_iter().collect(),
        objects: a.sif_id.or(a.id).into_iter().collect(),
        time: None,
    };
    sign::sign_path(&a.image, &key, &opts)
        .with_context(|| format!("Failed to sign container: {}", a.image.display()))?;
    tracing::info!(
        "Signature created and applied to image '{}'",
        a.image.display()
    );
    Ok(crate::exit::OK)
}
