//! Trust anchors for HTTPS: the system CA bundle plus any CA files the user (or a test with
//! a throwaway CA) adds.
//!
//! The system store is read from the PEM bundle every distribution keeps at a well-known
//! path (`SSL_CERT_FILE` first, as OpenSSL honours it), rather than through a platform
//! verifier crate: HPC nodes run many distributions, the bundle is what their admins curate
//! (site CAs included), and it keeps the dependency tree to rustls alone. When no bundle is
//! found, the Mozilla roots compiled into the binary are the fallback.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// System bundles, in the order Go's crypto/x509 tries them (Debian/Ubuntu/Gentoo/Arch,
/// Fedora/RHEL, openSUSE, OpenELEC, CentOS/RHEL 7, Alpine).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A CA file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("CA file `{path}` holds no PEM certificate")]
    NoCertificates { path: PathBuf },
}

/// Certificates from one PEM file; `Ok(empty)` never happens (an error instead).
pub fn load_pem(path: &Path) -> Result<Vec<Certificate<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let certs: Vec<_> = ureq::tls::parse_pem(&bytes)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first system bundle that exists and parses, honouring `SSL_CERT_FILE`.
pub fn system_roots(env: impl Fn(&str) -> Option<String>) -> Option<Vec<Certificate<'static>>> {
    let from_env = env("SSL_CERT_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    from_env
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find_map(|p| load_pem(&p).ok())
}

/// TLS settings: system roots (or the built-in Mozilla roots) plus `extra_cas`.
pub fn config(
    extra_cas: &[PathBuf],
    env: impl Fn(&str) -> Option<String>,
) -> Result<TlsConfig, TlsError> {
    let mut extra = Vec::new();
    for p in extra_cas {
        extra.extend(load_pem(p)?);
    }
    let roots = match system_roots(env) {
        Some(mut sys) => {
            sys.extend(extra);
            RootCerts::Specific(Arc::new(sys))
        }
        None if extra.is_empty() => RootCerts::WebPki,
        // Without a system bundle, extra CAs alone would silently drop the public roots;
        // only the test/throwaway-CA case gets here, where that is what is wanted.
        None => RootCerts::Specific(Arc::new(extra)),
    };
    Ok(TlsConfig::builder().root_certs(roots).build())
}

/// TLS settings trusting `extra_cas` alone, without reading the system bundle (parsing it
/// costs a couple of milliseconds): for a client that talks plain HTTP and would use TLS only
/// if redirected, which a manifest request is not.
pub fn config_extra_only(extra_cas: &[PathBuf]) -> Result<TlsConfig, TlsError> {
    let mut extra = Vec::new();
    for p in extra_cas {
        extra.extend(load_pem(p)?);
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(extra)))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_ca_files_are_named() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("nope.pem");
        assert!(
            matches!(config(std::slice::from_ref(&missing), |_| None), Err(TlsError::Io { path, .. }) if path == missing)
        );
        let empty = t.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let e = config(&[empty], |_| None).unwrap_err();
        assert!(e.to_string().contains("empty.pem"), "{e}");
    }
}
