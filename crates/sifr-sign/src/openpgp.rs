//! OpenPGP through rPGP: reading keys (binary or armored, one or many), clear-signing and
//! checking clear-signed messages, generating a key pair as `apptainer key newpair` does (RSA,
//! a signing primary and an encryption subkey, SHA-384 preferred), and describing a key.

use std::io::Cursor;

use pgp::{
    composed::{
        ArmorOptions, CleartextSignedMessage, Deserializable, EncryptionCaps, KeyType,
        SecretKeyParamsBuilder, SignedPublicKey, SignedSecretKey, SubkeyParamsBuilder,
    },
    crypto::hash::HashAlgorithm,
    ser::Serialize,
    types::{KeyDetails, Password, PublicParams},
};

use crate::Error;

/// Reads every public key in `bytes`, binary (as Apptainer's keyring files) or armored.
pub fn read_public_keys(bytes: &[u8]) -> Result<Vec<SignedPublicKey>, Error> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Vec::new());
    }
    let parsed: Result<Vec<_>, _> = if is_armored(bytes) {
        match SignedPublicKey::from_armor_many(Cursor::new(bytes)) {
            Ok((it, _)) => it.collect(),
            Err(e) => Err(e),
        }
    } else {
        match SignedPublicKey::from_bytes_many(Cursor::new(bytes)) {
            Ok(it) => it.collect(),
            Err(e) => Err(e),
        }
    };
    parsed.map_err(|e| Error::Pgp(format!("reading public keys: {e}")))
}

/// Reads every secret key in `bytes`, binary or armored.
pub fn read_secret_keys(bytes: &[u8]) -> Result<Vec<SignedSecretKey>, Error> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Vec::new());
    }
    let parsed: Result<Vec<_>, _> = if is_armored(bytes) {
        match SignedSecretKey::from_armor_many(Cursor::new(bytes)) {
            Ok((it, _)) => it.collect(),
            Err(e) => Err(e),
        }
    } else {
        match SignedSecretKey::from_bytes_many(Cursor::new(bytes)) {
            Ok(it) => it.collect(),
            Err(e) => Err(e),
        }
    };
    parsed.map_err(|e| Error::Pgp(format!("reading secret keys: {e}")))
}

fn is_armored(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    bytes[start..].starts_with(b"-----BEGIN PGP")
}

/// True when `bytes` hold an armored key block of secret keys.
pub fn is_armored_secret(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).contains("PRIVATE KEY BLOCK")
}

/// Binary serialization of public keys (the keyring files' format).
pub fn public_bytes(keys: &[SignedPublicKey]) -> Vec<u8> {
    let mut out = Vec::new();
    for k in keys {
        k.to_writer(&mut out).expect("writing to a Vec");
    }
    out
}

/// Binary serialization of secret keys.
pub fn secret_bytes(keys: &[SignedSecretKey]) -> Vec<u8> {
    let mut out = Vec::new();
    for k in keys {
        k.to_writer(&mut out).expect("writing to a Vec");
    }
    out
}

pub fn armor_public(k: &SignedPublicKey) -> Result<String, Error> {
    k.to_armored_string(ArmorOptions::default())
        .map_err(|e| Error::Pgp(e.to_string()))
}

pub fn armor_secret(k: &SignedSecretKey) -> Result<String, Error> {
    k.to_armored_string(ArmorOptions::default())
        .map_err(|e| Error::Pgp(e.to_string()))
}

/// The upper-case hex fingerprint of a key (as `apptainer key list` prints it).
pub fn fingerprint_hex(k: &impl KeyDetails) -> String {
    hex::encode_upper(k.fingerprint().as_bytes())
}

/// The 20-byte fingerprint of a v4 key, as a signature descriptor stores it.
pub fn fingerprint20(k: &impl KeyDetails) -> Option<[u8; 20]> {
    k.fingerprint().as_bytes().try_into().ok()
}

/// What `key list` and `verify` show of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub user_ids: Vec<String>,
    /// Seconds since the epoch.
    pub created: u32,
    pub fingerprint: String,
    pub bits: u32,
}

impl KeyInfo {
    pub fn of(k: &SignedPublicKey) -> KeyInfo {
        KeyInfo {
            user_ids: k
                .details
                .users
                .iter()
                .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
                .collect(),
            created: k.primary_key.created_at().as_secs(),
            fingerprint: fingerprint_hex(&k.primary_key),
            bits: bit_length(k.primary_key.public_params()),
        }
    }

    /// The primary (first) user ID, as Go's `Identity.Name` holds it (`Name (Comment) <Email>`).
    pub fn name(&self) -> Option<String> {
        self.user_ids.first().cloned()
    }
}

fn bit_length(p: &PublicParams) -> u32 {
    use rsa::traits::PublicKeyParts;
    match p {
        PublicParams::RSA(r) => r.key.n().bits() as u32,
        PublicParams::EdDSALegacy(_) | PublicParams::Ed25519(_) | PublicParams::X25519(_) => 256,
        PublicParams::Ed448(_) | PublicParams::X448(_) => 448,
        _ => 0,
    }
}

