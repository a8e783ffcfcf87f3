//! Keyservers: `sifr keyserver add|remove|list` keep a list of HKP keyservers, and
//! `sifr key search|pull|push` and `verify` (unless `--local`) use it, or `--url`.
//!
//! Apptainer keeps keyservers inside its remote endpoints (`remote.yaml`), which sifr does not
//! have; sifr keeps them in a TOML file, `<configdir>/keyservers.toml` (or `keyserver -c FILE`),
//! as `[[keyserver]]` tables (`uri`, `order`, `insecure`). With none configured, the default is
//! Apptainer's default remote's keyserver, `https://keys.openpgp.org`. docs/signing.md.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use sifr_oci::hkp::{self, HkpClient};
use sifr_sign::SignedPublicKey;
use sifr_sign::keyring::Keyring;
use sifr_sign::openpgp;

use crate::settings::{ProcessEnv, Settings, lookup_env};

/// Apptainer's default keyserver.
pub const DEFAULT_KEYSERVER: &str = "https://keys.openpgp.org";

#[derive(Debug, Args)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct KeyserverArgs {
    /// path to the file holding keyserver configurations
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: KeyserverCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeyserverCommand {
    /// Add a keyserver
    Add(AddArgs),
    /// Remove a keyserver
    Remove(RemoveArgs),
    /// List all keyservers that are configured
    List,
    /// Login to a keyserver (not needed: HKP keyservers take anonymous requests)
    Login(LoginArgs),
    /// Logout from a keyserver
    Logout(LogoutArgs),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// username to authenticate with (required for Docker/OCI registry login)
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// password / token to authenticate with
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// take password from standard input
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// The keyserver.
    pub uri: String,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The keyserver.
    pub uri: String,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// define the keyserver order
    #[arg(short = 'o', long)]
    pub order: Option<u32>,
    /// allow insecure connection to keyserver
    #[arg(short = 'i', long)]
    pub insecure: bool,
    /// `[NAME] URI`: the remote endpoint's name (kept, for Apptainer's syntax) and the URI.
    #[arg(num_args = 1..=2, required = true, value_name = "[NAME] URI")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// `[NAME] URI`
    #[arg(num_args = 1..=2, required = true, value_name = "[NAME] URI")]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Keyserver {
    pub uri: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub order: u32,
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    keyserver: Vec<Keyserver>,
}

fn config_path(settings: &Settings, given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    Ok(super::registry::config_dir(settings)?.join("keyservers.toml"))
}

fn load(path: &Path) -> anyhow::Result<Vec<Keyserver>> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let c: ConfigFile =
                toml::from_str(&t).with_context(|| format!("cannot parse `{}`", path.display()))?;
            let mut k = c.keyserver;
            k.sort_by_key(|k| k.order);
            Ok(k)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    }
}

fn store(path: &Path, list: &[Keyserver]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let text = toml::to_string(&ConfigFile {
        keyserver: list.to_vec(),
    })
    .context("cannot encode the keyserver list")?;
    std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))
}

/// The keyserver to use: `--url` (or its variables), else the first configured, else the
/// default.
pub fn keyserver_url(settings: &Settings, url: Option<&str>) -> anyhow::Result<String> {
    if let Some(u) = url.filter(|u| !u.is_empty()) {
        return Ok(u.to_string());
    }
    if let Some(h) = lookup_env(&["URL"], &ProcessEnv).filter(|h| !h.text.is_empty()) {
        return Ok(h.text);
    }
    let list = load(&config_path(settings, None)?)?;
    Ok(list
        .first()
        .map(|k| k.uri.clone())
        .unwrap_or_else(|| DEFAULT_KEYSERVER.to_string()))
}

pub fn client(url: &str) -> anyhow::Result<HkpClient> {
    HkpClient::new(url, &[], concat!("sifr/", env!("CARGO_PKG_VERSION")), |n| {
        std::env::var(n).ok()
    })
    .with_context(|| format!("cannot set up the keyserver client for `{url}`"))
}

