//! The hostile-layer corpus: crafted tar layers that try to reach outside the image root.
//! Each case asserts the designed outcome (neutralised, skipped or a named error) and, via
//! `common::assert_inside_root`, that nothing delivered lies outside or below a non-directory.
//! There is no host extraction at all, so "outside" can only mean a path the merger failed
//! to normalise or a write through a symlink — both are what these cases probe.

mod common;

use common::{E, gzip, merge_err, merge_layers, merge_ok, tar};
use sifr_oci::merge::{DevicePolicy, EntryKind, MergeError, MergeOptions, PathError};

fn rejected_name(e: &MergeError) -> Option<(&str, &PathError)> {
    match e {
        MergeError::Name { name, source, .. } => Some((name.as_str(), source)),
        _ => None,
    }
}

#[test]
fn h01_absolute_path_is_taken_inside_the_root() {
    let (sink, stats) = merge_ok(&[tar(&[E::File("/etc/passwd", b"root:x")])]);
    assert_eq!(sink.paths(), ["etc/passwd"]);
    assert_eq!(stats.absolute_names, 1);
}

#[test]
fn h02_dotdot_escape_is_rejected_naming_the_entry() {
    let (sink, e) = merge_err(&[tar(&[
        E::File("ok", b"1"),
        E::File("../../etc/passwd", b"x"),
    ])]);
    assert_eq!(
        rejected_name(&e),
        Some(("../../etc/passwd", &PathError::Escapes)),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("`../../etc/passwd`") && e.to_string().contains("`layer0`"),
        "{e}"
    );
    assert_eq!(
        sink.paths(),
        ["ok"],
        "entries before the bad one may have been streamed, none after"
    );
}

#[test]
fn h03_interior_dotdot_climbing_out_is_rejected() {
    let (_, e) = merge_err(&[tar(&[E::File("a/../../x", b"x")])]);
    assert_eq!(rejected_name(&e).map(|r| r.1), Some(&PathError::Escapes));
}

#[test]
fn h04_harmless_interior_dotdot_is_normalised() {
    let (sink, _) = merge_ok(&[tar(&[E::File("a/b/../c", b"x")])]);
    assert_eq!(sink.paths(), ["a/c"]);
}

#[test]
fn h05_symlink_to_etc_then_file_through_it_is_an_error() {
    let (sink, e) = merge_err(&[tar(&[
        E::Sym("evil", "/etc"),
        E::File("evil/passwd", b"pwned"),
    ])]);
    assert!(
        matches!(&e, MergeError::ParentNotDirectory { parent, .. } if parent.to_string() == "/evil"),
        "{e:?}"
    );
    assert_eq!(
        sink.get("evil").unwrap().kind,
        EntryKind::Symlink(b"/etc".to_vec())
    );
}

#[test]
fn h06_relative_symlink_escape_then_file_through_it_is_an_error() {
    let (_, e) = merge_err(&[tar(&[
        E::Dir("d"),
        E::Sym("d/up", "../../../../"),
        E::File("d/up/etc/shadow", b"x"),
    ])]);
    assert!(matches!(e, MergeError::ParentNotDirectory { .. }), "{e:?}");
}

#[test]
fn h07_symlink_in_upper_layer_hides_lower_files_below_it() {
    let (sink, stats) = merge_ok(&[
        tar(&[E::Dir("evil"), E::File("evil/passwd", b"x")]),
        tar(&[E::Sym("evil", "/etc")]),
    ]);
    assert_eq!(sink.paths(), ["evil"]);
    assert_eq!(stats.shadowed, 2);
}

#[test]
fn h08_file_in_upper_layer_under_a_lower_symlink_stays_a_real_directory() {
    // A lower symlink is never followed: the upper entry implies a directory, which wins.
    let (sink, _) = merge_ok(&[
        tar(&[E::Sym("evil", "/etc")]),
        tar(&[E::File("evil/passwd", b"x")]),
    ]);
    assert_eq!(sink.paths(), ["evil/passwd"]);
}

#[test]
fn h09_hardlink_to_host_shadow_names_a_missing_image_path() {
    let (_, e) = merge_err(&[tar(&[E::Link("shadow", "/etc/shadow")])]);
    assert!(
        matches!(&e, MergeError::LinkTargetMissing { target, .. } if target.to_string() == "/etc/shadow"),
        "{e:?}"
    );
}

