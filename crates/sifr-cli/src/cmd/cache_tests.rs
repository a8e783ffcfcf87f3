//! Unit tests of `cache list|clean`'s formats and choices, against Apptainer's
//! `internal/app/apptainer/cache_list_linux.go`, `internal/pkg/util/fs.FindSize` and
//! `cmd/internal/cli/cache_clean_linux.go`.

use super::*;

#[test]
fn sizes_are_written_as_apptainer_findsize_writes_them() {
    for (size, want) in [
        (0, "0.00 KiB"),
        (512, "0.50 KiB"),
        (1024 * 1024 - 1, "1024.00 KiB"),
        (1024 * 1024, "1.00 MiB"),
        (3 * 1024 * 1024 / 2, "1.50 MiB"),
        (5 << 30, "5.00 GiB"),
        (2 << 40, "2.00 TiB"),
    ] {
        assert_eq!(human_size(size), want, "{size}");
    }
}

#[test]
fn dates_use_go_reference_layout() {
    assert_eq!(date_at(0), "1970-01-01 00:00:00");
    assert_eq!(date_at(1_787_062_365), "2026-08-18 14:12:45");
    assert_eq!(date_at(-1), "1969-12-31 23:59:59");
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A cache root with two blobs, one of them with a leftover lock, and one `net` container file.
fn sample_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let cache = BlobCache::new(t.path());
    for data in [&b"layer one"[..], &[7u8; 2048][..]] {
        cache
            .put(&sifr_oci::digest::Digest::of(data), data)
            .unwrap();
    }
    std::fs::create_dir_all(t.path().join("net")).unwrap();
    std::fs::write(t.path().join("net/0123abcd"), vec![0u8; 3 << 20]).unwrap();
    t
}

#[test]
fn list_summary_names_the_selected_groups_only() {
    // e2e/cache "list type": `--type net` counts one container file.
    let t = sample_root();
    let all = list(t.path(), &strings(&["all"]), false).unwrap();
    assert_eq!(
        all,
        "There are 1 container file(s) using 3.00 MiB and 2 oci blob file(s) using 2.01 KiB of \
         space\nTotal space used: 3.00 MiB\n"
    );
    assert_eq!(
        list(t.path(), &strings(&["net"]), false).unwrap(),
        "There are 1 container file(s) using 3.00 MiB of space\nTotal space used: 3.00 MiB\n"
    );
    assert_eq!(
        list(t.path(), &strings(&["blob"]), false).unwrap(),
        "There are 2 oci blob file(s) using 2.01 KiB of space\nTotal space used: 2.01 KiB\n"
    );
    // A type name that is no directory of Apptainer's selects nothing, as in Apptainer.
    assert_eq!(
        list(t.path(), &strings(&["oci"]), false).unwrap(),
        "There are of space\nTotal space used: 0.00 KiB\n"
    );
    // An absent cache is empty, not an error.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        list(&empty.path().join("none"), &strings(&["all"]), false).unwrap(),
        "There are 0 container file(s) using 0.00 KiB and 0 oci blob file(s) using 0.00 KiB of \
         space\nTotal space used: 0.00 KiB\n"
    );
}

#[test]
fn verbose_list_is_apptainer_table_blobs_first() {
    // e2e/cache "list verbose": the header names the columns.
    let t = sample_root();
    let out = list(t.path(), &strings(&["all"]), true).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "NAME                     DATE CREATED           SIZE             TYPE"
    );
    assert_eq!(lines.len(), 1 + 3 + 1 + 2, "{out}");
    for (row, kind, size) in [
        (lines[1], "blob", None),
        (lines[2], "blob", None),
        (lines[3], "net", Some("3.00 MiB")),
    ] {
        // Name truncated to 22 characters in a 24-wide column; date 22 wide; size 16 wide.
        assert_eq!(row.as_bytes()[22..25], *b"   ", "{row}");
        assert_eq!(&row[25 + 4..25 + 5], "-", "{row}");
        assert!(row.ends_with(&format!(" {kind}")), "{row}");
        if let Some(size) = size {
            assert_eq!(&row[48..48 + size.len()], size, "{row}");
        }
    }
    assert!(lines[3].starts_with("0123abcd "), "{}", lines[3]);
    assert_eq!(lines[4], "");
    assert!(lines[5].starts_with("There are 1 container file(s)"));
}

#[test]
fn only_y_then_end_of_line_confirms() {
    let ask = |input: &str| confirm(&mut std::io::Cursor::new(input.as_bytes().to_vec()));
    assert!(ask("y\n").unwrap());
    assert!(ask("Y\n").unwrap());
    assert!(!ask("n\n").unwrap());
    assert!(!ask("yes\n").unwrap(), "Apptainer compares the whole line");
    assert!(!ask("\n").unwrap());
    let e = ask("y").unwrap_err();
    assert!(format!("{e:#}").contains("EOF"), "{e:#}");
    assert!(ask("").is_err());
}

#[test]
fn all_selects_every_type_and_names_select_themselves() {
    assert!(selected(&strings(&["all"]), "net"));
    assert!(selected(&strings(&["net", "blob"]), "blob"));
    assert!(!selected(&strings(&["net"]), "blob"));
    assert!(!selected(&strings(&["blobs"]), "blob"));
}

#[test]
fn build_steps_are_listed_on_their_own_line_when_present_or_asked_for() {
    let t = sample_root();
    // None yet: `all` prints Apptainer's lines only; `build` says there are none.
    assert!(
        !list(t.path(), &strings(&["all"]), false)
            .unwrap()
            .contains("build")
    );
    assert_eq!(
        list(t.path(), &strings(&["build"]), false).unwrap(),
        "There are 0 build step(s) using 0.00 KiB of space\nTotal space used: 0.00 KiB\n"
    );
    std::fs::create_dir_all(t.path().join(BUILD)).unwrap();
    std::fs::write(t.path().join(BUILD).join("abc"), vec![0u8; 1 << 20]).unwrap();
    std::fs::write(t.path().join(BUILD).join(".abc.lock"), b"").unwrap();
    assert_eq!(
        list(t.path(), &strings(&["all"]), false).unwrap(),
        "There are 1 container file(s) using 3.00 MiB and 2 oci blob file(s) using 2.01 KiB of \
         space\nThere are 1 build step(s) using 1.00 MiB of space\nTotal space used: 4.00 MiB\n"
    );
    let verbose = list(t.path(), &strings(&["build"]), true).unwrap();
    assert!(
        verbose.lines().nth(1).unwrap().ends_with(" build"),
        "{verbose}"
    );
}
