//! Whole outputs that users and scripts read, pinned as insta snapshots (`tests/snapshots/`):
//! the help of the commands a job script uses, an error with its cause and hint, and the JSON
//! of `deffile check --json`. A change to any of them shows as a snapshot diff to review; CI
//! (`CI=true`) fails on a mismatch and writes nothing.
//!
//! Pure: no mounts, no containers. The help is rendered at a fixed width (`COLUMNS`) from an
//! empty environment, so the caller's terminal and `APPTAINER_*` settings cannot leak in.

use std::path::Path;
use std::process::Command;

/// `sifr ARGS` with nothing of the caller's environment; returns (exit code, stdout, stderr).
fn sifr(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sifr"))
        .args(args)
        .env_clear()
        .env("COLUMNS", "100")
        .env("PATH", "/usr/bin:/bin")
        .env(
            sifr_testkit::NO_REGISTRY_CHECK.0,
            sifr_testkit::NO_REGISTRY_CHECK.1,
        )
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .expect("sifr runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

/// The help of `sifr ARGS --help`, on stdout with status 0.
fn help(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--help");
    let (code, stdout, stderr) = sifr(&all);
    assert_eq!(code, 0, "sifr {all:?}: {stderr}");
    stdout
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!(help(&[]));
}

#[test]
fn exec_help() {
    insta::assert_snapshot!(help(&["exec"]));
}

#[test]
fn run_help() {
    insta::assert_snapshot!(help(&["run"]));
}

#[test]
fn build_help() {
    insta::assert_snapshot!(help(&["build"]));
}

#[test]
fn pull_help() {
    insta::assert_snapshot!(help(&["pull"]));
}

#[test]
fn push_help() {
    insta::assert_snapshot!(help(&["push"]));
}

#[test]
fn instance_start_help() {
    insta::assert_snapshot!(help(&["instance", "start"]));
}

#[test]
fn a_missing_image_is_an_error_naming_it() {
    let (code, stdout, stderr) = sifr(&["exec", "/nonexistent/image.sif", "true"]);
    assert_eq!(code, i32::from(sifr_cli::exit::FAILURE), "{stderr}");
    assert_eq!(stdout, "");
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_bad_bind_is_an_error_naming_the_flag_and_value() {
    let (code, _, stderr) = sifr(&["exec", "-B", "a:b:c:d", "/nonexistent/image.sif", "true"]);
    assert_eq!(code, i32::from(sifr_cli::exit::FAILURE), "{stderr}");
    insta::assert_snapshot!(stderr);
}

#[test]
fn deffile_check_json_of_the_multistage_example() {
    let (code, stdout, stderr) = sifr(&[
        "deffile",
        "check",
        "--json",
        "examples/multistage/multistage.def",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    insta::assert_snapshot!(serde_json::to_string_pretty(&json).unwrap());
}

/// `sifr ARGS` run in `dir` with `env` and nothing else of the caller's environment.
fn sifr_in(dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sifr"));
    c.args(args)
        .env_clear()
        .env("COLUMNS", "100")
        .env("PATH", "/usr/bin:/bin")
        .env(
            sifr_testkit::NO_REGISTRY_CHECK.0,
            sifr_testkit::NO_REGISTRY_CHECK.1,
        )
        .current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("sifr runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

#[test]
fn a_definition_sifr_cannot_build_is_refused_with_what_to_do() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("lib.def"),
        "Bootstrap: library\nFrom: alpine\n\n%files\n    missing.txt /opt/\n",
    )
    .unwrap();
    let (code, _, stderr) = sifr_in(t.path(), &[], &["deffile", "check", "lib.def"]);
    assert_eq!(code, i32::from(sifr_cli::exit::FAILURE), "{stderr}");
    insta::assert_snapshot!(stderr.replace(&t.path().display().to_string(), "DIR"));
}

#[test]
fn cache_list_json_of_an_empty_cache() {
    let t = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = sifr_in(
        t.path(),
        &[("APPTAINER_CACHEDIR", t.path())],
        &["cache", "list", "--json"],
    );
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!(stdout);
}

#[test]
fn the_exec_man_page_ends_with_examples_environment_files_and_see_also() {
    let t = tempfile::tempdir().unwrap();
    let (code, _, stderr) = sifr_in(t.path(), &[], &["man", "--output", "pages"]);
    assert_eq!(code, 0, "{stderr}");
    let page = std::fs::read_to_string(t.path().join("pages/sifr-exec.1")).unwrap();
    let ours = &page[page.find(".SH EXAMPLES").expect("an EXAMPLES section")..];
    insta::assert_snapshot!(ours);
}
