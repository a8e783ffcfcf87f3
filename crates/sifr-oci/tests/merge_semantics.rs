//! Whiteout and shadowing semantics of the newest-first merge, as a table of small images.

mod common;

use common::{E, content, gzip, merge_ok, tar, zstd};
use sifr_oci::merge::EntryKind;

/// (name, layers base-first, paths expected in the merged image, files with expected content)
type Case<'a> = (
    &'a str,
    Vec<Vec<u8>>,
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
);

#[test]
fn whiteout_and_shadowing_table() {
    let cases: Vec<Case> = vec![
        (
            "upper file shadows lower file",
            vec![tar(&[E::File("a", b"old")]), tar(&[E::File("a", b"new")])],
            &["a"],
            &[("a", "new")],
        ),
        (
            "whiteout hides a lower file",
            vec![
                tar(&[E::File("a", b"x"), E::File("b", b"y")]),
                tar(&[E::File(".wh.a", b"")]),
            ],
            &["b"],
            &[("b", "y")],
        ),
        (
            "whiteout does not hide its own layer's file",
            vec![
                tar(&[E::File("a", b"old")]),
                tar(&[E::File(".wh.a", b""), E::File("a", b"new")]),
            ],
            &["a"],
            &[("a", "new")],
        ),
        (
            "whiteout of a directory hides its subtree",
            vec![
                tar(&[
                    E::Dir("d"),
                    E::File("d/x", b"1"),
                    E::Dir("d/e"),
                    E::File("d/e/y", b"2"),
                    E::File("keep", b"k"),
                ]),
                tar(&[E::File(".wh.d", b"")]),
            ],
            &["keep"],
            &[],
        ),
        (
            "opaque directory hides lower contents but keeps the directory and its own layer",
            vec![
                tar(&[E::Dir("d"), E::File("d/old", b"1"), E::File("other", b"o")]),
                tar(&[
                    E::Dir("d"),
                    E::File("d/.wh..wh..opq", b""),
                    E::File("d/new", b"2"),
                ]),
            ],
            &["d", "d/new", "other"],
            &[("d/new", "2")],
        ),
        (
            "directories from several layers merge",
            vec![
                tar(&[E::Dir("d"), E::File("d/a", b"1")]),
                tar(&[E::Dir("d"), E::File("d/b", b"2")]),
            ],
            &["d", "d/a", "d/b"],
            &[("d/a", "1"), ("d/b", "2")],
        ),
        (
            "upper file replaces a lower directory and its children",
            vec![
                tar(&[E::Dir("d"), E::File("d/a", b"1")]),
                tar(&[E::File("d", b"file")]),
            ],
            &["d"],
            &[("d", "file")],
        ),
        (
            "upper directory replaces a lower file",
            vec![
                tar(&[E::File("d", b"file")]),
                tar(&[E::Dir("d"), E::File("d/a", b"1")]),
            ],
            &["d", "d/a"],
            &[("d/a", "1")],
        ),
        (
            "file recreated above a whiteout",
            vec![
                tar(&[E::File("a", b"v1")]),
                tar(&[E::File(".wh.a", b"")]),
                tar(&[E::File("a", b"v3")]),
            ],
            &["a"],
            &[("a", "v3")],
        ),
        (
            "whiteout in the middle hides only what is below it",
            vec![
                tar(&[E::File("a", b"v1"), E::File("b", b"b1")]),
                tar(&[E::File(".wh.a", b""), E::File(".wh.b", b"")]),
                tar(&[E::File("b", b"b3")]),
            ],
            &["b"],
            &[("b", "b3")],
        ),
        (
            "opaque root hides every lower layer",
            vec![
                tar(&[E::File("a", b"1"), E::Dir("d")]),
                tar(&[E::File(".wh..wh..opq", b""), E::File("z", b"z")]),
            ],
            &["z"],
            &[("z", "z")],
        ),
        (
            "aufs bookkeeping names are ignored",
            vec![
                tar(&[E::File("a", b"1")]),
                tar(&[E::Dir(".wh..wh.plnk"), E::File(".wh..wh.aufs", b"")]),
            ],
            &["a"],
            &[("a", "1")],
        ),
        (
            "upper symlink hides lower directory contents",
            vec![
                tar(&[E::Dir("lib"), E::File("lib/x.so", b"x")]),
                tar(&[E::Sym("lib", "usr/lib")]),
            ],
            &["lib"],
            &[],
        ),
        (
            "gzip and zstd layers mix with plain ones",
            vec![
                gzip(&tar(&[E::File("a", b"gz"), E::File("b", b"gz")])),
                zstd(&tar(&[E::File("b", b"zst")])),
                tar(&[E::File("c", b"plain")]),
            ],
            &["a", "b", "c"],
            &[("a", "gz"), ("b", "zst"), ("c", "plain")],
        ),
        (
            "hard link in the same layer",
            vec![tar(&[E::File("t", b"data"), E::Link("l", "t")])],
            &["l", "t"],
            &[("t", "data")],
        ),
        (
            "hard link to a lower layer's file",
            vec![tar(&[E::File("t", b"data")]), tar(&[E::Link("l", "t")])],
            &["l", "t"],
            &[("t", "data")],
        ),
        (
            "hard link whose target an upper layer replaced keeps the old content",
            vec![
                tar(&[E::File("t", b"old"), E::Link("l", "t")]),
                tar(&[E::File("t", b"new")]),
            ],
            &["l", "t"],
            &[("t", "new"), ("l", "old")],
        ),
        (
            "hard link whose target an upper layer whited out keeps the content",
            vec![
                tar(&[E::File("t", b"old")]),
                tar(&[E::Link("l", "t"), E::Link("m", "t")]),
                tar(&[E::File(".wh.t", b"")]),
            ],
            &["l", "m"],
            &[("l", "old")],
        ),
    ];
    for (name, layers, paths, files) in cases {
        let (sink, _) = merge_ok(&layers);
        let mut want: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        want.sort();
        assert_eq!(sink.paths(), want, "{name}");
        for (path, data) in files {
            assert_eq!(content(&sink, path), *data, "{name}: {path}");
        }
    }
}

