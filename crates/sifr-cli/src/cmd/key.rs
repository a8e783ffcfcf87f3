//! `sifr key newpair|list|export|import|remove|search|pull|push` (the keyserver ones in
//! `keyserver`), as `apptainer key` behaves, on the same
//! keyring files (`sifr_sign::keyring`): the local keyring in `--keysdir`, else
//! `APPTAINER_KEYSDIR` (`SINGULARITY_SYPGPDIR`), else `<configdir>/keys`; with `--global`, the
//! administrator's `global-pgp-public` in the configuration directory.
//!
//! Questions Apptainer asks (a name, a passphrase, which key) are asked here too, on stderr,
//! answered from stdin: a terminal with echo off for secrets, else one line each, so scripts can
//! pipe answers. `SIFR_KEY_PASSPHRASE`, when set, answers every passphrase question (sifr's
//! addition for CI; Apptainer has no such variable).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sifr_sign::keyring::Keyring;
use sifr_sign::openpgp::{self, KeyInfo};
use sifr_sign::{SignedPublicKey, SignedSecretKey};

use crate::prompt::{Echo, ask};
use crate::settings::{EnvSource, ProcessEnv, Settings, lookup_env};

/// The variable that answers passphrase questions without a prompt (sifr's own).
pub const PASSPHRASE_VAR: &str = "SIFR_KEY_PASSPHRASE";

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a new key pair
    Newpair(NewpairArgs),
    /// List keys in your local or in the global keyring
    List(ListArgs),
    /// Export a public or private key into a specific file
    Export(ExportArgs),
    /// Import a local key into the local or global keyring
    Import(ImportArgs),
    /// Remove a local public key from your local or the global keyring
    Remove(RemoveArgs),
    /// Search for keys on a key server
    Search(SearchArgs),
    /// Download a public key from a key server
    Pull(PullArgs),
    /// Upload a public key to a key server
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct UrlArg {
    /// specify the key server URL
    #[arg(short = 'u', long)]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// output long list when searching for keys
    #[arg(short = 'l', long = "long-list")]
    pub long_list: bool,
    #[command(flatten)]
    pub url: UrlArg,
    /// A fingerprint, key ID, name or email address.
    pub query: String,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub url: UrlArg,
    #[command(flatten)]
    pub global: GlobalArg,
    #[command(flatten)]
    pub ring: KeyringArgs,
    /// The key's fingerprint.
    pub fingerprint: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub url: UrlArg,
    #[command(flatten)]
    pub global: GlobalArg,
    #[command(flatten)]
    pub ring: KeyringArgs,
    /// The key's fingerprint.
    pub fingerprint: String,
}