pub fn run(a: KeyserverArgs, settings: &Settings) -> anyhow::Result<u8> {
    let path = config_path(settings, a.config.as_deref())?;
    let mut list = load(&path)?;
    match a.command {
        KeyserverCommand::List => {
            let mut s = String::new();
            if list.is_empty() {
                s.push_str(&format!(" #1  {DEFAULT_KEYSERVER}  (default)\n"));
            }
            for (i, k) in list.iter().enumerate() {
                s.push_str(&format!(
                    " #{}  {}{}\n",
                    i + 1,
                    k.uri,
                    if k.insecure { "  (insecure)" } else { "" }
                ));
            }
            use std::io::Write as _;
            std::io::stdout()
                .write_all(s.as_bytes())
                .context("cannot write to stdout")?;
        }
        KeyserverCommand::Add(add) => {
            if add.order == Some(0) {
                bail!("order must be > 0");
            }
            let (name, uri) = name_uri(&add.args);
            if list.iter().any(|k| k.uri == uri) {
                bail!("keyserver {uri} already exists");
            }
            let order = add
                .order
                .unwrap_or_else(|| list.iter().map(|k| k.order).max().unwrap_or(0) + 1);
            for k in &mut list {
                if k.order >= order {
                    k.order += 1;
                }
            }
            list.push(Keyserver {
                uri,
                name,
                order,
                insecure: add.insecure,
            });
            list.sort_by_key(|k| k.order);
            store(&path, &list)?;
        }
        KeyserverCommand::Login(l) => bail!(
            "keyserver login {}: sifr keeps no keyserver credentials; HKP keyservers answer \
             `key search|pull|push` without a login (a Sylabs-style keystore that needs a token \
             is not supported)",
            l.uri
        ),
        KeyserverCommand::Logout(l) => bail!(
            "keyserver logout {}: sifr keeps no keyserver credentials, so there is nothing to \
             log out of",
            l.uri
        ),
        KeyserverCommand::Remove(rm) => {
            let (_, uri) = name_uri(&rm.args);
            let before = list.len();
            list.retain(|k| k.uri != uri);
            if list.len() == before {
                bail!("no keyserver {uri} in {}", path.display());
            }
            store(&path, &list)?;
        }
    }
    Ok(crate::exit::OK)
}

fn name_uri(args: &[String]) -> (String, String) {
    match args {
        [uri] => (String::new(), uri.clone()),
        [name, uri, ..] => (name.clone(), uri.clone()),
        [] => (String::new(), String::new()),
    }
}

fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .context("cannot write to stdout")
}

/// A fingerprint or key ID in HKP's search form (`0x<hex>`); other text is left as it is.
fn search_term(s: &str) -> String {
    let t = s.trim_start_matches("0x");
    if t.len() >= 8 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        format!("0x{}", t.to_ascii_uppercase())
    } else {
        s.to_string()
    }
}

