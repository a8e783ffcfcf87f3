//! Layers merged straight into the SquashFS writer, then read back with the SquashFS
//! reader: the pull pipeline's last step, with no extraction anywhere.

mod common;

use common::{E, gzip, tar};
use sifr_oci::merge::{self, Layer, MemoryLayer, MergeOptions, SquashfsSink};

#[test]
fn merged_layers_stream_into_a_readable_squashfs_image() {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let base = gzip(&tar(&[
        E::DirMode("etc", 0o750),
        E::File("etc/hostname", b"old"),
        E::File("etc/removed", b"gone"),
        E::Dir("usr"),
        E::Dir("usr/lib"),
        E::File("usr/lib/big.so", &big),
        E::Link("usr/lib/big-link.so", "usr/lib/big.so"),
    ]));
    let top = tar(&[
        E::File("etc/hostname", b"new"),
        E::File("etc/.wh.removed", b""),
        E::Sym("lib", "usr/lib"),
    ]);
    let layers = [MemoryLayer::new("base", base), MemoryLayer::new("top", top)];
    let refs: Vec<&dyn Layer> = layers.iter().map(|l| l as &dyn Layer).collect();

    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("root.squashfs");
    let mut writer = sifr_squashfs::Writer::new(
        std::fs::File::create(&img).unwrap(),
        sifr_squashfs::Options::default(),
    )
    .unwrap();
    let stats = merge::merge(
        &refs,
        &mut SquashfsSink::new(&mut writer),
        &MergeOptions::default(),
    )
    .unwrap();
    writer.finish().unwrap();
    assert_eq!(stats.whiteouts, 1);

    let fs = sifr_squashfs::read::Archive::open(std::fs::File::open(&img).unwrap(), 0).unwrap();
    let mut paths: Vec<String> = fs
        .walk()
        .unwrap()
        .iter()
        .map(|e| e.path.to_string_lossy().into_owned())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "",
            "etc",
            "etc/hostname",
            "lib",
            "usr",
            "usr/lib",
            "usr/lib/big-link.so",
            "usr/lib/big.so"
        ]
    );
    let read = |p: &str, len: usize| {
        let inode = fs.lookup(p).unwrap().unwrap();
        let mut buf = vec![0u8; len];
        let n = fs.read_at(&inode, 0, &mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    assert_eq!(read("etc/hostname", 16), b"new");
    assert_eq!(read("usr/lib/big.so", big.len()), big);
    let link = fs.lookup("usr/lib/big-link.so").unwrap().unwrap();
    assert_eq!(link.nlink, 2, "hard link kept as a link");
    assert_eq!(
        fs.read_link(&fs.lookup("lib").unwrap().unwrap())
            .unwrap()
            .to_string_lossy(),
        "usr/lib"
    );
    assert_eq!(
        fs.lookup("etc").unwrap().unwrap().permissions,
        0o750,
        "lower layer's dir metadata"
    );
}
