//! `sifr push IMAGE.sif oras://REGISTRY/REPO[:TAG]`: a SIF file into an OCI registry as an
//! ORAS artifact, in Apptainer's layout (`sifr_oci::oras::push_sif`), so that `apptainer pull
//! oras://` and `sifr pull oras://` read it.
//!
//! Apptainer's flags are all accepted. Credentials, `--authfile` and `--no-https` work as for
//! `pull` (the same store as `registry login`). `library://` destinations are refused: sifr
//! has no library client. As in Apptainer, `-U` and signatures matter only to a library push;
//! an ORAS push of an unsigned image says nothing about it, and `--description` is ignored
//! with Apptainer's warning.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::action_env::Slot;
use super::pull_build_env::CmdTwin;
use crate::cmd::pull::{RegistryArgs, registry_access};
use crate::report::Hinted;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The SIF image to push.
    #[arg(value_name = "IMAGE.sif")]
    pub image: PathBuf,
    /// Where to push it: `oras://REGISTRY/REPO[:TAG]` (the tag defaults to `latest`).
    #[arg(value_name = "oras://REGISTRY/REPO:TAG")]
    pub dest: String,
    /// Push an unsigned image to a library (which sifr does not support); no effect on oras://.
    #[arg(short = 'U', long)]
    pub allow_unsigned: bool,
    /// A description of the image, for library:// only (ignored for oras://, with a warning).
    #[arg(short = 'D', long, value_name = "TEXT")]
    pub description: Option<String>,
    /// The library to push to (library:// destinations are not supported).
    #[arg(long, value_name = "URL")]
    pub library: Option<String>,
    /// Talk plain HTTP to the registry (local test registries only).
    #[arg(long = "no-https", alias = "nohttps")]
    pub nohttps: bool,
    /// The registry username (also DOCKER_USERNAME).
    #[arg(long, hide = true, value_name = "USER")]
    pub docker_username: Option<String>,
    /// The registry password (also DOCKER_PASSWORD).
    #[arg(long, hide = true, value_name = "PASSWORD")]
    pub docker_password: Option<String>,
    /// The Docker daemon (accepted for Apptainer's command lines; a push does not use it).
    #[arg(long, value_name = "HOST")]
    pub docker_host: Option<String>,
    #[command(flatten)]
    pub auth: crate::cmd::registry::AuthFileArg,
}

macro_rules! twin {
    ($flag:literal, [$($key:literal),+], $bare:literal, $bare_only:literal, $slot:expr) => {
        CmdTwin { flag: $flag, keys: &[$($key),+], bare: $bare, bare_only: $bare_only, slot: $slot }
    };
}

/// `push`'s environment twins (Apptainer's `EnvKeys`; `AUTH_FILE` is the `auth_file` setting).
/// The prefixed `DOCKER_USERNAME`/`DOCKER_PASSWORD` are read by the credential store.
pub const PUSH_TWINS: &[CmdTwin<PushArgs>] = &[
    twin!("allow-unsigned", ["ALLOW_UNSIGNED"], false, false, |a| {
        Slot::Switch(&mut a.allow_unsigned)
    }),
    twin!("library", ["LIBRARY"], false, false, |a| Slot::Text(
        &mut a.library
    )),
    twin!("no-https", ["NOHTTPS", "NO_HTTPS"], false, false, |a| {
        Slot::Switch(&mut a.nohttps)
    }),
    twin!("docker-username", ["DOCKER_USERNAME"], true, true, |a| {
        Slot::Text(&mut a.docker_username)
    }),
    twin!("docker-password", ["DOCKER_PASSWORD"], true, true, |a| {
        Slot::Text(&mut a.docker_password)
    }),
    twin!("docker-host", ["DOCKER_HOST"], true, false, |a| Slot::Text(
        &mut a.docker_host
    )),
];

pub fn run(mut args: PushArgs, settings: &Settings) -> anyhow::Result<u8> {
    crate::cmd::pull_build_env::apply_process(&mut args, PUSH_TWINS)?;
    let loud = !settings.quiet && !settings.silent;
    match args.dest.split_once("://").map(|(t, _)| t) {
        Some("oras") => {}
        Some("library") => {
            return Err(Hinted::new(
                format!("cannot push to `{}`: sifr has no library client", args.dest),
                "push the SIF to an OCI registry with `sifr push IMAGE.sif oras://REGISTRY/REPO:TAG`",
            )
            .into());
        }
        // Apptainer's words, which its e2e test matches.
        Some(other) => {
            return Err(Hinted::new(
                format!("Unsupported transport type: {other}"),
                "push to oras://REGISTRY/REPO:TAG",
            )
            .into());
        }
        None => {
            return Err(Hinted::new(
                format!("bad uri {}", args.dest),
                "name the destination as oras://REGISTRY/REPO:TAG",
            )
            .into());
        }
    }
    if args.description.is_some() && !settings.silent {
        eprintln!("WARNING: Description is not supported for push to oras. Ignoring it.");
    }
    let r = crate::cmd::oras::reference(&args.dest)?;
    // Refused before any request: a file that is not a SIF, or one whose architecture is
    // unknown (Apptainer's push reads it for the platform).
    sifr_oci::oras::check_sif_file(&args.image).map_err(crate::cmd::oras::report)?;
    let sif = sifr_sif::Image::open(&args.image)
        .with_context(|| format!("cannot read `{}`", args.image.display()))?;
    if sif.header().arch() == sifr_sif::Arch::Unknown {
        return Err(Hinted::new(
            format!(
                "`{}`: unknown architecture in SIF file",
                args.image.display()
            ),
            "only images with a system partition (as `sifr build` writes them) can be pushed",
        )
        .into());
    }
    drop(sif);
    let registry = RegistryArgs {
        nohttps: args.nohttps,
        docker_username: args.docker_username.clone(),
        docker_password: args.docker_password.clone(),
        auth: args.auth.clone(),
        ..RegistryArgs::default()
    };
    let (access, _guard) = registry_access(settings, &registry)?;
    let digest = sifr_oci::oras::push_sif(&access.client, &r, &args.image)
        .map_err(crate::cmd::oras::report)?;
    if loud {
        eprintln!("INFO:    Digest: {digest}");
        eprintln!("INFO:    Upload complete");
    }
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `push` row of docs/apptainer-flags.tsv: the flag (and its short form) parses,
    /// and each variable suffix is a twin here or a setting.
    #[test]
    fn every_apptainer_push_flag_and_variable_exists() {
        use clap::CommandFactory as _;
        let tsv = include_str!("../../../../docs/apptainer-flags.tsv");
        let mut cmd = crate::args::Cli::command()
            .find_subcommand("push")
            .expect("a push command")
            .clone();
        cmd.build();
        let mut checked = 0;
        for line in tsv.lines().filter(|l| l.starts_with("push\t")) {
            let cols: Vec<&str> = line.split('\t').collect();
            let (long, short, keys) = (cols[1], cols[2], cols[3]);
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("push has no --{long}"));
            if !short.is_empty() {
                assert_eq!(arg.get_short(), short.chars().next(), "--{long}");
            }
            for key in keys.split(',').filter(|k| !k.is_empty()) {
                let twin = PUSH_TWINS
                    .iter()
                    .any(|t| t.flag == long && t.keys.contains(&key));
                assert!(
                    twin || key == "AUTH_FILE",
                    "push --{long}: no twin for {key}"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 8, "the tsv's push rows");
    }
}