/// A clear-signed message checked against a keyring.
#[derive(Debug)]
pub struct Verified {
    /// The signed text as the message carries it, without the final line break.
    pub plaintext: Vec<u8>,
    /// The key that made the signature.
    pub signer: SignedPublicKey,
}

/// Why a clear-signed message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClearsignError {
    #[error("clearsigned message not found")]
    NotClearsigned,
    #[error("signing key {key} is not in the keyring (hint: `sifr key import` or `key pull` it)")]
    UnknownSigner { key: String },
    #[error("signature by key {key} does not verify: {reason}")]
    BadSignature { key: String, reason: String },
    #[error("signature uses hash {0:?}, not one of SHA-224/256/384/512")]
    WeakHash(HashAlgorithm),
}

/// Parses a clear-signed message (`None` if `data` is not one).
pub fn parse_clearsigned(data: &[u8]) -> Option<CleartextSignedMessage> {
    let text = std::str::from_utf8(data).ok()?;
    let start = text.find("-----BEGIN PGP SIGNED MESSAGE-----")?;
    CleartextSignedMessage::from_string(&text[start..])
        .ok()
        .map(|(m, _)| m)
}

/// The text a clear-signed message carries, dash-unescaped, without the final line break
/// (what Go's `clearsign.Decode` returns as `Plaintext`).
pub fn clearsigned_plaintext(m: &CleartextSignedMessage) -> Vec<u8> {
    let mut out = String::new();
    for (i, line) in m.text().split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push_str(line.strip_prefix("- ").unwrap_or(line));
    }
    out.into_bytes()
}

/// Checks the clear-signed `data` against `keys` (primary keys and their subkeys).
pub fn verify_clearsigned(
    data: &[u8],
    keys: &[SignedPublicKey],
) -> Result<Verified, ClearsignError> {
    let m = parse_clearsigned(data).ok_or(ClearsignError::NotClearsigned)?;
    let text = m.signed_text();
    let mut last = ClearsignError::UnknownSigner {
        key: "unknown".into(),
    };
    for sig in m.signatures() {
        if let Some(h) = sig.hash_alg()
            && !matches!(
                h,
                HashAlgorithm::Sha224
                    | HashAlgorithm::Sha256
                    | HashAlgorithm::Sha384
                    | HashAlgorithm::Sha512
            )
        {
            last = ClearsignError::WeakHash(h);
            continue;
        }
        let fps: Vec<Vec<u8>> = sig
            .issuer_fingerprint()
            .iter()
            .map(|f| f.as_bytes().to_vec())
            .collect();
        let ids: Vec<Vec<u8>> = sig
            .issuer_key_id()
            .iter()
            .map(|k| k.as_ref().to_vec())
            .collect();
        let named = fps
            .first()
            .map(hex::encode_upper)
            .or_else(|| ids.first().map(hex::encode_upper))
            .unwrap_or_else(|| "unknown".into());
        let matches =
            |fp: &[u8], id: &[u8]| fps.iter().any(|f| f == fp) || ids.iter().any(|i| i == id);
        for k in keys {
            let p = &k.primary_key;
            if matches(p.fingerprint().as_bytes(), p.legacy_key_id().as_ref()) {
                match sig.verify(p, text.as_bytes()) {
                    Ok(()) => {
                        return Ok(Verified {
                            plaintext: clearsigned_plaintext(&m),
                            signer: k.clone(),
                        });
                    }
                    Err(e) => {
                        last = ClearsignError::BadSignature {
                            key: fingerprint_hex(p),
                            reason: e.to_string(),
                        }
                    }
                }
            }
            for sk in &k.public_subkeys {
                // A subkey speaks for its primary key only when the primary key bound it for
                // signing (and the subkey signed back): anyone can attach a subkey of their own
                // to a published key, and keyservers merge what they are sent.
                let bound_for_signing = sk.signatures.iter().any(|s| s.key_flags().sign())
                    && sk.verify_bindings(&k.primary_key).is_ok();
                if bound_for_signing
                    && matches(
                        sk.key.fingerprint().as_bytes(),
                        sk.key.legacy_key_id().as_ref(),
                    )
                {
                    match sig.verify(&sk.key, text.as_bytes()) {
                        Ok(()) => {
                            return Ok(Verified {
                                plaintext: clearsigned_plaintext(&m),
                                signer: k.clone(),
                            });
                        }
                        Err(e) => {
                            last = ClearsignError::BadSignature {
                                key: fingerprint_hex(p),
                                reason: e.to_string(),
                            }
                        }
                    }
                }
            }
        }
        if matches!(last, ClearsignError::UnknownSigner { .. }) {
            last = ClearsignError::UnknownSigner { key: named };
        }
    }
    Err(last)
}

