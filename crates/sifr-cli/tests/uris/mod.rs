//! What the image-URI tests (`image_uri.rs`, `image_uri_files.rs`) share: sifr with a
//! private cache, temporary directory and plain HTTP, and views of the cache's entries.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use crate::registries::sifr_in;

/// Whether this process may run containers the way these tests do (root: loop devices).
pub fn can_launch() -> bool {
    if sifr_sys::process::ids().0 != 0 {
        // CI runs the tests as root.
        sifr_testkit::skip("needs root (the action tests launch containers on loop devices)");
        return false;
    }
    true
}

/// `sifr ARGS` in `d` with the test's cache and plain HTTP to the registry (as a site would
/// set `APPTAINER_NOHTTPS` for a registry without TLS).
pub fn sifr_nohttps(d: &Path, args: &[&str]) -> Command {
    let mut c = sifr_in(d, &d.join("cache"), args);
    c.env("APPTAINER_NOHTTPS", "1").env("TMPDIR", d.join("tmp"));
    c
}

/// The entries of one kind of whole-image cache (dot-files are the cache's bookkeeping).
pub fn entries(d: &Path, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d.join("cache").join(kind))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn prepare(d: &Path) {
    std::fs::create_dir_all(d.join("tmp")).unwrap();
}

/// The names in a temporary directory, but for the launches' per-user runtime directory
/// (`sifr-UID`, node sharing's, which stays).
pub fn listing(dir: &Path) -> Vec<String> {
    let runtime = format!("sifr-{}", sifr_sys::process::ids().0);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| *n != runtime)
        .collect()
}

/// The Go name of the host's architecture, as images and the test layout name it.
pub fn host_goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
