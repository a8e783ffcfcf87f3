//! Hostile and corrupt images: flipped bytes, truncations and targeted damage (bad magic, huge
//! counts, a directory containing itself, fragment index out of range, truncated tables) must
//! end in an `Err`, never a panic, a hang or a huge allocation.

mod read_support;

use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use read_support::*;
use sifr_squashfs::read::{Archive, Error, ExtractOptions, FileType, InodeKind};

fn small_tree(root: &Path) {
    fs::create_dir_all(root.join("loop/child")).unwrap();
    fs::create_dir_all(root.join("wide")).unwrap();
    fs::write(root.join("tail"), pattern(1, 5000)).unwrap();
    fs::write(root.join("blocks"), pattern(2, 9000)).unwrap();
    fs::write(root.join("loop/child/f"), b"child").unwrap();
    std::os::unix::fs::symlink("tail", root.join("link")).unwrap();
    fs::hard_link(root.join("tail"), root.join("tail2")).unwrap();
    for i in 0..300 {
        fs::write(root.join(format!("wide/{i:03}")), b"").unwrap();
    }
    if user_xattrs_supported(root) {
        rustix::fs::setxattr(
            root.join("tail"),
            "user.x",
            b"value",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
}

/// A valid image (`-b 4K` so files span blocks) and its bytes; None when mksquashfs is missing.
fn valid_image(test: &str, args: &[&str]) -> Option<Vec<u8>> {
    if !have_mksquashfs(test) {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    small_tree(&src);
    let img = tmp.path().join("img");
    let mut all = vec!["-b", "4K"];
    all.extend_from_slice(args);
    pack(&src, &img, &all);
    Some(fs::read(&img).unwrap())
}

/// Uses every reader entry point on `bytes`; returns whether all of it succeeded.
fn exercise(bytes: &[u8], extract: bool) -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    fs::write(&img, bytes).unwrap();
    let Ok(a) = Archive::open(fs::File::open(&img).unwrap(), 0) else {
        return false;
    };
    let mut ok = true;
    match a.walk() {
        Ok(entries) => {
            for e in entries {
                if e.inode.file_type() == FileType::File {
                    let mut buf = vec![0u8; 3000];
                    let mut off = 0;
                    loop {
                        match a.read_at(&e.inode, off, &mut buf) {
                            Ok(0) => break,
                            Ok(n) => off += n as u64,
                            Err(_) => {
                                ok = false;
                                break;
                            }
                        }
                    }
                }
                ok &= a.xattrs(&e.inode).is_ok();
            }
        }
        Err(_) => ok = false,
    }
    for n in 1..=8 {
        ok &= a.inode(n).is_ok();
    }
    ok &= a.lookup("loop/child/f").is_ok();
    if extract {
        ok &= a
            .extract_to(
                tmp.path().join("out"),
                &ExtractOptions {
                    owners: false,
                    devices: false,
                    xattrs: true,
                },
            )
            .is_ok();
    }
    ok
}

/// Runs `exercise` on another thread and fails the test if it takes longer than 20 s.
fn bounded(bytes: Vec<u8>, extract: bool) -> bool {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(exercise(&bytes, extract));
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(ok) => ok,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("reader did not finish within 20 s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("reader panicked"),
    }
}

#[test]
fn valid_small_image_passes_the_exercise() {
    for args in [
        &["-noI", "-noD", "-noF", "-noX"][..],
        &["-comp", "gzip"][..],
    ] {
        if let Some(img) = valid_image("exercise", args) {
            assert!(bounded(img, true), "valid image {args:?} must read cleanly");
        }
    }
}

#[test]
fn every_truncation_fails_cleanly() {
    let Some(img) = valid_image("truncation", &["-comp", "gzip"]) else {
        return;
    };
    // mksquashfs pads to 4 KiB; only cuts inside `bytes_used` damage the filesystem.
    let used = u64::from_le_bytes(img[40..48].try_into().unwrap()) as usize;
    let step = (used / 200).max(1);
    for len in (0..used).step_by(step).chain([used - 1, 95, 96, 97]) {
        assert!(
            !bounded(img[..len].to_vec(), false),
            "truncated to {len} still reads cleanly"
        );
    }
}

#[test]
fn byte_flips_across_the_metadata_never_panic() {
    for args in [
        &["-noI", "-noD", "-noF", "-noX"][..],
        &["-comp", "zstd"][..],
    ] {
        let Some(img) = valid_image("flips", args) else {
            return;
        };
        let a = Archive::open(fs::File::open(write_tmp(&img).path()).unwrap(), 0).unwrap();
        let start = a.superblock().inode_table as usize;
        // Every byte of the superblock, then a sweep over the tables.
        let positions =
            (0..96).chain((start..img.len()).step_by(((img.len() - start) / 300).max(1)));
        for (k, pos) in positions.enumerate() {
            for x in [0xff, 0x80, 0x01] {
                let mut m = img.clone();
                m[pos] ^= x;
                bounded(m, k % 25 == 0);
            }
        }
    }
}

fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, bytes).unwrap();
    f
}

