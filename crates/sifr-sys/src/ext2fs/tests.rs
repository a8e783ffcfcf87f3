//! The library against real images made by `mkfs.ext3`, judged by `e2fsck -fn`.

use super::*;
use std::os::fd::AsRawFd;
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-V").output().is_ok()
}

/// A 16 MiB ext3 image at `offset` bytes into a file; `None` where e2fsprogs is missing.
fn image(dir: &Path, offset: u64) -> Option<PathBuf> {
    if !have("mkfs.ext3") || lib::get().is_err() {
        sifr_testkit::skip("mkfs.ext3 or libext2fs.so.2 is missing");
        return None;
    }
    let raw = dir.join("raw.img");
    let st = Command::new("mkfs.ext3")
        .args(["-q", "-F", "-E", "root_owner=0:0"])
        .arg(&raw)
        .arg("16M")
        .status()
        .expect("run mkfs.ext3");
    assert!(st.success());
    let out = dir.join("img");
    let mut data = vec![0xa5u8; offset as usize];
    data.extend(std::fs::read(&raw).expect("read image"));
    std::fs::write(&out, data).expect("write image");
    Some(out)
}

fn fsck_clean(img: &Path, offset: u64) {
    let raw = img.with_extension("check");
    let data = std::fs::read(img).expect("read image");
    std::fs::write(&raw, &data[offset as usize..]).expect("write copy");
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(&raw)
        .output()
        .expect("e2fsck");
    assert!(
        out.status.success(),
        "e2fsck -fn: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn files_dirs_links_and_attributes_at_an_offset_leave_a_clean_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let offset = 4096 * 3;
    let Some(img) = image(tmp.path(), offset) else {
        return;
    };
    let mut fs = Fs::open(&img, offset, true).expect("open");
    assert!(fs.has_journal());
    assert!(!fs.needs_recovery());
    fs.mark_mounted(1).expect("mark mounted");
    let free_before = fs.counts().free_inodes;

    // A regular file with 10 000 bytes.
    let ino = fs.new_inode(ROOT, S_IFREG).expect("new inode");
    fs.link(ROOT, b"f", ino, ft::REG).expect("link");
    let mut inode = Inode {
        i_mode: S_IFREG | 0o640,
        i_links_count: 1,
        ..Default::default()
    };
    inode.set_uid(70000);
    fs.write_new_inode(ino, &inode).expect("write new");
    fs.inode_alloc_stats(ino, 1, false);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let mut f = fs.file(ino, true).expect("open file");
    f.write_at(0, &data).expect("write");
    f.close().expect("close");
    assert_eq!(fs.lookup(ROOT, b"f").expect("lookup"), Some(ino));
    assert_eq!(fs.lookup(ROOT, b"g").expect("lookup"), None);
    let back = fs.read_inode(ino).expect("read");
    assert_eq!((back.size(), back.uid()), (10_000, 70000));
    let mut buf = vec![0; 20_000];
    let n = fs
        .file(ino, false)
        .expect("open")
        .read_at(0, &mut buf)
        .expect("read");
    assert_eq!(&buf[..n], &data[..]);

    // Attributes.
    {
        let mut x = fs.xattrs(ino).expect("xattrs");
        x.set(b"user.overlay.opaque", b"y").expect("set");
        x.set(b"trusted.t", b"").expect("set empty");
        assert_eq!(
            x.get(b"user.overlay.opaque").expect("get"),
            Some(b"y".to_vec())
        );
        assert_eq!(x.get(b"user.none").expect("get"), None);
        let mut names = x.names().expect("names");
        names.sort();
        assert_eq!(
            names,
            [b"trusted.t".to_vec(), b"user.overlay.opaque".to_vec()]
        );
        assert!(x.remove(b"trusted.t").expect("remove"));
        assert!(!x.remove(b"trusted.t").expect("remove again"));
    }

    // A directory with many entries (grows past one block), a symlink, a whiteout in place.
    let d = fs.new_inode(ROOT, S_IFDIR).expect("new dir inode");
    fs.mkdir(ROOT, d, b"d").expect("mkdir");
    for i in 0..300 {
        let name = format!("entry-with-a-long-name-{i:04}");
        fs.link(d, name.as_bytes(), ino, ft::REG)
            .expect("link many");
    }
    let mut i2 = fs.read_inode(ino).expect("read");
    i2.i_links_count += 300;
    fs.write_inode(ino, &i2).expect("write");
    let s = fs.new_inode(d, S_IFLNK).expect("new link inode");
    fs.symlink(d, s, b"l", b"../f").expect("symlink");
    assert_eq!(fs.read_link(s).expect("readlink"), b"../f");
    let long = vec![b'x'; 200];
    let s2 = fs.new_inode(d, S_IFLNK).expect("new link inode");
    fs.symlink(d, s2, b"long", &long).expect("slow symlink");
    assert_eq!(fs.read_link(s2).expect("readlink"), long);
    let mut names = Vec::new();
    fs.dir_entries(d, |n, _, t| {
        names.push((n.to_vec(), t));
        true
    })
    .expect("list");
    assert_eq!(names.len(), 2 + 300 + 2);
    assert!(names.contains(&(b"l".to_vec(), ft::SYMLINK)));

    // Replace one link by a 0/0 character device, as overlayfs's whiteout.
    let w = fs.new_inode(d, S_IFCHR).expect("new inode");
    let mut wi = Inode {
        i_mode: S_IFCHR,
        i_links_count: 1,
        ..Default::default()
    };
    wi.set_device(0, 0);
    fs.write_new_inode(w, &wi).expect("write whiteout");
    fs.inode_alloc_stats(w, 1, false);
    assert!(
        fs.replace_entry(d, b"entry-with-a-long-name-0000", w, ft::CHR)
            .expect("replace")
    );
    let mut i3 = fs.read_inode(ino).expect("read");
    i3.i_links_count -= 1;
    fs.write_inode(ino, &i3).expect("write");
    assert_eq!(
        fs.lookup(d, b"entry-with-a-long-name-0000")
            .expect("lookup"),
        Some(w)
    );

    // Remove a name, and free an inode whose last link goes.
    fs.unlink(d, b"entry-with-a-long-name-0001", ino)
        .expect("unlink");
    let mut i4 = fs.read_inode(ino).expect("read");
    i4.i_links_count -= 1;
    fs.write_inode(ino, &i4).expect("write");
    fs.unlink(d, b"long", s2).expect("unlink symlink");
    let mut si = fs.read_inode(s2).expect("read");
    fs.free_ext_attr(s2, &mut si).expect("free attrs");
    if fs.has_valid_blocks(&si) {
        fs.punch(s2, &mut si, 0, u64::MAX).expect("punch");
    }
    si.i_links_count = 0;
    si.i_dtime = 1;
    fs.write_inode(s2, &si).expect("write");
    fs.inode_alloc_stats(s2, -1, false);
    // Truncate the file to 1 byte.
    let mut f = fs.file(ino, true).expect("open");
    f.set_size(1).expect("set size");
    f.close().expect("close");
    assert_eq!(fs.read_inode(ino).expect("read").size(), 1);

    assert_eq!(fs.counts().free_inodes, free_before - 4);
    fs.mark_clean();
    fs.close().expect("close");
    fsck_clean(&img, offset);
}

#[test]
fn a_journal_that_needs_recovery_is_refused_for_writing_with_the_fix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(img) = image(tmp.path(), 0) else {
        return;
    };
    // Set the RECOVER incompat flag as a crash would leave it.
    let st = Command::new("debugfs")
        .args(["-w", "-R", "feature needs_recovery"])
        .arg(&img)
        .output()
        .expect("debugfs");
    assert!(st.status.success());
    let err = Fs::open(&img, 0, true).expect_err("must refuse");
    let text = err.to_string();
    assert!(matches!(err, OpenError::NeedsRecovery { .. }), "{text}");
    assert!(
        text.contains("e2fsck -fy") && text.contains(&img.display().to_string()),
        "{text}"
    );
    // Read-only is still possible.
    Fs::open(&img, 0, false).expect("read-only open");
}

