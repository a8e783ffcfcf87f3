//! The reader against images made by mksquashfs from a fixture tree: every compressor, block
//! sizes 4 KiB and 1 MiB, fragments off and forced. Listing, metadata, xattrs and random-offset
//! contents must match the source tree.

mod read_support;

use std::path::Path;

use read_support::*;
use sifr_squashfs::read::{Compressor, CompressorOptions, FileType, flags};

fn roundtrip(test: &str, args: &[&str]) -> Option<sifr_squashfs::read::Archive> {
    if !have_mksquashfs(test) {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    build_tree(&src);
    let img = tmp.path().join("img.sqfs");
    pack(&src, &img, args);
    let a = open(&img);
    let n = check_against_source(&a, &src, 0x5eed ^ args.len() as u64);
    assert!(n > 750, "only {n} objects checked");
    Some(a)
}

#[test]
fn gzip_image_matches_source() {
    if let Some(a) = roundtrip("gzip", &["-comp", "gzip"]) {
        assert_eq!(a.superblock().compressor, Compressor::Gzip);
    }
}

#[test]
fn zstd_image_matches_source() {
    if let Some(a) = roundtrip("zstd", &["-comp", "zstd", "-Xcompression-level", "5"]) {
        assert_eq!(a.superblock().compressor, Compressor::Zstd);
        assert_eq!(
            a.compressor_options(),
            Some(&CompressorOptions::Zstd { level: 5 })
        );
    }
}

#[test]
fn xz_image_matches_source() {
    if let Some(a) = roundtrip("xz", &["-comp", "xz"]) {
        assert_eq!(a.superblock().compressor, Compressor::Xz);
    }
}

#[test]
fn xz_with_bcj_filter_matches_source() {
    roundtrip("xz-bcj", &["-comp", "xz", "-Xbcj", "x86"]);
}

#[test]
fn lz4_image_matches_source() {
    if let Some(a) = roundtrip("lz4", &["-comp", "lz4", "-Xhc"]) {
        assert_eq!(a.superblock().compressor, Compressor::Lz4);
        assert!(matches!(
            a.compressor_options(),
            Some(CompressorOptions::Lz4 { .. })
        ));
    }
}

#[test]
fn no_fragments_image_matches_source() {
    if let Some(a) = roundtrip("no-fragments", &["-no-fragments"]) {
        assert!(a.superblock().has(flags::NO_FRAGMENTS));
    }
}

#[test]
fn always_fragments_image_matches_source() {
    roundtrip("always-fragments", &["-always-use-fragments"]);
}

#[test]
fn block_size_4k_image_matches_source() {
    if let Some(a) = roundtrip("4k", &["-b", "4K", "-comp", "zstd"]) {
        assert_eq!(a.superblock().block_size, 4096);
    }
}

#[test]
fn block_size_1m_image_matches_source() {
    if let Some(a) = roundtrip("1m", &["-b", "1M", "-comp", "lz4"]) {
        assert_eq!(a.superblock().block_size, 1 << 20);
    }
}

#[test]
fn uncompressed_image_matches_source() {
    roundtrip("uncompressed", &["-noI", "-noD", "-noF", "-noX"]);
}

#[test]
fn image_without_export_table_still_lists_but_has_no_inode_numbers() {
    if let Some(a) = roundtrip("no-exports", &["-no-exports"]) {
        assert!(matches!(
            a.inode(1),
            Err(sifr_squashfs::read::Error::NoExportTable { .. })
        ));
    }
}

#[test]
fn lookup_finds_paths_and_export_table_maps_numbers() {
    if !have_mksquashfs("lookup") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    build_tree(&src);
    let img = tmp.path().join("img");
    pack(&src, &img, &["-exports"]);
    let a = open(&img);
    for p in [
        "small.txt",
        "/dir/nested/file",
        "many/entry-0699-nnnnnnnnnnnnnnnnnnn",
        "links/b",
        "./dir/../small.txt",
    ] {
        let i = a
            .lookup(p)
            .unwrap()
            .unwrap_or_else(|| panic!("`{p}` not found"));
        assert_eq!(i.file_type(), FileType::File, "{p}");
        // Inode number -> reference -> same inode.
        let again = a.inode(i.number).unwrap();
        assert_eq!(again.inode_ref, i.inode_ref);
    }
    // Every entry of the big directory is found by name (through the directory index).
    let many = a.lookup("many").unwrap().unwrap();
    let entries = a.read_dir(&many).unwrap();
    assert_eq!(entries.len(), 700);
    for e in &entries {
        let found = a.lookup_in(&many, &e.name).unwrap().unwrap();
        assert_eq!(&found, e);
    }
    for missing in [
        "entry-",
        "entry-0699-nnnnnnnnnnnnnnnnnnnn",
        "zzz",
        "0",
        "entry-0350",
    ] {
        assert!(
            a.lookup_in(&many, missing.as_bytes()).unwrap().is_none(),
            "{missing}"
        );
    }
    assert!(a.lookup("small.txt/x").unwrap().is_none());
    assert!(a.lookup("nope/x").unwrap().is_none());
    assert!(
        a.lookup(Path::new("deep").join("level0/level1"))
            .unwrap()
            .unwrap()
            .is_dir()
    );
    let root = a.root().unwrap();
    assert_eq!(a.lookup("/").unwrap().unwrap().inode_ref, root.inode_ref);
    assert_eq!(a.lookup("..").unwrap().unwrap().inode_ref, root.inode_ref);
    let sym = a.lookup("sym-rel").unwrap().unwrap();
    assert_eq!(a.read_link(&sym).unwrap(), Path::new("small.txt"));
    let err = a.read_at(&sym, 0, &mut [0u8; 4]).unwrap_err();
    assert_not_a_regular_file(&err);
}

#[test]
fn lzo_image_is_reported_as_unsupported() {
    if !have_mksquashfs("lzo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"data").unwrap();
    let img = tmp.path().join("img");
    let out = std::process::Command::new("mksquashfs")
        .args([src.as_os_str(), img.as_os_str()])
        .args(["-noappend", "-quiet", "-no-progress", "-comp", "lzo"])
        .output()
        .unwrap();
    if !out.status.success() {
        // Debian's squashfs-tools writes lzo.
        sifr_testkit::skip("lzo: this mksquashfs cannot write lzo");
        return;
    }
    let err =
        sifr_squashfs::read::Archive::open(std::fs::File::open(&img).unwrap(), 0).unwrap_err();
    assert!(
        matches!(
            err,
            sifr_squashfs::read::Error::UnsupportedCompressor { id: 3, .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("lzo"), "{err}");
}
