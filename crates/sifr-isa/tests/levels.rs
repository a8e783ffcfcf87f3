//! Programs compiled at test time for x86-64-v2/v3/v4, with and without the ISA note, and
//! programs that only *use* higher ISA behind run-time dispatch.
#![allow(clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use sifr_isa::{Arch, Feature, FeatureSet, FileFacts, HostFacts, Level, judge};

fn facts(path: &std::path::Path) -> FileFacts {
    FileFacts::from_path(path).expect("examine compiled program")
}

/// A Haswell-class CPU: everything up to x86-64-v3 plus AES/PCLMUL, no AVX-512.
fn haswell() -> HostFacts {
    let mut present = FeatureSet::of_level(Level::V3);
    present.insert(Feature::Aes);
    present.insert(Feature::Pclmulqdq);
    let all: FeatureSet = Feature::ALL.iter().copied().collect();
    HostFacts::from_features(Arch::Amd64, present, all)
}

/// `MAIN_PATH_PROGRAM` compiled with `-O2 -march=x86-64-LEVEL` in `dir`: the flag and the program.
fn compile_march(dir: &Path, level: &str) -> (String, PathBuf) {
    let march = format!("-march=x86-64-{level}");
    let exe = common::compile(dir, level, common::MAIN_PATH_PROGRAM, &["-O2", &march]);
    (march, exe)
}

#[test]
fn march_levels_are_detected_from_instructions_in_main() {
    let Some(dir) = common::x86_64_gcc_dir() else {
        return;
    };
    for (level, want) in [("v2", Level::V2), ("v3", Level::V3), ("v4", Level::V4)] {
        let (march, exe) = compile_march(dir.path(), level);
        let f = facts(&exe);
        assert_eq!(f.kind, sifr_isa::FileKind::Executable);
        assert_eq!(f.arch, Arch::Amd64);
        assert_eq!(f.needs.level, Some(want), "{march}: {f:#?}");
        // gcc's crt files give every program a baseline note that says nothing about -march.
        assert!(f.has_isa_note, "{march}: crt objects carry the note");
        assert_eq!(f.isa_note_level, Some(Level::V1), "{march}");
        assert!(
            f.needed_libs.iter().any(|l| l.starts_with("libc.so")),
            "{f:?}"
        );
        let required = f.required();
        match want {
            Level::V2 => assert!(required.contains(Feature::Popcnt), "{f:#?}"),
            Level::V3 => {
                assert!(required.contains(Feature::Avx2) || required.contains(Feature::Fma))
            }
            _ => assert!(required.contains(Feature::Avx512f), "{f:#?}"),
        }
        // Every required feature found in code points at the code that uses it.
        assert!(!f.evidence.is_empty());
        for e in &f.evidence {
            assert!(f.needs.features.contains(&e.feature));
            assert!(
                e.address.starts_with("0x") && !e.reached_via.is_empty(),
                "{e:?}"
            );
        }
    }
}

#[test]
fn a_plain_o2_build_needs_only_the_baseline() {
    let Some(dir) = common::x86_64_gcc_dir() else {
        return;
    };
    let exe = common::compile(dir.path(), "plain", common::MAIN_PATH_PROGRAM, &["-O2"]);
    let f = facts(&exe);
    assert_eq!(f.needs.level, Some(Level::V1), "{f:#?}");
    assert!(f.needs.features.is_empty());
}

#[test]
fn the_isa_note_raises_the_level_even_without_matching_instructions() {
    let Some(dir) = common::x86_64_gcc_dir() else {
        return;
    };
    // -mneeded records what the code needs; -z x86-64-vN forces a level on plain code.
    let cases: [(&str, &[&str], Level); 3] = [
        (
            "v3_mneeded",
            &["-O2", "-march=x86-64-v3", "-mneeded"],
            Level::V3,
        ),
        (
            "v4_z",
            &["-O2", "-march=x86-64-v4", "-Wl,-z,x86-64-v4"],
            Level::V4,
        ),
        ("plain_z_v3", &["-O2", "-Wl,-z,x86-64-v3"], Level::V3),
    ];
    for (name, args, want) in cases {
        let f = facts(&common::compile(
            dir.path(),
            name,
            common::MAIN_PATH_PROGRAM,
            args,
        ));
        assert!(f.has_isa_note, "{name}");
        assert_eq!(f.isa_note_level, Some(want), "{name}: {f:#?}");
        assert_eq!(f.needs.level, Some(want), "{name}");
        assert!(FeatureSet::of_level(want).is_subset(f.required()), "{name}");
    }
}

