//! Warm read-path comparison: our FUSE server vs the kernel's squashfs (loop mount) vs
//! `squashfuse_ll`, on one generated image of ~10k files. Needs root (loop and FUSE mounts in
//! the host namespace, all removed at the end).
//!
//! `cargo run --release -p sifr-squashfs --example fuse_bench [files]`
//!
//! Each figure is the median of 5 runs after one warm-up run: `find M -type f | wc -l` (the
//! metadata path) and `tar -cf - -C M . | wc -c` (every byte).
#![allow(unsafe_code, clippy::print_stdout, clippy::print_stderr, clippy::exit)]

#[path = "../tests/fuse_common/mod.rs"]
mod fuse_common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use sifr_squashfs::fuse;

fn sh(cmd: &str) -> Result<String, String> {
    let o = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!("`{cmd}`: {}", String::from_utf8_lossy(&o.stderr)));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Wall time in ms of the first run of `cmd` and the median of 5 more; also its output.
fn time(cmd: &str) -> Result<(f64, f64, String), String> {
    let s = Instant::now();
    let out = sh(cmd)?;
    let first = s.elapsed().as_secs_f64() * 1e3;
    let mut t = Vec::new();
    for _ in 0..5 {
        let s = Instant::now();
        sh(cmd)?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    Ok((first, t[2], out))
}

fn measure(name: &str, mnt: &Path) -> Result<(), String> {
    let m = mnt.display();
    let (find1, find, n) = time(&format!("find {m} -type f | wc -l"))?;
    let (ls1, ls, _) = time(&format!("find {m} -printf '%s %m %u\\n' | wc -l"))?;
    let (tar1, tar, bytes) = time(&format!("tar -cf - -C {m} . | wc -c"))?;
    println!(
        "{name:<16} first/warm ms: find -type f {find1:6.1} / {find:6.1} ({n} files)   \
         find -printf (stat) {ls1:6.1} / {ls:6.1}   tar {tar1:6.1} / {tar:6.1} ({} MiB)",
        bytes.parse::<u64>().unwrap_or(0) >> 20
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("fuse_bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let files: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::Builder::new()
        .prefix("sifr-fuse-bench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let src = dir.path().join("src");
    for i in 0..files {
        let d = src.join(format!("d{:03}/s{}", i / 100, i % 7));
        fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        let size = ((i * 7919) % 16_384) as usize;
        fs::write(d.join(format!("f{i:06}")), fuse_common::content(i, size))
            .map_err(|e| e.to_string())?;
    }
    let img = dir.path().join("bench.sqfs");
    sh(&format!(
        "mksquashfs {} {} -noappend -quiet -no-progress",
        src.display(),
        img.display()
    ))?;
    println!(
        "image: {} files, {} MiB (mksquashfs, gzip)",
        files,
        fs::metadata(&img).map_err(|e| e.to_string())?.len() >> 20
    );
    let mk = |n: &str| -> Result<std::path::PathBuf, String> {
        let p = dir.path().join(n);
        fs::create_dir_all(&p).map_err(|e| e.to_string())?;
        Ok(p)
    };

    measure("plain dir", &src)?;

    let k = mk("kernel")?;
    sh(&format!(
        "mount -t squashfs -o loop,ro {} {}",
        img.display(),
        k.display()
    ))?;
    let r = measure("kernel squashfs", &k);
    sh(&format!("umount {}", k.display()))?;
    r?;

    let s = mk("squashfuse")?;
    match sh(&format!("squashfuse_ll {} {}", img.display(), s.display())) {
        Ok(_) => {
            let r = measure("squashfuse_ll", &s);
            sh(&format!("umount {}", s.display()))?;
            r?;
        }
        Err(e) => println!("squashfuse_ll: not measured ({e})"),
    }

    let o = mk("sifr")?;
    let start = Instant::now();
    // SIFR_BENCH_THREADS: server threads (default: the library's choice).
    let opts = fuse::Options {
        threads: std::env::var("SIFR_BENCH_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
        ..Default::default()
    };
    let handle = fuse_common::mount_forked(&img, &o, &opts)?;
    println!(
        "sifr fuse: mounted and ready in {:.2} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let r = measure("sifr fuse", &o);
    let status = handle.unmount().map_err(|e| fuse_common::chain(&e))?;
    r?;
    println!("sifr fuse server exited: {status}");
    Ok(())
}
