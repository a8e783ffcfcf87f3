//! The upload half of the distribution protocol, which `push` needs: is a blob there already
//! (`HEAD`), upload one (`POST` to open an upload, then one monolithic `PUT` with the digest),
//! and put a manifest under a tag. Every request asks for `pull,push` access to the
//! repository (see [`super::auth::push_scope`]); credentials come from the same store as a
//! pull's.

use std::fs::File;
use std::path::Path;

use super::{Client, ClientError, Result, Target, auth, expect_ok, header};
use crate::digest::Digest;
use crate::reference::{Reference, api_host};

/// The bytes of a blob to upload, in a form that can be sent again after a retry.
enum Body<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

impl Client {
    /// Whether repository `r` already holds blob `digest` (so that it need not be uploaded).
    pub fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<bool> {
        let t = Target::push_of(r);
        let url = format!("{}{}/blobs/{digest}", self.base(&t), r.repository);
        let resp = self.send_with(&t, &url, |authz| {
            let mut req = self.agent.head(&url);
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            req.call()
        })?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => expect_ok(&url, resp).map(|_| false),
        }
    }

    /// Upload the file `path` as blob `digest` of repository `r`. The registry checks the
    /// digest against the bytes it received and refuses a mismatch.
    pub fn upload_file(&self, r: &Reference, digest: &Digest, path: &Path) -> Result<()> {
        self.upload(r, digest, Body::File(path))
    }

    /// Upload `bytes` as a blob of repository `r`; returns its digest.
    pub fn upload_bytes(&self, r: &Reference, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        self.upload(r, &digest, Body::Bytes(bytes))?;
        Ok(digest)
    }

    fn upload(&self, r: &Reference, digest: &Digest, body: Body<'_>) -> Result<()> {
        let t = Target::push_of(r);
        let url = format!("{}{}/blobs/uploads/", self.base(&t), r.repository);
        let resp = self.send_with(&t, &url, |authz| {
            let mut req = self.agent.post(&url);
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            req.send_empty()
        })?;
        let resp = expect_ok(&url, resp)?;
        let location = header(&resp, "location").ok_or_else(|| ClientError::Status {
            url: url.clone(),
            status: resp.status().as_u16(),
            detail: ": the answer has no Location for the upload".into(),
        })?;
        let mut put_url = self.absolute(&t, &location);
        put_url.push(if put_url.contains('?') { '&' } else { '?' });
        put_url.push_str("digest=");
        put_url.push_str(&auth::percent_encode(&digest.to_string()));
        let resp = self.send_with(&t, &put_url, |authz| {
            let mut req = self
                .agent
                .put(&put_url)
                .header("Content-Type", "application/octet-stream");
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            match body {
                // Opened per attempt: a retry sends the whole file again.
                Body::File(p) => req.send(File::open(p)?),
                Body::Bytes(b) => req.send(b),
            }
        })?;
        expect_ok(&put_url, resp).map(|_| ())
    }

    /// Put `manifest` (of media type `media_type`) as the tag (or digest) `r` names; returns
    /// the manifest's digest.
    pub fn put_manifest(&self, r: &Reference, media_type: &str, manifest: &[u8]) -> Result<Digest> {
        let t = Target::push_of(r);
        let url = format!(
            "{}{}/manifests/{}",
            self.base(&t),
            r.repository,
            r.manifest_ref()
        );
        let resp = self.send_with(&t, &url, |authz| {
            let mut req = self.agent.put(&url).header("Content-Type", media_type);
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            req.send(manifest)
        })?;
        expect_ok(&url, resp)?;
        Ok(Digest::of(manifest))
    }

    /// A `Location` as registries send it (absolute, or a path on the registry) as a URL.
    fn absolute(&self, t: &Target<'_>, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            return location.to_string();
        }
        let scheme = if self.opts.plain_http {
            "http"
        } else {
            "https"
        };
        format!(
            "{scheme}://{}/{}",
            api_host(t.registry),
            location.trim_start_matches('/')
        )
    }
}
