//! Test helpers: layers crafted byte by byte with the `tar` crate (no name validation, so
//! hostile names go in as written) and checks that merged output stays inside the root.
#![allow(dead_code)]

use std::io::Write;

use sifr_oci::merge::{
    self, EntryKind, Layer, MemoryLayer, MemorySink, MergeError, MergeOptions, MergeStats, RelPath,
};

/// One crafted tar member.
pub enum E<'a> {
    File(&'a str, &'a [u8]),
    Mode(&'a str, u32),
    Dir(&'a str),
    DirMode(&'a str, u32),
    Sym(&'a str, &'a str),
    Link(&'a str, &'a str),
    Char(&'a str, u32, u32),
    Fifo(&'a str),
    /// PAX records, then a regular file whose ustar name is `name`.
    Pax(&'a [(&'a str, &'a [u8])], &'a str, &'a [u8]),
    /// A GNU long-name member, then a regular file.
    LongName(&'a [u8], &'a [u8]),
    /// A raw header with this size and no data at all.
    Truncated(&'a str, u64),
}

fn header(name: &[u8], kind: tar::EntryType, size: u64, link: &[u8], mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name);
        g.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// A plain tar of these members.
pub fn tar(entries: &[E]) -> Vec<u8> {
    use tar::EntryType as T;
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::File(n, d) => b
                .append(
                    &header(n.as_bytes(), T::Regular, d.len() as u64, b"", 0o644),
                    *d,
                )
                .unwrap(),
            E::Mode(n, m) => b
                .append(&header(n.as_bytes(), T::Regular, 0, b"", *m), &b""[..])
                .unwrap(),
            E::Dir(n) => b
                .append(&header(n.as_bytes(), T::Directory, 0, b"", 0o755), &b""[..])
                .unwrap(),
            E::DirMode(n, m) => b
                .append(&header(n.as_bytes(), T::Directory, 0, b"", *m), &b""[..])
                .unwrap(),
            E::Sym(n, t) => b
                .append(
                    &header(n.as_bytes(), T::Symlink, 0, t.as_bytes(), 0o777),
                    &b""[..],
                )
                .unwrap(),
            E::Link(n, t) => b
                .append(
                    &header(n.as_bytes(), T::Link, 0, t.as_bytes(), 0o644),
                    &b""[..],
                )
                .unwrap(),
            E::Char(n, maj, min) => {
                let mut h = header(n.as_bytes(), T::Char, 0, b"", 0o666);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                h.set_cksum();
                b.append(&h, &b""[..]).unwrap()
            }
            E::Fifo(n) => b
                .append(&header(n.as_bytes(), T::Fifo, 0, b"", 0o644), &b""[..])
                .unwrap(),
            E::Pax(recs, n, d) => {
                b.append_pax_extensions(recs.iter().copied()).unwrap();
                b.append(
                    &header(n.as_bytes(), T::Regular, d.len() as u64, b"", 0o644),
                    *d,
                )
                .unwrap()
            }
            E::LongName(name, d) => {
                let mut data = name.to_vec();
                data.push(0);
                b.append(
                    &header(
                        b"././@LongLink",
                        T::GNULongName,
                        data.len() as u64,
                        b"",
                        0o644,
                    ),
                    &data[..],
                )
                .unwrap();
                b.append(
                    &header(b"placeholder", T::Regular, d.len() as u64, b"", 0o644),
                    *d,
                )
                .unwrap()
            }
            E::Truncated(n, size) => {
                let h = header(n.as_bytes(), T::Regular, *size, b"", 0o644);
                b.get_mut().write_all(h.as_bytes()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

/// Merge plain-tar layers given base first.
pub fn merge_layers(
    layers: &[Vec<u8>],
    opts: &MergeOptions,
) -> (MemorySink, Result<MergeStats, MergeError>) {
    let layers: Vec<MemoryLayer> = layers
        .iter()
        .enumerate()
        .map(|(i, b)| MemoryLayer::new(format!("layer{i}"), b.clone()))
        .collect();
    let refs: Vec<&dyn Layer> = layers.iter().map(|l| l as &dyn Layer).collect();
    let mut sink = MemorySink::new();
    let r = merge::merge(&refs, &mut sink, opts);
    (sink, r)
}

pub fn merge_ok(layers: &[Vec<u8>]) -> (MemorySink, MergeStats) {
    let (sink, r) = merge_layers(layers, &MergeOptions::default());
    let stats = r.unwrap_or_else(|e| panic!("merge failed: {e} ({e:?})"));
    assert_inside_root(&sink);
    (sink, stats)
}

pub fn merge_err(layers: &[Vec<u8>]) -> (MemorySink, MergeError) {
    let (sink, r) = merge_layers(layers, &MergeOptions::default());
    let e = r.expect_err("merge should fail");
    assert_paths_inside_root(&sink);
    (sink, e)
}

/// The invariant every merge must keep, whatever the input: each delivered path is a
/// normal relative path, no path lies below a delivered non-directory (nothing is written
/// "through" a symlink), and hard links name delivered non-directories.
pub fn assert_inside_root(sink: &MemorySink) {
    assert_paths_inside_root(sink);
    for (path, e) in &sink.entries {
        if let EntryKind::HardLink(t) = &e.kind {
            let target = sink
                .entries
                .get(t)
                .unwrap_or_else(|| panic!("{path:?} links to undelivered {t:?}"));
            assert_ne!(
                target.kind,
                EntryKind::Directory,
                "{path:?} links to a directory"
            );
        }
    }
}

/// The part of the invariant that holds even for a merge that failed midway (a link may
/// then have been delivered before its target, which never came).
pub fn assert_paths_inside_root(sink: &MemorySink) {
    for path in sink.entries.keys() {
        let b = path.as_bytes();
        assert!(!b.starts_with(b"/"), "absolute path delivered: {path:?}");
        assert!(!b.contains(&0), "NUL delivered: {path:?}");
        for c in b.split(|&x| x == b'/') {
            assert!(!path.is_root() || b.is_empty());
            assert!(
                path.is_root() || (!c.is_empty() && c != b"." && c != b".."),
                "bad component in {path:?}"
            );
        }
        for a in path.ancestors() {
            let a = RelPath::new(std::str::from_utf8(a).unwrap()).unwrap();
            if let Some(parent) = sink.entries.get(&a) {
                assert_eq!(
                    parent.kind,
                    EntryKind::Directory,
                    "{path:?} delivered below non-directory {a:?}"
                );
            }
        }
    }
}

/// A file's content as a string.
pub fn content(sink: &MemorySink, path: &str) -> String {
    let e = sink
        .get(path)
        .unwrap_or_else(|| panic!("{path} missing; have {:?}", sink.paths()));
    String::from_utf8(e.data.clone()).unwrap()
}
