//! `sifr registry login|logout|list`: registry credentials kept where Apptainer keeps them,
//! `docker-config.json` in the config directory (`~/.apptainer`, `configdir`), or the file
//! `--authfile`/`auth_file` names. Login checks the credentials against the registry before
//! storing anything, as Apptainer does; `list` never shows a password.
//!
//! Also here: which auth files a pull searches, so that login, logout and pull agree.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use sifr_oci::client::{AuthFile, Client, ClientOptions, CredentialStore, Credentials};

use crate::report::Hinted;
use crate::settings::Settings;

/// Apptainer's name for the auth file in its config directory.
pub const AUTH_FILE_NAME: &str = "docker-config.json";

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Check a username and password against an OCI registry, then store them for pulls.
    Login(LoginArgs),
    /// Forget the stored credentials of a registry.
    Logout(LogoutArgs),
    /// List the registries with stored credentials, and their users.
    List(ListArgs),
}

/// The `--authfile` flag of every command that reads or writes stored credentials.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthFileArg {
    /// Docker-style auth file to read and write credentials in, instead of
    /// ~/.apptainer/docker-config.json (and, for pulls, ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// `docker://HOST[:PORT]` (or `oras://HOST[:PORT]`): the registry to log in to.
    #[arg(value_name = "docker://HOST")]
    pub registry: String,
    /// The user to log in as.
    #[arg(short = 'u', long)]
    pub username: String,
    /// The password or access token (visible to other users in the process list: prefer
    /// --password-stdin or the prompt).
    #[arg(short = 'p', long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password or access token from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Talk plain HTTP to the registry (local test registries only).
    #[arg(long, alias = "no-https")]
    pub nohttps: bool,
    #[command(flatten)]
    pub file: AuthFileArg,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// `docker://HOST[:PORT]`: the registry whose credentials to forget.
    #[arg(value_name = "docker://HOST")]
    pub registry: String,
    #[command(flatten)]
    pub file: AuthFileArg,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub file: AuthFileArg,
    /// Print the logins as JSON: `[{"registry", "username"}]`, `username` null for a
    /// credential helper (sifr's addition).
    #[arg(long)]
    pub json: bool,
}

/// The per-user config directory: `configdir`, else `~/.apptainer`.
pub(crate) fn config_dir(settings: &Settings) -> anyhow::Result<PathBuf> {
    settings
        .configdir
        .clone()
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".apptainer"))
        })
        .context("no config directory: set APPTAINER_CONFIGDIR or HOME")
}

/// The file `registry login` writes and `logout`/`list` read: `--authfile`, else the
/// `auth_file` setting, else `docker-config.json` in the config directory.
pub fn login_file(settings: &Settings, arg: &AuthFileArg) -> anyhow::Result<PathBuf> {
    match arg.authfile.clone().or_else(|| settings.auth_file.clone()) {
        Some(p) => Ok(p),
        None => Ok(config_dir(settings)?.join(AUTH_FILE_NAME)),
    }
}

/// The auth files a pull searches, in order. A named file (`--authfile`, `auth_file`) is the
/// only one, as in Apptainer. Otherwise the login file, then Docker's `config.json`, each
/// answering for the registries it has an entry for; Apptainer reads Docker's file only when
/// its own does not exist, so this finds everything Apptainer finds and, where Apptainer would
/// go on anonymously, what `docker login` stored.
pub fn pull_files(settings: &Settings, arg: &AuthFileArg) -> anyhow::Result<Vec<PathBuf>> {
    if let Some(p) = arg.authfile.clone().or_else(|| settings.auth_file.clone()) {
        return Ok(vec![p]);
    }
    let mut files = vec![config_dir(settings)?.join(AUTH_FILE_NAME)];
    files.extend(sifr_oci::client::credentials::docker_config(|k| {
        std::env::var(k).ok()
    }));
    Ok(files)
}

fn parse_registry(text: &str) -> anyhow::Result<String> {
    sifr_oci::reference::parse_registry(text).map_err(|e| {
        anyhow::Error::new(e).context(Hinted::new(
            format!("invalid registry `{text}`"),
            "name a registry alone, as docker://HOST or docker://HOST:PORT",
        ))
    })
}

pub fn run(c: RegistryCommand, settings: &Settings) -> anyhow::Result<u8> {
    let loud = !settings.quiet && !settings.silent;
    match c {
        RegistryCommand::Login(a) => {
            let registry = parse_registry(&a.registry)?;
            let path = login_file(settings, &a.file)?;
            // Read the file first: a broken one fails before the password is asked for.
            AuthFile::open(&path)?;
            let password = match a.password {
                Some(p) => p,
                None if a.password_stdin => crate::prompt::read_stdin()?,
                None => crate::prompt::ask("Password / Token", crate::prompt::Echo::Hidden)?,
            };
            if password.is_empty() {
                return Err(Hinted::new(
                    "a password is required",
                    "type it at the prompt, or give it with --password-stdin",
                )
                .into());
            }
            let creds = Credentials {
                username: a.username,
                password,
            };
            let env = |k: &str| std::env::var(k).ok();
            let opts = ClientOptions {
                plain_http: a.nohttps,
                retries: 1,
                ..ClientOptions::default()
            };
            let store = CredentialStore::default().with_override(creds.clone());
            let client =
                Client::new(opts, store, env).context("cannot set up the registry client")?;
            client
                .ping_registry(&registry)
                .with_context(|| format!("cannot log in to `{registry}`"))?;
            AuthFile::edit(&path, |f| {
                f.set(&registry, &creds);
                true
            })?;
            if loud {
                eprintln!("INFO:    Token stored in {}", path.display());
            }
            Ok(crate::exit::OK)
        }
        RegistryCommand::Logout(a) => {
            let registry = parse_registry(&a.registry)?;
            let path = login_file(settings, &a.file)?;
            // Looked at first, so that a logout with nothing to do creates no directory.
            let known = AuthFile::open(&path)?
                .entries()?
                .iter()
                .any(|e| e.registry == registry);
            if !known || !AuthFile::edit(&path, |f| f.remove(&registry))? {
                // Apptainer warns and succeeds: the end state is what was asked for.
                if !settings.silent {
                    eprintln!("WARNING: There is no existing login to registry `{registry}`.");
                }
                return Ok(crate::exit::OK);
            }
            if loud {
                eprintln!("INFO:    Token removed from {}", path.display());
            }
            Ok(crate::exit::OK)
        }
        RegistryCommand::List(a) => {
            let path = login_file(settings, &a.file)?;
            let entries = AuthFile::open(&path)?.entries()?;
            if a.json {
                let v: Vec<serde_json::Value> = entries
                    .iter()
                    .map(|e| serde_json::json!({"registry": e.registry, "username": e.username}))
                    .collect();
                crate::json::print(&v)?;
                return Ok(crate::exit::OK);
            }
            let mut out = std::io::stdout().lock();
            let width = entries
                .iter()
                .map(|e| e.registry.len())
                .max()
                .unwrap_or(0)
                .max("REGISTRY".len());
            writeln!(out, "{:width$}  USERNAME", "REGISTRY")?;
            for e in &entries {
                let user = e.username.as_deref().unwrap_or("(credential helper)");
                writeln!(out, "{:width$}  {user}", e.registry)?;
            }
            Ok(crate::exit::OK)
        }
    }
}
