//! Unit tests of [`super`]: the layout's rules, Apptainer's advice, and a SIF left unchanged
//! by a failed add.

use super::target::{add_partition, sif_target};
use super::*;
use sifr_sif::{Arch, FsType, Image, ObjectInput, PartType, PartitionMeta};

#[test]
fn create_dirs_stay_inside_upper() {
    let comps = |d| {
        create_dir_components(d).map(|v| {
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        comps("/usr/local/testing").unwrap(),
        ["usr", "usr/local", "usr/local/testing"]
    );
    assert_eq!(comps("a/../b/./c").unwrap(), ["a", "b", "b/c"]);
    assert_eq!(comps("").unwrap(), Vec::<String>::new());
    assert_eq!(comps("a/..").unwrap(), ["a"]);
    for bad in ["..", "../upperX", "a/../../x", "/../etc"] {
        assert!(
            matches!(
                create_dir_components(bad),
                Err(OverlayError::DirEscapes { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn debugfs_paths_are_quoted_with_doubled_quotes() {
    assert_eq!(debugfs_quote("/upper/a b\"c"), "\"/upper/a b\"\"c\"");
}

/// Apptainer's branches in `OverlayCreate` for an unprivileged caller.
#[test]
fn fakeroot_advice_follows_apptainer() {
    use FakerootAdvice::*;
    assert_eq!(fakeroot_advice(0, false, false, true), Quiet);
    assert_eq!(fakeroot_advice(1000, true, false, true), Quiet);
    assert_eq!(fakeroot_advice(1000, false, false, true), Refuse);
    assert_eq!(fakeroot_advice(1000, false, false, false), Quiet);
    assert_eq!(fakeroot_advice(1000, false, true, false), Suggest);
    assert_eq!(fakeroot_advice(1000, false, true, true), Quiet);
}

/// A reader that fails after 3 MiB, as a full disk or a read error would.
struct FailsLate(u64);

impl std::io::Read for FailsLate {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 >= 3 * MIB {
            return Err(std::io::Error::other("injected read error"));
        }
        let n = buf.len().min(65536);
        buf[..n].fill(0xAB);
        self.0 += n as u64;
        Ok(n)
    }
}

/// A failed add leaves the SIF byte-identical: the data already written past its end is
/// cut off and the header and descriptor table are as they were.
#[test]
fn a_failed_partition_add_leaves_the_sif_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img.sif");
    let root = PartitionMeta {
        fs: FsType::Squash,
        part: PartType::PrimSys,
        arch: Arch::Amd64,
    };
    sifr_sif::create_at_path(
        &path,
        sifr_sif::CreateOptions::default(),
        vec![ObjectInput::partition(root, vec![7u8; 5000])],
    )
    .unwrap();
    let before = std::fs::read(&path).unwrap();
    let img = sif_target(&path).unwrap();
    let e = add_partition(img, &path, FailsLate(0)).unwrap_err();
    assert!(matches!(e, OverlayError::AddPartition { .. }), "{e}");
    assert!(std::fs::read(&path).unwrap() == before, "the SIF changed");
    // And a good add gives the partition Apptainer's metadata.
    let img = sif_target(&path).unwrap();
    let id = add_partition(img, &path, std::io::Cursor::new(vec![1u8; 4096])).unwrap();
    let img = Image::open(&path).unwrap();
    let d = img.descriptor(id).unwrap();
    assert_eq!(
        d.partition(),
        Some(PartitionMeta {
            fs: FsType::Ext3,
            part: PartType::Overlay,
            arch: Arch::Amd64,
        })
    );
    assert_eq!(d.group(), img.primary_partition().unwrap().group());
    assert!(matches!(
        sif_target(&path),
        Err(OverlayError::OverlayExists { id: i, .. }) if i == id
    ));
}

#[test]
fn too_small_and_too_large_sizes_are_refused_first() {
    let opts = |size_mib| CreateOptions {
        image: PathBuf::from("/nonexistent/x.img"),
        size_mib,
        sparse: true,
        fakeroot: false,
        dirs: Vec::new(),
        tmpdir: PathBuf::from("/tmp"),
        path: String::new(),
    };
    let who = Caller {
        uid: 1000,
        gid: 1000,
        subids: false,
        userns: true,
    };
    for s in [-1, 0, 1, 63] {
        let e = create(&opts(s), who, &mut |_| {}).unwrap_err();
        assert!(
            matches!(e, OverlayError::TooSmall { size } if size == s),
            "{e}"
        );
        assert!(e.to_string().contains("64 MiB"), "{e}");
    }
    let e = create(&opts(i64::MAX), who, &mut |_| {}).unwrap_err();
    assert!(matches!(e, OverlayError::TooLarge { .. }), "{e}");
}
