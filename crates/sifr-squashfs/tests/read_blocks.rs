//! `Archive::resolve` (paths with symlinks, as the kernel walks them inside the image) and
//! `Archive::read_block_into` (whole blocks into a reused buffer, as the FUSE server's
//! prefetch reads them) against images written in-process, with every compressor.

mod read_support;

use std::fs::File;
use std::path::{Path, PathBuf};

use sifr_squashfs::read::{Archive, Error, FileType, Inode};
use sifr_squashfs::{Compression, Entry, EntryKind, FileSource, Options, Writer};

const BLOCK: u32 = 4096;

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8)
        .collect()
}

/// Sizes around the block size: empty, tail only, whole blocks, blocks and a tail, and a file
/// whose middle block is zeros (stored sparse by writers that detect it).
fn files() -> Vec<(&'static str, Vec<u8>)> {
    let mut sparse = data(9, 3 * BLOCK as usize + 5);
    sparse[BLOCK as usize..2 * BLOCK as usize].fill(0);
    vec![
        ("empty", Vec::new()),
        ("tail", data(1, 100)),
        ("one", data(2, BLOCK as usize)),
        ("blocks", data(3, 4 * BLOCK as usize)),
        ("blocks-tail", data(4, 5 * BLOCK as usize + 1234)),
        ("sparse", sparse),
    ]
}

fn image(dir: &Path, compression: Compression) -> Archive {
    let img = dir.join(format!("{compression:?}.sqfs"));
    let opts = Options {
        block_size: BLOCK,
        compression,
        ..Options::default()
    };
    let mut w = Writer::new(File::create(&img).unwrap(), opts).unwrap();
    let dir_entry = || Entry::new(EntryKind::Directory, 0o755);
    let link = |t: &str| Entry::new(EntryKind::Symlink(PathBuf::from(t)), 0o777);
    for d in ["usr", "usr/lib", "etc"] {
        w.add(d, dir_entry()).unwrap();
    }
    let contents = files();
    for (name, bytes) in &contents {
        let e = Entry::new(EntryKind::File(FileSource::Bytes(bytes)), 0o644);
        w.add(format!("usr/lib/{name}"), e).unwrap();
    }
    // lib -> usr/lib (relative), lib64 -> /usr/lib (absolute), a chain, a link through `..`
    // above the root, a loop and a dangling link.
    w.add("lib", link("usr/lib")).unwrap();
    w.add("lib64", link("/usr/lib")).unwrap();
    w.add("usr/lib/chain", link("../../lib64/blocks")).unwrap();
    w.add("etc/up", link("../../../../usr/lib/tail")).unwrap();
    w.add("etc/abs", link("/usr/lib/one")).unwrap();
    w.add("etc/loop-a", link("loop-b")).unwrap();
    w.add("etc/loop-b", link("/etc/loop-a")).unwrap();
    w.add("etc/dangling", link("/no/such")).unwrap();
    w.finish().unwrap();
    Archive::open(File::open(&img).unwrap(), 0).unwrap()
}

fn read_all(a: &Archive, inode: &Inode) -> Vec<u8> {
    let mut out = vec![0u8; inode.size() as usize];
    let mut done = 0;
    while done < out.len() {
        let n = a.read_at(inode, done as u64, &mut out[done..]).unwrap();
        assert!(n > 0);
        done += n;
    }
    out
}

const COMPRESSIONS: [Compression; 4] = [
    Compression::Zstd { level: 3 },
    Compression::Gzip { level: 6 },
    Compression::Xz { level: 1 },
    Compression::Lz4,
];

#[test]
fn resolve_follows_links_inside_the_image_and_stops_at_its_root() {
    let tmp = tempfile::tempdir().unwrap();
    let a = image(tmp.path(), Compression::default());
    let tail = a.lookup("usr/lib/tail").unwrap().unwrap();
    let blocks = a.lookup("usr/lib/blocks").unwrap().unwrap();
    let one = a.lookup("usr/lib/one").unwrap().unwrap();
    for (path, want) in [
        ("/lib/tail", &tail),
        ("lib64/tail", &tail),
        ("/lib64/../lib/./tail", &tail),
        ("/usr/lib/chain", &blocks),
        ("/lib/chain", &blocks),
        ("/etc/up", &tail),
        ("/etc/abs", &one),
        ("/../../lib/tail", &tail),
    ] {
        let got = a.resolve(path).unwrap();
        assert_eq!(got.map(|i| i.number), Some(want.number), "{path}");
    }
    let lib = a.resolve("/lib").unwrap().unwrap();
    assert_eq!(lib.file_type(), FileType::Directory);
    // `lookup` does not follow: the same path names the link itself.
    let link = a.lookup("lib").unwrap().unwrap();
    assert_eq!(link.file_type(), FileType::Symlink);
    for missing in [
        "/etc/loop-a",
        "/etc/dangling",
        "/lib/nothing",
        "/usr/lib/tail/below-a-file",
    ] {
        assert!(a.resolve(missing).unwrap().is_none(), "{missing}");
    }
}

#[test]
fn whole_blocks_into_a_reused_buffer_match_positional_reads() {
    let tmp = tempfile::tempdir().unwrap();
    for compression in COMPRESSIONS {
        let a = image(tmp.path(), compression);
        // One buffer for every block of every file, grown and shrunk many times.
        let mut buf = vec![0xeeu8; 3 * BLOCK as usize];
        for (name, want) in files() {
            let inode = a.resolve(format!("/lib/{name}")).unwrap().unwrap();
            assert_eq!(
                read_all(&a, &inode),
                want,
                "{compression:?} {name} by read_at"
            );
            let blocks = (want.len() as u64).div_ceil(u64::from(BLOCK));
            let mut got = Vec::new();
            for index in 0..blocks {
                let off = a.read_block_into(&inode, index, &mut buf).unwrap();
                assert_eq!(off, index * u64::from(BLOCK), "{compression:?} {name}");
                assert_eq!(off as usize, got.len(), "{compression:?} {name}");
                got.extend_from_slice(&buf);
            }
            assert_eq!(got, want, "{compression:?} {name} by read_block_into");
            // One past the last block is empty at most; further is an error, not a panic.
            let past = blocks.max(1) + 1;
            for index in [past, u64::MAX] {
                let err = a.read_block_into(&inode, index, &mut buf).unwrap_err();
                assert!(
                    matches!(&err, Error::BadData { what, .. } if what.contains("past the file")),
                    "{compression:?} {name} block {index}: {err:?}"
                );
            }
        }
        let dir = a.resolve("/usr/lib").unwrap().unwrap();
        let err = a.read_block_into(&dir, 0, &mut buf).unwrap_err();
        read_support::assert_not_a_regular_file(&err);
    }
}
