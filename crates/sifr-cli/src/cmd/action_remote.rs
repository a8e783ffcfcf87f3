//! The action flags about fetching the image rather than running it: registry logins
//! (`--docker-login`, `--authfile`, ...), plain HTTP (`--no-https`), the cache
//! (`--disable-cache`), the temporary directory (`--tmpdir`) and encrypted images
//! (`--passphrase`, `--pem-path`). Apptainer reads them only when the image is a URI it must
//! pull and convert (or an encrypted SIF); for a local file or directory they change nothing,
//! in Apptainer as in sifr. They are kept here, typed, for the image-URI launches.

use std::path::PathBuf;

use clap::Args;

use super::action_env::{Slot, Twin};

/// See the module docs. Names and meanings are Apptainer's.
#[derive(Debug, Clone, Default, Args)]
pub struct RemoteFlags {
    /// Do not use or create cached images or blobs.
    #[arg(long)]
    pub disable_cache: bool,
    /// Docker-style auth file with the registry logins (default: the one `registry login` writes).
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Ask for a registry user name and password on the terminal.
    #[arg(long)]
    pub docker_login: bool,
    /// Registry user name (prefer --docker-login or `registry login`).
    #[arg(long, hide = true, value_name = "USER")]
    pub docker_username: Option<String>,
    /// Registry password (prefer --docker-login or `registry login`).
    #[arg(long, hide = true, value_name = "PASSWORD")]
    pub docker_password: Option<String>,
    /// The Docker daemon to pull `docker-daemon:` images from.
    #[arg(long, value_name = "URL")]
    pub docker_host: Option<String>,
    /// Talk plain HTTP to the registry (a local or site registry without TLS).
    #[arg(long = "no-https", alias = "nohttps")]
    pub no_https: bool,
    /// Where temporary files of an image conversion go.
    #[arg(long, hide = true, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
    /// Ask for the passphrase of an encrypted image.
    #[arg(long)]
    pub passphrase: bool,
    /// The RSA private key (PEM) of an encrypted image.
    #[arg(long, value_name = "FILE")]
    pub pem_path: Option<PathBuf>,
}

/// The twins of [`RemoteFlags`], Apptainer's `EnvKeys` for each. `--authfile` and `--tmpdir`
/// have none here: their variables (`APPTAINER_AUTH_FILE`, `APPTAINER_TMPDIR`) are settings,
/// which the flags override.
pub const REMOTE_TWINS: &[Twin] = &[
    Twin {
        flag: "disable-cache",
        keys: &["DISABLE_CACHE"],
        doc: "Do not use the image cache.",
        slot: |f| Slot::Switch(&mut f.remote.disable_cache),
    },
    Twin {
        flag: "docker-login",
        keys: &["DOCKER_LOGIN"],
        doc: "Ask for registry credentials.",
        slot: |f| Slot::Switch(&mut f.remote.docker_login),
    },
    Twin {
        flag: "docker-username",
        keys: &["DOCKER_USERNAME"],
        doc: "Registry user name.",
        slot: |f| Slot::Text(&mut f.remote.docker_username),
    },
    Twin {
        flag: "docker-password",
        keys: &["DOCKER_PASSWORD"],
        doc: "Registry password.",
        slot: |f| Slot::Text(&mut f.remote.docker_password),
    },
    Twin {
        flag: "docker-host",
        keys: &["DOCKER_HOST"],
        doc: "The Docker daemon for `docker-daemon:` images.",
        slot: |f| Slot::Text(&mut f.remote.docker_host),
    },
    Twin {
        flag: "no-https",
        keys: &["NOHTTPS", "NO_HTTPS"],
        doc: "Plain HTTP to the registry.",
        slot: |f| Slot::Switch(&mut f.remote.no_https),
    },
];

impl RemoteFlags {
    /// Log, for `--debug`, the flags that the local image being run makes irrelevant.
    pub fn note_unused(&self, image: &std::path::Path) {
        let given = self.disable_cache
            || self.authfile.is_some()
            || self.docker_login
            || self.docker_username.is_some()
            || self.docker_password.is_some()
            || self.docker_host.is_some()
            || self.no_https
            || self.tmpdir.is_some()
            || self.passphrase
            || self.pem_path.is_some();
        if given {
            tracing::debug!(
                "`{}` is a local image: the registry, cache and encryption flags do not apply",
                image.display()
            );
        }
    }
}
