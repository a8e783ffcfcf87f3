//! A blocking client for the OCI distribution protocol: manifests (indexes resolved by
//! platform), blobs into the [`BlobCache`] with digest verification, retries and resumption
//! with `Range`, anonymous/Bearer-token/Basic authentication.
//!
//! Blocking on purpose: pulling is a handful of long transfers, which a few OS threads
//! handle as well as an async runtime would, without a runtime's threads and dependency
//! weight. Parallel layer downloads use scoped threads ([`ClientOptions::parallel`]).
//!
//! Credentials are sent only to the registry they belong to: redirects (blob storage on
//! another host) drop the `Authorization` header, which is ureq's default and the
//! behaviour registries expect for pre-signed URLs.

pub mod auth;
pub mod authfile;
pub mod credentials;
mod error;
pub mod push;
pub mod reach;
pub mod tls;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ureq::http::Response;

use crate::cache::{BlobCache, CacheError};
use crate::digest::Digest;
use crate::manifest::{Descriptor, ImageConfig, MANIFEST_ACCEPT, Manifest, ManifestKind, Platform};
use crate::merge::FileLayer;
use crate::reference::{self, Reference};
use auth::Challenge;
pub use authfile::{AuthFile, AuthFileError};
pub use credentials::{CredentialSource, CredentialStore, Credentials, CredentialsError};
pub use error::ClientError;
pub use tls::TlsError;

/// A blob's file, telling `bytes` its length as writes go.
struct Counted<'a> {
    file: &'a mut File,
    done: u64,
    bytes: &'a dyn Fn(u64),
}

impl io::Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.done += n as u64;
        (self.bytes)(self.done);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Manifests and token responses larger than this are refused.
const MAX_DOCUMENT: u64 = 16 << 20;
/// Index → index → manifest nesting deeper than this is refused.
const MAX_DEPTH: usize = 4;

/// How the client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Platform picked from indexes; the host's by default (`--arch` overrides).
    pub platform: Platform,
    /// Talk plain HTTP (`--nohttps`, local test registries).
    pub plain_http: bool,
    /// Extra PEM CA files trusted on top of the system store.
    pub ca_files: Vec<PathBuf>,
    /// Further attempts after a transient failure (connection, 5xx, 429, a cut body).
    pub retries: u32,
    /// Layers downloaded at once.
    pub parallel: usize,
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// First retry delay; doubled per attempt, at most 8 s.
    pub backoff: Duration,
    /// Trust the system CA bundle. Off only for a plain-HTTP client that makes manifest
    /// requests alone (an image-URI launch's check of a tag), which then skips reading it.
    pub system_roots: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            platform: Platform::host(),
            plain_http: false,
            ca_files: Vec::new(),
            retries: 3,
            // Three streams saturate most links without tripping registries' rate limits
            // (Docker's default is also 3).
            parallel: 3,
            user_agent: concat!("sifr/", env!("CARGO_PKG_VERSION")).to_string(),
            connect_timeout: Duration::from_secs(30),
            backoff: Duration::from_millis(250),
            system_roots: true,
        }
    }
}

type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A resolved image: its manifest (for the selected platform) and config.
#[derive(Debug, Clone)]
pub struct RemoteImage {
    pub reference: Reference,
    pub manifest: Manifest,
    pub manifest_digest: Digest,
    /// The index the manifest was selected from, if the reference named one.
    pub index_digest: Option<Digest>,
    pub config: ImageConfig,
    pub config_bytes: Vec<u8>,
}

/// What [`Client::pull_with`] reports while it works.
#[derive(Debug, Clone, Copy)]
pub enum PullEvent<'a> {
    /// The manifest for the platform is known: this many layers of this many bytes.
    Resolved {
        manifest: &'a Digest,
        layers: usize,
        bytes: u64,
    },
    /// Layer `index` (base first) of `count` is in the cache; `cached` when it already was.
    Layer {
        index: usize,
        count: usize,
        digest: &'a Digest,
        size: u64,
        cached: bool,
    },
    /// `done` of layer `index`'s `size` bytes are on disk, as a download goes.
    Bytes {
        index: usize,
        digest: &'a Digest,
        done: u64,
        size: u64,
    },
}

