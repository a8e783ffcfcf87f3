//! `sifr verify IMAGE`, as `apptainer verify`: checks an image's signatures with the PGP
//! keyrings (the global keyring, then the local one), or with a PEM public key (`--key`) for
//! DSSE signatures, and prints Apptainer's report per signature (signer, the objects verified,
//! the error) or, with `--json`, its JSON document. Any failure ends with an error naming the
//! signature and the object; a changed object is named as `data object integrity compromised:
//! ID`.
//!
//! A signer in neither keyring is looked up on the keyserver (`--url`, else the configured
//! one) unless `--local`. `--certificate` checks the certificate's chain (`sifr_sign::cert`)
//! and verifies DSSE signatures with its key.

use std::path::{Path, PathBuf};

use sifr_sign::x509;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use sifr_sif::{Image, Link};
use sifr_sign::openpgp;
use sifr_sign::verify::{self, Keys, Options, SignatureResult, Signer};

use super::key::{KeyringArgs, global_keyring, local_keyring};
use crate::settings::{EnvSource, ProcessEnv, Settings, lookup_env, parse_bool_text};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// verify objects with the specified group ID
    #[arg(short = 'g', long = "group-id", value_name = "ID")]
    pub group_id: Option<u32>,
    /// verify objects with the specified group ID
    #[arg(long = "groupid", value_name = "ID", hide = true)]
    pub groupid: Option<u32>,
    /// verify object with the specified ID
    #[arg(short = 'i', long = "sif-id", value_name = "ID")]
    pub sif_id: Option<u32>,
    /// verify object with the specified ID
    #[arg(long = "id", value_name = "ID", hide = true)]
    pub id: Option<u32>,
    /// verify all objects
    #[arg(short = 'a', long)]
    pub all: bool,
    /// enable verification of (insecure) legacy signatures
    #[arg(long = "legacy-insecure")]
    pub legacy_insecure: bool,
    /// output json
    #[arg(short = 'j', long)]
    pub json: bool,
    /// only verify with local key(s) in keyring
    #[arg(short = 'l', long)]
    pub local: bool,
    /// specify a URL for a key server
    #[arg(short = 'u', long)]
    pub url: Option<String>,
    /// path to the public key file
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// path to the certificate
    #[arg(long, value_name = "PEM")]
    pub certificate: Option<PathBuf>,
    /// path to pool of intermediate certificates
    #[arg(long = "certificate-intermediates", value_name = "PEM")]
    pub certificate_intermediates: Option<PathBuf>,
    /// path to pool of root certificates
    #[arg(long = "certificate-roots", value_name = "PEM")]
    pub certificate_roots: Option<PathBuf>,
    /// enable online revocation check for certificates
    #[arg(long = "ocsp-verify")]
    pub ocsp_verify: bool,
    #[command(flatten)]
    pub ring: KeyringArgs,
    /// The SIF image to verify.
    pub image: PathBuf,
}

/// Each flag's variable suffixes (`APPTAINER_VERIFY_KEY`, ...; Apptainer's `EnvKeys`), read
/// by [`apply_twins`] and listed in the man page.
pub(crate) const VERIFY_TWINS: &[(&str, &[&str])] = &[
    ("key", &["VERIFY_KEY"]),
    ("certificate", &["VERIFY_CERTIFICATE"]),
    ("certificate-intermediates", &["VERIFY_INTERMEDIATES"]),
    ("certificate-roots", &["VERIFY_ROOTS"]),
    ("url", &["URL"]),
    ("local", &["LOCAL_VERIFY"]),
    ("ocsp-verify", &["VERIFY_OCSP"]),
];

/// The variable suffixes of `flag` in [`VERIFY_TWINS`].
fn twin(flag: &str) -> &'static [&'static str] {
    VERIFY_TWINS
        .iter()
        .find(|(f, _)| *f == flag)
        .map_or(&[], |(_, keys)| *keys)
}

/// Fills unset flags from their variables.
fn apply_twins(a: &mut VerifyArgs, env: &dyn EnvSource) {
    let text = |keys: &[&str]| lookup_env(keys, env).filter(|h| !h.text.is_empty());
    let path = |slot: &mut Option<PathBuf>, keys: &[&str]| {
        if slot.is_none()
            && let Some(h) = text(keys)
        {
            *slot = Some(PathBuf::from(h.text));
        }
    };
    path(&mut a.key, twin("key"));
    path(&mut a.certificate, twin("certificate"));
    path(
        &mut a.certificate_intermediates,
        twin("certificate-intermediates"),
    );
    path(&mut a.certificate_roots, twin("certificate-roots"));
    if a.url.is_none() {
        a.url = text(twin("url")).map(|h| h.text);
    }
    if !a.local {
        a.local = text(twin("local")).is_some_and(|h| parse_bool_text(&h.text) == Some(true));
    }
    if !a.ocsp_verify {
        a.ocsp_verify =
            text(twin("ocsp-verify")).is_some_and(|h| parse_bool_text(&h.text) == Some(true));
    }
}