/// `__builtin_cpu_supports` guarding a `target("avx512f")` function: uses, not requires.
const CPU_SUPPORTS_PROGRAM: &str = r#"
#include <stdio.h>
#define N 1024
static float a[N];
__attribute__((target("avx512f"), noinline)) static void scale_wide(float *restrict p, float k) {
    for (int i = 0; i < N; i++) p[i] = p[i] * k + 1.0f;
}
__attribute__((noinline)) static void scale_plain(float *p, float k) {
    for (int i = 0; i < N; i++) p[i] = p[i] * k + 2.0f;
}
int main(int argc, char **argv) {
    (void)argv;
    if (__builtin_cpu_supports("avx512f")) scale_wide(a, (float)argc);
    else scale_plain(a, (float)argc);
    printf("%f\n", a[3]);
    return 0;
}
"#;

/// `target_clones` makes an ifunc with a resolver inside the executable.
const TARGET_CLONES_PROGRAM: &str = r#"
#include <stdio.h>
#define N 1024
static float a[N], b[N];
__attribute__((target_clones("avx512f", "avx2", "default"), noinline))
void axpy(float *restrict y, const float *restrict x, float k) {
    for (int i = 0; i < N; i++) y[i] = y[i] + k * x[i];
}
int main(int argc, char **argv) {
    (void)argv;
    axpy(a, b, (float)argc);
    printf("%f\n", a[3]);
    return 0;
}
"#;

#[test]
fn code_behind_run_time_dispatch_is_only_used_when_available() {
    let Some(dir) = common::x86_64_gcc_dir() else {
        return;
    };
    let cases = [
        ("cpu_supports", CPU_SUPPORTS_PROGRAM, false),
        ("cpu_supports_stripped", CPU_SUPPORTS_PROGRAM, true),
        ("target_clones", TARGET_CLONES_PROGRAM, false),
        ("target_clones_stripped", TARGET_CLONES_PROGRAM, true),
    ];
    for (name, src, strip) in cases {
        let mut args = vec!["-O2"];
        if strip {
            args.push("-s");
        }
        let f = facts(&common::compile(dir.path(), name, src, &args));
        assert_eq!(f.needs.level, Some(Level::V1), "{name}: {f:#?}");
        assert!(
            f.uses_when_available.contains(&Feature::Avx512f),
            "{name}: the AVX-512 variant is seen: {f:#?}"
        );
    }
}

#[test]
fn a_shared_library_built_for_v3_requires_v3() {
    let Some(dir) = common::x86_64_gcc_dir() else {
        return;
    };
    let src = r#"
        #define N 1024
        void vec_muladd(float *restrict y, const float *restrict a, const float *restrict b) {
            for (int i = 0; i < N; i++) y[i] = a[i] * b[i] + y[i];
        }
    "#;
    let lib = common::compile(
        dir.path(),
        "libvec.so",
        src,
        &[
            "-O2",
            "-march=x86-64-v3",
            "-shared",
            "-fPIC",
            "-Wl,-soname,libvec.so.1",
        ],
    );
    let f = facts(&lib);
    assert_eq!(f.kind, sifr_isa::FileKind::SharedLibrary);
    assert_eq!(f.soname.as_deref(), Some("libvec.so.1"));
    assert_eq!(f.needs.level, Some(Level::V3), "{f:#?}");
}

#[test]
fn the_judge_flags_only_what_this_cpu_lacks() {
    let Some(dir) = common::x86_64_gcc_dir() else {
        return;
    };
    let host = HostFacts::detect();
    eprintln!("host: {:?}, features {:?}", host.level, host.features);
    for level in ["v2", "v3", "v4"] {
        let (_, exe) = compile_march(dir.path(), level);
        let f = facts(&exe);

        // On this machine: expectations computed from the host's own facts.
        let v = judge(&f, &[], &host);
        let expected: Vec<Feature> = f.required().difference(host.present()).to_vec();
        assert_eq!(v.missing_features, expected, "{level} on this host");
        assert_eq!(v.is_ok(), expected.is_empty());
        if v.is_ok() {
            // No finding must mean the program really runs here.
            let out = Command::new(&exe).output().unwrap();
            assert!(out.status.success(), "{level} runs on this host: {out:?}");
        }

        // On a Haswell-class CPU (AVX2, no AVX-512), whatever machine runs the test.
        let v = judge(&f, &[], &haswell());
        if level == "v4" {
            assert!(v.missing_features.contains(&Feature::Avx512f), "{v:?}");
            assert_eq!(v.offending_files.len(), 1);
            assert_eq!(v.offending_files[0].path, f.path);
            assert_eq!(v.offending_files[0].refused_by_loader, None);
        } else {
            assert!(v.is_ok(), "{level} runs on Haswell: {v:?}");
        }
    }
}

#[test]
fn the_judge_reports_a_loader_refusal_from_the_isa_note() {
    let Some(dir) = common::x86_64_gcc_dir() else {
        return;
    };
    let args = ["-O2", "-march=x86-64-v4", "-mneeded"];
    let f = facts(&common::compile(
        dir.path(),
        "v4_noted",
        common::MAIN_PATH_PROGRAM,
        &args,
    ));
    let v = judge(&f, &[], &haswell());
    assert_eq!(
        v.offending_files[0].refused_by_loader,
        Some(Level::V4),
        "{v:?}"
    );
}
