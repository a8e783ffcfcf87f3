//! Whether a registry answers at all: one short `GET /v2/` before a build starts, so that a
//! registry that cannot be reached fails in seconds with the reason (the name does not
//! resolve, the port refuses, TLS fails, nothing answers in time) rather than after the steps
//! before the pull. Any HTTP answer counts as reachable: a `401` asks for credentials, which
//! the pull itself deals with.
//!
//! A TLS failure is told apart from a plain-HTTP server only by asking that server over plain
//! HTTP (a second request, made only then): the `--nohttps` hint is given where it applies.
//! Only a registry's answer to `/v2/` counts (200 or 401): a TLS server (Go's, the registry's)
//! answers a plain request on its port with 400, and that is a TLS problem, not plain HTTP.

use std::time::Duration;

use super::{Client, Target};
use crate::reference::{self, Reference};

/// Why a registry did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The host name does not resolve here.
    NoSuchHost,
    /// The host refused the connection: nothing listens on the port.
    Refused,
    /// No answer within the time allowed.
    Timeout,
    /// The server answered plain HTTP to a TLS request.
    PlainHttp,
    /// The TLS handshake failed (an untrusted certificate, a wrong name): the detail.
    Tls(String),
    /// Anything else: the detail.
    Other(String),
}

/// A registry that does not answer, naming it and the reference that needs it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the registry `{registry}` of `{reference}` {}", describe(.why, .url))]
pub struct Unreachable {
    pub registry: String,
    pub reference: String,
    pub url: String,
    pub why: Why,
}

fn describe(why: &Why, url: &str) -> String {
    match why {
        Why::NoSuchHost => "cannot be reached: its name does not resolve".into(),
        Why::Refused => format!("refuses connections (`{url}`)"),
        Why::Timeout => format!("does not answer (`{url}` timed out)"),
        Why::PlainHttp => format!("answers plain HTTP, not HTTPS (`{url}`)"),
        Why::Tls(d) => format!("fails TLS (`{url}`): {d}"),
        Why::Other(d) => format!("cannot be reached (`{url}`): {d}"),
    }
}

impl Unreachable {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match &self.why {
            Why::NoSuchHost => "check the name; compute nodes often resolve no outside names \
                 (build on a login node)"
                .into(),
            Why::Refused => "check the host and port, and that the registry runs".into(),
            Why::Timeout => "check the network route to the registry (a proxy or firewall), or \
                 build where the registry is reachable"
                .into(),
            Why::PlainHttp => "for a registry without TLS use --nohttps".into(),
            Why::Tls(_) => "for a registry with a private CA set SSL_CERT_FILE to its \
                 certificate"
                .into(),
            Why::Other(_) => "check the registry's address and the network".into(),
        }
    }
}

/// The reason a transport error names.
fn why(e: &ureq::Error) -> Why {
    use std::io::ErrorKind;
    match e {
        ureq::Error::HostNotFound => Why::NoSuchHost,
        ureq::Error::ConnectionFailed => Why::Refused,
        ureq::Error::Timeout(_) => Why::Timeout,
        // The resolver's failures come as I/O errors of no particular kind; std words them so.
        ureq::Error::Io(io) if io.to_string().contains("lookup address") => Why::NoSuchHost,
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => Why::Refused,
            ErrorKind::TimedOut | ErrorKind::WouldBlock => Why::Timeout,
            _ => Why::Tls(io.to_string()),
        },
        ureq::Error::Tls(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::Pem(_)
        | ureq::Error::Protocol(_)
        | ureq::Error::TlsRequired => Why::Tls(e.to_string()),
        other => Why::Other(other.to_string()),
    }
}

impl Client {
    /// One `GET /v2/` of `r`'s registry, over the scheme and TLS trust the pull uses, within
    /// `timeout`: Ok (with the HTTP status) when it answers anything.
    pub fn reach(&self, r: &Reference, timeout: Duration) -> Result<u16, Unreachable> {
        let url = self.base(&Target::of(r));
        let get = |url: &str| {
            self.agent
                .get(url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .call()
        };
        let fail = |why| Unreachable {
            registry: r.registry.clone(),
            reference: r.to_string(),
            url: url.clone(),
            why,
        };
        let e = match get(&url) {
            Ok(resp) => return Ok(resp.status().as_u16()),
            Err(e) => e,
        };
        let mut w = why(&e);
        if let (Why::Tls(d), true) = (&w, self.opts.plain_http) {
            // No TLS over plain HTTP: the connection itself failed.
            w = Why::Other(d.clone());
        }
        if matches!(w, Why::Tls(_))
            && !self.opts.plain_http
            && get(&format!("http://{}/v2/", reference::api_host(&r.registry)))
                .is_ok_and(|resp| matches!(resp.status().as_u16(), 200 | 401))
        {
            w = Why::PlainHttp;
        }
        Err(fail(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_its_own_words_and_only_plain_http_suggests_nohttps() {
        let u = |why| Unreachable {
            registry: "reg.example:5000".into(),
            reference: "reg.example:5000/app:1".into(),
            url: "https://reg.example:5000/v2/".into(),
            why,
        };
        for (why, says) in [
            (Why::NoSuchHost, "does not resolve"),
            (Why::Refused, "refuses connections"),
            (Why::Timeout, "timed out"),
            (Why::PlainHttp, "plain HTTP"),
            (Why::Tls("bad certificate".into()), "bad certificate"),
        ] {
            let plain = why == Why::PlainHttp;
            let e = u(why);
            let text = e.to_string();
            assert!(text.contains(says), "{text}");
            assert!(
                text.contains("`reg.example:5000`") && text.contains("app:1"),
                "{text}"
            );
            assert_eq!(e.hint().contains("--nohttps"), plain, "{}", e.hint());
        }
    }

    #[test]
    fn a_refused_connection_is_told_from_a_name_that_does_not_resolve() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(why(&ureq::Error::Io(refused)), Why::Refused);
        assert_eq!(why(&ureq::Error::HostNotFound), Why::NoSuchHost);
        // What std's resolver returns for an unknown name.
        let lookup = std::net::ToSocketAddrs::to_socket_addrs("registry.invalid:443")
            .expect_err("`.invalid` never resolves");
        assert_eq!(why(&ureq::Error::Io(lookup)), Why::NoSuchHost);
        assert_eq!(
            why(&ureq::Error::Timeout(ureq::Timeout::Global)),
            Why::Timeout
        );
    }
}