#[test]
fn lower_directory_metadata_reaches_a_parent_implied_by_an_upper_child() {
    let (sink, _) = merge_ok(&[tar(&[E::DirMode("d", 0o700)]), tar(&[E::File("d/a", b"1")])]);
    let d = sink.get("d").unwrap();
    assert_eq!(d.kind, EntryKind::Directory);
    assert_eq!(d.meta.mode, 0o700);
    assert_eq!(
        sink.order.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        ["/d/a", "/d"]
    );
}

#[test]
fn upper_directory_metadata_wins() {
    let (sink, _) = merge_ok(&[
        tar(&[E::DirMode("d", 0o700)]),
        tar(&[E::DirMode("d", 0o755)]),
    ]);
    assert_eq!(sink.get("d").unwrap().meta.mode, 0o755);
}

#[test]
fn replaced_hard_link_target_rereads_its_layer_once() {
    let (sink, stats) = merge_ok(&[
        tar(&[E::File("t", b"old"), E::Link("l", "t"), E::Link("m", "t")]),
        tar(&[E::File("t", b"new")]),
    ]);
    assert_eq!(stats.layers_reread, 1);
    assert_eq!(
        sink.get("m").unwrap().kind,
        EntryKind::HardLink(sifr_oci::merge::RelPath::new("l").unwrap())
    );
}

#[test]
fn pax_xattrs_and_ownership_are_kept() {
    let layer = tar(&[E::Pax(
        &[("SCHILY.xattr.user.k", b"v"), ("uid", b"4242")],
        "f",
        b"x",
    )]);
    let (sink, _) = merge_ok(&[layer]);
    let f = sink.get("f").unwrap();
    assert_eq!(f.meta.xattrs, vec![(b"user.k".to_vec(), b"v".to_vec())]);
    assert_eq!(f.meta.uid, 4242);
    assert_eq!(f.meta.gid, 1000);
}

#[test]
fn stats_count_what_was_skipped() {
    let (_, stats) = merge_ok(&[
        tar(&[E::File("a", b"1"), E::File("b", b"1"), E::Dir("d")]),
        tar(&[
            E::File(".wh.a", b""),
            E::File("d/.wh..wh..opq", b""),
            E::File("b", b"2"),
        ]),
    ]);
    assert_eq!(
        (stats.whiteouts, stats.opaque_dirs, stats.shadowed),
        (1, 1, 2)
    );
    assert_eq!(stats.entries, 2, "b and d");
}
