//! Test images shared by the end-to-end tests that run SIF and squashfs images: the fixture
//! sandbox packed at test time, how to run sifr on it as a given identity, and the checks that
//! nothing of a run is left on the host.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use sifr_testkit::{As, Fixture};

/// Serialises the tests that depend on `/dev/fuse`'s mode or check that no extraction
/// directory is left (another test's extraction would be seen while it runs).
pub static SERIAL: Mutex<()> = Mutex::new(());

pub struct Images {
    pub fx: Fixture,
    pub sif: PathBuf,
    pub sqfs: PathBuf,
    /// The node holders' files there were before this test made anything: another run's
    /// debris is not this test's leftover (issue 24, item 4).
    pub holders_before: Vec<String>,
}

impl Images {
    pub fn new() -> Images {
        Images::pack(Fixture::new())
    }

    /// The fixture plus `/etc/owned42` (uid and gid 42, mode 0600) and `/etc/secret` (root,
    /// mode 0600), to see whose files a FUSE mount presents.
    pub fn with_owners() -> Images {
        use std::os::unix::fs::PermissionsExt as _;
        let fx = Fixture::new();
        for (name, owner) in [("etc/owned42", 42), ("etc/secret", 0)] {
            let p = fx.image.join(name);
            std::fs::write(&p, "secret\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&p, Some(owner), Some(owner)).unwrap();
        }
        Images::pack(fx)
    }

    pub fn pack(fx: Fixture) -> Images {
        let sqfs = fx.dir.path().join("image.sqfs");
        sifr_testkit::mksquashfs(&fx.image, &sqfs, &[]);
        let sif = fx.dir.path().join("image.sif");
        write_sif(&sif, Some((&sqfs, sifr_sif::Arch::host())));
        Images {
            fx,
            sif,
            sqfs,
            holders_before: holder_files(who_all()),
        }
    }
}

/// A SIF with a definition file and, when given, a squashfs primary partition for `arch`.
pub fn write_sif(path: &Path, part: Option<(&Path, sifr_sif::Arch)>) {
    let file = std::fs::File::create(path).unwrap();
    let mut c = sifr_sif::Creator::new(file, sifr_sif::CreateOptions::apptainer()).unwrap();
    c.add(sifr_sif::ObjectInput::deffile(
        b"Bootstrap: scratch\n".to_vec(),
    ))
    .unwrap();
    if let Some((sqfs, arch)) = part {
        let bytes = std::fs::read(sqfs).unwrap();
        let meta = sifr_sif::PartitionMeta {
            fs: sifr_sif::FsType::Squash,
            part: sifr_sif::PartType::PrimSys,
            arch,
        };
        c.add_partition_with::<sifr_sif::Error>("", meta, |sink| {
            use std::io::Write as _;
            sink.write_all(&bytes).map_err(sifr_sif::Error::Source)
        })
        .unwrap();
    }
    c.finish().unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

pub fn sifr_as(fx: &Fixture, who: As, args: &[&str]) -> Command {
    fx.command(env!("CARGO_BIN_EXE_sifr"), who)
        .args(args)
        .command()
}

pub fn run(fx: &Fixture, who: As, args: &[&str]) -> Output {
    sifr_as(fx, who, args).output().unwrap()
}

/// Loop devices whose backing file is below `dir`.
pub fn loops_backed_by(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    rd.filter_map(|e| {
        let e = e.ok()?;
        let b = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
        b.trim()
            .starts_with(dir.to_str()?)
            .then(|| format!("{}: {}", e.file_name().to_string_lossy(), b.trim()))
    })
    .collect()
}

/// The pids of processes called `name` (their `comm`) whose command line names `dir`: the
/// holders (`sifr-holder`) and FUSE servers (`sifr-fuse`) of images below `dir`.
pub fn named(dir: &Path, name: &str) -> Vec<u32> {
    sifr_testkit::processes_mentioning(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// Extraction directories of sifr in the temporary directory.
pub fn extraction_dirs() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("sifr-extract-"))
        .collect()
}

/// Nothing of a run survives it. Loop devices auto-clear asynchronously, so they get a moment.
pub fn assert_nothing_left(im: &Images) {
    let dir = im.fx.dir.path();
    assert!(sifr_testkit::host_mounts_mentioning(dir).is_empty());
    let procs = sifr_testkit::settled(|| sifr_testkit::processes_mentioning(dir));
    assert!(procs.is_empty(), "processes left: {procs:?}");
    let extracted = sifr_testkit::settled(extraction_dirs);
    assert!(
        extracted.is_empty(),
        "extraction directories left: {extracted:?}"
    );
    let loops = sifr_testkit::settled(|| loops_backed_by(dir));
    assert!(loops.is_empty(), "loop devices left: {loops:?}");
    let holders = sifr_testkit::settled(|| {
        holder_files(who_all())
            .into_iter()
            .filter(|f| !im.holders_before.contains(f))
            .collect::<Vec<_>>()
    });
    assert!(
        holders.is_empty(),
        "holder sockets or mount points left: {holders:?}"
    );
}

/// The uids whose launches the tests make.
pub fn who_all() -> Vec<u32> {
    sifr_testkit::identities().iter().map(|w| w.uid()).collect()
}

/// Sockets and mount points of the node's holders of shared images, of these uids.
pub fn holder_files(uids: Vec<u32>) -> Vec<String> {
    uids.iter()
        .filter_map(|u| std::fs::read_dir(std::env::temp_dir().join(format!("sifr-{u}"))).ok())
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// Sets `/dev/fuse`'s mode for the guard's life and restores it afterwards.
pub struct FuseMode(u32);

impl FuseMode {
    pub fn set(mode: u32) -> FuseMode {
        let old = std::fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
        std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(mode)).unwrap();
        FuseMode(old)
    }
}

impl Drop for FuseMode {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(self.0));
    }
}

pub fn test_user() -> Option<As> {
    if !sifr_testkit::is_root() || !Path::new("/dev/fuse").exists() {
        sifr_testkit::skip("needs root (to switch /dev/fuse's mode) and /dev/fuse");
        return None;
    }
    if let Err(why) = sifr_testkit::userns_available() {
        sifr_testkit::skip(why);
        return None;
    }
    sifr_testkit::identities()
        .into_iter()
        .find(|w| matches!(w, As::User { .. }))
}
