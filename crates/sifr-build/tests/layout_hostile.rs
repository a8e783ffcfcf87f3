//! A hostile root filesystem whose metadata paths are symlinks to the host: laying out the
//! tree must never write outside the root.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use sifr_build::layout::{
    BaseOptions, BuildTime, LayoutError, MetadataOptions, insert_metadata, write_base,
};

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let data = fs::read(&p).unwrap_or_default();
            (p.file_name().unwrap().to_string_lossy().into_owned(), data)
        })
        .collect();
    v.sort();
    v
}

fn setup() -> (tempfile::TempDir, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("precious"), "host data").unwrap();
    (root, host)
}

#[test]
fn singularity_d_symlink_to_host() {
    let (root, host) = setup();
    symlink(host.path(), root.path().join(".singularity.d")).unwrap();
    let before = listing(host.path());
    let err = write_base(root.path(), BaseOptions::default()).unwrap_err();
    assert!(matches!(err, LayoutError::Symlink { .. }), "{err}");
    assert!(err.to_string().contains(".singularity.d"), "{err}");
    let def = sifr_deffile::parse(
        "Bootstrap: scratch\n%runscript\necho\n",
        &Default::default(),
    )
    .unwrap();
    let o = MetadataOptions::new(BuildTime::utc(0), "amd64");
    let err = insert_metadata(root.path(), def.image_stage().unwrap(), "x", &o).unwrap_err();
    assert!(matches!(err, LayoutError::Symlink { .. }), "{err}");
    assert_eq!(listing(host.path()), before);
}

#[test]
fn etc_symlink_to_host() {
    let (root, host) = setup();
    symlink(host.path(), root.path().join("etc")).unwrap();
    let before = listing(host.path());
    let err = write_base(root.path(), BaseOptions::default()).unwrap_err();
    assert!(matches!(err, LayoutError::Symlink { .. }), "{err}");
    assert_eq!(listing(host.path()), before);
}

#[test]
fn env_dir_and_leaf_symlinks_to_host() {
    let (root, host) = setup();
    write_base(root.path(), BaseOptions::default()).unwrap();
    let sd = root.path().join(".singularity.d");
    // Leaf files that point at the host are replaced, never written through.
    for f in ["labels.json", "runscript", "Singularity"] {
        fs::remove_file(sd.join(f)).ok();
        symlink(host.path().join("precious"), sd.join(f)).unwrap();
    }
    fs::remove_file(root.path().join("etc/hosts")).unwrap();
    symlink(host.path().join("precious"), root.path().join("etc/hosts")).unwrap();
    let before = listing(host.path());
    write_base(root.path(), BaseOptions::default()).unwrap();
    let def = sifr_deffile::parse(
        "Bootstrap: scratch\n%runscript\necho\n%labels\nA b\n",
        &Default::default(),
    )
    .unwrap();
    let o = MetadataOptions::new(BuildTime::utc(0), "amd64");
    insert_metadata(root.path(), def.image_stage().unwrap(), "def", &o).unwrap();
    assert_eq!(listing(host.path()), before);
    assert!(
        fs::symlink_metadata(sd.join("runscript"))
            .unwrap()
            .is_file()
    );
    assert!(
        fs::symlink_metadata(sd.join("labels.json"))
            .unwrap()
            .is_file()
    );
    // The old (symlinked) definition went to the history as a link; the new one is a file.
    assert!(
        fs::symlink_metadata(sd.join("Singularity"))
            .unwrap()
            .is_file()
    );
    // /etc/hosts as a symlink is left alone (the runtime binds over it).
    assert!(
        fs::symlink_metadata(root.path().join("etc/hosts"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // An env directory pointing at the host is refused.
    fs::remove_dir_all(sd.join("env")).unwrap();
    symlink(host.path(), sd.join("env")).unwrap();
    let def = sifr_deffile::parse(
        "Bootstrap: scratch\n%environment\nexport X=1\n",
        &Default::default(),
    )
    .unwrap();
    let err = insert_metadata(root.path(), def.image_stage().unwrap(), "def", &o).unwrap_err();
    assert!(matches!(err, LayoutError::Symlink { .. }), "{err}");
    let err = write_base(root.path(), BaseOptions::default()).unwrap_err();
    assert!(matches!(err, LayoutError::Symlink { .. }), "{err}");
    assert_eq!(listing(host.path()), before);
}
