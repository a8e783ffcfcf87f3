//! `sifr remote login|logout` for registries: Apptainer 1.5.3 still takes
//! `apptainer remote login docker://HOST` (and `oras://HOST`), warns that the form is
//! deprecated, and runs `registry login`; old job scripts and site wrappers use it. sifr does
//! the same, into the same credential store. Apptainer's remote *endpoints* (Sylabs Cloud and
//! Singularity Enterprise, with tokens) have no counterpart in sifr: a remote name is refused
//! with a clear error.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::registry::{AuthFileArg, LoginArgs, LogoutArgs, RegistryCommand};
use crate::report::Hinted;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Log in to an OCI registry (`docker://HOST`, `oras://HOST`): the same as `registry login`.
    Login(RemoteLoginArgs),
    /// Log out of an OCI registry: the same as `registry logout`.
    Logout(RemoteLogoutArgs),
}

#[derive(Debug, Args)]
pub struct RemoteLoginArgs {
    /// `docker://HOST[:PORT]` or `oras://HOST[:PORT]`.
    #[arg(value_name = "docker://HOST")]
    pub target: Option<String>,
    /// The user to log in as (asked for when not given).
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// The password or access token.
    #[arg(short = 'p', long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password or access token from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Allow plain HTTP to the registry.
    #[arg(short = 'i', long)]
    pub insecure: bool,
    /// A token file, for remote endpoints only (which sifr does not have).
    #[arg(long, value_name = "FILE")]
    pub tokenfile: Option<PathBuf>,
    #[command(flatten)]
    pub file: AuthFileArg,
}

#[derive(Debug, Args)]
pub struct RemoteLogoutArgs {
    /// `docker://HOST[:PORT]` or `oras://HOST[:PORT]`.
    #[arg(value_name = "docker://HOST")]
    pub target: Option<String>,
    #[command(flatten)]
    pub file: AuthFileArg,
}

/// The registry URI, or the error for what Apptainer would take as a remote endpoint's name.
fn registry_uri(target: Option<&str>, verb: &str) -> anyhow::Result<String> {
    match target {
        Some(t) if t.starts_with("docker://") || t.starts_with("oras://") => Ok(t.to_string()),
        other => Err(Hinted::new(
            format!(
                "sifr has no remote endpoints{}: `remote {verb}` works for OCI registries only",
                other.map(|n| format!(" (`{n}`)")).unwrap_or_default()
            ),
            format!("name the registry: sifr remote {verb} docker://HOST[:PORT]"),
        )
        .into()),
    }
}

pub fn run(c: RemoteCommand, settings: &Settings) -> anyhow::Result<u8> {
    match c {
        RemoteCommand::Login(a) => {
            let registry = registry_uri(a.target.as_deref(), "login")?;
            if a.tokenfile.is_some() {
                // Apptainer's words for the same case.
                anyhow::bail!(
                    "--tokenfile is only supported for login to a remote endpoint, not OCI (docker/oras) or keyservers"
                );
            }
            tracing::warn!(
                "'remote login' is deprecated for registries or keyservers and will be removed in a future release; running 'registry login'"
            );
            let username = match a.username.filter(|u| !u.is_empty()) {
                Some(u) => u,
                None => crate::prompt::ask("Username", crate::prompt::Echo::Shown)?,
            };
            super::registry::run(
                RegistryCommand::Login(LoginArgs {
                    registry,
                    username,
                    password: a.password,
                    password_stdin: a.password_stdin,
                    nohttps: a.insecure,
                    file: a.file,
                }),
                settings,
            )
        }
        RemoteCommand::Logout(a) => {
            let registry = registry_uri(a.target.as_deref(), "logout")?;
            tracing::warn!(
                "'remote logout' is deprecated for registries or keyservers and will be removed in a future release; running 'registry logout'"
            );
            super::registry::run(
                RegistryCommand::Logout(LogoutArgs {
                    registry,
                    file: a.file,
                }),
                settings,
            )
        }
    }
}
