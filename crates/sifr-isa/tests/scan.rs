//! Scanning an image tree: ELF files only, links never followed, stable JSON, library
//! resolution and the per-program judgement.

mod common;

use std::fs;

use sifr_isa::{Arch, Feature, FeatureSet, FileKind, HostFacts, ImageFacts, Level, judge};

#[test]
fn scanning_an_image_records_each_elf_file_once_and_skips_links_and_data() {
    if !common::x86_64_gcc() {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("usr/bin")).unwrap();
    fs::create_dir_all(r.join("usr/lib/glibc-hwcaps/x86-64-v3")).unwrap();
    fs::create_dir_all(r.join("opt/app/lib")).unwrap();

    // A v3 library, a baseline copy of it for hwcaps-less CPUs, and programs using it.
    let lib_src = r#"
        #define N 1024
        float dot(const float *restrict a, const float *restrict b) {
            float s = 0; for (int i = 0; i < N; i++) s += a[i] * b[i]; return s;
        }
        void muladd(float *restrict y, const float *restrict a, const float *restrict b) {
            for (int i = 0; i < N; i++) y[i] = a[i] * b[i] + y[i];
        }
    "#;
    let so = |name: &str, march: &str, dest: &str| {
        let out = common::compile(
            build.path(),
            name,
            lib_src,
            &["-O2", march, "-shared", "-fPIC", "-Wl,-soname,libdot.so.1"],
        );
        fs::copy(out, r.join(dest)).unwrap();
    };
    so(
        "libdot_v3.so",
        "-march=x86-64-v3",
        "opt/app/lib/libdot.so.1",
    );
    so(
        "libdot_v3h.so",
        "-march=x86-64-v3",
        "usr/lib/glibc-hwcaps/x86-64-v3/libdot.so.1",
    );
    let prog_src = r#"
        #include <stdio.h>
        float dot(const float *a, const float *b);
        static float a[1024], b[1024];
        int main(void) { printf("%f\n", dot(a, b)); return 0; }
    "#;
    let prog = build.path().join("prog.c");
    fs::write(&prog, prog_src).unwrap();
    let out = std::process::Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(r.join("usr/bin/app"))
        .arg(&prog)
        .arg(r.join("opt/app/lib/libdot.so.1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v4 = common::compile(
        build.path(),
        "v4",
        common::MAIN_PATH_PROGRAM,
        &["-O2", "-march=x86-64-v4"],
    );
    fs::copy(v4, r.join("usr/bin/fast")).unwrap();

    // Things that must not be scanned: data, links to files and directories (even to `/`).
    fs::write(r.join("usr/bin/script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::write(r.join("usr/bin/tiny"), "\x7fE").unwrap();
    std::os::unix::fs::symlink("/bin/ls", r.join("usr/bin/ls-link")).unwrap();
    std::os::unix::fs::symlink("/", r.join("hostroot")).unwrap();
    std::os::unix::fs::symlink("app", r.join("usr/bin/app-alias")).unwrap();
    // A file with the magic but garbage after it: recorded as skipped, not fatal.
    fs::write(r.join("usr/bin/broken"), b"\x7fELF\x02\x01\x01garbage").unwrap();

    let img = ImageFacts::scan(r).unwrap();
    let paths: Vec<&str> = img.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "opt/app/lib/libdot.so.1",
            "usr/bin/app",
            "usr/bin/fast",
            "usr/lib/glibc-hwcaps/x86-64-v3/libdot.so.1"
        ]
    );
    assert_eq!(img.skipped.len(), 1, "{:?}", img.skipped);
    assert_eq!(img.skipped[0].path, "usr/bin/broken");
    assert_eq!(img.arch, Some(Arch::Amd64));
    assert_eq!(img.summary.elf_files, 4);
    assert_eq!(img.summary.executables, 2);
    assert_eq!(img.summary.shared_libraries, 2);
    assert_eq!(img.summary.max_level, Some(Level::V4));
    assert_eq!(img.summary.files_per_level.get(&Level::V3), Some(&2));

    // The JSON form round-trips and is stable.
    let json = img.to_json();
    let back = ImageFacts::from_json(&json).unwrap();
    assert_eq!(back, img);
    assert_eq!(back.to_json(), json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["arch"], "amd64");
    assert_eq!(v["files"][0]["kind"], "shared-library");
    assert_eq!(v["files"][0]["needs"]["level"], "x86-64-v3");

    // The program's libraries come from the image, never from glibc-hwcaps.
    let app = img.file("/usr/bin/app").unwrap();
    assert_eq!(app.needs.level, Some(Level::V1), "{app:#?}");
    let libs = img.libraries_for(app);
    let lib_paths: Vec<&str> = libs.iter().map(|l| l.path.as_str()).collect();
    assert_eq!(lib_paths, ["opt/app/lib/libdot.so.1"]);

    // On a v2 CPU the baseline program is flagged because of its v3 library, and the v4
    // program in the same image is no concern of `app`'s.
    let mut v2 = FeatureSet::of_level(Level::V2);
    v2.insert(Feature::Aes);
    let all: FeatureSet = Feature::ALL.iter().copied().collect();
    let old_cpu = HostFacts::from_features(Arch::Amd64, v2, all);
    let verdict = judge(app, &libs, &old_cpu);
    assert_eq!(verdict.offending_files.len(), 1, "{verdict:?}");
    assert_eq!(verdict.offending_files[0].path, "opt/app/lib/libdot.so.1");
    assert!(
        verdict.missing_features.contains(&Feature::Avx2)
            || verdict.missing_features.contains(&Feature::Fma)
    );
    assert!(!verdict.missing_features.contains(&Feature::Avx512f));

    // On a v3 CPU `app` is fine, even though `fast` in the same image needs v4.
    let haswell = HostFacts::from_features(Arch::Amd64, FeatureSet::of_level(Level::V3), all);
    assert!(judge(app, &libs, &haswell).is_ok());
    let fast = img.file("usr/bin/fast").unwrap();
    assert_eq!(fast.kind, FileKind::Executable);
    assert!(!judge(fast, &img.libraries_for(fast), &haswell).is_ok());

    // Judged as a whole (a runscript), the image is flagged for `fast` alone on a v3 CPU, and
    // for the v3 library too on a v2 CPU; the glibc-hwcaps copy never counts.
    let whole = sifr_isa::judge_image(&img, &haswell);
    let paths: Vec<&str> = whole
        .offending_files
        .iter()
        .map(|o| o.path.as_str())
        .collect();
    assert_eq!(paths, ["usr/bin/fast"]);
    assert!(whole.missing_features.contains(&Feature::Avx512f));
    let whole = sifr_isa::judge_image(&img, &old_cpu);
    let paths: Vec<&str> = whole
        .offending_files
        .iter()
        .map(|o| o.path.as_str())
        .collect();
    assert_eq!(paths, ["opt/app/lib/libdot.so.1", "usr/bin/fast"]);
}

#[test]
fn scanning_a_missing_root_names_it() {
    let err = ImageFacts::scan(std::path::Path::new("/nonexistent/isa-root")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/isa-root"), "{err}");
}

#[test]
fn host_facts_agree_with_std() {
    let host = HostFacts::detect();
    if cfg!(target_arch = "x86_64") {
        assert_eq!(host.arch, Arch::Amd64);
        let level = host.level.expect("x86 host has a level");
        assert!(FeatureSet::of_level(level).is_subset(host.present()));
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(
                host.has(Feature::Avx2),
                std::arch::is_x86_feature_detected!("avx2")
            );
            assert_eq!(
                host.has(Feature::Avx512f),
                std::arch::is_x86_feature_detected!("avx512f")
            );
        }
        // Nothing std cannot detect is ever reported as absent.
        assert!(host.absent().iter().all(|f| !host.unknown.contains(&f)));
    } else {
        // The checks compare with std's x86 feature detection, which other hosts lack.
        sifr_testkit::not_here("x86 feature checks on a non-x86 host");
    }
}

#[test]
fn commands_are_found_through_the_image_links_without_leaving_the_image() {
    let host_true = std::path::Path::new("/usr/bin/true");
    if !host_true.exists() {
        sifr_testkit::skip("no `/usr/bin/true` on this host to put in the image");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("usr/bin")).unwrap();
    fs::create_dir_all(r.join("usr/share/doc")).unwrap();
    fs::copy(host_true, r.join("usr/bin/true3.11")).unwrap();
    fs::write(r.join("usr/share/doc/README"), "text").unwrap();
    let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, r.join(at)).unwrap();
    link("usr/bin", "bin"); // usrmerge
    link("true3.11", "usr/bin/true3");
    link("true3", "usr/bin/true");
    link("/usr/bin/true", "usr/bin/abs-true");
    link("../../../../../usr/bin/true3.11", "usr/bin/climb");
    link("README", "usr/share/doc/readme-link");
    link("loop-b", "usr/bin/loop-a");
    link("loop-a", "usr/bin/loop-b");

    let img = ImageFacts::scan(r).unwrap();
    for name in [
        "/bin/true",
        "bin/true3",
        "/usr/bin/abs-true",
        "/bin/climb",
        "/bin/./true3.11",
    ] {
        assert_eq!(
            img.lookup(name).map(|f| f.path.as_str()),
            Some("usr/bin/true3.11"),
            "{name}"
        );
    }
    assert!(img.lookup("/usr/bin/loop-a").is_none());
    assert!(img.lookup("/bin/missing").is_none());
    // Only links that lead to an ELF file or a directory above one are kept.
    let kept: Vec<&str> = img.links.keys().map(String::as_str).collect();
    assert_eq!(
        kept,
        [
            "bin",
            "usr/bin/abs-true",
            "usr/bin/climb",
            "usr/bin/true",
            "usr/bin/true3"
        ]
    );
    let back = ImageFacts::from_json(&img.to_json()).unwrap();
    assert_eq!(back.lookup("/bin/true"), img.lookup("/bin/true"));
}
