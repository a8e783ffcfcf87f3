//! Stock distribution files must come out as baseline: glibc, libm, coreutils, CPython and
//! numpy all carry AVX2 / AVX-512 code that they only run after checking the CPU. Debian
//! builds for x86-64-v1; numpy's own baseline adds SSE3, so "v2 at most" is the bar.
//! A file that is absent (another distribution, no python3-numpy) is skipped with a reason, and
//! fails under `SIFR_TEST_STRICT` (CI is Debian with scripts/deps.sh's packages).
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};

use sifr_isa::{FileFacts, Level};

fn numpy_core() -> Option<PathBuf> {
    // numpy 2 (Debian 13) moved `core` to `_core`.
    ["_core", "core"].iter().find_map(|sub| {
        let dir = Path::new("/usr/lib/python3/dist-packages/numpy").join(sub);
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("_multiarray_umath") && n.ends_with(".so"))
            })
    })
}

fn check_baseline(path: &Path, at_most: Level) {
    if !path.exists() {
        sifr_testkit::skip(format_args!(
            "`{}` is not on this system (scripts/deps.sh installs it on Debian)",
            path.display()
        ));
        return;
    }
    let f = FileFacts::from_path(path).expect("examine system file");
    let level = f.needs.level.expect("an x86 file has a level");
    eprintln!(
        "{}: needs {level} {:?}, uses when available {:?}, {} instructions",
        path.display(),
        f.needs.features,
        f.uses_when_available,
        f.instructions
    );
    assert!(level <= at_most, "{}: {f:#?}", path.display());
}

#[test]
fn debian_system_files_need_only_the_baseline() {
    if !cfg!(target_arch = "x86_64") {
        // The files checked are Debian's x86-64 builds; another host has other ones.
        sifr_testkit::not_here("the host is not x86-64");
        return;
    }
    let multiarch = Path::new("/usr/lib/x86_64-linux-gnu");
    check_baseline(&multiarch.join("libc.so.6"), Level::V1);
    check_baseline(&multiarch.join("libm.so.6"), Level::V1);
    // Libraries that dispatch through state the analysis cannot follow (the
    // `SELF_DISPATCHING` table): every program linking them would be flagged otherwise.
    for lib in [
        "libzstd.so.1",
        "libgcrypt.so.20",
        "libnettle.so.8",
        "libhogweed.so.6",
        "libsodium.so.23",
    ] {
        check_baseline(&multiarch.join(lib), Level::V1);
    }
    check_baseline(Path::new("/bin/ls"), Level::V1);
    // `/usr/bin/python3` is a symlink to the versioned interpreter; reading follows it.
    check_baseline(Path::new("/usr/bin/python3"), Level::V1);
    match numpy_core() {
        Some(p) => check_baseline(&p, Level::V2),
        None => sifr_testkit::skip(
            "numpy's _multiarray_umath is absent (apt-get install python3-numpy)",
        ),
    }
}

#[test]
fn glibc_variants_are_seen_but_not_required() {
    let libc = Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6");
    if !cfg!(target_arch = "x86_64") {
        // Debian's x86-64 glibc is the subject; another host has another libc.
        sifr_testkit::not_here("the host is not x86-64");
        return;
    }
    if !libc.exists() {
        sifr_testkit::skip(format_args!("no x86-64 glibc at `{}`", libc.display()));
        return;
    }
    let f = FileFacts::from_path(libc).unwrap();
    // glibc 2.36 ships AVX2 and EVEX (AVX-512) string functions behind ifuncs.
    assert!(
        f.uses_when_available.contains(&sifr_isa::Feature::Avx2),
        "{f:#?}"
    );
    assert!(f.needs.features.is_empty(), "{f:#?}");
    assert_eq!(f.kind, sifr_isa::FileKind::SharedLibrary);
    assert_eq!(f.soname.as_deref(), Some("libc.so.6"));
}