/// Clear-signs `text` with the primary key of `key`.
pub fn clearsign(text: &str, key: &SignedSecretKey, password: &str) -> Result<String, Error> {
    let pw = Password::from(password);
    let m = CleartextSignedMessage::sign(rand::thread_rng(), text, &key.primary_key, &pw).map_err(
        |e| {
            Error::Pgp(format!(
                "signing with key {}: {e}",
                fingerprint_hex(&key.primary_key)
            ))
        },
    )?;
    m.to_armored_string(ArmorOptions::default())
        .map_err(|e| Error::Pgp(e.to_string()))
}

/// True when the secret key opens with `password` (an empty one for an unprotected key).
pub fn check_password(key: &SignedSecretKey, password: &str) -> bool {
    key.primary_key
        .unlock(&Password::from(password), |_, _| Ok(()))
        .is_ok_and(|r| r.is_ok())
}

/// Whether the secret key is protected by a password.
pub fn is_encrypted(key: &SignedSecretKey) -> bool {
    !check_password(key, "")
}

/// What `key newpair` asks for.
#[derive(Debug, Clone)]
pub struct NewPair {
    pub name: String,
    pub email: String,
    pub comment: String,
    pub password: String,
    pub bits: u32,
}

impl NewPair {
    /// The user ID as Go's `packet.NewUserId` writes it.
    pub fn user_id(&self) -> String {
        let mut s = self.name.clone();
        if !self.comment.is_empty() {
            s.push_str(&format!(" ({})", self.comment));
        }
        if !self.email.is_empty() {
            s.push_str(&format!(" <{}>", self.email));
        }
        s
    }
}

/// Generates an RSA key pair (primary for signing and certifying, subkey for encryption).
pub fn generate(p: &NewPair) -> Result<SignedSecretKey, Error> {
    use pgp::crypto::sym::SymmetricKeyAlgorithm;
    let pass = (!p.password.is_empty()).then(|| p.password.clone());
    let mut sub = SubkeyParamsBuilder::default();
    sub.key_type(KeyType::Rsa(p.bits))
        .can_encrypt(EncryptionCaps::All)
        .passphrase(pass.clone());
    let sub = sub.build().map_err(|e| Error::Pgp(e.to_string()))?;
    let mut b = SecretKeyParamsBuilder::default();
    b.key_type(KeyType::Rsa(p.bits))
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(p.user_id())
        .preferred_hash_algorithms(
            [
                HashAlgorithm::Sha384,
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha512,
            ]
            .into_iter()
            .collect(),
        )
        .preferred_symmetric_algorithms([SymmetricKeyAlgorithm::AES256].into_iter().collect())
        .passphrase(pass)
        .subkeys(vec![sub]);
    let params = b.build().map_err(|e| Error::Pgp(e.to_string()))?;
    let key = params
        .generate(rand::thread_rng())
        .map_err(|e| Error::Pgp(format!("generating key: {e}")))?;
    fresh_headers(key)
}

/// The key with its secret packets' length headers computed anew. rPGP keeps a packet's header
/// from before its password was set, so writing it would log a (harmless) length mismatch.
fn fresh_headers(mut key: SignedSecretKey) -> Result<SignedSecretKey, Error> {
    use pgp::packet::{SecretKey, SecretSubkey};
    let fail = |e: pgp::errors::Error| Error::Pgp(e.to_string());
    key.primary_key = SecretKey::new(
        key.primary_key.public_key().clone(),
        key.primary_key.secret_params().clone(),
    )
    .map_err(fail)?;
    for sub in &mut key.secret_subkeys {
        sub.key = SecretSubkey::new(
            sub.key.public_key().clone(),
            sub.key.secret_params().clone(),
        )
        .map_err(fail)?;
    }
    Ok(key)
}

/// The key with its password changed from `old` to `new` (primary key and secret subkeys).
pub fn change_password(
    mut key: SignedSecretKey,
    old: &str,
    new: &str,
) -> Result<SignedSecretKey, Error> {
    let set_new = !new.is_empty();
    let (old, new) = (Password::from(old), Password::from(new));
    let fail = |e: pgp::errors::Error| Error::Pgp(format!("changing the password: {e}"));
    let fp = fingerprint_hex(&key.primary_key);
    if !old_matches(&key, &old) {
        return Err(Error::WrongPassword { fingerprint: fp });
    }
    if is_encrypted(&key) {
        key.primary_key.remove_password(&old).map_err(fail)?;
    }
    if set_new {
        key.primary_key
            .set_password(rand::thread_rng(), &new)
            .map_err(fail)?;
    }
    for sub in &mut key.secret_subkeys {
        if sub
            .key
            .unlock(&Password::from(""), |_, _| Ok(()))
            .is_ok_and(|r| r.is_ok())
        {
            // unprotected already
        } else {
            sub.key.remove_password(&old).map_err(fail)?;
        }
        if set_new {
            sub.key
                .set_password(rand::thread_rng(), &new)
                .map_err(fail)?;
        }
    }
    fresh_headers(key)
}

fn old_matches(key: &SignedSecretKey, old: &Password) -> bool {
    key.primary_key
        .unlock(old, |_, _| Ok(()))
        .is_ok_and(|r| r.is_ok())
}
