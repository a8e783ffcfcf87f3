//! External programs the tests shell out to: whether they are installed, running one and
//! failing with its output, and `mksquashfs` (the reference SquashFS writer).

use std::borrow::BorrowMut;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Whether `tool` is on `PATH`.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The tools of `tools` that are not installed, comma-separated; `None` when all are.
pub fn missing(tools: &[&str]) -> Option<String> {
    let m: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    (!m.is_empty()).then(|| m.join(", "))
}

/// Run `cmd` to completion; panic with the command and its output unless it succeeded.
pub fn run_ok(mut cmd: impl BorrowMut<Command>) -> Output {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `mksquashfs SRC IMG -noappend -no-progress -quiet ARGS`; panics with its output on failure
/// (and says how to install it when it is missing).
pub fn mksquashfs(src: &Path, img: &Path, args: &[&str]) {
    run_tool(
        Command::new("mksquashfs")
            .arg(src)
            .arg(img)
            .args(["-noappend", "-no-progress", "-quiet"])
            .args(args),
        "mksquashfs is needed (apt-get install squashfs-tools)",
        &format!("mksquashfs {args:?}"),
    );
}

/// Run `cmd`, a tool the tests need (`install` says how to get it); panic with `what` and its
/// stderr unless it succeeded.
pub(crate) fn run_tool(cmd: &mut Command, install: &str, what: &str) {
    let out = cmd.output().expect(install);
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether x86-64 programs can be compiled here and run: the host is x86-64 and `gcc` works.
/// Otherwise says why the test does not run ([`not_here`](crate::not_here) with `off_arch` off
/// x86-64, [`skip`](crate::skip) without gcc) and returns false.
pub fn x86_64_gcc(off_arch: &str) -> bool {
    if !cfg!(target_arch = "x86_64") {
        // The checks compile and run x86-64 programs: no package makes another host run them.
        crate::not_here(off_arch);
        return false;
    }
    if !Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        crate::skip("no working `gcc` (apt-get install gcc)");
        return false;
    }
    true
}

/// The part of [`vector_loop_c`] before its last statement.
const VECTOR_LOOP_HEAD: &str = r#"#include <stdio.h>
#define N 4096
static float a[N], b[N], c[N];
static long long la[N], lb[N];
int main(int argc, char **argv) {
    for (int i = 0; i < N; i++) { a[i] = i * 0.5f + argc; b[i] = N - i; la[i] = i; lb[i] = argc + i; }
    for (int i = 0; i < N; i++) c[i] = a[i] * b[i] + c[i];
    for (int i = 0; i < N; i++) la[i] = la[i] * lb[i];
"#;

/// A C program whose loops gcc vectorises with the widest instructions `-march` allows (float
/// multiply-add and 64-bit integer multiply); `print` is the statement that keeps the results
/// alive (which loops survive depends on what it prints).
pub fn vector_loop_c(print: &str) -> String {
    format!("{VECTOR_LOOP_HEAD}    {print}\n    return 0;\n}}\n")
}
