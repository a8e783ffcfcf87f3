//! DSSE envelopes (Dead Simple Signing Envelope) with PEM keys, as the SIF library signs
//! through sigstore: payload type `application/vnd.sylabs.sif-metadata+json`, standard base64,
//! each signature over the pre-authentication encoding (PAE) of type and payload. RSA signs
//! PKCS#1 v1.5 over SHA-256, ECDSA (P-256, P-384) an ASN.1 signature of the SHA-256 digest,
//! Ed25519 the PAE itself. A key ID is the OpenSSH-style `SHA256:` fingerprint of the key.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::Error;

pub const PAYLOAD_TYPE: &str = "application/vnd.sylabs.sif-metadata+json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    v.extend_from_slice(payload);
    v
}

/// Parses `data` as a SIF metadata envelope (`None` if it is not one).
pub fn parse(data: &[u8]) -> Option<Envelope> {
    let e: Envelope = serde_json::from_slice(data).ok()?;
    (e.payload_type == PAYLOAD_TYPE).then_some(e)
}

/// A public key that checks DSSE signatures.
#[derive(Debug, Clone)]
pub enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A private key that makes DSSE signatures.
pub enum PrivateKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl PublicKey {
    /// Reads a PEM public key (`PUBLIC KEY`, or `RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str) -> Result<PublicKey, Error> {
        use p256::pkcs8::DecodePublicKey;
        use rsa::pkcs1::DecodeRsaPublicKey;
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Rsa(k));
        }
        if let Ok(k) = rsa::RsaPublicKey::from_pkcs1_pem(pem) {
            return Ok(PublicKey::Rsa(k));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::P256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::P384(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ed25519(k));
        }
        Err(Error::Key(
            "not a PEM public key of a supported type (RSA, ECDSA P-256/P-384, Ed25519)".into(),
        ))
    }

    /// Reads a DER SubjectPublicKeyInfo (a certificate's key).
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, Error> {
        use p256::pkcs8::DecodePublicKey;
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
            return Ok(PublicKey::Rsa(k));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::P256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::P384(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::Ed25519(k));
        }
        Err(Error::Key(
            "not a public key of a supported type (RSA, ECDSA P-256/P-384, Ed25519)".into(),
        ))
    }

    /// Checks an X.509 signature `sig` over `msg` made with the algorithm `oid` (dotted).
    pub fn verify_x509(&self, oid: &str, msg: &[u8], sig: &[u8]) -> bool {
        use rsa::signature::Verifier as _;
        use rsa::signature::hazmat::PrehashVerifier as _;
        use sha2::{Sha384, Sha512};
        macro_rules! rsa_ok {
            ($d:ty, $k:expr) => {{
                let v = rsa::pkcs1v15::VerifyingKey::<$d>::new($k.clone());
                rsa::pkcs1v15::Signature::try_from(sig).is_ok_and(|s| v.verify(msg, &s).is_ok())
            }};
        }
        match (self, oid) {
            (PublicKey::Rsa(k), "1.2.840.113549.1.1.11") => rsa_ok!(Sha256, k),
            (PublicKey::Rsa(k), "1.2.840.113549.1.1.12") => rsa_ok!(Sha384, k),
            (PublicKey::Rsa(k), "1.2.840.113549.1.1.13") => rsa_ok!(Sha512, k),
            (PublicKey::P256(k), "1.2.840.10045.4.3.2") => p256::ecdsa::DerSignature::try_from(sig)
                .is_ok_and(|s| k.verify_prehash(&Sha256::digest(msg), &s).is_ok()),
            (PublicKey::P256(k), "1.2.840.10045.4.3.3") => p256::ecdsa::DerSignature::try_from(sig)
                .is_ok_and(|s| k.verify_prehash(&Sha384::digest(msg), &s).is_ok()),
            (PublicKey::P384(k), "1.2.840.10045.4.3.2") => p384::ecdsa::DerSignature::try_from(sig)
                .is_ok_and(|s| k.verify_prehash(&Sha256::digest(msg), &s).is_ok()),
            (PublicKey::P384(k), "1.2.840.10045.4.3.3") => p384::ecdsa::DerSignature::try_from(sig)
                .is_ok_and(|s| k.verify_prehash(&Sha384::digest(msg), &s).is_ok()),
            (PublicKey::Ed25519(k), "1.3.101.112") => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| k.verify_strict(msg, &s).is_ok()),
            _ => false,
        }
    }

    /// Checks `sig` over the PAE `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        use rsa::signature::Verifier as _;
        use rsa::signature::hazmat::PrehashVerifier as _;
        let digest = Sha256::digest(msg);
        match self {
            PublicKey::Rsa(k) => {
                let v = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone());
                rsa::pkcs1v15::Signature::try_from(sig).is_ok_and(|s| v.verify(msg, &s).is_ok())
            }
            PublicKey::P256(k) => p256::ecdsa::DerSignature::try_from(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            PublicKey::P384(k) => p384::ecdsa::DerSignature::try_from(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| k.verify_strict(msg, &s).is_ok()),
        }
    }

    /// The OpenSSH-style fingerprint sigstore uses as the key ID.
    pub fn key_id(&self) -> String {
        use rsa::traits::PublicKeyParts;
        let mut blob = Vec::new();
        match self {
            PublicKey::Rsa(k) => {
                ssh_string(&mut blob, b"ssh-rsa");
                ssh_mpint(&mut blob, &k.e().to_bytes_be());
                ssh_mpint(&mut blob, &k.n().to_bytes_be());
            }
            PublicKey::P256(k) => {
                ssh_string(&mut blob, b"ecdsa-sha2-nistp256");
                ssh_string(&mut blob, b"nistp256");
                ssh_string(&mut blob, k.to_encoded_point(false).as_bytes());
            }
            PublicKey::P384(k) => {
                ssh_string(&mut blob, b"ecdsa-sha2-nistp384");
                ssh_string(&mut blob, b"nistp384");
                ssh_string(&mut blob, k.to_encoded_point(false).as_bytes());
            }
            PublicKey::Ed25519(k) => {
                ssh_string(&mut blob, b"ssh-ed25519");
                ssh_string(&mut blob, k.as_bytes());
            }
        }
        format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&blob)))
    }

    /// The key's type, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::Rsa(_) => "RSA",
            PublicKey::P256(_) => "ECDSA P-256",
            PublicKey::P384(_) => "ECDSA P-384",
            PublicKey::Ed25519(_) => "Ed25519",
        }
    }
}