fn image_for_proptest() -> Option<Vec<u8>> {
    static IMG: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    IMG.get_or_init(|| valid_image("proptest", &["-noI", "-noD", "-noF"]))
        .clone()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, .. ProptestConfig::default() })]
    #[test]
    fn random_damage_never_panics(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let Some(mut img) = image_for_proptest() else { return Ok(()) };
        for (i, v) in edits {
            let pos = i.index(img.len());
            img[pos] = v;
        }
        bounded(img, false);
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn bad_magic_is_reported() {
    let Some(mut img) = valid_image("bad magic", &[]) else {
        return;
    };
    img[0] = b'x';
    let f = write_tmp(&img);
    let err = Archive::open(fs::File::open(f.path()).unwrap(), 0).unwrap_err();
    assert!(matches!(err, Error::BadMagic { .. }), "{err}");
}

#[test]
fn huge_inode_count_is_refused_without_allocating() {
    let Some(mut img) = valid_image("huge inode count", &["-exports"]) else {
        return;
    };
    put32(&mut img, 4, u32::MAX);
    let f = write_tmp(&img);
    let err = Archive::open(fs::File::open(f.path()).unwrap(), 0).unwrap_err();
    assert!(
        matches!(err, Error::Truncated { .. } | Error::BadTable { .. }),
        "{err}"
    );
}

#[test]
fn fragment_index_out_of_range_is_an_error() {
    let Some(mut img) = valid_image("fragment range", &[]) else {
        return;
    };
    put32(&mut img, 16, 0); // fragment count 0 while files use fragments
    let f = write_tmp(&img);
    let a = Archive::open(fs::File::open(f.path()).unwrap(), 0).unwrap();
    let err = a.lookup("loop/child/f").unwrap_err();
    assert!(err.to_string().contains("fragment"), "{err}");
}

#[test]
fn truncated_tables_fail_at_open() {
    let Some(img) = valid_image("truncated tables", &["-exports"]) else {
        return;
    };
    let f = write_tmp(&img);
    let sb = Archive::open(fs::File::open(f.path()).unwrap(), 0)
        .unwrap()
        .superblock()
        .clone();
    for pos in [
        sb.id_table,
        sb.fragment_table,
        sb.export_table,
        sb.directory_table,
        sb.inode_table + 3,
    ] {
        let f = write_tmp(&img[..pos as usize]);
        let err = Archive::open(fs::File::open(f.path()).unwrap(), 0).expect_err("opened");
        assert!(
            matches!(err, Error::Truncated { .. }),
            "cut at {pos}: {err:?}"
        );
    }
}

#[test]
fn directory_containing_itself_is_a_cycle_error() {
    let Some(mut img) = valid_image("dir cycle", &["-noI", "-noD", "-noF", "-noX"]) else {
        return;
    };
    let f = write_tmp(&img);
    let a = Archive::open(fs::File::open(f.path()).unwrap(), 0).unwrap();
    let dl = a.lookup("loop").unwrap().unwrap();
    assert!(matches!(dl.kind, InodeKind::Directory(_)));
    // Find loop's listing in the (uncompressed) directory table: the header whose single
    // entry is named `child`.
    let table = a.superblock().directory_table as usize;
    let child = table + img[table..].windows(5).position(|w| w == b"child").unwrap();
    let header = child - 8 - 12;
    put32(&mut img, header + 4, (dl.inode_ref >> 16) as u32); // start block
    put32(&mut img, header + 8, dl.number); // base inode number
    img[header + 12..header + 14].copy_from_slice(&((dl.inode_ref & 0xffff) as u16).to_le_bytes());
    img[header + 14..header + 16].copy_from_slice(&0u16.to_le_bytes()); // delta 0
    let f = write_tmp(&img);
    let a = Archive::open(fs::File::open(f.path()).unwrap(), 0).unwrap();
    let err = a.walk().unwrap_err();
    assert!(matches!(err, Error::DirectoryCycle { .. }), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let err = a
        .extract_to(tmp.path().join("out"), &ExtractOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::DirectoryCycle { .. }), "{err}");
    // Lookups through the loop are finite and still work.
    assert!(
        a.lookup("loop/child/child/child")
            .unwrap()
            .unwrap()
            .is_dir()
    );
}