/// Where the keyring is: shared by every `key` subcommand.
#[derive(Debug, Args, Default, Clone)]
pub struct KeyringArgs {
    /// set local keyring dir path, an alternative way is to set environment variable
    /// 'APPTAINER_KEYSDIR'
    #[arg(long, value_name = "DIR")]
    pub keysdir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GlobalArg {
    /// manage global public keys (import/pull/remove are restricted to root user or
    /// unprivileged installation only)
    #[arg(short = 'g', long)]
    pub global: bool,
}

#[derive(Debug, Args)]
pub struct NewpairArgs {
    /// key owner name
    #[arg(short = 'N', long)]
    pub name: Option<String>,
    /// key owner email
    #[arg(short = 'E', long)]
    pub email: Option<String>,
    /// key comment
    #[arg(short = 'C', long)]
    pub comment: Option<String>,
    /// key password
    #[arg(short = 'P', long)]
    pub password: Option<String>,
    /// specify to push the public key to the remote keystore
    #[arg(short = 'U', long)]
    pub push: bool,
    /// specify key bit length
    #[arg(short = 'b', long = "bit-length", default_value_t = 4096)]
    pub bit_length: u32,
    #[command(flatten)]
    pub ring: KeyringArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// list private keys instead of the default which displays public ones
    #[arg(short = 's', long)]
    pub secret: bool,
    #[command(flatten)]
    pub global: GlobalArg,
    #[command(flatten)]
    pub ring: KeyringArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// export a secret key
    #[arg(short = 's', long)]
    pub secret: bool,
    /// ascii armored format
    #[arg(short = 'a', long)]
    pub armor: bool,
    #[command(flatten)]
    pub global: GlobalArg,
    #[command(flatten)]
    pub ring: KeyringArgs,
    /// The file to write.
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// set a new password to the private key
    #[arg(long = "new-password")]
    pub new_password: bool,
    #[command(flatten)]
    pub global: GlobalArg,
    #[command(flatten)]
    pub ring: KeyringArgs,
    /// A key file, binary or armored, holding public or secret keys.
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// remove public keys only
    #[arg(short = 'p', long)]
    pub public: bool,
    /// remove secret keys only
    #[arg(short = 's', long)]
    pub secret: bool,
    /// remove both public and private keys
    #[arg(short = 'b', long)]
    pub both: bool,
    #[command(flatten)]
    pub global: GlobalArg,
    #[command(flatten)]
    pub ring: KeyringArgs,
    /// The key's fingerprint.
    pub fingerprint: String,
}

/// The local keyring: `--keysdir`, the variables, or `<configdir>/keys`.
pub fn local_keyring(settings: &Settings, args: &KeyringArgs) -> anyhow::Result<Keyring> {
    local_keyring_in(settings, args, &ProcessEnv)
}

fn local_keyring_in(
    settings: &Settings,
    args: &KeyringArgs,
    env: &dyn EnvSource,
) -> anyhow::Result<Keyring> {
    if let Some(d) = &args.keysdir {
        return Ok(Keyring::local(d));
    }
    if let Some(hit) = lookup_env(&["KEYSDIR"], env).filter(|h| !h.text.is_empty()) {
        return Ok(Keyring::local(hit.text));
    }
    if let Some(d) = env.var("SINGULARITY_SYPGPDIR").filter(|d| !d.is_empty()) {
        return Ok(Keyring::local(d));
    }
    let base = super::registry::config_dir(settings)
        .context("no keyring directory: set --keysdir or APPTAINER_KEYSDIR")?;
    Ok(Keyring::local(base.join("keys")))
}

/// The administrator's keyring in the configuration directory.
pub fn global_keyring(settings: &Settings) -> Keyring {
    Keyring::global(&settings.config_dir)
}

fn keyring(settings: &Settings, global: bool, ring: &KeyringArgs) -> anyhow::Result<Keyring> {
    if global {
        Ok(global_keyring(settings))
    } else {
        local_keyring(settings, ring)
    }
}

/// Apptainer's `checkGlobal`: changing the global keyring needs root.
fn check_global(global: bool, what: &str) -> anyhow::Result<()> {
    if global && sifr_sys::process::ids().0 != 0 {
        bail!("\"sifr key {what}\" command with --global requires root privileges");
    }
    Ok(())
}

pub fn run(c: KeyCommand, settings: &Settings) -> anyhow::Result<u8> {
    match c {
        KeyCommand::Newpair(a) => newpair(a, settings),
        KeyCommand::List(a) => list(a, settings),
        KeyCommand::Export(a) => export(a, settings),
        KeyCommand::Import(a) => import(a, settings),
        KeyCommand::Remove(a) => remove(a, settings),
        KeyCommand::Search(a) => {
            super::keyserver::search(settings, a.url.url.as_deref(), &a.query, a.long_list)
        }
        KeyCommand::Pull(a) => {
            check_global(a.global.global, "pull")?;
            let ring = keyring(settings, a.global.global, &a.ring)?;
            super::keyserver::pull(settings, a.url.url.as_deref(), &ring, &a.fingerprint)
        }
        KeyCommand::Push(a) => {
            let ring = keyring(settings, a.global.global, &a.ring)?;
            super::keyserver::push(settings, a.url.url.as_deref(), &ring, &a.fingerprint)
        }
    }
}

/// A passphrase: `SIFR_KEY_PASSPHRASE`, else asked.
pub fn passphrase(label: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(PASSPHRASE_VAR) {
        return Ok(p);
    }
    ask(label, Echo::Hidden)
}

fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .context("cannot write to stdout")
}

