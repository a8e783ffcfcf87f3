//! A `kill -9` of a pull or build leaves its partial image `.NAME.sifr-build-PID` beside the
//! target (issue 24, item 2). The next write of the same target removes it, unless a writer
//! still holds it (its lock) or it is too fresh to be a dead writer's.

use std::fs;
use std::time::{Duration, SystemTime};

use sifr_build::PackOptions;

#[test]
fn a_dead_writers_partial_image_is_swept_by_the_next_write_but_a_live_ones_is_not() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("root");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/hello"), "hi\n").unwrap();
    let out = d.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let target = out.join("img.sif");
    let old = SystemTime::now() - Duration::from_secs(3600);
    let partial = |pid: u32| out.join(format!(".img.sif.sifr-build-{pid}"));
    for pid in [11, 22, 33] {
        let f = fs::File::create(partial(pid)).unwrap();
        if pid != 33 {
            f.set_modified(old).unwrap();
        }
    }
    // 22 is being written by a live writer: it holds the lock.
    let live = fs::File::open(partial(22)).unwrap();
    live.lock().unwrap();
    // Another image's partial file is not this target's business.
    let other = out.join(".other.sif.sifr-build-44");
    fs::File::create(&other).unwrap().set_modified(old).unwrap();

    sifr_build::pack::pack_dir(&src, &target, &PackOptions::default()).unwrap();
    assert!(target.is_file());
    assert!(
        !partial(11).exists(),
        "a dead writer's partial image is removed"
    );
    assert!(partial(22).exists(), "a live writer's is kept");
    assert!(partial(33).exists(), "a fresh one is kept");
    assert!(other.exists());
    drop(live);
}