/// `key search`: Apptainer's listing of the server's index.
pub fn search(
    settings: &Settings,
    url: Option<&str>,
    query: &str,
    long: bool,
) -> anyhow::Result<u8> {
    let url = keyserver_url(settings, url)?;
    let c = client(&url)?;
    let Some(text) = c
        .index(&search_term(query))
        .with_context(|| format!("failed to search `{url}`"))?
    else {
        bail!("no matching keys found for `{query}`");
    };
    let keys = hkp::parse_index(&text);
    let mut rows: Vec<Vec<String>> = Vec::new();
    rows.push(if long {
        [
            "FINGERPRINT",
            "ALGORITHM",
            "BITS",
            "CREATION DATE",
            "EXPIRATION DATE",
            "STATUS",
            "NAME/EMAIL",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    } else {
        ["KEY ID", "BITS", "NAME/EMAIL"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    for k in &keys {
        let names = if k.user_ids.is_empty() {
            vec![String::new()]
        } else {
            k.user_ids.clone()
        };
        for (i, n) in names.iter().enumerate() {
            let first = i == 0;
            let cell = |s: String| if first { s } else { String::new() };
            rows.push(if long {
                let status = if k.flags.contains('r') {
                    "[revoked]"
                } else if k.flags.contains('d') {
                    "[disabled]"
                } else if k.flags.contains('e') {
                    "[expired]"
                } else {
                    "[enabled]"
                };
                vec![
                    cell(k.key_id.clone()),
                    cell(algorithm_name(&k.algorithm).to_string()),
                    cell(k.bits.clone()),
                    cell(k.created.clone()),
                    cell(k.expires.clone()),
                    cell(status.to_string()),
                    n.clone(),
                ]
            } else {
                let id = k.key_id[k.key_id.len().saturating_sub(8)..].to_string();
                vec![cell(id), cell(k.bits.clone()), n.clone()]
            });
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0) + 2)
        .collect();
    let mut s = format!("Showing {} results\n\n", keys.len());
    for r in &rows {
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}", w = widths[c]));
            }
        }
        s.push('\n');
    }
    out(&s)?;
    Ok(crate::exit::OK)
}

fn algorithm_name(n: &str) -> &str {
    match n {
        "1" | "2" | "3" => "RSA",
        "16" => "Elgamal",
        "17" => "DSA",
        "18" => "ECDH",
        "19" => "ECDSA",
        "22" => "EdDSA",
        "25" => "X25519",
        "27" => "Ed25519",
        other => other,
    }
}

/// The public keys the keyserver has for `fingerprint` (none when it has none).
pub fn fetch(url: &str, fingerprint: &str) -> anyhow::Result<Vec<SignedPublicKey>> {
    let c = client(url)?;
    let Some(text) = c
        .get(&search_term(fingerprint))
        .with_context(|| format!("unable to pull key from server `{url}`"))?
    else {
        return Ok(Vec::new());
    };
    // Only the key asked for: a hostile or careless keyserver must not plant other keys in
    // the keyring (a fingerprint's tail, as a short key ID names it, is enough to match).
    let want = fingerprint
        .trim()
        .trim_start_matches("0x")
        .to_ascii_uppercase();
    Ok(openpgp::read_public_keys(text.as_bytes())?
        .into_iter()
        .filter(|k| openpgp::fingerprint_hex(&k.primary_key).ends_with(&want))
        .collect())
}

/// `key pull`: adds the server's keys for `fingerprint` to `ring`.
pub fn pull(
    settings: &Settings,
    url: Option<&str>,
    ring: &Keyring,
    fingerprint: &str,
) -> anyhow::Result<u8> {
    let url = keyserver_url(settings, url)?;
    let keys = fetch(&url, fingerprint)?;
    if keys.is_empty() {
        bail!("unable to pull key from server: no key with fingerprint {fingerprint} on `{url}`");
    }
    let have: Vec<String> = ring
        .public_keys()?
        .iter()
        .map(|k| openpgp::fingerprint_hex(&k.primary_key))
        .collect();
    let mut count = 0;
    for k in keys {
        if !have.contains(&openpgp::fingerprint_hex(&k.primary_key)) {
            ring.add_public(k)?;
            count += 1;
        }
    }
    out(&format!(
        "{count} key(s) added to keyring of trust {}\n",
        ring.public_path().display()
    ))?;
    Ok(crate::exit::OK)
}

/// `key push`: uploads the local public key with `fingerprint`.
pub fn push(
    settings: &Settings,
    url: Option<&str>,
    ring: &Keyring,
    fingerprint: &str,
) -> anyhow::Result<u8> {
    let url = keyserver_url(settings, url)?;
    let want = fingerprint.trim_start_matches("0x").to_ascii_uppercase();
    let keys = ring.public_keys()?;
    let Some(k) = keys
        .iter()
        .find(|k| openpgp::fingerprint_hex(&k.primary_key) == want)
    else {
        bail!(
            "could not find public key with fingerprint {want} in {}",
            ring.public_path().display()
        );
    };
    let answer = client(&url)?
        .add(&openpgp::armor_public(k)?)
        .with_context(|| format!("key server `{url}` did not accept PGP key"))?;
    if !answer.trim().is_empty() {
        tracing::info!("Key server response: {}", answer.trim());
    }
    out(&format!(
        "public key `{want}' pushed to server successfully\n"
    ))?;
    Ok(crate::exit::OK)
}