fn newpair(a: NewpairArgs, settings: &Settings) -> anyhow::Result<u8> {
    let ring = local_keyring(settings, &a.ring)?;
    let name = match a.name {
        Some(n) => n,
        None => ask("Enter your name (e.g., John Doe) ", Echo::Shown)?,
    };
    let email = match a.email {
        Some(e) => e,
        None => ask(
            "Enter your email address (e.g., john.doe@example.com) ",
            Echo::Shown,
        )?,
    };
    let comment = match a.comment {
        Some(c) => c,
        None => ask(
            "Enter optional comment (e.g., development keys) ",
            Echo::Shown,
        )?,
    };
    let password = match a.password {
        Some(p) => p,
        None => {
            let p = passphrase("Enter a passphrase ")?;
            if std::env::var(PASSPHRASE_VAR).is_err() {
                let again = ask("Retype your passphrase ", Echo::Hidden)?;
                if again != p {
                    bail!("passphrases do not match");
                }
            }
            if p.is_empty() {
                let yn = ask(
                    "WARNING: if there is no password set, your key is not secure. Do you want to continue? [y/n]",
                    Echo::Shown,
                )?;
                if !yn.trim().eq_ignore_ascii_case("y") {
                    bail!("could not collect user input: empty passphrase");
                }
            }
            p
        }
    };
    if a.bit_length < 2048 {
        bail!(
            "--bit-length {}: keys shorter than 2048 bits are refused (hint: 4096, the default)",
            a.bit_length
        );
    }
    if a.push {
        bail!(
            "--push: sifr has no keyserver client yet (hint: `sifr key export --armor` and upload the file)"
        );
    }
    out("Generating Entity and OpenPGP Key Pair... ")?;
    let key = openpgp::generate(&openpgp::NewPair {
        name,
        email,
        comment,
        password,
        bits: a.bit_length,
    })
    .context("creating newpair failed")?;
    let public = key.to_public_key();
    ring.add_secret(key).context("creating newpair failed")?;
    let fp = openpgp::fingerprint_hex(&public.primary_key);
    ring.add_public(public).context("creating newpair failed")?;
    out("done\n")?;
    if a.push {
        // As Apptainer: a failed push is reported, the new pair stays.
        if let Err(e) = super::keyserver::push(settings, None, &ring, &fp) {
            out(&format!(
                "Failed to push newly created key to keystore: {e:#}\n"
            ))?;
        } else {
            out("Key successfully pushed to keystore\n")?;
        }
    }
    Ok(crate::exit::OK)
}

/// Apptainer's key listing entry (`printEntity`), its fields aligned as its tabwriter does.
pub fn entity_text(index: usize, info: &KeyInfo) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    for u in &info.user_ids {
        rows.push(("User:".into(), user_id_text(u)));
    }
    rows.push(("Creation time:".into(), go_time(info.created)));
    rows.push(("Fingerprint:".into(), info.fingerprint.clone()));
    rows.push(("Length (in bits):".into(), info.bits.to_string()));
    let first = format!("{index})");
    let lead = first.len() + 2;
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    let mut s = String::new();
    for (i, (k, v)) in rows.iter().enumerate() {
        let head = if i == 0 { first.clone() } else { String::new() };
        s.push_str(&format!("{head:<lead$}{k:<width$}{v}\n"));
    }
    s.push('\n');
    s
}

/// `Name (Comment) <Email>` as Apptainer prints it, empty parts included.
fn user_id_text(uid: &str) -> String {
    let (rest, email) = match (uid.rfind('<'), uid.rfind('>')) {
        (Some(a), Some(b)) if a < b => (uid[..a].trim(), &uid[a + 1..b]),
        _ => (uid.trim(), ""),
    };
    let (name, comment) = match (rest.find('('), rest.rfind(')')) {
        (Some(a), Some(b)) if a < b => (rest[..a].trim(), &rest[a + 1..b]),
        _ => (rest, ""),
    };
    format!("{name} ({comment}) <{email}>")
}