#[test]
fn h10_hardlink_with_dotdot_target_is_rejected() {
    let (_, e) = merge_err(&[tar(&[E::Link("x", "../../etc/shadow")])]);
    assert!(
        matches!(
            e,
            MergeError::LinkName {
                source: PathError::Escapes,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn h11_hardlink_through_a_symlink_does_not_resolve_it() {
    let (_, e) = merge_err(&[tar(&[E::Sym("evil", "/etc"), E::Link("x", "evil/shadow")])]);
    assert!(matches!(e, MergeError::LinkTargetMissing { .. }), "{e:?}");
}

#[test]
fn h12_hardlink_to_a_directory_is_rejected() {
    let (_, e) = merge_err(&[tar(&[E::Dir("d"), E::Link("x", "d")])]);
    assert!(matches!(e, MergeError::LinkToDirectory { .. }), "{e:?}");
    let (_, e) = merge_err(&[tar(&[E::Link("x", "/")])]);
    assert!(matches!(e, MergeError::LinkTargetMissing { .. }), "{e:?}");
}

#[test]
fn h13_whiteout_aimed_outside_is_rejected() {
    let (_, e) = merge_err(&[
        tar(&[E::File("x", b"1")]),
        tar(&[E::File("../../.wh.x", b"")]),
    ]);
    assert_eq!(
        rejected_name(&e).map(|r| r.1),
        Some(&PathError::Escapes),
        "{e:?}"
    );
}

#[test]
fn h14_whiteout_of_nothing_or_of_dot_names_is_rejected() {
    for name in [".wh.", "d/.wh.", "d/.wh..", "d/.wh..."] {
        let (_, e) = merge_err(&[tar(&[E::File("d/a", b"1")]), tar(&[E::File(name, b"")])]);
        assert!(
            matches!(&e, MergeError::BadWhiteout { name: n, .. } if n == name),
            "{name}: {e:?}"
        );
    }
}

#[test]
fn h15_device_nodes_follow_the_policy() {
    let layers = [
        tar(&[E::File("dev/sda", b"lower")]),
        tar(&[E::Char("dev/sda", 8, 0), E::Fifo("p")]),
    ];
    let (sink, _) = merge_ok(&layers);
    assert_eq!(
        sink.get("dev/sda").unwrap().kind,
        EntryKind::CharDevice { major: 8, minor: 0 }
    );
    let skip = MergeOptions {
        devices: DevicePolicy::Skip,
        ..Default::default()
    };
    let (sink, r) = merge_layers(&layers, &skip);
    assert_eq!(r.unwrap().devices_skipped, 1);
    assert_eq!(
        sink.paths(),
        ["p"],
        "a skipped device still hides the lower file"
    );
    let reject = MergeOptions {
        devices: DevicePolicy::Reject,
        ..Default::default()
    };
    let (_, r) = merge_layers(&layers, &reject);
    assert!(matches!(r, Err(MergeError::Device { .. })), "{r:?}");
}

#[test]
fn h16_huge_size_field_without_data_fails_without_allocating() {
    // 8 GiB announced, nothing there: a read error, not an 8 GiB buffer or a panic.
    let (_, e) = merge_err(&[tar(&[E::Truncated("big", 0o77777777777)])]);
    assert!(
        matches!(e, MergeError::Sink { .. } | MergeError::Read { .. }),
        "{e:?}"
    );
}

#[test]
fn h17_oversized_pax_record_hits_the_metadata_cap() {
    let long = vec![b'a'; 2 << 20];
    let (_, e) = merge_err(&[tar(&[E::Pax(&[("path", &long)], "f", b"x")])]);
    assert!(
        matches!(&e, MergeError::Read { source, .. } if source.to_string().contains("metadata")),
        "{e:?}"
    );
}

#[test]
fn h18_pax_path_override_with_dotdot_is_rejected() {
    let (_, e) = merge_err(&[tar(&[E::Pax(
        &[("path", b"../../../etc/cron.d/x")],
        "innocent",
        b"x",
    )])]);
    assert_eq!(
        rejected_name(&e),
        Some(("../../../etc/cron.d/x", &PathError::Escapes)),
        "{e:?}"
    );
}

#[test]
fn h19_nul_in_pax_path_is_rejected() {
    let (_, e) = merge_err(&[tar(&[E::Pax(
        &[("path", b"etc/passwd\0.txt")],
        "innocent",
        b"x",
    )])]);
    assert_eq!(
        rejected_name(&e).map(|r| r.1),
        Some(&PathError::Nul),
        "{e:?}"
    );
}

#[test]
fn h20_nul_in_pax_symlink_target_is_rejected() {
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("linkpath", &b"/etc\0x"[..])])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..1].copy_from_slice(b"s");
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &b""[..]).unwrap();
    let (_, e) = merge_err(&[b.into_inner().unwrap()]);
    assert!(matches!(e, MergeError::SymlinkNul { .. }), "{e:?}");
}

