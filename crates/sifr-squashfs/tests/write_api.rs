//! The builder API as a streaming producer (an OCI layer merger) uses it: entries in any
//! order, hard links before their targets, streamed contents, replaced entries; identical
//! bytes for any thread count; typed errors naming the path.

mod write_common;

use std::fs;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use sifr_squashfs::{
    Compression, Entry, EntryKind, FileSource, Options, WriteError, Writer, Xattr, from_dir,
};
use write_common::*;

fn file<'a>(data: &'a [u8], mode: u32) -> Entry<'a> {
    Entry::new(EntryKind::File(FileSource::Bytes(data)), mode)
}

fn small_opts() -> Options {
    Options {
        block_size: 4096,
        compression: Compression::Zstd { level: 3 },
        ..Options::default()
    }
}

/// A reader that hands out data in odd-sized pieces, like a tar stream.
struct Dribble<'a>(&'a [u8]);
impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0.len()).min(1000);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn extract(img: &Path, dir: &Path) -> bool {
    if !have("unsquashfs") {
        skip(
            "extract",
            "unsquashfs not installed (apt-get install squashfs-tools)",
        );
        return false;
    }
    run_ok(
        std::process::Command::new("unsquashfs")
            .arg("-no-progress")
            .arg("-d")
            .arg(dir)
            .arg(img),
    )
    .unwrap();
    true
}

#[test]
fn entries_in_any_order_with_links_before_targets_extract_correctly() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    let big: Vec<u8> = (0..(9u32 << 20))
        .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
        .collect();
    let mut w = Writer::new(fs::File::create(&img).unwrap(), small_opts()).unwrap();
    // Deep file first: its parents are created implicitly, then described later.
    w.add("usr/share/doc/readme", file(b"read me", 0o644))
        .unwrap();
    // A hard link whose target arrives later.
    w.add(
        "usr/bin/alias",
        Entry::new(EntryKind::HardLink("usr/bin/tool".into()), 0),
    )
    .unwrap();
    let mut dribble = Dribble(&big);
    let mut e = Entry::new(EntryKind::File(FileSource::Reader(&mut dribble)), 0o755);
    e.uid = 1000;
    e.gid = 1000;
    e.mtime = 1_600_000_000;
    e.xattrs = vec![Xattr {
        name: b"user.origin".to_vec(),
        value: b"layer 3".to_vec(),
    }];
    w.add("usr/bin/tool", e).unwrap();
    let mut d = Entry::new(EntryKind::Directory, 0o700);
    d.mtime = 1_500_000_000;
    w.add("usr/share", d).unwrap();
    // Replaced entry: the later one wins.
    w.add("etc/motd", file(b"old", 0o644)).unwrap();
    w.add("etc/motd", file(b"new", 0o600)).unwrap();
    w.add(
        "etc/link",
        Entry::new(EntryKind::Symlink("motd".into()), 0o777),
    )
    .unwrap();
    // The same big content again from a stream: stored twice (a stream over 8 MiB is
    // written as it arrives, before its hash is known)...
    let mut again = Cursor::new(&big);
    w.add(
        "copy_of_tool",
        Entry::new(EntryKind::File(FileSource::Reader(&mut again)), 0o644),
    )
    .unwrap();
    // ...while smaller streamed duplicates are stored once (same size and SHA-256).
    let mid = &big[..300_000];
    w.add(
        "mid1",
        Entry::new(
            EntryKind::File(FileSource::Reader(&mut Cursor::new(mid))),
            0o644,
        ),
    )
    .unwrap();
    w.add(
        "mid2",
        Entry::new(
            EntryKind::File(FileSource::Reader(&mut Cursor::new(mid))),
            0o644,
        ),
    )
    .unwrap();
    w.add("/", Entry::new(EntryKind::Directory, 0o755)).unwrap();
    let s = w.finish().unwrap();
    assert_eq!(s.data.duplicate_files, 1, "{s:?}");

    let out = tmp.path().join("x");
    if !extract(&img, &out) {
        return;
    }
    assert_eq!(
        fs::read(out.join("usr/share/doc/readme")).unwrap(),
        b"read me"
    );
    assert_eq!(fs::read(out.join("usr/bin/tool")).unwrap(), big);
    assert_eq!(fs::read(out.join("copy_of_tool")).unwrap(), big);
    assert_eq!(fs::read(out.join("mid2")).unwrap(), mid);
    assert_eq!(fs::read(out.join("etc/motd")).unwrap(), b"new");
    assert_eq!(
        fs::read_link(out.join("etc/link")).unwrap(),
        PathBuf::from("motd")
    );
    use std::os::unix::fs::MetadataExt;
    let t = fs::metadata(out.join("usr/bin/tool")).unwrap();
    let a = fs::metadata(out.join("usr/bin/alias")).unwrap();
    assert_eq!(
        (t.ino(), t.nlink()),
        (a.ino(), 2),
        "hard link shares the inode"
    );
    assert_eq!(t.mode() & 0o7777, 0o755);
    assert_eq!(t.mtime(), 1_600_000_000);
    assert_eq!(
        fs::metadata(out.join("usr/share")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(
        fs::metadata(out.join("etc/motd")).unwrap().mode() & 0o7777,
        0o600
    );
    if is_root() {
        assert_eq!((t.uid(), t.gid()), (1000, 1000));
    }
    if let Ok(Some(v)) = xattr::get(out.join("usr/bin/tool"), "user.origin") {
        assert_eq!(v, b"layer 3");
    }
}

#[test]
fn same_tree_gives_identical_bytes_for_one_and_many_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 4096);
    let mut images = Vec::new();
    for threads in [1, 2, 7] {
        for c in [
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            let mut buf = Cursor::new(Vec::new());
            let o = Options {
                threads,
                compression: c,
                ..small_opts()
            };
            from_dir(&src, &mut buf, o).unwrap();
            images.push((threads, c, buf.into_inner()));
        }
    }
    for (t, c, img) in &images[2..] {
        let (_, _, first) = images.iter().find(|(_, c0, _)| c0 == c).unwrap();
        assert!(img == first, "{c} with {t} threads differs from 1 thread");
    }
}

