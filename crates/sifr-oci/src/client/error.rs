//! The client's error type: what failed, naming the URL, registry, reference or digest, and
//! what the user can do about it.

use std::io;
use std::path::PathBuf;

use super::auth::ChallengeError;
use super::credentials::CredentialSource;
use super::tls::TlsError;
use super::{MAX_DEPTH, MAX_DOCUMENT};
use crate::cache::CacheError;
use crate::digest::Digest;
use crate::manifest::ManifestError;

/// Pull failures; each names the URL, registry, reference or digest involved.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up TLS")]
    Tls(#[from] TlsError),
    #[error("request to `{url}` failed")]
    Http {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("reading from `{url}` failed")]
    Body {
        url: String,
        #[source]
        source: io::Error,
    },
    #[error("`{url}` answered HTTP {status}{detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("`{url}` answered HTTP {status} to range request at byte {offset}")]
    Range {
        url: String,
        status: u16,
        offset: u64,
    },
    #[error("`{registry}` requires authentication but no credentials are set for it")]
    NoCredentials { registry: String },
    #[error(
        "`{registry}` refused the credentials of user `{username}` ({source_of}, HTTP {status})"
    )]
    AuthRejected {
        registry: String,
        status: u16,
        username: String,
        /// Where the refused credentials came from.
        source_of: CredentialSource,
    },
    #[error("`{registry}` sent an unusable authentication challenge")]
    Challenge {
        registry: String,
        #[source]
        source: ChallengeError,
    },
    #[error("token endpoint `{url}` sent no token")]
    NoToken { url: String },
    #[error("bad JSON from `{url}`")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{url}` sent more than {MAX_DOCUMENT} bytes")]
    TooLarge { url: String },
    #[error("manifest of `{reference}`")]
    Manifest {
        reference: String,
        #[source]
        source: ManifestError,
    },
    #[error("manifest of `{reference}` has digest `{actual}`, expected `{expected}`")]
    ManifestDigest {
        reference: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("`{reference}` nests indexes deeper than {MAX_DEPTH}")]
    TooDeep { reference: String },
    #[error("cannot read cached config `{path}`")]
    Config {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse image config `{digest}`")]
    ConfigJson {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot write blob `{digest}` to the cache")]
    Write {
        digest: Digest,
        #[source]
        source: io::Error,
    },
}

/// Whether a transport error can come from TLS: a handshake or certificate failure, or a
/// plain-HTTP server answering a TLS hello (a protocol error or a dropped connection).
fn tls(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Tls(_)
            | ureq::Error::Rustls(_)
            | ureq::Error::Pem(_)
            | ureq::Error::Protocol(_)
            | ureq::Error::Io(_)
            | ureq::Error::TlsRequired
    )
}

impl ClientError {
    /// What the user can do about it, where that is known. Names the CLI's ways of giving
    /// credentials, which are the same in every front end sifr has.
    pub fn hint(&self) -> Option<String> {
        match self {
            ClientError::NoCredentials { registry } => Some(format!(
                "log in with `sifr registry login --username USER docker://{registry}`, or give \
                 credentials with --docker-login or APPTAINER_DOCKER_USERNAME and \
                 APPTAINER_DOCKER_PASSWORD"
            )),
            ClientError::AuthRejected {
                registry,
                source_of,
                ..
            } => Some(match source_of {
                CredentialSource::File(p) => format!(
                    "the login stored in `{0}` is wrong or out of date: replace it with \
                     `sifr registry login --authfile {0} --username USER docker://{registry}`, \
                     or drop it with `sifr registry logout --authfile {0} docker://{registry}`",
                    p.display()
                ),
                CredentialSource::Environment => "check APPTAINER_DOCKER_USERNAME and \
                     APPTAINER_DOCKER_PASSWORD, or unset them to use a stored login"
                    .into(),
                CredentialSource::Given => "check the username and password (some registries \
                     want an access token instead of the password)"
                    .into(),
            }),
            // The name does not resolve, or nothing answers: TLS is not the problem.
            ClientError::Http {
                url,
                source: ureq::Error::HostNotFound,
            } => Some(format!(
                "the registry's name in `{url}` does not resolve here: check it (compute \
                 nodes often resolve no outside names; pull on a login node)"
            )),
            ClientError::Http {
                url,
                source: ureq::Error::ConnectionFailed,
            } => Some(format!(
                "nothing answers at `{url}`: check the host and port, and that the registry \
                 runs"
            )),
            ClientError::Http { url, source } if url.starts_with("https://") && tls(source) => {
                Some(
                    "for a local registry without TLS use --nohttps; for a private CA set \
                     SSL_CERT_FILE"
                        .into(),
                )
            }
            _ => None,
        }
    }

    /// Worth another attempt: the connection, not the request, failed.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Http { source, .. } => matches!(
                source,
                ureq::Error::Io(_)
                    | ureq::Error::Timeout(_)
                    | ureq::Error::ConnectionFailed
                    | ureq::Error::HostNotFound
            ),
            ClientError::Body { .. } => true,
            ClientError::Status { status, .. } => *status == 429 || *status >= 500,
            ClientError::Range { status: 416, .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(url: &str, source: ureq::Error) -> String {
        ClientError::Http {
            url: url.into(),
            source,
        }
        .hint()
        .unwrap_or_default()
    }

    #[test]
    fn the_plain_http_hint_is_given_only_where_tls_can_be_the_cause() {
        let url = "https://registry.invalid/v2/";
        assert!(hint(url, ureq::Error::HostNotFound).contains("does not resolve"));
        assert!(!hint(url, ureq::Error::HostNotFound).contains("--nohttps"));
        assert!(hint(url, ureq::Error::ConnectionFailed).contains("nothing answers"));
        assert!(hint(url, ureq::Error::Tls("bad certificate")).contains("--nohttps"));
        // Plain HTTP has no TLS to blame.
        assert_eq!(hint("http://127.0.0.1:5000/v2/", ureq::Error::Tls("x")), "");
    }
}