/// The distribution client. `Sync`: one client serves all download threads.
pub struct Client {
    agent: ureq::Agent,
    opts: ClientOptions,
    creds: CredentialStore,
    /// `registry|repository` → `Authorization` value that worked.
    auth: Mutex<HashMap<String, String>>,
}

impl Client {
    /// `env` is how environment variables are looked up (for `SSL_CERT_FILE`).
    pub fn new(
        opts: ClientOptions,
        creds: CredentialStore,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let tls = if opts.plain_http && !opts.system_roots {
            tls::config_extra_only(&opts.ca_files)?
        } else {
            tls::config(&opts.ca_files, env)?
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .user_agent(opts.user_agent.as_str())
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .build();
        Ok(Client {
            agent: config.into(),
            opts,
            creds,
            auth: Mutex::new(HashMap::new()),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    fn base(&self, t: &Target<'_>) -> String {
        let scheme = if self.opts.plain_http {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/", reference::api_host(t.registry))
    }

    /// `GET /v2/`, authenticating (for a pull of `r`) if the registry asks; Ok when the
    /// registry speaks v2.
    pub fn ping(&self, r: &Reference) -> Result<()> {
        self.ping_target(&Target::of(r))
    }

    /// `GET /v2/` of a normalised registry (`docker.io`, `host:port`), authenticating with
    /// no repository scope if the registry asks: Ok when the registry accepts the
    /// credentials, which is what `registry login` checks before storing them. A registry
    /// that answers `/v2/` without asking for credentials accepts anyone here.
    pub fn ping_registry(&self, registry: &str) -> Result<()> {
        self.ping_target(&Target {
            registry,
            repository: None,
            push: false,
        })
    }

    fn ping_target(&self, t: &Target<'_>) -> Result<()> {
        let url = self.base(t);
        let resp = self.send(t, &url, None, None)?;
        expect_ok(&url, resp).map(|_| ())
    }

    /// The digest of the manifest (or index) the reference names, as the registry serves it
    /// now: the pinned digest itself, with no request, when the reference has one; else a
    /// `HEAD` of the tag, whose `Docker-Content-Digest` registries send (a `HEAD` does not
    /// count against Docker Hub's pull limit); else, from a registry that sends no such
    /// header, the digest of the manifest fetched with `GET`. This is what an image-URI launch
    /// checks on every start, so it is one small request.
    pub fn manifest_digest(&self, r: &Reference) -> Result<Digest> {
        if let Some(d) = r.digest {
            return Ok(d);
        }
        let t = Target::of(r);
        let wanted = r.manifest_ref();
        let url = format!("{}{}/manifests/{wanted}", self.base(&t), r.repository);
        let resp = self.send_with(&t, &url, |authz| {
            let mut req = self.agent.head(&url).header("Accept", MANIFEST_ACCEPT);
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            req.call()
        })?;
        let resp = expect_ok(&url, resp)?;
        if let Some(d) = header(&resp, "docker-content-digest").and_then(|v| v.parse().ok()) {
            return Ok(d);
        }
        Ok(self.manifest_bytes(r, &wanted, None)?.2)
    }

    /// Resolve a reference to the manifest for the configured platform, and fetch its config
    /// into the cache.
    pub fn resolve(&self, r: &Reference, cache: &BlobCache) -> Result<RemoteImage> {
        let mut wanted = r.manifest_ref();
        let mut expected = r.digest;
        let mut index_digest = None;
        for _ in 0..MAX_DEPTH {
            let (bytes, content_type, digest) = self.manifest_bytes(r, &wanted, expected)?;
            let kind = ManifestKind::parse(&bytes, content_type.as_deref(), &digest.to_string())
                .map_err(|source| ClientError::Manifest {
                    reference: r.to_string(),
                    source,
                })?;
            match kind {
                ManifestKind::Index(idx) => {
                    let d = idx
                        .select(&self.opts.platform, &digest.to_string())
                        .map_err(|source| ClientError::Manifest {
                            reference: r.to_string(),
                            source,
                        })?;
                    index_digest.get_or_insert(digest);
                    wanted = d.digest.to_string();
                    expected = Some(d.digest);
                }
                ManifestKind::Image(manifest) => {
                    let path = self.blob(r, &manifest.config, cache)?;
                    let config_bytes = std::fs::read(&path)
                        .map_err(|source| ClientError::Config { path, source })?;
                    let config = ImageConfig::parse(&config_bytes).map_err(|source| {
                        ClientError::ConfigJson {
                            digest: manifest.config.digest,
                            source,
                        }
                    })?;
                    return Ok(RemoteImage {
                        reference: r.clone(),
                        manifest,
                        manifest_digest: digest,
                        index_digest,
                        config,
                        config_bytes,
                    });
                }
            }
        }
        Err(ClientError::TooDeep {
            reference: r.to_string(),
        })
    }

    /// Resolve, then download every layer (in parallel) into the cache. Layers come back
    /// base first, reading their cached blobs and re-verifying them as the merge reads.
    pub fn pull(&self, r: &Reference, cache: &BlobCache) -> Result<(RemoteImage, Vec<FileLayer>)> {
        self.pull_with(r, cache, &|_| {})
    }

    /// [`Client::pull`], telling `progress` what happens (from the download threads).
    pub fn pull_with(
        &self,
        r: &Reference,
        cache: &BlobCache,
        progress: &(dyn Fn(PullEvent<'_>) + Sync),
    ) -> Result<(RemoteImage, Vec<FileLayer>)> {
        let image = self.resolve(r, cache)?;
        let layers = &image.manifest.layers;
        progress(PullEvent::Resolved {
            manifest: &image.manifest_digest,
            layers: layers.len(),
            bytes: layers.iter().map(|l| l.size).sum(),
        });
        let results: Vec<Mutex<Option<Result<PathBuf>>>> =
            layers.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..self.opts.parallel.clamp(1, layers.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(desc) = layers.get(i) else { break };
                        let cached = cache.get(&desc.digest).is_some();
                        let bytes = |done| {
                            progress(PullEvent::Bytes {
                                index: i,
                                digest: &desc.digest,
                                done,
                                size: desc.size,
                            })
                        };
                        let r = self.blob_with(r, desc, cache, &bytes);
                        if r.is_ok() {
                            progress(PullEvent::Layer {
                                index: i,
                                count: layers.len(),
                                digest: &desc.digest,
                                size: desc.size,
                                cached,
                            });
                        }
                        let failed = r.is_err();
                        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                        if failed {
                            // Stop handing out work; others finish what they hold.
                            next.store(layers.len(), Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        let mut out = Vec::with_capacity(layers.len());
        for (desc, slot) in layers.iter().zip(results) {
            match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
                Some(Ok(path)) => out.push(FileLayer {
                    path,
                    name: desc.digest.to_string(),
                    window: None,
                    verify: Some((desc.digest, Some(desc.size))),
                }),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        Ok((image, out))
    }

    /// Fetch a manifest by tag or digest; returns bytes, content type and their digest,
    /// checked against `expected` when the reference pins one.
    pub(crate) fn manifest_bytes(
        &self,
        r: &Reference,
        wanted: &str,
        expected: Option<Digest>,
    ) -> Result<(Vec<u8>, Option<String>, Digest)> {
        let t = Target::of(r);
        let url = format!("{}{}/manifests/{wanted}", self.base(&t), r.repository);
        let resp = self.send(&t, &url, Some(MANIFEST_ACCEPT), None)?;
        let resp = expect_ok(&url, resp)?;
        let content_type = header(&resp, "content-type");
        let bytes = read_limited(&url, resp)?;
        let digest = Digest::of(&bytes);
        if let Some(expected) = expected.filter(|e| *e != digest) {
            return Err(ClientError::ManifestDigest {
                reference: r.to_string(),
                expected,
                actual: digest,
            });
        }
        Ok((bytes, content_type, digest))
    }

    /// Download a blob into the cache (once, across processes), resuming with `Range`
    /// after a cut connection, verified before it becomes visible.
    pub fn blob(&self, r: &Reference, desc: &Descriptor, cache: &BlobCache) -> Result<PathBuf> {
        self.blob_with(r, desc, cache, &|_| {})
    }

    /// [`Client::blob`], telling `bytes` how many bytes are on disk as they arrive.
    pub fn blob_with(
        &self,
        r: &Reference,
        desc: &Descriptor,
        cache: &BlobCache,
        bytes: &dyn Fn(u64),
    ) -> Result<PathBuf> {
        let url = format!(
            "{}{}/blobs/{}",
            self.base(&Target::of(r)),
            r.repository,
            desc.digest
        );
        let resumed = std::cell::Cell::new(false);
        let fetch = || {
            cache.fetch::<ClientError>(&desc.digest, Some(desc.size), |partial| {
                resumed.set(partial.offset > 0);
                self.download_retrying(r, &url, desc, partial.file, bytes)
            })
        };
        match fetch() {
            // A partial file left by an earlier process may not be a prefix of this blob
            // (a crash mid-write, another registry's bytes): the cache dropped it, so one
            // fresh download settles whether the registry itself is at fault.
            Err(ClientError::Cache(CacheError::Verify { .. })) if resumed.get() => fetch(),
            other => other,
        }
    }

    /// Download a blob into `file` (unverified: the caller checks it), continuing from the
    /// file's length, with retries after transient failures.
    pub(crate) fn blob_to_file(
        &self,
        r: &Reference,
        desc: &Descriptor,
        file: &mut File,
    ) -> Result<()> {
        let url = format!(
            "{}{}/blobs/{}",
            self.base(&Target::of(r)),
            r.repository,
            desc.digest
        );
        self.download_retrying(r, &url, desc, file, &|_| {})
    }

    fn download_retrying(
        &self,
        r: &Reference,
        url: &str,
        desc: &Descriptor,
        file: &mut File,
        bytes: &dyn Fn(u64),
    ) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.download(r, url, desc, file, bytes) {
                Err(e) if e.is_transient() && attempt < self.opts.retries => {
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt: continue from the partial file's current length.
    fn download(
        &self,
        r: &Reference,
        url: &str,
        desc: &Descriptor,
        file: &mut File,
        bytes: &dyn Fn(u64),
    ) -> Result<()> {
        let write_err = |source| ClientError::Write {
            digest: desc.digest,
            source,
        };
        let mut offset = file.metadata().map_err(write_err)?.len();
        if offset >= desc.size {
            return Ok(()); // complete: the cache verifies it
        }
        let resp = self.send(&Target::of(r), url, None, Some(offset))?;
        match resp.status().as_u16() {
            206 if offset > 0 => {}
            200 => {
                // Range ignored: start over.
                file.set_len(0).map_err(write_err)?;
                offset = 0;
            }
            416 => {
                file.set_len(0).map_err(write_err)?;
                return Err(ClientError::Range {
                    url: url.to_string(),
                    status: 416,
                    offset,
                });
            }
            _ => return expect_ok(url, resp).map(|_| ()),
        }
        file.seek(SeekFrom::Start(offset)).map_err(write_err)?;
        // One byte more than announced is enough to fail verification; a registry that
        // streams forever cannot fill the disk.
        let mut body = resp.into_body().into_reader().take(desc.size - offset + 1);
        let mut counted = Counted {
            file,
            done: offset,
            bytes,
        };
        io::copy(&mut body, &mut counted).map_err(|source| ClientError::Body {
            url: url.to_string(),
            source,
        })?;
        Ok(())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        (self.opts.backoff * 2u32.saturating_pow(attempt)).min(Duration::from_secs(8))
    }

    /// GET with the stored authorization for this target; on 401, authenticate as the
    /// challenge says and try once more. Transient failures are retried with backoff.
    fn send(
        &self,
        t: &Target<'_>,
        url: &str,
        accept: Option<&str>,
        range_from: Option<u64>,
    ) -> Result<Response<ureq::Body>> {
        self.send_with(t, url, |authz| {
            let mut req = self.agent.get(url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if let Some(o) = range_from.filter(|&o| o > 0) {
                req = req.header("Range", format!("bytes={o}-"));
            }
            if let Some(a) = authz {
                req = req.header("Authorization", a);
            }
            req.call()
        })
    }

    /// Any request made by `call`, given the `Authorization` value to send (if any): the
    /// stored one for this target first; on 401, authenticate as the challenge says and call
    /// once more. Transient failures are retried with backoff, so `call` must be repeatable.
    fn send_with(
        &self,
        t: &Target<'_>,
        url: &str,
        call: impl Fn(Option<&str>) -> std::result::Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<Response<ureq::Body>> {
        let key = t.key();
        let mut authenticated = false;
        loop {
            let authz = self
                .auth
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .cloned();
            let resp = self.call_with_retries(url, || call(authz.as_deref()))?;
            let status = resp.status().as_u16();
            if status == 401 && !authenticated {
                let Some(challenge) = header(&resp, "www-authenticate") else {
                    return Err(self.refused(t, status));
                };
                let value = self.authenticate(t, &challenge)?;
                self.auth
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), value);
                authenticated = true;
                continue;
            }
            if status == 401 || status == 403 && authz.is_some() {
                return Err(self.refused(t, status));
            }
            return Ok(resp);
        }
    }

    /// The error for a registry that still says no after authenticating: without
    /// credentials (an anonymous token grants nothing) it asks for some; with them, it
    /// refused those, and the error says whose and from where.
    fn refused(&self, t: &Target<'_>, status: u16) -> ClientError {
        match self.creds.lookup(t.registry) {
            None => ClientError::NoCredentials {
                registry: t.registry.to_string(),
            },
            Some((c, source)) => ClientError::AuthRejected {
                registry: t.registry.to_string(),
                status,
                username: c.username.clone(),
                source_of: source.clone(),
            },
        }
    }

    /// Answer a challenge with an `Authorization` value.
    fn authenticate(&self, t: &Target<'_>, challenge: &str) -> Result<String> {
        let creds = self.creds.get(t.registry);
        match Challenge::parse(challenge).map_err(|source| ClientError::Challenge {
            registry: t.registry.to_string(),
            source,
        })? {
            Challenge::Basic { .. } => {
                let c = creds.ok_or_else(|| ClientError::NoCredentials {
                    registry: t.registry.to_string(),
                })?;
                Ok(auth::basic_header(&c.username, &c.password))
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                // A push asks for pull and push of its repository whatever the challenge
                // names (registries challenge a HEAD with pull alone, then refuse the upload).
                // Otherwise the challenge's scope when it names one; a pull of the repository
                // otherwise; none for `/v2/` itself (a login check).
                let scope = match (t.push, t.repository) {
                    (true, Some(repo)) => Some(auth::push_scope(repo)),
                    _ => scope.or_else(|| t.repository.map(auth::pull_scope)),
                };
                let url = auth::token_url(&realm, service.as_deref(), scope.as_deref());
                let resp = self.call_with_retries(&url, || {
                    let mut req = self.agent.get(&url);
                    if let Some(c) = creds {
                        req = req.header(
                            "Authorization",
                            auth::basic_header(&c.username, &c.password),
                        );
                    }
                    req.call()
                })?;
                match resp.status().as_u16() {
                    200 => {}
                    s @ (401 | 403) => return Err(self.refused(t, s)),
                    _ => return expect_ok(&url, resp).map(|_| String::new()),
                }
                let bytes = read_limited(&url, resp)?;
                let token: auth::TokenResponse =
                    serde_json::from_slice(&bytes).map_err(|source| ClientError::Json {
                        url: url.clone(),
                        source,
                    })?;
                let token = token.into_token().ok_or(ClientError::NoToken { url })?;
                Ok(format!("Bearer {token}"))
            }
        }
    }

    fn call_with_retries(
        &self,
        url: &str,
        call: impl Fn() -> std::result::Result<Response<ureq::Body>, ureq::Error>,
    ) -> Result<Response<ureq::Body>> {
        let mut attempt = 0;
        loop {
            let err = match call() {
                Ok(resp) => {
                    let s = resp.status().as_u16();
                    if (s == 429 || s >= 500) && attempt < self.opts.retries {
                        ClientError::Status {
                            url: url.to_string(),
                            status: s,
                            detail: String::new(),
                        }
                    } else {
                        return Ok(resp);
                    }
                }
                Err(source) => ClientError::Http {
                    url: url.to_string(),
                    source,
                },
            };
            if !(err.is_transient() && attempt < self.opts.retries) {
                return Err(err);
            }
            std::thread::sleep(self.backoff(attempt));
            attempt += 1;
        }
    }
}

/// What a request is for: a registry, the repository a token must grant pulls (or pushes)
/// of (none for `/v2/` itself). Authorizations are remembered per target.
struct Target<'a> {
    /// Normalised, as in references (`docker.io`, `host:port`).
    registry: &'a str,
    repository: Option<&'a str>,
    /// Needs `pull,push`: a token for a pull alone would be refused.
    push: bool,
}

impl<'a> Target<'a> {
    fn of(r: &'a Reference) -> Self {
        Target {
            registry: &r.registry,
            repository: Some(&r.repository),
            push: false,
        }
    }

    fn push_of(r: &'a Reference) -> Self {
        Target {
            push: true,
            ..Target::of(r)
        }
    }

    /// The key of the remembered authorization.
    fn key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.registry,
            self.repository.unwrap_or(""),
            if self.push { "push" } else { "pull" }
        )
    }
}

fn header(resp: &Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// 2xx passes; anything else becomes `Status` with the registry's error code, if any.
fn expect_ok(url: &str, resp: Response<ureq::Body>) -> Result<Response<ureq::Body>> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<RegistryError>,
    }
    #[derive(serde::Deserialize)]
    struct RegistryError {
        code: String,
        #[serde(default)]
        message: String,
    }
    let mut body = resp.into_body();
    let detail = body
        .with_config()
        .limit(64 * 1024)
        .read_to_vec()
        .ok()
        .and_then(|b| serde_json::from_slice::<Errors>(&b).ok())
        .and_then(|e| e.errors.into_iter().next())
        .map(|e| format!(": {} {}", e.code, e.message).trim_end().to_string())
        .unwrap_or_default();
    Err(ClientError::Status {
        url: url.to_string(),
        status,
        detail,
    })
}

fn read_limited(url: &str, resp: Response<ureq::Body>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut r = resp.into_body().into_reader().take(MAX_DOCUMENT + 1);
    r.read_to_end(&mut buf)
        .map_err(|source| ClientError::Body {
            url: url.to_string(),
            source,
        })?;
    if buf.len() as u64 > MAX_DOCUMENT {
        return Err(ClientError::TooLarge {
            url: url.to_string(),
        });
    }
    Ok(buf)
}