#[test]
fn a_file_that_is_not_ext2_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("junk");
    std::fs::write(&p, vec![0u8; 1 << 20]).expect("write");
    if lib::get().is_err() {
        sifr_testkit::skip("libext2fs.so.2 is missing");
        return;
    }
    let err = Fs::open(&p, 0, false).expect_err("not ext2").to_string();
    assert!(
        err.contains("junk") && err.contains("magic number"),
        "{err}"
    );
}

#[test]
fn the_descriptors_of_the_image_are_known() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let Some(img) = image(tmp.path(), 0) else {
        return;
    };
    let fs = Fs::open(&img, 0, false).expect("open");
    // Other tests open files on other threads meanwhile: one of these is the image.
    let found = fs.fds().iter().any(|fd| {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok() == Some(img.clone())
    });
    assert!(
        found,
        "no descriptor of {} among {:?}",
        img.display(),
        fs.fds()
    );
}

#[test]
fn an_ext4_image_with_metadata_checksums_takes_a_directory_and_a_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    if !have("mkfs.ext4") || lib::get().is_err() {
        sifr_testkit::skip("mkfs.ext4 or libext2fs.so.2 is missing");
        return;
    }
    let img = tmp.path().join("e4");
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&img)
        .arg("64M")
        .status()
        .expect("mkfs");
    assert!(st.success());
    let mut fs = Fs::open(&img, 0, true).expect("open");
    assert!(fs.has_metadata_csum());
    let d = fs.new_inode(ROOT, S_IFDIR).expect("new dir inode");
    fs.mkdir(ROOT, d, b"d").expect("mkdir");
    // A new generation invalidates the block's checksum until it is rewritten.
    let mut di = fs.read_inode(d).expect("read dir");
    di.i_generation = 77;
    fs.write_inode(d, &di).expect("write dir");
    assert!(fs.lookup(d, b"x").is_err());
    fs.rechecksum_dir(d).expect("rechecksum");
    assert_eq!(fs.lookup(d, b"x").expect("lookup"), None);
    let ino = fs.new_inode(d, S_IFREG).expect("new inode");
    fs.link(d, b"f", ino, ft::REG).expect("link");
    let inode = Inode {
        i_mode: S_IFREG | 0o644,
        i_links_count: 1,
        ..Default::default()
    };
    fs.write_new_inode(ino, &inode).expect("write new");
    fs.inode_alloc_stats(ino, 1, false);
    let mut f = fs.file(ino, true).expect("open file");
    f.write_at(0, b"hello").expect("write");
    f.close().expect("close");
    fs.close().expect("close fs");
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(&img)
        .output()
        .expect("fsck");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