/// A time as Go's `time.Time.String` prints it in UTC.
fn go_time(secs: u32) -> String {
    let days = i64::from(secs) / 86_400;
    let rem = i64::from(secs) % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn list(a: ListArgs, settings: &Settings) -> anyhow::Result<u8> {
    let ring = keyring(settings, a.global.global, &a.ring)?;
    let mut s = String::new();
    if a.secret {
        let keys = ring.secret_keys().context("could not list private keys")?;
        s.push_str(&format!(
            "Private key listing ({}):\n\n",
            ring.secret_path().display()
        ));
        for (i, k) in keys.iter().enumerate() {
            s.push_str(&entity_text(i, &KeyInfo::of(&k.to_public_key())));
        }
    } else {
        let keys = ring.public_keys().context("could not list public keys")?;
        s.push_str(&format!(
            "Public key listing ({}):\n\n",
            ring.public_path().display()
        ));
        for (i, k) in keys.iter().enumerate() {
            s.push_str(&entity_text(i, &KeyInfo::of(k)));
        }
    }
    out(&s)?;
    Ok(crate::exit::OK)
}

/// Picks one of `infos`: the only one, or the one the user names by index.
pub fn choose(infos: &[KeyInfo], what: &str, path: &Path) -> anyhow::Result<usize> {
    match infos.len() {
        0 => bail!(sifr_sign::Error::EmptyKeyring {
            path: path.to_path_buf()
        }),
        1 => Ok(0),
        n => {
            let mut s = String::new();
            for (i, info) in infos.iter().enumerate() {
                s.push_str(&entity_text(i, info));
            }
            out(&s)?;
            let answer = ask(&format!("Enter # of {what} key to use "), Echo::Shown)?;
            match answer.trim().parse::<usize>() {
                Ok(i) if i < n => Ok(i),
                _ => bail!(
                    "invalid key index `{}`: give a number from 0 to {}",
                    answer.trim(),
                    n - 1
                ),
            }
        }
    }
}

/// Asks for the key's passphrase when it has one and checks it; returns it.
pub fn unlock(key: &SignedSecretKey) -> anyhow::Result<String> {
    if !openpgp::is_encrypted(key) {
        return Ok(String::new());
    }
    let p = passphrase("Enter key passphrase ")?;
    if !openpgp::check_password(key, &p) {
        bail!(sifr_sign::Error::WrongPassword {
            fingerprint: openpgp::fingerprint_hex(&key.primary_key)
        });
    }
    Ok(p)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes)
        .with_context(|| format!("unable to create file: {}", path.display()))
}

fn export(a: ExportArgs, settings: &Settings) -> anyhow::Result<u8> {
    let ring = keyring(settings, a.global.global, &a.ring)?;
    if a.secret {
        let keys = ring
            .secret_keys()
            .context("key export command failed: unable to load private keyring")?;
        let infos: Vec<KeyInfo> = keys
            .iter()
            .map(|k| KeyInfo::of(&k.to_public_key()))
            .collect();
        let i = choose(&infos, "private", &ring.secret_path())?;
        let key = &keys[i];
        unlock(key)?;
        let bytes = if a.armor {
            openpgp::armor_secret(key)?.into_bytes()
        } else {
            openpgp::secret_bytes(std::slice::from_ref(key))
        };
        write_file(&a.output, &bytes)?;
        out(&format!(
            "Private key with fingerprint {} correctly exported to file: {}\n",
            infos[i].fingerprint,
            a.output.display()
        ))?;
    } else {
        let keys = ring
            .public_keys()
            .context("key export command failed: unable to open local keyring")?;
        let infos: Vec<KeyInfo> = keys.iter().map(KeyInfo::of).collect();
        let i = choose(&infos, "public", &ring.public_path())?;
        let bytes = export_public(&keys[i], a.armor)?;
        write_file(&a.output, &bytes)?;
        out(&format!(
            "Public key with fingerprint {} correctly exported to file: {}\n",
            infos[i].fingerprint,
            a.output.display()
        ))?;
    }
    Ok(crate::exit::OK)
}

fn export_public(k: &SignedPublicKey, armor: bool) -> anyhow::Result<Vec<u8>> {
    Ok(if armor {
        openpgp::armor_public(k)?.into_bytes()
    } else {
        openpgp::public_bytes(std::slice::from_ref(k))
    })
}

