//! `sifr build IMAGE.sif DIR` as a user runs it: the SIF's primary partition is a SquashFS
//! that unsquashfs lists as the source tree and the kernel mounts; the architecture comes
//! from the image's /bin/sh; existing images need --force; failures leave nothing behind.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use assert_cmd::Command as Cmd;
use sifr_testkit::have;

fn sifr() -> Cmd {
    Cmd::cargo_bin("sifr").unwrap()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// A tiny root filesystem whose /bin/sh is an (absolute) symlink to an aarch64 ELF.
fn sandbox(root: &Path) {
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    let mut elf = vec![0u8; 128];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[18..20].copy_from_slice(&183u16.to_le_bytes());
    fs::write(root.join("usr/bin/dash"), &elf).unwrap();
    fs::set_permissions(root.join("usr/bin/dash"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("/usr/bin/dash", root.join("bin/sh")).unwrap();
    fs::write(root.join("etc/os-release"), "NAME=test\n".repeat(50)).unwrap();
    fs::write(root.join("etc/big"), vec![7u8; 300_000]).unwrap();
    fs::hard_link(root.join("etc/big"), root.join("etc/big.link")).unwrap();
    for i in 0..300 {
        fs::write(root.join(format!("etc/conf{i:03}")), format!("value {i}\n")).unwrap();
    }
}

/// Copy the primary partition out of a SIF; returns (squashfs path, partition offset).
fn partition(sif: &Path, out: &Path) -> (std::path::PathBuf, u64, sifr_sif::Arch) {
    let img = sifr_sif::Image::open(sif).unwrap();
    let d = img.primary_partition().expect("primary partition");
    let meta = d.partition().unwrap();
    assert_eq!(meta.fs, sifr_sif::FsType::Squash);
    let bytes = fs::read(sif).unwrap();
    let part = &bytes[d.offset() as usize..d.end() as usize];
    assert_eq!(&part[..4], b"hsqs");
    let p = out.join("part.sqfs");
    fs::write(&p, part).unwrap();
    (p, d.offset(), meta.arch)
}

#[test]
fn build_packs_a_sandbox_into_a_sif_readers_accept() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("rootfs");
    sandbox(&src);
    let sif_path = tmp.path().join("img.sif");
    sifr()
        .arg("build")
        .arg(&sif_path)
        .arg(&src)
        .assert()
        .success();
    let mode = fs::metadata(&sif_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let (sqfs, offset, arch) = partition(&sif_path, tmp.path());
    assert_eq!(
        arch,
        sifr_sif::Arch::Arm64,
        "architecture of the image's /bin/sh"
    );
    // Default codec: zstd (superblock compressor id 6).
    let sb = fs::read(&sqfs).unwrap();
    assert_eq!(u16::from_le_bytes([sb[20], sb[21]]), 6);
    if !have("unsquashfs") {
        sifr_testkit::skip(
            "unsquashfs checks: unsquashfs not installed (apt-get install squashfs-tools)",
        );
        return;
    }
    let out = tmp.path().join("x");
    let st = Command::new("unsquashfs")
        .arg("-no-progress")
        .arg("-d")
        .arg(&out)
        .arg(&sqfs)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert_eq!(
        fs::read_link(out.join("bin/sh")).unwrap(),
        Path::new("/usr/bin/dash")
    );
    assert_eq!(fs::read(out.join("etc/big")).unwrap(), vec![7u8; 300_000]);
    assert_eq!(fs::read(out.join("etc/conf123")).unwrap(), b"value 123\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(out.join("etc/big.link")).unwrap().nlink(), 2);
    assert_eq!(fs::read_dir(out.join("etc")).unwrap().count(), 303);

    if !is_root() {
        sifr_testkit::skip("kernel mount of the SIF: not root");
        return;
    }
    let mnt = tmp.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "squashfs", "-o"])
        .arg(format!("loop,ro,offset={offset}"))
        .arg(&sif_path)
        .arg(&mnt)
        .output()
        .unwrap();
    if !st.status.success() {
        // Root on Debian mounts a SquashFS on a loop device: a failure is the machine's to fix.
        sifr_testkit::skip(format_args!(
            "kernel mount of the SIF: {}",
            String::from_utf8_lossy(&st.stderr)
        ));
        return;
    }
    let ok = fs::read(mnt.join("etc/conf007")).map(|b| b == b"value 7\n");
    let _ = Command::new("umount").arg(&mnt).status();
    assert!(
        matches!(ok, Ok(true)),
        "read through the kernel mount: {ok:?}"
    );
}

#[test]
fn build_refuses_to_overwrite_without_force_and_replaces_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("rootfs");
    sandbox(&src);
    let sif_path = tmp.path().join("img.sif");
    fs::write(&sif_path, b"precious").unwrap();
    sifr()
        .arg("build")
        .arg(&sif_path)
        .arg(&src)
        .assert()
        .failure()
        .stderr(predicates::str::contains("--force"));
    assert_eq!(fs::read(&sif_path).unwrap(), b"precious");
    sifr()
        .args(["build", "--force", "--compression", "gzip"])
        .arg(&sif_path)
        .arg(&src)
        .assert()
        .success();
    let (sqfs, _, _) = partition(&sif_path, tmp.path());
    let sb = fs::read(sqfs).unwrap();
    assert_eq!(u16::from_le_bytes([sb[20], sb[21]]), 1, "gzip");
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        3,
        "no temporary files left"
    );
}

#[test]
fn failed_build_leaves_no_image_and_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let src = tmp.path().join("rootfs");
    sandbox(&src);
    // A bad codec level and a missing source fail early; an unreadable directory fails
    // midway through the walk (for non-root users; root reads through mode 000).
    sifr()
        .args(["build", "--compression", "gzip:42"])
        .arg(out_dir.join("a.sif"))
        .arg(&src)
        .assert()
        .failure();
    sifr()
        .arg("build")
        .arg(out_dir.join("b.sif"))
        .arg(tmp.path().join("missing"))
        .assert()
        .failure()
        .stderr(predicates::str::contains("missing"));
    fs::create_dir_all(src.join("locked")).unwrap();
    fs::write(src.join("locked/secret"), b"x").unwrap();
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    let r = sifr()
        .arg("build")
        .arg(out_dir.join("c.sif"))
        .arg(&src)
        .output()
        .unwrap();
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        // Root reads through mode 000: the build succeeds; remove its output.
        assert!(r.status.success());
        fs::remove_file(out_dir.join("c.sif")).unwrap();
    } else {
        assert!(!r.status.success());
    }
    assert_eq!(
        fs::read_dir(&out_dir).unwrap().count(),
        0,
        "nothing left in the target directory"
    );
}

#[test]
fn host_architecture_is_used_when_no_elf_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("data");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("readme"), b"no binaries here").unwrap();
    let sif_path = tmp.path().join("data.sif");
    sifr()
        .arg("build")
        .arg(&sif_path)
        .arg(&src)
        .assert()
        .success()
        .stderr(predicates::str::contains("architecture set to the host's"));
}