#[test]
fn image_streams_into_a_sink_at_a_nonzero_offset() {
    // A SIF partition sink: position 0 of the image is wherever the sink starts.
    struct Offset(Cursor<Vec<u8>>, u64);
    impl std::io::Write for Offset {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl std::io::Seek for Offset {
        fn seek(&mut self, p: std::io::SeekFrom) -> std::io::Result<u64> {
            let p = match p {
                std::io::SeekFrom::Start(n) => std::io::SeekFrom::Start(n + self.1),
                other => other,
            };
            Ok(self.0.seek(p)? - self.1)
        }
    }
    let mut inner = Cursor::new(vec![0xAA; 512]);
    inner.set_position(512);
    let mut sink = Offset(inner, 512);
    let mut w = Writer::new(&mut sink, small_opts()).unwrap();
    w.add("a", file(b"hello", 0o644)).unwrap();
    w.finish().unwrap();
    let all = sink.0.into_inner();
    assert!(
        all[..512].iter().all(|&b| b == 0xAA),
        "bytes before the sink untouched"
    );
    assert_eq!(&all[512..516], b"hsqs");
}

#[test]
fn errors_name_the_offending_path() {
    let mut w = Writer::new(Cursor::new(Vec::new()), small_opts()).unwrap();
    let e = w.add("../escape", file(b"x", 0o644)).unwrap_err();
    assert!(matches!(e, WriteError::InvalidPath { .. }), "{e}");
    assert!(e.to_string().contains("../escape"));
    w.add("f", file(b"x", 0o644)).unwrap();
    let e = w.add("f/child", file(b"x", 0o644)).unwrap_err();
    assert!(matches!(e, WriteError::ParentNotDirectory { .. }), "{e}");
    let long = "n".repeat(257);
    assert!(matches!(
        w.add(&long, file(b"x", 0o644)),
        Err(WriteError::InvalidPath { .. })
    ));
    w.add(
        "dangling",
        Entry::new(EntryKind::HardLink("nowhere".into()), 0),
    )
    .unwrap();
    let e = w.finish().unwrap_err();
    assert!(matches!(e, WriteError::HardLinkTargetMissing { .. }), "{e}");
    assert!(e.to_string().contains("/dangling"), "{e}");

    let mut w = Writer::new(Cursor::new(Vec::new()), small_opts()).unwrap();
    w.add("d", Entry::new(EntryKind::Directory, 0o755)).unwrap();
    w.add("l", Entry::new(EntryKind::HardLink("d".into()), 0))
        .unwrap();
    assert!(matches!(
        w.finish(),
        Err(WriteError::HardLinkToDirectory { .. })
    ));

    let bad = Options {
        block_size: 3000,
        ..Options::default()
    };
    assert!(matches!(
        Writer::new(Cursor::new(Vec::new()), bad),
        Err(WriteError::BlockSize { size: 3000 })
    ));
    let e = from_dir(
        Path::new("/nonexistent/source"),
        Cursor::new(Vec::new()),
        small_opts(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/source"), "{e}");
}

#[test]
fn empty_image_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    let w = Writer::new(fs::File::create(&img).unwrap(), small_opts()).unwrap();
    let s = w.finish().unwrap();
    assert_eq!(s.inodes, 1);
    let out = tmp.path().join("x");
    if extract(&img, &out) {
        assert_eq!(fs::read_dir(out).unwrap().count(), 0);
    }
}
