//! Shared use: `read_at` from many threads at once on one `Archive`, and opening a filesystem
//! that starts at a non-zero offset inside a bigger file (as in a SIF image).
#![allow(clippy::print_stdout)]

mod read_support;

use std::fs;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use read_support::*;
use sifr_squashfs::read::{Archive, Error};

#[test]
fn read_at_from_eight_threads_matches_source() {
    let Some((_tmp, src, a)) = packed_tree("threads", &["-comp", "gzip", "-b", "64K"]) else {
        return;
    };
    let a = Arc::new(a);
    let files = [
        "big.bin",
        "blocks-and-tail",
        "sparse",
        "dir/nested/file",
        "small.txt",
        "links/b",
    ];
    let want: Arc<Vec<Vec<u8>>> = Arc::new(
        files
            .iter()
            .map(|f| fs::read(src.join(f)).unwrap())
            .collect(),
    );
    let inodes: Arc<Vec<_>> = Arc::new(
        files
            .iter()
            .map(|f| a.lookup(f).unwrap().unwrap())
            .collect(),
    );
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (a, want, inodes) = (Arc::clone(&a), Arc::clone(&want), Arc::clone(&inodes));
            std::thread::spawn(move || {
                let mut rng = Rng(0x1234_5678 + t * 77);
                for _ in 0..400 {
                    let k = rng.below(inodes.len() as u64) as usize;
                    let data = &want[k];
                    let off = rng.below(data.len() as u64 + 1);
                    let len = rng.below(200_000) as usize;
                    let mut buf = vec![0u8; len];
                    let n = a.read_at(&inodes[k], off, &mut buf).unwrap();
                    let lo = off as usize;
                    let hi = (lo + len).min(data.len());
                    assert_eq!(n, hi - lo);
                    assert!(
                        buf[..n] == data[lo..hi],
                        "thread {t} file {} at {off}+{len}",
                        files[k]
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn image_at_offset_inside_bigger_file_opens_and_reads() {
    if !have_mksquashfs("offset") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("hello"), pattern(11, 200_000)).unwrap();
    let img = tmp.path().join("img");
    pack(&src, &img, &[]);
    let raw = fs::read(&img).unwrap();
    let container = tmp.path().join("container.sif");
    let mut f = fs::File::create(&container).unwrap();
    let offset = 32_768 + 123;
    f.write_all(&vec![0xAB; offset]).unwrap();
    f.write_all(&raw).unwrap();
    f.write_all(&[0xCD; 5000]).unwrap(); // trailing objects after the partition
    drop(f);
    let a = Archive::open(fs::File::open(&container).unwrap(), offset as u64).unwrap();
    let i = a.lookup("hello").unwrap().unwrap();
    assert!(read_all(&a, &i, 7000) == pattern(11, 200_000));
    // At offset 0 the same file is not a squashfs image.
    let err =
        Archive::open(fs::File::open(&container).unwrap(), 0).expect_err("opened at offset 0");
    assert!(
        matches!(err, Error::BadMagic { found: 0xABAB_ABAB }),
        "{err:?}"
    );
    // Past the end of the file: an error, no panic.
    let err = Archive::open(fs::File::open(&container).unwrap(), 1 << 40)
        .expect_err("opened past the end");
    assert!(matches!(err, Error::Truncated { .. }), "{err:?}");
}

/// Throughput numbers for the report; run with `--ignored --nocapture` (release for real numbers).
#[test]
#[ignore]
fn measure_throughput() {
    if !have_mksquashfs("throughput") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("tree")).unwrap();
    fs::write(src.join("big"), pattern(12, 128 << 20)).unwrap();
    for d in 0..100 {
        let dir = src.join(format!("tree/d{d:03}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..100 {
            fs::write(dir.join(format!("f{f:03}")), b"x").unwrap();
        }
    }
    for comp in ["gzip", "zstd", "xz", "lz4"] {
        let img = tmp.path().join(format!("img-{comp}"));
        pack(&src, &img, &["-comp", comp]);
        let a = open(&img);
        let big = a.lookup("big").unwrap().unwrap();
        let t = Instant::now();
        let data = read_all(&a, &big, 128 * 1024);
        let s = t.elapsed().as_secs_f64();
        assert_eq!(data.len(), 128 << 20);
        let t = Instant::now();
        let n = open(&img).walk().unwrap().len();
        let w = t.elapsed().as_secs_f64();
        println!(
            "{comp}: read 128 MiB sequentially at {:.0} MiB/s; walked {n} entries in {:.1} ms",
            256.0 / s,
            w * 1e3
        );
    }
}