pub fn run(mut a: VerifyArgs, settings: &Settings) -> anyhow::Result<u8> {
    apply_twins(&mut a, &ProcessEnv);
    let image = Image::open(&a.image)
        .with_context(|| format!("Failed to verify container: {}", a.image.display()))?;
    let mut keys = Keys::default();
    let global = global_keyring(settings);
    let local = local_keyring(settings, &a.ring)?;
    let mut global_fps = Vec::new();
    let mut local_fps = Vec::new();
    if let Some(cert_path) = &a.certificate {
        tracing::info!(
            "Verifying image with key material from certificate '{}'",
            cert_path.display()
        );
        keys.dsse = Some(vec![certificate_key(&a, cert_path)?]);
    } else if let Some(pem_path) = &a.key {
        tracing::info!(
            "Verifying image with key material from '{}'",
            pem_path.display()
        );
        let pem = std::fs::read_to_string(pem_path)
            .with_context(|| format!("Failed to load key material: {}", pem_path.display()))?;
        let k = sifr_sign::dsse::PublicKey::from_pem(&pem)
            .with_context(|| format!("Failed to load key material: {}", pem_path.display()))?;
        keys.dsse = Some(vec![k]);
    } else {
        tracing::info!("Verifying image with PGP key material");
        let g = global.public_keys().unwrap_or_default();
        let l = local
            .public_keys()
            .with_context(|| format!("cannot read {}", local.public_path().display()))?;
        global_fps = g
            .iter()
            .map(|k| openpgp::fingerprint_hex(&k.primary_key))
            .collect();
        local_fps = l
            .iter()
            .map(|k| openpgp::fingerprint_hex(&k.primary_key))
            .collect();
        let mut all: Vec<_> = g.into_iter().chain(l).collect();
        if !a.local {
            all.extend(remote_keys(settings, &a, &image, &global_fps, &local_fps));
        }
        keys.pgp = Some(all);
    }
    let opts = Options {
        groups: a.group_id.or(a.groupid).into_iter().collect(),
        objects: a.sif_id.or(a.id).into_iter().collect(),
        legacy: a.legacy_insecure,
        all: a.all,
    };
    let results = verify::verify(&image, &keys, &opts).map_err(|e| {
        anyhow::anyhow!(
            "Failed to verify container `{}`: integrity: {e}",
            a.image.display()
        )
    })?;
    let place = |fp: &str| {
        if global_fps.iter().any(|g| g == fp) {
            "[GLOBAL]"
        } else if local_fps.iter().any(|l| l == fp) {
            "[LOCAL]"
        } else {
            "[REMOTE]"
        }
    };
    if a.json {
        out(&json_report(&image, &results, &local_fps))?;
    } else {
        let mut s = String::new();
        for r in &results {
            s.push_str(&text_report(&image, r, &place));
        }
        out(&s)?;
    }
    if let Some(bad) = results.iter().find(|r| !r.ok()) {
        let why = bad.failure.as_ref().expect("a failed result has a failure");
        if matches!(why, verify::Failure::NoGroupSignature(_))
            && !a.legacy_insecure
            && verify::has_legacy_signatures(&image)
        {
            bail!(
                "Failed to verify container `{}`: integrity: {why} (hint: the image carries \
                 legacy signatures, made before Apptainer 1.0: --legacy-insecure checks them)",
                a.image.display()
            );
        }
        bail!(
            "Failed to verify container `{}`: integrity: {why}",
            a.image.display()
        );
    }
    tracing::info!("Verified signature(s) from image '{}'", a.image.display());
    Ok(crate::exit::OK)
}