fn import(a: ImportArgs, settings: &Settings) -> anyhow::Result<u8> {
    check_global(a.global.global, "import")?;
    let ring = keyring(settings, a.global.global, &a.ring)?;
    let bytes = std::fs::read(&a.input)
        .with_context(|| format!("unable to get entity from: {}", a.input.display()))?;
    let secret = if a.global.global {
        Vec::new()
    } else if openpgp::is_armored_secret(&bytes) {
        openpgp::read_secret_keys(&bytes)?
    } else {
        // A binary file may hold secret keys; a public-only one does not parse as such.
        openpgp::read_secret_keys(&bytes).unwrap_or_default()
    };
    let public: Vec<SignedPublicKey> = if secret.is_empty() {
        openpgp::read_public_keys(&bytes)
            .with_context(|| format!("unable to get entity from: {}", a.input.display()))?
    } else {
        secret.iter().map(|k| k.to_public_key()).collect()
    };
    if public.is_empty() {
        bail!(
            "unable to get entity from: {}: no key found",
            a.input.display()
        );
    }
    for mut key in secret {
        let fp = openpgp::fingerprint_hex(&key.primary_key);
        let mut password = unlock(&key)?;
        if a.new_password {
            let p = passphrase("Enter a new password for this key ")?;
            if std::env::var(PASSPHRASE_VAR).is_err() {
                let again = ask("Retype your passphrase ", Echo::Hidden)?;
                if again != p {
                    bail!("passphrases do not match");
                }
            }
            key = openpgp::change_password(key, &password, &p)?;
            password = p;
        }
        let _ = password;
        ring.add_secret(key).context("key import command failed")?;
        out(&format!(
            "Key with fingerprint {fp} successfully added to the private keyring\n"
        ))?;
    }
    for key in public {
        let fp = openpgp::fingerprint_hex(&key.primary_key);
        ring.add_public(key).context("key import command failed")?;
        out(&format!(
            "Key with fingerprint {fp} successfully added to the public keyring\n"
        ))?;
    }
    Ok(crate::exit::OK)
}

fn remove(a: RemoveArgs, settings: &Settings) -> anyhow::Result<u8> {
    check_global(a.global.global, "remove")?;
    let ring = keyring(settings, a.global.global, &a.ring)?;
    let fp = a.fingerprint.trim_start_matches("0x");
    if (a.secret && a.public) || a.both {
        let p = ring.remove_public(fp);
        let s = ring.remove_secret(fp);
        if let (Err(p), Err(s)) = (p, s) {
            bail!("Unable to remove neither public key: {p}, nor private key: {s}");
        }
    } else if a.secret {
        ring.remove_secret(fp)
            .context("Unable to remove private key")?;
    } else {
        ring.remove_public(fp)
            .context("Unable to remove public key")?;
    }
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_and_user_ids_print_as_apptainer_does() {
        assert_eq!(go_time(1_588_023_536), "2020-04-27 21:38:56 +0000 UTC");
        assert_eq!(go_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(user_id_text("A B (c) <a@b>"), "A B (c) <a@b>");
        assert_eq!(user_id_text("A B <a@b>"), "A B () <a@b>");
        assert_eq!(user_id_text("A B"), "A B () <>");
    }

    #[test]
    fn the_keys_directory_is_the_flag_then_the_variables_then_configdir() {
        let s = Settings {
            configdir: Some("/c".into()),
            ..Settings::default()
        };
        let env: Vec<(String, String)> = vec![("SINGULARITY_SYPGPDIR".into(), "/legacy".into())];
        let none: Vec<(String, String)> = Vec::new();
        let flag = KeyringArgs {
            keysdir: Some("/flag".into()),
        };
        let dir = |a: &KeyringArgs, e: &Vec<(String, String)>| {
            local_keyring_in(&s, a, &e.as_slice()).unwrap().dir
        };
        assert_eq!(dir(&flag, &env), PathBuf::from("/flag"));
        assert_eq!(dir(&KeyringArgs::default(), &env), PathBuf::from("/legacy"));
        let env2: Vec<(String, String)> = vec![
            ("SINGULARITY_SYPGPDIR".into(), "/legacy".into()),
            ("APPTAINER_KEYSDIR".into(), "/app".into()),
        ];
        assert_eq!(dir(&KeyringArgs::default(), &env2), PathBuf::from("/app"));
        assert_eq!(
            dir(&KeyringArgs::default(), &none),
            PathBuf::from("/c/keys")
        );
    }
}
