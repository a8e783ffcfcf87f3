//! Many writers on one cache and one output directory (issue 24, deliverable 5): 16 `pull`s and
//! 16 `build`s (`Bootstrap: docker`, with a `%post`) of one registry image start together, with
//! one cache and one output directory, and some are killed with SIGKILL at seeded moments.
//! Afterwards every blob in the cache matches its digest, every image under a final name is
//! whole (its partition reads to the end as SquashFS), every run that was not killed succeeded,
//! and `cache clean --force` leaves the cache empty.
//!
//! Needs Debian's `docker-registry` and `skopeo` (scripts/deps.sh installs them).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod registries;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use registries::{registry_with_test_image, run_ok, setup, sifr_in};
use sifr_testkit::stderr;

const EACH: usize = 16;

/// The kill moments, from a fixed seed (`SIFR_CONCURRENCY_SEED` replays another): between
/// 50 ms and 1.5 s, while blobs download, layers merge or `%post` runs.
fn moments(n: usize) -> Vec<u64> {
    let seed = std::env::var("SIFR_CONCURRENCY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xC0FF_EE24_u64);
    let mut rng = sifr_testkit::Rng::new(seed);
    (0..n).map(|_| 50 + rng.below(1450) as u64).collect()
}

/// Every file of the blob store named by a digest holds bytes of that digest.
fn verify_blobs(cache: &Path) -> usize {
    let dir = cache.join("blob").join("sha256");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let out = run_ok(std::process::Command::new("sha256sum").arg(e.path()));
        let sum = String::from_utf8_lossy(&out.stdout);
        assert!(
            sum.starts_with(&name),
            "cache blob `{name}` does not match its digest: {sum}"
        );
        n += 1;
    }
    n
}

/// The SIF at `path` is whole: it opens, and its primary partition reads to its end as a
/// SquashFS filesystem (unsquashfs lists every entry).
fn assert_whole(path: &Path) {
    let img = sifr_sif::Image::open(path)
        .unwrap_or_else(|e| panic!("`{}` is not a SIF: {e}", path.display()));
    let part = img.primary_partition().expect("a primary partition");
    let bytes = std::fs::read(path).unwrap();
    let (start, len) = (part.offset() as usize, part.size() as usize);
    assert!(
        start + len <= bytes.len(),
        "`{}` is cut short",
        path.display()
    );
    let sq = path.with_extension("check.sqfs");
    std::fs::write(&sq, &bytes[start..start + len]).unwrap();
    let out = std::process::Command::new("unsquashfs")
        .arg("-lls")
        .arg(&sq)
        .output()
        .unwrap();
    std::fs::remove_file(&sq).unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("etc/hello"),
        "`{}` does not read as a whole image: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pulls_and_builds_share_one_cache_and_output_directory_through_kills() {
    let Some((t, layout)) = setup(&["docker-registry", "skopeo", "unsquashfs"]) else {
        return;
    };
    if !sifr_testkit::is_root() && sifr_testkit::userns_available().is_err() {
        sifr_testkit::skip("%post needs root or user namespaces");
        return;
    }
    let d = t.path();
    let reg = registry_with_test_image(d, &layout);
    let cache = d.join("cache");
    let out = d.join("out");
    let tmp = d.join("tmp");
    for p in [&out, &tmp] {
        std::fs::create_dir(p).unwrap();
    }
    std::fs::write(
        d.join("app.def"),
        format!(
            "Bootstrap: docker\nRegistry: {}\nNamespace: test\nFrom: img:v1\n\n%post\n    cat /etc/hello > /etc/post\n",
            reg.host()
        ),
    )
    .unwrap();
    let src = format!("docker://{}/test/img:v1", reg.host());
    let start = |args: Vec<String>| -> Child {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sifr_in(d, &cache, &args)
            .env("TMPDIR", &tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let started = Instant::now();
    let mut jobs: Vec<(String, Child)> = Vec::new();
    for i in 0..EACH {
        let target = format!("out/p{i}.sif");
        let args = vec![
            "pull".into(),
            "--nohttps".into(),
            target.clone(),
            src.clone(),
        ];
        jobs.push((target, start(args)));
        let target = format!("out/b{i}.sif");
        let args = vec![
            "build".into(),
            "--nohttps".into(),
            target.clone(),
            "app.def".into(),
        ];
        jobs.push((target, start(args)));
    }
    // Every fourth pull and build is killed, at its own moment.
    let killed: Vec<usize> = (0..jobs.len()).filter(|i| i % 8 < 2).collect();
    let mut plan: Vec<(u64, usize)> = moments(killed.len())
        .into_iter()
        .zip(killed.clone())
        .collect();
    plan.sort();
    for (at, i) in &plan {
        let when = started + Duration::from_millis(*at);
        if let Some(wait) = when.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let _ = jobs[*i].1.kill();
    }
    let mut finished = 0;
    for (i, (target, child)) in jobs.into_iter().enumerate() {
        let o = child.wait_with_output().unwrap();
        let path = d.join(&target);
        if killed.contains(&i) {
            // Killed before or after its rename: absent, or whole.
            if path.exists() {
                assert_whole(&path);
                finished += 1;
            }
        } else {
            assert!(o.status.success(), "`{target}` failed: {}", stderr(&o));
            assert_whole(&path);
        }
    }
    println!(
        "{} killed ({finished} of them had finished), in {} ms",
        killed.len(),
        started.elapsed().as_millis()
    );
    let blobs = verify_blobs(&cache);
    assert!(blobs >= 4, "the image's blobs are cached ({blobs})");
    // Nothing but whole images under final names; a killed writer's hidden partial file is
    // not a final name (the next writer into the directory sweeps it once it is stale).
    for e in std::fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            assert_whole(&out.join(&name));
        }
    }
    run_ok(sifr_in(d, &cache, &["cache", "clean", "--force"]));
    let left: Vec<String> = walk(&cache);
    assert!(left.is_empty(), "`cache clean` left {left:?}");
}

/// The files (not directories) below `dir`, relative to it.
fn walk(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            } else {
                files.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    files
}