#[test]
fn h21_gnu_long_name_with_dotdot_is_rejected() {
    let name = format!(
        "{}/../../../../etc/passwd",
        "a/".to_string().trim_end_matches('/')
    );
    let deep = format!("{}{}", "x/".repeat(60), "../".repeat(62));
    for n in [name.as_str(), deep.as_str()] {
        let (_, e) = merge_err(&[tar(&[E::LongName(n.as_bytes(), b"x")])]);
        assert_eq!(
            rejected_name(&e).map(|r| r.1),
            Some(&PathError::Escapes),
            "{n}: {e:?}"
        );
    }
}

#[test]
fn h22_duplicate_entries_in_one_layer_keep_the_first() {
    let (sink, stats) = merge_ok(&[tar(&[
        E::File("a", b"first"),
        E::File("a", b"second"),
        E::Sym("a", "/etc/shadow"),
    ])]);
    assert_eq!(common::content(&sink, "a"), "first");
    assert_eq!(stats.duplicates, 2);
}

#[test]
fn h23_root_replaced_by_a_file_is_rejected() {
    let (_, e) = merge_err(&[tar(&[E::File(".", b"x")])]);
    assert!(matches!(e, MergeError::RootNotDirectory { .. }), "{e:?}");
}

#[test]
fn h24_file_replacing_a_directory_the_same_layer_filled_is_rejected() {
    let (_, e) = merge_err(&[tar(&[E::File("d/a", b"1"), E::File("d", b"now a file")])]);
    assert!(matches!(e, MergeError::ReplacesDirectory { .. }), "{e:?}");
}

#[test]
fn h25_setuid_bits_are_data_not_privilege() {
    // Kept as mode bits (images are mounted nosuid); file-type bits never leak into mode.
    let (sink, _) = merge_ok(&[tar(&[E::Mode("bin/su", 0o104755)])]);
    assert_eq!(sink.get("bin/su").unwrap().meta.mode, 0o4755);
}

#[test]
fn h26_garbage_instead_of_a_layer_is_a_read_error() {
    let mut junk = gzip(b"not a tar at all, but long enough to fill a header block..........");
    junk.extend(std::iter::repeat_n(0xAB, 1024));
    let (_, e) = merge_err(&[junk]);
    assert!(matches!(e, MergeError::Read { .. }), "{e:?}");
}

#[test]
fn h27_hardlink_whose_target_was_whited_out_in_its_own_layer_is_missing() {
    let (_, e) = merge_err(&[
        tar(&[E::File("t", b"x")]),
        tar(&[E::File(".wh.t", b""), E::Link("l", "t")]),
    ]);
    assert!(matches!(e, MergeError::LinkTargetMissing { .. }), "{e:?}");
}

#[test]
fn corpus_has_at_least_fifteen_hostile_layers() {
    // Keeps the floor visible: count the h-numbered tests above.
    let src = include_str!("hostile_layers.rs");
    let n = src.matches("\nfn h").count();
    assert!(n >= 15, "only {n} hostile cases");
}

/// A layer that ends right after its last entry's data (no padding to the block, no
/// end-of-archive blocks), as Debian 12's `umoci insert` writes them: Go's archive/tar, which
/// Apptainer and containerd unpack with, takes the end of the stream as the end of the
/// archive, and so does sifr. A layer cut inside an entry's data still fails.
#[test]
fn h_layer_ending_right_after_its_last_data_is_complete_but_a_cut_one_is_not() {
    let full = tar(&[E::File("a", b"first"), E::File("opt/f", b"hi\n")]);
    // Header (512) + data of `a` padded (512) + header of opt/f (512) + its 3 bytes.
    let cut_after_data = full[..512 * 3 + 3].to_vec();
    for layer in [cut_after_data.clone(), gzip(&cut_after_data)] {
        let (sink, _) = merge_ok(&[layer]);
        assert_eq!(sink.paths(), ["a", "opt/f"]);
        assert_eq!(sink.get("opt/f").unwrap().data, b"hi\n");
    }
    // Also after a block-aligned entry: only the end-of-archive blocks are missing.
    let aligned = tar(&[E::File("b", &[7u8; 512])]);
    let (sink, _) = merge_ok(&[aligned[..1024].to_vec()]);
    assert_eq!(sink.paths(), ["b"]);
    // Cut inside the last entry's data, or inside its padding: an error.
    for cut in [512 * 3 + 2, 512 * 3 + 100] {
        let (_, e) = merge_err(&[full[..cut].to_vec()]);
        assert!(e.to_string().contains("layer0"), "{e}");
    }
}