/// The public key of `--certificate`, once its chain checks out.
fn certificate_key(a: &VerifyArgs, path: &Path) -> anyhow::Result<sifr_sign::dsse::PublicKey> {
    use sifr_sign::cert;
    if a.ocsp_verify {
        bail!(
            "--ocsp-verify: online revocation checks are not supported by sifr \
             (hint: leave it out to check the chain without OCSP)"
        );
    }
    let read = |p: &Path| -> anyhow::Result<Vec<x509::Certificate>> {
        let b = std::fs::read(p)
            .with_context(|| format!("Failed to load certificate: {}", p.display()))?;
        Ok(cert::load_pem(&b, &p.display().to_string())?)
    };
    let leaf = read(path).context("Failed to load certificate")?.remove(0);
    let intermediates = match &a.certificate_intermediates {
        Some(p) => read(p).context("Failed to load intermediate certificates")?,
        None => Vec::new(),
    };
    let roots = match &a.certificate_roots {
        Some(p) => read(p).context("Failed to load root certificates")?,
        None => {
            let bundle = std::env::var_os("SSL_CERT_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
            read(&bundle).context("Failed to load the system's root certificates")?
        }
    };
    cert::verify_chain(&leaf, &intermediates, &roots, None).context("Failed to verify container")
}

/// The signers' keys that neither keyring has, from the keyserver (Apptainer's hybrid
/// keyring). A keyserver that cannot be reached is a warning: verification then names the
/// missing key.
fn remote_keys(
    settings: &Settings,
    a: &VerifyArgs,
    image: &Image,
    global: &[String],
    local: &[String],
) -> Vec<sifr_sign::SignedPublicKey> {
    let mut wanted: Vec<String> = image
        .descriptors()
        .filter_map(|d| d.signature().and_then(|m| m.fingerprint))
        .map(hex_upper)
        .filter(|fp| !global.contains(fp) && !local.contains(fp))
        .collect();
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() {
        return Vec::new();
    }
    let url = match super::keyserver::keyserver_url(settings, a.url.as_deref()) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!("no keyserver to look up signing keys: {e:#}");
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for fp in wanted {
        match super::keyserver::fetch(&url, &fp) {
            Ok(keys) => found.extend(keys),
            Err(e) => tracing::warn!("cannot look up key {fp} on `{url}`: {e:#}"),
        }
    }
    found
}

fn hex_upper(b: [u8; 20]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .context("cannot write to stdout")
}

/// Apptainer's `outputVerify` for one signature.
fn text_report(image: &Image, r: &SignatureResult, place: &dyn Fn(&str) -> &'static str) -> String {
    let mut s = String::new();
    if let Some(Signer::Pgp(info)) = &r.signer {
        let prefix = place(&info.fingerprint);
        if let Some(name) = info.name() {
            s.push_str(&format!("{prefix:<18} Signing entity: {name}\n"));
        }
        s.push_str(&format!("{prefix:<18} Fingerprint: {}\n", info.fingerprint));
    }
    if !r.verified.is_empty() {
        s.push_str("Objects verified:\n");
        s.push_str(&format!(
            "{:<4}|{:<8}|{:<8}|{}\n",
            "ID", "GROUP", "LINK", "TYPE"
        ));
        s.push_str("------------------------------------------------\n");
    }
    for id in &r.verified {
        let Ok(d) = image.descriptor(*id) else {
            continue;
        };
        let group = d.group().map_or("NONE".to_string(), |g| g.to_string());
        let link = match d.link() {
            Link::None => "NONE".to_string(),
            Link::Object(l) => l.to_string(),
            Link::Group(g) => format!("{g} (G)"),
        };
        s.push_str(&format!("{id:<4}|{group:<8}|{link:<8}|{}\n", d.data_type()));
    }
    if let Some(f) = &r.failure {
        s.push_str(&format!(
            "\nError encountered during signature verification: {}\n",
            f
        ));
    }
    s
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyEntity {
    partition: String,
    name: String,
    fingerprint: String,
    key_local: bool,
    key_check: bool,
    data_check: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyEntry {
    signer: KeyEntity,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyList {
    signatures: usize,
    signer_keys: Option<Vec<KeyEntry>>,
}

/// Apptainer's `--json` document (`keyList`): one entry per verified object, and one with
/// `DataCheck: false` for an object whose data changed.
fn json_report(image: &Image, results: &[SignatureResult], local_fps: &[String]) -> String {
    let mut list = KeyList {
        signatures: 0,
        signer_keys: None,
    };
    let mut entries = Vec::new();
    for r in results {
        if r.signature.is_none() {
            continue;
        }
        list.signatures += 1;
        let (name, fp, local, check) = match &r.signer {
            Some(Signer::Pgp(info)) => (
                info.name().unwrap_or_else(|| "unknown".into()),
                info.fingerprint.to_lowercase(),
                local_fps.contains(&info.fingerprint),
                true,
            ),
            _ => ("unknown".to_string(), String::new(), false, false),
        };
        let entity = |id: u32, data_check: bool| KeyEntry {
            signer: KeyEntity {
                partition: image
                    .descriptor(id)
                    .map(|d| d.data_type().to_string())
                    .unwrap_or_default(),
                name: name.clone(),
                fingerprint: fp.clone(),
                key_local: local,
                key_check: check,
                data_check,
            },
        };
        for id in &r.verified {
            entries.push(entity(*id, true));
        }
        if let Some(verify::Failure::ObjectIntegrity(id)) = &r.failure {
            entries.push(entity(*id, false));
        }
    }
    if !entries.is_empty() {
        list.signer_keys = Some(entries);
    }
    let mut s = serde_json::to_string_pretty(&list).expect("report serializes");
    s.push('\n');
    s
}
