//! Test helpers: compile C programs with the system gcc at test time.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The program every level test compiles: a vectorisable float loop, an int32 multiply
/// (`pmulld`, SSE4.1), an int64 multiply (`vpmullq`, AVX-512DQ at v4), `__builtin_popcount`
/// (`popcnt`, v2), `floor` (`roundsd`, SSE4.1) and string functions, all in `main`.
pub const MAIN_PATH_PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
#include <math.h>
#define N 4096
static float a[N], b[N], c[N];
static int ia[N], ib[N];
static long long la[N], lb[N];
int main(int argc, char **argv) {
    unsigned long bits = 0;
    for (int i = 0; i < N; i++) {
        a[i] = (float)i * 0.5f + argc; b[i] = (float)(N - i);
        ia[i] = i * argc; ib[i] = i + argc; la[i] = i; lb[i] = argc + i;
    }
    for (int i = 0; i < N; i++) c[i] = a[i] * b[i] + c[i];
    for (int i = 0; i < N; i++) ia[i] = ia[i] * ib[i];
    for (int i = 0; i < N; i++) la[i] = la[i] * lb[i];
    for (int i = 0; i < N; i++) bits += __builtin_popcount((unsigned)ia[i]);
    double f = floor(c[argc] / 3.0);
    char buf[64];
    snprintf(buf, sizeof buf, "%lu %f %lld", bits, f, la[argc]);
    printf("%s %zu %s\n", buf, strlen(buf), strchr(argv[0], '/') ? "path" : "name");
    return 0;
}
"#;

/// Whether x86-64 programs can be compiled and run here; if not, says why (not x86-64: not
/// applicable; no gcc: a skip, which fails under `SIFR_TEST_STRICT`).
pub fn x86_64_gcc() -> bool {
    sifr_testkit::x86_64_gcc("the host is not x86-64 (the gcc tests compile for the host)")
}

/// A scratch directory for programs compiled for the host, or `None` (after saying why) when
/// there is no gcc or the host is not x86-64.
pub fn x86_64_gcc_dir() -> Option<tempfile::TempDir> {
    x86_64_gcc().then(|| tempfile::tempdir().unwrap())
}

/// Compiles `source` with `args` into `dir/name`; panics with gcc's output on failure.
pub fn compile(dir: &Path, name: &str, source: &str, args: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).expect("write source");
    let out = dir.join(name);
    let o = Command::new("gcc")
        .args(args)
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg("-lm")
        .output()
        .expect("run gcc");
    assert!(
        o.status.success(),
        "gcc {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}
