//! `sifr sif list|header|info` reproduce the upstream `siftool` goldens byte for byte, and the
//! editing commands (`new`, `add`, `del`, `setprim`, `dump`) behave as `siftool`'s. Fixture
//! tests print a reason and skip when the shared fixture folder is absent.

use std::path::Path;

use assert_cmd::Command;

use sifr_testkit::sif_fixtures as fixtures;

fn sifr() -> Command {
    Command::cargo_bin("sifr").unwrap()
}

fn stdout_of(args: &[&str], image: &Path) -> Vec<u8> {
    let out = sifr().arg("sif").args(args).arg(image).output().unwrap();
    assert!(
        out.status.success(),
        "sifr sif {args:?} {}: {}",
        image.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Golden file stems and the images they describe (the fixture README's naming rule).
const LIST_AND_HEADER: &[(&str, &str)] = &[
    ("Empty", "empty"),
    ("EmptyID", "empty-id"),
    ("EmptyLaunchScript", "empty-launch-script"),
    ("OneGroup", "one-group"),
    ("OneGroupSignedLegacy", "one-group-signed-legacy"),
    ("OneGroupSignedLegacyAll", "one-group-signed-legacy-all"),
    ("OneGroupSignedLegacyGroup", "one-group-signed-legacy-group"),
    ("OneGroupSignedPGP", "one-group-signed-pgp"),
    ("OneObjectCryptMessage", "one-object-crypt-message"),
    ("OneObjectGenericJSON", "one-object-generic-json"),
    ("OneObjectOCIBlob", "one-object-oci-blob"),
    ("OneObjectOCIRootIndex", "one-object-oci-root-index"),
    ("OneObjectSBOM", "one-object-sbom"),
    ("OneObjectTime", "one-object-time"),
    ("TwoGroups", "two-groups"),
    ("TwoGroupsSignedLegacy", "two-groups-signed-legacy"),
    ("TwoGroupsSignedLegacyAll", "two-groups-signed-legacy-all"),
    (
        "TwoGroupsSignedLegacyGroup",
        "two-groups-signed-legacy-group",
    ),
    ("TwoGroupsSignedPGP", "two-groups-signed-pgp"),
];

/// `sifr sif COMMAND IMAGE` prints exactly siftool's `golden/COMMAND/GOLDEN.golden` for each
/// pair of [`LIST_AND_HEADER`].
fn assert_matches_siftool(dir: &Path, command: &str) {
    for (golden, image) in LIST_AND_HEADER {
        let got = stdout_of(&[command], &dir.join(format!("images/{image}.sif")));
        assert_golden(
            dir,
            &got,
            &format!("{command}/{golden}"),
            &format!("{command} {image}"),
        );
    }
}

/// `got` is byte for byte siftool's `golden/NAME.golden`.
fn assert_golden(dir: &Path, got: &[u8], name: &str, what: &str) {
    let want = std::fs::read(dir.join(format!("golden/{name}.golden"))).unwrap();
    assert_eq!(
        String::from_utf8_lossy(got),
        String::from_utf8_lossy(&want),
        "{what}"
    );
}

#[test]
fn sif_list_matches_siftool_goldens() {
    let Some(dir) = fixtures() else { return };
    assert_matches_siftool(&dir, "list");
}

#[test]
fn sif_header_matches_siftool_goldens() {
    let Some(dir) = fixtures() else { return };
    assert_matches_siftool(&dir, "header");
}

#[test]
fn siftool_alias_info_matches_goldens() {
    let Some(dir) = fixtures() else { return };
    let table = [
        ("Time", "one-object-time", "1"),
        ("GenericJSON", "one-object-generic-json", "1"),
        ("CryptMessage", "one-object-crypt-message", "1"),
        ("SBOM", "one-object-sbom", "1"),
        ("OCIRootIndex", "one-object-oci-root-index", "1"),
        ("OCIBlob", "one-object-oci-blob", "1"),
        ("DataPartitionRaw", "two-groups-signed-pgp", "1"),
        ("DataPartitionSquashFS", "two-groups-signed-pgp", "2"),
        ("DataPartitionEXT3", "two-groups-signed-pgp", "3"),
        ("DataSignature", "two-groups-signed-pgp", "4"),
    ];
    for (golden, image, id) in table {
        let out = sifr()
            .args(["siftool", "info", id])
            .arg(dir.join(format!("images/{image}.sif")))
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_golden(
            &dir,
            &out.stdout,
            &format!("info/{golden}"),
            &format!("info {id} {image}"),
        );
    }
}

#[test]
fn sif_dump_writes_the_object_bytes() {
    let Some(dir) = fixtures() else { return };
    let got = stdout_of(&["dump", "1"], &dir.join("images/one-object-sbom.sif"));
    assert_eq!(got, std::fs::read(dir.join("input/sbom.cdx.json")).unwrap());
}

#[test]
fn sif_new_add_setprim_del_session() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("image.sif");
    let part = tmp.path().join("part.img");
    std::fs::write(&part, b"hsqs-not-really").unwrap();
    let def = tmp.path().join("recipe.def");
    std::fs::write(&def, b"Bootstrap: scratch\n").unwrap();

    sifr().args(["sif", "new"]).arg(&img).assert().success();
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 32176);

    sifr()
        .args(["sif", "add"])
        .arg(&img)
        .arg(&def)
        .args(["--datatype", "1", "--groupid", "1"])
        .assert()
        .success();
    sifr()
        .args(["sif", "add"])
        .arg(&img)
        .arg(&part)
        .args([
            "--datatype",
            "4",
            "--parttype",
            "1",
            "--partfs",
            "1",
            "--partarch",
            "2",
            "--groupid",
            "1",
        ])
        .assert()
        .success();
    let list = String::from_utf8(stdout_of(&["list"], &img)).unwrap();
    assert!(
        list.contains("1    |1       |NONE    |32176-32195               |Def.FILE\n"),
        "{list}"
    );
    assert!(
        list.contains(
            "2    |1       |NONE    |32768-32783               |FS (Squashfs/System/amd64)\n"
        ),
        "{list}"
    );
    let header = String::from_utf8(stdout_of(&["header"], &img)).unwrap();
    assert!(!header.contains("Primary Architecture"), "{header}");

    sifr()
        .args(["sif", "setprim", "2"])
        .arg(&img)
        .assert()
        .success();
    let header = String::from_utf8(stdout_of(&["header"], &img)).unwrap();
    assert!(header.contains("Primary Architecture: amd64\n"), "{header}");
    assert!(
        String::from_utf8(stdout_of(&["list"], &img))
            .unwrap()
            .contains("FS (Squashfs/*System/amd64)")
    );

    assert_eq!(stdout_of(&["dump", "2"], &img), b"hsqs-not-really");

    sifr()
        .args(["sif", "del", "1"])
        .arg(&img)
        .assert()
        .success();
    let list = String::from_utf8(stdout_of(&["list"], &img)).unwrap();
    assert!(!list.contains("Def.FILE"), "{list}");
    // A new object reuses the first free slot, hence ID 1, and goes after the partition.
    sifr()
        .args(["sif", "add"])
        .arg(&img)
        .arg(&def)
        .args(["--datatype", "6", "--filename", "x.json"])
        .assert()
        .success();
    let list = String::from_utf8(stdout_of(&["list"], &img)).unwrap();
    assert!(
        list.contains("1    |NONE    |NONE    |32783-32802               |JSON.Generic\n"),
        "{list}"
    );
}

#[test]
fn sif_errors_name_the_file_and_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let bogus = tmp.path().join("bogus.sif");
    std::fs::write(&bogus, vec![b'x'; 200]).unwrap();
    let out = sifr().args(["sif", "list"]).arg(&bogus).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bogus.sif") && err.contains("bad magic"),
        "{err}"
    );

    let out = sifr()
        .args(["sif", "info", "7"])
        .arg(tmp.path().join("missing.sif"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.sif"));

    let img = tmp.path().join("i.sif");
    sifr().args(["sif", "new"]).arg(&img).assert().success();
    let out = sifr()
        .args(["sif", "add"])
        .arg(&img)
        .arg(&img)
        .args(["--datatype", "4"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--partfs, --parttype and --partarch must be passed")
    );
}
