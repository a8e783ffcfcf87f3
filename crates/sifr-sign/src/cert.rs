//! X.509 certificates for `verify --certificate`, as Apptainer checks them (Go's
//! `x509.Certificate.Verify` with the code-signing key usage): the leaf must chain, through the
//! given intermediates, to one of the roots (the given ones, else the system's), every
//! certificate within its validity period, every issuer a CA, and the chain's extended key
//! usages must allow code signing. The leaf's public key then checks the DSSE signatures.

use std::time::{SystemTime, UNIX_EPOCH};

use x509_cert::Certificate;
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};

use crate::dsse::PublicKey;

const EKU: &str = "2.5.29.37";
const BASIC_CONSTRAINTS: &str = "2.5.29.19";
const CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
const ANY_EKU: &str = "2.5.29.37.0";

/// Why a certificate was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("no certificate found in {0}")]
    Empty(String),
    #[error("cannot read certificates from {what}: {reason}")]
    Parse { what: String, reason: String },
    #[error("x509: certificate {subject} has expired or is not yet valid")]
    Validity { subject: String },
    #[error("x509: certificate {subject} does not allow code signing (extended key usage)")]
    KeyUsage { subject: String },
    #[error("x509: certificate signed by unknown authority (for {subject})")]
    UnknownAuthority { subject: String },
    #[error("x509: certificate {subject}: its public key: {reason}")]
    Key { subject: String, reason: String },
}

/// Reads every PEM certificate in `pem` (`what` names the file in errors).
pub fn load_pem(pem: &[u8], what: &str) -> Result<Vec<Certificate>, CertError> {
    let certs = Certificate::load_pem_chain(pem).map_err(|e| CertError::Parse {
        what: what.to_string(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(CertError::Empty(what.to_string()));
    }
    Ok(certs)
}

fn subject(c: &Certificate) -> String {
    c.tbs_certificate.subject.to_string()
}

fn der<T: x509_cert::der::Encode>(v: &T) -> Vec<u8> {
    v.to_der().unwrap_or_default()
}

/// The certificate's public key.
pub fn public_key(c: &Certificate) -> Result<PublicKey, CertError> {
    PublicKey::from_spki_der(&der(&c.tbs_certificate.subject_public_key_info)).map_err(|e| {
        CertError::Key {
            subject: subject(c),
            reason: e.to_string(),
        }
    })
}

fn extension<'a>(c: &'a Certificate, oid: &str) -> Option<&'a [u8]> {
    c.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id.to_string() == oid)
        .map(|e| e.extn_value.as_bytes())
}

/// The extended key usages (`None`: no restriction).
fn ekus(c: &Certificate) -> Option<Vec<String>> {
    let b = extension(c, EKU)?;
    Some(
        ExtendedKeyUsage::from_der(b)
            .map(|e| e.0.iter().map(|o| o.to_string()).collect())
            .unwrap_or_default(),
    )
}

fn allows_code_signing(c: &Certificate) -> bool {
    ekus(c).is_none_or(|u| u.iter().any(|o| o == CODE_SIGNING || o == ANY_EKU))
}

fn is_ca(c: &Certificate) -> bool {
    extension(c, BASIC_CONSTRAINTS)
        .and_then(|b| BasicConstraints::from_der(b).ok())
        .is_some_and(|b| b.ca)
}

fn valid_at(c: &Certificate, now: u64) -> bool {
    let v = &c.tbs_certificate.validity;
    v.not_before.to_unix_duration().as_secs() <= now
        && now <= v.not_after.to_unix_duration().as_secs()
}

/// Whether `issuer` signed `c`.
fn signed_by(c: &Certificate, issuer: &Certificate) -> bool {
    if der(&c.tbs_certificate.issuer) != der(&issuer.tbs_certificate.subject) {
        return false;
    }
    let Ok(key) = public_key(issuer) else {
        return false;
    };
    let Some(sig) = c.signature.as_bytes() else {
        return false;
    };
    key.verify_x509(
        &c.signature_algorithm.oid.to_string(),
        &der(&c.tbs_certificate),
        sig,
    )
}

/// Checks `leaf`'s chain; returns its public key. `now` is seconds since the epoch (`None`:
/// the clock's).
pub fn verify_chain(
    leaf: &Certificate,
    intermediates: &[Certificate],
    roots: &[Certificate],
    now: Option<u64>,
) -> Result<PublicKey, CertError> {
    let now = now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let mut cur = leaf.clone();
    for _ in 0..10 {
        if !valid_at(&cur, now) {
            return Err(CertError::Validity {
                subject: subject(&cur),
            });
        }
        if !allows_code_signing(&cur) {
            return Err(CertError::KeyUsage {
                subject: subject(&cur),
            });
        }
        if let Some(root) = roots.iter().find(|r| signed_by(&cur, r)) {
            if !valid_at(root, now) {
                return Err(CertError::Validity {
                    subject: subject(root),
                });
            }
            return public_key(leaf);
        }
        if roots.iter().any(|r| der(r) == der(&cur)) {
            return public_key(leaf);
        }
        match intermediates
            .iter()
            .find(|i| is_ca(i) && der(*i) != der(&cur) && signed_by(&cur, i))
        {
            Some(i) => cur = i.clone(),
            None => {
                return Err(CertError::UnknownAuthority {
                    subject: subject(leaf),
                });
            }
        }
    }
    Err(CertError::UnknownAuthority {
        subject: subject(leaf),
    })
}
