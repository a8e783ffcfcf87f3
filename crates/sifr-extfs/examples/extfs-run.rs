//! Serves an ext2/ext3 image on a directory while one command runs, then unmounts it and
//! waits for the server to write the image back: what the runtime does, by hand, for
//! benchmarks (`bench/overlay_ext3.sh`) and trials.
//!
//! `extfs-run [--ro] [--offset N] [--no-writeback-cache] IMAGE MOUNTPOINT -- COMMAND [ARG]...`; exits with the
//! command's status (1 if the server did not end cleanly). Needs what `mount(2)` of FUSE
//! needs (root, or a user namespace with /dev/fuse usable).
#![allow(clippy::print_stderr, clippy::exit)]

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut writable, mut offset, mut pos) = (true, 0u64, Vec::new());
    let mut opts = sifr_extfs::Options::default();
    let mut cmd = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ro" => writable = false,
            "--no-writeback-cache" => opts.writeback_cache = false,
            "--offset" => offset = args.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            "--" => {
                cmd = args.by_ref().collect();
                break;
            }
            _ => pos.push(a),
        }
    }
    let ([image, mnt], [prog, rest @ ..]) = (&pos[..], &cmd[..]) else {
        eprintln!(
            "usage: extfs-run [--ro] [--offset N] [--no-writeback-cache] IMAGE MOUNTPOINT -- COMMAND [ARG]..."
        );
        std::process::exit(2);
    };
    let mounted = match sifr_extfs::mount(&PathBuf::from(image), offset, writable, mnt, &opts) {
        Ok(m) => m,
        Err(e) => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(c) = src {
                s.push_str(&format!(": {c}"));
                src = c.source();
            }
            eprintln!("extfs-run: {s}");
            std::process::exit(1);
        }
    };
    let (pid, mounted) = sifr_sys::process::fork_server(mounted, |m| match m.serve() {
        Ok(()) => 0,
        Err(_) => 1,
    })
    .unwrap_or_else(|e| {
        eprintln!("extfs-run: fork: {e}");
        std::process::exit(1)
    });
    let mut h = mounted.into_handle(pid);
    if let Err(e) = h.wait_ready() {
        eprintln!("extfs-run: {e}");
        std::process::exit(1);
    }
    let status = Command::new(prog).args(rest).status();
    let served = h.unmount();
    let code = match status {
        Ok(s) => s.code().unwrap_or(1),
        Err(e) => {
            eprintln!("extfs-run: {prog}: {e}");
            127
        }
    };
    match served {
        Ok(s) if s.success() => std::process::exit(code),
        other => {
            eprintln!("extfs-run: the server did not end cleanly: {other:?}");
            std::process::exit(1)
        }
    }
}
