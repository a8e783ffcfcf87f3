//! Debian's `docker-registry` for tests, on a free port of 127.0.0.1 and killed on drop, and
//! what its TLS and htpasswd configuration needs: a throwaway CA (`ca.crt`), a server
//! certificate for 127.0.0.1 signed by it and an htpasswd file, made at test time with
//! `openssl` and `htpasswd` (apache2-utils). Used by the registry tests of `oci` and of the CLI.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::tools::run_ok;

/// The user and password the authenticated registries accept.
pub const USER: &str = "tester";
pub const PASSWORD: &str = "pa55word";

/// Write `ca.crt`, `server.crt`/`server.key` and an `htpasswd` for [`USER`] into `d`; the
/// registry configuration (`http.tls`, `auth.htpasswd`) that uses them.
pub fn tls_htpasswd_config(d: &Path) -> String {
    let openssl = |args: &[&str]| {
        run_ok(Command::new("openssl").current_dir(d).args(args));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=sifr test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    run_ok(
        Command::new("htpasswd")
            .current_dir(d)
            .args(["-Bbc", "htpasswd", USER, PASSWORD]),
    );
    format!(
        "  tls:\n    certificate: {0}/server.crt\n    key: {0}/server.key\nauth:\n  htpasswd:\n    realm: sifr-test\n    path: {0}/htpasswd\n",
        d.display()
    )
}

/// A running `docker-registry`; killed when dropped.
pub struct Registry {
    child: Child,
    pub port: u16,
    /// Its output, with the access log (one line per request).
    pub log: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Serve from `dir/data` with `extra` appended to the configuration (under `http:` first,
    /// so it may start with `  tls:`); waits until the port answers.
    pub fn start(dir: &Path, extra: &str) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let log = dir.join("registry.log");
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        let reg = Registry { child, port, log };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "registry did not start: {}",
                std::fs::read_to_string(&reg.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