fn ssh_string(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn ssh_mpint(out: &mut Vec<u8>, b: &[u8]) {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    let b = &b[start..];
    if b.first().is_some_and(|&x| x & 0x80 != 0) {
        out.extend_from_slice(&(b.len() as u32 + 1).to_be_bytes());
        out.push(0);
    } else {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

impl PrivateKey {
    /// Reads a PEM private key (PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY`, SEC1
    /// `EC PRIVATE KEY`). Encrypted PEM keys are not read.
    pub fn from_pem(pem: &str) -> Result<PrivateKey, Error> {
        use p256::pkcs8::DecodePrivateKey;
        use rsa::pkcs1::DecodeRsaPrivateKey;
        if pem.contains("ENCRYPTED") {
            return Err(Error::Key(
                "encrypted PEM private keys are not supported; decrypt it first (openssl pkey)"
                    .into(),
            ));
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::Rsa(Box::new(k)));
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs1_pem(pem) {
            return Ok(PrivateKey::Rsa(Box::new(k)));
        }
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::P256(k));
        }
        if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
            return Ok(PrivateKey::P256(k.into()));
        }
        if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::P384(k));
        }
        if let Ok(k) = p384::SecretKey::from_sec1_pem(pem) {
            return Ok(PrivateKey::P384(k.into()));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::Ed25519(k));
        }
        Err(Error::Key(
            "not a PEM private key of a supported type (RSA, ECDSA P-256/P-384, Ed25519)".into(),
        ))
    }

    pub fn public(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::P384(k) => PublicKey::P384(*k.verifying_key()),
            PrivateKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// Signs the PAE `msg`.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        use rsa::signature::SignatureEncoding as _;
        use rsa::signature::Signer as _;
        use rsa::signature::hazmat::PrehashSigner as _;
        let digest = Sha256::digest(msg);
        let fail = |e: rsa::signature::Error| Error::Key(format!("signing: {e}"));
        Ok(match self {
            PrivateKey::Rsa(k) => {
                let s = rsa::pkcs1v15::SigningKey::<Sha256>::new((**k).clone());
                s.try_sign(msg).map_err(fail)?.to_vec()
            }
            PrivateKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign_prehash(&digest).map_err(fail)?;
                s.to_der().as_bytes().to_vec()
            }
            PrivateKey::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign_prehash(&digest).map_err(fail)?;
                s.to_der().as_bytes().to_vec()
            }
            PrivateKey::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
        })
    }
}

/// Wraps `payload` in an envelope signed by each of `keys`.
pub fn sign(payload: &[u8], keys: &[PrivateKey]) -> Result<Vec<u8>, Error> {
    let msg = pae(PAYLOAD_TYPE, payload);
    let mut signatures = Vec::new();
    for k in keys {
        signatures.push(EnvelopeSignature {
            keyid: k.public().key_id(),
            sig: STANDARD.encode(k.sign(&msg)?),
        });
    }
    let e = Envelope {
        payload_type: PAYLOAD_TYPE.into(),
        payload: STANDARD.encode(payload),
        signatures,
    };
    Ok(serde_json::to_vec(&e).expect("envelope always serializes"))
}

/// Why an envelope was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    #[error("DSSE envelope malformed: {0}")]
    Malformed(String),
    #[error("dsse: verify envelope failed: no signature verifies with the given key(s) ({keys})")]
    NoValidSignature { keys: String },
}

/// Checks the envelope against `keys`: at least one signature must verify with one key.
/// Returns the payload and the keys that verified.
pub fn verify(data: &[u8], keys: &[PublicKey]) -> Result<(Vec<u8>, Vec<PublicKey>), DsseError> {
    let e =
        parse(data).ok_or_else(|| DsseError::Malformed("not a SIF metadata envelope".into()))?;
    let payload = STANDARD
        .decode(e.payload.as_bytes())
        .map_err(|err| DsseError::Malformed(format!("payload: {err}")))?;
    let msg = pae(&e.payload_type, &payload);
    let mut ok = Vec::new();
    for k in keys {
        let good = e.signatures.iter().any(|s| {
            STANDARD
                .decode(s.sig.as_bytes())
                .is_ok_and(|sig| k.verify(&msg, &sig))
        });
        if good {
            ok.push(k.clone());
        }
    }
    if ok.is_empty() {
        let keys = keys
            .iter()
            .map(|k| k.key_id())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(DsseError::NoValidSignature { keys });
    }
    Ok((payload, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // The worked example of the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }
}
